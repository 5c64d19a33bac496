"""Runs the peers benchmark's workload on the three implementations, one after the
other on this machine, and prints each figure with our throughput over theirs:

- Convention Tracker: `tracker bench workload` (build it first: cargo build --release);
- cqrs-es with sqlite-es: this directory's binary (cargo build --release here);
- Python `eventsourcing` on SQLite: peers.py (pip install -r requirements.txt).

    python3 bench/peers/run.py [--commands 10000] [--aggregates 1000] [--writers 16] [--json]
"""

import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--aggregates", type=int, default=1_000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    common = ["--commands", str(args.commands), "--aggregates", str(args.aggregates)]
    ours = run([os.path.join(ROOT, "target/release/tracker"), "bench", "workload", *common, "--writers", str(args.writers)])
    cqrs = run([os.path.join(HERE, "target/release/peers"), *common, "--writers", str(args.writers), "--json"])
    python = run(["python3", os.path.join(HERE, "peers.py"), *common])
    figures = {"convention-tracker": ours, "cqrs-es + sqlite-es": cqrs, "python eventsourcing": python}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"workload: {args.commands} commands to {args.aggregates} aggregates, each commit fsynced; then one read model rebuilt")
    rows = [
        ("appends/s, 1 writer", "appends1WriterPerS", "appendsOneWriterPerS"),
        (f"appends/s, {args.writers} writers", "appendsConcurrentPerS", None),
        ("replay into a read model, events/s", "replayEventsPerS", "replayEventsPerS"),
    ]
    print(f"{'measure':<38} {'ours':>10} {'cqrs-es':>10} {'ours/cqrs':>10} {'eventsourcing':>14} {'ours/py':>9}")
    for name, key, py_key in rows:
        a, b = ours[key], cqrs[key]
        c = python.get(py_key) if py_key else None
        py = f"{c:>14.0f} {a / c:>8.1f}x" if c else f"{'-':>14} {'-':>9}"
        print(f"{name:<38} {a:>10.0f} {b:>10.0f} {a / b:>9.1f}x {py}")


if __name__ == "__main__":
    main()

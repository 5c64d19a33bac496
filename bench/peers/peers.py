"""The peers benchmark's workload on the Python `eventsourcing` package (SQLite, durable):
append N commands to M aggregates (each command loads its aggregate, decides, saves one
event), then rebuild one read model (every aggregate's balance) from the notification log.

    pip install -r requirements.txt && python3 peers.py --commands 10000 --aggregates 1000

Prints one JSON line: appends per second (1 writer) and events replayed per second.
"""

import argparse
import json
import os
import tempfile
import time
import uuid

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Account(Aggregate):
    @event("Opened")
    def __init__(self, number: int):
        self.number = number
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int):
        if amount <= 0:
            raise ValueError("a deposit is more than zero")
        self.balance += amount


class Bank(Application):
    pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--aggregates", type=int, default=1_000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    os.environ["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
    os.environ["SQLITE_DBNAME"] = os.path.join(directory, "events.db")
    app = Bank()
    ids = []
    for n in range(args.aggregates):
        account = Account(n)
        app.save(account)
        ids.append(account.id)
    started = time.perf_counter()
    for i in range(args.commands):
        account = app.repository.get(ids[i % args.aggregates])
        account.deposit(1 + i % 7)
        app.save(account)
    appends = args.commands / (time.perf_counter() - started)
    started = time.perf_counter()
    balances = {}
    events = 0
    start = 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=10_000)
        if not notifications:
            break
        for n in notifications:
            domain_event = app.mapper.to_domain_event(n)
            if type(domain_event).__name__ == "Deposited":
                balances[domain_event.originator_id] = balances.get(domain_event.originator_id, 0) + domain_event.amount
            events += 1
        start = notifications[-1].id + 1
    replay = events / (time.perf_counter() - started)
    assert len(balances) == min(args.aggregates, args.commands)
    print(json.dumps({"appendsOneWriterPerS": appends, "replayEventsPerS": replay, "events": events}))


if __name__ == "__main__":
    main()

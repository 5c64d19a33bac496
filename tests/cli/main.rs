//! The `tracker` command line, run as a user runs it: `seed`, `events`, `verify`.

use std::path::Path;
use std::process::{Command, Output};

fn tracker(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("tracker runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verify_reports_an_intact_log_then_the_place_it_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = tracker(&["seed", "--scenario", "sample"], dir.path());
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));

    let ok = tracker(&["verify"], dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let out = stdout(&ok);
    assert!(out.contains("INTACT"), "{out}");
    let digest = out.lines().find_map(|l| l.trim().strip_prefix("head digest ")).unwrap().to_string();

    let json = tracker(&["verify", "--json"], dir.path());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["firstBreak"], serde_json::Value::Null);
    assert_eq!(format!("{}:{}", report["headPosition"], report["headHash"].as_str().unwrap()), digest);

    let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER events_are_never_updated;
         UPDATE events SET record = CAST(replace(CAST(record AS TEXT), '\"amount\":\"', '\"amount\":\"1') AS BLOB)
           WHERE position = 20;",
    )
    .unwrap();
    drop(conn);

    let altered = tracker(&["verify", "--expect", &digest], dir.path());
    assert_eq!(altered.status.code(), Some(1));
    let out = stdout(&altered);
    assert!(out.contains("ALTERED") && out.contains("first break at position 20"), "{out}");
}

#[test]
fn verify_refuses_a_malformed_digest_and_a_missing_log() {
    let dir = tempfile::tempdir().unwrap();
    let missing = tracker(&["verify"], dir.path());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no event log"));
    tracker(&["seed", "--scenario", "sample"], dir.path());
    let bad = tracker(&["verify", "--expect", "12:nothex"], dir.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("64 hexadecimal digits"));
    // A seal is KurrentDB's stand-in for the whole-log chain the embedded log keeps.
    let seal = tracker(&["verify", "--seal"], dir.path());
    assert!(!seal.status.success());
    assert!(String::from_utf8_lossy(&seal.stderr).contains("--seal is for a KurrentDB log"));
}

#[test]
fn events_prints_the_log_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    let parse = |out: &std::process::Output| -> Vec<serde_json::Value> {
        stdout(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let all = parse(&tracker(&["events"], dir.path()));
    // From the event just before the demo's first amendment, wherever the seeding puts it.
    let amendment = all.iter().position(|e| e["eventType"] == "AmendmentSigned").expect("the demo signs an amendment");
    assert!(all.len() > amendment + 1, "the demo's programmes follow its conventions");
    let after = all[amendment - 1]["position"].as_u64().unwrap() - 1;
    let lines = parse(&tracker(&["events", "--after", &after.to_string()], dir.path()));
    assert_eq!(lines.len() as u64, all.last().unwrap()["position"].as_u64().unwrap() - after);
    assert_eq!(lines[0]["position"], after + 1);
    assert_eq!(lines[1]["eventType"], "AmendmentSigned");
    assert_eq!(lines[1]["metadata"]["actor"], "demo:plan-2021");
    assert_eq!(lines[1]["hash"].as_str().map(str::len), Some(64));
    assert_eq!(lines[1]["payload"]["type"], "AmendmentSigned", "the payload is JSON, not a string");
}

#[test]
fn tokens_are_created_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let created = tracker(&["token", "create", "--role", "auditor", "--label", "Cour des comptes"], dir.path());
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = stdout(&created);
    let mut lines = out.lines();
    let id = lines.next().unwrap().split_whitespace().nth(1).unwrap().to_string();
    let secret = lines.next().unwrap().trim().to_string();
    assert!(secret.starts_with("ct_") && secret.len() == 67, "{secret}");
    let file = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    assert!(!file.contains(&secret), "only the hash is stored");

    let listed = stdout(&tracker(&["token", "list"], dir.path()));
    assert!(listed.contains(&id) && listed.contains("auditor") && listed.contains("(active)"), "{listed}");
    assert!(!listed.contains(&secret));
    assert!(tracker(&["token", "revoke", &id], dir.path()).status.success());
    assert!(stdout(&tracker(&["token", "list"], dir.path())).contains("revoked"));
    let again = tracker(&["token", "revoke", &id], dir.path());
    assert!(!again.status.success(), "no active token to revoke");

    let bad = tracker(&["token", "create", "--role", "mayor", "--label", "x"], dir.path());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role `mayor`"));
    let unbound = tracker(&["token", "create", "--role", "structure", "--label", "CCAS"], dir.path());
    assert!(String::from_utf8_lossy(&unbound.stderr).contains("--structure"));
}

#[test]
fn rebuild_recomputes_the_read_models_and_catches_a_snapshot_that_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    let first = tracker(&["rebuild"], dir.path());
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout(&first).contains("no usable snapshot before"), "{}", stdout(&first));

    let again = tracker(&["rebuild", "--json"], dir.path());
    assert_eq!(again.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let views = report["views"].as_array().unwrap();
    assert_eq!(views.len(), 6);
    assert!(views.iter().all(|v| v["sameFigures"] == true), "{report}");

    let budget = dir.path().join("snapshots/budget.json");
    let text = std::fs::read_to_string(&budget).unwrap();
    std::fs::write(&budget, text.replacen("\"serviceDone\":\"", "\"serviceDone\":\"9", 1)).unwrap();
    let caught = tracker(&["rebuild"], dir.path());
    assert_eq!(caught.status.code(), Some(1), "{}", stdout(&caught));
    assert!(stdout(&caught).contains("DIFFERENT"), "{}", stdout(&caught));
    assert_eq!(tracker(&["rebuild"], dir.path()).status.code(), Some(0), "the snapshot was replaced");
}

fn report(data: &Path, args: &[&str]) -> Output {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    tracker(&all, data)
}

#[test]
fn the_demo_replayed_at_several_dates_is_stable_and_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    for date in ["2021-06-30", "2021-12-31", "2022-12-31"] {
        let first = report(dir.path(), &["--as-of", date]);
        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        let second = report(dir.path(), &["--as-of", date]);
        assert_eq!(first.stdout, second.stdout, "replaying twice gives the same bytes");
        let json: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
        assert_eq!(json["header"]["intact"], true);
        insta::assert_json_snapshot!(format!("demo_report_{date}"), json, {
            ".header.logDigest" => "[digest]",
            ".corrections[].recordedAt" => "[recorded]",
            // The saga's events interleave with the seeding's: their places may vary.
            ".corrections[].position" => "[position]",
            ".corrections[].version" => "[version]",
            ".header.logPosition" => "[position]",
        });
    }
    // The header quotes the digest `tracker verify` prints.
    let verify = stdout(&tracker(&["verify"], dir.path()));
    let json: serde_json::Value = serde_json::from_slice(&report(dir.path(), &[]).stdout).unwrap();
    let digest = format!("{}:{}", json["header"]["logPosition"], json["header"]["logDigest"].as_str().unwrap());
    assert!(verify.contains(&digest), "{verify} vs {digest}");

    let csv = report(dir.path(), &["--as-of", "2021-12-31", "--format", "csv"]);
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.starts_with('\u{feff}') && text.contains("OPCO Uniformation;TOTAL;;4400000,00;"), "{text}");
    let plain =
        String::from_utf8(report(dir.path(), &["--as-of", "2021-12-31", "--format", "csv", "--plain-csv"]).stdout)
            .unwrap();
    assert!(plain.contains("OPCO Uniformation,TOTAL,,4400000.00,"), "{plain}");

    let explain = tracker(
        &[
            "explain",
            "--as-of",
            "2021-12-31",
            "--convention",
            "ANCT-UNIFORMATION-2021",
            "--envelope",
            "Frais annexes",
            "--figure",
            "paid",
        ],
        dir.path(),
    );
    let events: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert!(events.as_array().unwrap().iter().all(|e| e["eventType"] == "PaymentRecorded"), "{events}");
    assert!(!events.as_array().unwrap().is_empty(), "the reimbursed claims were paid in November");

    // A partner's figure: what ANCT paid Uniformation (no envelope), its two instalments.
    let received = tracker(&["explain", "--convention", "ANCT-UNIFORMATION-2021", "--figure", "received"], dir.path());
    let events: serde_json::Value = serde_json::from_slice(&received.stdout).unwrap();
    let effects: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["effect"].as_str().unwrap()).collect();
    assert_eq!(effects, ["+780000.00", "+1300000.00"], "{events}");
    assert!(events.as_array().unwrap().iter().all(|e| e["eventType"] == "DisbursementPaid"));
    // A funder's part: its moves by the financing plans add up to its figure in the
    // report, for the whole convention (every envelope) and for one envelope.
    let whole: serde_json::Value = serde_json::from_slice(&report(dir.path(), &[]).stdout).unwrap();
    let convention =
        whole["conventions"].as_array().unwrap().iter().find(|c| c["code"] == "ANCT-UNIFORMATION-2021").unwrap();
    let money = |v: &serde_json::Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    let sum_of = |args: &[&str]| -> rust_decimal::Decimal {
        let out = tracker(args, dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["effect"].as_str().unwrap().trim_start_matches('+').parse::<rust_decimal::Decimal>().unwrap())
            .sum()
    };
    for funder in convention["funders"].as_array().unwrap() {
        let name = funder["funder"].as_str().unwrap();
        for (figure, field) in [("committed", "committed"), ("paid", "paid"), ("allocated", "allocated")] {
            let explained =
                sum_of(&["explain", "--convention", "ANCT-UNIFORMATION-2021", "--figure", figure, "--funder", name]);
            assert_eq!(explained, money(&funder[field]), "{name} {figure}");
        }
    }
    let annex = convention["envelopes"].as_array().unwrap().iter().find(|e| e["name"] == "Frais annexes").unwrap();
    let anct = annex["funders"].as_array().unwrap().iter().find(|f| f["funder"] == "ANCT").unwrap();
    let explained = sum_of(&[
        "explain",
        "--convention",
        "ANCT-UNIFORMATION-2021",
        "--envelope",
        "Frais annexes",
        "--figure",
        "paid",
        "--funder",
        "anct",
    ]);
    assert_eq!(explained, money(&anct["paid"]), "annex costs are ANCT's alone");
    let unknown = tracker(
        &["explain", "--convention", "ANCT-UNIFORMATION-2021", "--figure", "paid", "--funder", "Région Bretagne"],
        dir.path(),
    );
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("does not fund ANCT-UNIFORMATION-2021: its funders are ANCT, Uniformation"), "{said}");
    // A fiscal year's figure is explained by that year's events: their effects add up to
    // the year's committed net of releases, summed over the funders, in the report.
    let whole: serde_json::Value = serde_json::from_slice(&report(dir.path(), &[]).stdout).unwrap();
    let uniformation =
        whole["conventions"].as_array().unwrap().iter().find(|c| c["code"] == "ANCT-UNIFORMATION-2021").unwrap();
    let dec = |v: &serde_json::Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
    for year in [2021, 2022] {
        let want: rust_decimal::Decimal = uniformation["fiscalYears"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["year"] == year && f["envelope"] == "Formations certifiantes")
            .map(|f| dec(&f["committed"]) - dec(&f["released"]))
            .sum();
        let explained = tracker(
            &[
                "explain",
                "--convention",
                "ANCT-UNIFORMATION-2021",
                "--envelope",
                "Formations certifiantes",
                "--figure",
                "committed",
                "--year",
                &year.to_string(),
            ],
            dir.path(),
        );
        let events: serde_json::Value = serde_json::from_slice(&explained.stdout).unwrap();
        let events = events.as_array().unwrap();
        assert!(events.iter().all(|e| e["businessDate"].as_str().unwrap().starts_with(&year.to_string())));
        let sum: rust_decimal::Decimal = events
            .iter()
            .filter_map(|e| e["effect"].as_str())
            .filter(|e| !e.starts_with('='))
            .map(|e| e.trim_start_matches('+').parse::<rust_decimal::Decimal>().unwrap())
            .sum();
        assert_eq!(sum, want, "{year}: the year's events explain its committed net of releases");
    }
    // The report's fiscal years and funders are in the CSV too.
    assert!(plain.contains("ANCT-UNIFORMATION-2021,Frais annexes,ANCT,"), "{plain}");
    assert!(plain.contains("ANCT-UNIFORMATION-2021,2021,TOTAL,Uniformation,"), "{plain}");
}

#[test]
fn a_report_of_a_tampered_log_says_so_in_its_header() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    let conn = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER events_are_never_updated;
         UPDATE events SET record = CAST(replace(CAST(record AS TEXT), '\"amount\":\"', '\"amount\":\"9') AS BLOB)
           WHERE position = 40;",
    )
    .unwrap();
    drop(conn);
    let out = report(dir.path(), &["--as-of", "2022-12-31"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["header"]["intact"], false, "{}", json["header"]);
    assert!(json["header"]["firstBreak"].as_str().unwrap().contains("position 40"), "{}", json["header"]);
}

#[test]
fn a_scenario_seeded_whole_is_not_seeded_again_and_without_its_marker_every_step_is_found_applied() {
    let dir = tempfile::tempdir().unwrap();
    let first = stdout(&tracker(&["seed", "--scenario", "sample"], dir.path()));
    assert!(!first.contains("(0 new events"), "{first}");
    let marker = dir.path().join("seeded-sample");
    let head: u64 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    let events = stdout(&tracker(&["events"], dir.path())).lines().count() as u64;
    assert_eq!(head, events, "the marker remembers the log position the seeding reached");
    assert!(stdout(&tracker(&["seed", "--scenario", "sample"], dir.path())).contains("(0 new events"));
    // Without the marker, each step is looked up and found applied: still nothing written.
    std::fs::remove_file(&marker).unwrap();
    assert!(stdout(&tracker(&["seed", "--scenario", "sample"], dir.path())).contains("(0 new events"));
    assert_eq!(stdout(&tracker(&["events"], dir.path())).lines().count() as u64, events);
    assert!(marker.exists(), "written again once every step is known to be there");
}

#[test]
fn printing_commands_end_quietly_when_their_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    // The sample's events print 160 KB, more than a pipe holds: the writer meets the closed
    // pipe (`verify` and `replay` print too little here to meet it, and share the fix).
    let args = ["events"];
    // `tracker … | head -1`: read one line, then close the pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracker"))
        .args(args)
        .arg("--data")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "{args:?} printed something");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
}

#[test]
fn verify_checks_the_snapshots_beside_the_log_and_fails_on_an_edited_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    assert_eq!(tracker(&["rebuild"], dir.path()).status.code(), Some(0));
    let ok = tracker(&["verify", "--json"], dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["snapshots"].as_array().map(Vec::len), Some(6), "{report}");

    // An envelope's figures edited on disk: the snapshot's position and hash still match
    // the log, only a fold of the log tells it apart.
    let budget = dir.path().join("snapshots/budget.json");
    let text = std::fs::read_to_string(&budget).unwrap();
    std::fs::write(&budget, text.replacen("\"committed\":\"", "\"committed\":\"1", 1)).unwrap();
    let caught = tracker(&["verify"], dir.path());
    assert_eq!(caught.status.code(), Some(1), "{}", stdout(&caught));
    let out = stdout(&caught);
    assert!(
        out.contains("INTACT") && out.contains("SNAPSHOTS ALTERED") && out.contains("the budget snapshot"),
        "{out}"
    );
    let json = tracker(&["verify", "--json"], dir.path());
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let budget_view = report["snapshots"].as_array().unwrap().iter().find(|v| v["view"] == "budget").unwrap().clone();
    assert_eq!(budget_view["sameFigures"], false, "{report}");
    // `rebuild` writes it again from the log; then verify is content again.
    assert_eq!(tracker(&["rebuild"], dir.path()).status.code(), Some(1));
    assert_eq!(tracker(&["verify"], dir.path()).status.code(), Some(0));
}

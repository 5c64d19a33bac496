//! `tracker import` as a user runs it: a file interrupted by SIGKILL halfway, then
//! imported again, leaves every line in the log exactly once; a third import finds
//! everything already there; the hash chains verify.

use scenarios::files::{files, write_files};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use store::EventStore;

fn tracker(args: &[&str], data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tracker"));
    c.args(args).arg("--data").arg(data).env("RUST_LOG", "warn");
    c
}

fn count(log: &store::SqliteStore, event_type: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut n = 0;
        let mut after = 0;
        loop {
            let page = log.read_all(after, 10_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            n += page.iter().filter(|e| e.event_type == event_type).count();
        }
        n
    })
}

#[test]
fn a_file_interrupted_by_sigkill_then_imported_again_has_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(tracker(&["seed", "--scenario", "sample"], &data).status().unwrap().success());
    let aidants = 1_500;
    let written = write_files(&files(9, 40, aidants, 0), &dir.path().join("files"), |_| false).unwrap();
    let [structures, sessions, habilitations, _purchases] = &written[..] else { panic!("four files") };
    for (kind, path) in [structures, sessions] {
        let out = tracker(&["import", kind.name(), path.to_str().unwrap()], &data).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let path = habilitations.1.to_str().unwrap();
    let log = store::SqliteStore::open_read_only(data.join(app::LOG_FILE)).unwrap();
    let before = *log.head().borrow();
    const STEPS: [&str; 5] =
        ["HabilitationRequested", "EligibilityValidated", "RegisteredToSession", "TrainingCompleted", "Habilitated"];
    // The sample scenario's own aidants.
    let seeded: Vec<usize> = STEPS.iter().map(|e| count(&log, e)).collect();

    // Killed once some lines are in the log, well before the end (5 steps of 1 500 aidants).
    let mut child = tracker(&["import", "habilitations", path], &data).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reopen = || store::SqliteStore::open_read_only(data.join(app::LOG_FILE)).unwrap();
    loop {
        let head = *reopen().head().borrow();
        if head > before + 500 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the import ended before it could be killed");
        assert!(Instant::now() < deadline, "the import wrote nothing in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted = *reopen().head().borrow() - before;
    assert!(interrupted < 5 * aidants as u64, "killed halfway ({interrupted} events written)");

    // Again: what was written is already there, the rest is accepted; nothing refused.
    let report = dir.path().join("report.csv");
    let out = tracker(&["import", "habilitations", path, "--json", "--report", report.to_str().unwrap()], &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["refused"], 0, "{json}");
    assert_eq!(json["accepted"].as_u64().unwrap() + json["alreadyThere"].as_u64().unwrap(), 5 * aidants as u64);
    assert!(json["alreadyThere"].as_u64().unwrap() > 0, "the lines written before the kill were found");
    assert!(std::fs::read_to_string(&report).unwrap().contains("Refusées;0"));

    // Every line once.
    let log = reopen();
    for (event, seeded) in STEPS.iter().zip(seeded) {
        assert_eq!(count(&log, event) - seeded, aidants, "{event}");
    }
    // A third time: nothing new.
    let head = *log.head().borrow();
    let out = tracker(&["import", "habilitations", path, "--json"], &data).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["alreadyThere"].as_u64(), Some(5 * aidants as u64));
    assert_eq!(*reopen().head().borrow(), head);
    assert!(tracker(&["verify"], &data).stdout(Stdio::null()).status().unwrap().success());
}

#[test]
fn the_template_the_dry_run_and_an_unreadable_file_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = tracker(&["import", "--template", "habilitations"], &data).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "\u{feff}SIRET;Référence aidant;Étape;Date;Référence session;Moyen;Motif\r\n"
    );
    assert!(tracker(&["seed", "--scenario", "sample"], &data).status().unwrap().success());
    let written = write_files(&files(8, 3, 0, 0), &dir.path().join("files"), |_| true).unwrap();
    let structures = written[0].1.to_str().unwrap();
    let head = || *store::SqliteStore::open_read_only(data.join(app::LOG_FILE)).unwrap().head().borrow();
    let before = head();
    let out = tracker(&["import", "structures", structures, "--dry-run"], &data).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Seraient acceptées") && text.contains("XLSX"), "{text}");
    assert_eq!(head(), before, "a dry run writes nothing");

    std::fs::write(dir.path().join("bad.csv"), "SIRET;Nom\n1;2\n").unwrap();
    let out = tracker(&["import", "structures", dir.path().join("bad.csv").to_str().unwrap()], &data).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ligne 1, colonne « Type »"), "{err}");
    assert_eq!(head(), before);
}

#[test]
fn a_file_is_recorded_by_its_digest_never_by_its_name() {
    // Given a partner's file named after a person,
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(tracker(&["seed", "--scenario", "sample"], &data).status().unwrap().success());
    let written = write_files(&files(7, 3, 0, 0), &dir.path().join("files"), |_| false).unwrap();
    let named = dir.path().join("structures-de-marie-dupont.csv");
    std::fs::copy(&written[0].1, &named).unwrap();
    // when it is imported from the command line,
    let out = tracker(&["import", "structures", named.to_str().unwrap()], &data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // then the events name the file by the start of its SHA-256, and the name is nowhere in the log.
    let log = std::fs::read(data.join(app::LOG_FILE)).unwrap();
    let events = tracker(&["events"], &data).output().unwrap();
    let events = String::from_utf8(events.stdout).unwrap();
    assert!(events.contains("ligne de commande, fichier sha256 "), "the actor names the file's digest");
    assert!(!events.contains("marie-dupont"));
    assert!(!log.windows(b"marie-dupont".len()).any(|w| w == b"marie-dupont"));
}

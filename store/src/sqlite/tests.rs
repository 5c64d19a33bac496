use super::*;
use crate::ExpectedVersion::{Exact, NoStream};
use crate::conformance::request;

/// A writer on a new log, without its thread.
fn writer(path: &Path) -> Writer {
    let mut conn = Connection::open(path).unwrap();
    configure(&conn).unwrap();
    prepare_schema(&mut conn).unwrap();
    Writer {
        conn,
        head: Head { position: 0, log_hash: ChainHash::GENESIS },
        tips: HashMap::new(),
        index: Arc::default(),
        record: Vec::new(),
        unit_tips: Vec::new(),
        fault: Fault::default(),
    }
}

fn count(path: &Path, table: &str) -> u64 {
    Connection::open(path).unwrap().query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn a_refused_unit_leaves_no_trace_while_the_rest_of_its_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite3");
    let mut w = writer(&path);
    let refused = vec![request("g-b", NoStream, 2), request("g-a", NoStream, 1)];
    let units =
        [vec![request("g-a", NoStream, 1)], refused, vec![request("g-c", NoStream, 1), request("g-a", Exact(1), 1)]];
    let results = w.write_group(&units).unwrap();
    assert_eq!(results[0].as_ref().unwrap()[0].last_position, 1);
    assert!(
        matches!(&results[1], Err(StoreError::WrongExpectedVersion { stream, actual: 1, .. }) if stream == "g-a"),
        "{:?}",
        results[1]
    );
    let last = results[2].as_ref().unwrap();
    assert_eq!((last[0].first_position, last[1].first_position, last[1].first_version), (2, 3, 2));
    drop(w);
    assert_eq!((count(&path, "events"), count(&path, "streams")), (3, 2), "no event and no name of g-b");
    let report = verify(&path, None).unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[test]
fn a_unit_that_breaks_a_constraint_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite3");
    let mut w = writer(&path);
    // A row at position 3 that the writer does not know of: the unit that reaches it
    // breaks the primary key, and the group is written again one unit at a time.
    w.conn.execute("INSERT INTO events (position, record) VALUES (3, X'00')", []).unwrap();
    let units = [vec![request("k-a", NoStream, 1)], vec![request("k-b", NoStream, 1), request("k-c", NoStream, 1)]];
    let results = w.write_group(&units).unwrap();
    assert_eq!(results[0].as_ref().unwrap()[0].last_position, 1);
    assert!(
        matches!(&results[1], Err(StoreError::Backend { what: m, .. }) if m.contains("breaks a constraint")),
        "{:?}",
        results[1]
    );
    assert_eq!(w.head.position, 1);
    drop(w);
    assert_eq!((count(&path, "events"), count(&path, "streams")), (2, 1), "k-b was rolled back with k-c");
}

//! The backend's own tests. Those named `stand_in_…` run its client-side logic against
//! the [stand-in](super::stand_in) of KurrentDB's gRPC service, not against the server.

use super::stand_in::{Fault, StandIn};
use super::wire::{Wire, WireSettings};
use super::*;
use crate::conformance::request;
use crate::{ExpectedVersion, verify_store};

#[test]
fn recognises_its_connection_strings() {
    assert!(is_kurrent_url("kurrentdb://localhost:2113?tls=false"));
    assert!(is_kurrent_url("kurrentdb+discover://node1:2113,node2:2113?tls=true"));
    assert!(is_kurrent_url("kurrent+discover://node1:2113,node2:2113?tls=true"));
    assert!(!is_kurrent_url("data/events.sqlite3"));
    assert!(!is_kurrent_url("postgres://localhost"));
}

#[tokio::test]
async fn a_refused_url_is_reported_without_its_password() {
    for url in ["kurrentdb://admin:s3cret@localhost:2113?tls=maybe", "kurrent+discover://admin:s3cret@:notaport"] {
        let Err(err) = KurrentStore::connect(url).await else { panic!("{url} is refused") };
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("admin:***@"), "{err}");
    }
    assert_eq!(crate::scrub_password("failed: s3cret", "kurrentdb://a:s3cret@h:2113"), "failed: ***");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_without_its_password() {
    let url = "kurrentdb://admin:s3cret@127.0.0.1:1?tls=false";
    let Err(err) = KurrentStore::connect(url).await else { panic!("nothing listens on port 1") };
    let text = err.to_string();
    assert!(!text.contains("s3cret") && text.contains("admin:***@"), "{text}");
}

#[test]
fn versions_start_at_one_where_revisions_start_at_zero() {
    assert_eq!(version_of_revision(0), 1);
    assert_eq!(expected_revision(0), -1);
    assert_eq!(expected_revision(3), 2);
}

#[test]
fn metadata_round_trips_and_keeps_microseconds() {
    let meta = TrackerMetadata {
        command_id: CommandId::new_random(),
        actor: "opco:bob".into(),
        correlation_id: CorrelationId::new_random(),
        causation_id: Some(EventId::new_random()),
        business_date: NaiveDate::from_ymd_opt(2021, 6, 1).unwrap(),
        schema_version: 1,
        recorded_at: 1_622_540_000_123_456,
        hash: ChainHash([7; 32]),
    };
    let json = serde_json::to_vec(&meta).unwrap();
    assert_eq!(serde_json::from_slice::<TrackerMetadata>(&json).unwrap(), meta);
}

#[tokio::test]
async fn a_malformed_url_is_refused_clearly() {
    let err = KurrentStore::connect("kurrentdb://").await.err().expect("refused");
    assert!(err.to_string().contains("KurrentDB"), "{err}");
}

/// The deadline of a call in these tests: short, so that a stall is seen quickly.
const TEST_DEADLINE: Duration = Duration::from_millis(400);

fn wire_to(stand_in: &StandIn, node: usize) -> Wire {
    let addr = stand_in.addr(node);
    Wire::new(WireSettings {
        secure: false,
        seeds: vec![(addr.ip().to_string(), addr.port() as u32)],
        tls: None,
        authorization: wire::basic_authorization("kurrentdb://admin:changeit@h:2113"),
        deadline: TEST_DEADLINE,
    })
}

/// A store on the stand-in: writes through its gRPC service (first to `node`), reads
/// from its log.
async fn store_on(stand_in: &StandIn, node: usize) -> KurrentStore {
    let writes = writes_for(wire_to(stand_in, node)).await.expect("the stand-in answers its version");
    KurrentStore::with(stand_in.reads(), writes).await.unwrap()
}

/// For the conformance suite: a fresh stand-in (kept for the test's life) and a store on it.
pub(crate) async fn stand_in_store() -> KurrentStore {
    let stand_in = Box::leak(Box::new(StandIn::start(1, "25.1.1.2045").await));
    store_on(stand_in, 0).await
}

/// The tracker's events of the stand-in's log, by stream.
fn tracker_events_of(stand_in: &StandIn, stream: &str) -> usize {
    stand_in.events().iter().filter(|e| e.stream == stream).count()
}

fn command_records(stand_in: &StandIn) -> usize {
    stand_in.events().iter().filter(|e| e.stream.starts_with(COMMAND_STREAM)).count()
}

#[tokio::test]
async fn stand_in_events_and_their_command_record_go_in_one_session_with_the_credentials() {
    let stand_in = StandIn::start(1, "25.1.1.2045").await;
    let store = store_on(&stand_in, 0).await;
    assert!(store.atomic_multi_stream());
    let parts = vec![request("a-1", ExpectedVersion::NoStream, 2), request("b-1", ExpectedVersion::NoStream, 1)];
    let out = store.append_all(parts.clone()).await.unwrap();
    assert_eq!(stand_in.sessions(), [1], "one call");
    assert_eq!((tracker_events_of(&stand_in, "a-1"), tracker_events_of(&stand_in, "b-1")), (2, 1));
    assert_eq!(command_records(&stand_in), 2, "one record per command, in the same transaction");
    assert_eq!(stand_in.authorization().as_deref(), Some("Basic YWRtaW46Y2hhbmdlaXQ="));
    assert!(out[0].first_position < out[0].last_position && out[0].last_position < out[1].first_position);
    // The records are found, with the events' positions.
    let found = store.find_command(parts[1].command_id).await.unwrap().unwrap();
    assert_eq!(found.outcome, AppendOutcome { duplicate: true, ..out[1].clone() });
}

#[tokio::test]
async fn stand_in_a_commit_whose_answer_comes_after_the_deadline_is_applied_once() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    // Given a leader that commits, then answers too late,
    stand_in.inject(Fault::CommitThenStall(Duration::from_secs(5)));
    let first = request("late-1", ExpectedVersion::NoStream, 2);
    // when the command is appended,
    let out = tokio::time::timeout(Duration::from_secs(4), store.append(first.clone()))
        .await
        .expect("the deadline ends the call")
        .unwrap();
    // then the log settles it: applied once, by this very call (not a duplicate), and not
    // sent again;
    assert!(!out.duplicate, "{out:?}");
    assert_eq!(tracker_events_of(&stand_in, "late-1"), 2);
    assert_eq!(stand_in.sessions(), [1]);
    // and the caller's own retry gets the same answer, marked duplicate, writing nothing.
    let again = store.append(first).await.unwrap();
    assert_eq!(again, AppendOutcome { duplicate: true, ..out });
    assert_eq!(tracker_events_of(&stand_in, "late-1"), 2);
    assert_eq!(command_records(&stand_in), 1);
}

#[tokio::test]
async fn stand_in_a_commit_then_a_dropped_connection_is_applied_once_and_the_next_call_reconnects() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    stand_in.inject(Fault::CommitThenDrop);
    let out = store.append(request("drop-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    assert!(!out.duplicate);
    assert_eq!(tracker_events_of(&stand_in, "drop-1"), 1);
    // The connection is made again for the next write.
    let next = store.append(request("drop-1", ExpectedVersion::Exact(1), 1)).await.unwrap();
    assert_eq!((next.first_version, next.duplicate), (2, false));
    assert_eq!(stand_in.sessions(), [2]);
}

#[tokio::test]
async fn stand_in_an_unavailable_node_or_a_stall_without_commit_is_tried_again() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    stand_in.inject(Fault::Unavailable);
    stand_in.inject(Fault::Stall(Duration::from_secs(5)));
    let out = tokio::time::timeout(Duration::from_secs(4), store.append(request("un-1", ExpectedVersion::NoStream, 1)))
        .await
        .expect("a stalled leader does not hang the request")
        .unwrap();
    assert_eq!((out.first_version, out.duplicate), (1, false));
    assert_eq!(tracker_events_of(&stand_in, "un-1"), 1);
    assert_eq!(stand_in.sessions(), [3], "unavailable, stalled, then written");
}

#[tokio::test]
async fn stand_in_a_leader_that_never_answers_ends_in_a_clear_error_without_writing() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    for _ in 0..WRITE_ATTEMPTS {
        stand_in.inject(Fault::Stall(Duration::from_secs(5)));
    }
    let err =
        tokio::time::timeout(Duration::from_secs(8), store.append(request("stall-1", ExpectedVersion::NoStream, 1)))
            .await
            .expect("bounded by the deadlines")
            .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no answer") && text.contains("same command id"), "{text}");
    assert_eq!(tracker_events_of(&stand_in, "stall-1"), 0);
}

#[tokio::test]
async fn stand_in_a_follower_sends_the_write_to_the_leader_it_names() {
    let stand_in = StandIn::start(2, "25.1.1").await;
    stand_in.set_leader(1);
    // Seeded with the follower only,
    let store = store_on(&stand_in, 0).await;
    let out = store.append(request("lead-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    assert_eq!((out.first_version, out.duplicate), (1, false));
    // the write was refused by the follower, done by the leader, once;
    assert_eq!(stand_in.sessions(), [1, 1]);
    assert_eq!(tracker_events_of(&stand_in, "lead-1"), 1);
    // and the next goes straight to the leader.
    store.append(request("lead-1", ExpectedVersion::Exact(1), 1)).await.unwrap();
    assert_eq!(stand_in.sessions(), [1, 2]);
}

#[tokio::test]
async fn stand_in_two_writers_of_one_command_apply_it_once() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    let command = request("twin-1", ExpectedVersion::NoStream, 2);
    let (x, y) = tokio::join!(a.append(command.clone()), b.append(command.clone()));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(tracker_events_of(&stand_in, "twin-1"), 2, "applied once");
    assert_eq!(command_records(&stand_in), 1);
    assert_eq!((x.first_version, x.last_version), (y.first_version, y.last_version));
    assert!(x.duplicate != y.duplicate, "one applied it, the other got its answer: {x:?} {y:?}");
}

#[tokio::test]
async fn stand_in_a_lost_race_is_a_conflict_decided_again_on_the_new_tip() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    a.append(request("race-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    let (x, y) = tokio::join!(
        a.append(request("race-1", ExpectedVersion::Exact(1), 1)),
        b.append(request("race-1", ExpectedVersion::Exact(1), 1))
    );
    let wins = [&x, &y].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{x:?} {y:?}");
    let loser = match (x, y) {
        (Err(e), _) | (_, Err(e)) => e,
        _ => unreachable!(),
    };
    assert!(matches!(loser, StoreError::WrongExpectedVersion { actual: 2, .. }), "{loser:?}");
    // `Any` is written on the new tip instead, and the chain still holds.
    let (x, y) = tokio::join!(
        a.append(request("race-1", ExpectedVersion::Any, 1)),
        b.append(request("race-1", ExpectedVersion::Any, 1))
    );
    assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
    assert_eq!(a.read_stream("race-1").await.unwrap().len(), 4);
    assert!(verify_store(&a, false).await.unwrap().is_intact());
}

#[tokio::test]
async fn stand_in_other_applications_events_are_skipped_not_corrupt() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    let first = store.append(request("mix-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    // Other applications' events: custom metadata of theirs, none, not even JSON; many
    // of them, more than a page.
    for i in 0..3000 {
        let metadata: &[u8] = match i % 3 {
            0 => br#"{"app":"billing","$correlationId":"x"}"#,
            1 => b"",
            _ => b"\x00\x01binary",
        };
        stand_in.append_foreign(&format!("orders-{}", i % 7), "OrderPlaced", metadata);
    }
    let second = store.append(request("mix-1", ExpectedVersion::Exact(1), 1)).await.unwrap();
    stand_in.append_foreign("orders-1", "OrderShipped", br#"{"app":"billing"}"#);
    // Reads skip them: a page of theirs is not the end of the log.
    let all = store.read_all(0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [first.first_position, second.first_position]);
    let page = store.read_all(first.last_position, 1).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), [second.first_position]);
    assert!(store.read_all(second.last_position, 10).await.unwrap().is_empty());
    // verify reads every tracker event, and only them;
    let report = verify_store(&store, false).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    // the head is the last tracker event, not theirs, so a follower does not spin.
    let fresh = store_on(&stand_in, 0).await;
    assert_eq!(*fresh.head().borrow(), second.last_position);
    use futures::StreamExt as _;
    let followed: Vec<_> = crate::follow(Arc::new(fresh), 0).take(2).collect().await;
    assert_eq!(followed.len(), 2);
    // A tracker stream holding a foreign event is reported, though.
    stand_in.append_foreign("mix-1", "Odd", b"");
    let err = store.read_stream("mix-1").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test]
async fn stand_in_the_head_follows_another_writer() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    let out = a.append(request("head-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    let mut head = b.head();
    tokio::time::timeout(Duration::from_secs(5), head.wait_for(|h| *h >= out.last_position))
        .await
        .expect("the poll moves the head")
        .unwrap();
}

#[tokio::test]
async fn stand_in_a_truncated_stream_is_refused_not_folded() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    store.append(request("cut-1", ExpectedVersion::NoStream, 3)).await.unwrap();
    assert_eq!(store.read_stream_from("cut-1", 2).await.unwrap().len(), 2);
    stand_in.truncate_front("cut-1", 1);
    let err = store.read_stream("cut-1").await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // From where the stream still holds every event, it reads.
    assert_eq!(store.read_stream_from("cut-1", 2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn stand_in_an_older_server_is_read_but_never_written() {
    let stand_in = StandIn::start(1, "24.10.5").await;
    let store = store_on(&stand_in, 0).await;
    assert!(!store.atomic_multi_stream());
    let err = store.append(request("old-1", ExpectedVersion::NoStream, 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(SERVER_TOO_OLD)), "{err:?}");
    assert!(err.to_string().contains("25.1.1"), "{err}");
    assert!(stand_in.events().is_empty());
    assert!(store.read_all(0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn stand_in_bad_records_are_refused_and_write_nothing() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    let mut bad = request("bad-1", ExpectedVersion::NoStream, 1);
    bad.events[0].event_type = "has spaces".into();
    let err = store.append_all(vec![request("good-1", ExpectedVersion::NoStream, 1), bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(stand_in.events().is_empty(), "all or nothing");
}

#[tokio::test]
async fn stand_in_a_fresh_store_finds_an_event_by_its_position_for_a_snapshot() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    let a = store.append(request("snap-1", ExpectedVersion::NoStream, 2)).await.unwrap();
    stand_in.append_foreign("orders-9", "OrderPlaced", b"");
    let b = store.append(request("snap-1", ExpectedVersion::Exact(2), 1)).await.unwrap();
    // A process started later knows no position yet, as a read model's runner at start-up.
    let fresh = store_on(&stand_in, 0).await;
    let at = fresh.read_at(a.last_position).await.unwrap().expect("the snapshot's event is found");
    assert_eq!((at.stream.as_str(), at.version), ("snap-1", 2));
    // Between two positions, nothing is found (a position KurrentDB never gave).
    assert!(fresh.read_at(a.last_position + 1).await.unwrap().is_none());
    // And the log resumes right after it.
    let next = fresh.read_all(a.last_position, 10).await.unwrap();
    assert_eq!(next.iter().map(|e| e.position).collect::<Vec<_>>(), [b.first_position]);
}

#[tokio::test]
async fn stand_in_a_seal_catches_a_deleted_stream_and_a_cut_tail() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    store.append(request("seal-1", ExpectedVersion::NoStream, 2)).await.unwrap();
    store.append(request("seal-2", ExpectedVersion::NoStream, 1)).await.unwrap();
    store.append(request("seal-3", ExpectedVersion::NoStream, 1)).await.unwrap();
    // Given a seal of the intact log,
    let (report, checked) = store.verify(None).await.unwrap();
    assert!(report.is_intact() && checked.is_none(), "{report:?}");
    let seal = store.seal(&report).await.unwrap();
    assert_eq!((seal.position, seal.events), (report.head_position, 4));
    // verifications check against it, and later events keep it intact;
    store.append(request("seal-1", ExpectedVersion::Exact(2), 1)).await.unwrap();
    let (report, checked) = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(checked, Some(seal.clone()));
    // a stream deleted before it is found,
    stand_in.truncate_front("seal-2", 1);
    let (report, _) = store.verify(None).await.unwrap();
    let reason = report.first_break.expect("a deleted stream breaks the seal").reason;
    assert!(reason.contains("digest"), "{reason}");
    // and so is a tail cut before it.
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    store.append(request("tail-1", ExpectedVersion::NoStream, 1)).await.unwrap();
    store.append(request("tail-2", ExpectedVersion::NoStream, 1)).await.unwrap();
    let (report, _) = store.verify(None).await.unwrap();
    store.seal(&report).await.unwrap();
    stand_in.truncate_front("tail-2", 1);
    let (report, _) = store.verify(None).await.unwrap();
    let reason = report.first_break.expect("a cut tail breaks the seal").reason;
    assert!(reason.contains("removed from its end"), "{reason}");
}

#[tokio::test]
async fn stand_in_a_stream_longer_than_a_page_is_read_whole() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    store.append(request("long-1", ExpectedVersion::NoStream, 5000)).await.unwrap();
    let events = store.read_stream("long-1").await.unwrap();
    assert_eq!(events.len(), 5000);
    assert!(events.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1));
    assert_eq!(store.read_stream_from("long-1", 4990).await.unwrap().len(), 11);
}

/// A store on the server `KURRENTDB_URL` names, or `None` after saying SKIPPED.
async fn live(test: &str) -> Option<KurrentStore> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(KurrentStore::connect(&url).await.expect("KURRENTDB_URL is reachable")),
        Err(_) => {
            eprintln!("SKIPPED: {test} (a live KurrentDB test: set KURRENTDB_URL=kurrentdb://host:2113?tls=false)");
            None
        }
    }
}

#[tokio::test]
async fn live_the_server_takes_writes_and_reads_them_back_as_the_tracker_wrote_them() {
    let Some(store) = live("live_the_server_takes_writes_and_reads_them_back_as_the_tracker_wrote_them").await else {
        return;
    };
    assert!(store.atomic_multi_stream(), "the server at KURRENTDB_URL is older than 25.1.1");
    let ns = Uuid::new_v4().simple().to_string();
    let parts = vec![
        request(&format!("live-{ns}a"), ExpectedVersion::NoStream, 2),
        request(&format!("live-{ns}b"), ExpectedVersion::NoStream, 1),
    ];
    let out = store.append_all(parts.clone()).await.unwrap();
    // What the v2 append wrote, the v1 reads give back: metadata, payload, positions.
    let events = store.read_stream(&parts[0].stream).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].metadata.command_id, parts[0].command_id);
    assert_eq!(events[0].payload, parts[0].events[0].payload);
    assert_eq!((events[0].position, events[1].position), (out[0].first_position, out[0].last_position));
    // The records are there, and a retry is answered.
    let again = store.append_all(parts.clone()).await.unwrap();
    assert!(again.iter().all(|o| o.duplicate));
    // A process that never saw these positions finds them where they are.
    let url = std::env::var(URL_VAR).unwrap();
    let fresh = KurrentStore::connect(&url).await.unwrap();
    let at = fresh.read_at(out[1].first_position).await.unwrap().expect("the event is at its position");
    assert_eq!(at.stream, parts[1].stream);
    let next = fresh.read_all(out[0].first_position, 2).await.unwrap();
    assert_eq!(next.iter().map(|e| e.position).collect::<Vec<_>>(), [out[0].last_position, out[1].first_position]);
}

#[tokio::test]
async fn live_a_seal_is_written_and_checked() {
    let Some(store) = live("live_a_seal_is_written_and_checked").await else { return };
    let (report, _) = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    if report.events > 0 {
        let seal = store.seal(&report).await.unwrap();
        let (again, checked) = store.verify(None).await.unwrap();
        assert!(again.is_intact(), "{again:?}");
        assert_eq!(checked.map(|s| s.position), Some(seal.position));
    }
}

#[tokio::test]
async fn stand_in_an_unknown_outcome_that_cannot_be_settled_says_a_retry_is_safe_and_the_retry_applies_nothing() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    // Given a commit whose answer is lost, after which the log cannot be read,
    stand_in.inject(Fault::CommitThenStallAndReadsFail(Duration::from_secs(5)));
    let command = request("lost-1", ExpectedVersion::NoStream, 2);
    // the append says so, and that a retry is safe;
    let err = store.append(command.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("outcome is unknown") && text.contains("same command id"), "{text}");
    // once the log reads again, the caller's retry gets the answer, and nothing is written twice.
    stand_in.reads_back();
    let again = store.append(command).await.unwrap();
    assert!(again.duplicate && again.first_version == 1, "{again:?}");
    assert_eq!(tracker_events_of(&stand_in, "lost-1"), 2);
    assert_eq!(stand_in.sessions(), [1]);
}

#[tokio::test]
async fn stand_in_one_replica_at_a_time_holds_a_lease_and_only_it_saves_the_checkpoint() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    let (a, b) = (a.replica_state().expect("shared state"), b.replica_state().expect("shared state"));
    let (ra, rb) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_millis(300);
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap());
    assert!(!b.acquire_lease("saga", rb, ttl).await.unwrap(), "held by A");
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap(), "A renews it");
    assert!(a.save_checkpoint("saga", ra, 7).await.unwrap());
    assert!(!b.save_checkpoint("saga", rb, 3).await.unwrap(), "B does not hold it: nothing saved");
    assert_eq!(b.load_checkpoint("saga").await.unwrap(), 7);
    // While A renews, B never takes it, however long it waits.
    for _ in 0..4 {
        assert!(!b.acquire_lease("saga", rb, ttl).await.unwrap());
        tokio::time::sleep(ttl / 3).await;
        assert!(a.acquire_lease("saga", ra, ttl).await.unwrap());
    }
    // A stops renewing (it died): once B has seen the lease unchanged for its length, B
    // takes it, and A can no longer save nor take it back.
    assert!(!b.acquire_lease("saga", rb, ttl).await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert!(b.acquire_lease("saga", rb, ttl).await.unwrap());
    assert!(!a.save_checkpoint("saga", ra, 5).await.unwrap());
    assert!(!a.acquire_lease("saga", ra, ttl).await.unwrap());
    // Given up, it is free at once, with its checkpoint.
    b.release_lease("saga", rb).await.unwrap();
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap());
    assert_eq!(a.load_checkpoint("saga").await.unwrap(), 7);
    assert_eq!(a.load_checkpoint("other").await.unwrap(), 0);
    // None of it is in the tracker's log.
    assert!(a.tokens().await.unwrap().is_empty());
    let store = store_on(&stand_in, 0).await;
    assert!(store.read_all(0, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn stand_in_two_replicas_racing_for_a_free_lease_never_both_win() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    let (a, b) = (a.replica_state().unwrap(), b.replica_state().unwrap());
    let ttl = Duration::from_secs(5);
    let (x, y) =
        tokio::join!(a.acquire_lease("race", Uuid::new_v4(), ttl), b.acquire_lease("race", Uuid::new_v4(), ttl));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one holds it");
}

#[tokio::test]
async fn stand_in_a_token_revoked_through_one_replica_is_revoked_for_all() {
    use crate::SharedToken;
    let stand_in = StandIn::start(1, "25.1.1").await;
    let (a, b) = (store_on(&stand_in, 0).await, store_on(&stand_in, 0).await);
    let (a, b) = (a.replica_state().unwrap(), b.replica_state().unwrap());
    let id = Uuid::new_v4();
    let token = SharedToken { id, hash: "ab".repeat(32), record: "{}".into(), revoked_at: None };
    a.create_token(token.clone()).await.unwrap();
    assert_eq!(b.token_by_hash(&token.hash).await.unwrap(), Some(token.clone()));
    assert!(b.token_by_hash(&"cd".repeat(32)).await.unwrap().is_none());
    // A second token with the same hash is refused.
    let twin = SharedToken { id: Uuid::new_v4(), ..token.clone() };
    assert!(a.create_token(twin).await.is_err());
    assert!(b.revoke_token(id, chrono::Utc::now()).await.unwrap());
    assert!(a.token(id).await.unwrap().unwrap().revoked_at.is_some());
    assert!(a.token_by_hash(&token.hash).await.unwrap().unwrap().revoked_at.is_some());
    assert!(!a.revoke_token(id, chrono::Utc::now()).await.unwrap(), "already revoked");
    assert!(!a.revoke_token(Uuid::new_v4(), chrono::Utc::now()).await.unwrap(), "no such token");
    assert_eq!(a.tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn stand_in_an_older_server_shares_nothing() {
    let stand_in = StandIn::start(1, "24.10.5").await;
    assert!(store_on(&stand_in, 0).await.replica_state().is_none());
}

#[tokio::test]
async fn live_replicas_share_tokens_and_one_holds_a_lease() {
    use crate::SharedToken;
    let Some(a) = live("live_replicas_share_tokens_and_one_holds_a_lease").await else { return };
    let b = KurrentStore::connect(&std::env::var(URL_VAR).unwrap()).await.unwrap();
    let (a, b) = (a.replica_state().expect("a 25.1.1 server"), b.replica_state().expect("a 25.1.1 server"));
    let id = Uuid::new_v4();
    let token = SharedToken { id, hash: Uuid::new_v4().simple().to_string(), record: "{}".into(), revoked_at: None };
    a.create_token(token.clone()).await.unwrap();
    assert!(b.revoke_token(id, chrono::Utc::now()).await.unwrap());
    assert!(a.token_by_hash(&token.hash).await.unwrap().unwrap().revoked_at.is_some());
    let name = format!("live-{}", Uuid::new_v4().simple());
    let (ra, rb) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(a.acquire_lease(&name, ra, Duration::from_secs(5)).await.unwrap());
    assert!(!b.acquire_lease(&name, rb, Duration::from_secs(5)).await.unwrap());
    assert!(a.save_checkpoint(&name, ra, 42).await.unwrap());
    assert_eq!(b.load_checkpoint(&name).await.unwrap(), 42);
    a.release_lease(&name, ra).await.unwrap();
    assert!(b.acquire_lease(&name, rb, Duration::from_secs(5)).await.unwrap());
}

#[tokio::test]
async fn stand_in_verify_finds_a_command_record_deleted() {
    let stand_in = StandIn::start(1, "25.1.1").await;
    let store = store_on(&stand_in, 0).await;
    store.append(request("rec-1", ExpectedVersion::NoStream, 2)).await.unwrap();
    let lost = request("rec-2", ExpectedVersion::NoStream, 1);
    store.append_all(vec![lost.clone(), request("rec-3", ExpectedVersion::NoStream, 3)]).await.unwrap();
    let (report, _) = store.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    // A command record deleted would let a retry of its command apply it again.
    stand_in.delete(&format!("{COMMAND_STREAM}{}", lost.command_id));
    let (report, _) = store.verify(None).await.unwrap();
    let broken = report.first_break.expect("the missing record is found");
    assert_eq!((broken.stream.as_str(), broken.version), ("rec-2", 1));
    assert!(broken.reason.contains("has no record"), "{}", broken.reason);
}

//! One conformance suite, written once, run against every backend: in-memory and SQLite
//! always, PostgreSQL when `TRACKER_TEST_POSTGRES_URL` names a server (a fresh schema per
//! test; CI starts one), KurrentDB when `KURRENTDB_URL` does (each says so when it skips).
//!
//! Each test works in its own namespace of streams and reads the log from where it stood
//! when the test began, so the suite also runs on a shared server that holds other data.
//! Backends with gapless positions (memory, SQLite) are also held to exact positions.

use crate::*;
use chrono::NaiveDate;
use domain::{CommandId, CommandMeta, EventId};
use futures::StreamExt;
use serde_json::json;

fn event(command: CommandId, i: usize, n: u32) -> NewEvent {
    NewEvent {
        event_id: EventId::for_command(command, i),
        event_type: "Tested".into(),
        schema_version: 1,
        business_date: NaiveDate::from_ymd_opt(2021, 3, 15).unwrap(),
        payload: Payload::encode(&json!({ "n": n })).unwrap(),
        metadata: CommandMeta::new(command, "tester"),
    }
}

pub(crate) fn request(stream: &str, expected: ExpectedVersion, count: usize) -> AppendRequest {
    let command_id = CommandId::new_random();
    AppendRequest {
        stream: stream.into(),
        expected,
        command_id,
        fingerprint: format!("fp-{command_id}"),
        events: (0..count).map(|i| event(command_id, i, i as u32)).collect(),
    }
}

/// A backend under test, seen through one test's namespace.
pub(crate) struct Ctx {
    pub store: Arc<dyn EventStore>,
    /// Positions are 1, 2, 3… with no gap (memory, SQLite), not only increasing (KurrentDB).
    pub gapless: bool,
    ns: String,
    start: u64,
    /// The SQLite file, whose own `verify` also checks the append marks.
    file: Option<std::path::PathBuf>,
}

impl Ctx {
    pub fn new(store: Arc<dyn EventStore>, gapless: bool) -> Self {
        let start = *store.head().borrow();
        // Stream names are `<category>-<id>`: the namespace goes into the id part.
        Self { store, gapless, ns: uuid::Uuid::new_v4().simple().to_string(), start, file: None }
    }

    pub fn with_file(self, file: std::path::PathBuf) -> Self {
        Self { file: Some(file), ..self }
    }

    /// Verifies the whole log through the trait, and the file where there is one.
    async fn assert_verifies(&self) {
        let report = verify_store(self.store.as_ref(), self.gapless).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        if let Some(file) = &self.file {
            let report = crate::sqlite::verify(file, None).unwrap();
            assert!(report.is_intact(), "{report:?}");
        }
    }

    /// Whether the backend writes several streams atomically. One that does not must refuse
    /// such a write (never split it); the test that needs it is then skipped, and says so.
    async fn atomic_multi_stream(&self, test: &str) -> bool {
        if self.store.atomic_multi_stream() {
            return true;
        }
        let parts = vec![
            request(&self.s("un-a"), ExpectedVersion::NoStream, 1),
            request(&self.s("un-b"), ExpectedVersion::NoStream, 1),
        ];
        let err = self.store.append_all(parts).await.unwrap_err();
        assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
        assert!(self.mine().await.is_empty(), "a refused multi-stream append wrote nothing");
        eprintln!("SKIPPED: {test}: this backend refuses atomic appends to several streams ({err})");
        false
    }

    /// This test's stream called `name` (e.g. `s-a` becomes `s-<ns>a`).
    fn s(&self, name: &str) -> String {
        let (category, id) = name.split_once('-').unwrap_or((name, ""));
        format!("{category}-{}{id}", self.ns)
    }

    /// This test's events, in log order.
    async fn mine(&self) -> Vec<RecordedEvent> {
        let all = self.store.read_all(self.start, 100_000).await.unwrap();
        all.into_iter().filter(|e| e.stream_id().starts_with(&self.ns)).collect()
    }
}

fn increasing(positions: &[u64]) -> bool {
    positions.windows(2).all(|w| w[0] < w[1])
}

pub(crate) async fn appends_and_reads_back_with_versions_and_positions(t: Ctx) {
    let a = t.store.append(request(&t.s("s-a"), ExpectedVersion::NoStream, 2)).await.unwrap();
    let b = t.store.append(request(&t.s("s-b"), ExpectedVersion::NoStream, 1)).await.unwrap();
    let c = t.store.append(request(&t.s("s-a"), ExpectedVersion::Exact(2), 1)).await.unwrap();
    assert_eq!((a.first_version, a.last_version, b.first_version, c.first_version), (1, 2, 1, 3));
    assert!(increasing(&[a.first_position, a.last_position, b.first_position, c.first_position]));
    if t.gapless {
        assert_eq!((a.first_position, a.last_position, b.last_position, c.first_position), (1, 2, 3, 4));
    }

    let stream = t.store.read_stream(&t.s("s-a")).await.unwrap();
    assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        stream.iter().map(|e| e.position).collect::<Vec<_>>(),
        [a.first_position, a.last_position, c.first_position]
    );
    assert_eq!(stream[0].payload.to_value(), json!({ "n": 0 }));
    assert_eq!(stream[0].metadata.actor, "tester");
    assert_eq!(stream[0].business_date, NaiveDate::from_ymd_opt(2021, 3, 15).unwrap());
    assert!(stream[0].recorded_at <= chrono::Utc::now());

    let mine = t.mine().await;
    assert_eq!(mine.len(), 4);
    assert!(increasing(&mine.iter().map(|e| e.position).collect::<Vec<_>>()));
    let page = t.store.read_all(a.last_position, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].position, b.first_position);
    assert!(t.store.read_stream(&t.s("s-none")).await.unwrap().is_empty());
    assert!(*t.store.head().borrow() >= c.last_position);
}

pub(crate) async fn refuses_a_wrong_expected_version(t: Ctx) {
    let (s, u) = (t.s("s-x"), t.s("t-x"));
    t.store.append(request(&s, ExpectedVersion::NoStream, 1)).await.unwrap();
    let err = t.store.append(request(&s, ExpectedVersion::NoStream, 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongExpectedVersion { actual: 1, .. }), "{err:?}");
    let err = t.store.append(request(&s, ExpectedVersion::Exact(3), 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongExpectedVersion { actual: 1, .. }), "{err:?}");
    let err = t.store.append(request(&u, ExpectedVersion::Exact(1), 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongExpectedVersion { actual: 0, .. }), "{err:?}");
    t.store.append(request(&s, ExpectedVersion::Any, 1)).await.unwrap();
    assert_eq!(t.mine().await.len(), 2, "refused appends wrote nothing");
}

pub(crate) async fn of_two_appends_at_the_same_version_exactly_one_wins(t: Ctx) {
    let race = t.s("race-1");
    t.store.append(request(&race, ExpectedVersion::NoStream, 1)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, race) = (t.store.clone(), race.clone());
            tokio::spawn(async move { store.append(request(&race, ExpectedVersion::Exact(1), 1)).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::WrongExpectedVersion { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(t.store.read_stream(&race).await.unwrap().len(), 2);
}

pub(crate) async fn a_retried_command_gets_its_first_answer(t: Ctx) {
    let req = request(&t.s("idem-1"), ExpectedVersion::NoStream, 2);
    let first = t.store.append(req.clone()).await.unwrap();
    assert!(!first.duplicate);
    let again = t.store.append(req.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(AppendOutcome { duplicate: false, ..again }, first);
    assert_eq!(t.mine().await.len(), 2, "the retry wrote nothing");
    let found = t.store.find_command(req.command_id).await.unwrap().unwrap();
    assert_eq!(found.outcome.last_position, first.last_position);
    assert_eq!(found.fingerprint, req.fingerprint);

    let mut other = req.clone();
    other.fingerprint = "something else".into();
    let err = t.store.append(other).await.unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { .. }), "{err:?}");
    assert!(t.store.find_command(CommandId::new_random()).await.unwrap().is_none());

    let mut foreign = request(&t.s("idem-2"), ExpectedVersion::NoStream, 1);
    foreign.events[0].event_id = EventId::new_random();
    let err = t.store.append(foreign).await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignEventId { .. }), "{err:?}");
    let mut foreign = request(&t.s("idem-2"), ExpectedVersion::NoStream, 2);
    foreign.events[1].metadata.command_id = CommandId::new_random();
    let err = t.store.append(foreign).await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignCommandId { index: 1, .. }), "{err:?}");
    for (what, change) in [
        ("an actor", (|r: &mut AppendRequest| r.events[0].metadata.actor = "a".repeat(70_000)) as fn(&mut _)),
        ("an event type", |r| r.events[0].event_type = "T".repeat(65_536)),
        ("the command's fingerprint", |r| r.fingerprint = "f".repeat(65_536)),
    ] {
        let mut long = request(&t.s("idem-2"), ExpectedVersion::NoStream, 1);
        change(&mut long);
        let err = t.store.append(long).await.unwrap_err();
        assert!(matches!(err, StoreError::FieldTooLong { field, .. } if field == what), "{err:?}");
        assert!(err.to_string().contains("at most 65 535"), "{err}");
    }
    assert_eq!(t.mine().await.len(), 2, "refused appends wrote nothing");

    // A SHA-256 fingerprint (the command handler's) comes back exactly.
    let mut sha = request(&t.s("idem-3"), ExpectedVersion::NoStream, 3);
    sha.fingerprint = "0123456789abcdef".repeat(4);
    let first = t.store.append(sha.clone()).await.unwrap();
    let found = t.store.find_command(sha.command_id).await.unwrap().unwrap();
    assert_eq!(
        (found.fingerprint, found.outcome),
        (sha.fingerprint.clone(), AppendOutcome { duplicate: true, ..first })
    );
    sha.fingerprint = "0123456789abcdef".repeat(4).to_uppercase();
    let err = t.store.append(sha).await.unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { .. }), "{err:?}");
}

pub(crate) async fn concurrent_appends_to_many_streams_all_land(t: Ctx) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (store, stream) = (t.store.clone(), t.s(&format!("many-{i}")));
            tokio::spawn(async move { store.append(request(&stream, ExpectedVersion::NoStream, 2)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mine = t.mine().await;
    assert_eq!(mine.len(), 128);
    assert!(increasing(&mine.iter().map(|e| e.position).collect::<Vec<_>>()));
    if t.gapless {
        assert_eq!(mine.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=128).collect::<Vec<u64>>());
    }
    for pair in mine.chunks(2) {
        assert_eq!(pair[0].stream, pair[1].stream, "a command's events are contiguous");
        assert_eq!((pair[0].version, pair[1].version), (1, 2));
    }
}

pub(crate) async fn follows_the_log_from_a_checkpoint_then_live(t: Ctx) {
    let mut outcomes = Vec::new();
    for i in 0..3 {
        outcomes.push(t.store.append(request(&t.s(&format!("f-{i}")), ExpectedVersion::NoStream, 1)).await.unwrap());
    }
    let mut follower = Box::pin(follow(t.store.clone(), outcomes[0].last_position));
    assert_eq!(next_mine(&mut follower, &t.ns).await.position, outcomes[1].last_position);
    assert_eq!(next_mine(&mut follower, &t.ns).await.position, outcomes[2].last_position);
    let (writer, live_stream) = (t.store.clone(), t.s("f-live"));
    let live_name = live_stream.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        writer.append(request(&live_name, ExpectedVersion::NoStream, 1)).await.unwrap();
    });
    let live = tokio::time::timeout(std::time::Duration::from_secs(10), next_mine(&mut follower, &t.ns)).await.unwrap();
    assert_eq!(live.stream, live_stream);
}

/// The next event of this test's namespace that a follower yields.
async fn next_mine(
    follower: &mut (impl futures::Stream<Item = Result<RecordedEvent, StoreError>> + Unpin),
    ns: &str,
) -> RecordedEvent {
    loop {
        let e = follower.next().await.unwrap().unwrap();
        if e.stream_id().starts_with(ns) {
            return e;
        }
    }
}

pub(crate) async fn chains_every_event_to_its_stream(t: Ctx) {
    let a = t.s("chain-a");
    for i in 0..3u64 {
        let expected = if i == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(i * 2) };
        t.store.append(request(&a, expected, 2)).await.unwrap();
        t.store.append(request(&t.s(&format!("chain-b{i}")), ExpectedVersion::NoStream, 1)).await.unwrap();
    }
    let mut verifier = Verifier::new(t.gapless);
    for e in &t.mine().await {
        assert!(verifier.check(e, None), "{:?}", verifier.finish());
    }
    let report = verifier.finish();
    assert!(report.is_intact());
    assert_eq!((report.events, report.streams), (9, 4));
    let whole = verify_store(t.store.as_ref(), t.gapless).await.unwrap();
    assert!(whole.is_intact(), "{whole:?}");
    assert!(whole.events >= 9);
    let events = t.store.read_stream(&a).await.unwrap();
    assert_eq!(events[0].hash, events[0].compute_hash(&ChainHash::GENESIS));
    assert_eq!(events[1].hash, events[1].compute_hash(&events[0].hash));
    let mut forged = events[1].clone();
    forged.payload = Payload::encode(&json!({ "n": 999 })).unwrap();
    assert_ne!(forged.compute_hash(&events[0].hash), forged.hash);
}

// `append_all`: several streams in one atomic write (see its doc for the rules).

/// The expected version of a stream at `version`.
fn at(version: u64) -> ExpectedVersion {
    if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
}

pub(crate) async fn append_all_writes_nothing_when_its_last_stream_is_not_at_the_expected_version(t: Ctx) {
    if !t.atomic_multi_stream("append_all_writes_nothing_when_its_last_stream_is_not_at_the_expected_version").await {
        return;
    }
    let (a, b, c) = (t.s("all-a"), t.s("all-b"), t.s("all-c"));
    // Given a stream at version 1,
    t.store.append(request(&a, ExpectedVersion::NoStream, 1)).await.unwrap();
    // when a write to two new streams and to it expects it at version 2,
    let mut parts = vec![
        request(&b, ExpectedVersion::NoStream, 2),
        request(&c, ExpectedVersion::NoStream, 1),
        request(&a, at(2), 1),
    ];
    let err = t.store.append_all(parts.clone()).await.unwrap_err();
    // then it is refused for that stream, and none of its events is written.
    assert!(matches!(&err, StoreError::WrongExpectedVersion { stream, actual: 1, .. } if *stream == a), "{err:?}");
    assert_eq!(t.mine().await.len(), 1);
    assert!(t.store.read_stream(&b).await.unwrap().is_empty() && t.store.read_stream(&c).await.unwrap().is_empty());
    for part in &parts {
        assert!(t.store.find_command(part.command_id).await.unwrap().is_none());
    }
    // The first stream that does not match is the one named.
    let mut two_wrong = parts.clone();
    two_wrong[1].expected = at(4);
    let err = t.store.append_all(two_wrong).await.unwrap_err();
    assert!(matches!(&err, StoreError::WrongExpectedVersion { stream, actual: 0, .. } if *stream == c), "{err:?}");
    // At the right version, the same write goes through whole.
    parts[2].expected = at(1);
    assert_eq!(t.store.append_all(parts).await.unwrap().len(), 3);
    assert_eq!(t.mine().await.len(), 5);
}

pub(crate) async fn append_all_gives_contiguous_positions_in_request_order_and_an_outcome_per_request(t: Ctx) {
    if !t.atomic_multi_stream("append_all_gives_contiguous_positions_in_request_order_and_an_outcome_per_request").await
    {
        return;
    }
    let (a, b, c) = (t.s("pos-a"), t.s("pos-b"), t.s("pos-c"));
    // Given a stream at version 2,
    t.store.append(request(&a, ExpectedVersion::NoStream, 2)).await.unwrap();
    // when one write appends to it and to two new streams,
    let parts = vec![request(&a, at(2), 2), request(&b, at(0), 1), request(&c, at(0), 3)];
    let out = t.store.append_all(parts.clone()).await.unwrap();
    // then each request has its own outcome, in request order,
    assert_eq!(out.iter().map(|o| o.stream.as_str()).collect::<Vec<_>>(), [&a, &b, &c]);
    assert_eq!(out.iter().map(|o| (o.first_version, o.last_version)).collect::<Vec<_>>(), [(3, 4), (1, 1), (1, 3)]);
    assert!(out.iter().all(|o| !o.duplicate && o.recorded_at == out[0].recorded_at), "{out:?}");
    // with positions that follow each other in that order (one after the other where
    // positions have no gaps; increasing, with no other event between, where they have:
    // KurrentDB's are offsets in its log),
    let mine = t.mine().await;
    if t.gapless {
        assert!(out.windows(2).all(|w| w[1].first_position == w[0].last_position + 1), "{out:?}");
        assert_eq!(out[2].last_position - out[0].first_position, 5);
        assert_eq!((out[0].first_position, out[2].last_position), (3, 8));
    } else {
        assert!(out.windows(2).all(|w| w[1].first_position > w[0].last_position), "{out:?}");
        let first = t.store.read_at(out[0].first_position).await.unwrap().expect("the first event is where it says");
        assert_eq!(first.stream, a);
        let next = t.store.read_all(out[0].first_position, 5).await.unwrap();
        assert_eq!(next[4].position, out[2].last_position, "no other event between them: {next:?}");
    }
    // and the log holds them so, each stream in version order.
    let written: Vec<_> = mine[2..].iter().map(|e| (e.stream.as_str(), e.version)).collect();
    assert_eq!(written, [(&*a, 3), (&a, 4), (&b, 1), (&c, 1), (&c, 2), (&c, 3)]);
    let positions: Vec<_> = mine[2..].iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(
        (positions[0], positions[1], positions[5]),
        (out[0].first_position, out[0].last_position, out[2].last_position)
    );
    assert!(mine[2..].iter().all(|e| e.recorded_at == out[0].recorded_at));
    for (part, events) in parts.iter().zip([&mine[2..4], &mine[4..5], &mine[5..8]]) {
        assert!(events.iter().all(|e| e.metadata.command_id == part.command_id));
    }
    assert!(*t.store.head().borrow() >= out[2].last_position);
}

pub(crate) async fn a_retried_append_all_is_answered_with_its_first_outcomes(t: Ctx) {
    if !t.atomic_multi_stream("a_retried_append_all_is_answered_with_its_first_outcomes").await {
        return;
    }
    // Given a write to two streams, applied,
    let parts = vec![request(&t.s("re-a"), at(0), 2), request(&t.s("re-b"), at(0), 1)];
    let first = t.store.append_all(parts.clone()).await.unwrap();
    // when it comes again,
    let again = t.store.append_all(parts.clone()).await.unwrap();
    // then it gets the same outcomes, marked duplicate, and writes nothing;
    let duplicates: Vec<_> = first.iter().map(|o| AppendOutcome { duplicate: true, ..o.clone() }).collect();
    assert_eq!(again, duplicates);
    assert_eq!(t.mine().await.len(), 3);
    // one of its parts sent alone gets that part's answer;
    assert_eq!(t.store.append(parts[1].clone()).await.unwrap(), duplicates[1]);
    // a part with other content under its command id is refused.
    let mut other = parts.clone();
    other[1].fingerprint = "something else".into();
    let err = t.store.append_all(other).await.unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { command_id } if command_id == parts[1].command_id), "{err:?}");
    assert_eq!(t.mine().await.len(), 3);
}

pub(crate) async fn an_append_all_whose_commands_were_partly_applied_is_refused(t: Ctx) {
    if !t.atomic_multi_stream("an_append_all_whose_commands_were_partly_applied_is_refused").await {
        return;
    }
    // Given one command applied on its own,
    let applied = request(&t.s("part-a"), at(0), 1);
    t.store.append(applied.clone()).await.unwrap();
    // when a write carries it with a new one,
    let fresh = request(&t.s("part-b"), at(0), 1);
    let err = t.store.append_all(vec![fresh.clone(), applied.clone()]).await.unwrap_err();
    // then it is refused, naming the applied one, and the new one is not written.
    assert!(matches!(err, StoreError::PartlyApplied { command_id } if command_id == applied.command_id), "{err:?}");
    assert!(t.store.find_command(fresh.command_id).await.unwrap().is_none());
    assert!(t.store.read_stream(&fresh.stream).await.unwrap().is_empty());
    assert_eq!(t.mine().await.len(), 1);
    // Other content under an applied id is the caller's mistake first.
    let reused = AppendRequest { fingerprint: "something else".into(), ..applied.clone() };
    let err = t.store.append_all(vec![fresh, reused]).await.unwrap_err();
    assert!(matches!(err, StoreError::CommandIdReused { command_id } if command_id == applied.command_id), "{err:?}");
}

pub(crate) async fn an_append_all_naming_one_stream_twice_is_refused(t: Ctx) {
    let (a, b) = (t.s("twice-a"), t.s("twice-b"));
    let parts = vec![request(&a, at(0), 1), request(&b, at(0), 1), request(&a, at(1), 1)];
    let err = t.store.append_all(parts).await.unwrap_err();
    assert!(matches!(&err, StoreError::StreamTwiceInAppend { stream } if *stream == a), "{err:?}");
    assert!(t.mine().await.is_empty());
}

pub(crate) async fn an_append_all_carrying_one_command_id_twice_is_refused(t: Ctx) {
    let first = request(&t.s("cmd-a"), at(0), 1);
    let twice = AppendRequest { stream: t.s("cmd-b"), ..first.clone() };
    let err = t.store.append_all(vec![first.clone(), twice]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::CommandTwiceInAppend { command_id } if command_id == first.command_id),
        "{err:?}"
    );
    assert!(t.mine().await.is_empty());
    assert!(t.store.find_command(first.command_id).await.unwrap().is_none());
}

pub(crate) async fn every_part_of_an_append_all_is_checked_as_an_append(t: Ctx) {
    let err = t.store.append_all(Vec::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::EmptyAppend), "{err:?}");
    let mut foreign = request(&t.s("chk-b"), at(0), 2);
    foreign.events[1].event_id = EventId::new_random();
    let err = t.store.append_all(vec![request(&t.s("chk-a"), at(0), 1), foreign]).await.unwrap_err();
    assert!(matches!(err, StoreError::ForeignEventId { index: 1, .. }), "{err:?}");
    let err = t.store.append_all(vec![request(&t.s("chk-a"), at(0), 1), request(&t.s("chk-c"), at(0), 0)]).await;
    assert!(matches!(err, Err(StoreError::EmptyAppend)), "{err:?}");
    assert!(t.mine().await.is_empty());
}

pub(crate) async fn find_command_answers_each_part_of_an_append_all(t: Ctx) {
    if !t.atomic_multi_stream("find_command_answers_each_part_of_an_append_all").await {
        return;
    }
    let parts =
        vec![request(&t.s("find-a"), at(0), 1), request(&t.s("find-b"), at(0), 3), request(&t.s("find-c"), at(0), 2)];
    let out = t.store.append_all(parts.clone()).await.unwrap();
    for (part, outcome) in parts.iter().zip(out) {
        let found = t.store.find_command(part.command_id).await.unwrap().expect("every part is found");
        assert_eq!(
            found,
            CommandRecord {
                fingerprint: part.fingerprint.clone(),
                outcome: AppendOutcome { duplicate: true, ..outcome }
            }
        );
    }
}

pub(crate) async fn the_log_verifies_after_appends_to_several_streams(t: Ctx) {
    if !t.atomic_multi_stream("the_log_verifies_after_appends_to_several_streams").await {
        return;
    }
    let (a, b, c) = (t.s("ver-a"), t.s("ver-b"), t.s("ver-c"));
    t.store.append(request(&a, at(0), 2)).await.unwrap();
    t.store.append_all(vec![request(&b, at(0), 3), request(&a, at(2), 1), request(&c, at(0), 1)]).await.unwrap();
    t.store.append(request(&c, at(1), 1)).await.unwrap();
    t.store.append_all(vec![request(&c, at(2), 2), request(&b, at(3), 1)]).await.unwrap();
    t.store.append_all(vec![request(&a, at(3), 1)]).await.unwrap();
    let mine = t.mine().await;
    assert_eq!(mine.len(), 12);
    let mut verifier = Verifier::new(t.gapless);
    for e in &mine {
        assert!(verifier.check(e, None), "{:?}", verifier.finish());
    }
    assert_eq!(verifier.finish().streams, 3);
    t.assert_verifies().await;
}

pub(crate) async fn racing_append_alls_over_shared_streams_never_both_win_one_version(t: Ctx) {
    if !t.atomic_multi_stream("racing_append_alls_over_shared_streams_never_both_win_one_version").await {
        return;
    }
    const STREAMS: usize = 4;
    const TASKS: usize = 16;
    const ROUNDS: usize = 6;
    let streams: Vec<String> = (0..STREAMS).map(|i| t.s(&format!("race-{i}"))).collect();
    // Each round, every task reads the versions of its two streams, then all write at once
    // expecting them: each stream is shared by several tasks, so most must lose.
    let (read, write) = (Arc::new(tokio::sync::Barrier::new(TASKS)), Arc::new(tokio::sync::Barrier::new(TASKS)));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, read, write) = (t.store.clone(), read.clone(), write.clone());
            let pair = [streams[i % STREAMS].clone(), streams[(i + 1 + (i / STREAMS) % 3) % STREAMS].clone()];
            tokio::spawn(async move {
                let (mut won, mut lost) = (Vec::new(), 0);
                for _ in 0..ROUNDS {
                    read.wait().await;
                    let mut parts = Vec::new();
                    for stream in &pair {
                        let version = store.read_stream(stream).await.unwrap().last().map_or(0, |e| e.version);
                        parts.push(request(stream, at(version), 1));
                    }
                    let expected: Vec<_> = parts.iter().map(|p| (p.stream.clone(), p.expected)).collect();
                    write.wait().await;
                    match store.append_all(parts).await {
                        Ok(outcomes) => won.push((expected, outcomes)),
                        Err(StoreError::WrongExpectedVersion { .. }) => lost += 1,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                (won, lost)
            })
        })
        .collect();
    let (mut won, mut lost) = (Vec::new(), 0);
    for task in tasks {
        let (w, l) = task.await.unwrap();
        won.extend(w);
        lost += l;
    }
    // Every round has a first writer, which wins; at most two pairs fit in four streams.
    assert!((ROUNDS..=2 * ROUNDS).contains(&won.len()) && lost == TASKS * ROUNDS - won.len(), "{} won", won.len());
    // Never two winners for one stream at one expected version; every win written whole,
    // at the versions it expected.
    let mut claimed = std::collections::HashSet::new();
    for (expected, outcomes) in &won {
        for ((stream, expected), o) in expected.iter().zip(outcomes) {
            assert_eq!(at(o.first_version - 1), *expected, "{o:?}");
            assert!(claimed.insert((stream.clone(), o.first_version)), "two winners for {stream} at {expected:?}");
        }
        if t.gapless {
            assert_eq!(outcomes[1].first_position, outcomes[0].last_position + 1, "{outcomes:?}");
        } else {
            assert!(outcomes[1].first_position > outcomes[0].last_position, "{outcomes:?}");
        }
    }
    for stream in &streams {
        let events = t.store.read_stream(stream).await.unwrap();
        let wins = claimed.iter().filter(|(s, _)| s == stream).count();
        assert_eq!(events.len(), wins, "{stream}: every event is a win's");
    }
    assert_eq!(t.mine().await.len(), 2 * won.len());
    t.assert_verifies().await;
}

/// The suite, for one backend: `$make` gives a fresh `Ctx` (or `None` to skip).
macro_rules! conformance_suite {
    ($(#[$skip:meta])* $backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[allow(unused_imports)]
            use std::sync::Arc;

            async fn ctx() -> Option<(Ctx, Option<tempfile::TempDir>)> {
                $make
            }

            macro_rules! case {
                ($name:ident, $check:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$skip])*
                    async fn $name() {
                        let Some((t, _dir)) = ctx().await else { return };
                        $check(t).await;
                    }
                };
            }

            case!(appends_and_reads_back, appends_and_reads_back_with_versions_and_positions);
            case!(wrong_expected_version, refuses_a_wrong_expected_version);
            case!(exactly_one_wins, of_two_appends_at_the_same_version_exactly_one_wins);
            case!(idempotent_retry, a_retried_command_gets_its_first_answer);
            case!(concurrent_appends, concurrent_appends_to_many_streams_all_land);
            case!(hash_chains, chains_every_event_to_its_stream);
            case!(follow_catch_up_then_live, follows_the_log_from_a_checkpoint_then_live);
            case!(
                append_all_is_all_or_nothing,
                append_all_writes_nothing_when_its_last_stream_is_not_at_the_expected_version
            );
            case!(
                append_all_positions_and_outcomes,
                append_all_gives_contiguous_positions_in_request_order_and_an_outcome_per_request
            );
            case!(append_all_retry, a_retried_append_all_is_answered_with_its_first_outcomes);
            case!(append_all_partly_applied, an_append_all_whose_commands_were_partly_applied_is_refused);
            case!(append_all_stream_twice, an_append_all_naming_one_stream_twice_is_refused);
            case!(append_all_command_twice, an_append_all_carrying_one_command_id_twice_is_refused);
            case!(append_all_checks_each_part, every_part_of_an_append_all_is_checked_as_an_append);
            case!(append_all_find_command, find_command_answers_each_part_of_an_append_all);
            case!(append_all_verifies, the_log_verifies_after_appends_to_several_streams);
            case!(append_all_race, racing_append_alls_over_shared_streams_never_both_win_one_version);
        }
    };
}

conformance_suite!(memory, Some((Ctx::new(Arc::new(crate::MemoryStore::new()), true), None)));
conformance_suite!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite3");
    let store = crate::SqliteStore::open(&path).unwrap();
    Some((Ctx::new(Arc::new(store), true).with_file(path), Some(dir)))
});
// Without a server given when the tests were built, the suites show as skipped (see
// build.rs); given one that is gone, a test says SKIPPED (or fails where required).
conformance_suite!(
    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    postgres,
    {
        let url = crate::postgres::testing::fresh_url("PostgreSQL conformance test").await?;
        let store = crate::PostgresStore::connect(&url).await.expect("the test server is reachable");
        Some((Ctx::new(Arc::new(store), true), None))
    }
);
#[cfg(feature = "kurrentdb")]
conformance_suite!(
    #[cfg_attr(kurrentdb_missing, ignore = "needs KURRENTDB_URL=kurrentdb://host:2113?tls=false when built")]
    kurrentdb,
    {
        match std::env::var(crate::kurrent::URL_VAR) {
            Ok(url) => {
                let store = crate::kurrent::KurrentStore::connect(&url).await.expect("KURRENTDB_URL is reachable");
                Some((Ctx::new(Arc::new(store), false), None))
            }
            Err(_) => {
                eprintln!(
                    "SKIPPED: KurrentDB conformance test (set KURRENTDB_URL=kurrentdb://host:2113?tls=false to run it)"
                );
                None
            }
        }
    }
);

// The KurrentDB backend's client-side logic against a stand-in of the server's gRPC service
// (see `kurrent/stand_in.rs`: the writes over gRPC, the reads from its log in process) —
// not against KurrentDB itself, which the suite above needs `KURRENTDB_URL` for.
#[cfg(feature = "kurrentdb")]
conformance_suite!(kurrentdb_stand_in, {
    let store = crate::kurrent::tests::stand_in_store().await;
    Some((Ctx::new(Arc::new(store), false), None))
});

mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn reopening_after_close_keeps_every_event_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("events.sqlite3");
        let req = request("keep", ExpectedVersion::NoStream, 3);
        {
            let store = SqliteStore::open(&path).unwrap();
            store.append(req.clone()).await.unwrap();
            store.append(request("keep", ExpectedVersion::Exact(3), 1)).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let events = store.read_all(0, 100).await.unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[3].version, 4);
        assert_eq!(*store.head().borrow(), 4);
        // Where commands start and streams end is read back from the events.
        assert_eq!(store.read_stream("keep").await.unwrap(), events);
        let found = store.find_command(req.command_id).await.unwrap().unwrap();
        assert_eq!((found.outcome.first_position, found.outcome.last_position, found.outcome.last_version), (1, 3, 3));
        assert!(store.append(req).await.unwrap().duplicate, "command ids survive a restart");
        let next = store.append(request("keep", ExpectedVersion::Exact(4), 1)).await.unwrap();
        assert_eq!(next.last_position, 5);
    }

    #[tokio::test]
    async fn an_append_all_that_fails_part_way_leaves_nothing_and_can_be_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let mut store = SqliteStore::open(&path).unwrap();
        // Given a log of one event, and a write of six events to three streams,
        store.append(request("w-a", ExpectedVersion::NoStream, 1)).await.unwrap();
        let digest = crate::sqlite::verify(&path, None).unwrap();
        let parts = vec![
            request("w-a", ExpectedVersion::Exact(1), 2),
            request("w-b", ExpectedVersion::NoStream, 1),
            request("w-c", ExpectedVersion::NoStream, 3),
        ];
        for k in 0..=6 {
            // when the writer fails after k of its events,
            store.fail_next_write_after(k);
            let err = store.append_all(parts.clone()).await.unwrap_err();
            assert!(matches!(&err, StoreError::Backend { what: m, .. } if m.contains("injected")), "{k}: {err:?}");
            // then none of them is in the log, which verifies as before,
            assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1, "after {k}");
            assert!(store.read_stream("w-b").await.unwrap().is_empty());
            for part in &parts {
                assert!(store.find_command(part.command_id).await.unwrap().is_none());
            }
            assert_eq!(crate::sqlite::verify(&path, None).unwrap(), digest, "after {k}");
            // nor in the file, opened again.
            drop(store);
            store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1, "after {k}, reopened");
            assert!(store.read_stream("w-c").await.unwrap().is_empty());
        }
        // The same write then goes through, and is found whole after a restart.
        let out = store.append_all(parts.clone()).await.unwrap();
        assert_eq!((out[0].first_position, out[2].last_position), (2, 7));
        drop(store);
        let report = crate::sqlite::verify(&path, None).unwrap();
        assert!(report.is_intact() && report.events == 7 && report.streams == 3, "{report:?}");
        let store = SqliteStore::open(&path).unwrap();
        for (part, outcome) in parts.iter().zip(&out) {
            let found = store.find_command(part.command_id).await.unwrap().unwrap();
            assert_eq!(found.outcome, AppendOutcome { duplicate: true, ..outcome.clone() });
        }
        assert!(store.append_all(parts).await.unwrap().iter().all(|o| o.duplicate));
    }

    #[tokio::test]
    async fn one_process_writes_a_log_and_readers_still_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        store.append(request("x", ExpectedVersion::NoStream, 2)).await.unwrap();
        let second = SqliteStore::open(&path).err().expect("a second writer is refused");
        assert!(second.to_string().contains("already open for writing"), "{second}");
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(reader.read_all(0, 10).await.unwrap().len(), 2);
        assert_eq!(reader.read_stream("x").await.unwrap().len(), 2);
        let err = reader.append(request("y", ExpectedVersion::NoStream, 1)).await.unwrap_err();
        assert!(err.to_string().contains("reading only"), "{err}");
        // The reader catches up with what the writer appends after it opened.
        let more = request("x", ExpectedVersion::Exact(2), 2);
        store.append(more.clone()).await.unwrap();
        store.append(request("y", ExpectedVersion::NoStream, 1)).await.unwrap();
        assert_eq!(reader.read_stream("x").await.unwrap().len(), 4);
        assert_eq!(reader.read_stream_from("x", 4).await.unwrap().len(), 1);
        assert_eq!(reader.read_stream("y").await.unwrap().len(), 1);
        let found = reader.find_command(more.command_id).await.unwrap().unwrap();
        assert_eq!((found.outcome.first_position, found.outcome.last_version), (3, 4));
        assert!(reader.find_command(CommandId::new_random()).await.unwrap().is_none());
        drop(store);
        assert!(SqliteStore::open(&path).is_ok(), "the lock goes with the writer");
    }

    #[tokio::test]
    async fn the_database_refuses_to_edit_or_delete_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        store.append(request("x", ExpectedVersion::NoStream, 1)).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let update = conn.execute("UPDATE events SET record = X'01'", []).unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let update = conn.execute("UPDATE events SET record = X'00'", []).unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = conn.execute("DELETE FROM events", []).unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
        for sql in ["UPDATE streams SET name = 'other'", "DELETE FROM streams"] {
            let err = conn.execute(sql, []).unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    }
}

/// `verify` against a log tampered with directly in its SQLite file, as someone with the
/// file (and the will to drop the append-only triggers) could.
mod tampering {
    use super::*;
    use crate::sqlite::record;
    use rusqlite::Connection;

    /// Two streams interleaved: positions 1..=6, `t-a` at odd positions, `t-b` at even.
    async fn log() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..3u64 {
            let expected = if i == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(i) };
            store.append(request("t-a", expected, 1)).await.unwrap();
            store.append(request("t-b", expected, 1)).await.unwrap();
        }
        drop(store);
        (dir, path)
    }

    fn tamper(path: &std::path::Path, sql: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS events_are_never_updated; DROP TRIGGER IF EXISTS events_are_never_deleted;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    /// Rewrites fields inside the packed record of the event at `position` (format 2).
    fn tamper_record(path: &std::path::Path, position: u64, change: impl FnOnce(&mut record::Record<'_>)) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("DROP TRIGGER IF EXISTS events_are_never_updated;").unwrap();
        let blob: Vec<u8> =
            conn.query_row("SELECT record FROM events WHERE position = ?1", [position], |r| r.get(0)).unwrap();
        let mut fields = record::decode(&blob).unwrap();
        change(&mut fields);
        let mut altered = Vec::new();
        record::encode(&fields, &mut altered);
        conn.execute("UPDATE events SET record = ?1 WHERE position = ?2", rusqlite::params![altered, position])
            .unwrap();
    }

    fn first_break(path: &std::path::Path) -> Break {
        let report = crate::sqlite::verify(path, None).unwrap();
        report.first_break.expect("the tampering must be found")
    }

    #[tokio::test]
    async fn an_intact_log_verifies() {
        let (_dir, path) = log().await;
        let report = crate::sqlite::verify(&path, None).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.events, report.streams, report.head_position), (6, 2, 6));
        // The digest is stable: verifying again gives the same head hash.
        assert_eq!(crate::sqlite::verify(&path, None).unwrap().head_hash, report.head_hash);
    }

    #[tokio::test]
    async fn events_cut_from_the_end_are_found_against_a_published_digest() {
        let (_dir, path) = log().await;
        let published = crate::sqlite::verify(&path, None).unwrap();
        tamper(&path, "DELETE FROM events WHERE position = 6");
        // A log cut between appends looks whole without the digest: chains cannot see
        // their own end.
        assert!(crate::sqlite::verify(&path, None).unwrap().is_intact());
        let report = crate::sqlite::verify(&path, Some((6, published.head_hash))).unwrap();
        let b = report.first_break.expect("found against the digest");
        assert!(b.reason.contains("removed from its end"), "{}", b.reason);
        // And the intact prefix still matches a digest published earlier.
        let (_dir2, path2) = log().await;
        assert!(
            crate::sqlite::verify(&path2, Some((6, crate::sqlite::verify(&path2, None).unwrap().head_hash)))
                .unwrap()
                .is_intact()
        );
    }

    #[tokio::test]
    async fn a_modified_payload_is_found() {
        let (_dir, path) = log().await;
        tamper_record(&path, 3, |r| r.payload = "{\"n\":7}");
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str(), b.version), (3, "t-a", 2));
        assert!(b.reason.contains("does not match its hash"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_modified_actor_or_date_is_found() {
        let (_dir, path) = log().await;
        tamper_record(&path, 4, |r| r.actor = "mallory");
        assert_eq!(first_break(&path).position, 4);
        let (_dir, path) = log().await;
        tamper_record(&path, 5, |r| r.business_date = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap());
        assert_eq!(first_break(&path).position, 5);
        // A record that no longer decodes is found too.
        let (_dir, path) = log().await;
        tamper(&path, "UPDATE events SET record = substr(record, 1, 40) WHERE position = 2");
        let b = first_break(&path);
        // (Its stream is inside the record: the break names only the position.)
        assert_eq!(b.position, 2);
        assert!(b.reason.contains("unreadable record"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_wrong_link_between_the_events_of_a_stream_is_found() {
        let (_dir, path) = log().await;
        // `t-a` is at positions 1, 3, 5: reading it would skip position 3.
        tamper_record(&path, 5, |r| r.previous = 1);
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str(), b.version), (5, "t-a", 3));
        assert!(b.reason.contains("link to the previous event"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_log_cut_inside_an_append_is_found_without_a_digest() {
        let (_dir, path) = log().await;
        let store = SqliteStore::open(&path).unwrap();
        let last = store.append(request("t-c", ExpectedVersion::NoStream, 3)).await.unwrap();
        drop(store);
        assert_eq!(last.last_position, 9);
        tamper(&path, "DELETE FROM events WHERE position = 9");
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str(), b.version), (8, "t-c", 2));
        assert!(b.reason.contains("ends inside the append"), "{}", b.reason);
        assert!(b.reason.contains("1 event(s) short"), "{}", b.reason);
    }

    #[tokio::test]
    async fn altered_append_marks_are_found() {
        // The marks are outside the hashes (they are where the log keeps its commands):
        // verify checks them against the appends the events make.
        let (_dir, path) = log().await;
        tamper_record(&path, 1, |r| {
            r.append = record::Append::Starts { events: 2, fingerprint: record::Fingerprint::Text("fp") }
        });
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str()), (2, "t-b"));
        assert!(b.reason.contains("begins an append while the append of command"), "{}", b.reason);

        let (_dir, path) = log().await;
        tamper_record(&path, 3, |r| r.append = record::Append::Continues);
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str()), (3, "t-a"));
        assert!(b.reason.contains("continues an append that is not under way"), "{}", b.reason);

        let (_dir, path) = log().await;
        tamper_record(&path, 4, |r| r.append = record::Append::Unmarked);
        let b = first_break(&path);
        assert_eq!(b.position, 4);
        assert!(b.reason.contains("no append mark"), "{}", b.reason);

        // A whole append moved into another's: the second event of a two-event append
        // claimed by the next command.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        store.append(request("t-a", ExpectedVersion::NoStream, 2)).await.unwrap();
        store.append(request("t-b", ExpectedVersion::NoStream, 1)).await.unwrap();
        drop(store);
        tamper_record(&path, 3, |r| r.append = record::Append::Continues);
        tamper_record(&path, 1, |r| {
            r.append = record::Append::Starts { events: 3, fingerprint: record::Fingerprint::Text("fp") }
        });
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str()), (3, "t-b"));
        assert!(b.reason.contains("belongs to another command or stream"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_deleted_event_is_found() {
        let (_dir, path) = log().await;
        tamper(&path, "DELETE FROM events WHERE position = 3");
        let b = first_break(&path);
        assert_eq!(b.position, 4);
        assert!(b.reason.contains("missing"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_deleted_event_with_positions_renumbered_is_found() {
        let (_dir, path) = log().await;
        tamper(
            &path,
            "DELETE FROM events WHERE position = 3; UPDATE events SET position = position - 1 WHERE position > 3;",
        );
        let b = first_break(&path);
        // Position 3 now holds what was at 4: its whole-log hash was computed at position 4.
        assert_eq!((b.position, b.stream.as_str()), (3, "t-b"));
        assert!(b.reason.contains("whole-log chain"), "{}", b.reason);
    }

    #[tokio::test]
    async fn an_inserted_event_is_found() {
        let (_dir, path) = log().await;
        // A copy of event 2 under a new id and position, as if appended later.
        tamper(&path, "INSERT INTO events SELECT 7, record FROM events WHERE position = 2");
        tamper_record(&path, 7, |r| {
            r.previous = 6;
            r.version = 4;
            r.event_id = [0xee; 16];
        });
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str(), b.version), (7, "t-b", 4));
    }

    #[tokio::test]
    async fn two_swapped_events_are_found() {
        let (_dir, path) = log().await;
        // Swap positions 2 and 4 (both of stream t-b) through a free position.
        tamper(
            &path,
            "UPDATE events SET position = 100 WHERE position = 2;
             UPDATE events SET position = 2 WHERE position = 4;
             UPDATE events SET position = 4 WHERE position = 100;",
        );
        let b = first_break(&path);
        assert_eq!((b.position, b.stream.as_str()), (2, "t-b"));
        assert!(b.reason.contains("version 2 follows version 0"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_recomputed_event_hash_still_breaks_the_log_chain() {
        let (_dir, path) = log().await;
        // Even with the event's own hash made to match, its successor in the stream and
        // the whole-log chain no longer do.
        let store = SqliteStore::open(&path).unwrap();
        let mut e = store.read_stream("t-b").await.unwrap().pop().unwrap();
        drop(store);
        let previous = {
            let conn = Connection::open(&path).unwrap();
            let blob: Vec<u8> =
                conn.query_row("SELECT record FROM events WHERE position = 4", [], |r| r.get(0)).unwrap();
            record::decode(&blob).unwrap().hash
        };
        e.payload = Payload::encode(&json!({ "n": 42 })).unwrap();
        let forged = e.compute_hash(&previous);
        tamper_record(&path, 6, |r| {
            r.payload = "{\"n\":42}";
            r.hash = forged;
        });
        let b = first_break(&path);
        assert_eq!(b.position, 6);
        assert!(b.reason.contains("whole-log chain"), "{}", b.reason);
    }
}

/// A log written by format 1 (one column per field) is read as it is by read-only tools,
/// migrated in place by the first writer, and verifies to the same digest afterwards.
mod migration {
    use super::*;
    use crate::sqlite::legacy::SCHEMA_V1;
    use rusqlite::{Connection, params};

    /// Writes `requests` into a new format 1 file the way format 1 did; returns the path.
    fn v1_log(dir: &std::path::Path, requests: &[AppendRequest]) -> std::path::PathBuf {
        let path = dir.join("events.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        let (mut position, mut log) = (0u64, ChainHash::GENESIS);
        let mut tips: std::collections::HashMap<String, (u64, ChainHash)> = Default::default();
        let at = crate::now();
        for r in requests {
            let (version, previous) = tips.get(&r.stream).copied().unwrap_or((0, ChainHash::GENESIS));
            let (first_position, mut tip) = (position + 1, (version, previous));
            for e in &r.events {
                position += 1;
                let recorded = RecordedEvent::record(e.clone(), &r.stream, tip.0 + 1, position, at, &tip.1);
                log = crate::chain::log_hash(&log, position, &recorded.hash);
                conn.execute(
                    "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    params![
                        position,
                        r.stream,
                        recorded.version,
                        &recorded.event_id.0.as_bytes()[..],
                        recorded.event_type,
                        recorded.schema_version,
                        recorded.business_date.to_string(),
                        at.timestamp_micros(),
                        recorded.payload.as_str(),
                        &r.command_id.0.as_bytes()[..],
                        recorded.metadata.actor,
                        &recorded.metadata.correlation_id.0.as_bytes()[..],
                        Option::<Vec<u8>>::None,
                        &recorded.hash.0[..],
                        &log.0[..],
                    ],
                )
                .unwrap();
                tip = (recorded.version, recorded.hash);
            }
            conn.execute(
                "INSERT INTO commands VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &r.command_id.0.as_bytes()[..],
                    r.fingerprint,
                    r.stream,
                    version + 1,
                    tip.0,
                    first_position,
                    position,
                    at.timestamp_micros()
                ],
            )
            .unwrap();
            tips.insert(r.stream.clone(), tip);
        }
        path
    }

    fn user_version(path: &std::path::Path) -> i64 {
        Connection::open(path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn a_format_1_log_is_read_then_migrated_in_place_and_verifies_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let first = request("m-a", ExpectedVersion::NoStream, 2);
        let requests =
            [first.clone(), request("m-b", ExpectedVersion::NoStream, 1), request("m-a", ExpectedVersion::Exact(2), 3)];
        let path = v1_log(dir.path(), &requests);
        let before = crate::sqlite::verify(&path, None).unwrap();
        assert!(before.is_intact(), "{before:?}");
        assert_eq!((before.events, before.streams), (6, 2));

        // Read-only tools read format 1 without changing it.
        let reader = SqliteStore::open_read_only(&path).unwrap();
        let old_all = reader.read_all(0, 100).await.unwrap();
        assert_eq!(old_all.len(), 6);
        assert_eq!(reader.read_stream("m-a").await.unwrap().len(), 5);
        assert_eq!(reader.find_command(first.command_id).await.unwrap().unwrap().outcome.last_version, 2);
        drop(reader);
        assert_eq!(user_version(&path), 1);

        // The first writer migrates it.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(user_version(&path), 3);
        assert_eq!(store.read_all(0, 100).await.unwrap(), old_all, "every field survives");
        let stream = store.read_stream("m-a").await.unwrap();
        assert_eq!(stream.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 4, 5, 6]);
        assert_eq!(store.read_stream_from("m-a", 4).await.unwrap().len(), 2);
        let again = store.append(first.clone()).await.unwrap();
        assert!(again.duplicate && again.first_position == 1 && again.last_version == 2, "{again:?}");
        let next = store.append(request("m-b", ExpectedVersion::Exact(1), 1)).await.unwrap();
        assert_eq!((next.last_position, next.last_version), (7, 2));
        drop(store);

        let after = crate::sqlite::verify(&path, Some((6, before.head_hash))).unwrap();
        assert!(after.is_intact(), "{after:?}");
        assert_eq!((after.events, after.streams), (7, 2));
        // Reopening a migrated log changes nothing.
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(crate::sqlite::verify(&path, None).unwrap(), after);
    }

    #[tokio::test]
    async fn a_tampered_format_1_log_stays_found_after_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = v1_log(dir.path(), &[request("m-a", ExpectedVersion::NoStream, 3)]);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER events_are_never_updated; UPDATE events SET payload = '{\"n\":9}' WHERE position = 2;",
        )
        .unwrap();
        drop(conn);
        assert_eq!(crate::sqlite::verify(&path, None).unwrap().first_break.unwrap().position, 2);
        drop(SqliteStore::open(&path).unwrap());
        let b = crate::sqlite::verify(&path, None).unwrap().first_break.expect("still found");
        assert_eq!(b.position, 2);
        assert!(b.reason.contains("does not match its hash"), "{}", b.reason);
    }
}

/// A log written by format 2 (the fixture was written by that code: packed records, a
/// commands table, a stream-ends column) is read and verified as it is by read-only tools,
/// migrated in place by the first writer, and verifies to the same digest afterwards.
mod format_2 {
    use super::*;
    use rusqlite::Connection;

    /// Three appends: `m-a` ×2 (fingerprint 64 × `a`, packed once migrated), `m-b` ×1
    /// (fingerprint `fp-b`, caused by the first event), `m-a` ×3 (68 hex digits: kept as text).
    fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format2.sqlite3"), &path).unwrap();
        (dir, path)
    }

    fn command(n: u8) -> CommandId {
        CommandId(uuid::Uuid::from_bytes([n; 16]))
    }

    fn tables(path: &std::path::Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    fn user_version(path: &std::path::Path) -> i64 {
        Connection::open(path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    }

    async fn commands(store: &SqliteStore) -> Vec<CommandRecord> {
        let mut found = Vec::new();
        for n in 1..=3 {
            found.push(store.find_command(command(n)).await.unwrap().expect("every command is found"));
        }
        found
    }

    #[tokio::test]
    async fn a_format_2_log_is_read_then_migrated_in_place_and_verifies_the_same() {
        let (_dir, path) = fixture();
        let before = crate::sqlite::verify(&path, None).unwrap();
        assert!(before.is_intact(), "{before:?}");
        assert_eq!((before.events, before.streams, before.head_position), (6, 2, 6));

        // Read-only tools read format 2 without changing it.
        let reader = SqliteStore::open_read_only(&path).unwrap();
        let old_all = reader.read_all(0, 100).await.unwrap();
        assert_eq!(old_all.len(), 6);
        assert_eq!(old_all[2].metadata.causation_id, Some(EventId::for_command(command(1), 0)));
        let old_stream = reader.read_stream("m-a").await.unwrap();
        assert_eq!(old_stream.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 4, 5, 6]);
        let old_commands = commands(&reader).await;
        assert_eq!(old_commands[0].fingerprint, "a".repeat(64));
        assert_eq!(old_commands[1].fingerprint, "fp-b");
        assert_eq!(old_commands[2].fingerprint, format!("{}0123", "f".repeat(64)));
        assert_eq!((old_commands[2].outcome.first_position, old_commands[2].outcome.last_version), (4, 5));
        drop(reader);
        assert_eq!(user_version(&path), 2);

        // The first writer migrates it: the commands move into their first events.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(user_version(&path), 3);
        assert_eq!(tables(&path), ["events", "streams"]);
        assert_eq!(store.read_all(0, 100).await.unwrap(), old_all, "every field survives");
        assert_eq!(store.read_stream("m-a").await.unwrap(), old_stream);
        assert_eq!(store.read_stream_from("m-a", 4).await.unwrap(), old_stream[3..]);
        assert_eq!(commands(&store).await, old_commands, "the same answers to retried commands");
        let next = store
            .append(AppendRequest { expected: ExpectedVersion::Exact(1), ..request("m-b", ExpectedVersion::Any, 2) })
            .await
            .unwrap();
        assert_eq!((next.first_position, next.last_position, next.last_version), (7, 8, 3));
        drop(store);

        let after = crate::sqlite::verify(&path, Some((6, before.head_hash))).unwrap();
        assert!(after.is_intact(), "{after:?}");
        assert_eq!((after.events, after.streams), (8, 2));
        // Reopening a migrated log changes nothing, and it answers the same.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(commands(&store).await, old_commands);
        drop(store);
        assert_eq!(crate::sqlite::verify(&path, None).unwrap(), after);
    }

    #[tokio::test]
    async fn a_moved_stream_end_in_a_format_2_log_is_found() {
        let (_dir, path) = fixture();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE streams SET last_position = 2 WHERE name = 'm-a'").unwrap();
        drop(conn);
        let b = crate::sqlite::verify(&path, None).unwrap().first_break.expect("found");
        assert_eq!((b.position, b.stream.as_str(), b.version), (6, "m-a", 5));
        assert!(b.reason.contains("ends at position 2"), "{}", b.reason);
    }

    #[tokio::test]
    async fn a_format_2_log_with_a_damaged_commands_table_is_left_as_it_was() {
        let (_dir, path) = fixture();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER commands_are_never_updated; UPDATE commands SET last_position = 3 WHERE first_position = 4;",
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).err().expect("not migrated");
        assert!(err.to_string().contains("cannot migrate the log to format 3"), "{err}");
        assert!(err.to_string().contains("the command at position 4 ends at position 3"), "{err}");
        assert_eq!(user_version(&path), 2);
        assert_eq!(tables(&path), ["commands", "events", "streams"], "the migration's transaction was rolled back");
        assert!(crate::sqlite::verify(&path, None).unwrap().is_intact(), "the hashes do not cover the commands table");
    }

    #[tokio::test]
    async fn a_tampered_format_2_log_stays_found_after_migration() {
        let (_dir, path) = fixture();
        let conn = Connection::open(&path).unwrap();
        // The payload is the end of the packed record: change its last byte.
        conn.execute_batch(
            "DROP TRIGGER events_are_never_updated;
             UPDATE events SET record = CAST(substr(record, 1, length(record) - 2) || '7}' AS BLOB) WHERE position = 5;",
        )
        .unwrap();
        drop(conn);
        assert_eq!(crate::sqlite::verify(&path, None).unwrap().first_break.unwrap().position, 5);
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(user_version(&path), 3);
        let b = crate::sqlite::verify(&path, None).unwrap().first_break.expect("still found");
        assert_eq!(b.position, 5);
        assert!(b.reason.contains("does not match its hash"), "{}", b.reason);
    }
}

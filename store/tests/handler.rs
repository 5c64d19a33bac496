//! Command handling on the real SQLite log: idempotency, conflicts, and no over-commit
//! under concurrent commands.

use chrono::NaiveDate;
use domain::convention::*;
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use std::sync::Arc;
use store::handler::stream_name;
use store::{EventStore, HandleError, SqliteStore, handle};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn sign() -> ConventionCommand {
    ConventionCommand::Sign(SignConvention {
        code: "ANCT-UNCCAS-2021".into(),
        partner: "UNCCAS".into(),
        title: "CCAS et inclusion numérique".into(),
        signed_on: d("2021-03-15"),
        period_start: d("2021-03-15"),
        period_end: d("2022-12-31"),
        total: Money::euros(500_000),
        shares: vec![FundingShare { funder: "ANCT".into(), amount: Money::euros(500_000) }],
        targets: vec![],
        departements: vec![],
        annex_caps: None,
    })
}

fn id() -> ConventionId {
    ConventionId::for_code("ANCT-UNCCAS-2021")
}

async fn setup() -> (Arc<SqliteStore>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("events.sqlite3")).unwrap());
    let stream = stream_name::<Convention>(id());
    handle::<Convention>(store.as_ref(), &stream, &sign(), &meta()).await.unwrap();
    let allocate = ConventionCommand::AllocateEnvelope(AllocateEnvelope {
        convention_id: id(),
        name: "Actions CCAS".into(),
        kind: EnvelopeKind::CcasActions,
        amount: Money::euros(1_000),
        allocated_on: d("2021-03-20"),
        financing: None,
    });
    handle::<Convention>(store.as_ref(), &stream, &allocate, &meta()).await.unwrap();
    (store, stream, dir)
}

fn meta() -> CommandMeta {
    CommandMeta::new(CommandId::new_random(), "anct:test")
}

fn commit(reference: &str, euros: i64) -> ConventionCommand {
    ConventionCommand::CommitFunds(CommitFunds {
        convention_id: id(),
        envelope_id: EnvelopeId::for_name(id(), "Actions CCAS"),
        reference: reference.into(),
        amount: Money::euros(euros),
        committed_on: d("2021-05-01"),
        departement: Some(DepartementCode::parse("2A").unwrap()),
    })
}

#[tokio::test]
async fn the_same_command_id_twice_yields_the_same_answer_and_no_new_event() {
    let (store, stream, _dir) = setup().await;
    let meta = meta();
    let first = handle::<Convention>(store.as_ref(), &stream, &commit("A-1", 100), &meta).await.unwrap();
    let again = handle::<Convention>(store.as_ref(), &stream, &commit("A-1", 100), &meta).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!((again.position, again.version), (first.position, first.version));
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused() {
    let (store, stream, _dir) = setup().await;
    let meta = meta();
    handle::<Convention>(store.as_ref(), &stream, &commit("A-1", 100), &meta).await.unwrap();
    let err = handle::<Convention>(store.as_ref(), &stream, &commit("A-2", 100), &meta).await.unwrap_err();
    assert!(matches!(err, HandleError::CommandIdReused(_)), "{err:?}");
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 3);
}

#[tokio::test]
async fn events_keep_the_commands_metadata() {
    let (store, stream, _dir) = setup().await;
    let mut meta = meta();
    meta.causation_id = Some(domain::EventId::new_random());
    handle::<Convention>(store.as_ref(), &stream, &commit("A-1", 100), &meta).await.unwrap();
    let last = store.read_stream(&stream).await.unwrap().pop().unwrap();
    assert_eq!(last.metadata, meta);
    assert_eq!(last.event_type, "FundsCommitted");
    assert_eq!(last.business_date, d("2021-05-01"));
    assert_eq!(last.payload.to_value()["departement"], "2A");
}

#[tokio::test]
async fn a_refused_command_writes_nothing() {
    let (store, stream, _dir) = setup().await;
    let err = handle::<Convention>(store.as_ref(), &stream, &commit("A-1", 1_001), &meta()).await.unwrap_err();
    assert!(matches!(err, HandleError::Domain(ConventionError::EnvelopeExceeded { .. })), "{err:?}");
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commitments_never_over_commit_the_envelope() {
    let (store, stream, _dir) = setup().await;
    // 20 commitments of 100 € race for an envelope of 1 000 €: exactly 10 must win.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                handle::<Convention>(store.as_ref(), &stream, &commit(&format!("A-{i}"), 100), &meta()).await
            })
        })
        .collect();
    let (mut won, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(HandleError::Domain(ConventionError::EnvelopeExceeded { .. })) => refused += 1,
            Err(HandleError::Conflict { .. }) => {} // lost the race too often: nothing written
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let (state, _) = store::handler::load::<Convention>(store.as_ref(), &stream).await.unwrap();
    let envelope = &state.0.unwrap().envelopes[&EnvelopeId::for_name(id(), "Actions CCAS")];
    assert_eq!(won, 10, "refused {refused}");
    assert_eq!(envelope.committed, Money::euros(1_000));
    assert_eq!(store.read_stream(&stream).await.unwrap().len(), 12);
}

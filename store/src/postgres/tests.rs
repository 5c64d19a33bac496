//! What only PostgreSQL does: several processes on one log, and its own verification.
//! (The conformance suite runs on it too: see `conformance.rs`.)

use super::testing::fresh_url;
use super::*;
use crate::ExpectedVersion::{Exact, NoStream};
use crate::conformance::request;

async fn store(test: &str) -> Option<(String, PostgresStore)> {
    let url = fresh_url(test).await?;
    let store = PostgresStore::connect(&url).await.expect("the test server is reachable");
    Some((url, store))
}

/// A plain connection to the test's schema, for tampering.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_gapless_log_and_see_each_others_writes() {
    let Some((url, a)) = store("two_replicas_share_one_gapless_log").await else { return };
    let b = PostgresStore::connect(&url).await.unwrap();
    let mut b_head = b.head();
    // Both write the same stream concurrently: exactly one wins each version.
    a.append(request("s-one", NoStream, 1)).await.unwrap();
    let (ra, rb) = tokio::join!(a.append(request("s-one", Exact(1), 1)), b.append(request("s-one", Exact(1), 1)));
    assert_eq!([ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(), 1, "{ra:?} {rb:?}");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s: Arc<dyn EventStore> = if i % 2 == 0 { Arc::new(a.clone()) } else { Arc::new(b.clone()) };
            tokio::spawn(async move { s.append(request(&format!("m-{i}"), NoStream, 2)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = b.read_all(0, 1000).await.unwrap();
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=82).collect::<Vec<u64>>());
    // B's head follows A's writes (notification or polling).
    tokio::time::timeout(Duration::from_secs(5), b_head.wait_for(|h| *h == 82)).await.unwrap().unwrap();
    let report = a.verify(None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events, 82);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_moves_without_notifications_by_polling() {
    let Some((url, a)) = store("the_head_moves_without_notifications").await else { return };
    let mut head = a.head();
    // Another writer that commits without notifying (as if the notification were lost).
    let client = raw(&url).await;
    let b = PostgresStore::connect(&url).await.unwrap();
    b.append(request("p-a", NoStream, 1)).await.unwrap();
    // Garbage on the channel does not stop the listener either.
    client.batch_execute(&format!("NOTIFY \"{}\", 'not a position'", a.channel())).await.unwrap();
    tokio::time::timeout(POLL_EVERY * 4, head.wait_for(|h| *h >= 1)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_to_edit_or_delete_events_and_commands() {
    let Some((url, s)) = store("the_database_refuses_to_edit").await else { return };
    s.append(request("e-a", NoStream, 2)).await.unwrap();
    let client = raw(&url).await;
    for sql in [
        "UPDATE tracker_events SET payload = '{}' WHERE position = 1",
        "DELETE FROM tracker_events WHERE position = 2",
        "TRUNCATE tracker_events",
        "UPDATE tracker_commands SET fingerprint = 'x'",
        "DELETE FROM tracker_commands",
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert!(describe(&err).contains("append-only"), "{sql}: {err}");
    }
    assert!(s.verify(None).await.unwrap().is_intact());
}

/// Alters the log behind the triggers' back (as someone with the server's rights could).
async fn tamper(url: &str, sql: &str) {
    let client = raw(url).await;
    client
        .batch_execute(&format!(
            "BEGIN; ALTER TABLE tracker_events DISABLE TRIGGER USER; ALTER TABLE tracker_commands DISABLE TRIGGER USER; \
             {sql}; ALTER TABLE tracker_events ENABLE TRIGGER USER; ALTER TABLE tracker_commands ENABLE TRIGGER USER; COMMIT"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_altered_deleted_and_cut_events() {
    let Some((url, s)) = store("verify_finds_altered_events").await else { return };
    for i in 0..3 {
        s.append(request(&format!("v-{i}"), NoStream, 2)).await.unwrap();
    }
    let intact = s.verify(None).await.unwrap();
    assert!(intact.is_intact(), "{intact:?}");
    let anchor = Some((intact.head_position, intact.head_hash));

    tamper(&url, "UPDATE tracker_events SET payload = '{\"n\":9}' WHERE position = 3").await;
    let b = s.verify(None).await.unwrap().first_break.unwrap();
    assert_eq!(b.position, 3, "{b:?}");
    assert!(b.reason.contains("does not match its hash"), "{b:?}");
    tamper(&url, "UPDATE tracker_events SET payload = '{\"n\":0}' WHERE position = 3").await;
    assert!(s.verify(anchor).await.unwrap().is_intact());

    // A cut tail: the head row still says 6.
    tamper(&url, "DELETE FROM tracker_events WHERE position = 6").await;
    let b = s.verify(None).await.unwrap().first_break.unwrap();
    assert!(b.reason.contains("head row"), "{b:?}");
    // A whole append cut, its record and the head moved back too: only the published
    // digest tells.
    tamper(
        &url,
        "DELETE FROM tracker_events WHERE position = 5; DELETE FROM tracker_commands WHERE last_position = 6; \
         UPDATE tracker_head SET position = 4, log_hash = (SELECT log_hash FROM tracker_events WHERE position = 4)",
    )
    .await;
    assert!(s.verify(None).await.unwrap().is_intact(), "no chain inside the log can tell");
    let b = s.verify(anchor).await.unwrap().first_break.unwrap();
    assert!(b.reason.contains("digest was published"), "{b:?}");

    // A deleted command record.
    tamper(&url, "DELETE FROM tracker_commands WHERE first_position = 1").await;
    let b = s.verify(None).await.unwrap().first_break.unwrap();
    assert!(b.reason.contains("no command record"), "{b:?}");
}

#[tokio::test]
async fn urls_are_recognised_and_errors_never_show_the_password() {
    assert!(is_postgres_url("postgres://u@h/db") && is_postgres_url("postgresql://h/db"));
    assert!(!is_postgres_url("kurrentdb://h:2113"));
    let url = "postgres://tracker:s3cret@127.0.0.1:1/db?password=s3cret";
    assert_eq!(crate::redact_url(url), "postgres://tracker:***@127.0.0.1:1/db?password=***");
    let err = PostgresStore::connect(url).await.err().expect("nothing listens on port 1");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let err = PostgresStore::connect("postgres://tracker:s3cret@h:notaport/db").await.err().unwrap();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_at_a_time_holds_a_lease_and_only_it_saves_the_checkpoint() {
    use crate::ReplicaState;
    let Some((url, a)) = store("one_replica_at_a_time_holds_a_lease").await else { return };
    let b = PostgresStore::connect(&url).await.unwrap();
    let (ra, rb) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ttl = Duration::from_millis(600);
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap());
    assert!(!b.acquire_lease("saga", rb, ttl).await.unwrap(), "held by A");
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap(), "A renews it");
    assert!(a.save_checkpoint("saga", ra, 7).await.unwrap());
    assert!(!b.save_checkpoint("saga", rb, 3).await.unwrap(), "B does not hold it: nothing saved");
    assert_eq!(b.load_checkpoint("saga").await.unwrap(), 7);
    // A stops renewing (it died): once lapsed, B takes it, and A can no longer save.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(b.acquire_lease("saga", rb, ttl).await.unwrap());
    assert!(!a.save_checkpoint("saga", ra, 5).await.unwrap());
    assert!(!a.acquire_lease("saga", ra, ttl).await.unwrap());
    // Given up, it is free at once.
    b.release_lease("saga", rb).await.unwrap();
    assert!(a.acquire_lease("saga", ra, ttl).await.unwrap());
    assert_eq!(a.load_checkpoint("saga").await.unwrap(), 7);
    assert_eq!(a.load_checkpoint("other").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_replica_is_revoked_for_all() {
    use crate::{ReplicaState, SharedToken};
    let Some((url, a)) = store("a_token_revoked_through_one_replica").await else { return };
    let b = PostgresStore::connect(&url).await.unwrap();
    let id = uuid::Uuid::new_v4();
    let token = SharedToken { id, hash: "ab".repeat(32), record: "{}".into(), revoked_at: None };
    a.create_token(token.clone()).await.unwrap();
    assert_eq!(b.token_by_hash(&token.hash).await.unwrap(), Some(token.clone()));
    assert!(b.revoke_token(id, chrono::Utc::now()).await.unwrap());
    assert!(a.token(id).await.unwrap().unwrap().revoked_at.is_some());
    assert!(!a.revoke_token(id, chrono::Utc::now()).await.unwrap(), "already revoked");
    assert_eq!(a.tokens().await.unwrap().len(), 1);
}

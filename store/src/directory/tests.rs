//! The directory's behaviour on both backends: the embedded file, and PostgreSQL's
//! tables shared by replicas (run when a test server is given, shown as skipped otherwise).

use super::*;
use std::path::Path;

fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_reference_is_found_through_an_index_not_a_scan_of_every_person() {
    let dir = tempfile::tempdir().unwrap();
    let rows = super::sqlite::SqliteRows::open(dir.path()).unwrap();
    let plan = rows.query_plan("SELECT id FROM persons WHERE kind = ?1 AND scope = ?2 AND reference = ?3");
    assert!(plan.iter().any(|step| step.contains("USING INDEX persons_lookup")), "{plan:?}");
}

#[test]
fn a_reference_gets_one_random_id_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let d = Directory::open(dir.path()).unwrap();
    let a = d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-0001").unwrap();
    assert_eq!(d.pseudonym(PersonKind::Aidant, "s1", " aidant-0001 ").unwrap(), a, "same person, same id");
    assert_ne!(d.pseudonym(PersonKind::Aidant, "s2", "AIDANT-0001").unwrap(), a, "another structure's aidant");
    let again = Directory::open(dir.path()).unwrap();
    assert_eq!(again.find(PersonKind::Aidant, "s1", "AIDANT-0001").unwrap(), Some(a), "durable");
    assert_eq!(again.display(&a.to_string()), "AIDANT-0001");
}

#[test]
fn forgetting_leaves_no_byte_of_the_reference_and_says_erased() {
    let dir = tempfile::tempdir().unwrap();
    let d = Directory::open(dir.path()).unwrap();
    let marie = d.add_agent("opco", "Marie Dupont").unwrap();
    let refs: Vec<String> = (0..500).map(|i| format!("AIDANT-{i:05}")).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let ids = d.pseudonyms(PersonKind::Aidant, "s1", &refs).unwrap();
    assert!(!files_contain(dir.path(), b"Marie Dupont").is_empty());
    d.forget(marie, "request").unwrap();
    d.forget(ids[3], "request").unwrap();
    assert_eq!(files_contain(dir.path(), b"Marie Dupont"), Vec::<String>::new());
    assert_eq!(files_contain(dir.path(), b"AIDANT-00003"), Vec::<String>::new());
    assert!(!files_contain(dir.path(), b"AIDANT-00004").is_empty(), "the others stay");
    assert_eq!(d.display(&marie.to_string()), ERASED);
    assert!(matches!(d.lookup(ids[3]).unwrap(), Lookup::Erased(Erasure { kind: PersonKind::Aidant, .. })));
    assert!(matches!(d.forget(ids[3], "request"), Err(DirectoryError::NoSuchPerson(_))));
    // The same reference coming back is a new person: nothing links it to the erased one.
    assert_ne!(d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-00003").unwrap(), ids[3]);
}

mod postgres {
    //! The directory in a PostgreSQL log's database, as its replicas share it.

    use super::super::*;
    use crate::postgres::testing::fresh_url;
    use std::sync::Arc;

    async fn raw(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// The bytes of the persons' table and of its indexes, as the server's files hold
    /// them after a checkpoint (the test server's user is a superuser).
    async fn table_files(client: &tokio_postgres::Client) -> Vec<Vec<u8>> {
        client.batch_execute("CHECKPOINT").await.unwrap();
        client
            .query(
                "SELECT pg_read_binary_file(pg_relation_filepath(c.oid)) FROM pg_class c \
                 WHERE c.oid = 'tracker_persons'::regclass \
                    OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'tracker_persons'::regclass)",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn held(files: &[Vec<u8>], needle: &[u8]) -> usize {
        files.iter().filter(|f| f.windows(needle.len()).any(|w| w == needle)).count()
    }

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_issue_one_id_per_reference_and_see_each_others_erasures() {
        let Some(url) = fresh_url("replicas_issue_one_id_per_reference").await else { return };
        // Given two replicas' directories on one database
        let (a, b) = (Directory::connect_postgres(&url).unwrap(), Directory::connect_postgres(&url).unwrap());
        let refs: Vec<String> = (0..300).map(|i| format!("AIDANT-{i:05}")).collect();
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        // When both issue ids for the same references at the same time
        let (from_a, from_b) = std::thread::scope(|s| {
            let on_a = s.spawn(|| a.pseudonyms(PersonKind::Aidant, "s1", &refs).unwrap());
            let on_b = s.spawn(|| b.pseudonyms(PersonKind::Aidant, "s1", &refs).unwrap());
            (on_a.join().unwrap(), on_b.join().unwrap())
        });
        // Then each reference has one id, random, the same on both
        assert_eq!(from_a, from_b);
        assert_eq!(from_a.iter().collect::<std::collections::HashSet<_>>().len(), 300);
        assert_ne!(from_a[3], derived_id(PersonKind::Aidant, "s1", "AIDANT-00003"), "random, not derived");
        assert_eq!(b.pseudonym(PersonKind::Aidant, "s1", " aidant-00003 ").unwrap(), from_a[3]);
        assert_ne!(b.pseudonym(PersonKind::Aidant, "s2", "AIDANT-00003").unwrap(), from_a[3], "another scope");
        assert_eq!(a.display(&from_a[3].to_string()), "AIDANT-00003");
        let marie = a.add_agent("opco", " Marie Dupont ").unwrap();
        assert_eq!(b.agent("opco", "Marie Dupont").unwrap(), marie);
        assert_eq!(b.display(&marie.to_string()), "Marie Dupont");
        // When one replica erases the aidant
        let erased = b.forget(from_a[3], "request").unwrap();
        // Then the other sees it erased at once
        assert_eq!(a.display(&from_a[3].to_string()), ERASED);
        assert!(matches!(a.lookup(from_a[3]).unwrap(), Lookup::Erased(Erasure { kind: PersonKind::Aidant, .. })));
        assert_eq!(a.find(PersonKind::Aidant, "s1", "AIDANT-00003").unwrap(), None);
        assert_eq!(a.erasures().unwrap(), vec![erased]);
        assert!(matches!(a.forget(from_a[3], "request"), Err(DirectoryError::NoSuchPerson(_))));
        // An erasure naming an unknown person erases nobody
        let unknown = Uuid::new_v4();
        assert!(
            matches!(a.forget_many(&[from_a[4], unknown], "request"), Err(DirectoryError::NoSuchPerson(u)) if u == unknown)
        );
        assert!(matches!(b.lookup(from_a[4]).unwrap(), Lookup::Known(_)));
        // The same reference coming back is a new person
        assert_ne!(b.pseudonym(PersonKind::Aidant, "s1", "AIDANT-00003").unwrap(), from_a[3]);
        assert_eq!(a.persons().unwrap().len(), 300 + 1 + 1);
    }

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_erased_person_is_in_no_file_of_the_table_or_its_indexes() {
        let Some(url) = fresh_url("an_erased_person_is_in_no_file").await else { return };
        let d = Directory::connect_postgres(&url).unwrap();
        let refs: Vec<String> = (0..500).map(|i| format!("AIDANT-{i:05}")).collect();
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let ids = d.pseudonyms(PersonKind::Aidant, "s1", &refs).unwrap();
        let marie = d.add_agent("opco", "Marie Dupont").unwrap();
        let client = raw(&url).await;
        let before = table_files(&client).await;
        assert_eq!(held(&before, b"AIDANT-00003"), 2, "the table and the unique index hold it");
        assert_eq!(held(&before, b"Marie Dupont"), 2, "the table and the agents' index hold her");
        d.forget_many(&[ids[3], marie], "request").unwrap();
        let after = table_files(&client).await;
        assert_eq!(held(&after, b"AIDANT-00003"), 0);
        assert_eq!(held(&after, b"Marie Dupont"), 0);
        assert_eq!(held(&after, b"AIDANT-00004"), 2, "the others stay");
    }

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_erasure_waits_for_a_snapshot_older_than_it_before_rewriting_the_table() {
        let Some(url) = fresh_url("an_erasure_waits_for_a_snapshot_older_than_it").await else { return };
        let d = Arc::new(Directory::connect_postgres(&url).unwrap());
        let ids = d.pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-00003", "AIDANT-00004"]).unwrap();
        // Given another session reading the persons in a snapshot taken before the erasure
        let mut reader = raw(&url).await;
        let reading = reader.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead);
        let reading = reading.start().await.unwrap();
        assert_eq!(reading.query("SELECT 1 FROM tracker_persons", &[]).await.unwrap().len(), 2);
        // When the person is erased meanwhile
        let erasing = {
            let d = d.clone();
            tokio::task::spawn_blocking(move || d.forget(ids[0], "request"))
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!erasing.is_finished(), "the erasure waits for the older snapshot");
        // Then, once that session ends, the rewrite leaves no byte of the person
        reading.commit().await.unwrap();
        erasing.await.unwrap().unwrap();
        let files = table_files(&raw(&url).await).await;
        assert_eq!(held(&files, b"AIDANT-00003"), 0);
        assert_eq!(held(&files, b"AIDANT-00004"), 2);
    }

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invented_reference_once_erased_stays_erased_in_the_shared_tables() {
        let Some(url) = fresh_url("an_invented_reference_once_erased").await else { return };
        let d = Directory::connect_postgres(&url).unwrap();
        let ids = d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap();
        assert_eq!(ids[0], derived_id(PersonKind::Aidant, "s1", "AIDANT-001"));
        d.forget(ids[0], "request").unwrap();
        // Seeded again: the same ids, the erased one not brought back
        assert_eq!(d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap(), ids);
        assert!(matches!(d.lookup(ids[0]).unwrap(), Lookup::Erased(_)));
        assert_eq!(d.display(&ids[1].to_string()), "AIDANT-002");
    }

    #[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts one)")]
    #[tokio::test]
    async fn a_single_threaded_caller_is_answered_without_waiting_on_itself() {
        let Some(url) = fresh_url("a_single_threaded_caller_is_answered").await else { return };
        let d = Directory::connect_postgres(&url).unwrap();
        let id = d.pseudonym(PersonKind::Trainee, "p1", "STAGIAIRE-1").unwrap();
        assert_eq!(d.find(PersonKind::Trainee, "p1", "stagiaire-1").unwrap(), Some(id));
        drop(d);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_clear_error_without_the_password() {
        let error = Directory::connect_postgres("postgres://tracker:s3cret@127.0.0.1:1/nowhere")
            .err()
            .expect("nothing listens on port 1")
            .to_string();
        assert!(error.contains("directory of persons"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}

#[test]
fn an_invented_reference_gets_its_derived_id_and_once_erased_stays_erased() {
    let dir = tempfile::tempdir().unwrap();
    let d = Directory::open(dir.path()).unwrap();
    let ids = d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap();
    assert_eq!(ids[0], derived_id(PersonKind::Aidant, "s1", "aidant-001"), "the same log at every seeding");
    assert_eq!(d.pseudonym(PersonKind::Aidant, "s1", "AIDANT-001").unwrap(), ids[0], "a user's later command");
    d.forget(ids[0], "request").unwrap();
    // Seeded again: the log's id comes back, not the reference.
    let again = d.invented_pseudonyms(PersonKind::Aidant, "s1", &["AIDANT-001", "AIDANT-002"]).unwrap();
    assert_eq!(again, ids);
    assert!(matches!(d.lookup(ids[0]).unwrap(), Lookup::Erased(_)));
    assert_eq!(files_contain(dir.path(), b"AIDANT-001"), Vec::<String>::new());
}

//! A dry run: the use cases decide exactly as they do for real, against the log as it is,
//! and nothing is written. The log is wrapped in an overlay that keeps what would have been
//! appended in memory, so that later commands of the same run are decided on the state the
//! earlier ones would have left (a habilitation requested, then validated, in one file),
//! and a command id already "written" in the run gets its first answer back. The overlay
//! applies the log's own checks that a decision can meet (expected versions, command ids
//! reused); it is dropped with the run, and the real log never sees it.

use async_trait::async_trait;
use chrono::Utc;
use domain::CommandId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use store::{
    AppendOutcome, AppendRequest, ChainHash, CommandRecord, EventStore, ExpectedVersion, RecordedEvent, StoreError,
};
use tokio::sync::watch;

/// The log as it is, with a dry run's appends on top (in memory only).
pub struct DryRunStore {
    log: Arc<dyn EventStore>,
    overlay: Mutex<Overlay>,
}

#[derive(Default)]
struct Overlay {
    /// Events the run would have appended, by stream.
    streams: HashMap<String, Vec<RecordedEvent>>,
    commands: HashMap<CommandId, CommandRecord>,
    /// Positions given so far beyond the log's head.
    appended: u64,
}

impl DryRunStore {
    pub fn new(log: Arc<dyn EventStore>) -> Self {
        Self { log, overlay: Mutex::default() }
    }

    /// Events the run would have written.
    pub fn would_write(&self) -> u64 {
        self.overlay.lock().expect("overlay poisoned").appended
    }

    /// The stream's version: the log's, plus what the run appended on it.
    async fn version(&self, stream: &str) -> Result<u64, StoreError> {
        if let Some(last) = self.overlay.lock().expect("overlay poisoned").streams.get(stream).and_then(|s| s.last()) {
            return Ok(last.version);
        }
        Ok(self.log.read_stream(stream).await?.last().map_or(0, |e| e.version))
    }
}

#[async_trait]
impl EventStore for DryRunStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.append_all(vec![request]).await.map(|mut o| o.remove(0))
    }

    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        if requests.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        // What the log already holds, read before the overlay is taken (no lock across awaits).
        let mut versions = Vec::with_capacity(requests.len());
        let mut previous = Vec::with_capacity(requests.len());
        for r in &requests {
            if let Some(record) = self.find_command(r.command_id).await? {
                if record.fingerprint != r.fingerprint {
                    return Err(StoreError::CommandIdReused { command_id: r.command_id });
                }
                previous.push(Some(record.outcome));
            } else {
                previous.push(None);
            }
            versions.push(self.version(&r.stream).await?);
        }
        if previous.iter().all(Option::is_some) {
            return Ok(previous.into_iter().flatten().map(|o| AppendOutcome { duplicate: true, ..o }).collect());
        }
        let head = *self.log.head().borrow();
        let mut overlay = self.overlay.lock().expect("overlay poisoned");
        for (r, actual) in requests.iter().zip(&versions) {
            let matches = match r.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => *actual == 0,
                ExpectedVersion::Exact(v) => *actual == v,
            };
            if !matches {
                return Err(StoreError::WrongExpectedVersion {
                    stream: r.stream.clone(),
                    expected: r.expected,
                    actual: *actual,
                });
            }
        }
        let recorded_at = Utc::now();
        let mut outcomes = Vec::with_capacity(requests.len());
        for (r, version) in requests.into_iter().zip(versions) {
            let first_position = head + overlay.appended + 1;
            let count = r.events.len() as u64;
            let events = r.events.into_iter().enumerate().map(|(i, e)| {
                let i = i as u64;
                RecordedEvent::record(
                    e,
                    &r.stream,
                    version + i + 1,
                    first_position + i,
                    recorded_at,
                    &ChainHash::GENESIS,
                )
            });
            overlay.streams.entry(r.stream.clone()).or_default().extend(events);
            overlay.appended += count;
            let outcome = AppendOutcome {
                stream: r.stream,
                first_version: version + 1,
                last_version: version + count,
                first_position,
                last_position: first_position + count - 1,
                recorded_at,
                duplicate: false,
            };
            overlay
                .commands
                .insert(r.command_id, CommandRecord { fingerprint: r.fingerprint, outcome: outcome.clone() });
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn atomic_multi_stream(&self) -> bool {
        true
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.log.read_stream(stream).await?;
        if let Some(more) = self.overlay.lock().expect("overlay poisoned").streams.get(stream) {
            events.extend(more.iter().cloned());
        }
        Ok(events)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.log.read_all(after, limit).await
    }

    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        self.log.read_at(position).await
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        if let Some(record) = self.overlay.lock().expect("overlay poisoned").commands.get(&command_id) {
            return Ok(Some(record.clone()));
        }
        self.log.find_command(command_id).await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.log.head()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UseCases;
    use domain::structure::{HeadCount, RegisterStructure, Siret, Structure, StructureCommand, StructureKind};
    use domain::{CommandMeta, DepartementCode};
    use store::handler::stream_name;

    fn register(name: &str) -> StructureCommand {
        StructureCommand::Register(RegisterStructure {
            name: name.into(),
            siret: Siret::parse("73282932000074").unwrap(),
            kind: StructureKind::CcasCias,
            departement: DepartementCode::parse("29").unwrap(),
            head_count: HeadCount::Small,
            registered_on: "2021-04-01".parse().unwrap(),
        })
    }

    #[tokio::test]
    async fn a_dry_run_decides_as_the_real_run_and_writes_nothing() {
        let log: Arc<dyn EventStore> = Arc::new(store::MemoryStore::new());
        let real = UseCases::new(log.clone());
        let stream = stream_name::<Structure>(register("x").structure_id().to_string());
        let first = CommandMeta::new(CommandId::new_random(), "test");
        real.execute::<Structure>(stream.clone(), register("CCAS de Brest"), first.clone()).await.unwrap();
        let head = *log.head().borrow();

        let dry = DryRunStore::new(log.clone());
        let dry = Arc::new(dry);
        let uc = UseCases::new(dry.clone());
        // The same command id again: its first answer, as for real.
        let again = uc.execute::<Structure>(stream.clone(), register("CCAS de Brest"), first).await.unwrap();
        assert!(again.duplicate);
        // Another command on the same structure: refused by the same rule as for real.
        let other = CommandMeta::new(CommandId::new_random(), "test");
        let refused = uc.execute::<Structure>(stream.clone(), register("bis"), other).await.unwrap_err();
        assert!(matches!(
            refused,
            store::HandleError::Domain(domain::structure::StructureError::AlreadyRegistered { .. })
        ));
        assert_eq!(*log.head().borrow(), head, "nothing written");
        assert_eq!(dry.would_write(), 0);
    }

    #[tokio::test]
    async fn later_commands_of_a_dry_run_see_what_the_earlier_ones_would_have_written() {
        let log: Arc<dyn EventStore> = Arc::new(store::MemoryStore::new());
        let dry = Arc::new(DryRunStore::new(log.clone()));
        let uc = UseCases::new(dry.clone());
        let stream = stream_name::<Structure>(register("x").structure_id().to_string());
        let meta = CommandMeta::new(CommandId::new_random(), "test");
        let first = uc.execute::<Structure>(stream.clone(), register("CCAS de Brest"), meta.clone()).await.unwrap();
        assert!(!first.duplicate);
        assert_eq!(dry.would_write(), 1);
        let again = uc.execute::<Structure>(stream.clone(), register("CCAS de Brest"), meta).await.unwrap();
        assert!(again.duplicate, "the same line twice in one file: already there");
        let other = CommandMeta::new(CommandId::new_random(), "test");
        let refused = uc.execute::<Structure>(stream, register("bis"), other).await.unwrap_err();
        assert!(matches!(
            refused,
            store::HandleError::Domain(domain::structure::StructureError::AlreadyRegistered { .. })
        ));
        assert_eq!(*log.head().borrow(), 0, "the log never saw it");
        assert!(
            log.read_stream(&stream_name::<Structure>(register("x").structure_id().to_string()))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

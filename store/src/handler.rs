//! The vocabulary of commands over the log (stream names, fingerprints, outcomes, errors)
//! and a plain single-stream handler: load the aggregate, decide, append with the expected
//! version, decide again after a lost race, answer a retried command id with its first
//! answer. Tests and tools use it to write a log; the application's write path is the
//! `usecases` crate (turns per stream, groups, atomic writes across streams).

use crate::{AppendOutcome, AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};
use domain::{Aggregate, CommandMeta, DomainEvent, EventId};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How many times a command is decided again after losing a race on its stream.
pub const MAX_ATTEMPTS: usize = 8;

/// What an accepted command wrote: enough for a client to wait for its read models
/// (`position`) and to recognise a replayed answer (`duplicate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandOutcome {
    pub stream: String,
    pub first_version: u64,
    pub version: u64,
    /// Global position of the last event written.
    pub position: u64,
    /// True when the command id had been applied before: nothing new was written.
    pub duplicate: bool,
}

impl From<AppendOutcome> for CommandOutcome {
    fn from(o: AppendOutcome) -> Self {
        Self {
            stream: o.stream,
            first_version: o.first_version,
            version: o.last_version,
            position: o.last_position,
            duplicate: o.duplicate,
        }
    }
}

/// Why a command was not applied. Each variant maps to one API error code.
#[derive(Debug, thiserror::Error)]
pub enum HandleError<E> {
    /// A business rule refused the command (`BAD_USER_INPUT`, or `NOT_FOUND`/`CONFLICT`
    /// for the rules that say so).
    #[error(transparent)]
    Domain(E),
    /// Other writers kept winning the race on this stream (`CONFLICT`): try again.
    #[error("stream {stream} kept changing under this command ({attempts} attempts): try again")]
    Conflict { stream: String, attempts: usize },
    /// The command id was used before for another command (`CONFLICT`).
    #[error("command id {0} was already used for a different command")]
    CommandIdReused(domain::CommandId),
    /// The log failed (`INTERNAL`).
    #[error(transparent)]
    Store(StoreError),
}

impl<E> From<StoreError> for HandleError<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CommandIdReused { command_id } => HandleError::CommandIdReused(command_id),
            other => HandleError::Store(other),
        }
    }
}

/// The stream of one aggregate instance.
pub fn stream_name<A: Aggregate>(id: impl std::fmt::Display) -> String {
    format!("{}-{}", A::CATEGORY, id)
}

/// A stable digest of the command's content, so that a reused id with other content is
/// told apart from a genuine retry.
pub fn fingerprint(command: &impl Serialize) -> Result<String, StoreError> {
    // A command that cannot be serialised has no digest: an empty one would make every
    // such command a retry of the first.
    let bytes = serde_json::to_vec(command)
        .map_err(|e| StoreError::backend_context("the command cannot be serialised for its fingerprint", e))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

fn decode<A: Aggregate>(r: &crate::RecordedEvent) -> Result<A::Event, StoreError> {
    r.payload
        .decode()
        .map_err(|e| StoreError::corrupt_from(format_args!("{} v{} ({})", r.stream, r.version, r.event_type), e))
}

/// Loads an aggregate from its stream (the whole stream: the application layer keeps
/// folded states in its lanes; this helper serves tests and tools); returns it with its version.
pub async fn load<A: Aggregate>(store: &dyn EventStore, stream: &str) -> Result<(A, u64), StoreError> {
    let mut state = A::default();
    let mut version = 0;
    for r in &store.read_stream(stream).await? {
        state.evolve(&decode::<A>(r)?);
        version = r.version;
    }
    Ok((state, version))
}

/// Handles one command on the aggregate whose stream is `stream`.
#[tracing::instrument(skip_all, fields(stream = %stream, command_id = %meta.command_id, actor = %meta.actor))]
pub async fn handle<A: Aggregate>(
    store: &dyn EventStore,
    stream: &str,
    command: &A::Command,
    meta: &CommandMeta,
) -> Result<CommandOutcome, HandleError<A::Error>> {
    let fingerprint = fingerprint(command)?;
    for attempt in 0..MAX_ATTEMPTS {
        // A retry of an applied command must not be judged again: the state has moved on.
        if let Some(previous) = store.find_command(meta.command_id).await? {
            if previous.fingerprint != fingerprint || previous.outcome.stream != stream {
                return Err(HandleError::CommandIdReused(meta.command_id));
            }
            return Ok(previous.outcome.into());
        }
        let (state, version) = load::<A>(store, stream).await?;
        let events = state.decide(command).map_err(HandleError::Domain)?;
        let request = AppendRequest {
            stream: stream.to_string(),
            expected: if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) },
            command_id: meta.command_id,
            fingerprint: fingerprint.clone(),
            events: events
                .iter()
                .enumerate()
                .map(|(i, e)| to_new_event(e, meta, EventId::for_command(meta.command_id, i)))
                .collect::<Result<_, _>>()?,
        };
        match store.append(request).await {
            Ok(outcome) => return Ok(outcome.into()),
            Err(StoreError::WrongExpectedVersion { .. }) => {
                // Another writer won the race: back off a little (growing, and spread by
                // the command id so that racing writers do not retry in lockstep).
                let spread = u64::from(meta.command_id.0.as_bytes()[15]) + 1;
                tokio::time::sleep(std::time::Duration::from_micros(spread * (1 << attempt.min(6)))).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandleError::Conflict { stream: stream.to_string(), attempts: MAX_ATTEMPTS })
}

fn to_new_event<E: DomainEvent>(event: &E, meta: &CommandMeta, event_id: EventId) -> Result<NewEvent, StoreError> {
    Ok(NewEvent {
        event_id,
        event_type: event.event_type().to_string(),
        schema_version: event.schema_version(),
        business_date: event.business_date(),
        payload: crate::Payload::encode(event).map_err(StoreError::backend_from)?,
        metadata: meta.clone(),
    })
}

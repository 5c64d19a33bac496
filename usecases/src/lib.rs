//! The application layer of Convention Tracker: the one write path. Every entry point
//! (GraphQL, seeders, sagas, imports) calls these typed use cases; each loads what it needs
//! from the log (never from a read model), decides with the pure domain, and writes every
//! resulting event in one atomic append across its streams, or nothing.
//!
//! Concurrency: this process's writers of one stream take turns ([`lanes`]): concurrent
//! commands on a hot stream are decided one after the other and written as a group, so
//! none is refused for contention while the rules allow it. Between processes, expected
//! versions guard every write and a lost race is decided again. A command id already
//! applied gets its first answer back, concurrent retries included. Every `UseCases` on
//! one embedded log shares this process's lanes on it, which lets steps pipeline their
//! companion's writes (see [`UseCases::step`]).
//!
//! It must never decide from a read model, nor write a use case's streams one by one.

pub mod dry_run;
mod lanes;
pub mod moves;
pub mod programmes;

use domain::convention::{Convention, ConventionError};
use domain::ids::TRACKER_NAMESPACE;
use domain::{Aggregate, CommandId, CommandMeta, DomainEvent, EventId};
use lanes::{Folded, Job, Lanes};
use std::sync::Arc;
use store::handler::{fingerprint, stream_name};
use store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StoreError};
use tokio::sync::oneshot;

pub use store::{CommandOutcome, HandleError};

/// How many times a group is decided again after another process wrote its stream first.
pub const MAX_ATTEMPTS: usize = 8;

/// Why a use case that writes several streams was not applied. Each variant maps to one
/// API error code.
#[derive(Debug, thiserror::Error)]
pub enum StepError<E> {
    /// The entity's own rule refused the command.
    #[error(transparent)]
    Domain(E),
    /// The convention refused the money move the step implies.
    #[error(transparent)]
    Convention(ConventionError),
    /// The training session refused the seat.
    #[error(transparent)]
    Session(domain::aidants::SessionError),
    /// The partner's disbursement ledger refused the entry.
    #[error(transparent)]
    Disbursement(domain::disbursement::DisbursementError),
    /// A fact the decision needs is not in the log (e.g. the envelope to charge).
    #[error("{message}")]
    Missing { field: &'static str, message: String },
    /// Other processes kept winning the race on these streams.
    #[error("the streams of this command kept changing under it ({attempts} attempts): try again")]
    Conflict { attempts: usize },
    /// The command id was used before for another command.
    #[error("command id {0} was already used for a different command")]
    CommandIdReused(CommandId),
    /// The log failed.
    #[error(transparent)]
    Store(StoreError),
}

impl<E> From<StoreError> for StepError<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CommandIdReused { command_id } => StepError::CommandIdReused(command_id),
            other => StepError::Store(other),
        }
    }
}

/// An aggregate a use case may write beside its entity, and how its refusals read.
pub trait Companion: Aggregate {
    fn refused<E>(error: Self::Error) -> StepError<E>;
}

impl Companion for Convention {
    fn refused<E>(error: ConventionError) -> StepError<E> {
        StepError::Convention(error)
    }
}

impl Companion for domain::claim::roll::ClaimRoll {
    fn refused<E>(error: domain::claim::roll::RollError) -> StepError<E> {
        match error {}
    }
}

impl Companion for domain::disbursement::Disbursements {
    fn refused<E>(error: domain::disbursement::DisbursementError) -> StepError<E> {
        StepError::Disbursement(error)
    }
}

impl Companion for domain::aidants::TrainingSession {
    fn refused<E>(error: domain::aidants::SessionError) -> StepError<E> {
        StepError::Session(error)
    }
}

/// The id of the companion write a command causes: derived, so a retry writes nothing twice.
pub fn derived(command: CommandId, part: &str) -> CommandId {
    CommandId(uuid::Uuid::new_v5(&TRACKER_NAMESPACE, format!("{}:{part}", command.0).as_bytes()))
}

fn expected(version: u64) -> ExpectedVersion {
    if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
}

fn new_events<E: DomainEvent>(events: &[E], meta: &CommandMeta) -> Result<Vec<NewEvent>, StoreError> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(NewEvent {
                event_id: EventId::for_command(meta.command_id, i),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                business_date: e.business_date(),
                payload: store::Payload::encode(e).map_err(|e| StoreError::backend(e.to_string()))?,
                metadata: meta.clone(),
            })
        })
        .collect()
}

/// A store error again, for the other commands of a group it failed (errors are not `Clone`).
fn again(e: &StoreError) -> StoreError {
    StoreError::backend(e.to_string())
}

/// Waits a little before deciding again after losing a race to another process (growing,
/// spread by the command id so that racing writers do not retry in lockstep).
async fn back_off(command_id: CommandId, attempt: usize) {
    let spread = u64::from(command_id.0.as_bytes()[15]) + 1;
    tokio::time::sleep(std::time::Duration::from_micros(spread * (1 << attempt.min(6)))).await;
}

/// What a use case needs: the log, and this process's lanes on it.
pub struct UseCases {
    store: Arc<dyn EventStore>,
    lanes: Arc<Lanes>,
    /// Who stands behind the opaque ids the events carry (see [`UseCases::pseudonym`]).
    people: Arc<store::Directory>,
}

/// Why a reference of a person was not turned into an id.
#[derive(Debug, thiserror::Error)]
pub enum PseudonymError {
    /// It looks like personal data, not a pseudonym: refused before anything is kept.
    #[error("the reference looks like {0}")]
    PersonalData(domain::personal::LooksLike),
    #[error(transparent)]
    Directory(#[from] store::DirectoryError),
}

impl UseCases {
    /// Use cases on `store`, with a directory of persons in memory whose ids are derived
    /// from the references (tests and in-memory tools: the same reference, the same id).
    pub fn new(store: Arc<dyn EventStore>) -> Arc<Self> {
        Self::with_people(store, Arc::new(store::Directory::in_memory()))
    }

    /// Use cases whose persons are in `people` (a data directory's directory), sharing
    /// this process's lanes on `store` with every other `UseCases` on the same log (the
    /// server's, the seeders', the imports').
    pub fn with_people(store: Arc<dyn EventStore>, people: Arc<store::Directory>) -> Arc<Self> {
        let lanes = Lanes::shared(&store);
        Arc::new(Self { store, lanes, people })
    }

    /// Use cases with lanes of their own, as another process on the same log would have
    /// (for tests of what happens between processes).
    pub fn another_process(store: Arc<dyn EventStore>) -> Arc<Self> {
        let lanes = Lanes::separate(&store);
        Arc::new(Self { store, lanes, people: Arc::new(store::Directory::in_memory()) })
    }

    /// The directory of persons.
    pub fn people(&self) -> &Arc<store::Directory> {
        &self.people
    }

    /// The opaque id to record instead of a partner's reference of a person (an aidant
    /// in a structure, a trainee of a purchase, a Pix candidate of a campaign), issued on
    /// first use; the reference stays in the directory only, where it can be erased. A
    /// reference that looks like an e-mail address, a phone number or a NIR is refused
    /// first (blank ones are left to the domain's rules).
    pub fn pseudonym(&self, kind: store::PersonKind, scope: &str, reference: &str) -> Result<String, PseudonymError> {
        if reference.trim().is_empty() {
            return Ok(String::new());
        }
        if let Some(looks_like) = domain::personal::looks_like(reference) {
            return Err(PseudonymError::PersonalData(looks_like));
        }
        let id = self.pseudonym_deferred(kind, scope, reference)?;
        self.people.make_durable()?;
        Ok(id)
    }

    /// [`pseudonym`](Self::pseudonym) without making the new id durable yet: for a file
    /// of references, made durable once with [`store::Directory::make_durable`] before
    /// any of its lines is written.
    pub fn pseudonym_deferred(
        &self,
        kind: store::PersonKind,
        scope: &str,
        reference: &str,
    ) -> Result<String, PseudonymError> {
        if reference.trim().is_empty() {
            return Ok(String::new());
        }
        if let Some(looks_like) = domain::personal::looks_like(reference) {
            return Err(PseudonymError::PersonalData(looks_like));
        }
        Ok(self.people.pseudonym(kind, scope, reference)?.to_string())
    }

    /// The ids of references the tracker **invented itself** (the demo's and the plan's
    /// seeders: `AIDANT-001`…), all in `scope`, in one transaction: in the directory like
    /// any reference (shown, found by `subject-access`, erased by `forget`), with ids
    /// derived from them so that a seeding writes the same log every time. Never for real
    /// persons, whose ids must say nothing of them: use [`pseudonym`](Self::pseudonym).
    /// Not durable yet: call [`store::Directory::make_durable`] before writing them.
    pub fn invented_pseudonyms(
        &self,
        kind: store::PersonKind,
        scope: &str,
        references: &[&str],
    ) -> Result<Vec<String>, PseudonymError> {
        if let Some(looks_like) = references.iter().find_map(|r| domain::personal::looks_like(r)) {
            return Err(PseudonymError::PersonalData(looks_like));
        }
        let ids = self.people.invented_pseudonyms(kind, scope, references)?;
        Ok(ids.into_iter().map(|id| id.to_string()).collect())
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// A command on one aggregate. Concurrent commands on the same stream are decided in
    /// turn, as a group, and written in one go (the log commits them together); a command
    /// id already applied gets its first answer with `duplicate: true`.
    #[tracing::instrument(skip_all, fields(stream = %stream, command_id = %meta.command_id))]
    pub async fn execute<A: Aggregate>(
        &self,
        stream: String,
        command: A::Command,
        meta: CommandMeta,
    ) -> Result<CommandOutcome, HandleError<A::Error>>
    where
        A::Command: 'static,
    {
        let lane = self.lanes.get::<A>(&stream);
        let (reply, answer) = oneshot::channel();
        let fingerprint = fingerprint(&command)?;
        lane.queue.lock().expect("lane queue poisoned").push(Job { command, meta, fingerprint, reply });
        // The group runs in a task of its own: a caller that goes away (a closed HTTP
        // connection) must not take the other commands of its group with it.
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut folded = lane.turn.clone().lock_owned().await;
            let jobs = std::mem::take(&mut *lane.queue.lock().expect("lane queue poisoned"));
            if !jobs.is_empty() {
                run_group::<A>(store.as_ref(), &lane.stream, &mut folded, jobs).await;
            }
        });
        answer.await.unwrap_or_else(|_| Err(HandleError::Store(StoreError::backend("the command was dropped"))))
    }

    /// A use case that changes an entity and, through it, a companion aggregate (the
    /// convention its money moves on, the session whose seat it takes, the roll of a
    /// training's claimants): both decided from the log, both written in one atomic
    /// append, companion first. `companion` names the companion's stream, if any, from the
    /// entity's state and the command; `complete` adds to the command what the companion
    /// knows (a count, say); `commands` gives the companion's commands for the entity's new
    /// events. Both streams are held for this process for the whole decision; on a log
    /// that hands appends over in order ([`EventStore::ordered_log`]), the companion's turn
    /// is released once the append is handed over (pipelining: the companion's next writer
    /// decides on top of it and their commits share a group), and a refusal decided on
    /// appends still in flight waits for them and stands only if they were written.
    pub async fn step<A, B>(
        &self,
        entity: String,
        mut command: A::Command,
        meta: CommandMeta,
        companion: impl Fn(&A, &A::Command) -> Option<String>,
        complete: impl Fn(&B, &mut A::Command),
        commands: impl Fn(&B, &A, &[A::Event]) -> Result<Vec<B::Command>, StepError<A::Error>>,
    ) -> Result<CommandOutcome, StepError<A::Error>>
    where
        A: Aggregate,
        B: Companion,
        A::Command: 'static,
        B::Command: 'static,
    {
        let fingerprint = fingerprint(&command)?;
        let lane = self.lanes.get::<A>(&entity);
        let mut folded = lane.turn.clone().lock_owned().await;
        for attempt in 0..MAX_ATTEMPTS {
            folded.refresh(self.store.as_ref(), &entity).await?;
            if let Some(previous) = self.store.find_command(meta.command_id).await? {
                if previous.fingerprint != fingerprint || previous.outcome.stream != entity {
                    return Err(StepError::CommandIdReused(meta.command_id));
                }
                return Ok(CommandOutcome { duplicate: true, ..previous.outcome.into() });
            }
            let mut other = match companion(&folded.state, &command) {
                Some(stream) => {
                    // Companions' lanes are taken last and hold no other: no cycle, no deadlock.
                    let mut other = self.lanes.get::<B>(&stream).turn.clone().lock_owned().await;
                    other.refresh(self.store.as_ref(), &stream).await?;
                    complete(&other.state, &mut command);
                    Some((stream, other))
                }
                None => None,
            };
            let decision: Result<_, StepError<A::Error>> = 'decide: {
                let events = match folded.state.decide(&command) {
                    Ok(events) => events,
                    Err(e) => break 'decide Err(StepError::Domain(e)),
                };
                let mut requests = Vec::with_capacity(2);
                let mut companion_events = 0;
                if let Some((stream, other)) = &mut other {
                    let commands = match commands(&other.state, &folded.state, &events) {
                        Ok(commands) => commands,
                        Err(e) => break 'decide Err(e),
                    };
                    let mut decided = Vec::new();
                    for c in &commands {
                        match other.state.decide(c) {
                            Ok(new) => {
                                other.dirty = true;
                                for e in &new {
                                    other.state.evolve(e);
                                }
                                decided.extend(new);
                            }
                            Err(e) => {
                                other.dirty |= !decided.is_empty();
                                break 'decide Err(B::refused(e));
                            }
                        }
                    }
                    if !decided.is_empty() {
                        let meta = CommandMeta { command_id: derived(meta.command_id, B::CATEGORY), ..meta.clone() };
                        match new_events(&decided, &meta).and_then(|new| {
                            Ok(AppendRequest {
                                stream: stream.clone(),
                                expected: expected(other.version),
                                command_id: meta.command_id,
                                fingerprint: store::handler::fingerprint(&commands)?,
                                events: new,
                            })
                        }) {
                            Ok(request) => requests.push(request),
                            Err(e) => break 'decide Err(e.into()),
                        }
                    }
                    companion_events = decided.len() as u64;
                }
                match new_events(&events, &meta) {
                    Ok(new) => requests.push(AppendRequest {
                        stream: entity.clone(),
                        expected: expected(folded.version),
                        command_id: meta.command_id,
                        fingerprint: fingerprint.clone(),
                        events: new,
                    }),
                    Err(e) => break 'decide Err(e.into()),
                }
                Ok((events, requests, companion_events))
            };
            let (events, requests, companion_events) = match decision {
                Ok(decided) => decided,
                Err(refusal) => {
                    // A refusal decided on the companion's appends still in flight stands
                    // once they are written; if one was not, the command is decided again.
                    let pending = other.as_ref().map(|(_, o)| o.in_flight()).unwrap_or_default();
                    drop(other);
                    if pending.is_empty() || lanes::all_written(pending).await {
                        return Err(refusal);
                    }
                    continue;
                }
            };
            let mut append = self.store.append_all(requests);
            let result = match other {
                Some((_, mut other)) if self.lanes.pipelining() && companion_events > 0 => {
                    match futures::poll!(&mut append) {
                        std::task::Poll::Ready(result) => {
                            if result.is_ok() {
                                other.version += companion_events;
                                other.dirty = false;
                            }
                            result
                        }
                        std::task::Poll::Pending => {
                            // Handed to the log, in order: the companion's next writer may
                            // decide on top of it while it commits (their commits share a
                            // group). Its append is written only if this one is.
                            other.version += companion_events;
                            other.dirty = false;
                            let in_flight = lanes::InFlight::register(&mut other);
                            drop(other);
                            let result = append.await;
                            in_flight.settle(result.is_ok());
                            result
                        }
                    }
                }
                other => {
                    let result = append.await;
                    if let (Ok(_), Some((_, mut other))) = (&result, other) {
                        other.version += companion_events;
                        other.dirty = false;
                    }
                    result
                }
            };
            match result {
                Ok(outcomes) => {
                    for e in &events {
                        folded.state.evolve(e);
                    }
                    folded.version += events.len() as u64;
                    let last = outcomes.into_iter().last().expect("the entity's append");
                    return Ok(last.into());
                }
                Err(StoreError::WrongExpectedVersion { .. }) => back_off(meta.command_id, attempt).await,
                Err(e) => return Err(e.into()),
            }
            // What the companion's state holds was not written: it folds its stream again.
        }
        Err(StepError::Conflict { attempts: MAX_ATTEMPTS })
    }

    /// A money move on a convention alone (commit, release, service done, payment), or any
    /// other command of a convention.
    pub async fn convention(
        &self,
        command: domain::convention::ConventionCommand,
        meta: CommandMeta,
    ) -> Result<CommandOutcome, HandleError<ConventionError>> {
        let stream = stream_name::<Convention>(command.convention_id());
        self.execute::<Convention>(stream, command, meta).await
    }
}

/// Decides a group of commands on one stream, in arrival order, each on the state the
/// previous ones left, and writes them in one go; answers each. After losing a race to
/// another process, decides what is left again.
async fn run_group<A: Aggregate>(store: &dyn EventStore, stream: &str, folded: &mut Folded<A>, mut jobs: Vec<Job<A>>)
where
    A::Command: 'static,
{
    for attempt in 0..MAX_ATTEMPTS {
        // Steps' appends still in flight on this stream: decide on what they really wrote
        // (a refusal must not rest on an append that then fails).
        let pending = folded.in_flight();
        if !pending.is_empty() {
            lanes::all_written(pending).await;
        }
        if let Err(e) = folded.refresh(store, stream).await {
            for job in jobs {
                let _ = job.reply.send(Err(HandleError::Store(again(&e))));
            }
            return;
        }
        // The commands to write, and those that carry the same id as one of them (twins:
        // concurrent retries, answered with its outcome).
        let mut planned: Vec<(Job<A>, Vec<Job<A>>)> = Vec::new();
        let mut requests = Vec::new();
        let mut version = folded.version;
        for job in jobs {
            match store.find_command(job.meta.command_id).await {
                Err(e) => {
                    let _ = job.reply.send(Err(e.into()));
                    continue;
                }
                Ok(Some(previous)) => {
                    let answer = if previous.fingerprint == job.fingerprint && previous.outcome.stream == stream {
                        Ok(CommandOutcome { duplicate: true, ..previous.outcome.into() })
                    } else {
                        Err(HandleError::CommandIdReused(job.meta.command_id))
                    };
                    let _ = job.reply.send(answer);
                    continue;
                }
                Ok(None) => {}
            }
            if let Some((first, twins)) = planned.iter_mut().find(|(p, _)| p.meta.command_id == job.meta.command_id) {
                if first.fingerprint == job.fingerprint {
                    twins.push(job);
                } else {
                    let _ = job.reply.send(Err(HandleError::CommandIdReused(job.meta.command_id)));
                }
                continue;
            }
            let events = match folded.state.decide(&job.command) {
                Ok(events) => events,
                Err(e) => {
                    let _ = job.reply.send(Err(HandleError::Domain(e)));
                    continue;
                }
            };
            let request = new_events(&events, &job.meta).map(|new| AppendRequest {
                stream: stream.to_string(),
                expected: expected(version),
                command_id: job.meta.command_id,
                fingerprint: job.fingerprint.clone(),
                events: new,
            });
            match request {
                Ok(request) if !request.events.is_empty() => {
                    folded.dirty = true;
                    for e in &events {
                        folded.state.evolve(e);
                    }
                    version += events.len() as u64;
                    requests.push(request);
                    planned.push((job, Vec::new()));
                }
                Ok(_) => {
                    let _ = job.reply.send(Err(HandleError::Store(StoreError::EmptyAppend)));
                }
                Err(e) => {
                    let _ = job.reply.send(Err(HandleError::Store(e)));
                }
            }
        }
        // Sent together, in order: the log commits them in one group.
        let results = futures::future::join_all(requests.into_iter().map(|r| store.append(r))).await;
        let mut lost = Vec::new();
        let mut all_written = true;
        for ((job, twins), result) in planned.into_iter().zip(results) {
            match result {
                Ok(outcome) => {
                    let outcome = CommandOutcome::from(outcome);
                    for twin in twins {
                        let _ = twin.reply.send(Ok(CommandOutcome { duplicate: true, ..outcome.clone() }));
                    }
                    let _ = job.reply.send(Ok(outcome));
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    all_written = false;
                    lost.push(job);
                    lost.extend(twins);
                }
                Err(e) => {
                    all_written = false;
                    for twin in twins {
                        let _ = twin.reply.send(Err(HandleError::Store(again(&e))));
                    }
                    let _ = job.reply.send(Err(e.into()));
                }
            }
        }
        if all_written {
            folded.version = version;
            folded.dirty = false;
        }
        if lost.is_empty() {
            return;
        }
        back_off(lost[0].meta.command_id, attempt).await;
        jobs = lost;
    }
    for job in jobs {
        let _ = job.reply.send(Err(HandleError::Conflict { stream: stream.to_string(), attempts: MAX_ATTEMPTS }));
    }
}

#[cfg(test)]
mod tests;

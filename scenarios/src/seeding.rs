//! What the seeders share: their steps go through the typed use cases, the one write path
//! (as ANCT, the OPCO or a structure would send them, with that actor recorded), many
//! flows at a time, with the reimbursement saga driven to idle where later steps depend on
//! what it writes, and a progress bar on a terminal.
//!
//! A step's command id is given by its seeder (derived from the scenario), so seeding again
//! writes nothing and an interrupted seeding resumes: a step already in the log is skipped
//! with one lookup. No read model is needed: every fact a step needs is the seeder's own
//! or read from the log by its use case.

use anyhow::{Context as _, anyhow};
use chrono::NaiveDate;
use domain::aidants::{HabilitationCommand, HabilitationId, SessionCommand, SessionId, TrainingSession};
use domain::ccas::RecordCcasAction;
use domain::claim::{AnnexClaim, ClaimCommand, ClaimId, ExpenseLine};
use domain::funds_call::FundsCallCommand;
use domain::pix::PixCommand;
use domain::purchase::PurchaseCommand;
use domain::structure::{Structure, StructureCommand};
use domain::{CommandId, CommandMeta};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::EventStore;
use store::handler::stream_name;
use usecases::UseCases;
use usecases::programmes::AnnexClaimRequest;

/// A typed command of the programmes, as one use case takes it.
pub(crate) enum Command {
    Structure(StructureCommand),
    Purchase(PurchaseCommand),
    Pix(PixCommand),
    Ccas(RecordCcasAction),
    Session(SessionCommand),
    Habilitation(HabilitationCommand),
    RegisterToSession {
        habilitation: HabilitationId,
        session: SessionId,
        on: NaiveDate,
    },
    SubmitClaim(AnnexClaimRequest),
    ResubmitClaim {
        claim: ClaimId,
        lines: Vec<ExpenseLine>,
        on: NaiveDate,
    },
    Claim(ClaimCommand),
    FundsCall(FundsCallCommand),
    /// A step of the register of the plan's measures.
    Measure {
        stream: String,
        command: domain::measure::MeasureCommand,
    },
    /// The money between ANCT and a partner (statements, claims for payment, payments…).
    Disbursement(domain::disbursement::DisbursementCommand),
}

impl Command {
    /// A step the reimbursement saga reacts to.
    fn is_reimbursement(&self) -> bool {
        matches!(
            self,
            Command::SubmitClaim(_) | Command::ResubmitClaim { .. } | Command::Claim(_) | Command::FundsCall(_)
        )
    }

    /// About how many events the step writes, the saga's reactions included: only the
    /// progress bar's length (it is corrected as phases end).
    fn expected_events(&self) -> u64 {
        match self {
            Command::Structure(_) | Command::Session(_) => 1,
            Command::Purchase(PurchaseCommand::Request(_)) => 1,
            Command::Purchase(PurchaseCommand::RecordAttendance { .. }) => 3,
            Command::Purchase(_) | Command::Pix(_) | Command::RegisterToSession { .. } => 2,
            Command::Habilitation(HabilitationCommand::CompleteTraining { .. }) => 3,
            Command::Habilitation(_) => 1,
            Command::Ccas(_) => 3,
            // The saga flags an unassessed submission overdue.
            Command::SubmitClaim(_) | Command::ResubmitClaim { .. } => 2,
            // The saga commits an approved claim's amount and records it funded.
            Command::Claim(ClaimCommand::Approve { .. }) => 3,
            Command::Claim(ClaimCommand::RecordPayment { .. }) => 2,
            Command::Claim(_) | Command::Measure { .. } => 1,
            Command::FundsCall(_) => 2,
            Command::Disbursement(_) => 1,
        }
    }
}

/// One step of a scenario: who sends it, its command id and what it says. The label
/// names it in an error.
pub(crate) struct Step {
    pub who: api::Role,
    pub id: CommandId,
    pub label: String,
    pub command: Command,
}

/// Steps of one entity, in order; the flows of a phase run concurrently.
pub(crate) type Flow = Vec<Step>;

/// The actor the API records for a local principal of `role` (what the seeders sent
/// through GraphQL before they called the use cases).
fn actor(role: api::Role) -> String {
    api::Principal::local(role, crate::demo::ACTOR).actor()
}

/// The seeders' write path, their saga and their progress.
pub(crate) struct Seeder {
    use_cases: Arc<UseCases>,
    saga: tokio::sync::Mutex<sagas::ReimbursementProcess>,
    progress: Progress,
    sent: AtomicU64,
}

impl Seeder {
    /// A seeder on `store` whose persons are in `people` (the seeded data directory's
    /// directory), the reimbursement saga started from the beginning of the log (what it
    /// already wrote it finds there, and sends nothing twice).
    pub async fn new(
        store: Arc<dyn EventStore>,
        people: Arc<store::Directory>,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let use_cases = UseCases::with_people(store.clone(), people);
        let process = sagas::ReimbursementProcess::start(
            store,
            Arc::new(sagas::MemoryCheckpoint::default()),
            Arc::new(sagas::SystemClock),
        )
        .await?
        .with_use_cases(use_cases.clone());
        Ok(Self { use_cases, saga: tokio::sync::Mutex::new(process), progress, sent: AtomicU64::new(0) })
    }

    /// Commands sent to the use cases (steps already in the log are not sent).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The ids the log records for references the scenario invented (`AIDANT-001`…), all
    /// in `scope` (the structure of aidants, the purchase of trainees, the campaign of Pix
    /// candidates, as the API scopes them), issued in one go: see
    /// [`UseCases::invented_pseudonyms`]. Made durable before the next phase writes.
    pub fn invented(&self, kind: store::PersonKind, scope: &str, references: &[&str]) -> anyhow::Result<Vec<String>> {
        self.use_cases
            .invented_pseudonyms(kind, scope, references)
            .with_context(|| format!("the invented references of {} in {scope}", kind.name()))
    }

    /// The ids issued so far made durable (one checkpoint), before events carry them.
    fn durable(&self) -> anyhow::Result<()> {
        self.use_cases.people().make_durable().context("the directory of persons")
    }

    fn store(&self) -> &Arc<dyn EventStore> {
        self.use_cases.store()
    }

    /// Runs one step through its use case; a refusal fails the seeding.
    pub async fn run(&self, step: Step) -> anyhow::Result<()> {
        let expected = step.command.expected_events();
        // Already applied (an earlier, maybe interrupted, seeding): one lookup.
        if self.store().find_command(step.id).await?.is_some() {
            self.progress.skipped(expected);
            return Ok(());
        }
        let meta = CommandMeta::new(step.id, actor(step.who));
        let uc = &self.use_cases;
        let refused = |e: &dyn std::fmt::Display| anyhow!("step {} was refused: {e}", step.label);
        self.sent.fetch_add(1, Ordering::Relaxed);
        match step.command {
            Command::Structure(c) => {
                let stream = stream_name::<Structure>(c.structure_id().to_string());
                uc.execute::<Structure>(stream, c, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::Purchase(c) => uc.purchase(c, meta).await.map(drop).map_err(|e| refused(&e)),
            Command::Pix(c) => uc.pix(c, meta).await.map(drop).map_err(|e| refused(&e)),
            Command::Ccas(c) => uc.ccas(c, meta).await.map(drop).map_err(|e| refused(&e)),
            Command::Session(c) => {
                let stream = stream_name::<TrainingSession>(c.session_id().0);
                uc.plain::<TrainingSession>(stream, c, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::Habilitation(c) => uc.habilitation(c, meta).await.map(drop).map_err(|e| refused(&e)),
            Command::RegisterToSession { habilitation, session, on } => {
                uc.register_to_session(habilitation, session, on, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::SubmitClaim(request) => {
                uc.submit_annex_claim(request, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::ResubmitClaim { claim, lines, on } => {
                uc.resubmit_annex_claim(claim, lines, on, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::Claim(c) => {
                let stream = stream_name::<AnnexClaim>(c.claim_id().0);
                uc.plain::<AnnexClaim>(stream, c, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::FundsCall(c) => uc.funds_call(c, meta).await.map(drop).map_err(|e| refused(&e)),
            Command::Measure { stream, command } => {
                uc.plain::<domain::measure::Measure>(stream, command, meta).await.map(drop).map_err(|e| refused(&e))
            }
            Command::Disbursement(c) => uc.disbursement(c, meta).await.map(drop).map_err(|e| refused(&e)),
        }?;
        self.progress.advance(*self.store().head().borrow());
        Ok(())
    }

    /// Runs the flows of a phase, `concurrency` at a time (each flow's steps in order);
    /// the first refusal fails the seeding.
    pub async fn flows(&self, phase: &'static str, flows: Vec<Flow>, concurrency: usize) -> anyhow::Result<()> {
        self.durable()?;
        let expected = flows.iter().flatten().map(|s| s.command.expected_events()).sum();
        let started = self.progress.phase(phase, expected, *self.store().head().borrow());
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(flows)
            .map(|flow| async move {
                for step in flow {
                    self.run(step).await?;
                }
                anyhow::Ok(())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let result: anyhow::Result<()> = results.into_iter().collect();
        result.with_context(|| phase)?;
        self.progress.done(phase, started, *self.store().head().borrow());
        Ok(())
    }

    /// Steps one after the other, the saga acting after each claim or funds-call step
    /// (as it did when every such answer waited for it): the next steps may rely on it.
    pub async fn steps(&self, phase: &'static str, steps: Vec<Step>) -> anyhow::Result<()> {
        self.durable()?;
        let expected = steps.iter().map(|s| s.command.expected_events()).sum();
        let started = self.progress.phase(phase, expected, *self.store().head().borrow());
        for step in steps {
            let reimbursement = step.command.is_reimbursement();
            self.run(step).await.with_context(|| phase)?;
            if reimbursement {
                self.settle().await?;
            }
        }
        self.progress.done(phase, started, *self.store().head().borrow());
        Ok(())
    }

    /// Lets the reimbursement saga act on everything written so far, and on the deadlines
    /// due today, until it has nothing left to do: what the next steps rely on (a claim
    /// funded before it is paid, paid claims queued before a funds call).
    pub async fn settle(&self) -> anyhow::Result<()> {
        self.saga.lock().await.run_until_idle().await.context("the reimbursement saga")?;
        self.progress.advance(*self.store().head().borrow());
        Ok(())
    }
}

/// The progress bar of a seeding: events written against those expected, phase by phase,
/// on stderr; hidden when stderr is not a terminal (tests, CI, logs).
pub struct Progress {
    bar: ProgressBar,
    /// The log's head when the seeding started.
    start: AtomicU64,
    /// Events the steps found already in the log would have written (so that a resumed
    /// seeding still reaches the end of its bar).
    skipped: AtomicU64,
}

impl Progress {
    /// Drawn on stderr when it is a terminal.
    pub fn stderr() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::with_target(target)
    }

    pub fn hidden() -> Self {
        Self::with_target(ProgressDrawTarget::hidden())
    }

    fn with_target(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template(
            "{prefix:>20} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({per_sec})",
        )
        .expect("a valid template");
        bar.set_style(style);
        Self { bar, start: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }

    /// Counts events from the log's `head` on.
    pub(crate) fn begin(&self, head: u64) {
        self.start.store(head, Ordering::Relaxed);
        self.skipped.store(0, Ordering::Relaxed);
    }

    fn written(&self, head: u64) -> u64 {
        head.saturating_sub(self.start.load(Ordering::Relaxed)) + self.skipped.load(Ordering::Relaxed)
    }

    fn advance(&self, head: u64) {
        let written = self.written(head);
        if self.bar.length().is_some_and(|l| l < written) {
            self.bar.set_length(written);
        }
        self.bar.set_position(written);
    }

    fn skipped(&self, events: u64) {
        self.skipped.fetch_add(events, Ordering::Relaxed);
        self.bar.inc(events);
    }

    /// A phase begins: its expected events lengthen the bar (phases may run at once).
    fn phase(&self, name: &'static str, expected: u64, _head: u64) -> (std::time::Instant, u64, u64) {
        self.bar.set_prefix(name);
        self.bar.inc_length(expected);
        (std::time::Instant::now(), 0, expected)
    }

    /// A phase ended: its figures are shown above the bar (or logged, without a terminal).
    /// Other phases may have written meanwhile, so the count is the phase's own steps'.
    fn done(&self, name: &'static str, (started, _, expected): (std::time::Instant, u64, u64), head: u64) {
        self.advance(head);
        let seconds = started.elapsed().as_secs_f64();
        if self.bar.is_hidden() {
            tracing::debug!(phase = name, events = expected, seconds, "seeded");
        } else {
            self.bar.println(format!("{name:>20}: {expected} events in {seconds:.1} s"));
        }
    }

    /// The seeding is over: the bar goes away.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

//! The I/O around the pure saga: read the log from the checkpoint, deliver the work each
//! event calls for, tick the deadlines, save the checkpoint; and the background task that
//! does so whenever the log grows.

use crate::checkpoint::Checkpoint;
use crate::clock::Clock;
use crate::reimbursement::{Reimbursement, SagaCommand, Step, Unreadable, Work};
use domain::ConventionId;
use domain::claim::{AnnexClaim, ClaimCommand, FundsShortfall};
use domain::convention::{Convention, ConventionError};
use domain::funds_call::FundsCallLedger;
use domain::{Aggregate, CommandMeta};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use store::background::Background;
use store::handler::stream_name;
use store::{EventStore, HandleError, StoreError};
use usecases::UseCases;

/// Events read from the log per batch.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("the log cannot be read or written: {0}")]
    Store(#[from] StoreError),
    #[error("the checkpoint cannot be read or saved: {0}")]
    Checkpoint(#[from] std::io::Error),
    /// Other writers kept winning the race on `stream` (the use cases tried `attempts` times).
    #[error("a command kept conflicting with concurrent writes on {stream} ({attempts} attempts)")]
    Contention { stream: String, attempts: usize },
}

/// What delivering one command came to.
enum Delivered {
    /// Applied now (events written) or before (a duplicate): go on.
    Applied { wrote: bool },
    /// The aggregate refused it: the rule it broke.
    Refused(Refusal),
}

/// The rule a command of the saga broke: typed for the convention (a commitment refused
/// becomes a claim's [`FundsShortfall`]), named for the others (only logged).
#[derive(Debug)]
enum Refusal {
    Convention(ConventionError),
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Convention(e) => write!(f, "{e}"),
            Refusal::Other(rule) => f.write_str(rule),
        }
    }
}

async fn deliver_one(use_cases: &UseCases, step: &Step) -> Result<Delivered, SagaError> {
    async fn run<A: Aggregate>(
        use_cases: &UseCases,
        stream: String,
        command: &A::Command,
        meta: &CommandMeta,
        refusal: fn(A::Error) -> Refusal,
    ) -> Result<Delivered, SagaError>
    where
        A::Command: Clone + 'static,
    {
        match use_cases.execute::<A>(stream.clone(), command.clone(), meta.clone()).await {
            Ok(outcome) => {
                Ok(Delivered::Applied { wrote: !outcome.duplicate && outcome.version >= outcome.first_version })
            }
            Err(HandleError::Domain(e)) => Ok(Delivered::Refused(refusal(e))),
            // Same id, other content: this step was applied before with other figures
            // (e.g. a waiting reason); it is done.
            Err(HandleError::CommandIdReused(_)) => Ok(Delivered::Applied { wrote: false }),
            Err(HandleError::Conflict { stream, attempts }) => Err(SagaError::Contention { stream, attempts }),
            Err(HandleError::Store(e)) => Err(SagaError::Store(e)),
        }
    }
    match &step.command {
        SagaCommand::Convention(c) => {
            let stream = stream_name::<Convention>(c.convention_id());
            run::<Convention>(use_cases, stream, c, &step.meta, Refusal::Convention).await
        }
        SagaCommand::Claim(c) => {
            let stream = stream_name::<AnnexClaim>(c.claim_id());
            run::<AnnexClaim>(use_cases, stream, c, &step.meta, |e| Refusal::Other(e.to_string())).await
        }
        SagaCommand::Ledger(c) => {
            let id: ConventionId = c.convention_id();
            let stream = stream_name::<FundsCallLedger>(id);
            run::<FundsCallLedger>(use_cases, stream, c, &step.meta, |e| Refusal::Other(e.to_string())).await
        }
    }
}

/// Delivers one piece of work; true when it wrote something.
async fn deliver(store: &UseCases, work: &Work) -> Result<bool, SagaError> {
    let mut wrote = false;
    match work {
        Work::Chain(steps) => {
            for step in steps {
                match deliver_one(store, step).await? {
                    Delivered::Applied { wrote: w } => wrote |= w,
                    Delivered::Refused(rule) => {
                        tracing::debug!(command = ?step.command, %rule, "the saga's command was refused");
                        break;
                    }
                }
            }
        }
        Work::Fund(funding) => match deliver_one(store, &funding.commit).await? {
            Delivered::Applied { wrote: w } => {
                wrote |= w;
                if let Delivered::Applied { wrote: w } = deliver_one(store, &funding.funded).await? {
                    wrote |= w;
                }
            }
            Delivered::Refused(refusal) if funding.set_waiting => {
                let shortfall = match &refusal {
                    Refusal::Convention(e) => FundsShortfall::from(e),
                    Refusal::Other(rule) => FundsShortfall::Refused { name: rule.clone() },
                };
                let mut meta = funding.commit.meta.clone();
                meta.command_id = domain::CommandId(uuid::Uuid::new_v5(&funding.commit.meta.command_id.0, b"waiting"));
                let command = ClaimCommand::AwaitFunds { claim_id: funding.claim_id, shortfall, since: funding.on };
                let waiting = Step { meta, command: SagaCommand::Claim(command) };
                if let Delivered::Applied { wrote: w } = deliver_one(store, &waiting).await? {
                    wrote |= w;
                }
            }
            Delivered::Refused(_) => {}
        },
    }
    Ok(wrote)
}

/// The reimbursement saga with its place in the log. Named for the one saga it runs: its
/// delivery knows the reimbursement's work (a chain of steps, a funding that may wait);
/// a second saga would share the checkpoint and the [`SagaRunner`]'s plumbing, not this.
pub struct ReimbursementProcess {
    saga: Reimbursement,
    store: Arc<dyn EventStore>,
    /// The write path the saga's commands take (shared with the API in a server, so
    /// they take turns on the same streams instead of racing).
    use_cases: Arc<UseCases>,
    checkpoint: Arc<dyn Checkpoint>,
    clock: Arc<dyn Clock>,
    position: u64,
}

impl ReimbursementProcess {
    /// Rebuilds the saga's state from the log up to its checkpoint (sending nothing: what
    /// the checkpoint covers was delivered), ready to go on from there.
    pub async fn start(
        store: Arc<dyn EventStore>,
        checkpoint: Arc<dyn Checkpoint>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SagaError> {
        let mut saved = checkpoint.load().await?;
        let head = *store.head().borrow();
        if saved > head {
            tracing::warn!(
                saved,
                head,
                "the saga's checkpoint is past the end of the log: starting from the beginning"
            );
            saved = 0;
        }
        let mut saga = Reimbursement::default();
        let mut position = 0;
        while position < saved {
            let batch = store.read_all(position, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch.iter().take_while(|e| e.position <= saved) {
                saga.react(e)?;
                position = e.position;
            }
        }
        let use_cases = UseCases::new(store.clone());
        Ok(Self { saga, store, use_cases, checkpoint, clock, position })
    }

    /// Sends the saga's commands through these use cases (the server's own).
    pub fn with_use_cases(mut self, use_cases: Arc<UseCases>) -> Self {
        self.use_cases = use_cases;
        self
    }

    /// The last position acted upon.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn saga(&self) -> &Reimbursement {
        &self.saga
    }

    /// Acts on every event up to the end of the log, and on the deadlines due today,
    /// until nothing more is to be done. Returns the number of events acted upon.
    pub async fn run_until_idle(&mut self) -> Result<u64, SagaError> {
        let mut seen = 0;
        loop {
            let batch = self.store.read_all(self.position, BATCH).await?;
            if batch.is_empty() {
                let mut wrote = false;
                for work in self.saga.tick(self.clock.today()) {
                    wrote |= deliver(&self.use_cases, &work).await?;
                }
                if !wrote {
                    return Ok(seen);
                }
                continue;
            }
            for e in &batch {
                for work in self.saga.react(e)? {
                    deliver(&self.use_cases, &work).await?;
                }
                self.position = e.position;
                seen += 1;
            }
            self.checkpoint.save(self.position).await?;
        }
    }

    /// Acts on at most `events` events, then stops (for tests that interrupt the saga).
    pub async fn run_some(&mut self, events: usize) -> Result<(), SagaError> {
        let batch = self.store.read_all(self.position, events).await?;
        for e in &batch {
            for work in self.saga.react(e)? {
                deliver(&self.use_cases, &work).await?;
            }
            self.position = e.position;
        }
        self.checkpoint.save(self.position).await?;
        Ok(())
    }
}

/// The name of the reimbursement saga's lease and checkpoint in a shared database.
pub const REIMBURSEMENT: &str = "saga-reimbursement";

/// How often a replica that does not run the saga tries for its lease and reads the
/// holder's checkpoint (so that its own requests can wait for the saga).
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Runs a [`ReimbursementProcess`] in the background: whenever the log grows, and every `tick` for
/// the deadlines. Dropping the runner stops it (and gives its lease up, if it holds one).
pub struct SagaRunner {
    /// The position the saga acted upon (watched) and its task.
    background: Background,
    failure: Mutex<Option<String>>,
    /// Whether this replica runs the saga now (always, without a lease).
    leading: std::sync::atomic::AtomicBool,
    /// The lease this runner holds or tries for: the shared state and this replica's id.
    lease: Option<(Arc<dyn store::ReplicaState>, uuid::Uuid)>,
}

impl Drop for SagaRunner {
    fn drop(&mut self) {
        // The task is aborted as `background` drops, after this. The lease is given up at
        // once rather than left to lapse, where a runtime is there to do it.
        if let (Some((state, holder)), Ok(runtime)) = (self.lease.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { state.release_lease(REIMBURSEMENT, holder).await });
        }
    }
}

impl SagaRunner {
    pub fn spawn(process: ReimbursementProcess, tick: Duration) -> Arc<Self> {
        let runner = Arc::new(Self {
            background: Background::new(process.position()),
            failure: Mutex::new(None),
            leading: true.into(),
            lease: None,
        });
        let task = tokio::spawn(Self::run(Arc::downgrade(&runner), process, tick));
        runner.background.run(task);
        runner
    }

    /// Starts the process in the background task itself (for callers that cannot wait):
    /// until it has started, [`SagaRunner::position`] stays 0 and waits wait.
    pub fn start(
        store: Arc<dyn EventStore>,
        checkpoint: Arc<dyn Checkpoint>,
        clock: Arc<dyn Clock>,
        tick: Duration,
    ) -> Arc<Self> {
        let runner = Arc::new(Self {
            background: Background::new(0),
            failure: Mutex::new(None),
            leading: true.into(),
            lease: None,
        });
        let weak = Arc::downgrade(&runner);
        let task = tokio::spawn(async move {
            let process = loop {
                match ReimbursementProcess::start(store.clone(), checkpoint.clone(), clock.clone()).await {
                    Ok(p) => break p,
                    Err(e) => {
                        let Some(this) = weak.upgrade() else { return };
                        tracing::error!(error = %e, "the reimbursement saga cannot start; retrying");
                        *this.failure.lock().expect("poisoned") = Some(e.to_string());
                        drop(this);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            Self::run(weak, process, tick).await
        });
        runner.background.run(task);
        runner
    }

    /// Runs the saga on one replica at a time among those sharing `state` (a log several
    /// processes write): this replica runs it while it holds the saga's lease, renewed
    /// every third of `ttl`, from the checkpoint the last holder saved; otherwise it tries
    /// for the lease every [`FOLLOW_EVERY`] and shows the holder's checkpoint as its
    /// position. A holder that dies stops renewing: after `ttl` another replica takes
    /// over from the last checkpoint and sends again what came after it, which pays
    /// nothing twice (each command's id comes from its cause; the log answers a known id
    /// with its first answer).
    pub fn spawn_leased(
        store: Arc<dyn EventStore>,
        state: Arc<dyn store::ReplicaState>,
        clock: Arc<dyn Clock>,
        use_cases: Arc<UseCases>,
        tick: Duration,
        ttl: Duration,
    ) -> Arc<Self> {
        let holder = uuid::Uuid::new_v4();
        let runner = Arc::new(Self {
            background: Background::new(0),
            failure: Mutex::new(None),
            leading: false.into(),
            lease: Some((state.clone(), holder)),
        });
        let leased = Leased { store, state, clock, use_cases, tick, ttl, holder };
        let task = tokio::spawn(leased.run(Arc::downgrade(&runner)));
        runner.background.run(task);
        runner
    }

    /// Whether this replica runs the saga now.
    pub fn leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn run(runner: Weak<Self>, mut process: ReimbursementProcess, tick: Duration) {
        let mut head = process.store.head();
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = process.run_until_idle().await;
            let Some(this) = runner.upgrade() else { return };
            match result {
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    *this.failure.lock().expect("poisoned") = None;
                    this.background.reached(process.position());
                }
                Err(e) => {
                    // The checkpoint stays before the event that failed: it is tried again.
                    tracing::error!(error = %e, "the reimbursement saga stopped short; retrying");
                    *this.failure.lock().expect("poisoned") = Some(e.to_string());
                    this.background.reached(process.position());
                    drop(this);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
            drop(this);
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// The last position the saga acted upon (on a replica that does not run it, the
    /// checkpoint the one that does saved last).
    pub fn position(&self) -> u64 {
        self.background.position()
    }

    /// Why the last run stopped short, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("poisoned").clone()
    }

    /// Waits until the saga has acted on `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.background.wait_for(position, timeout).await
    }
}

/// What a leased runner needs to run the saga whenever it gets the lease.
struct Leased {
    store: Arc<dyn EventStore>,
    state: Arc<dyn store::ReplicaState>,
    clock: Arc<dyn Clock>,
    use_cases: Arc<UseCases>,
    tick: Duration,
    ttl: Duration,
    holder: uuid::Uuid,
}

impl Leased {
    async fn run(self, runner: Weak<SagaRunner>) {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            if !self.follow_until_leader(&runner).await {
                return;
            }
            let checkpoint = Arc::new(crate::checkpoint::SharedCheckpoint {
                state: self.state.clone(),
                name: REIMBURSEMENT.into(),
                holder: self.holder,
            });
            let process = match ReimbursementProcess::start(self.store.clone(), checkpoint, self.clock.clone()).await {
                Ok(process) => process.with_use_cases(self.use_cases.clone()),
                Err(e) => {
                    tracing::error!(error = %e, "the reimbursement saga cannot start; retrying");
                    let Some(this) = runner.upgrade() else { return };
                    *this.failure.lock().expect("poisoned") = Some(e.to_string());
                    drop(this);
                    tokio::time::sleep(FOLLOW_EVERY).await;
                    continue;
                }
            };
            let Some(this) = runner.upgrade() else { return };
            this.leading.store(true, SeqCst);
            this.background.reached(process.position());
            drop(this);
            tracing::info!(from = process.position(), "this replica runs the reimbursement saga");
            tokio::select! {
                _ = SagaRunner::run(runner.clone(), process, self.tick) => return,
                _ = self.keep_lease() => {
                    tracing::warn!("this replica lost the reimbursement saga's lease: another one runs it now");
                }
            }
            let Some(this) = runner.upgrade() else { return };
            this.leading.store(false, SeqCst);
        }
    }

    /// Tries for the lease until it is ours (true), showing the holder's checkpoint
    /// meanwhile; false once the runner is gone.
    async fn follow_until_leader(&self, runner: &Weak<SagaRunner>) -> bool {
        loop {
            match self.state.acquire_lease(REIMBURSEMENT, self.holder, self.ttl).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot ask for the reimbursement saga's lease"),
            }
            let Some(this) = runner.upgrade() else { return false };
            match self.state.load_checkpoint(REIMBURSEMENT).await {
                Ok(position) => {
                    this.background.reached_if_moved(position);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the reimbursement saga's checkpoint"),
            }
            drop(this);
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    /// Renews the lease every third of its length; returns once it is lost, or may have
    /// lapsed (renewals failing for longer than it lasts, less a margin).
    async fn keep_lease(&self) {
        let every = self.ttl / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.state.acquire_lease(REIMBURSEMENT, self.holder, self.ttl).await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the reimbursement saga's lease");
                    if renewed.elapsed() + every >= self.ttl {
                        return;
                    }
                }
            }
        }
    }
}

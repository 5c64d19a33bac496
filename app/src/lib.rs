//! The running tracker, wired: opens the log (embedded SQLite, PostgreSQL or KurrentDB),
//! seeds a scenario when asked, starts the read models and the saga, binds the API; and
//! the offline commands (`import`, `replay`/`explain`, `rebuild`). Plumbing only: it never
//! decides (the use cases do) and holds no rule (the domain does); the `tracker` binary
//! parses the command line and calls it.

pub mod audit;
pub mod import;
pub mod migrate;
pub mod personal;
pub mod rebuild;

use anyhow::Context;
use api::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{EventStore, SqliteStore};

/// The file of the embedded log inside the data directory.
pub const LOG_FILE: &str = "events.sqlite3";

/// The read models' snapshots inside the data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// The reimbursement saga's checkpoint inside the data directory.
pub const SAGA_CHECKPOINT: &str = "saga-reimbursement.checkpoint";

/// How often the saga looks at its deadlines when the log is quiet.
const SAGA_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// How long start-up may take to fold the log into the read models.
const CATCH_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Everything `serve` needs, from flags or environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Another event log than the embedded one: `postgres://user@host/db` (shared by
    /// replicas) or `kurrentdb://host:2113?tls=false`.
    pub store: Option<String>,
    /// Where the directory of persons is, when not where the log is (see
    /// [`open_directory`]): a PostgreSQL database shared by KurrentDB replicas.
    pub directory: Option<String>,
    pub addr: String,
    /// Seed the demo scenario before serving, and create one token per role.
    pub demo: bool,
    /// Which scenario `demo` seeds.
    pub scenario: scenarios::Scenario,
    /// Serve GraphiQL at `/` and allow introspection (on with `demo`).
    pub graphiql: bool,
    /// Requests per second each token may send over HTTP, on average (0: no limit).
    pub rate_limit: u32,
}

/// Opens the embedded log of a data directory, creating both if needed.
pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(data_dir.join(LOG_FILE))
        .with_context(|| format!("cannot open the event log in {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Calls `visit` with every event of `log`, in order, reading it a page at a time: the
/// personal-data tools (access, retention, migration) read the whole log once each.
pub(crate) async fn each_event(
    log: &dyn EventStore,
    mut visit: impl FnMut(&store::RecordedEvent) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after = 0;
    loop {
        let page = log.read_all(after, 4096).await?;
        let Some(last) = page.last() else { return Ok(()) };
        after = last.position;
        page.iter().try_for_each(&mut visit)?;
    }
}

/// Connects to the event log a URL names: PostgreSQL (`postgres://…`) or KurrentDB.
/// Errors never repeat a password the URL holds.
pub async fn connect_store(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    if store::postgres::is_postgres_url(url) {
        let store = store::PostgresStore::connect(url)
            .await
            .with_context(|| format!("cannot open the event log at {}", store::redact_url(url)))?;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "kurrentdb")]
    if store::kurrent::is_kurrent_url(url) {
        let store = store::kurrent::KurrentStore::connect(url).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("kurrentdb") || url.starts_with("esdb") || url.starts_with("kurrent") {
        anyhow::bail!(
            "this build has no KurrentDB backend: build it with `cargo build --release --features kurrentdb`"
        );
    }
    anyhow::bail!(
        "`{}` is not an event log this tracker knows (expected postgres://user@host:5432/db or \
         kurrentdb://host:2113?tls=false)",
        store::redact_url(url)
    )
}

/// The directory of persons of the log `store` names (`None`: the embedded log of
/// `data_dir`), or the one `directory` names: the data directory's file for the embedded
/// log; the log's own database for PostgreSQL, so that its replicas issue one id per
/// reference and see every erasure; for KurrentDB, which can erase nothing, a PostgreSQL
/// database given as `directory`, else the data directory's file (each replica its own:
/// see the README).
pub fn open_directory(
    data_dir: &Path,
    store: Option<&str>,
    directory: Option<&str>,
) -> anyhow::Result<Arc<store::Directory>> {
    let postgres = |url: &str| {
        store::Directory::connect_postgres(url)
            .with_context(|| format!("cannot open the directory of persons at {}", store::redact_url(url)))
    };
    let directory = match (store, directory) {
        (None, Some(_)) => anyhow::bail!(
            "the embedded log keeps its directory of persons in its data directory: give --directory only with --store"
        ),
        (_, Some(url)) if !store::postgres::is_postgres_url(url) => anyhow::bail!(
            "`{}` is not a directory of persons: give a PostgreSQL database (postgres://user@host:5432/db)",
            store::redact_url(url)
        ),
        (_, Some(url)) => postgres(url)?,
        (Some(url), None) if store::postgres::is_postgres_url(url) => postgres(url)?,
        (Some(_), None) => {
            tracing::warn!(
                data_dir = %data_dir.display(),
                "the directory of persons stays in this replica's data directory: replicas of this log do not \
                 share it (a reference gets an id on each, an erasure is made on each); give --directory \
                 postgres://… to share one"
            );
            store::Directory::open(data_dir)?
        }
        (None, None) => store::Directory::open(data_dir)?,
    };
    Ok(Arc::new(directory))
}

/// The tokens of `log` with their holders' directory (see [`open_directory`]): the data
/// directory's for the embedded log, the log's shared ones for replicas (`store` names
/// the log).
pub fn open_tokens(
    data_dir: &Path,
    log: &Arc<dyn EventStore>,
    store: Option<&str>,
    directory: Option<&str>,
) -> anyhow::Result<api::TokenStore> {
    Ok(match log.replica_state() {
        Some(state) => api::TokenStore::shared(state).with_directory(open_directory(data_dir, store, directory)?),
        None => {
            anyhow::ensure!(
                directory.is_none(),
                "the embedded log keeps its directory of persons in its data directory: give --directory only with --store"
            );
            api::TokenStore::open(data_dir)
                .with_context(|| format!("cannot read the tokens of {}", data_dir.display()))?
        }
    })
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: AppState,
    log: Arc<dyn EventStore>,
    tokens: Arc<api::TokenStore>,
    demo_tokens: Vec<(api::Role, String)>,
    graphiql: bool,
}

impl Application {
    /// Opens the log, seeds the demo if asked, starts the read models and binds the address
    /// (port 0 picks a free port: see [`Application::addr`]).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let log: Arc<dyn EventStore> = match &settings.store {
            None => open_store(&settings.data_dir)?,
            Some(url) => connect_store(url).await?,
        };
        // A use case that changes several entities writes them in one atomic append; a log
        // that cannot must not serve writes at all rather than write them one by one.
        if !log.atomic_multi_stream() {
            anyhow::bail!(
                "this event log cannot append to several streams atomically, which the tracker's use cases need \
                 (KurrentDB offers it from server 25.1.1, through its v2 protocol, with the server's certificate \
                 verified: see the warning above): `serve` refuses it; `verify`, `replay`, `explain` and `rebuild` \
                 still read it"
            );
        }
        // Replicas of a shared log share its tokens and run the saga one at a time; the
        // embedded log keeps both in its data directory.
        let shared = log.replica_state();
        let tokens =
            Arc::new(open_tokens(&settings.data_dir, &log, settings.store.as_deref(), settings.directory.as_deref())?);
        let mut demo_tokens = Vec::new();
        if settings.demo {
            let people = tokens.directory().expect("the tokens keep their holders in the directory").clone();
            settings.scenario.seed_once(log.clone(), people, &settings.data_dir).await?;
            demo_tokens = scenarios::demo::tokens(&tokens, settings.scenario.structure()).await?;
        }
        let store = log.clone();
        let head = *store.head().borrow();
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
        // References of persons become ids of the data directory's directory of persons.
        let people = tokens.directory().expect("the tokens keep their holders in the directory").clone();
        let use_cases = usecases::UseCases::with_people(store.clone(), people);
        let saga = match &shared {
            Some(state) => sagas::SagaRunner::spawn_leased(
                store.clone(),
                state.clone(),
                Arc::new(sagas::SystemClock),
                use_cases.clone(),
                SAGA_TICK,
                store::postgres::LEASE_TTL,
            ),
            None => {
                let checkpoint = Arc::new(sagas::FileCheckpoint(settings.data_dir.join(SAGA_CHECKPOINT)));
                let process =
                    sagas::ReimbursementProcess::start(store.clone(), checkpoint, Arc::new(sagas::SystemClock))
                        .await
                        .context("cannot start the reimbursement saga")?
                        .with_use_cases(use_cases.clone());
                sagas::SagaRunner::spawn(process, SAGA_TICK)
            }
        };
        let state = AppState::persisted(store, &settings.data_dir.join(SNAPSHOTS_DIR))
            .await
            .with_use_cases(use_cases)
            .with_tokens(tokens.clone())
            .with_rate_limit(settings.rate_limit)
            .with_saga(saga);
        for (view, from) in state.resumed_from() {
            tracing::info!(view, from, "read model started");
        }
        // Serve only once the read models show the whole log: a restarted server must not
        // answer with figures older than what it had already acknowledged.
        let started = std::time::Instant::now();
        if !state.wait_for(head, CATCH_UP_TIMEOUT).await {
            anyhow::bail!("the read models could not catch up with the log ({head} events) in time");
        }
        tracing::info!(events = head, elapsed_ms = started.elapsed().as_millis() as u64, "read models caught up");
        // A snapshot is trusted to start fast, then proved against the log in the background.
        let proving = state.clone();
        tokio::spawn(async move { proving.prove_snapshots().await });
        let listener = tokio::net::TcpListener::bind(&settings.addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr, state, log, tokens, demo_tokens, graphiql: settings.graphiql || settings.demo })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The tokens `--demo` created, one per role (their secrets exist only here).
    pub fn demo_tokens(&self) -> &[(api::Role, String)] {
        &self.demo_tokens
    }

    /// Serves until `shutdown` resolves, lets requests in flight finish, and returns once
    /// the log is closed (so the data directory can be opened again at once).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(self.listener)?;
        let served = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                api::routes(self.state, self.tokens, self.graphiql),
                shutdown,
                Some(std::time::Duration::from_secs(10)),
            )
            .await;
        // The read models' tasks end as their runners drop; wait for their handles on the log.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&self.log) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        served
    }
}

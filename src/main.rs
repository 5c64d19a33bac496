//! `tracker`: the command line of Convention Tracker. It only wires: it parses the
//! arguments (typed by clap) and calls `app` (serve, import, replay, rebuild…),
//! `scenarios` (seed) and `bench`; it holds no logic beyond parsing and printing.

use anyhow::Context;
use app::{Application, Settings, open_store};
use clap::{Parser, Subcommand, ValueEnum};
use scenarios::Scenario;
use std::path::PathBuf;
use std::time::Duration;
use store::EventStore;

/// mimalloc rather than glibc's malloc: the log is decoded on the store's reader threads
/// and its strings freed on the async workers, a cross-thread pattern glibc's arenas
/// handle slowly (measured with `tracker bench store`: see the README's Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tracker",
    version,
    about = "Convention Tracker: the money and delivery of the national plan for digital mediators and helpers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the GraphQL API (and GraphiQL) on the embedded event log.
    Serve {
        /// Data directory holding the event log [default: ./data, or ./data/demo with --demo].
        #[arg(long, env = "TRACKER_DATA")]
        data: Option<PathBuf>,
        /// The event log, when not the embedded SQLite one in the data directory:
        /// `postgres://user@host:5432/db` (shared by several replicas: tokens, saga
        /// checkpoint and lease there too) or `kurrentdb://host:2113?tls=false` (needs a
        /// build with `--features kurrentdb`).
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        /// The directory of persons, when not where the log is: a PostgreSQL database
        /// (`postgres://…`) that KurrentDB replicas share (see Données personnelles).
        #[arg(long, env = "TRACKER_DIRECTORY")]
        directory: Option<String>,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, env = "TRACKER_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
        /// Seed the demo scenario (the plan's four conventions) first, create one token per
        /// role, and print how to try it (implies --graphiql).
        #[arg(long)]
        demo: bool,
        /// Serve GraphiQL at / and allow introspection.
        #[arg(long, env = "TRACKER_GRAPHIQL")]
        graphiql: bool,
        /// Requests per second each token may send, on average (a burst of twice that);
        /// beyond, HTTP 429 with Retry-After. 0 turns the limit off.
        #[arg(long, env = "TRACKER_RATE_LIMIT", default_value_t = api::DEFAULT_RATE_PER_SECOND)]
        rate_limit: u32,
        /// What --demo seeds: the plan at full scale (about 15 s the first time), or a
        /// small sample (seconds).
        #[arg(long, value_enum, default_value_t = Scenario::Plan2021)]
        scenario: Scenario,
    },
    /// Manages the bearer tokens of a data directory (stored hashed in DIR/tokens.json),
    /// or of the replicas sharing a PostgreSQL log (with --store).
    Token {
        #[arg(long, env = "TRACKER_DATA", default_value = "data", global = true)]
        data: PathBuf,
        /// The shared log whose replicas' tokens to manage (`postgres://...`).
        #[arg(long, env = "TRACKER_STORE", global = true)]
        store: Option<String>,
        /// The directory of persons (holders' names), when not where the log is.
        #[arg(long, env = "TRACKER_DIRECTORY", global = true)]
        directory: Option<String>,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Seeds a scenario into a data directory (idempotent).
    Seed {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        /// The scenario to seed: the plan at full scale, or a small sample.
        #[arg(long, value_enum, default_value_t = Scenario::Plan2021)]
        scenario: Scenario,
    },
    /// Recomputes every hash chain of the log and reports the first altered place
    /// (exit status 1 when the log was altered).
    Verify {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        /// Verify another event log than the embedded one: `postgres://...` (every
        /// chain, the head and the command records, as for the embedded log) or
        /// `kurrentdb://...` (the per-stream chains of every event, and the whole log
        /// against its last seal).
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        /// A digest published earlier, as POSITION:HASH (what a previous verify printed):
        /// also proves nothing was cut from the end or rewritten since.
        #[arg(long, value_name = "POSITION:HASH")]
        expect: Option<String>,
        /// KurrentDB only: once the log is found intact, write its digest in the log as a
        /// seal, which every later verification checks.
        #[arg(long)]
        seal: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measures performance on this machine (not a test): each figure with its ratio to a
    /// baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Recomputes every read model from the start of the log, checks that the snapshots
    /// on disk give the same figures, and writes fresh ones (exit status 1 when a
    /// snapshot disagreed with the log).
    Rebuild {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        /// Another event log than the embedded one (`kurrentdb://...`).
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The financial report of a past date, replayed from the (verified) log: events of
    /// business date up to --as-of, recorded by --as-known-at.
    Replay {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        /// Keep events whose business date is on or before this day (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Keep events recorded at or before this instant (RFC 3339, e.g. 2022-01-15T12:00:00Z).
        #[arg(long)]
        as_known_at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// CSV with `,` and `.` instead of the French `;`, decimal comma and byte-order mark.
        #[arg(long)]
        plain_csv: bool,
    },
    /// The events behind one figure of the report: stream, version, type, business date,
    /// recorded time, actor, amount.
    Explain {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        #[arg(long)]
        as_known_at: Option<chrono::DateTime<chrono::Utc>>,
        /// The convention's code, e.g. ANCT-UNIFORMATION-2021.
        #[arg(long)]
        convention: String,
        /// The envelope's name, e.g. "Frais annexes" (not for a partner's figures).
        #[arg(long, default_value = "")]
        envelope: String,
        /// An envelope's allocated, committed, service-done or paid; or the partner's
        /// received, justified, recovered or co-funder-spent.
        #[arg(long)]
        figure: String,
        /// Only this funder's part (e.g. ANCT, Uniformation): each event's effect is then
        /// the funder's move by the envelope's financing plan. Without `--envelope`, every
        /// envelope of the convention.
        #[arg(long)]
        funder: Option<String>,
        /// Only the events of this budget year (exercice: their business date's year),
        /// behind that year's figure in the report's fiscal years.
        #[arg(long)]
        year: Option<i32>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        #[arg(long)]
        plain_csv: bool,
    },
    /// Imports a partner's file (CSV as French spreadsheets write it, or .xlsx) line by
    /// line through the use cases, and reports each line in French: accepted, already
    /// there, or refused with the rule. Exit status 2 when lines were refused, 1 when the
    /// file could not be read (nothing written then).
    Import {
        /// structures, purchases, aidants-sessions, habilitations, pix-campaigns,
        /// pix-certifications, ccas-actions or annex-claims.
        #[arg(required_unless_present_any = ["template", "generate"])]
        kind: Option<String>,
        #[arg(required_unless_present_any = ["template", "generate"])]
        file: Option<PathBuf>,
        /// Write the template (the header line) of this kind of file to stdout, and stop.
        #[arg(long, value_name = "KIND", conflicts_with_all = ["kind", "file"])]
        template: Option<String>,
        /// Write the demo's partner files (generated; CSV, the habilitations as xlsx) into
        /// this directory, named in the order to import them, and stop.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["kind", "file", "template"])]
        generate: Option<PathBuf>,
        /// Decide every line against the log as it is and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write the report (summary and refused lines) as CSV for a French spreadsheet.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
    },
    /// Prints the event log as JSON lines, in log order.
    Events {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        /// Another event log than the embedded one (`postgres://...`, `kurrentdb://...`).
        #[arg(long, env = "TRACKER_STORE")]
        store: Option<String>,
        /// Print only events after this global position.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Erases a person from the directory of persons (by id, or by their exact reference
    /// or name): their name and references go, their tokens are revoked; the log, its
    /// digest and every figure stay as they are (the person shows as "personne effacée").
    Forget {
        /// The person's id, or their exact reference or name.
        person: String,
        #[command(flatten)]
        place: PlaceArgs,
        /// Erase every person the reference or name matches (several structures' aidants).
        #[arg(long)]
        all: bool,
        /// Why: kept with the erasure (no personal data).
        #[arg(long, default_value = "request")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Exports everything held about a person (directory entry, tokens, every event
    /// about them), in French, as JSON or CSV.
    SubjectAccess {
        /// The person's id, or their exact reference or name.
        person: String,
        #[command(flatten)]
        place: PlaceArgs,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
    },
    /// Erases from the directory of persons everyone whose retention period ran out
    /// (idempotent: run it daily) and tells what it erased; the log is untouched.
    Retention {
        #[command(flatten)]
        place: PlaceArgs,
        /// Years the references of aidants, trainees and Pix candidates are kept after
        /// their last convention closes (or their last event): a term; 5 is ours.
        #[arg(long, env = "TRACKER_RETENTION_PARTICIPANTS_YEARS", default_value_t = 5)]
        participants_years: u32,
        /// Years a token holder is kept after their last token was revoked: a term; 1 is ours.
        #[arg(long, env = "TRACKER_RETENTION_AGENTS_YEARS", default_value_t = 1)]
        agents_years: u32,
        /// The day to count to (default: today).
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
        /// Say what would be erased, erase nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copies the directory of persons a replica of a shared log kept in its data
    /// directory (before it moved into the shared database) into the shared one, then
    /// removes the file (kept when a reference has another id there, or with --keep).
    ShareDirectory {
        #[command(flatten)]
        place: PlaceArgs,
        /// Keep the replica's file after the copy.
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        json: bool,
    },
    /// Migrates a log written before the directory of persons: token holders' names and
    /// the references of aidants, trainees and Pix candidates leave the log (a new chain
    /// with ids, the ids derived from references remapped, sealed with the old head
    /// digest) and the tokens. The embedded log's old file goes to ARCHIVE (outside the
    /// data directory); a PostgreSQL log (--store) is copied into the schema --to names,
    /// which must hold no log, and stays in its own as the archive. A log that names
    /// nobody in clear is refused, left as it is.
    MigratePersonalData {
        #[arg(long, env = "TRACKER_DATA", default_value = "data")]
        data: PathBuf,
        /// Where the embedded log's old file goes (it still holds the names: keep it
        /// sealed, or destroy it).
        #[arg(long, required_unless_present = "store", conflicts_with = "store")]
        archive: Option<PathBuf>,
        /// A PostgreSQL log to migrate (`postgres://…`, its schema in
        /// `options=-csearch_path%3D…`); not read from TRACKER_STORE, on purpose.
        #[arg(long, requires = "to")]
        store: Option<String>,
        /// The schema (or database) the migrated PostgreSQL log goes into: it must hold
        /// no log.
        #[arg(long, requires = "store")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Creates a token and prints its secret, once.
    Create {
        /// anct, opco, structure, copil or auditor.
        #[arg(long)]
        role: String,
        /// The structure a `structure` token is bound to (its id).
        #[arg(long)]
        structure: Option<uuid::Uuid>,
        /// Who holds the token: their name goes into the directory of persons
        /// (DATA/directory.sqlite3), and the log records only their opaque id.
        #[arg(long, required_unless_present = "person", conflicts_with = "person")]
        label: Option<String>,
        /// Another token for a person already in the directory (their id).
        #[arg(long)]
        person: Option<uuid::Uuid>,
    },
    /// Revokes a token by id: requests with it are refused at once.
    Revoke { id: uuid::Uuid },
    /// Lists the tokens (ids, roles, labels; never secrets).
    List,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The dashboards under load (p50/p99 at a fixed rate, and the most a closed loop
    /// gets), with /health as the baseline; seeds the full plan first.
    Dashboard {
        /// Requests per second of the open-loop measurements.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Seconds each measurement runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent clients of the closed-loop measurements.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seed a small plan instead of the full one (to try the command quickly).
        #[arg(long)]
        small: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Everything in one run: the event log's figures (baseline: the fsync floor), then
    /// the plan seeded, rebuilt and queried under load (baseline: /health), the seeding
    /// and rebuild rates also as ratios to the fsync floor, then the write path.
    All {
        /// Seed a small plan instead of the full one (to try the command quickly).
        #[arg(long)]
        small: bool,
    },
    /// The write path through GraphQL: commitFunds from 1, 16 and 64 closed-loop clients on
    /// one envelope and spread over 64 (errors by code, CONFLICT apart), and the national
    /// dashboard under writes; baselines: the fsync floor, the store's appends, /health.
    Write {
        /// Seconds each measurement runs.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Concurrent clients of the closed-loop runs, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
        clients: Vec<usize>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
        /// Also run the closed loops on this PostgreSQL database, with 1 and 3 replicas
        /// (in a schema of their own, dropped afterwards).
        #[arg(long, env = "TRACKER_BENCH_POSTGRES")]
        postgres: Option<String>,
    },
    /// The adversarial run as a benchmark: read-only clients send the costliest requests
    /// accepted (two replays each) and 1 000-alias bombs, while /health and the national
    /// dashboard are measured at a fixed rate; baseline: the same measures without attack.
    Attack {
        /// Concurrent attackers (one in four sends the alias bomb).
        #[arg(long, default_value_t = 8)]
        attackers: usize,
        /// Requests per second of the measured /health and dashboard loads.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds each measurement runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Seed the full plan (150 000 events) instead of the small one.
        #[arg(long)]
        full: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The peers benchmark's workload on our store and handler (see bench/peers/run.py).
    Workload {
        #[arg(long, default_value_t = 10_000)]
        commands: usize,
        #[arg(long, default_value_t = 1_000)]
        aggregates: usize,
        #[arg(long, default_value_t = 16)]
        writers: usize,
    },
    /// The directory of persons: ids issued one per request, a file's, a seeding's batch,
    /// and lookups, on the SQLite file (baseline: its lookups) and on PostgreSQL if given.
    Directory {
        /// References per measure.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Also on this PostgreSQL database (in a schema of its own, dropped afterwards).
        #[arg(long, env = "TRACKER_BENCH_POSTGRES")]
        postgres: Option<String>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Imports: Aidants Connect habilitation lines and purchase lines from CSV and xlsx,
    /// lines/s against the store's raw append rate measured in the same run.
    Import {
        /// Habilitation lines.
        #[arg(long, default_value_t = 20_000)]
        habilitations: usize,
        /// Purchase lines.
        #[arg(long, default_value_t = 2_000)]
        purchases: usize,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The event log: fsync floor, durable appends (1 and 64 writers), batched appends, replay.
    Store {
        /// Events in the log replayed at the end.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Seconds each timed measurement runs.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,poem=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command;
    if !matches!(command, Command::Serve { .. } | Command::Bench { .. }) {
        die_quietly_on_a_closed_pipe();
    }
    match command {
        Command::Forget { person, place, all, reason, json } => {
            let done = app::personal::forget(&place.place(), &person, all, &reason).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                for e in &done.erasures {
                    println!("person {} ({}) erased: {} ({})", e.id, e.kind.name(), e.erased_at, e.reason);
                }
                for t in &done.tokens_revoked {
                    println!("token {t} revoked");
                }
                println!("the log is unchanged: `tracker verify` gives the same head digest");
            }
            Ok(())
        }
        Command::SubjectAccess { person, place, format } => {
            let export = app::personal::subject_access(&place.place(), &person).await?;
            match format.as_str() {
                "csv" => print!("{}", export.csv()),
                _ => println!("{}", serde_json::to_string_pretty(&export)?),
            }
            Ok(())
        }
        Command::Retention { place, participants_years, agents_years, today, dry_run, json } => {
            let terms = app::personal::RetentionTerms { participants_years, agents_years };
            let today = today.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let done = app::personal::retention(&place.place(), terms, today, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                let verb = if dry_run { "would erase" } else { "erased" };
                for e in &done.erased {
                    println!("{verb} {} ({}): {}", e.person, e.kind, e.because);
                }
                println!(
                    "{} {verb}, {} kept (terms: participants {} years, agents {} years)",
                    done.erased.len(),
                    done.kept,
                    terms.participants_years,
                    terms.agents_years
                );
            }
            Ok(())
        }
        Command::ShareDirectory { place, keep, json } => {
            let done = app::personal::share_directory(&place.place(), keep).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!(
                    "{} persons: {} added, {} already shared, {} erased there (not brought back); {} erasures added",
                    done.persons, done.added, done.already_there, done.erased_there, done.erasures_added
                );
                for c in &done.conflicts {
                    println!(
                        "conflict: {} {} of {} is {} in the shared directory (this replica's events carry the first id)",
                        c.kind, c.id, c.scope, c.shared
                    );
                }
                match &done.removed {
                    Some(file) => println!("{} removed", file.display()),
                    None => println!("{} kept", place.data.join(store::Directory::FILE).display()),
                }
            }
            Ok(())
        }
        Command::MigratePersonalData { data, archive, store, to, json } => {
            let done = match (&store, &to, &archive) {
                (Some(old), Some(new), _) => app::personal::migrate_postgres(old, new).await?,
                (_, _, Some(archive)) => app::personal::migrate(&data, archive).await?,
                _ => anyhow::bail!("give --archive ARCHIVE (the embedded log) or --store OLD --to NEW (PostgreSQL)"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!(
                    "migrated {} events: {} actors named a person ({} persons moved to the directory)",
                    done.events, done.actors_replaced, done.persons
                );
                let by_kind = |m: &std::collections::BTreeMap<&str, _>| {
                    m.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
                };
                println!(
                    "  references replaced by ids: {} events ({}), {} persons; {} already ids, left as they are",
                    done.references_replaced.values().sum::<u64>(),
                    by_kind(&done.references_replaced),
                    done.reference_persons,
                    done.references_already_ids
                );
                println!(
                    "  ids derived from references remapped: {} ({} at random: taken since the directory; {} streams \
                     renamed, {} commands' fingerprints replaced)",
                    by_kind(&done.ids_remapped),
                    done.ids_remapped_at_random,
                    done.streams_renamed,
                    done.fingerprints_replaced
                );
                println!(
                    "  command ids derived from them remapped: {} ({} events with an id remapped)",
                    done.command_ids_remapped, done.events_with_ids_remapped
                );
                println!("  old log, sealed: {} (head digest {})", done.archived_log, done.previous_head);
                match (&to, &archive) {
                    (Some(new), _) => {
                        println!(
                            "  prove it: tracker verify --store '{}' --expect {}",
                            done.archived_log, done.previous_head
                        );
                        println!(
                            "  new log, at {}: head digest {} (its last event records the old digest); stop the \
                             replicas, set TRACKER_STORE to it, start them",
                            store::redact_url(new),
                            done.head
                        );
                    }
                    (_, Some(archive)) => {
                        println!(
                            "  prove it: tracker verify --data {} --expect {}",
                            archive.display(),
                            done.previous_head
                        );
                        println!("  new log: head digest {} (its last event records the old digest)", done.head);
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        Command::Serve { data, store, directory, addr, demo, graphiql, scenario, rate_limit } => {
            let data_dir =
                data.unwrap_or_else(|| if demo { PathBuf::from("data/demo") } else { PathBuf::from("data") });
            if demo {
                eprintln!(
                    "seeding the {} scenario into {} (the first time takes a while)…",
                    scenario.name(),
                    data_dir.display()
                );
            }
            serve(Settings { data_dir, store, directory, addr, demo, scenario, graphiql, rate_limit }).await
        }
        Command::Token { data, store, directory, action } => {
            token(&data, store.as_deref(), directory.as_deref(), action).await
        }
        Command::Seed { data, scenario } => seed(&data, scenario).await,
        Command::Events { data, store, after } => print_events(&data, store.as_deref(), after).await,
        Command::Import { template: Some(kind), .. } => app::import::template(&kind),
        Command::Import { generate: Some(dir), .. } => generate_files(&dir),
        Command::Import { kind, file, dry_run, report, json, data, .. } => {
            let (kind, file) = (kind.unwrap_or_default(), file.unwrap_or_default());
            let args = app::import::ImportArgs {
                data: &data,
                kind: &kind,
                file: &file,
                dry_run,
                report: report.as_deref(),
                json,
            };
            std::process::exit(app::import::run(args).await?)
        }
        Command::Bench { what } => bench(what).await,
        Command::Replay { data, store, as_of, as_known_at, format, plain_csv } => {
            replay(&data, store.as_deref(), projections::report::Cutoff { as_of, as_known_at }, format, plain_csv).await
        }
        Command::Explain {
            data,
            store,
            as_of,
            as_known_at,
            convention,
            envelope,
            figure,
            funder,
            year,
            format,
            plain_csv,
        } => {
            let cutoff = projections::report::Cutoff { as_of, as_known_at };
            let asked = Explained { convention, envelope, figure, funder, year };
            explain(&data, store.as_deref(), cutoff, asked, format, plain_csv).await
        }
        Command::Rebuild { data, store, json } => {
            let consistent = rebuild(&data, store, json).await?;
            std::process::exit(if consistent { 0 } else { 1 })
        }
        Command::Verify { data, store, expect, seal, json } => {
            let intact = verify(&data, store.as_deref(), expect.as_deref(), seal, json).await?;
            std::process::exit(if intact { 0 } else { 1 })
        }
    }
}

/// Where a log's personal data is: its data directory, the shared log, and the
/// directory of persons when not where the log is.
#[derive(clap::Args, Debug)]
struct PlaceArgs {
    #[arg(long, env = "TRACKER_DATA", default_value = "data")]
    data: PathBuf,
    /// A shared log (`postgres://…`): its replicas' tokens and directory of persons,
    /// instead of the data directory's.
    #[arg(long, env = "TRACKER_STORE")]
    store: Option<String>,
    /// The directory of persons, when not where the log is: a PostgreSQL database
    /// (`postgres://…`) that KurrentDB replicas share (see Données personnelles).
    #[arg(long, env = "TRACKER_DIRECTORY")]
    directory: Option<String>,
}

impl PlaceArgs {
    fn place(&self) -> app::personal::Place<'_> {
        app::personal::Place { data: &self.data, store: self.store.as_deref(), directory: self.directory.as_deref() }
    }
}

/// How `replay` and `explain` print: JSON, or CSV for a French spreadsheet.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Csv,
}

/// Prints `value` as pretty JSON, or the human report `text` (one figure a line).
fn print_figures<T: serde::Serialize>(value: &T, json: bool, text: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

async fn seed(data: &std::path::Path, scenario: Scenario) -> anyhow::Result<()> {
    let store = open_store(data)?;
    // The invented references of persons go into the data directory's directory of persons.
    let people = std::sync::Arc::new(store::Directory::open(data)?);
    let started = std::time::Instant::now();
    let written = scenario.seed_once(store, people, data).await?;
    println!(
        "seeded {} into {} ({written} new events in {:.1} s)",
        scenario.name(),
        data.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `import --generate DIR`: the demo's partner files, named in the order to import them.
fn generate_files(dir: &std::path::Path) -> anyhow::Result<()> {
    let files = scenarios::files::demo_files();
    for (kind, path) in scenarios::files::write_files(&files, dir, |k| k == imports::Kind::Habilitations)? {
        println!("tracker import {} {}", kind.name(), path.display());
    }
    Ok(())
}

async fn bench(what: BenchCommand) -> anyhow::Result<()> {
    let scale = |small: bool| if small { scenarios::plan::Scale::TINY } else { scenarios::plan::Scale::FULL };
    match what {
        BenchCommand::Directory { count, postgres, json } => {
            let figures = bench::directory::directory(count, postgres).await?;
            print_figures(&figures, json, bench::directory::report)
        }
        BenchCommand::Import { habilitations, purchases, json } => {
            let figures = bench::import::import(habilitations, purchases).await?;
            print_figures(&figures, json, bench::import::report)
        }
        BenchCommand::Dashboard { rate, seconds, clients, small, json } => {
            let figures =
                bench::dashboard::dashboard(scale(small), rate, Duration::from_secs(seconds), clients).await?;
            print_figures(&figures, json, bench::dashboard::report)
        }
        BenchCommand::All { small } => bench_all(scale(small)).await,
        BenchCommand::Write { seconds, clients, json, postgres } => {
            let options = bench::write::WriteOptions {
                clients,
                postgres,
                ..bench::write::WriteOptions::new(Duration::from_secs(seconds))
            };
            let figures = bench::write::write(&options).await?;
            print_figures(&figures, json, bench::write::report)
        }
        BenchCommand::Attack { attackers, rate, seconds, full, json } => {
            let figures = bench::attack::attack(scale(!full), attackers, rate, Duration::from_secs(seconds)).await?;
            print_figures(&figures, json, bench::attack::report)
        }
        BenchCommand::Workload { commands, aggregates, writers } => {
            let figures = bench::workload::workload(commands, aggregates, writers).await?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        BenchCommand::Store { events, seconds, json } => {
            let figures = bench::log::store(events, Duration::from_secs(seconds)).await?;
            print_figures(&figures, json, bench::log::report)
        }
    }
}

/// `bench all`: the log, then the plan seeded, rebuilt and queried, then the write path.
async fn bench_all(scale: scenarios::plan::Scale) -> anyhow::Result<()> {
    let store = bench::log::store(1_000_000, Duration::from_secs(3)).await?;
    print!("{}", bench::log::report(&store));
    let dash = bench::dashboard::dashboard(scale, 1_000, Duration::from_secs(5), 32).await?;
    let seeding = dash.events as f64 / dash.seed_seconds.max(1e-9);
    println!(
        "{:<44} {seeding:>12.0} {:<10} {:>9.1}×",
        "seeding the plan (typed use cases)",
        "events/s",
        seeding / store.fsync_per_s
    );
    println!(
        "{:<44} {:>12.0} {:<10} {:>9.1}×\n",
        "rebuild of every read model",
        dash.rebuild_events_per_s,
        "events/s",
        dash.rebuild_events_per_s / store.fsync_per_s
    );
    print!("{}", bench::dashboard::report(&dash));
    let write = bench::write::write(&bench::write::WriteOptions::new(Duration::from_secs(3))).await?;
    print!("\n{}", bench::write::report(&write));
    Ok(())
}

async fn replay(
    data: &std::path::Path,
    store: Option<&str>,
    cutoff: projections::report::Cutoff,
    format: Format,
    plain_csv: bool,
) -> anyhow::Result<()> {
    let (builder, integrity) = audited(data, store, cutoff).await?;
    let report = builder.finish(&integrity);
    match format {
        Format::Csv => print!("{}", projections::report::to_csv(&report, !plain_csv)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

/// The figure `explain` was asked about.
struct Explained {
    convention: String,
    envelope: String,
    figure: String,
    funder: Option<String>,
    year: Option<i32>,
}

async fn explain(
    data: &std::path::Path,
    store: Option<&str>,
    cutoff: projections::report::Cutoff,
    asked: Explained,
    format: Format,
    plain_csv: bool,
) -> anyhow::Result<()> {
    let figure = projections::report::Figure::parse(&asked.figure).context(
        "--figure is one of allocated, committed, service-done, paid (an envelope's), received, justified, recovered, co-funder-spent (the partner's)",
    )?;
    let (builder, _) = audited(data, store, cutoff).await?;
    let convention_id = domain::ConventionId::for_code(&asked.convention);
    let envelope_id =
        (!asked.envelope.is_empty()).then(|| domain::EnvelopeId::for_name(convention_id, &asked.envelope));
    let events = match (&asked.funder, envelope_id) {
        (Some(funder), envelope_id) => {
            let funders = builder.funders_of(convention_id);
            anyhow::ensure!(
                funders.iter().any(|f| f.eq_ignore_ascii_case(funder)),
                "--funder {funder:?} does not fund {}: its funders are {}",
                asked.convention,
                funders.join(", ")
            );
            builder.explain_funder(convention_id, envelope_id, figure, funder)
        }
        (None, _) if figure.of_partner() => builder.explain_partner(convention_id, figure),
        (None, Some(envelope_id)) => builder.explain(convention_id, envelope_id, figure),
        (None, None) => {
            anyhow::bail!(
                "--envelope names the envelope whose {figure:?} to explain (or --funder, for a funder's part of the whole convention)"
            )
        }
    };
    let events = match asked.year {
        Some(year) => projections::report::in_fiscal_year(events, year),
        None => events,
    };
    match format {
        Format::Csv => print!("{}", projections::report::events_to_csv(&events, !plain_csv)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&events)?),
    }
    Ok(())
}

/// `rebuild`: every read model from the log; whether the snapshots agreed with it.
async fn rebuild(data: &std::path::Path, store: Option<String>, json: bool) -> anyhow::Result<bool> {
    // Read-only: a running server may keep the log open meanwhile.
    let log: std::sync::Arc<dyn store::EventStore> = match store {
        None => std::sync::Arc::new(store::SqliteStore::open_read_only(data.join(app::LOG_FILE))?),
        Some(url) => app::connect_store(&url).await?,
    };
    let report = app::rebuild::rebuild(log.as_ref(), &data.join(app::SNAPSHOTS_DIR)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.consistent());
    }
    let rate = report.events as f64 / report.seconds.max(1e-9);
    println!("rebuilt every read model from {} events in {:.3} s ({rate:.0} events/s)", report.events, report.seconds);
    for v in &report.views {
        let check = match (v.previous_snapshot, v.same_figures) {
            (Some(p), Some(true)) => format!("same figures as the snapshot at position {p} brought up to date"),
            (Some(p), _) => format!("DIFFERENT from the snapshot at position {p}: it was replaced"),
            (None, _) => "no usable snapshot before".to_string(),
        };
        println!("  {:<15} position {:>8}  {check}", v.view, v.position);
    }
    Ok(report.consistent())
}

async fn verify(
    data: &std::path::Path,
    store: Option<&str>,
    expect: Option<&str>,
    seal: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let anchor = expect
        .map(|e| {
            let (position, hash) = e.split_once(':').context("--expect takes POSITION:HASH")?;
            let position: u64 = position.parse().context("--expect: the position is not a number")?;
            let hash = store::ChainHash::from_hex(hash).context("--expect: the hash is not 64 hexadecimal digits")?;
            anyhow::Ok((position, hash))
        })
        .transpose()?;
    let mut snapshots = Vec::new();
    let mut whole_log_chain = true;
    // KurrentDB: the seal the log was checked against, and the one written now.
    #[cfg_attr(not(feature = "kurrentdb"), allow(unused_mut))]
    let mut seals: (Option<String>, Option<String>) = (None, None);
    let kurrent = store.is_some_and(|url| !store::postgres::is_postgres_url(url));
    anyhow::ensure!(
        !seal || kurrent,
        "--seal is for a KurrentDB log: the embedded and PostgreSQL logs keep a whole-log chain"
    );
    let (path, report) = match store {
        None => {
            let path = data.join(app::LOG_FILE);
            let report = store::sqlite::verify(&path, anchor)?;
            // The read models' snapshots beside the log: proved against a fold of it.
            let dir = data.join(app::SNAPSHOTS_DIR);
            if report.is_intact() && dir.is_dir() {
                let log = store::SqliteStore::open_read_only(&path)?;
                snapshots = app::rebuild::check_snapshots(&log, &dir).await?;
            }
            (path.display().to_string(), report)
        }
        Some(url) if store::postgres::is_postgres_url(url) => {
            let log = store::PostgresStore::connect(url)
                .await
                .with_context(|| format!("cannot open the event log at {}", store::redact_url(url)))?;
            (store::redact_url(url), log.verify(anchor).await?)
        }
        #[cfg(feature = "kurrentdb")]
        Some(url) if store::kurrent::is_kurrent_url(url) => {
            let log = store::kurrent::KurrentStore::connect(url)
                .await
                .with_context(|| format!("cannot open the event log at {}", store::redact_url(url)))?;
            let (report, checked) = log.verify(anchor).await?;
            let describe = |s: &store::kurrent::Seal| format!("{}:{} (sealed {})", s.position, s.hash, s.sealed_at);
            seals.0 = checked.as_ref().map(describe);
            if seal && report.is_intact() {
                seals.1 = Some(describe(&log.seal(&report).await?));
            }
            (store::redact_url(url), report)
        }
        Some(url) => {
            anyhow::ensure!(!seal, "--seal needs a build with `--features kurrentdb`");
            anyhow::ensure!(
                anchor.is_none(),
                "--expect needs a whole-log chain, which the embedded and PostgreSQL logs keep and KurrentDB does not"
            );
            whole_log_chain = false;
            let log = app::connect_store(url).await?;
            (store::redact_url(url), store::verify_store(log.as_ref(), false).await?)
        }
    };
    let altered: Vec<_> = snapshots.iter().filter(|v| v.same_figures == Some(false)).collect();
    if json {
        let mut out = serde_json::to_value(&report)?;
        out["snapshots"] = serde_json::to_value(&snapshots)?;
        if kurrent {
            out["sealChecked"] = serde_json::to_value(&seals.0)?;
            out["sealWritten"] = serde_json::to_value(&seals.1)?;
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(report.is_intact() && altered.is_empty());
    }
    if !altered.is_empty() {
        println!("{}: SNAPSHOTS ALTERED", data.join(app::SNAPSHOTS_DIR).display());
        for v in &altered {
            println!(
                "  the {} snapshot (position {}) does not give the log's figures: it was altered or corrupted",
                v.view,
                v.previous_snapshot.unwrap_or(0)
            );
        }
        println!("  `tracker rebuild` writes them again from the log");
    }
    match &report.first_break {
        None => {
            println!("{path}: INTACT");
            println!("  {} events in {} streams, every hash chain verified", report.events, report.streams);
            println!("  head digest {}:{}", report.head_position, report.head_hash);
            match &seals {
                (Some(checked), _) => println!("  the whole log matches its last seal, {checked}"),
                (None, _) if kurrent => {
                    println!("  no seal in the log yet: `tracker verify --seal` writes one, checked from then on")
                }
                _ => {}
            }
            if let Some(written) = &seals.1 {
                println!("  sealed: {written}");
            }
            if whole_log_chain {
                println!(
                    "  keep it: `tracker verify --expect {}:{}` proves later that nothing before it changed",
                    report.head_position, report.head_hash
                );
            }
        }
        Some(b) => {
            println!("{path}: ALTERED");
            println!("  first break at position {}, stream {}, version {}", b.position, b.stream, b.version);
            println!("  {}", b.reason);
            println!("  {} events before it verified", report.events);
        }
    }
    Ok(report.is_intact() && altered.is_empty())
}

async fn token(
    data: &std::path::Path,
    store: Option<&str>,
    directory: Option<&str>,
    action: TokenAction,
) -> anyhow::Result<()> {
    let tokens = match store {
        None => {
            anyhow::ensure!(directory.is_none(), "give --directory only with --store");
            api::TokenStore::open(data)?
        }
        Some(url) => {
            let log = app::connect_store(url).await?;
            anyhow::ensure!(
                log.replica_state().is_some(),
                "{} keeps no tokens: they stay in the data directory",
                store::redact_url(url)
            );
            app::open_tokens(data, &log, Some(url), directory)?
        }
    };
    match action {
        TokenAction::Create { role, structure, label, person } => {
            let role = api::Role::parse(&role)
                .with_context(|| format!("unknown role `{role}`: use anct, opco, structure, copil or auditor"))?;
            let holder = match (&label, person) {
                (_, Some(person)) => api::Holder::Person(person),
                (Some(label), None) => api::Holder::Named(label),
                (None, None) => anyhow::bail!("give --label NAME or --person ID"),
            };
            let (record, secret) = tokens.create(role, structure, holder).await?;
            let person = record.person.map(|p| p.to_string()).unwrap_or_default();
            println!("token {} ({}, {}, person {person})", record.id, role.name(), tokens.holder_name(&record));
            println!("{secret}");
            eprintln!("This secret is shown once: only its hash is kept. Send it as `Authorization: Bearer <secret>`.");
        }
        TokenAction::Revoke { id } => {
            anyhow::ensure!(tokens.revoke(id).await?, "no active token {id}");
            println!("token {id} revoked");
        }
        TokenAction::List => {
            for t in tokens.list().await {
                let state = t.revoked_at.map_or("active".to_string(), |at| format!("revoked {at}"));
                let structure = t.structure.map(|s| format!(" structure {s}")).unwrap_or_default();
                let person = t.person.map(|p| format!(" person {p}")).unwrap_or_default();
                println!("{}  {:<9} {}{person}{structure}  ({state})", t.id, t.role.name(), tokens.holder_name(&t));
            }
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    let url = format!("http://{}", app.addr());
    let log = settings
        .store
        .as_deref()
        .map(store::redact_url)
        .unwrap_or_else(|| settings.data_dir.join(app::LOG_FILE).display().to_string());
    println!("Convention Tracker is serving {log} on {url}");
    if settings.graphiql || settings.demo {
        println!("  GraphiQL:  {url}/");
    }
    println!("  Dashboard: {url}/dashboard   (for the comité de pilotage: paste a copil token)");
    println!("  GraphQL:   {url}/graphql   (POST, with `Authorization: Bearer <token>`)");
    println!("  Health:    {url}/health");
    if settings.demo {
        println!(
            "\nDemo tokens (shown once; in GraphiQL, paste one into Headers as {{\"Authorization\": \"Bearer <token>\"}}):"
        );
        for (role, secret) in app.demo_tokens() {
            println!("  {:<9} {secret}", role.name());
        }
        println!(
            "\nDemo data: the {} scenario. Paste into GraphiQL (with the copil token):\n",
            settings.scenario.name()
        );
        println!(
            "  {{ dashboard {{ total {{ budget {{ committed serviceDone paid }} training {{ trainees certifyingPercent }} habilitations {{ habilitated }} reimbursements {{ claimed reimbursed meanDaysToPaid p90DaysToPaid overdueClaims lateFundsCalls }} }} targets {{ kind target reached percent }} }} }}\n"
        );
        println!(
            "  {{ dashboard(region: \"32\") {{ departements {{ edges {{ node {{ departement {{ code name }} indicators {{ training {{ trainees }} habilitations {{ habilitated }} budget {{ committed }} }} }} }} }} }} }}\n"
        );
        println!(
            "  {{ conventions {{ code total budget {{ committed paid available consumedPercent }} funders {{ funder figures {{ committed paid }} }} }} }}\n"
        );
        println!("  (and, as the auditor: {{ report(asOf: \"2021-12-31\") }})\n");
    }
    app.run(shutdown_signal()).await.context("the server stopped")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

/// The log of `data` (or `store`), verified and replayed with `cutoff`.
async fn audited(
    data: &std::path::Path,
    store: Option<&str>,
    cutoff: projections::report::Cutoff,
) -> anyhow::Result<(projections::report::ReportBuilder, projections::report::Integrity)> {
    match store {
        None => {
            let path = data.join(app::LOG_FILE);
            let log = store::SqliteStore::open_read_only(&path)?;
            app::audit::replayed(&log, Some(&path), cutoff).await
        }
        Some(url) => {
            let log = app::connect_store(url).await?;
            app::audit::replayed(log.as_ref(), None, cutoff).await
        }
    }
}

/// The commands that print (`events`, `verify`, `replay`…) end like any Unix tool when
/// their reader goes away (`tracker events | head`): killed by SIGPIPE, silently, instead of
/// a panic or an error about a broken pipe. Rust ignores SIGPIPE by default; the server
/// keeps that (a client closing its socket must not end it).
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: called once at start-up, before any thread is spawned or any signal handler
    // installed; SIG_DFL is the signal's own default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn print_events(data: &std::path::Path, store: Option<&str>, after: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let store: std::sync::Arc<dyn EventStore> = match store {
        None => std::sync::Arc::new(store::SqliteStore::open_read_only(data.join(app::LOG_FILE))?),
        Some(url) => app::connect_store(url).await?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut position = after;
    loop {
        let page = store.read_all(position, 1000).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        for e in &page {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

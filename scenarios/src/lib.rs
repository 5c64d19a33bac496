//! The scenarios: what `seed` and `serve --demo` write into a log, through the typed use
//! cases only (the one write path, as ANCT, the OPCO or a structure would send them): the
//! plan at full scale (`plan`), a small sample of every programme (`demo`), the register
//! of the plan's measures (`register`), and the partners' files generated and imported
//! (`files`). Never a rule of its own (the domain's decide) nor a read model.

pub mod demo;
pub mod files;
pub mod plan;
pub mod register;
pub mod seeding;

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use store::EventStore;

/// What `seed` and `serve --demo` put into an empty data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The plan at full scale: 2 000 trainees, 20 000 aidants, claims, funds calls.
    #[value(name = "plan-2021")]
    Plan2021,
    /// A small sample of every programme (seconds to seed; what the tests use).
    Sample,
    /// The conventions, then partners' files (generated) imported through `tracker import`'s path.
    Files,
}

impl Scenario {
    /// Seeds the scenario (idempotent); returns the events written. The references of
    /// persons it invents go into `people`, the directory of the data directory seeded
    /// (the log records their ids only, as for every entry point).
    pub async fn seed(self, log: Arc<dyn EventStore>, people: Arc<store::Directory>) -> anyhow::Result<u64> {
        match self {
            Scenario::Plan2021 => {
                let progress = seeding::Progress::stderr();
                Ok(plan::seed_with_progress(log, people, plan::Scale::FULL, plan::SEED, plan::CONCURRENCY, progress)
                    .await?
                    .events)
            }
            Scenario::Sample => Ok(demo::seed_with_progress(log, people, seeding::Progress::stderr()).await? as u64),
            Scenario::Files => {
                let dir = tempfile::tempdir()?;
                files::seed_from_files(log, people, dir.path(), seeding::Progress::stderr()).await
            }
        }
    }

    /// Seeds the scenario into the log of `data_dir` unless a seeding already ran whole
    /// there: a marker file remembers the log position it reached, and a later start
    /// whose log still reaches it skips the seeding (for the full plan, 5 s of lookups
    /// that would find every step applied). Deleting the marker makes the next start check
    /// every step again.
    pub async fn seed_once(
        self,
        log: Arc<dyn EventStore>,
        people: Arc<store::Directory>,
        data_dir: &Path,
    ) -> anyhow::Result<u64> {
        let marker = data_dir.join(format!("seeded-{}", self.name()));
        let head = *log.head().borrow();
        let seeded_to = std::fs::read_to_string(&marker).ok().and_then(|t| t.trim().parse::<u64>().ok());
        if seeded_to.is_some_and(|at| at > 0 && head >= at) {
            return Ok(0);
        }
        let written = self.seed(log.clone(), people).await?;
        std::fs::create_dir_all(data_dir)?;
        std::fs::write(&marker, format!("{}\n", *log.head().borrow()))
            .with_context(|| format!("cannot write {}", marker.display()))?;
        Ok(written)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Plan2021 => "plan-2021",
            Scenario::Sample => "sample",
            Scenario::Files => "files",
        }
    }

    /// The structure the demo's `structure` token is bound to.
    pub fn structure(self) -> uuid::Uuid {
        match self {
            Scenario::Plan2021 => plan::structure(0),
            Scenario::Sample => demo::demo_structure(),
            Scenario::Files => files::demo_structure(),
        }
    }
}

//! Read models of Convention Tracker: pure folds over the log, and the runner that keeps
//! them up to date.
//!
//! A read model never does I/O and never decides anything; it may be thrown away and
//! rebuilt from the log at any time, and must then give the same figures.

pub mod budget;
pub mod dashboard;
pub mod programmes;
pub mod purchases;
pub mod reimbursements;
pub mod report;
pub mod runner;
pub mod structures;

pub use budget::BudgetView;
pub use dashboard::DashboardView;
pub use programmes::ProgrammesView;
pub use purchases::PurchasesView;
pub use reimbursements::ReimbursementsView;
pub use runner::{AnyRunner, Checkpointed, Runner};
pub use structures::StructuresView;

use store::RecordedEvent;

/// A read model: folds recorded events, one at a time, in log order. Serialisable, so
/// that a snapshot of it can be kept with the position it reflects.
pub trait Projection: Default + Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// Names its snapshot file.
    const NAME: &'static str;
    /// Bumped when the view's shape or meaning changes: an older snapshot is then
    /// ignored and the view rebuilt from the log.
    const FORMAT: u32 = 1;

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("event at position {position} ({event_type}) cannot be read: {reason}")]
    Unreadable { position: u64, event_type: String, reason: String },
    #[error("the log cannot be read: {0}")]
    Log(String),
}

/// A map with structured keys, written to JSON as a list of `[key, value]` pairs (JSON
/// object keys can only be strings).
pub(crate) mod entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

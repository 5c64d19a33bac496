//! Read models of Convention Tracker: pure folds over the log, and the runner that keeps
//! them up to date.
//!
//! A read model never does I/O and never decides anything; it may be thrown away and
//! rebuilt from the log at any time, and must then give the same figures.

pub mod budget;
pub mod programmes;
pub mod purchases;
pub mod reimbursements;
pub mod runner;
pub mod structures;

pub use budget::BudgetView;
pub use programmes::ProgrammesView;
pub use purchases::PurchasesView;
pub use reimbursements::ReimbursementsView;
pub use runner::{Checkpointed, Runner};
pub use structures::StructuresView;

use store::RecordedEvent;

/// A read model: folds recorded events, one at a time, in log order.
pub trait Projection: Default + Send + Sync + 'static {
    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("event at position {position} ({event_type}) cannot be read: {reason}")]
    Unreadable { position: u64, event_type: String, reason: String },
    #[error("the log cannot be read: {0}")]
    Log(String),
}

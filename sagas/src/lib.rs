//! Process managers (sagas) of Convention Tracker. A saga is a pure reaction to events
//! ([`Reimbursement::react`], [`Reimbursement::tick`]) that returns the next commands;
//! the [`ReimbursementProcess`] around it reads the log, delivers those commands and persists its
//! checkpoint. Every command's id is derived from the event (or deadline) that caused
//! it, so a process restarted after a crash re-sends nothing that was applied.
//!
//! A saga must never decide a business rule (the aggregates do, through the use cases) nor
//! write except through the use cases.

mod checkpoint;
mod clock;
mod process;
pub mod reimbursement;

pub use checkpoint::{Checkpoint, FileCheckpoint, MemoryCheckpoint, SharedCheckpoint};
pub use clock::{Clock, ManualClock, SystemClock};
pub use process::{ReimbursementProcess, SagaError, SagaRunner};
pub use reimbursement::{ACTOR, Funding, Reimbursement, SagaCommand, Step, Work};

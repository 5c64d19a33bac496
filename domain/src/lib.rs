//! The pure domain of Convention Tracker: values, commands, events and the rules that
//! decide between them.
//!
//! This crate must never do I/O: no clock, no file, no database, no async. Facts that
//! need a lookup (a date, a territory) come in with the command, so `decide` is a pure
//! function that the given/when/then tests can pin down exactly.

pub mod aggregate;
pub mod aidants;
pub mod annex;
pub mod ccas;
pub mod claim;
pub mod convention;
pub mod disbursement;
pub mod financing;
pub mod framework;
pub mod funds_call;
pub mod ids;
pub mod measure;
pub mod money;
pub mod personal;
pub mod pix;
pub mod purchase;
pub mod structure;
pub mod territory;
pub mod testing;

pub use aggregate::{Aggregate, CommandMeta, DomainEvent};
pub use ids::{CommandId, ConventionId, CorrelationId, EnvelopeId, EventId};
pub use money::{Money, MoneyError};
pub use territory::{DepartementCode, RegionCode, TerritoryError};

/// Business dates are calendar days in France; the plan never needs a time of day.
pub type BusinessDate = chrono::NaiveDate;

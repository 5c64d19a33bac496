//! The shape every aggregate follows: a pure `decide` and a pure `evolve`.

use crate::ids::{CommandId, CorrelationId, EventId};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An aggregate is rebuilt by folding its events with `evolve`; a command is judged by
/// `decide` against that state. Both are synchronous and free of side effects.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// Serializable so that the log can fingerprint it for idempotency.
    type Command: Serialize + std::fmt::Debug + Send + Sync;
    type Event: DomainEvent;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The stream category, e.g. `convention` for `convention-<id>`.
    const CATEGORY: &'static str;

    /// The events this command produces, or the rule it breaks. Never does I/O.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after one more event. Must accept every event `decide` ever produced.
    fn evolve(&mut self, event: &Self::Event);

    /// Rebuilds a state from its history.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for e in events {
            state.evolve(e);
        }
        state
    }
}

/// What the log needs to know of an event beyond its JSON payload.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync {
    /// The event's type name, past tense (`ConventionSigned`).
    fn event_type(&self) -> &'static str;
    /// The business date the event concerns (the first of the two time axes; the store
    /// adds the second, the instant it was recorded).
    fn business_date(&self) -> NaiveDate;
    /// The payload's shape, recorded with every event and hashed into its chain. Nothing
    /// reads it yet: shapes have only grown additively (a new field optional, read with a
    /// serde default, as `AnnexClaimAwaitingFunds.shortfall` beside the older `reason`), so
    /// every version-1 payload still decodes. A change old payloads cannot decode into
    /// would bump it and decode by it.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// Who sent a command and why; every event it causes keeps a copy in its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandMeta {
    /// The idempotency key.
    pub command_id: CommandId,
    /// Who acted: a user or a process (`saga:reimbursement`).
    pub actor: String,
    /// The user action or workflow this command belongs to.
    pub correlation_id: CorrelationId,
    /// The event (or command) that caused this command, if any.
    pub causation_id: Option<EventId>,
}

impl CommandMeta {
    /// A command started by a person: its own correlation, no cause.
    pub fn new(command_id: CommandId, actor: impl Into<String>) -> Self {
        Self { command_id, actor: actor.into(), correlation_id: CorrelationId(command_id.0), causation_id: None }
    }
}

//! Aidants Connect: the mandatory training and the habilitation of professional aidants
//! (20 000 in the plan, about 125 € a seat). An aidant is a pseudonymous reference in a
//! structure: no more personal data than needed.
//!
//! No completed training, no habilitation; one active habilitation per aidant and
//! structure (the habilitation's id is derived from both, and a new request is accepted
//! only once the previous one has ended); a training session has a capacity.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{CommandId, ConventionId, TRACKER_NAMESPACE};
use crate::money::Money;
use crate::structure::StructureId;
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    pub fn for_command(command: CommandId) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("ac-session:{}", command.0).as_bytes()))
    }
    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "session", input: input.into() })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HabilitationId(pub Uuid);

impl HabilitationId {
    /// One habilitation stream per aidant and structure.
    pub fn of(structure: StructureId, aidant: &str) -> Self {
        let key = format!("habilitation:{}:{}", structure.0, aidant.trim().to_uppercase());
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, key.as_bytes()))
    }
    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "habilitation", input: input.into() })
    }
    /// The reference the money of its `cycle`-th training carries on the convention.
    pub fn reference(&self, cycle: u32) -> String {
        format!("AIDANTS-CONNECT-{}-{cycle}", self.0)
    }
}

// --- Training sessions -----------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum SessionCommand {
    Open { session_id: SessionId, convention_id: ConventionId, capacity: u32, seat_cost: Money, held_on: NaiveDate },
    ReserveSeat { session_id: SessionId, habilitation_id: HabilitationId },
}

impl SessionCommand {
    pub fn session_id(&self) -> SessionId {
        match self {
            SessionCommand::Open { session_id, .. } | SessionCommand::ReserveSeat { session_id, .. } => *session_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionEvent {
    SessionOpened {
        session_id: SessionId,
        convention_id: ConventionId,
        capacity: u32,
        seat_cost: Money,
        held_on: NaiveDate,
    },
    SeatReserved {
        habilitation_id: HabilitationId,
        held_on: NaiveDate,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SessionEvent::SessionOpened { .. } => "AidantsConnectSessionOpened",
            SessionEvent::SeatReserved { .. } => "AidantsConnectSeatReserved",
        }
    }
    fn business_date(&self) -> NaiveDate {
        match self {
            SessionEvent::SessionOpened { held_on, .. } | SessionEvent::SeatReserved { held_on, .. } => *held_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum SessionError {
    #[error("no training session has this id")]
    NotFound,
    #[error("this session is already open")]
    AlreadyOpen,
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("the session is full: {capacity} seats, all taken")]
    Full { capacity: u32 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingSession {
    pub opened: Option<(u32, Money, NaiveDate, ConventionId)>,
    pub seats: BTreeSet<HabilitationId>,
}

impl Aggregate for TrainingSession {
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    const CATEGORY: &'static str = "acsession";

    fn decide(&self, command: &SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match command {
            SessionCommand::Open { session_id, convention_id, capacity, seat_cost, held_on } => {
                if self.opened.is_some() {
                    return Err(SessionError::AlreadyOpen);
                }
                if *capacity == 0 {
                    return Err(SessionError::Zero { field: "the capacity" });
                }
                if seat_cost.is_zero() {
                    return Err(SessionError::Zero { field: "the seat cost" });
                }
                Ok(vec![SessionEvent::SessionOpened {
                    session_id: *session_id,
                    convention_id: *convention_id,
                    capacity: *capacity,
                    seat_cost: *seat_cost,
                    held_on: *held_on,
                }])
            }
            SessionCommand::ReserveSeat { habilitation_id, .. } => {
                let (capacity, _, held_on, _) = self.opened.ok_or(SessionError::NotFound)?;
                if self.seats.contains(habilitation_id) {
                    return Ok(vec![]); // already seated: nothing to do
                }
                if self.seats.len() as u32 >= capacity {
                    return Err(SessionError::Full { capacity });
                }
                Ok(vec![SessionEvent::SeatReserved { habilitation_id: *habilitation_id, held_on }])
            }
        }
    }

    fn evolve(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::SessionOpened { capacity, seat_cost, held_on, convention_id, .. } => {
                self.opened = Some((*capacity, *seat_cost, *held_on, *convention_id))
            }
            SessionEvent::SeatReserved { habilitation_id, .. } => {
                self.seats.insert(*habilitation_id);
            }
        }
    }
}

// --- Habilitations ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HabilitationState {
    Requested,
    EligibilityValidated,
    RegisteredToTraining,
    TrainingCompleted,
    Habilitated,
    Revoked,
    Refused,
    Cancelled,
}

impl HabilitationState {
    /// Ended states let the aidant ask again.
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Revoked | Self::Refused | Self::Cancelled)
    }
}

/// How the habilitated aidant authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Means {
    Card,
    App,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum HabilitationCommand {
    Request {
        habilitation_id: HabilitationId,
        structure_id: StructureId,
        departement: DepartementCode,
        aidant: String,
        on: NaiveDate,
    },
    ValidateEligibility {
        habilitation_id: HabilitationId,
        on: NaiveDate,
    },
    Refuse {
        habilitation_id: HabilitationId,
        reason: String,
        on: NaiveDate,
    },
    Cancel {
        habilitation_id: HabilitationId,
        reason: String,
        on: NaiveDate,
    },
    /// The seat is reserved on the session first; `seat_cost` and `convention_id` are facts of that session.
    RegisterToSession {
        habilitation_id: HabilitationId,
        session_id: SessionId,
        convention_id: ConventionId,
        seat_cost: Money,
        on: NaiveDate,
    },
    CompleteTraining {
        habilitation_id: HabilitationId,
        on: NaiveDate,
    },
    Habilitate {
        habilitation_id: HabilitationId,
        means: Means,
        on: NaiveDate,
    },
    Revoke {
        habilitation_id: HabilitationId,
        reason: String,
        on: NaiveDate,
    },
}

impl HabilitationCommand {
    pub fn habilitation_id(&self) -> HabilitationId {
        use HabilitationCommand as C;
        match self {
            C::Request { habilitation_id, .. }
            | C::ValidateEligibility { habilitation_id, .. }
            | C::Refuse { habilitation_id, .. }
            | C::Cancel { habilitation_id, .. }
            | C::RegisterToSession { habilitation_id, .. }
            | C::CompleteTraining { habilitation_id, .. }
            | C::Habilitate { habilitation_id, .. }
            | C::Revoke { habilitation_id, .. } => *habilitation_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HabilitationEvent {
    HabilitationRequested {
        habilitation_id: HabilitationId,
        structure_id: StructureId,
        departement: DepartementCode,
        aidant: String,
        cycle: u32,
        on: NaiveDate,
    },
    EligibilityValidated {
        on: NaiveDate,
    },
    HabilitationRefused {
        reason: String,
        on: NaiveDate,
    },
    HabilitationCancelled {
        reason: String,
        on: NaiveDate,
    },
    RegisteredToSession {
        session_id: SessionId,
        convention_id: ConventionId,
        seat_cost: Money,
        on: NaiveDate,
    },
    /// Charges the seat's cost to the Aidants Connect envelope.
    TrainingCompleted {
        convention_id: ConventionId,
        seat_cost: Money,
        reference: String,
        on: NaiveDate,
    },
    Habilitated {
        means: Means,
        on: NaiveDate,
    },
    HabilitationRevoked {
        reason: String,
        on: NaiveDate,
    },
}

impl DomainEvent for HabilitationEvent {
    fn event_type(&self) -> &'static str {
        use HabilitationEvent as E;
        match self {
            E::HabilitationRequested { .. } => "HabilitationRequested",
            E::EligibilityValidated { .. } => "EligibilityValidated",
            E::HabilitationRefused { .. } => "HabilitationRefused",
            E::HabilitationCancelled { .. } => "HabilitationCancelled",
            E::RegisteredToSession { .. } => "RegisteredToSession",
            E::TrainingCompleted { .. } => "TrainingCompleted",
            E::Habilitated { .. } => "Habilitated",
            E::HabilitationRevoked { .. } => "HabilitationRevoked",
        }
    }
    fn business_date(&self) -> NaiveDate {
        use HabilitationEvent as E;
        match self {
            E::HabilitationRequested { on, .. }
            | E::EligibilityValidated { on }
            | E::HabilitationRefused { on, .. }
            | E::HabilitationCancelled { on, .. }
            | E::RegisteredToSession { on, .. }
            | E::TrainingCompleted { on, .. }
            | E::Habilitated { on, .. }
            | E::HabilitationRevoked { on, .. } => *on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum HabilitationError {
    #[error("no habilitation has this id")]
    NotFound,
    #[error("this aidant already has an active habilitation request in this structure ({state:?})")]
    AlreadyActive { state: HabilitationState },
    #[error("the habilitation is {state:?}: it cannot be {action} now")]
    WrongState { state: HabilitationState, action: &'static str },
    #[error("no completed training, no habilitation")]
    NoCompletedTraining,
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
    /// A reference of a person must be a pseudonym (see [`crate::personal`]).
    #[error(
        "{field} looks like {looks_like}: give the structure's pseudonymous reference, never contact details or a NIR"
    )]
    PersonalData { field: &'static str, looks_like: crate::personal::LooksLike },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Habilitation {
    pub state: Option<HabilitationState>,
    pub cycle: u32,
    pub session: Option<(SessionId, ConventionId, Money)>,
    /// The structure's département, recorded with the request: the seat's money is
    /// charged to this territory, decided from the habilitation's own events.
    pub departement: Option<crate::DepartementCode>,
}

impl Habilitation {
    fn require_state(&self, allowed: &[HabilitationState], action: &'static str) -> Result<(), HabilitationError> {
        let state = self.state.ok_or(HabilitationError::NotFound)?;
        if allowed.contains(&state) { Ok(()) } else { Err(HabilitationError::WrongState { state, action }) }
    }
}

fn reason(reason: &str) -> Result<String, HabilitationError> {
    let r = reason.trim();
    if r.is_empty() { Err(HabilitationError::MissingField { field: "the reason" }) } else { Ok(r.into()) }
}

impl Aggregate for Habilitation {
    type Command = HabilitationCommand;
    type Event = HabilitationEvent;
    type Error = HabilitationError;
    const CATEGORY: &'static str = "habilitation";

    fn decide(&self, command: &HabilitationCommand) -> Result<Vec<HabilitationEvent>, HabilitationError> {
        use HabilitationCommand as C;
        use HabilitationEvent as E;
        use HabilitationState as S;
        Ok(vec![match command {
            C::Request { habilitation_id, structure_id, departement, aidant, on } => {
                if let Some(state) = self.state.filter(|s| !s.is_ended()) {
                    return Err(HabilitationError::AlreadyActive { state });
                }
                if aidant.trim().is_empty() {
                    return Err(HabilitationError::MissingField { field: "the aidant reference" });
                }
                if let Some(looks_like) = crate::personal::looks_like(aidant) {
                    return Err(HabilitationError::PersonalData { field: "the aidant reference", looks_like });
                }
                E::HabilitationRequested {
                    habilitation_id: *habilitation_id,
                    structure_id: *structure_id,
                    departement: departement.clone(),
                    aidant: aidant.trim().to_uppercase(),
                    cycle: self.cycle + 1,
                    on: *on,
                }
            }
            C::ValidateEligibility { on, .. } => {
                self.require_state(&[S::Requested], "validated")?;
                E::EligibilityValidated { on: *on }
            }
            C::Refuse { reason: r, on, .. } => {
                self.require_state(&[S::Requested], "refused")?;
                E::HabilitationRefused { reason: reason(r)?, on: *on }
            }
            C::Cancel { reason: r, on, .. } => {
                self.require_state(&[S::Requested, S::EligibilityValidated, S::RegisteredToTraining], "cancelled")?;
                E::HabilitationCancelled { reason: reason(r)?, on: *on }
            }
            C::RegisterToSession { session_id, convention_id, seat_cost, on, .. } => {
                self.require_state(&[S::EligibilityValidated], "registered to a session")?;
                E::RegisteredToSession {
                    session_id: *session_id,
                    convention_id: *convention_id,
                    seat_cost: *seat_cost,
                    on: *on,
                }
            }
            C::CompleteTraining { habilitation_id, on } => {
                self.require_state(&[S::RegisteredToTraining], "marked as trained")?;
                let (_, convention_id, seat_cost) = self.session.ok_or(HabilitationError::NotFound)?;
                E::TrainingCompleted {
                    convention_id,
                    seat_cost,
                    reference: habilitation_id.reference(self.cycle),
                    on: *on,
                }
            }
            C::Habilitate { means, on, .. } => {
                let state = self.state.ok_or(HabilitationError::NotFound)?;
                if state != S::TrainingCompleted {
                    return Err(match state {
                        S::Requested | S::EligibilityValidated | S::RegisteredToTraining => {
                            HabilitationError::NoCompletedTraining
                        }
                        _ => HabilitationError::WrongState { state, action: "habilitated" },
                    });
                }
                E::Habilitated { means: *means, on: *on }
            }
            C::Revoke { reason: r, on, .. } => {
                self.require_state(&[S::Habilitated], "revoked")?;
                E::HabilitationRevoked { reason: reason(r)?, on: *on }
            }
        }])
    }

    fn evolve(&mut self, event: &HabilitationEvent) {
        use HabilitationEvent as E;
        use HabilitationState as S;
        self.state = Some(match event {
            E::HabilitationRequested { cycle, departement, .. } => {
                self.cycle = *cycle;
                self.departement = Some(departement.clone());
                self.session = None;
                S::Requested
            }
            E::EligibilityValidated { .. } => S::EligibilityValidated,
            E::HabilitationRefused { .. } => S::Refused,
            E::HabilitationCancelled { .. } => S::Cancelled,
            E::RegisteredToSession { session_id, convention_id, seat_cost, .. } => {
                self.session = Some((*session_id, *convention_id, *seat_cost));
                S::RegisteredToTraining
            }
            E::TrainingCompleted { .. } => S::TrainingCompleted,
            E::Habilitated { .. } => S::Habilitated,
            E::HabilitationRevoked { .. } => S::Revoked,
        });
    }
}

#[cfg(test)]
mod tests;

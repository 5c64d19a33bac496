//! Pix certification campaigns and CCAS actions, as the comité de pilotage follows them.

use crate::{Projection, ProjectionError};
use chrono::NaiveDate;
use domain::aidants::{HabilitationEvent, HabilitationId, HabilitationState, Means, SessionEvent, SessionId};
use domain::ccas::{CcasActionId, CcasActionRecorded, CcasEvent};
use domain::pix::{CampaignId, PixEvent, PixPublic};
use domain::structure::StructureId;
use domain::{ConventionId, DepartementCode, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub candidate: String,
    pub departement: DepartementCode,
    pub score: u16,
    pub certified_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: CampaignId,
    pub convention_id: ConventionId,
    pub public: PixPublic,
    pub bought: u32,
    pub unit_price: Money,
    pub total: Money,
    pub opened_on: NaiveDate,
    pub certifications: Vec<Certification>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub convention_id: ConventionId,
    pub capacity: u32,
    pub seat_cost: Money,
    pub held_on: NaiveDate,
    pub seats: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HabilitationRecord {
    pub id: HabilitationId,
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub aidant: String,
    pub cycle: u32,
    pub state: HabilitationState,
    pub session: Option<SessionId>,
    pub means: Option<Means>,
    pub requested_on: NaiveDate,
    pub habilitated_on: Option<NaiveDate>,
    /// Why it was refused, cancelled or revoked.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammesView {
    pub campaigns: BTreeMap<CampaignId, CampaignRecord>,
    pub ccas_actions: BTreeMap<CcasActionId, CcasActionRecorded>,
    pub sessions: BTreeMap<SessionId, SessionRecord>,
    pub habilitations: BTreeMap<HabilitationId, HabilitationRecord>,
    /// The register of the plan's measures, by stream (`measure-med-1.2`).
    #[serde(default)]
    pub measures: BTreeMap<String, MeasureRecord>,
}

/// One measure of the register, as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureRecord {
    pub measure: domain::measure::RegisterMeasure,
    pub launched_on: Option<NaiveDate>,
    pub done_on: Option<NaiveDate>,
}

impl MeasureRecord {
    pub fn status(&self) -> domain::measure::MeasureStatus {
        use domain::measure::MeasureStatus as S;
        match (self.launched_on, self.done_on) {
            (_, Some(_)) => S::Done,
            (Some(_), None) => S::Launched,
            _ => S::Proposed,
        }
    }
}

impl ProgrammesView {
    fn apply_habilitation(&mut self, recorded: &RecordedEvent, event: HabilitationEvent) -> Result<(), String> {
        use HabilitationEvent as E;
        use HabilitationState as S;
        if let E::HabilitationRequested { habilitation_id, structure_id, departement, aidant, cycle, on } = event {
            self.habilitations.insert(
                habilitation_id,
                HabilitationRecord {
                    id: habilitation_id,
                    structure_id,
                    departement,
                    aidant,
                    cycle,
                    state: S::Requested,
                    session: None,
                    means: None,
                    requested_on: on,
                    habilitated_on: None,
                    reason: None,
                },
            );
            return Ok(());
        }
        let id = HabilitationId::parse(recorded.stream_id()).map_err(|e| e.to_string())?;
        let h = self.habilitations.get_mut(&id).ok_or("habilitation never requested")?;
        h.state = match event {
            E::HabilitationRequested { .. } => S::Requested,
            E::EligibilityValidated { .. } => S::EligibilityValidated,
            E::HabilitationRefused { reason, .. } => {
                h.reason = Some(reason);
                S::Refused
            }
            E::HabilitationCancelled { reason, .. } => {
                h.reason = Some(reason);
                S::Cancelled
            }
            E::RegisteredToSession { session_id, .. } => {
                h.session = Some(session_id);
                S::RegisteredToTraining
            }
            E::TrainingCompleted { .. } => S::TrainingCompleted,
            E::Habilitated { means, on } => {
                h.means = Some(means);
                h.habilitated_on = Some(on);
                S::Habilitated
            }
            E::HabilitationRevoked { reason, .. } => {
                h.reason = Some(reason);
                S::Revoked
            }
        };
        Ok(())
    }
}

impl Projection for ProgrammesView {
    const NAME: &'static str = "programmes";

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        let unreadable = |reason: String| ProjectionError::Unreadable {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            reason,
        };
        match recorded.category() {
            "pixcampaign" => match recorded.payload.decode::<PixEvent>().map_err(|e| unreadable(e.to_string()))? {
                PixEvent::CampaignOpened {
                    campaign_id,
                    convention_id,
                    public,
                    certifications,
                    unit_price,
                    total,
                    opened_on,
                } => {
                    self.campaigns.insert(
                        campaign_id,
                        CampaignRecord {
                            id: campaign_id,
                            convention_id,
                            public,
                            bought: certifications,
                            unit_price,
                            total,
                            opened_on,
                            certifications: Vec::new(),
                        },
                    );
                }
                PixEvent::CertificationRecorded { candidate, departement, score, certified_on, .. } => {
                    let id = CampaignId::parse(recorded.stream_id()).map_err(|e| unreadable(e.to_string()))?;
                    let campaign =
                        self.campaigns.get_mut(&id).ok_or_else(|| unreadable("campaign never opened".into()))?;
                    campaign.certifications.push(Certification { candidate, departement, score, certified_on });
                }
            },
            "ccasaction" => {
                let CcasEvent::CcasActionRecorded(e) =
                    recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
                self.ccas_actions.insert(e.action_id, e);
            }
            "acsession" => match recorded.payload.decode::<SessionEvent>().map_err(|e| unreadable(e.to_string()))? {
                SessionEvent::SessionOpened { session_id, convention_id, capacity, seat_cost, held_on } => {
                    self.sessions.insert(
                        session_id,
                        SessionRecord { id: session_id, convention_id, capacity, seat_cost, held_on, seats: 0 },
                    );
                }
                SessionEvent::SeatReserved { .. } => {
                    let id = SessionId::parse(recorded.stream_id()).map_err(|e| unreadable(e.to_string()))?;
                    let s = self.sessions.get_mut(&id).ok_or_else(|| unreadable("session never opened".into()))?;
                    s.seats += 1;
                }
            },
            "habilitation" => {
                let event: HabilitationEvent = recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
                self.apply_habilitation(recorded, event).map_err(unreadable)?;
            }
            "measure" => {
                use domain::measure::MeasureEvent as E;
                let stream = recorded.stream.clone();
                match recorded.payload.decode::<E>().map_err(|e| unreadable(e.to_string()))? {
                    E::MeasureRegistered(measure) => {
                        self.measures.insert(stream, MeasureRecord { measure, launched_on: None, done_on: None });
                    }
                    E::MeasureLaunched { launched_on } => {
                        let m = self
                            .measures
                            .get_mut(&stream)
                            .ok_or_else(|| unreadable("measure never registered".into()))?;
                        m.launched_on = Some(launched_on);
                    }
                    E::MeasureDone { done_on } => {
                        let m = self
                            .measures
                            .get_mut(&stream)
                            .ok_or_else(|| unreadable("measure never registered".into()))?;
                        m.done_on = Some(done_on);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

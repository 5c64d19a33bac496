//! Pix certification campaigns and CCAS actions, as the comité de pilotage follows them.

use crate::{Projection, ProjectionError};
use chrono::NaiveDate;
use domain::ccas::{CcasActionId, CcasActionRecorded, CcasEvent};
use domain::pix::{CampaignId, PixEvent, PixPublic};
use domain::{ConventionId, DepartementCode, Money};
use std::collections::BTreeMap;
use store::RecordedEvent;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certification {
    pub candidate: String,
    pub departement: DepartementCode,
    pub score: u16,
    pub certified_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgrammesView {
    pub campaigns: BTreeMap<CampaignId, CampaignRecord>,
    pub ccas_actions: BTreeMap<CcasActionId, CcasActionRecorded>,
}

impl Projection for ProgrammesView {
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
            _ => {}
        }
        Ok(())
    }
}

//! Pix certifications bought through the ANCT–Pix convention: one campaign per public,
//! with a number of certifications at a unit price committed on the convention; each
//! certification recorded (a score out of 1 024 pix) consumes one and is service done.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{CommandId, ConventionId, TRACKER_NAMESPACE};
use crate::money::Money;
use crate::structure::StructureId;
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Pix scores digital skills out of 1 024 pix.
pub const MAX_SCORE: u16 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub Uuid);

impl CampaignId {
    pub fn for_command(command: CommandId) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("pix-campaign:{}", command.0).as_bytes()))
    }

    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "campaign", input: input.into() })
    }

    /// The reference its money carries on the convention.
    pub fn reference(&self) -> String {
        format!("PIX-CAMPAIGN-{}", self.0)
    }
}

/// The two publics of the plan's Pix campaigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PixPublic {
    /// Conseillers numériques France Services and médiateurs.
    ConseillersEtMediateurs,
    AidantsNumeriques,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum PixCommand {
    OpenCampaign {
        campaign_id: CampaignId,
        convention_id: ConventionId,
        public: PixPublic,
        certifications: u32,
        unit_price: Money,
        opened_on: NaiveDate,
    },
    RecordCertification {
        campaign_id: CampaignId,
        /// A pseudonymous reference of the person certified (no more personal data).
        candidate: String,
        structure_id: StructureId,
        /// The candidate's structure's département, looked up by the caller.
        departement: DepartementCode,
        score: u16,
        certified_on: NaiveDate,
    },
}

impl PixCommand {
    pub fn campaign_id(&self) -> CampaignId {
        match self {
            PixCommand::OpenCampaign { campaign_id, .. } | PixCommand::RecordCertification { campaign_id, .. } => {
                *campaign_id
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PixEvent {
    CampaignOpened {
        campaign_id: CampaignId,
        convention_id: ConventionId,
        public: PixPublic,
        certifications: u32,
        unit_price: Money,
        total: Money,
        opened_on: NaiveDate,
    },
    CertificationRecorded {
        candidate: String,
        structure_id: StructureId,
        departement: DepartementCode,
        score: u16,
        unit_price: Money,
        certified_on: NaiveDate,
    },
}

impl DomainEvent for PixEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PixEvent::CampaignOpened { .. } => "PixCampaignOpened",
            PixEvent::CertificationRecorded { .. } => "PixCertificationRecorded",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            PixEvent::CampaignOpened { opened_on, .. } => *opened_on,
            PixEvent::CertificationRecorded { certified_on, .. } => *certified_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum PixError {
    #[error("no Pix campaign has this id")]
    NotFound,
    #[error("this campaign is already open")]
    AlreadyOpen,
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("a score is out of 1024 pix, not {score}")]
    ScoreOverMax { score: u16 },
    #[error("the candidate reference must not be empty")]
    MissingCandidate,
    #[error("all {bought} certifications bought are used: no more than bought")]
    AllUsed { bought: u32 },
    #[error("candidate {candidate} is already certified in this campaign")]
    AlreadyCertified { candidate: String },
    /// A reference of a person must be a pseudonym (see [`crate::personal`]).
    #[error(
        "{field} looks like {looks_like}: give the campaign's pseudonymous reference, never contact details or a NIR"
    )]
    PersonalData { field: &'static str, looks_like: crate::personal::LooksLike },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PixCampaign {
    pub opened: Option<(u32, Money)>,
    /// The convention that pays for the campaign's certifications.
    pub convention_id: Option<ConventionId>,
    pub candidates: BTreeSet<String>,
}

impl Aggregate for PixCampaign {
    type Command = PixCommand;
    type Event = PixEvent;
    type Error = PixError;
    const CATEGORY: &'static str = "pixcampaign";

    fn decide(&self, command: &PixCommand) -> Result<Vec<PixEvent>, PixError> {
        match command {
            PixCommand::OpenCampaign { campaign_id, convention_id, public, certifications, unit_price, opened_on } => {
                if self.opened.is_some() {
                    return Err(PixError::AlreadyOpen);
                }
                if *certifications == 0 {
                    return Err(PixError::Zero { field: "the number of certifications" });
                }
                if unit_price.is_zero() {
                    return Err(PixError::Zero { field: "the unit price" });
                }
                Ok(vec![PixEvent::CampaignOpened {
                    campaign_id: *campaign_id,
                    convention_id: *convention_id,
                    public: *public,
                    certifications: *certifications,
                    unit_price: *unit_price,
                    total: unit_price.times(*certifications),
                    opened_on: *opened_on,
                }])
            }
            PixCommand::RecordCertification { candidate, structure_id, departement, score, certified_on, .. } => {
                let (bought, unit_price) = self.opened.ok_or(PixError::NotFound)?;
                if *score > MAX_SCORE {
                    return Err(PixError::ScoreOverMax { score: *score });
                }
                let candidate = candidate.trim();
                if candidate.is_empty() {
                    return Err(PixError::MissingCandidate);
                }
                if let Some(looks_like) = crate::personal::looks_like(candidate) {
                    return Err(PixError::PersonalData { field: "the candidate reference", looks_like });
                }
                if self.candidates.contains(candidate) {
                    return Err(PixError::AlreadyCertified { candidate: candidate.into() });
                }
                if self.candidates.len() as u32 >= bought {
                    return Err(PixError::AllUsed { bought });
                }
                Ok(vec![PixEvent::CertificationRecorded {
                    candidate: candidate.into(),
                    structure_id: *structure_id,
                    departement: departement.clone(),
                    score: *score,
                    unit_price,
                    certified_on: *certified_on,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &PixEvent) {
        match event {
            PixEvent::CampaignOpened { certifications, unit_price, convention_id, .. } => {
                self.opened = Some((*certifications, *unit_price));
                self.convention_id = Some(*convention_id);
            }
            PixEvent::CertificationRecorded { candidate, .. } => {
                self.candidates.insert(candidate.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn campaign() -> CampaignId {
        CampaignId::for_command(CommandId(Uuid::from_u128(1)))
    }

    fn open(certifications: u32) -> PixCommand {
        PixCommand::OpenCampaign {
            campaign_id: campaign(),
            convention_id: ConventionId::for_code("ANCT-PIX-2021"),
            public: PixPublic::AidantsNumeriques,
            certifications,
            unit_price: Money::parse("45.50").unwrap(),
            opened_on: "2021-04-01".parse().unwrap(),
        }
    }

    fn opened(certifications: u32) -> PixEvent {
        PixCampaign::default().decide(&open(certifications)).unwrap().remove(0)
    }

    fn certify(candidate: &str, score: u16) -> PixCommand {
        PixCommand::RecordCertification {
            campaign_id: campaign(),
            candidate: candidate.into(),
            structure_id: StructureId(Uuid::from_u128(9)),
            departement: DepartementCode::parse("971").unwrap(),
            score,
            certified_on: "2021-06-01".parse().unwrap(),
        }
    }

    fn certified(candidate: &str) -> PixEvent {
        given::<PixCampaign>([opened(2)]).when(certify(candidate, 512)).events().remove(0)
    }

    #[test]
    fn a_campaign_commits_certifications_times_the_unit_price() {
        let PixEvent::CampaignOpened { total, .. } = opened(100) else { panic!() };
        assert_eq!(total, Money::parse("4550").unwrap());
    }

    #[test]
    fn a_campaign_buys_at_least_one_certification_at_a_price() {
        given::<PixCampaign>([]).when(open(0)).then_err(PixError::Zero { field: "the number of certifications" });
        given::<PixCampaign>([opened(1)]).when(open(1)).then_err(PixError::AlreadyOpen);
    }

    #[test]
    fn a_score_is_at_most_1024() {
        given::<PixCampaign>([opened(2)]).when(certify("A-1", 1025)).then_err(PixError::ScoreOverMax { score: 1025 });
        assert_eq!(given::<PixCampaign>([opened(2)]).when(certify("A-1", 1024)).events().len(), 1);
    }

    #[test]
    fn no_more_certifications_than_bought() {
        given::<PixCampaign>([opened(2), certified("A-1"), certified("A-2")])
            .when(certify("A-3", 300))
            .then_err(PixError::AllUsed { bought: 2 });
    }

    #[test]
    fn a_candidate_reference_is_a_pseudonym_never_contact_details_or_a_nir() {
        given::<PixCampaign>([opened(2)]).when(certify("2 85 05 75 123 456", 300)).then_err(PixError::PersonalData {
            field: "the candidate reference",
            looks_like: crate::personal::LooksLike::SocialSecurityNumber,
        });
    }

    #[test]
    fn a_candidate_is_certified_once_per_campaign() {
        given::<PixCampaign>([opened(2), certified("A-1")])
            .when(certify("A-1", 300))
            .then_err(PixError::AlreadyCertified { candidate: "A-1".into() });
    }

    #[test]
    fn certifications_need_an_open_campaign() {
        given::<PixCampaign>([]).when(certify("A-1", 300)).then_err(PixError::NotFound);
    }
}

//! The roll of one training's claimants: which trainees of a purchase have claimed annex
//! costs. The rule "no more claimants than trainees present" is decided on its count, read
//! from the log (never from a read model), and a claim and its enrolment are written
//! together, so two claims for one training are decided one after the other.

use super::ClaimId;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::purchase::PurchaseId;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnrolClaimant {
    pub purchase_id: PurchaseId,
    pub claim_id: ClaimId,
    pub on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RollEvent {
    ClaimantEnrolled { purchase_id: PurchaseId, claim_id: ClaimId, on: NaiveDate },
}

impl DomainEvent for RollEvent {
    fn event_type(&self) -> &'static str {
        "ClaimantEnrolled"
    }
    fn business_date(&self) -> NaiveDate {
        let RollEvent::ClaimantEnrolled { on, .. } = self;
        *on
    }
}

/// A roll refuses nothing: the claim's own rules decide, on the roll's count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum RollError {}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimRoll {
    pub claims: BTreeSet<ClaimId>,
}

impl ClaimRoll {
    /// Trainees of the training who claimed, this claim left out (a retry is not a new
    /// claimant).
    pub fn others(&self, claim: ClaimId) -> u32 {
        self.claims.iter().filter(|c| **c != claim).count() as u32
    }
}

impl Aggregate for ClaimRoll {
    type Command = EnrolClaimant;
    type Event = RollEvent;
    type Error = RollError;
    const CATEGORY: &'static str = "claimroll";

    fn decide(&self, c: &EnrolClaimant) -> Result<Vec<RollEvent>, RollError> {
        if self.claims.contains(&c.claim_id) {
            return Ok(vec![]); // already on the roll: nothing to add
        }
        Ok(vec![RollEvent::ClaimantEnrolled { purchase_id: c.purchase_id, claim_id: c.claim_id, on: c.on }])
    }

    fn evolve(&mut self, event: &RollEvent) {
        let RollEvent::ClaimantEnrolled { claim_id, .. } = event;
        self.claims.insert(*claim_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn purchase() -> PurchaseId {
        PurchaseId(uuid::Uuid::from_u128(7))
    }

    fn enrolled(trainee: &str) -> RollEvent {
        let claim_id = ClaimId::of(purchase(), trainee);
        RollEvent::ClaimantEnrolled { purchase_id: purchase(), claim_id, on: "2021-07-01".parse().unwrap() }
    }

    fn enrol(trainee: &str) -> EnrolClaimant {
        EnrolClaimant {
            purchase_id: purchase(),
            claim_id: ClaimId::of(purchase(), trainee),
            on: "2021-07-01".parse().unwrap(),
        }
    }

    #[test]
    fn a_claimant_is_enrolled_once() {
        given::<ClaimRoll>([]).when(enrol("T-1")).then([enrolled("T-1")]);
        given::<ClaimRoll>([enrolled("T-1")]).when(enrol("T-1")).then([]);
    }

    #[test]
    fn the_count_of_others_leaves_the_claim_itself_out() {
        let roll = ClaimRoll::fold(&[enrolled("T-1"), enrolled("T-2")]);
        assert_eq!(roll.others(ClaimId::of(purchase(), "T-1")), 1);
        assert_eq!(roll.others(ClaimId::of(purchase(), "T-3")), 2);
    }
}

//! Annex-cost claims and funds calls as the OPCO, ANCT and structures follow them.

use crate::{Projection, ProjectionError};
use chrono::NaiveDate;
use domain::claim::{AnnexClaim, AnnexClaimSubmitted, ApprovedLine, CappedLine, ClaimEvent, ClaimId, ClaimState};
use domain::funds_call::{FundsCallEvent, FundsCallId, FundsCallIssued, FundsCallLedger};
use domain::purchase::PurchaseId;
use domain::{Aggregate, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRecord {
    /// The first submission (who, for which training, when).
    pub submitted: AnnexClaimSubmitted,
    pub state: ClaimState,
    /// 1, then 2… after each resubmission.
    pub submission: u32,
    /// The lines of the latest submission, capped.
    pub lines: Vec<CappedLine>,
    pub claimed: Money,
    pub eligible: Money,
    pub assess_by: NaiveDate,
    /// Flagged overdue for the current submission.
    pub overdue: bool,
    pub approved_lines: Vec<ApprovedLine>,
    pub approved: Option<Money>,
    pub approved_on: Option<NaiveDate>,
    /// Why the OPCO sent it back or rejected it.
    pub reason: Option<String>,
    /// Why it waits for funds.
    pub waiting_reason: Option<String>,
    pub funded_on: Option<NaiveDate>,
    pub paid_on: Option<NaiveDate>,
    pub call: Option<(FundsCallId, u32)>,
    pub reimbursed_on: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub issued: FundsCallIssued,
    pub paid_on: Option<NaiveDate>,
    pub late: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReimbursementsView {
    pub claims: BTreeMap<ClaimId, ClaimRecord>,
    pub calls: BTreeMap<FundsCallId, CallRecord>,
}

impl ReimbursementsView {
    /// Claims in submission order (date, then id).
    pub fn claims(&self) -> Vec<&ClaimRecord> {
        let mut all: Vec<_> = self.claims.values().collect();
        all.sort_by_key(|c| (c.submitted.submitted_on, c.submitted.claim_id));
        all
    }

    /// Funds calls by convention, then number.
    pub fn calls(&self) -> Vec<&CallRecord> {
        let mut all: Vec<_> = self.calls.values().collect();
        all.sort_by_key(|c| (c.issued.convention_id, c.issued.number));
        all
    }

    /// Trainees of this training who claimed, other than `trainee`.
    pub fn other_claimants(&self, purchase: PurchaseId, claim: ClaimId) -> u32 {
        self.claims.values().filter(|c| c.submitted.purchase_id == purchase && c.submitted.claim_id != claim).count()
            as u32
    }
}

impl Projection for ReimbursementsView {
    const NAME: &'static str = "reimbursements";

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        let unreadable = |reason: String| ProjectionError::Unreadable {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            reason,
        };
        match recorded.category() {
            c if c == AnnexClaim::CATEGORY => {
                let event: ClaimEvent = recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
                if let ClaimEvent::AnnexClaimSubmitted(e) = &event {
                    self.claims.insert(
                        e.claim_id,
                        ClaimRecord {
                            submitted: (**e).clone(),
                            state: ClaimState::Submitted,
                            submission: 1,
                            lines: e.lines.clone(),
                            claimed: e.claimed,
                            eligible: e.eligible,
                            assess_by: e.assess_by,
                            overdue: false,
                            approved_lines: vec![],
                            approved: None,
                            approved_on: None,
                            reason: None,
                            waiting_reason: None,
                            funded_on: None,
                            paid_on: None,
                            call: None,
                            reimbursed_on: None,
                        },
                    );
                    return Ok(());
                }
                let id = ClaimId::parse(recorded.stream_id()).map_err(|e| unreadable(e.to_string()))?;
                let c =
                    self.claims.get_mut(&id).ok_or_else(|| unreadable("event for a claim never submitted".into()))?;
                apply_claim(c, event);
            }
            c if c == FundsCallLedger::CATEGORY => {
                let event: FundsCallEvent = recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
                match event {
                    FundsCallEvent::ClaimQueuedForFundsCall { .. } => {}
                    FundsCallEvent::FundsCallIssued(e) => {
                        self.calls.insert(e.call_id, CallRecord { issued: *e, paid_on: None, late: false });
                    }
                    FundsCallEvent::FundsCallPaid { call_id, paid_on, .. } => {
                        if let Some(c) = self.calls.get_mut(&call_id) {
                            c.paid_on = Some(paid_on);
                        }
                    }
                    FundsCallEvent::FundsCallFlaggedLate { call_id, .. } => {
                        if let Some(c) = self.calls.get_mut(&call_id) {
                            c.late = true;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn apply_claim(c: &mut ClaimRecord, event: ClaimEvent) {
    match event {
        ClaimEvent::AnnexClaimSubmitted(_) => {}
        ClaimEvent::AnnexClaimResubmitted { submission, lines, claimed, eligible, assess_by, .. } => {
            c.state = ClaimState::Submitted;
            c.submission = submission;
            c.lines = lines;
            c.claimed = claimed;
            c.eligible = eligible;
            c.assess_by = assess_by;
            c.overdue = false;
            c.reason = None;
        }
        ClaimEvent::AnnexClaimApproved { lines, amount, approved_on } => {
            c.state = ClaimState::Approved;
            c.approved_lines = lines;
            c.approved = Some(amount);
            c.approved_on = Some(approved_on);
            c.overdue = false;
        }
        ClaimEvent::AnnexClaimChangesRequested { reason, .. } => {
            c.state = ClaimState::ChangesRequested;
            c.reason = Some(reason);
            c.overdue = false;
        }
        ClaimEvent::AnnexClaimRejected { reason, .. } => {
            c.state = ClaimState::Rejected;
            c.reason = Some(reason);
            c.overdue = false;
        }
        waiting @ ClaimEvent::AnnexClaimAwaitingFunds { .. } => {
            c.state = ClaimState::AwaitingFunds;
            c.waiting_reason = waiting.waiting_reason();
        }
        ClaimEvent::AnnexClaimFunded { committed_on, .. } => {
            c.state = ClaimState::Funded;
            c.waiting_reason = None;
            c.funded_on = Some(committed_on);
        }
        ClaimEvent::AnnexClaimPaid { paid_on, .. } => {
            c.state = ClaimState::Paid;
            c.paid_on = Some(paid_on);
        }
        ClaimEvent::AnnexClaimFlaggedOverdue { submission, .. } => {
            if submission == c.submission && c.state == ClaimState::Submitted {
                c.overdue = true;
            }
        }
        ClaimEvent::AnnexClaimCalled { call_id, call_number, .. } => {
            c.state = ClaimState::InFundsCall;
            c.call = Some((FundsCallId(call_id), call_number));
        }
        ClaimEvent::AnnexClaimReimbursed { reimbursed_on, .. } => {
            c.state = ClaimState::Reimbursed;
            c.reimbursed_on = Some(reimbursed_on);
        }
    }
}

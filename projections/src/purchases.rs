//! Training purchases as the OPCO and the comité de pilotage follow them.

use crate::{Projection, ProjectionError};
use chrono::NaiveDate;
use domain::purchase::{PurchaseEvent, PurchaseId, PurchaseRequested, PurchaseState};
use domain::{Aggregate, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRecord {
    pub request: PurchaseRequested,
    pub state: PurchaseState,
    pub present: Option<u32>,
    pub committed: Money,
    pub service_done: Money,
    pub paid: Money,
    pub released: Money,
    pub approved_on: Option<NaiveDate>,
    pub cancel_reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchasesView {
    pub purchases: BTreeMap<PurchaseId, PurchaseRecord>,
}

impl PurchasesView {
    /// Purchases in request order (date, then id).
    pub fn list(&self) -> Vec<&PurchaseRecord> {
        let mut all: Vec<_> = self.purchases.values().collect();
        all.sort_by_key(|p| (p.request.requested_on, p.request.purchase_id));
        all
    }
}

impl Projection for PurchasesView {
    const NAME: &'static str = "purchases";

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if recorded.category() != domain::purchase::Purchase::CATEGORY {
            return Ok(());
        }
        let unreadable = |reason: String| ProjectionError::Unreadable {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            reason,
        };
        let event: PurchaseEvent = recorded.payload.decode().map_err(|e| unreadable(e.to_string()))?;
        if let PurchaseEvent::PurchaseRequested(r) = &event {
            self.purchases.insert(
                r.purchase_id,
                PurchaseRecord {
                    request: (**r).clone(),
                    state: PurchaseState::Requested,
                    present: None,
                    committed: Money::ZERO,
                    service_done: Money::ZERO,
                    paid: Money::ZERO,
                    released: Money::ZERO,
                    approved_on: None,
                    cancel_reason: None,
                },
            );
            return Ok(());
        }
        let id = PurchaseId::parse(recorded.stream_id()).map_err(|e| unreadable(e.to_string()))?;
        let p = self.purchases.get_mut(&id).ok_or_else(|| unreadable("event for a purchase never requested".into()))?;
        match event {
            PurchaseEvent::PurchaseRequested(_) => {}
            PurchaseEvent::PurchaseApproved { amount, approved_on } => {
                p.state = PurchaseState::Approved;
                p.committed = amount;
                p.approved_on = Some(approved_on);
            }
            PurchaseEvent::AttendanceRecorded { present, service_done, released, .. } => {
                p.state = PurchaseState::Attended;
                p.present = Some(present);
                p.service_done = service_done;
                p.released = p.released + released;
            }
            PurchaseEvent::PurchasePaid { amount, .. } => {
                p.state = PurchaseState::Paid;
                p.paid = amount;
            }
            PurchaseEvent::PurchaseCancelled { reason, released, .. } => {
                p.state = PurchaseState::Cancelled;
                p.released = p.released + released;
                p.cancel_reason = Some(reason);
            }
        }
        Ok(())
    }
}

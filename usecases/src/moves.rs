//! The money a programme step moves on its convention, derived from the step's own events
//! (pure). Envelopes are named by kind here and found in the convention's own state when
//! the step is decided, never in a read model.

use crate::StepError;
use domain::aidants::HabilitationEvent;
use domain::convention::{self as dc, Convention, ConventionCommand, EnvelopeKind};
use domain::purchase::{PurchaseEvent, PurchaseRequested};
use domain::{ConventionId, DepartementCode, Money};

/// One move of money on a convention, for one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// Engagement on the convention's envelope of this kind.
    Commit {
        envelope: EnvelopeKind,
        amount: Money,
        on: chrono::NaiveDate,
        departement: Option<DepartementCode>,
    },
    ServiceDone {
        amount: Money,
        on: chrono::NaiveDate,
    },
    Release {
        amount: Money,
        on: chrono::NaiveDate,
    },
    Payment {
        amount: Money,
        on: chrono::NaiveDate,
    },
}

/// The moves a step makes on one convention, for one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub convention_id: ConventionId,
    pub reference: String,
    pub moves: Vec<Move>,
}

impl Charge {
    /// The convention's commands, with the envelope of each commitment found in the
    /// convention as the log has it: a missing envelope is a clear error, never a silent 0.
    pub fn commands<E>(&self, convention: &Convention) -> Result<Vec<ConventionCommand>, StepError<E>> {
        let (convention_id, reference) = (self.convention_id, self.reference.clone());
        self.moves
            .iter()
            .map(|m| {
                Ok(match m {
                    Move::Commit { envelope, amount, on, departement } => {
                        let envelope_id = convention
                            .0
                            .as_ref()
                            .and_then(|s| s.envelopes.iter().find(|(_, e)| e.kind == *envelope).map(|(id, _)| *id))
                            .ok_or_else(|| StepError::Missing {
                                field: "conventionId",
                                message: format!("the convention has no {envelope:?} envelope to charge this to"),
                            })?;
                        ConventionCommand::CommitFunds(dc::CommitFunds {
                            convention_id,
                            envelope_id,
                            reference: reference.clone(),
                            amount: *amount,
                            committed_on: *on,
                            departement: departement.clone(),
                        })
                    }
                    Move::ServiceDone { amount, on } => ConventionCommand::RecordServiceDone(dc::RecordServiceDone {
                        convention_id,
                        reference: reference.clone(),
                        amount: *amount,
                        done_on: *on,
                    }),
                    Move::Release { amount, on } => ConventionCommand::ReleaseFunds(dc::ReleaseFunds {
                        convention_id,
                        reference: reference.clone(),
                        amount: *amount,
                        released_on: *on,
                    }),
                    Move::Payment { amount, on } => ConventionCommand::RecordPayment(dc::RecordPayment {
                        convention_id,
                        reference: reference.clone(),
                        amount: *amount,
                        paid_on: *on,
                    }),
                })
            })
            .collect()
    }
}

/// What a purchase's events move: the total committed at approval; service done for the
/// present and the rest released at attendance; the service done paid; what is left
/// released at a cancellation. Zero amounts move nothing.
pub fn purchase(request: &PurchaseRequested, events: &[PurchaseEvent]) -> Charge {
    let mut moves = Vec::new();
    let positive = |m: &Money| !m.is_zero();
    for event in events {
        match event {
            PurchaseEvent::PurchaseRequested(_) => {}
            PurchaseEvent::PurchaseApproved { amount, approved_on } => moves.push(Move::Commit {
                envelope: request.envelope_kind,
                amount: *amount,
                on: *approved_on,
                departement: Some(request.departement.clone()),
            }),
            PurchaseEvent::AttendanceRecorded { service_done, released, recorded_on, .. } => {
                if positive(service_done) {
                    moves.push(Move::ServiceDone { amount: *service_done, on: *recorded_on });
                }
                if positive(released) {
                    moves.push(Move::Release { amount: *released, on: *recorded_on });
                }
            }
            PurchaseEvent::PurchasePaid { amount, paid_on } if positive(amount) => {
                moves.push(Move::Payment { amount: *amount, on: *paid_on })
            }
            PurchaseEvent::PurchaseCancelled { released, cancelled_on, .. } if positive(released) => {
                moves.push(Move::Release { amount: *released, on: *cancelled_on })
            }
            PurchaseEvent::PurchasePaid { .. } | PurchaseEvent::PurchaseCancelled { .. } => {}
        }
    }
    Charge { convention_id: request.convention_id, reference: request.purchase_id.reference(), moves }
}

/// A completed Aidants Connect training: its seat committed on the convention's Aidants
/// Connect envelope, in the habilitation's département, and served the same day.
pub fn training(departement: Option<&DepartementCode>, events: &[HabilitationEvent]) -> Option<Charge> {
    events.iter().find_map(|e| match e {
        HabilitationEvent::TrainingCompleted { convention_id, seat_cost, reference, on } => Some(Charge {
            convention_id: *convention_id,
            reference: reference.clone(),
            moves: vec![
                Move::Commit {
                    envelope: EnvelopeKind::AidantsConnectTraining,
                    amount: *seat_cost,
                    on: *on,
                    departement: departement.cloned(),
                },
                Move::ServiceDone { amount: *seat_cost, on: *on },
            ],
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::convention::{ConventionEvent, EnvelopeAllocated};
    use domain::{Aggregate, EnvelopeId};

    fn d(s: &str) -> chrono::NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_commitment_is_charged_to_the_envelope_of_its_kind_found_in_the_convention() {
        let mut convention = Convention::default();
        convention.evolve(&ConventionEvent::ConventionSigned(domain::convention::ConventionSigned {
            convention_id: ConventionId::for_code("C"),
            code: "C".into(),
            partner: "p".into(),
            title: "t".into(),
            signed_on: d("2021-01-01"),
            period_start: d("2021-01-01"),
            period_end: d("2022-12-31"),
            total: Money::parse("100").unwrap(),
            shares: vec![],
            targets: vec![],
            departements: vec![],
            annex_caps: Default::default(),
        }));
        let envelope_id = EnvelopeId::for_name(ConventionId::for_code("C"), "AC");
        convention.evolve(&ConventionEvent::EnvelopeAllocated(EnvelopeAllocated {
            envelope_id,
            name: "AC".into(),
            kind: EnvelopeKind::AidantsConnectTraining,
            amount: Money::parse("100").unwrap(),
            allocated_on: d("2021-01-01"),
            financing: vec![],
        }));
        let charge = Charge {
            convention_id: ConventionId::for_code("C"),
            reference: "R".into(),
            moves: vec![Move::Commit {
                envelope: EnvelopeKind::AidantsConnectTraining,
                amount: Money::parse("10").unwrap(),
                on: d("2021-02-01"),
                departement: None,
            }],
        };
        let commands = charge.commands::<()>(&convention).unwrap();
        assert!(matches!(&commands[0], ConventionCommand::CommitFunds(c) if c.envelope_id == envelope_id));

        let other = Charge {
            moves: vec![Move::Commit {
                envelope: EnvelopeKind::Certifications,
                amount: Money::parse("10").unwrap(),
                on: d("2021-02-01"),
                departement: None,
            }],
            ..charge
        };
        let err = other.commands::<()>(&convention).unwrap_err();
        assert!(matches!(err, StepError::Missing { field: "conventionId", .. }), "{err:?}");
    }
}

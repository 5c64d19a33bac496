//! The programmes' use cases: what the conventions buy (training purchases, Pix
//! certifications, CCAS actions, Aidants Connect trainings) and the money each step moves
//! on its convention, written together in one atomic append.

use crate::moves::{self, Charge, Move};
use crate::{StepError, UseCases};
use domain::aidants::{
    Habilitation, HabilitationCommand, HabilitationError, SessionCommand, SessionId, TrainingSession,
};
use domain::ccas::{CcasAction, CcasError, CcasEvent, RecordCcasAction};
use domain::claim::roll::{ClaimRoll, EnrolClaimant};
use domain::claim::{AnnexClaim, ClaimCommand, ClaimError};
use domain::convention::{Convention, EnvelopeKind};
use domain::pix::{PixCampaign, PixCommand, PixError, PixEvent};
use domain::purchase::{Purchase, PurchaseCommand, PurchaseError, PurchaseEvent};
use domain::structure::{Structure, StructureId, StructureRegistered};
use domain::{Aggregate, CommandMeta, ConventionId};
use store::handler::stream_name;
use store::{CommandOutcome, StoreError};

type Outcome<E> = Result<CommandOutcome, StepError<E>>;

/// The convention's stream, for the steps that move money on it.
fn on(convention: Option<ConventionId>) -> Option<String> {
    convention.map(stream_name::<Convention>)
}

/// For companions that need nothing added to the command.
fn as_is<B, C>(_: &B, _: &mut C) {}

impl UseCases {
    /// An aggregate as the log has it now (taking its turn briefly, so a write under way
    /// in this process is either all in it or not at all).
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<(A, u64), StoreError>
    where
        A::Command: 'static,
    {
        let lane = self.lanes.get::<A>(stream);
        let mut folded = lane.turn.clone().lock_owned().await;
        folded.refresh(self.store.as_ref(), stream).await?;
        Ok((folded.state.clone(), folded.version))
    }

    /// A registered structure, from its own stream: the facts a programme records about
    /// it (its département, its kind) come from the log.
    pub async fn structure<E>(&self, id: StructureId) -> Result<StructureRegistered, StepError<E>> {
        let (structure, _) = self.load::<Structure>(&stream_name::<Structure>(id)).await?;
        structure.0.ok_or_else(|| StepError::Missing {
            field: "structureId",
            message: format!("no structure {id} is registered"),
        })
    }

    /// A step of a training purchase (request, approval, attendance, payment, cancellation)
    /// and the money it moves on the convention, in one append. A request's buyer facts
    /// (kind, département) come from the structure's own stream.
    pub async fn purchase(&self, mut command: PurchaseCommand, meta: CommandMeta) -> Outcome<PurchaseError> {
        if let PurchaseCommand::Request(request) = &mut command {
            let structure = self.structure(request.structure_id).await?;
            request.structure_kind = structure.kind;
            request.departement = structure.departement;
        }
        let stream = stream_name::<Purchase>(command.purchase_id());
        self.step::<Purchase, Convention>(
            stream,
            command,
            meta,
            |purchase, command| match command {
                PurchaseCommand::Request(_) => None,
                _ => on(purchase.requested.as_ref().map(|r| r.convention_id)),
            },
            as_is,
            |convention, purchase, events| {
                let request = match (&purchase.requested, events.first()) {
                    (Some(r), _) => r,
                    (None, Some(PurchaseEvent::PurchaseRequested(r))) => &**r,
                    _ => return Err(StepError::Domain(PurchaseError::NotFound)),
                };
                moves::purchase(request, events).commands(convention)
            },
        )
        .await
    }

    /// A Pix step: opening a campaign commits its certifications on the convention's
    /// certifications envelope; each certification is service done for one of them. The
    /// campaign's convention is the one it was opened on (its own events).
    pub async fn pix(&self, command: PixCommand, meta: CommandMeta) -> Outcome<PixError> {
        let campaign = command.campaign_id();
        let stream = stream_name::<PixCampaign>(campaign.0);
        self.step::<PixCampaign, Convention>(
            stream,
            command,
            meta,
            |state, command| match command {
                PixCommand::OpenCampaign { convention_id, .. } => on(Some(*convention_id)),
                PixCommand::RecordCertification { .. } => on(state.convention_id),
            },
            as_is,
            move |convention, state, events| {
                let mut moves = Vec::new();
                let mut convention_id = state.convention_id;
                for e in events {
                    match e {
                        PixEvent::CampaignOpened { convention_id: id, total, opened_on, .. } => {
                            convention_id = Some(*id);
                            moves.push(Move::Commit {
                                envelope: EnvelopeKind::Certifications,
                                amount: *total,
                                on: *opened_on,
                                departement: None,
                            });
                        }
                        PixEvent::CertificationRecorded { unit_price, certified_on, .. } => {
                            moves.push(Move::ServiceDone { amount: *unit_price, on: *certified_on })
                        }
                    }
                }
                let convention_id = convention_id.ok_or(StepError::Domain(PixError::NotFound))?;
                Charge { convention_id, reference: campaign.reference(), moves }.commands(convention)
            },
        )
        .await
    }

    /// A CCAS action held: its cost committed on the convention's CCAS envelope and, the
    /// action being held, service done. The structure's kind and département come from the
    /// structure's own stream.
    pub async fn ccas(&self, mut command: RecordCcasAction, meta: CommandMeta) -> Outcome<CcasError> {
        let structure = self.structure(command.structure_id).await?;
        command.structure_kind = structure.kind;
        command.departement = structure.departement;
        let stream = stream_name::<CcasAction>(command.action_id.0);
        let reference = command.action_id.reference();
        self.step::<CcasAction, Convention>(
            stream,
            command,
            meta,
            |_, command| on(Some(command.convention_id)),
            as_is,
            move |convention, _, events| {
                let mut commands = Vec::new();
                for CcasEvent::CcasActionRecorded(e) in events {
                    let charge = Charge {
                        convention_id: e.convention_id,
                        reference: reference.clone(),
                        moves: vec![
                            Move::Commit {
                                envelope: EnvelopeKind::CcasActions,
                                amount: e.cost,
                                on: e.held_on,
                                departement: Some(e.departement.clone()),
                            },
                            Move::ServiceDone { amount: e.cost, on: e.held_on },
                        ],
                    };
                    commands.extend(charge.commands(convention)?);
                }
                Ok(commands)
            },
        )
        .await
    }

    /// A step of an Aidants Connect habilitation. A completed training charges its seat to
    /// the convention the habilitation was registered on, in the département recorded
    /// with its request: both facts from the habilitation's own events.
    pub async fn habilitation(&self, command: HabilitationCommand, meta: CommandMeta) -> Outcome<HabilitationError> {
        let stream = stream_name::<Habilitation>(command.habilitation_id().0);
        self.step::<Habilitation, Convention>(
            stream,
            command,
            meta,
            |state, command| match command {
                HabilitationCommand::CompleteTraining { .. } => on(state.session.map(|(_, convention, _)| convention)),
                _ => None,
            },
            as_is,
            |convention, state, events| match (moves::training(state.departement.as_ref(), events), &state.departement)
            {
                // Every habilitation's request records it: only a log older than that
                // could lack it, and then nothing may be charged silently.
                (Some(_), None) => Err(StepError::Missing {
                    field: "habilitationId",
                    message: "the habilitation's request records no département to charge its seat to".into(),
                }),
                (Some(charge), _) => charge.commands(convention),
                (None, _) => Ok(vec![]),
            },
        )
        .await
    }

    /// Registers a validated aidant to a session: the seat (within the session's capacity)
    /// and the registration, in one append. The session's convention and seat cost come
    /// from the session's own stream.
    pub async fn register_to_session(
        &self,
        habilitation_id: domain::aidants::HabilitationId,
        session_id: SessionId,
        on: chrono::NaiveDate,
        meta: CommandMeta,
    ) -> Outcome<HabilitationError> {
        let (session, _) = self.load::<TrainingSession>(&stream_name::<TrainingSession>(session_id.0)).await?;
        let (_, seat_cost, _, convention_id) = session.opened.ok_or_else(|| StepError::Missing {
            field: "sessionId",
            message: format!("no training session {} is open", session_id.0),
        })?;
        let command =
            HabilitationCommand::RegisterToSession { habilitation_id, session_id, convention_id, seat_cost, on };
        self.step::<Habilitation, TrainingSession>(
            stream_name::<Habilitation>(habilitation_id.0),
            command,
            meta,
            move |_, _| Some(stream_name::<TrainingSession>(session_id.0)),
            as_is,
            move |_, _, _| Ok(vec![SessionCommand::ReserveSeat { session_id, habilitation_id }]),
        )
        .await
    }

    /// Any other command of an entity that moves no money (a session opened, a
    /// habilitation validated, a claim assessed).
    pub async fn plain<A: Aggregate>(&self, stream: String, command: A::Command, meta: CommandMeta) -> Outcome<A::Error>
    where
        A::Command: 'static,
    {
        self.step::<A, Convention>(stream, command, meta, |_, _| None, as_is, |_, _, _| Ok(vec![])).await
    }

    /// An annex-cost claim sent back and resubmitted: capped again by the barème in force
    /// at its training's end, both read from the log (the purchase's and the convention's
    /// streams); a missing one is a clear error, never a default.
    pub async fn resubmit_annex_claim(
        &self,
        claim_id: domain::claim::ClaimId,
        lines: Vec<domain::claim::ExpenseLine>,
        resubmitted_on: chrono::NaiveDate,
        meta: CommandMeta,
    ) -> Outcome<ClaimError> {
        let (claim, _) = self.load::<AnnexClaim>(&stream_name::<AnnexClaim>(claim_id.0)).await?;
        let submitted = claim.submitted.ok_or(StepError::Domain(ClaimError::NotFound))?;
        let (purchase, _) = self.load::<Purchase>(&stream_name::<Purchase>(submitted.purchase_id)).await?;
        let session_end = purchase.requested.map(|r| r.session_end).ok_or_else(|| StepError::Missing {
            field: "claimId",
            message: format!("the claim's purchase {} is not in the log", submitted.purchase_id),
        })?;
        let caps = self.caps_on(submitted.convention_id, session_end).await?;
        let command = ClaimCommand::Resubmit { claim_id, caps, lines, resubmitted_on };
        self.plain::<AnnexClaim>(stream_name::<AnnexClaim>(claim_id.0), command, meta).await
    }

    /// A funds-call step. An issue is due after the convention's own payment delay in force
    /// on its date, read from the convention's stream.
    pub async fn funds_call(
        &self,
        mut command: domain::funds_call::FundsCallCommand,
        meta: CommandMeta,
    ) -> Outcome<domain::funds_call::FundsCallError> {
        use domain::funds_call::{FundsCallCommand, FundsCallLedger};
        if let FundsCallCommand::Issue { convention_id, issued_on, payment_days, .. } = &mut command {
            *payment_days = Some(self.caps_on(*convention_id, *issued_on).await?.funds_call_payment_days);
        }
        let stream = stream_name::<FundsCallLedger>(command.convention_id());
        self.plain::<FundsCallLedger>(stream, command, meta).await
    }

    /// The annex-cost caps of a convention in force on a date, from the convention's stream.
    pub async fn caps_on<E>(
        &self,
        convention_id: ConventionId,
        date: chrono::NaiveDate,
    ) -> Result<domain::annex::AnnexCaps, StepError<E>> {
        let (convention, _) = self.load::<Convention>(&stream_name::<Convention>(convention_id)).await?;
        convention.0.as_ref().and_then(|s| domain::annex::caps_on(&s.caps, date).cloned()).ok_or_else(|| {
            StepError::Missing {
                field: "conventionId",
                message: format!("convention {convention_id} is not signed: it has no annex-cost caps"),
            }
        })
    }
}

/// What a structure claims for one trainee of a training it bought.
#[derive(Clone, Debug)]
pub struct AnnexClaimRequest {
    pub claim_id: domain::claim::ClaimId,
    /// The structure submitting (it must have bought the training); none when ANCT or the
    /// OPCO submit for the buyer, which is then read from the purchase's stream.
    pub structure_id: Option<StructureId>,
    pub purchase_id: domain::purchase::PurchaseId,
    pub trainee: String,
    pub lines: Vec<domain::claim::ExpenseLine>,
    pub submitted_on: chrono::NaiveDate,
}

impl UseCases {
    /// A structure's annex-cost claim: the training's facts (convention, buyer,
    /// département, session end, trainees present) from the purchase's stream, the caps
    /// in force at the session's end from the convention's.
    pub async fn submit_annex_claim(&self, request: AnnexClaimRequest, meta: CommandMeta) -> Outcome<ClaimError> {
        let (purchase, _) = self.load::<Purchase>(&stream_name::<Purchase>(request.purchase_id)).await?;
        let bought = purchase.requested.as_ref().ok_or_else(|| StepError::Missing {
            field: "purchaseId",
            message: format!("no purchase {}", request.purchase_id),
        })?;
        use domain::purchase::PurchaseState as S;
        let present = matches!(purchase.state, Some(S::Attended | S::Paid)).then_some(purchase.present);
        let caps = self.caps_on(bought.convention_id, bought.session_end).await?;
        let (claim_id, purchase_id, on) = (request.claim_id, request.purchase_id, request.submitted_on);
        let command = ClaimCommand::Submit(Box::new(domain::claim::SubmitAnnexClaim {
            claim_id,
            structure_id: request.structure_id.unwrap_or(bought.structure_id),
            trainee: request.trainee,
            training: domain::claim::TrainingFacts {
                purchase_id,
                convention_id: bought.convention_id,
                structure_id: bought.structure_id,
                departement: bought.departement.clone(),
                session_end: bought.session_end,
                present,
                // Counted on the training's roll, in the same decision.
                trainees_claimed: 0,
            },
            caps,
            lines: request.lines,
            submitted_on: on,
        }));
        self.step::<AnnexClaim, ClaimRoll>(
            stream_name::<AnnexClaim>(claim_id.0),
            command,
            meta,
            move |_, _| Some(stream_name::<ClaimRoll>(purchase_id)),
            move |roll, command| {
                if let ClaimCommand::Submit(submit) = command {
                    submit.training.trainees_claimed = roll.others(claim_id);
                }
            },
            move |_, _, events| {
                Ok(events
                    .iter()
                    .filter(|e| matches!(e, domain::claim::ClaimEvent::AnnexClaimSubmitted(_)))
                    .map(|_| EnrolClaimant { purchase_id, claim_id, on })
                    .collect())
            },
        )
        .await
    }
}

impl UseCases {
    /// A step of the money between ANCT and a convention's partner (statement of
    /// expenses, claim for payment, payment, co-funder's spending, recovery). The
    /// schedule and the payment delay in force are the convention's terms, read from its
    /// stream; a convention not signed is a clear error.
    pub async fn disbursement(
        &self,
        mut command: domain::disbursement::DisbursementCommand,
        meta: CommandMeta,
    ) -> Outcome<domain::disbursement::DisbursementError> {
        use domain::disbursement::{DisbursementCommand as D, Disbursements, Terms};
        let convention_id = command.convention_id();
        let (convention, _) = self.load::<Convention>(&stream_name::<Convention>(convention_id)).await?;
        let signed = convention.0.ok_or_else(|| StepError::Missing {
            field: "conventionId",
            message: format!("convention {convention_id} is not signed"),
        })?;
        let terms_on = |on: chrono::NaiveDate| Terms {
            schedule: signed.schedule.clone(),
            payment_days: domain::annex::caps_on(&signed.caps, on)
                .map_or(domain::annex::OUR_FUNDS_CALL_PAYMENT_DAYS, |c| c.funds_call_payment_days),
        };
        match &mut command {
            D::ClaimPayment { claimed_on, terms, .. } => *terms = terms_on(*claimed_on),
            D::PayClaim { paid_on, terms, .. } => *terms = terms_on(*paid_on),
            _ => {}
        }
        self.plain::<Disbursements>(stream_name::<Disbursements>(convention_id), command, meta).await
    }

    /// A convention's disbursements and its schedule, as the log has them now.
    pub async fn disbursements(
        &self,
        convention_id: ConventionId,
    ) -> Result<(domain::disbursement::Disbursements, Vec<domain::disbursement::Instalment>), StoreError> {
        let (ledger, _) = self
            .load::<domain::disbursement::Disbursements>(&stream_name::<domain::disbursement::Disbursements>(
                convention_id,
            ))
            .await?;
        let (convention, _) = self.load::<Convention>(&stream_name::<Convention>(convention_id)).await?;
        Ok((ledger, convention.0.map(|s| s.schedule).unwrap_or_default()))
    }
}

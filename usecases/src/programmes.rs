//! The programmes' use cases: what the conventions buy (training purchases, Pix
//! certifications, CCAS actions, Aidants Connect trainings) and the money each step moves
//! on its convention, written together in one atomic append.

use crate::moves::{self, Charge, Move};
use crate::{StepError, UseCases};
use domain::aidants::{
    Habilitation, HabilitationCommand, HabilitationError, SessionCommand, SessionId, TrainingSession,
};
use domain::ccas::{CcasAction, CcasError, CcasEvent, RecordCcasAction};
use domain::claim::{AnnexClaim, ClaimCommand, ClaimError};
use domain::convention::{Convention, EnvelopeKind};
use domain::pix::{PixCampaign, PixCommand, PixError, PixEvent};
use domain::purchase::{Purchase, PurchaseCommand, PurchaseError, PurchaseEvent};
use domain::structure::{Structure, StructureId, StructureRegistered};
use domain::{Aggregate, CommandMeta, ConventionId};
use store::handler::stream_name;
use store::{CommandOutcome, StoreError};

type Outcome<E> = Result<CommandOutcome, StepError<E>>;

/// For use cases whose entity moves no money.
fn nothing<A, E>(_: &A, _: &[impl Sized]) -> Result<Option<(String, Charge)>, StepError<E>> {
    Ok(None)
}

fn charge_commands<E>(
    convention: &Convention,
    charge: &Charge,
) -> Result<Vec<domain::convention::ConventionCommand>, StepError<E>> {
    charge.commands(convention)
}

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
    /// and the money it moves on the convention, in one append.
    pub async fn purchase(&self, command: PurchaseCommand, meta: CommandMeta) -> Outcome<PurchaseError> {
        let stream = stream_name::<Purchase>(command.purchase_id());
        self.step::<Purchase, Convention, Charge>(
            stream,
            command,
            meta,
            |purchase, events| {
                let request = match (&purchase.requested, events.first()) {
                    (Some(r), _) => r.clone(),
                    (None, Some(PurchaseEvent::PurchaseRequested(r))) => (**r).clone(),
                    _ => return Err(StepError::Domain(PurchaseError::NotFound)),
                };
                moves::purchase(&request, events).planned()
            },
            charge_commands,
        )
        .await
    }

    /// A Pix step: opening a campaign commits its certifications on the convention's
    /// certifications envelope; each certification is service done for one of them. The
    /// campaign's convention is the one it was opened on (its own events).
    pub async fn pix(&self, command: PixCommand, meta: CommandMeta) -> Outcome<PixError> {
        let campaign = command.campaign_id();
        let stream = stream_name::<PixCampaign>(campaign.0);
        self.step::<PixCampaign, Convention, Charge>(
            stream,
            command,
            meta,
            move |state, events| {
                let mut moves = Vec::new();
                let mut convention = state.convention_id;
                for e in events {
                    match e {
                        PixEvent::CampaignOpened { convention_id, total, opened_on, .. } => {
                            convention = Some(*convention_id);
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
                let convention_id = convention.ok_or(StepError::Domain(PixError::NotFound))?;
                Charge { convention_id, reference: campaign.reference(), moves }.planned()
            },
            charge_commands,
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
        self.step::<CcasAction, Convention, Charge>(
            stream,
            command,
            meta,
            move |_, events| {
                let mut charges = events.iter().map(|CcasEvent::CcasActionRecorded(e)| Charge {
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
                });
                charges.next().map_or(Ok(None), Charge::planned)
            },
            charge_commands,
        )
        .await
    }

    /// A step of an Aidants Connect habilitation. A completed training charges its seat to
    /// the convention the habilitation was registered on, in the département recorded
    /// with its request: both facts from the habilitation's own events.
    pub async fn habilitation(&self, command: HabilitationCommand, meta: CommandMeta) -> Outcome<HabilitationError> {
        let stream = stream_name::<Habilitation>(command.habilitation_id().0);
        self.step::<Habilitation, Convention, Charge>(
            stream,
            command,
            meta,
            |state, events| match (moves::training(state.departement.as_ref(), events), &state.departement) {
                // Every habilitation's request records it: only a log older than that
                // could lack it, and then nothing may be charged silently.
                (Some(_), None) => Err(StepError::Missing {
                    field: "habilitationId",
                    message: "the habilitation's request records no département to charge its seat to".into(),
                }),
                (charge, _) => charge.map_or(Ok(None), Charge::planned),
            },
            charge_commands,
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
        self.step::<Habilitation, TrainingSession, ()>(
            stream_name::<Habilitation>(habilitation_id.0),
            command,
            meta,
            move |_, _| Ok(Some((stream_name::<TrainingSession>(session_id.0), ()))),
            move |_, _| Ok(vec![SessionCommand::ReserveSeat { session_id, habilitation_id }]),
        )
        .await
    }

    /// Any other command of an entity that moves no money (a session opened, a
    /// habilitation validated, a claim assessed).
    pub async fn plain<A: Aggregate>(&self, stream: String, command: A::Command, meta: CommandMeta) -> Outcome<A::Error>
    where
        A::Command: 'static,
    {
        self.step::<A, Convention, Charge>(stream, command, meta, nothing, charge_commands).await
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
    /// The structure submitting (it must have bought the training).
    pub structure_id: StructureId,
    pub purchase_id: domain::purchase::PurchaseId,
    pub trainee: String,
    pub lines: Vec<domain::claim::ExpenseLine>,
    pub submitted_on: chrono::NaiveDate,
    /// Other trainees of the training who already claimed (left out of the fingerprint).
    pub trainees_claimed: u32,
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
        let command = ClaimCommand::Submit(Box::new(domain::claim::SubmitAnnexClaim {
            claim_id: request.claim_id,
            structure_id: request.structure_id,
            trainee: request.trainee,
            training: domain::claim::TrainingFacts {
                purchase_id: request.purchase_id,
                convention_id: bought.convention_id,
                structure_id: bought.structure_id,
                departement: bought.departement.clone(),
                session_end: bought.session_end,
                present,
                trainees_claimed: request.trainees_claimed,
            },
            caps,
            lines: request.lines,
            submitted_on: request.submitted_on,
        }));
        self.plain::<AnnexClaim>(stream_name::<AnnexClaim>(request.claim_id.0), command, meta).await
    }
}

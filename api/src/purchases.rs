//! Training purchases through GraphQL. Each lifecycle step also moves money on the
//! convention (commit, service done and release, payment, release); those commands get
//! ids derived from the step's own command id, so a retried step moves nothing twice, and
//! the purchase's event is written last, so a step refused on the convention (an envelope
//! that cannot cover it) leaves the purchase as it was.

use crate::AppState;
use crate::auth::{Operation, Principal, require};
use crate::errors::bad_input;
use crate::inputs::{CommandFields, convention_id};
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::{Departement, StructureView};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use domain::CommandId;
use domain::framework::CompetencyBlock;
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::StructureId;
use projections::purchases::PurchaseRecord;
use store::CommandOutcome;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::framework::Metier")]
pub enum Metier {
    MediateurNumerique,
    TravailleurSocial,
    AgentAccueil,
    Cadre,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::purchase::PurchaseState")]
pub enum PurchaseStatus {
    Requested,
    Approved,
    Attended,
    Paid,
    Cancelled,
}

/// A training purchase.
pub struct PurchaseView(pub PurchaseRecord);

#[Object(name = "Purchase")]
impl PurchaseView {
    async fn id(&self) -> ID {
        ID(self.0.request.purchase_id.to_string())
    }
    async fn status(&self) -> PurchaseStatus {
        self.0.state.into()
    }
    async fn convention_id(&self) -> ID {
        ID(self.0.request.convention_id.to_string())
    }
    /// The reference its money carries on the convention.
    async fn reference(&self) -> String {
        self.0.request.purchase_id.reference()
    }
    async fn structure(&self, ctx: &Context<'_>) -> Option<StructureView> {
        let state = ctx.data_unchecked::<AppState>();
        state.structures.read(|v| v.structures.get(&self.0.request.structure_id).cloned()).map(StructureView)
    }
    /// The buyer structure's département, with its région.
    async fn departement(&self) -> Departement {
        (&self.0.request.departement).into()
    }
    async fn provider(&self) -> &str {
        &self.0.request.provider
    }
    async fn title(&self) -> &str {
        &self.0.request.title
    }
    async fn certifying(&self) -> bool {
        self.0.request.certification.is_some()
    }
    /// RNCP or RS code, for a certifying training.
    async fn certification(&self) -> Option<&str> {
        self.0.request.certification.as_deref()
    }
    /// Competency-framework blocks covered (1 to 9, as in Annex 1).
    async fn blocks(&self) -> Vec<u8> {
        self.0.request.blocks.iter().map(|b| b.number()).collect()
    }
    async fn metier(&self) -> Metier {
        self.0.request.metier.into()
    }
    async fn hours(&self) -> u32 {
        self.0.request.hours
    }
    /// Trainees registered.
    async fn trainees(&self) -> u32 {
        self.0.request.trainees
    }
    /// Trainees present, once attendance is recorded: they count towards the 2 000.
    async fn present(&self) -> Option<u32> {
        self.0.present
    }
    async fn unit_cost(&self) -> MoneyScalar {
        self.0.request.unit_cost.into()
    }
    async fn total(&self) -> MoneyScalar {
        self.0.request.total.into()
    }
    async fn committed(&self) -> MoneyScalar {
        self.0.committed.into()
    }
    async fn service_done(&self) -> MoneyScalar {
        self.0.service_done.into()
    }
    async fn paid(&self) -> MoneyScalar {
        self.0.paid.into()
    }
    async fn released(&self) -> MoneyScalar {
        self.0.released.into()
    }
    /// Set when the group is outside the advised 8–15 trainees.
    async fn warning(&self) -> Option<&str> {
        self.0.request.warning.as_deref()
    }
    async fn session_start(&self) -> DateScalar {
        self.0.request.session_start.into()
    }
    async fn session_end(&self) -> DateScalar {
        self.0.request.session_end.into()
    }
    async fn requested_on(&self) -> DateScalar {
        self.0.request.requested_on.into()
    }
    async fn approved_on(&self) -> Option<DateScalar> {
        self.0.approved_on.map(Into::into)
    }
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
}

#[derive(InputObject)]
pub struct RequestPurchaseInput {
    /// The convention paying for it (normally ANCT–Uniformation's).
    pub convention_id: ID,
    /// The buyer structure (registered first).
    pub structure_id: ID,
    pub provider: String,
    pub title: String,
    /// RNCP or RS code of a certifying training; omit for a non-certifying one.
    pub certification: Option<String>,
    /// Competency-framework blocks covered, 1 to 9: at least one (no block, no funding).
    pub blocks: Vec<u8>,
    pub metier: Metier,
    pub hours: u32,
    pub trainees: u32,
    pub unit_cost: MoneyScalar,
    pub session_start: DateScalar,
    pub session_end: DateScalar,
    pub requested_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct ApprovePurchaseInput {
    pub purchase_id: ID,
    pub approved_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordAttendanceInput {
    pub purchase_id: ID,
    /// Trainees present (at most those registered).
    pub present: u32,
    pub recorded_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordPurchasePaymentInput {
    pub purchase_id: ID,
    pub paid_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct CancelPurchaseInput {
    pub purchase_id: ID,
    pub reason: String,
    pub cancelled_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

fn purchase_id(id: &ID) -> Result<PurchaseId> {
    PurchaseId::parse(id).map_err(|e| bad_input("purchaseId", e))
}

/// What a purchase step wrote.
pub struct PurchasePayload {
    command_id: CommandId,
    purchase_id: PurchaseId,
    outcome: CommandOutcome,
}

#[Object]
impl PurchasePayload {
    #[graphql(flatten)]
    async fn written(&self) -> crate::mutation::Written {
        crate::mutation::Written::new(self.command_id, &self.outcome)
    }
    async fn purchase(&self, ctx: &Context<'_>) -> Option<PurchaseView> {
        let state = ctx.data_unchecked::<AppState>();
        state.purchases.read(|v| v.purchases.get(&self.purchase_id).cloned()).map(PurchaseView)
    }
}

/// One lifecycle step of a purchase, through its use case: the purchase's event and the
/// money it moves on the convention, written together.
async fn step(
    ctx: &Context<'_>,
    principal: &Principal,
    command: PurchaseCommand,
    fields: &CommandFields,
) -> Result<PurchasePayload> {
    let state = ctx.data_unchecked::<AppState>();
    let purchase_id = command.purchase_id();
    let meta = fields.meta(&principal.actor())?;
    let result = state.use_cases.purchase(command, meta.clone()).await;
    let (command_id, outcome) = crate::programmes::written(state, meta.command_id, result).await?;
    Ok(PurchasePayload { command_id, purchase_id, outcome })
}

#[derive(Default)]
pub struct PurchaseMutation;

#[Object]
impl PurchaseMutation {
    /// Requests a training purchase for a registered structure. No block, no funding; a
    /// group outside 8–15 trainees is accepted with a warning.
    async fn request_purchase(&self, ctx: &Context<'_>, input: RequestPurchaseInput) -> Result<PurchasePayload> {
        let principal = require(ctx, Operation::RequestPurchase)?;
        let state = ctx.data_unchecked::<AppState>();
        let structure = crate::programmes::structure(state, &input.structure_id).await?;
        let structure_id = structure.structure_id;
        let blocks = input
            .blocks
            .iter()
            .map(|n| {
                CompetencyBlock::from_number(*n)
                    .ok_or_else(|| bad_input("blocks", format!("{n} is not a competency-framework block (1 to 9)")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = input.command.meta(&principal.actor())?;
        let command = PurchaseCommand::Request(Box::new(RequestPurchase {
            purchase_id: PurchaseId::for_request(meta.command_id),
            convention_id: convention_id(&input.convention_id)?,
            structure_id,
            departement: structure.departement.clone(),
            structure_kind: structure.kind,
            provider: input.provider.clone(),
            title: input.title.clone(),
            certification: input.certification.clone(),
            blocks,
            metier: input.metier.into(),
            hours: input.hours,
            trainees: input.trainees,
            unit_cost: input.unit_cost.0,
            session_start: input.session_start.0,
            session_end: input.session_end.0,
            requested_on: input.requested_on.0,
        }));
        // The request's id is fixed now, so its purchase id is too.
        let fields = CommandFields { command_id: Some(ID(meta.command_id.to_string())), ..input.command };
        step(ctx, &principal, command, &fields).await
    }

    /// Approves a requested purchase: commits its total on the convention's envelope of
    /// its kind (certifying or not); refused with the figures when the envelope cannot
    /// cover it.
    async fn approve_purchase(&self, ctx: &Context<'_>, input: ApprovePurchaseInput) -> Result<PurchasePayload> {
        let principal = require(ctx, Operation::ApprovePurchase)?;
        let command = PurchaseCommand::Approve {
            purchase_id: purchase_id(&input.purchase_id)?,
            approved_on: input.approved_on.0,
        };
        step(ctx, &principal, command, &input.command).await
    }

    /// Records the trainees present: service done for them, the rest released.
    async fn record_attendance(&self, ctx: &Context<'_>, input: RecordAttendanceInput) -> Result<PurchasePayload> {
        let principal = require(ctx, Operation::RecordAttendance)?;
        let command = PurchaseCommand::RecordAttendance {
            purchase_id: purchase_id(&input.purchase_id)?,
            present: input.present,
            recorded_on: input.recorded_on.0,
        };
        step(ctx, &principal, command, &input.command).await
    }

    /// Records the payment of the service done.
    async fn record_purchase_payment(
        &self,
        ctx: &Context<'_>,
        input: RecordPurchasePaymentInput,
    ) -> Result<PurchasePayload> {
        let principal = require(ctx, Operation::RecordPurchasePayment)?;
        let command =
            PurchaseCommand::RecordPayment { purchase_id: purchase_id(&input.purchase_id)?, paid_on: input.paid_on.0 };
        step(ctx, &principal, command, &input.command).await
    }

    /// Cancels a requested or approved purchase; an approved one's funds are released.
    async fn cancel_purchase(&self, ctx: &Context<'_>, input: CancelPurchaseInput) -> Result<PurchasePayload> {
        let principal = require(ctx, Operation::CancelPurchase)?;
        let command = PurchaseCommand::Cancel {
            purchase_id: purchase_id(&input.purchase_id)?,
            reason: input.reason.clone(),
            cancelled_on: input.cancelled_on.0,
        };
        step(ctx, &principal, command, &input.command).await
    }
}

#[derive(Default)]
pub struct PurchaseQuery;

#[Object]
impl PurchaseQuery {
    /// Training purchases in request order, optionally of one structure; a `structure`
    /// token sees only its own.
    async fn purchases(&self, ctx: &Context<'_>, structure_id: Option<ID>) -> Result<Vec<PurchaseView>> {
        let principal = require(ctx, Operation::Purchases)?;
        let structure =
            structure_id.map(|id| StructureId::parse(&id).map_err(|e| bad_input("structureId", e))).transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.purchases.read(|v| {
            v.list()
                .into_iter()
                .filter(|p| structure.is_none_or(|s| p.request.structure_id == s))
                .filter(|p| principal.sees_structure(p.request.structure_id.0))
                .cloned()
                .map(PurchaseView)
                .collect()
        }))
    }

    /// One purchase, or null (also for another structure's purchase, seen by a
    /// `structure` token).
    async fn purchase(&self, ctx: &Context<'_>, id: ID) -> Result<Option<PurchaseView>> {
        let principal = require(ctx, Operation::Purchase)?;
        let id = purchase_id(&id)?;
        let state = ctx.data_unchecked::<AppState>();
        let found = state.purchases.read(|v| v.purchases.get(&id).cloned());
        Ok(found.filter(|p| principal.sees_structure(p.request.structure_id.0)).map(PurchaseView))
    }
}

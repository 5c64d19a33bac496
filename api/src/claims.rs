//! Annex-cost claims and funds calls through GraphQL: a structure submits (its own
//! trainees only), the OPCO assesses and pays, the OPCO calls funds from ANCT, ANCT pays
//! the call. The money moves (commitment, service done, payment) are the reimbursement
//! saga's; a mutation answers once the saga and the read models have caught up with it.

use crate::AppState;
use crate::auth::{Operation, Principal, Role, require};
use crate::errors::{DomainCode, bad_input, codes};
use crate::inputs::{CommandFields, convention_id};
use crate::programmes::written;
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::Departement;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use domain::CommandId;
use domain::claim::{AnnexClaim, ClaimCommand, ClaimError, ClaimId, ExpenseLine, LineDecision};
use domain::funds_call::{FundsCallCommand, FundsCallError, FundsCallId};
use domain::purchase::PurchaseId;
use domain::structure::StructureId;
use projections::reimbursements::{CallRecord, ClaimRecord};
use store::CommandOutcome;
use store::handler::stream_name;

impl DomainCode for ClaimError {
    fn code(&self) -> &'static str {
        match self {
            ClaimError::NotFound => codes::NOT_FOUND,
            ClaimError::AlreadySubmitted => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for FundsCallError {
    fn code(&self) -> &'static str {
        match self {
            FundsCallError::UnknownCall => codes::NOT_FOUND,
            FundsCallError::AlreadyIssued | FundsCallError::AlreadyPaid { .. } => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::annex::ExpenseKind")]
pub enum ExpenseKind {
    PublicTransport,
    Car,
    Night,
    Meal,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::annex::StayArea")]
pub enum StayArea {
    Standard,
    LargeCity,
    Paris,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::claim::ClaimState")]
pub enum ClaimStatus {
    Submitted,
    ChangesRequested,
    Rejected,
    Approved,
    AwaitingFunds,
    Funded,
    Paid,
    InFundsCall,
    Reimbursed,
}

/// One expense of a trainee.
#[derive(InputObject)]
pub struct ExpenseLineInput {
    pub kind: ExpenseKind,
    /// Tickets, kilometres, nights or meals; at least 1.
    pub quantity: i32,
    /// For nights only: where the night was spent.
    pub area: Option<StayArea>,
    pub amount: MoneyScalar,
    /// The receipt's reference (invoice or ticket number).
    pub receipt: String,
}

fn lines(input: &[ExpenseLineInput]) -> Result<Vec<ExpenseLine>> {
    input
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let quantity = u32::try_from(l.quantity).map_err(|_| {
                bad_input("lines", format!("line {}: the quantity cannot be negative ({})", i + 1, l.quantity))
            })?;
            Ok(ExpenseLine {
                kind: l.kind.into(),
                quantity,
                area: l.area.map(Into::into),
                amount: l.amount.0,
                receipt: l.receipt.clone(),
            })
        })
        .collect()
}

#[derive(InputObject)]
pub struct SubmitAnnexClaimInput {
    /// The training purchase the trainee attended (attendance recorded).
    pub purchase_id: ID,
    /// A pseudonymous reference of the trainee (no name): one claim per trainee and training.
    pub trainee: String,
    pub lines: Vec<ExpenseLineInput>,
    pub submitted_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct ResubmitAnnexClaimInput {
    pub claim_id: ID,
    pub lines: Vec<ExpenseLineInput>,
    pub resubmitted_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// A line the OPCO approves below its eligible amount.
#[derive(InputObject)]
pub struct LineReductionInput {
    /// 1 for the first line.
    pub line: u32,
    pub approved: MoneyScalar,
    pub reason: String,
}

#[derive(InputObject)]
pub struct ApproveAnnexClaimInput {
    pub claim_id: ID,
    /// Lines approved below their eligible (capped) amount, each with its reason; the
    /// other lines are approved in full.
    #[graphql(default)]
    pub reductions: Vec<LineReductionInput>,
    pub approved_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct AssessAnnexClaimInput {
    pub claim_id: ID,
    pub reason: String,
    pub on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordAnnexClaimPaymentInput {
    pub claim_id: ID,
    pub paid_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct IssueFundsCallInput {
    pub convention_id: ID,
    pub period_start: DateScalar,
    pub period_end: DateScalar,
    /// The claims to call; all those paid in the period and not yet called when absent.
    pub claim_ids: Option<Vec<ID>>,
    pub issued_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordFundsCallPaymentInput {
    pub convention_id: ID,
    pub funds_call_id: ID,
    pub paid_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(SimpleObject)]
pub struct ClaimLine {
    pub line: u32,
    pub kind: ExpenseKind,
    pub quantity: u32,
    pub area: Option<StayArea>,
    pub amount: MoneyScalar,
    pub receipt: String,
    /// The barème's cap for this line; null for public transport.
    pub cap: Option<MoneyScalar>,
    /// The amount claimed, capped.
    pub eligible: MoneyScalar,
    /// Set once approved.
    pub approved: Option<MoneyScalar>,
    /// Why the OPCO approved less than eligible.
    pub reduction_reason: Option<String>,
}

/// An annex-cost claim.
pub struct ClaimView(pub ClaimRecord);

#[Object(name = "AnnexClaim")]
impl ClaimView {
    async fn id(&self) -> ID {
        ID(self.0.submitted.claim_id.to_string())
    }
    async fn status(&self) -> ClaimStatus {
        self.0.state.into()
    }
    /// The reference its money carries on the convention.
    async fn reference(&self) -> String {
        self.0.submitted.claim_id.reference()
    }
    async fn convention_id(&self) -> ID {
        ID(self.0.submitted.convention_id.to_string())
    }
    async fn purchase_id(&self) -> ID {
        ID(self.0.submitted.purchase_id.to_string())
    }
    async fn structure_id(&self) -> ID {
        ID(self.0.submitted.structure_id.to_string())
    }
    async fn departement(&self) -> Departement {
        (&self.0.submitted.departement).into()
    }
    async fn trainee(&self, ctx: &Context<'_>) -> String {
        crate::personal::shown(ctx.data_unchecked::<AppState>(), &self.0.submitted.trainee)
    }
    /// 1, then 2… after each resubmission.
    async fn submission(&self) -> u32 {
        self.0.submission
    }
    async fn lines(&self) -> Vec<ClaimLine> {
        self.0
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let decision = self.0.approved_lines.get(i);
                ClaimLine {
                    line: i as u32 + 1,
                    kind: l.line.kind.into(),
                    quantity: l.line.quantity,
                    area: l.line.area.map(Into::into),
                    amount: l.line.amount.into(),
                    receipt: l.line.receipt.clone(),
                    cap: l.cap.map(Into::into),
                    eligible: l.eligible.into(),
                    approved: decision.map(|d| d.approved.into()),
                    reduction_reason: decision.and_then(|d| d.reason.clone()),
                }
            })
            .collect()
    }
    async fn claimed(&self) -> MoneyScalar {
        self.0.claimed.into()
    }
    /// What the caps leave of the amount claimed.
    async fn eligible(&self) -> MoneyScalar {
        self.0.eligible.into()
    }
    async fn approved(&self) -> Option<MoneyScalar> {
        self.0.approved.map(Into::into)
    }
    async fn submitted_on(&self) -> DateScalar {
        self.0.submitted.submitted_on.into()
    }
    /// The OPCO should assess it by then (the convention's assessment delay; ours by
    /// default: 30 days).
    async fn assess_by(&self) -> DateScalar {
        self.0.assess_by.into()
    }
    /// Not assessed within the convention's assessment delay.
    async fn overdue(&self) -> bool {
        self.0.overdue
    }
    /// Why the OPCO sent it back or rejected it.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// Why it waits for funds (the envelope's figures).
    async fn waiting_reason(&self) -> Option<&str> {
        self.0.waiting_reason.as_deref()
    }
    async fn approved_on(&self) -> Option<DateScalar> {
        self.0.approved_on.map(Into::into)
    }
    async fn paid_on(&self) -> Option<DateScalar> {
        self.0.paid_on.map(Into::into)
    }
    /// The funds call that covers it.
    async fn funds_call_id(&self) -> Option<ID> {
        self.0.call.map(|(id, _)| ID(id.to_string()))
    }
    async fn funds_call_number(&self) -> Option<u32> {
        self.0.call.map(|(_, n)| n)
    }
    async fn reimbursed_on(&self) -> Option<DateScalar> {
        self.0.reimbursed_on.map(Into::into)
    }
}

/// A funds call (appel de fonds) from the OPCO to ANCT.
pub struct FundsCallView(pub CallRecord);

#[Object(name = "FundsCall")]
impl FundsCallView {
    async fn id(&self) -> ID {
        ID(self.0.issued.call_id.to_string())
    }
    async fn convention_id(&self) -> ID {
        ID(self.0.issued.convention_id.to_string())
    }
    /// n°1, n°2… per convention.
    async fn number(&self) -> u32 {
        self.0.issued.number
    }
    async fn period_start(&self) -> DateScalar {
        self.0.issued.period_start.into()
    }
    async fn period_end(&self) -> DateScalar {
        self.0.issued.period_end.into()
    }
    async fn claim_ids(&self) -> Vec<ID> {
        self.0.issued.claims.iter().map(|c| ID(c.claim_id.to_string())).collect()
    }
    async fn total(&self) -> MoneyScalar {
        self.0.issued.total.into()
    }
    async fn issued_on(&self) -> DateScalar {
        self.0.issued.issued_on.into()
    }
    /// ANCT should pay by then: the convention's payment delay (ours by default: 30 days;
    /// a partnership convention sets its own, the procurement delays do not bind it).
    async fn due_on(&self) -> DateScalar {
        self.0.issued.due_on.into()
    }
    async fn paid_on(&self) -> Option<DateScalar> {
        self.0.paid_on.map(Into::into)
    }
    /// Not paid within the convention's payment delay.
    async fn late(&self) -> bool {
        self.0.late
    }
}

/// What a claim or funds-call command wrote.
#[derive(SimpleObject)]
pub struct ReimbursementPayload {
    pub command_id: ID,
    pub position: u64,
    pub duplicate: bool,
    pub claim: Option<ClaimView>,
    pub funds_call: Option<FundsCallView>,
}

fn claim_id(id: &ID) -> Result<ClaimId> {
    ClaimId::parse(id).map_err(|e| bad_input("claimId", e))
}

/// The claim as the caller may see it: another structure's answers as if absent.
fn visible_claim(state: &AppState, principal: &Principal, id: ClaimId) -> Option<ClaimRecord> {
    state
        .reimbursements
        .read(|v| v.claims.get(&id).cloned())
        .filter(|c| principal.sees_structure(c.submitted.structure_id.0))
}

/// Waits for the saga to act on what a command wrote, then for the read models to show
/// what the saga wrote in turn.
async fn settle(state: &AppState, outcome: &CommandOutcome) {
    let timeout = state.read_your_writes_timeout;
    if let Some(saga) = &state.saga
        && !saga.wait_for(outcome.position, timeout).await
    {
        tracing::warn!(position = outcome.position, "the reimbursement saga lags behind a command's answer");
    }
    let head = *state.store.head().borrow();
    if !state.wait_for(head, timeout).await {
        tracing::warn!(position = head, "read models lagging behind a command's answer");
    }
}

async fn claim_step(
    ctx: &Context<'_>,
    principal: &Principal,
    command: ClaimCommand,
    fields: &CommandFields,
) -> Result<ReimbursementPayload> {
    let state = ctx.data_unchecked::<AppState>();
    let id = command.claim_id();
    let meta = fields.meta(&principal.actor())?;
    let result = state.use_cases.plain::<AnnexClaim>(stream_name::<AnnexClaim>(id.0), command, meta.clone()).await;
    let (command_id, outcome) = written(state, meta.command_id, result).await?;
    settle(state, &outcome).await;
    Ok(answer(state, command_id, &outcome, visible_claim(state, principal, id), None))
}

fn answer(
    state: &AppState,
    command_id: CommandId,
    outcome: &CommandOutcome,
    claim: Option<ClaimRecord>,
    call: Option<FundsCallId>,
) -> ReimbursementPayload {
    ReimbursementPayload {
        command_id: ID(command_id.to_string()),
        position: outcome.position,
        duplicate: outcome.duplicate,
        claim: claim.map(ClaimView),
        funds_call: call.and_then(|id| state.reimbursements.read(|v| v.calls.get(&id).cloned())).map(FundsCallView),
    }
}

/// A claim command on a claim the caller can see.
async fn assess(
    ctx: &Context<'_>,
    operation: Operation,
    id: &ID,
    fields: &CommandFields,
    command: impl FnOnce(ClaimId) -> ClaimCommand,
) -> Result<ReimbursementPayload> {
    let principal = require(ctx, operation)?;
    let state = ctx.data_unchecked::<AppState>();
    let id = claim_id(id)?;
    if visible_claim(state, &principal, id).is_none() {
        return Err(bad_input("claimId", format!("no annex claim {id}")));
    }
    claim_step(ctx, &principal, command(id), fields).await
}

#[derive(Default)]
pub struct ClaimMutation;

#[Object]
impl ClaimMutation {
    /// A structure claims a trainee's annex costs for a training of its own whose
    /// attendance is recorded, within the convention's deadline (90 days after the
    /// session by default). Each line is capped by the barème in force at the session's
    /// end; the answer shows what is eligible.
    async fn submit_annex_claim(
        &self,
        ctx: &Context<'_>,
        input: SubmitAnnexClaimInput,
    ) -> Result<ReimbursementPayload> {
        let principal = require(ctx, Operation::SubmitAnnexClaim)?;
        let state = ctx.data_unchecked::<AppState>();
        let purchase_id = PurchaseId::parse(&input.purchase_id).map_err(|e| bad_input("purchaseId", e))?;
        // Access, not a decision: another structure's purchase answers as if absent.
        let visible = state.purchases.read(|v| {
            v.purchases.get(&purchase_id).is_some_and(|p| principal.sees_structure(p.request.structure_id.0))
        });
        if !visible {
            return Err(bad_input("purchaseId", format!("no purchase {purchase_id}")));
        }
        let structure_id = match (principal.role, principal.structure) {
            (Role::Structure, Some(s)) => Some(StructureId(s)),
            _ => None,
        };
        let scope = purchase_id.0.to_string();
        let trainee = crate::personal::pseudonym(state, store::PersonKind::Trainee, &scope, &input.trainee, "trainee")?;
        let id = ClaimId::of(purchase_id, &trainee);
        let request = usecases::programmes::AnnexClaimRequest {
            claim_id: id,
            structure_id,
            purchase_id,
            trainee,
            lines: lines(&input.lines)?,
            submitted_on: input.submitted_on.0,
        };
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.submit_annex_claim(request, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        settle(state, &outcome).await;
        Ok(answer(state, command_id, &outcome, visible_claim(state, &principal, id), None))
    }

    /// The structure sends back a claim the OPCO asked to change; it is capped and
    /// assessed again.
    async fn resubmit_annex_claim(
        &self,
        ctx: &Context<'_>,
        input: ResubmitAnnexClaimInput,
    ) -> Result<ReimbursementPayload> {
        let principal = require(ctx, Operation::ResubmitAnnexClaim)?;
        let state = ctx.data_unchecked::<AppState>();
        let id = claim_id(&input.claim_id)?;
        let claim =
            visible_claim(state, &principal, id).ok_or_else(|| bad_input("claimId", format!("no annex claim {id}")))?;
        let meta = input.command.meta(&principal.actor())?;
        let result = state
            .use_cases
            .resubmit_annex_claim(claim.submitted.claim_id, lines(&input.lines)?, input.resubmitted_on.0, meta.clone())
            .await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        settle(state, &outcome).await;
        Ok(answer(state, command_id, &outcome, visible_claim(state, &principal, id), None))
    }

    /// The OPCO approves a claim, in full or partly (a reason per reduced line). The saga
    /// then commits the amount on the convention's annex-cost envelope; when the
    /// envelope cannot cover it, the claim waits for funds with that reason.
    async fn approve_annex_claim(
        &self,
        ctx: &Context<'_>,
        input: ApproveAnnexClaimInput,
    ) -> Result<ReimbursementPayload> {
        let reductions = input
            .reductions
            .iter()
            .map(|r| LineDecision { line: r.line, approved: r.approved.0, reason: Some(r.reason.clone()) })
            .collect();
        let on = input.approved_on.0;
        assess(ctx, Operation::ApproveAnnexClaim, &input.claim_id, &input.command, |claim_id| ClaimCommand::Approve {
            claim_id,
            reductions,
            approved_on: on,
        })
        .await
    }

    /// The OPCO sends a claim back to its structure, saying what to change.
    async fn request_annex_claim_changes(
        &self,
        ctx: &Context<'_>,
        input: AssessAnnexClaimInput,
    ) -> Result<ReimbursementPayload> {
        let (reason, on) = (input.reason.clone(), input.on.0);
        assess(ctx, Operation::RequestAnnexClaimChanges, &input.claim_id, &input.command, |claim_id| {
            ClaimCommand::RequestChanges { claim_id, reason, requested_on: on }
        })
        .await
    }

    /// The OPCO rejects a claim, with its reason; final.
    async fn reject_annex_claim(
        &self,
        ctx: &Context<'_>,
        input: AssessAnnexClaimInput,
    ) -> Result<ReimbursementPayload> {
        let (reason, on) = (input.reason.clone(), input.on.0);
        assess(ctx, Operation::RejectAnnexClaim, &input.claim_id, &input.command, |claim_id| ClaimCommand::Reject {
            claim_id,
            reason,
            rejected_on: on,
        })
        .await
    }

    /// The OPCO records its payment of a funded claim to the structure; the saga queues
    /// it for the next funds call.
    async fn record_annex_claim_payment(
        &self,
        ctx: &Context<'_>,
        input: RecordAnnexClaimPaymentInput,
    ) -> Result<ReimbursementPayload> {
        let on = input.paid_on.0;
        assess(ctx, Operation::RecordAnnexClaimPayment, &input.claim_id, &input.command, |claim_id| {
            ClaimCommand::RecordPayment { claim_id, paid_on: on }
        })
        .await
    }

    /// The OPCO calls from ANCT the claims it paid over a period (all of them, or those
    /// named). A claim is in at most one funds call.
    async fn issue_funds_call(&self, ctx: &Context<'_>, input: IssueFundsCallInput) -> Result<ReimbursementPayload> {
        let principal = require(ctx, Operation::IssueFundsCall)?;
        let state = ctx.data_unchecked::<AppState>();
        let convention = convention_id(&input.convention_id)?;
        let meta = input.command.meta(&principal.actor())?;
        let call_id = FundsCallId::for_command(meta.command_id);
        let claims = input
            .claim_ids
            .as_ref()
            .map(|ids| ids.iter().map(|id| ClaimId::parse(id).map_err(|e| bad_input("claimIds", e))).collect())
            .transpose()?;
        let command = FundsCallCommand::Issue {
            convention_id: convention,
            call_id,
            period_start: input.period_start.0,
            period_end: input.period_end.0,
            claims,
            issued_on: input.issued_on.0,
            payment_days: None,
        };
        let result = state.use_cases.funds_call(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        settle(state, &outcome).await;
        Ok(answer(state, command_id, &outcome, None, Some(call_id)))
    }

    /// ANCT records its payment of a funds call; the saga then records each claim's
    /// service done and payment on the envelope and marks it reimbursed.
    async fn record_funds_call_payment(
        &self,
        ctx: &Context<'_>,
        input: RecordFundsCallPaymentInput,
    ) -> Result<ReimbursementPayload> {
        let principal = require(ctx, Operation::RecordFundsCallPayment)?;
        let state = ctx.data_unchecked::<AppState>();
        let convention = convention_id(&input.convention_id)?;
        let call_id = FundsCallId::parse(&input.funds_call_id).map_err(|e| bad_input("fundsCallId", e))?;
        let command = FundsCallCommand::RecordPayment { convention_id: convention, call_id, paid_on: input.paid_on.0 };
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.funds_call(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        settle(state, &outcome).await;
        Ok(answer(state, command_id, &outcome, None, Some(call_id)))
    }
}

#[derive(Default)]
pub struct ClaimQuery;

#[Object]
impl ClaimQuery {
    /// Annex-cost claims in submission order, optionally in one state or of one
    /// structure; a `structure` token sees only its own.
    async fn annex_claims(
        &self,
        ctx: &Context<'_>,
        status: Option<ClaimStatus>,
        structure_id: Option<ID>,
    ) -> Result<Vec<ClaimView>> {
        let principal = require(ctx, Operation::AnnexClaims)?;
        let structure =
            structure_id.map(|id| StructureId::parse(&id).map_err(|e| bad_input("structureId", e))).transpose()?;
        let status = status.map(domain::claim::ClaimState::from);
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.reimbursements.read(|v| {
            v.claims()
                .into_iter()
                .filter(|c| status.is_none_or(|s| c.state == s))
                .filter(|c| structure.is_none_or(|s| c.submitted.structure_id == s))
                .filter(|c| principal.sees_structure(c.submitted.structure_id.0))
                .cloned()
                .map(ClaimView)
                .collect()
        }))
    }

    /// One claim, or null (also for another structure's, seen by a `structure` token).
    async fn annex_claim(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ClaimView>> {
        let principal = require(ctx, Operation::AnnexClaim)?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(visible_claim(state, &principal, claim_id(&id)?).map(ClaimView))
    }

    /// Funds calls by convention and number, optionally of one convention.
    async fn funds_calls(&self, ctx: &Context<'_>, convention_id: Option<ID>) -> Result<Vec<FundsCallView>> {
        require(ctx, Operation::FundsCalls)?;
        let convention = convention_id.as_ref().map(crate::inputs::convention_id).transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.reimbursements.read(|v| {
            v.calls()
                .into_iter()
                .filter(|c| convention.is_none_or(|id| c.issued.convention_id == id))
                .cloned()
                .map(FundsCallView)
                .collect()
        }))
    }
}

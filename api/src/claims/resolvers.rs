//! The claim and funds-call mutations and queries: access, parsing, the use case, then
//! waiting for the saga and the read models.

#[allow(unused_imports)]
use super::*;

/// Waits for the saga to act on what a command wrote, then for the read models to show
/// what the saga wrote in turn.
pub(super) async fn settle(state: &AppState, outcome: &CommandOutcome) {
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

pub(super) async fn claim_step(
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

pub(super) fn answer(
    state: &AppState,
    command_id: CommandId,
    outcome: &CommandOutcome,
    claim: Option<ClaimRecord>,
    call: Option<FundsCallId>,
) -> ReimbursementPayload {
    ReimbursementPayload {
        written: crate::mutation::Written::new(command_id, outcome),
        claim: claim.map(ClaimView),
        funds_call: call.and_then(|id| state.reimbursements.read(|v| v.calls.get(&id).cloned())).map(FundsCallView),
    }
}

/// A claim command on a claim the caller can see.
pub(super) async fn assess(
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

//! What a claim, a funds call and a reimbursement mutation look like through GraphQL.

#[allow(unused_imports)]
use super::*;

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
    #[graphql(flatten)]
    pub written: crate::mutation::Written,
    pub claim: Option<ClaimView>,
    pub funds_call: Option<FundsCallView>,
}

//! The inputs of the claim and funds-call mutations, and their parsing.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn lines(input: &[ExpenseLineInput]) -> Result<Vec<ExpenseLine>> {
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

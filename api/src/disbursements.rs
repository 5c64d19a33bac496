//! The money between ANCT and a convention's partner: the disbursement schedule (a term of
//! the convention), claims for payment and ANCT's payments, statements of expenses,
//! orders of recovery and the co-funder's own spending. Resolvers check access, parse and
//! map errors; the use cases decide from the log.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{DomainCode, bad_input, step_error};
use crate::inputs::{CommandFields, convention_id};
use crate::scalars::{DateScalar, MoneyScalar};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use domain::disbursement::{Claim, DisbursementCommand as D, DisbursementError, Disbursements, Instalment};
use domain::{CommandId, ConventionId};

impl DomainCode for DisbursementError {}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::disbursement::Condition")]
pub enum InstalmentCondition {
    /// At signature (an advance).
    Signature,
    /// On a statement of expenses (an interim payment: one statement per such instalment).
    StatementOfExpenses,
    /// On the final report (the balance).
    FinalReport,
}

#[derive(SimpleObject)]
pub struct InstalmentView {
    pub number: u32,
    pub label: String,
    pub amount: MoneyScalar,
    pub condition: InstalmentCondition,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ClaimForPayment {
    pub number: u32,
    pub instalment: u32,
    pub label: String,
    pub amount: MoneyScalar,
    pub claimed_on: DateScalar,
    /// The claim's date plus the convention's payment delay (ours by default: 30 days).
    pub due_on: DateScalar,
    pub paid_on: Option<DateScalar>,
    /// Paid after its due date.
    pub paid_late: bool,
    #[graphql(skip)]
    claim: Claim,
}

#[async_graphql::ComplexObject]
impl ClaimForPayment {
    /// Days ANCT was or is late on this claim as seen on `on` (today by default): paid by
    /// then, from its due date to the payment; unpaid, since its due date; 0 when not late.
    /// Computed from the dates, not recorded: an unpaid claim's lateness grows each day.
    async fn days_late(&self, on: Option<DateScalar>) -> i64 {
        self.days_late_on(on)
    }

    /// Late as seen on `on` (today by default): unpaid past its due date, or paid after it.
    async fn late(&self, on: Option<DateScalar>) -> bool {
        self.days_late_on(on) > 0
    }
}

impl ClaimForPayment {
    fn days_late_on(&self, on: Option<DateScalar>) -> i64 {
        self.claim.days_late(on.map_or_else(|| chrono::Utc::now().date_naive(), |d| d.0))
    }
}

impl From<&Claim> for ClaimForPayment {
    fn from(c: &Claim) -> Self {
        ClaimForPayment {
            number: c.number,
            instalment: c.instalment,
            label: c.label.clone(),
            amount: c.amount.into(),
            claimed_on: c.claimed_on.into(),
            due_on: c.due_on.into(),
            paid_on: c.paid_on.map(Into::into),
            paid_late: c.paid_late,
            claim: c.clone(),
        }
    }
}

#[derive(SimpleObject)]
pub struct CoFunderSpending {
    pub funder: String,
    pub amount: MoneyScalar,
}

/// A partner's balance with ANCT: `received − recovered = justified (within it) +
/// advanceNotJustified`; ANCT never pays beyond `payableSoFar`.
pub struct DisbursementsView {
    ledger: Disbursements,
    schedule: Vec<Instalment>,
}

#[Object(name = "Disbursements")]
impl DisbursementsView {
    /// The schedule (échéancier) in force: each instalment's amount of ANCT's share and
    /// its condition.
    async fn schedule(&self) -> Vec<InstalmentView> {
        self.schedule
            .iter()
            .enumerate()
            .map(|(i, s)| InstalmentView {
                number: i as u32 + 1,
                label: s.label.clone(),
                amount: s.amount.into(),
                condition: s.condition.into(),
            })
            .collect()
    }
    /// What the schedule allows ANCT to have paid so far (instalments whose condition is met).
    async fn payable_so_far(&self) -> MoneyScalar {
        self.ledger.allowed(&self.schedule).into()
    }
    async fn claims(&self) -> Vec<ClaimForPayment> {
        self.ledger.claims.iter().map(ClaimForPayment::from).collect()
    }
    /// Paid by ANCT to the partner.
    async fn received(&self) -> MoneyScalar {
        self.ledger.received.into()
    }
    /// Spent of ANCT's money, by the partner's statements of expenses.
    async fn justified(&self) -> MoneyScalar {
        self.ledger.justified.into()
    }
    /// Received, not paid back and not yet justified.
    async fn advance_not_justified(&self) -> MoneyScalar {
        self.ledger.advance_not_justified().into()
    }
    async fn recovery_ordered(&self) -> MoneyScalar {
        self.ledger.recovery_ordered.into()
    }
    async fn recovered(&self) -> MoneyScalar {
        self.ledger.recovered.into()
    }
    /// Ordered back and not yet paid back.
    async fn to_recover(&self) -> MoneyScalar {
        self.ledger.to_recover().into()
    }
    async fn statements(&self) -> u32 {
        self.ledger.statements
    }
    async fn final_report_on(&self) -> Option<DateScalar> {
        self.ledger.final_report.map(Into::into)
    }
    /// What ANCT paid on funds calls: claims for payment of annex costs the OPCO already
    /// paid, justified by the claims they list (outside the schedule).
    async fn funds_calls_paid(&self) -> MoneyScalar {
        self.ledger.funds_calls_paid().into()
    }
    /// The co-funders' own spending on the convention (not ANCT's money).
    async fn co_funders(&self) -> Vec<CoFunderSpending> {
        self.ledger
            .co_funders
            .iter()
            .map(|(funder, amount)| CoFunderSpending { funder: funder.clone(), amount: (*amount).into() })
            .collect()
    }
}

async fn view(state: &AppState, convention: ConventionId) -> Result<DisbursementsView> {
    let (ledger, schedule) =
        state.use_cases.disbursements(convention).await.map_err(|e| crate::errors::internal(&e))?;
    Ok(DisbursementsView { ledger, schedule })
}

#[derive(SimpleObject)]
pub struct DisbursementPayload {
    #[graphql(flatten)]
    pub written: crate::mutation::Written,
    pub disbursements: DisbursementsView,
}

async fn step(ctx: &Context<'_>, command: D, fields: &CommandFields, actor: &str) -> Result<DisbursementPayload> {
    let state = ctx.data_unchecked::<AppState>();
    let convention = command.convention_id();
    let meta = fields.meta(actor)?;
    let command_id: CommandId = meta.command_id;
    let outcome = state.use_cases.disbursement(command, meta).await.map_err(step_error)?;
    Ok(DisbursementPayload {
        written: crate::mutation::Written::new(command_id, &outcome),
        disbursements: view(state, convention).await?,
    })
}

#[derive(InputObject)]
pub struct InstalmentInput {
    /// Avance, acompte n°1, solde…
    pub label: String,
    /// Percent of ANCT's share, as a string (`"30"`); or
    pub rate: Option<String>,
    /// a fixed amount of it (exactly one of the two; all instalments alike).
    pub amount: Option<MoneyScalar>,
    pub condition: InstalmentCondition,
}

#[derive(InputObject)]
pub struct SetDisbursementScheduleInput {
    pub convention_id: ID,
    /// Adding up to ANCT's share of the convention (rates to 100).
    pub instalments: Vec<InstalmentInput>,
    pub set_on: DateScalar,
    /// Absent for the schedule set at signature; a change names the avenant (signed,
    /// not yet used for the schedule) that makes it.
    pub amendment: Option<u32>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct SubmitStatementOfExpensesInput {
    pub convention_id: ID,
    /// What the partner spent of ANCT's money since its previous statement.
    pub spent: MoneyScalar,
    /// The final report (état final): the balance and any recovery follow it.
    #[graphql(default)]
    pub final_report: bool,
    pub submitted_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct ClaimPaymentInput {
    pub convention_id: ID,
    /// The instalment's number in the schedule (1, 2…).
    pub instalment: u32,
    pub amount: MoneyScalar,
    pub claimed_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct PayClaimInput {
    pub convention_id: ID,
    /// The claim for payment's number.
    pub claim: u32,
    pub paid_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordCoFunderSpendingInput {
    pub convention_id: ID,
    pub funder: String,
    pub amount: MoneyScalar,
    /// What justifies it (a statement, a ledger reference).
    pub reference: String,
    pub spent_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct OrderRecoveryInput {
    pub convention_id: ID,
    pub ordered_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordRecoveryPaidInput {
    pub convention_id: ID,
    pub amount: MoneyScalar,
    pub paid_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(Default)]
pub struct DisbursementMutation;

#[Object]
impl DisbursementMutation {
    /// ANCT sets the schedule of its payments to the partner: once at signature, then
    /// only as an avenant says. Instalments add up to ANCT's share.
    async fn set_disbursement_schedule(
        &self,
        ctx: &Context<'_>,
        input: SetDisbursementScheduleInput,
    ) -> Result<DisbursementPayload> {
        use domain::financing::Share;
        let principal = require(ctx, Operation::SetDisbursementSchedule)?;
        let state = ctx.data_unchecked::<AppState>();
        let convention = convention_id(&input.convention_id)?;
        let instalments = input
            .instalments
            .iter()
            .map(|i| {
                let share = match (&i.rate, i.amount) {
                    (Some(rate), None) => Share::Rate(
                        domain::Money::parse(rate)
                            .map_err(|e| bad_input("instalments", format!("rate: {e}")))?
                            .amount(),
                    ),
                    (None, Some(amount)) => Share::Amount(amount.0),
                    _ => {
                        return Err(bad_input(
                            "instalments",
                            format!("{}: give exactly one of rate and amount", i.label),
                        ));
                    }
                };
                Ok(domain::convention::PlannedInstalment {
                    label: i.label.clone(),
                    share,
                    condition: i.condition.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let command = domain::convention::ConventionCommand::SetSchedule(domain::convention::SetSchedule {
            convention_id: convention,
            instalments,
            set_on: input.set_on.0,
            amendment: input.amendment,
        });
        let meta = input.command.meta(&principal.actor())?;
        let command_id = meta.command_id;
        let outcome = state.use_cases.convention(command, meta).await.map_err(crate::errors::command_error)?;
        Ok(DisbursementPayload {
            written: crate::mutation::Written::new(command_id, &outcome),
            disbursements: view(state, convention).await?,
        })
    }

    /// The partner's statement of expenses (état récapitulatif), or its final report.
    async fn submit_statement_of_expenses(
        &self,
        ctx: &Context<'_>,
        input: SubmitStatementOfExpensesInput,
    ) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::SubmitStatementOfExpenses)?;
        let command = D::SubmitStatement {
            convention_id: convention_id(&input.convention_id)?,
            spent: input.spent.0,
            final_report: input.final_report,
            submitted_on: input.submitted_on.0,
        };
        step(ctx, command, &input.command, &principal.actor()).await
    }

    /// The partner claims an instalment whose condition is met; due after the
    /// convention's payment delay.
    async fn claim_payment(&self, ctx: &Context<'_>, input: ClaimPaymentInput) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::ClaimPayment)?;
        let command = D::ClaimPayment {
            convention_id: convention_id(&input.convention_id)?,
            instalment: input.instalment,
            amount: input.amount.0,
            claimed_on: input.claimed_on.0,
            terms: Default::default(),
        };
        step(ctx, command, &input.command, &principal.actor()).await
    }

    /// ANCT pays a claim for payment, never beyond what the schedule allows so far.
    async fn pay_claim(&self, ctx: &Context<'_>, input: PayClaimInput) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::PayClaim)?;
        let command = D::PayClaim {
            convention_id: convention_id(&input.convention_id)?,
            claim: input.claim,
            paid_on: input.paid_on.0,
            terms: Default::default(),
        };
        step(ctx, command, &input.command, &principal.actor()).await
    }

    /// The co-funder's own spending on the convention (Uniformation's part), as such.
    async fn record_co_funder_spending(
        &self,
        ctx: &Context<'_>,
        input: RecordCoFunderSpendingInput,
    ) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::RecordCoFunderSpending)?;
        let command = D::RecordCoFunderSpending {
            convention_id: convention_id(&input.convention_id)?,
            funder: input.funder.clone(),
            amount: input.amount.0,
            reference: input.reference.clone(),
            spent_on: input.spent_on.0,
        };
        step(ctx, command, &input.command, &principal.actor()).await
    }

    /// ANCT orders back what the final report does not justify (ordre de reversement).
    async fn order_recovery(&self, ctx: &Context<'_>, input: OrderRecoveryInput) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::OrderRecovery)?;
        let command =
            D::OrderRecovery { convention_id: convention_id(&input.convention_id)?, ordered_on: input.ordered_on.0 };
        step(ctx, command, &input.command, &principal.actor()).await
    }

    /// ANCT records what the partner paid back on an order of recovery.
    async fn record_recovery_paid(
        &self,
        ctx: &Context<'_>,
        input: RecordRecoveryPaidInput,
    ) -> Result<DisbursementPayload> {
        let principal = require(ctx, Operation::RecordRecoveryPaid)?;
        let command = D::RecordRecoveryPaid {
            convention_id: convention_id(&input.convention_id)?,
            amount: input.amount.0,
            paid_on: input.paid_on.0,
        };
        step(ctx, command, &input.command, &principal.actor()).await
    }
}

#[derive(Default)]
pub struct DisbursementQuery;

#[Object]
impl DisbursementQuery {
    /// A convention's disbursements: schedule, claims for payment (due, paid, late), the
    /// partner's balance, recoveries and the co-funders' spending.
    async fn disbursements(&self, ctx: &Context<'_>, convention_id: ID) -> Result<DisbursementsView> {
        require(ctx, Operation::Disbursements)?;
        let convention = crate::inputs::convention_id(&convention_id)?;
        view(ctx.data_unchecked::<AppState>(), convention).await
    }
}

//! Input types. Ids and territory codes arrive as strings and are parsed here, so that a
//! malformed one gets an error naming the field, before any command exists.

use crate::errors::bad_input;
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::{EnvelopeKind, HeadCount, StructureKind, TargetKind};
use async_graphql::{ID, InputObject, Result};
use domain::convention as dc;
use domain::{CommandId, CommandMeta, ConventionId, CorrelationId, DepartementCode, EnvelopeId, EventId};

/// Idempotency and tracing fields every mutation accepts.
#[derive(InputObject, Default)]
pub struct CommandFields {
    /// Idempotency key (a UUID): send the same command again with the same id and get the
    /// first answer back, with nothing written twice. Generated when absent.
    pub command_id: Option<ID>,
    /// Groups the commands of one user action or workflow (a UUID); defaults to the command id.
    pub correlation_id: Option<ID>,
    /// The event that caused this command (a UUID), when a process sends it.
    pub causation_id: Option<ID>,
}

impl CommandFields {
    pub fn meta(&self, actor: &str) -> Result<CommandMeta> {
        let command_id = match &self.command_id {
            Some(id) => CommandId::parse(id).map_err(|e| bad_input("commandId", e))?,
            None => CommandId::new_random(),
        };
        let correlation_id = match &self.correlation_id {
            Some(id) => CorrelationId::parse(id).map_err(|e| bad_input("correlationId", e))?,
            None => CorrelationId(command_id.0),
        };
        let causation_id = self
            .causation_id
            .as_ref()
            .map(|id| EventId::parse(id).map_err(|e| bad_input("causationId", e)))
            .transpose()?;
        Ok(CommandMeta { command_id, actor: actor.to_string(), correlation_id, causation_id })
    }
}

pub fn convention_id(id: &ID) -> Result<ConventionId> {
    ConventionId::parse(id).map_err(|e| bad_input("conventionId", e))
}

fn envelope_id(id: &ID) -> Result<EnvelopeId> {
    EnvelopeId::parse(id).map_err(|e| bad_input("envelopeId", e))
}

fn departement(code: &str, field: &str) -> Result<DepartementCode> {
    DepartementCode::parse(code).map_err(|e| bad_input(field, e))
}

#[derive(InputObject)]
pub struct FundingShareInput {
    pub funder: String,
    pub amount: MoneyScalar,
}

#[derive(InputObject)]
pub struct TargetInput {
    pub kind: TargetKind,
    pub quantity: u32,
}

fn shares(input: &[FundingShareInput]) -> Vec<dc::FundingShare> {
    input.iter().map(|s| dc::FundingShare { funder: s.funder.clone(), amount: s.amount.0 }).collect()
}

#[derive(InputObject)]
pub struct SignConventionInput {
    /// Unique code, e.g. `ANCT-UNIFORMATION-2021` (letters, digits, `-`, `_`).
    pub code: String,
    pub partner: String,
    pub title: String,
    pub signed_on: DateScalar,
    pub period_start: DateScalar,
    pub period_end: DateScalar,
    pub total: MoneyScalar,
    /// Must add up to the total exactly.
    pub shares: Vec<FundingShareInput>,
    #[graphql(default)]
    pub targets: Vec<TargetInput>,
    /// INSEE codes of the départements covered; empty for a national convention.
    #[graphql(default)]
    pub departements: Vec<String>,
    /// Annex-cost terms (caps, delays, small-structure threshold) from the period's start;
    /// our defaults when absent (ours, not the plan's: see `AnnexCapsInput`).
    pub annex_caps: Option<AnnexCapsInput>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// A convention's annex-cost terms: the barème (the most reimbursed per night, meal and
/// kilometre), the delays and the small-structure threshold. Every default is ours, not
/// the plan's (the plan gives no caps and no delays).
#[derive(InputObject)]
pub struct AnnexCapsInput {
    pub per_night: MoneyScalar,
    pub per_night_large_city: MoneyScalar,
    pub per_night_paris: MoneyScalar,
    pub per_meal: MoneyScalar,
    pub per_km: MoneyScalar,
    /// Days after the session's end within which a claim may be submitted.
    pub claim_deadline_days: u32,
    /// Days the OPCO has to assess a claim before it is overdue (ours by default: 30).
    #[graphql(default = 30)]
    pub assessment_days: u32,
    /// Days ANCT has to pay a funds call before it is late (ours by default: 30; the
    /// convention sets its own — the procurement delays do not bind it).
    #[graphql(default = 30)]
    pub funds_call_payment_days: u32,
    /// A structure with fewer employees is "small" (ours by default: 50).
    #[graphql(default = 50)]
    pub small_structure_employees: u32,
}

impl AnnexCapsInput {
    fn caps(&self) -> domain::annex::AnnexCaps {
        domain::annex::AnnexCaps {
            per_night: self.per_night.0,
            per_night_large_city: self.per_night_large_city.0,
            per_night_paris: self.per_night_paris.0,
            per_meal: self.per_meal.0,
            per_km: self.per_km.0,
            claim_deadline_days: self.claim_deadline_days,
            assessment_days: self.assessment_days,
            funds_call_payment_days: self.funds_call_payment_days,
            small_structure_employees: self.small_structure_employees,
        }
    }
}

/// New caps, in force from a date.
#[derive(InputObject)]
pub struct CapsChangeInput {
    pub effective_on: DateScalar,
    pub caps: AnnexCapsInput,
}

impl SignConventionInput {
    pub fn command(&self) -> Result<dc::ConventionCommand> {
        Ok(dc::ConventionCommand::Sign(dc::SignConvention {
            code: self.code.clone(),
            partner: self.partner.clone(),
            title: self.title.clone(),
            signed_on: self.signed_on.0,
            period_start: self.period_start.0,
            period_end: self.period_end.0,
            total: self.total.0,
            shares: shares(&self.shares),
            targets: self.targets.iter().map(|t| dc::Target { kind: t.kind.into(), quantity: t.quantity }).collect(),
            departements: self.departements.iter().map(|d| departement(d, "departements")).collect::<Result<_>>()?,
            annex_caps: self.annex_caps.as_ref().map(AnnexCapsInput::caps),
        }))
    }
}

/// One funder's part of an envelope: a `rate` (percent, as a string with at most two
/// decimals: `"55"`, `"12.5"`) or a fixed `amount` — exactly one of them.
#[derive(InputObject)]
pub struct FunderPartInput {
    /// One of the convention's funders.
    pub funder: String,
    pub rate: Option<String>,
    pub amount: Option<MoneyScalar>,
}

fn parts(input: &[FunderPartInput], field: &str) -> Result<Vec<domain::financing::FunderPart>> {
    use domain::financing::{FunderPart, Share};
    input
        .iter()
        .map(|p| {
            let share = match (&p.rate, p.amount) {
                (Some(rate), None) => Share::Rate(
                    domain::Money::parse(rate)
                        .map_err(|e| bad_input(field, format!("rate of {}: {e}", p.funder)))?
                        .amount(),
                ),
                (None, Some(amount)) => Share::Amount(amount.0),
                _ => return Err(bad_input(field, format!("{}: give exactly one of rate and amount", p.funder))),
            };
            Ok(FunderPart { funder: p.funder.clone(), share })
        })
        .collect()
}

#[derive(InputObject)]
pub struct AllocateEnvelopeInput {
    pub convention_id: ID,
    /// Unique within the convention, e.g. `Frais annexes`.
    pub name: String,
    pub kind: EnvelopeKind,
    pub amount: MoneyScalar,
    pub allocated_on: DateScalar,
    /// Its financing plan: which funder pays what part (rates adding up to 100, or
    /// amounts adding up to the envelope's). Needed when the convention has several
    /// funders; with one, all of it is that funder's.
    pub financing: Option<Vec<FunderPartInput>>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// A new financing plan for one envelope, set by an amendment: the money committed
/// from then on is split by it (earlier commitments keep theirs).
#[derive(InputObject)]
pub struct EnvelopeFinancingInput {
    pub envelope_id: ID,
    pub parts: Vec<FunderPartInput>,
}

impl AllocateEnvelopeInput {
    pub fn command(&self) -> Result<dc::ConventionCommand> {
        Ok(dc::ConventionCommand::AllocateEnvelope(dc::AllocateEnvelope {
            convention_id: convention_id(&self.convention_id)?,
            name: self.name.clone(),
            kind: self.kind.into(),
            amount: self.amount.0,
            allocated_on: self.allocated_on.0,
            financing: self.financing.as_deref().map(|p| parts(p, "financing")).transpose()?,
        }))
    }
}

#[derive(InputObject)]
pub struct EnvelopeAmountInput {
    pub envelope_id: ID,
    /// The envelope's new amount.
    pub amount: MoneyScalar,
}

#[derive(InputObject)]
pub struct SignAmendmentInput {
    pub convention_id: ID,
    pub signed_on: DateScalar,
    pub reason: String,
    /// The new total; the shares must then add up to it.
    pub total: Option<MoneyScalar>,
    /// The new funding shares.
    pub shares: Option<Vec<FundingShareInput>>,
    /// The new end of the period.
    pub period_end: Option<DateScalar>,
    /// New envelope amounts; none may go below what is committed on it.
    #[graphql(default)]
    pub envelopes: Vec<EnvelopeAmountInput>,
    /// New annex-cost terms, from a date no earlier than the signature.
    pub annex_caps: Option<CapsChangeInput>,
    /// New financing plans of envelopes (an envelope planned by amounts whose amount
    /// changes needs one).
    #[graphql(default)]
    pub financing: Vec<EnvelopeFinancingInput>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

impl SignAmendmentInput {
    pub fn command(&self) -> Result<dc::ConventionCommand> {
        Ok(dc::ConventionCommand::SignAmendment(dc::SignAmendment {
            convention_id: convention_id(&self.convention_id)?,
            signed_on: self.signed_on.0,
            reason: self.reason.clone(),
            total: self.total.map(|t| t.0),
            shares: self.shares.as_deref().map(shares),
            period_end: self.period_end.map(|d| d.0),
            envelopes: self
                .envelopes
                .iter()
                .map(|e| Ok(dc::EnvelopeAmount { envelope_id: envelope_id(&e.envelope_id)?, amount: e.amount.0 }))
                .collect::<Result<_>>()?,
            annex_caps: self
                .annex_caps
                .as_ref()
                .map(|c| domain::annex::CapsChange { effective_on: c.effective_on.0, caps: c.caps.caps() }),
            financing: self
                .financing
                .iter()
                .map(|f| {
                    Ok(domain::financing::EnvelopeFinancing {
                        envelope_id: envelope_id(&f.envelope_id)?,
                        parts: parts(&f.parts, "financing.parts")?,
                    })
                })
                .collect::<Result<_>>()?,
        }))
    }
}

#[derive(InputObject)]
pub struct CommitFundsInput {
    pub convention_id: ID,
    pub envelope_id: ID,
    /// What the money is for (a purchase, a claim); unique within the convention.
    pub reference: String,
    pub amount: MoneyScalar,
    pub committed_on: DateScalar,
    /// INSEE code of the département the money goes to.
    pub departement: Option<String>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

impl CommitFundsInput {
    pub fn command(&self) -> Result<dc::ConventionCommand> {
        Ok(dc::ConventionCommand::CommitFunds(dc::CommitFunds {
            convention_id: convention_id(&self.convention_id)?,
            envelope_id: envelope_id(&self.envelope_id)?,
            reference: self.reference.clone(),
            amount: self.amount.0,
            committed_on: self.committed_on.0,
            departement: self.departement.as_deref().map(|d| departement(d, "departement")).transpose()?,
        }))
    }
}

/// Releasing, recording service done and recording a payment share one shape: a
/// reference, an amount and the date it happened.
macro_rules! reference_amount_input {
    ($(#[$doc:meta])* $name:ident, $date:ident, $variant:ident, $command:ident) => {
        $(#[$doc])*
        #[derive(InputObject)]
        pub struct $name {
            pub convention_id: ID,
            /// The reference the funds were committed for.
            pub reference: String,
            pub amount: MoneyScalar,
            pub $date: DateScalar,
            #[graphql(flatten)]
            pub command: CommandFields,
        }

        impl $name {
            pub fn command(&self) -> Result<dc::ConventionCommand> {
                Ok(dc::ConventionCommand::$variant(dc::$command {
                    convention_id: convention_id(&self.convention_id)?,
                    reference: self.reference.clone(),
                    amount: self.amount.0,
                    $date: self.$date.0,
                }))
            }
        }
    };
}

reference_amount_input!(
    /// Gives back committed money that will not be used (not more than is not yet served).
    ReleaseFundsInput, released_on, ReleaseFunds, ReleaseFunds
);
reference_amount_input!(
    /// Service fait: the service was delivered for this amount (not more than committed).
    RecordServiceDoneInput, done_on, RecordServiceDone, RecordServiceDone
);
reference_amount_input!(
    /// Paiement: this amount was paid (not more than the service done).
    RecordPaymentInput, paid_on, RecordPayment, RecordPayment
);

#[derive(InputObject)]
pub struct CloseConventionInput {
    pub convention_id: ID,
    pub closed_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

impl CloseConventionInput {
    pub fn command(&self) -> Result<dc::ConventionCommand> {
        Ok(dc::ConventionCommand::Close(dc::CloseConvention {
            convention_id: convention_id(&self.convention_id)?,
            closed_on: self.closed_on.0,
        }))
    }
}

#[derive(InputObject)]
pub struct RegisterStructureInput {
    pub name: String,
    /// 14 digits (spaces allowed), Luhn-checked (La Poste: digits adding up to a multiple of 5).
    pub siret: String,
    pub kind: StructureKind,
    /// INSEE code of the département of the structure's commune.
    pub departement: String,
    pub head_count: HeadCount,
    pub registered_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

impl RegisterStructureInput {
    pub fn command(&self) -> Result<domain::structure::StructureCommand> {
        use domain::structure as ds;
        Ok(ds::StructureCommand::Register(ds::RegisterStructure {
            name: self.name.clone(),
            siret: ds::Siret::parse(&self.siret).map_err(|e| bad_input("siret", e))?,
            kind: self.kind.into(),
            departement: departement(&self.departement, "departement")?,
            head_count: self.head_count.into(),
            registered_on: self.registered_on.0,
        }))
    }
}

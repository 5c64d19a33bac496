//! Mutations: one per command of the Convention aggregate. Each parses its input, hands
//! the command to the use cases (the one write path), waits briefly for the read models to show the result
//! (read-your-writes) and answers with the log position it wrote.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::DomainCode;
use crate::errors::command_error;
use crate::inputs::*;
use crate::types::{ConventionView, StructureView};
use async_graphql::{Context, ID, Object, Result};
use domain::convention::{Convention, ConventionCommand};
use domain::structure::{Structure, StructureId};
use domain::{Aggregate, CommandId, ConventionId};
use store::CommandOutcome;
use store::handler::stream_name;

/// What every mutation answers, flattened into its payload: the command's id, the log
/// position the answer reflects, and whether it was a retry. One shape, so that a payload
/// cannot forget or rename one of them.
#[derive(async_graphql::SimpleObject)]
pub struct Written {
    /// The command's idempotency key (given or generated).
    pub command_id: ID,
    /// Global log position of the last event written: the version of the truth this
    /// answer reflects.
    pub position: u64,
    /// True when the command id had already been applied: nothing new was written.
    pub duplicate: bool,
}

impl Written {
    pub fn new(command_id: CommandId, outcome: &CommandOutcome) -> Self {
        Self { command_id: ID(command_id.to_string()), position: outcome.position, duplicate: outcome.duplicate }
    }
}

/// What a command wrote.
pub struct CommandPayload {
    command_id: CommandId,
    convention_id: ConventionId,
    outcome: CommandOutcome,
}

#[Object]
impl CommandPayload {
    #[graphql(flatten)]
    async fn written(&self) -> Written {
        Written::new(self.command_id, &self.outcome)
    }
    /// The convention stream's version after the command.
    async fn version(&self) -> u64 {
        self.outcome.version
    }
    /// The convention as the read model shows it after this command.
    async fn convention(&self, ctx: &Context<'_>) -> Option<ConventionView> {
        let state = ctx.data_unchecked::<AppState>();
        state.budget.read(|v| v.conventions.get(&self.convention_id).cloned()).map(ConventionView)
    }
}

/// Runs one command as the calling principal: authorisation first (a refused caller
/// learns nothing about the input either), then the input, then the log; answers once the
/// read models show what was written.
async fn apply<A: Aggregate>(
    ctx: &Context<'_>,
    operation: Operation,
    command: impl FnOnce() -> Result<A::Command>,
    stream_id: impl FnOnce(&A::Command) -> String,
    fields: &CommandFields,
) -> Result<(CommandId, CommandOutcome)>
where
    A::Error: DomainCode,
    A::Command: 'static,
{
    let principal = require(ctx, operation)?;
    let command = command()?;
    let state = ctx.data_unchecked::<AppState>();
    let meta = fields.meta(&principal.actor())?;
    let stream = stream_name::<A>(stream_id(&command));
    let outcome = state.use_cases.execute::<A>(stream, command, meta.clone()).await.map_err(command_error)?;
    if !state.wait_for(outcome.position, state.read_your_writes_timeout).await {
        tracing::warn!(position = outcome.position, "read models lagging behind a command's answer");
    }
    Ok((meta.command_id, outcome))
}

async fn run(
    ctx: &Context<'_>,
    operation: Operation,
    command: impl FnOnce() -> Result<ConventionCommand>,
    fields: &CommandFields,
) -> Result<CommandPayload> {
    let mut convention_id = None;
    let (command_id, outcome) = apply::<Convention>(
        ctx,
        operation,
        command,
        |c| {
            convention_id = Some(c.convention_id());
            c.convention_id().to_string()
        },
        fields,
    )
    .await?;
    let convention_id = convention_id.expect("set while applying");
    Ok(CommandPayload { command_id, convention_id, outcome })
}

/// What `registerStructure` wrote.
pub struct StructurePayload {
    command_id: CommandId,
    structure_id: StructureId,
    outcome: CommandOutcome,
}

#[Object]
impl StructurePayload {
    #[graphql(flatten)]
    async fn written(&self) -> Written {
        Written::new(self.command_id, &self.outcome)
    }
    async fn structure(&self, ctx: &Context<'_>) -> Option<StructureView> {
        let state = ctx.data_unchecked::<AppState>();
        state.structures.read(|v| v.structures.get(&self.structure_id).cloned()).map(StructureView)
    }
}

#[derive(Default)]
pub struct ConventionMutation;

#[Object]
impl ConventionMutation {
    /// Signs a convention. Its code must be new; the funding shares must add up to the
    /// total exactly.
    async fn sign_convention(&self, ctx: &Context<'_>, input: SignConventionInput) -> Result<CommandPayload> {
        run(ctx, Operation::SignConvention, || input.command(), &input.command).await
    }

    /// Adds a budget line to a convention; the envelopes together never exceed the total.
    async fn allocate_envelope(&self, ctx: &Context<'_>, input: AllocateEnvelopeInput) -> Result<CommandPayload> {
        run(ctx, Operation::AllocateEnvelope, || input.command(), &input.command).await
    }

    /// Signs an avenant changing the total, the shares, the end date or envelope amounts.
    async fn sign_amendment(&self, ctx: &Context<'_>, input: SignAmendmentInput) -> Result<CommandPayload> {
        run(ctx, Operation::SignAmendment, || input.command(), &input.command).await
    }

    /// Engagement: reserves money on an envelope for a reference, never more than available.
    async fn commit_funds(&self, ctx: &Context<'_>, input: CommitFundsInput) -> Result<CommandPayload> {
        run(ctx, Operation::CommitFunds, || input.command(), &input.command).await
    }

    /// Gives back committed money that will not be used.
    async fn release_funds(&self, ctx: &Context<'_>, input: ReleaseFundsInput) -> Result<CommandPayload> {
        run(ctx, Operation::ReleaseFunds, || input.command(), &input.command).await
    }

    /// Service fait for a reference.
    async fn record_service_done(&self, ctx: &Context<'_>, input: RecordServiceDoneInput) -> Result<CommandPayload> {
        run(ctx, Operation::RecordServiceDone, || input.command(), &input.command).await
    }

    /// Paiement for a reference.
    async fn record_payment(&self, ctx: &Context<'_>, input: RecordPaymentInput) -> Result<CommandPayload> {
        run(ctx, Operation::RecordPayment, || input.command(), &input.command).await
    }

    /// Registers an employer structure; its id is derived from its SIRET, so a SIRET is
    /// registered once.
    async fn register_structure(&self, ctx: &Context<'_>, input: RegisterStructureInput) -> Result<StructurePayload> {
        let mut structure_id = None;
        let (command_id, outcome) = apply::<Structure>(
            ctx,
            Operation::RegisterStructure,
            || input.command(),
            |c| {
                structure_id = Some(c.structure_id());
                c.structure_id().to_string()
            },
            &input.command,
        )
        .await?;
        Ok(StructurePayload { command_id, structure_id: structure_id.expect("set while applying"), outcome })
    }

    /// Closes a convention with no open commitment left.
    async fn close_convention(&self, ctx: &Context<'_>, input: CloseConventionInput) -> Result<CommandPayload> {
        run(ctx, Operation::CloseConvention, || input.command(), &input.command).await
    }
}

/// Every mutation of the API.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    ConventionMutation,
    crate::purchases::PurchaseMutation,
    crate::programmes::ProgrammeMutation,
    crate::aidants::AidantsMutation,
    crate::claims::ClaimMutation,
    crate::measures::MeasureMutation,
    crate::disbursements::DisbursementMutation,
    crate::personal::PersonalMutation,
);

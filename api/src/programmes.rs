//! What the conventions buy, besides training purchases: Pix certification campaigns and
//! CCAS actions; and how a programme step's use case answers through GraphQL (`written`).

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{DomainCode, bad_input, step_error};
use crate::inputs::{CommandFields, convention_id};
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::Departement;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use domain::CommandId;
use domain::ccas::{CcasActionId, CcasActionRecorded, RecordCcasAction};
use domain::framework::CompetencyBlock;
use domain::pix::{CampaignId, PixCommand};
use domain::structure::{StructureId, StructureRegistered};
use projections::programmes::CampaignRecord;
use store::CommandOutcome;
use usecases::StepError;

/// Answers a use case the programmes call: its failure mapped once to a GraphQL error,
/// then, once the read models show what it wrote (read-your-writes), its outcome.
pub(crate) async fn written<E: DomainCode>(
    state: &AppState,
    command_id: CommandId,
    result: std::result::Result<CommandOutcome, StepError<E>>,
) -> Result<(CommandId, CommandOutcome)> {
    let outcome = result.map_err(step_error)?;
    if !state.wait_for(outcome.position, state.read_your_writes_timeout).await {
        tracing::warn!(position = outcome.position, "read models lagging behind a command's answer");
    }
    Ok((command_id, outcome))
}

/// A registered structure, from the log (a decision never reads a read model).
pub(crate) async fn structure(state: &AppState, id: &ID) -> Result<StructureRegistered> {
    let id = StructureId::parse(id).map_err(|e| bad_input("structureId", e))?;
    state.use_cases.structure::<domain::structure::StructureError>(id).await.map_err(step_error)
}

fn blocks(numbers: &[u8]) -> Result<Vec<CompetencyBlock>> {
    numbers
        .iter()
        .map(|n| {
            CompetencyBlock::from_number(*n)
                .ok_or_else(|| bad_input("blocks", format!("{n} is not a competency-framework block (1 to 9)")))
        })
        .collect()
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::pix::PixPublic")]
pub enum PixPublic {
    ConseillersEtMediateurs,
    AidantsNumeriques,
}

#[derive(SimpleObject)]
pub struct PixCertification {
    /// The candidate's pseudonymous reference.
    pub candidate: String,
    pub departement: Departement,
    /// Out of 1 024 pix.
    pub score: u16,
    pub certified_on: DateScalar,
}

/// A Pix certification campaign.
pub struct CampaignView(pub CampaignRecord);

#[Object(name = "PixCampaign")]
impl CampaignView {
    async fn id(&self) -> ID {
        ID(self.0.id.0.to_string())
    }
    async fn convention_id(&self) -> ID {
        ID(self.0.convention_id.to_string())
    }
    async fn public(&self) -> PixPublic {
        self.0.public.into()
    }
    /// Certifications bought.
    async fn bought(&self) -> u32 {
        self.0.bought
    }
    /// Certifications recorded (each consumes one).
    async fn used(&self) -> u32 {
        self.0.certifications.len() as u32
    }
    async fn unit_price(&self) -> MoneyScalar {
        self.0.unit_price.into()
    }
    async fn total(&self) -> MoneyScalar {
        self.0.total.into()
    }
    /// Mean score of the certifications recorded, to the pix (rounded down); null before any.
    async fn mean_score(&self) -> Option<u32> {
        let n = self.0.certifications.len() as u32;
        (n > 0).then(|| self.0.certifications.iter().map(|c| u32::from(c.score)).sum::<u32>() / n)
    }
    async fn opened_on(&self) -> DateScalar {
        self.0.opened_on.into()
    }
    async fn certifications(&self, ctx: &Context<'_>) -> Vec<PixCertification> {
        let state = ctx.data_unchecked::<AppState>();
        self.0
            .certifications
            .iter()
            .map(|c| PixCertification {
                candidate: crate::personal::shown(state, &c.candidate),
                departement: (&c.departement).into(),
                score: c.score,
                certified_on: c.certified_on.into(),
            })
            .collect()
    }
}

/// A CCAS training action.
pub struct CcasActionView(pub CcasActionRecorded);

#[Object(name = "CcasAction")]
impl CcasActionView {
    async fn id(&self) -> ID {
        ID(self.0.action_id.0.to_string())
    }
    async fn convention_id(&self) -> ID {
        ID(self.0.convention_id.to_string())
    }
    async fn structure_id(&self) -> ID {
        ID(self.0.structure_id.to_string())
    }
    async fn departement(&self) -> Departement {
        (&self.0.departement).into()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn agents(&self) -> u32 {
        self.0.agents
    }
    async fn managers(&self) -> u32 {
        self.0.managers
    }
    async fn blocks(&self) -> Vec<u8> {
        self.0.blocks.iter().map(|b| b.number()).collect()
    }
    async fn cost(&self) -> MoneyScalar {
        self.0.cost.into()
    }
    async fn held_on(&self) -> DateScalar {
        self.0.held_on.into()
    }
}

#[derive(InputObject)]
pub struct OpenPixCampaignInput {
    /// The Pix convention.
    pub convention_id: ID,
    pub public: PixPublic,
    pub certifications: u32,
    pub unit_price: MoneyScalar,
    pub opened_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordPixCertificationInput {
    pub campaign_id: ID,
    /// A pseudonymous reference of the person certified (no name, no e-mail).
    pub candidate: String,
    /// The candidate's structure (registered).
    pub structure_id: ID,
    /// Out of 1 024 pix.
    pub score: u16,
    pub certified_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RecordCcasActionInput {
    /// The UNCCAS convention.
    pub convention_id: ID,
    /// A registered CCAS or CIAS.
    pub structure_id: ID,
    pub title: String,
    pub agents: u32,
    pub managers: u32,
    /// Competency-framework blocks covered, 1 to 9: at least one.
    pub blocks: Vec<u8>,
    pub cost: MoneyScalar,
    pub held_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// What a programme step wrote.
#[derive(SimpleObject)]
pub struct ProgrammePayload {
    #[graphql(flatten)]
    pub written: crate::mutation::Written,
    /// The campaign, for Pix steps.
    pub campaign: Option<CampaignView>,
    /// The action, for CCAS steps.
    pub ccas_action: Option<CcasActionView>,
}

fn payload(command_id: CommandId, outcome: &CommandOutcome) -> ProgrammePayload {
    ProgrammePayload { written: crate::mutation::Written::new(command_id, outcome), campaign: None, ccas_action: None }
}

#[derive(Default)]
pub struct ProgrammeMutation;

#[Object]
impl ProgrammeMutation {
    /// Opens a Pix campaign: its certifications times the unit price are committed on
    /// the convention's certifications envelope.
    async fn open_pix_campaign(&self, ctx: &Context<'_>, input: OpenPixCampaignInput) -> Result<ProgrammePayload> {
        let principal = require(ctx, Operation::OpenPixCampaign)?;
        let state = ctx.data_unchecked::<AppState>();
        let convention = convention_id(&input.convention_id)?;
        let meta = input.command.meta(&principal.actor())?;
        let campaign_id = CampaignId::for_command(meta.command_id);
        let command = PixCommand::OpenCampaign {
            campaign_id,
            convention_id: convention,
            public: input.public.into(),
            certifications: input.certifications,
            unit_price: input.unit_price.0,
            opened_on: input.opened_on.0,
        };
        let result = state.use_cases.pix(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        let mut answer = payload(command_id, &outcome);
        answer.campaign = state.programmes.read(|v| v.campaigns.get(&campaign_id).cloned()).map(CampaignView);
        Ok(answer)
    }

    /// Records one certification (score out of 1 024): consumes one of the campaign's,
    /// no more than bought, and is service done on the convention.
    async fn record_pix_certification(
        &self,
        ctx: &Context<'_>,
        input: RecordPixCertificationInput,
    ) -> Result<ProgrammePayload> {
        let principal = require(ctx, Operation::RecordPixCertification)?;
        let state = ctx.data_unchecked::<AppState>();
        let campaign_id = CampaignId::parse(&input.campaign_id).map_err(|e| bad_input("campaignId", e))?;
        let structure = structure(state, &input.structure_id).await?;
        let scope = campaign_id.0.to_string();
        let candidate =
            crate::personal::pseudonym(state, store::PersonKind::Candidate, &scope, &input.candidate, "candidate")?;
        let command = PixCommand::RecordCertification {
            campaign_id,
            candidate,
            structure_id: structure.structure_id,
            departement: structure.departement.clone(),
            score: input.score,
            certified_on: input.certified_on.0,
        };
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.pix(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        let mut answer = payload(command_id, &outcome);
        answer.campaign = state.programmes.read(|v| v.campaigns.get(&campaign_id).cloned()).map(CampaignView);
        Ok(answer)
    }

    /// Records a CCAS training action held by a CCAS or CIAS: its cost is committed on
    /// the convention's CCAS envelope and, the action being held, is service done.
    async fn record_ccas_action(&self, ctx: &Context<'_>, input: RecordCcasActionInput) -> Result<ProgrammePayload> {
        let principal = require(ctx, Operation::RecordCcasAction)?;
        let state = ctx.data_unchecked::<AppState>();
        let convention = convention_id(&input.convention_id)?;
        let structure = structure(state, &input.structure_id).await?;
        let meta = input.command.meta(&principal.actor())?;
        let action_id = CcasActionId::for_command(meta.command_id);
        let command = RecordCcasAction {
            action_id,
            convention_id: convention,
            structure_id: structure.structure_id,
            structure_kind: structure.kind,
            departement: structure.departement.clone(),
            title: input.title.clone(),
            agents: input.agents,
            managers: input.managers,
            blocks: blocks(&input.blocks)?,
            cost: input.cost.0,
            held_on: input.held_on.0,
        };
        let result = state.use_cases.ccas(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        let mut answer = payload(command_id, &outcome);
        answer.ccas_action = state.programmes.read(|v| v.ccas_actions.get(&action_id).cloned()).map(CcasActionView);
        Ok(answer)
    }
}

#[derive(Default)]
pub struct ProgrammeQuery;

#[Object]
impl ProgrammeQuery {
    /// Pix campaigns in opening order.
    async fn pix_campaigns(&self, ctx: &Context<'_>) -> Result<Vec<CampaignView>> {
        require(ctx, Operation::PixCampaigns)?;
        let state = ctx.data_unchecked::<AppState>();
        let mut all: Vec<_> = state.programmes.read(|v| v.campaigns.values().cloned().collect());
        all.sort_by_key(|c: &CampaignRecord| (c.opened_on, c.id));
        Ok(all.into_iter().map(CampaignView).collect())
    }

    /// CCAS actions in date order; a `structure` token sees only its own.
    async fn ccas_actions(&self, ctx: &Context<'_>) -> Result<Vec<CcasActionView>> {
        let principal = require(ctx, Operation::CcasActions)?;
        let state = ctx.data_unchecked::<AppState>();
        let mut all: Vec<_> = state.programmes.read(|v| {
            v.ccas_actions.values().filter(|a| principal.sees_structure(a.structure_id.0)).cloned().collect()
        });
        all.sort_by_key(|a: &CcasActionRecorded| (a.held_on, a.action_id));
        Ok(all.into_iter().map(CcasActionView).collect())
    }
}

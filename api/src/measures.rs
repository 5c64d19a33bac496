//! The register of the plan's measures through GraphQL: ANCT registers the report's
//! measures, launches them and marks them done; those who follow the plan read it with
//! the figures of the convention that shows each measure's progress.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{DomainCode, codes};
use crate::inputs::CommandFields;
use crate::programmes::written;
use crate::scalars::DateScalar;
use crate::types::ConventionView;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use domain::ConventionId;
use domain::measure::{Measure, MeasureCommand, MeasureError, RegisterMeasure};
use projections::programmes::MeasureRecord;

impl DomainCode for MeasureError {
    fn code(&self) -> &'static str {
        match self {
            MeasureError::AlreadyRegistered => codes::CONFLICT,
            MeasureError::NotRegistered => codes::NOT_FOUND,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::measure::Public")]
#[allow(clippy::enum_variant_names)] // the plan's own names of its publics
pub enum Public {
    /// Les médiateurs numériques.
    Mediators,
    /// Les travailleurs sociaux.
    SocialWorkers,
    /// Les agents publics d'accueil, d'information, d'orientation et d'appui aux démarches.
    PublicAgents,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::measure::MeasureStatus")]
pub enum MeasureStatus {
    Proposed,
    Launched,
    Done,
}

/// A measure of the plan's report, where it stands.
pub struct MeasureView(pub MeasureRecord);

#[Object(name = "Measure")]
impl MeasureView {
    /// `med-1.2`, `ts-3.1`, `agents-2.3`: the public and the report's number.
    async fn id(&self) -> String {
        format!("{}-{}", self.0.measure.public.prefix(), self.0.measure.number)
    }
    async fn public(&self) -> Public {
        self.0.measure.public.into()
    }
    /// The axis: the number's first part (`1` for `1.2`).
    async fn axis(&self) -> u32 {
        self.0.measure.number.split('.').next().and_then(|a| a.parse().ok()).unwrap_or(0)
    }
    async fn number(&self) -> &str {
        &self.0.measure.number
    }
    async fn title(&self) -> &str {
        &self.0.measure.title
    }
    async fn lead(&self) -> &str {
        &self.0.measure.lead
    }
    async fn status(&self) -> MeasureStatus {
        self.0.status().into()
    }
    async fn registered_on(&self) -> DateScalar {
        self.0.measure.registered_on.into()
    }
    async fn launched_on(&self) -> Option<DateScalar> {
        self.0.launched_on.map(Into::into)
    }
    async fn done_on(&self) -> Option<DateScalar> {
        self.0.done_on.map(Into::into)
    }
    async fn convention_code(&self) -> Option<&str> {
        self.0.measure.convention_code.as_deref()
    }
    /// The convention whose figures show the measure's progress (its budget and targets).
    async fn convention(&self, ctx: &Context<'_>) -> Option<ConventionView> {
        let code = self.0.measure.convention_code.as_deref()?;
        let state = ctx.data_unchecked::<AppState>();
        state.budget.read(|v| v.conventions.get(&ConventionId::for_code(code)).cloned()).map(ConventionView)
    }
}

#[derive(InputObject)]
pub struct RegisterMeasureInput {
    pub public: Public,
    /// The report's number, `1.2`.
    pub number: String,
    pub title: String,
    /// Who leads it (`ANCT avec Uniformation`).
    pub lead: String,
    /// The convention whose figures show its progress, if any.
    pub convention_code: Option<String>,
    pub registered_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct MeasureStepInput {
    /// `med-1.2`, as `Measure.id`.
    pub measure_id: String,
    /// The day it was launched, or done.
    pub on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// What a register step wrote.
#[derive(SimpleObject)]
pub struct MeasurePayload {
    #[graphql(flatten)]
    pub written: crate::mutation::Written,
    pub measure: Option<MeasureView>,
}

/// `med-1.2` → the measure's stream.
fn stream_of(id: &str) -> Result<String> {
    let (prefix, number) = id.trim().rsplit_once('-').ok_or_else(|| {
        crate::errors::bad_input("measureId", format!("`{id}` is not a measure id: expected e.g. med-1.2"))
    })?;
    let public = match prefix {
        "med" => domain::measure::Public::Mediators,
        "ts" => domain::measure::Public::SocialWorkers,
        "agents" => domain::measure::Public::PublicAgents,
        _ => {
            return Err(crate::errors::bad_input(
                "measureId",
                format!("`{id}` is not a measure id: it starts with med-, ts- or agents-"),
            ));
        }
    };
    Ok(Measure::stream(public, number))
}

async fn step(
    ctx: &Context<'_>,
    operation: Operation,
    stream: String,
    fields: CommandFields,
    command: MeasureCommand,
) -> Result<MeasurePayload> {
    let principal = require(ctx, operation)?;
    let state = ctx.data_unchecked::<AppState>();
    let meta = fields.meta(&principal.actor())?;
    let result = state.use_cases.plain::<Measure>(stream.clone(), command, meta.clone()).await;
    let (command_id, outcome) = written(state, meta.command_id, result).await?;
    Ok(MeasurePayload {
        written: crate::mutation::Written::new(command_id, &outcome),
        measure: state.programmes.read(|v| v.measures.get(&stream).cloned()).map(MeasureView),
    })
}

#[derive(Default)]
pub struct MeasureMutation;

#[Object]
impl MeasureMutation {
    /// Adds a measure of the plan's report to the register (ANCT), proposed.
    async fn register_measure(&self, ctx: &Context<'_>, input: RegisterMeasureInput) -> Result<MeasurePayload> {
        let public: domain::measure::Public = input.public.into();
        let stream = Measure::stream(public, &input.number);
        let command = MeasureCommand::Register(RegisterMeasure {
            public,
            number: input.number,
            title: input.title,
            lead: input.lead,
            convention_code: input.convention_code,
            registered_on: input.registered_on.0,
        });
        step(ctx, Operation::RegisterMeasure, stream, input.command, command).await
    }

    /// Records that a measure was launched (not before it was registered).
    async fn launch_measure(&self, ctx: &Context<'_>, input: MeasureStepInput) -> Result<MeasurePayload> {
        let stream = stream_of(&input.measure_id)?;
        step(ctx, Operation::LaunchMeasure, stream, input.command, MeasureCommand::Launch { launched_on: input.on.0 })
            .await
    }

    /// Records that a launched measure is done (not before its launch).
    async fn complete_measure(&self, ctx: &Context<'_>, input: MeasureStepInput) -> Result<MeasurePayload> {
        let stream = stream_of(&input.measure_id)?;
        step(ctx, Operation::CompleteMeasure, stream, input.command, MeasureCommand::Complete { done_on: input.on.0 })
            .await
    }
}

#[derive(Default)]
pub struct MeasureQuery;

#[Object]
impl MeasureQuery {
    /// The register of the plan's measures, by public then number.
    async fn measures(&self, ctx: &Context<'_>) -> Result<Vec<MeasureView>> {
        require(ctx, Operation::Measures)?;
        let state = ctx.data_unchecked::<AppState>();
        let mut all: Vec<MeasureRecord> = state.programmes.read(|v| v.measures.values().cloned().collect());
        let key = |n: &str| -> (u32, u32) {
            let mut parts = n.split('.').map(|p| p.parse().unwrap_or(0));
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        };
        all.sort_by_key(|m| (m.measure.public, key(&m.measure.number)));
        Ok(all.into_iter().map(MeasureView).collect())
    }
}

//! Aidants Connect through GraphQL: training sessions and the habilitation lifecycle.
//! Registering to a session first reserves a seat on the session (its capacity is a rule
//! of its own aggregate); completing the training charges the seat's cost to the
//! convention's Aidants Connect envelope.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{DomainCode, bad_input, codes};
use crate::inputs::{CommandFields, convention_id};
use crate::programmes::{structure, written};
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::Departement;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use domain::CommandId;
use domain::aidants::{
    HabilitationCommand, HabilitationError, HabilitationId, SessionCommand, SessionError, SessionId, TrainingSession,
};
use projections::programmes::{HabilitationRecord, SessionRecord};
use store::CommandOutcome;
use store::handler::stream_name;

impl DomainCode for HabilitationError {
    fn code(&self) -> &'static str {
        match self {
            HabilitationError::NotFound => codes::NOT_FOUND,
            HabilitationError::AlreadyActive { .. } => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for SessionError {
    fn code(&self) -> &'static str {
        match self {
            SessionError::NotFound => codes::NOT_FOUND,
            SessionError::AlreadyOpen => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::aidants::HabilitationState")]
pub enum HabilitationStatus {
    Requested,
    EligibilityValidated,
    RegisteredToTraining,
    TrainingCompleted,
    Habilitated,
    Revoked,
    Refused,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::aidants::Means")]
pub enum HabilitationMeans {
    Card,
    App,
}

#[derive(SimpleObject)]
#[graphql(name = "AidantsConnectSession")]
pub struct SessionView {
    pub id: ID,
    pub convention_id: ID,
    pub capacity: u32,
    pub seats_taken: u32,
    pub seat_cost: MoneyScalar,
    pub held_on: DateScalar,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        SessionView {
            id: ID(s.id.0.to_string()),
            convention_id: ID(s.convention_id.to_string()),
            capacity: s.capacity,
            seats_taken: s.seats,
            seat_cost: s.seat_cost.into(),
            held_on: s.held_on.into(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Habilitation")]
pub struct HabilitationView {
    pub id: ID,
    pub structure_id: ID,
    pub departement: Departement,
    /// The aidant's pseudonymous reference in the structure.
    pub aidant: String,
    /// 1 for the first request, 2 after a revocation and a new request…
    pub cycle: u32,
    pub status: HabilitationStatus,
    pub session_id: Option<ID>,
    pub means: Option<HabilitationMeans>,
    pub requested_on: DateScalar,
    pub habilitated_on: Option<DateScalar>,
    /// Why it was refused, cancelled or revoked.
    pub reason: Option<String>,
}

/// The view with the aidant's reference in place of the id the log holds.
fn shown(state: &AppState, mut view: HabilitationView) -> HabilitationView {
    view.aidant = crate::personal::shown(state, &view.aidant);
    view
}

impl From<HabilitationRecord> for HabilitationView {
    fn from(h: HabilitationRecord) -> Self {
        HabilitationView {
            id: ID(h.id.0.to_string()),
            structure_id: ID(h.structure_id.to_string()),
            departement: (&h.departement).into(),
            aidant: h.aidant,
            cycle: h.cycle,
            status: h.state.into(),
            session_id: h.session.map(|s| ID(s.0.to_string())),
            means: h.means.map(Into::into),
            requested_on: h.requested_on.into(),
            habilitated_on: h.habilitated_on.map(Into::into),
            reason: h.reason,
        }
    }
}

#[derive(InputObject)]
pub struct OpenAidantsConnectSessionInput {
    /// The Aidants Connect training convention.
    pub convention_id: ID,
    pub capacity: u32,
    /// Cost of one seat (about 125 € in the plan).
    pub seat_cost: MoneyScalar,
    pub held_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RequestHabilitationInput {
    /// The aidant's structure (a `structure` token: its own).
    pub structure_id: ID,
    /// A pseudonymous reference of the aidant in the structure (no name, no e-mail).
    pub aidant: String,
    pub requested_on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

/// A step that names only the habilitation and a date (and, for some, a reason or means).
#[derive(InputObject)]
pub struct HabilitationStepInput {
    pub habilitation_id: ID,
    pub on: DateScalar,
    /// Required to refuse, cancel or revoke.
    pub reason: Option<String>,
    /// Required to habilitate: CARD or APP.
    pub means: Option<HabilitationMeans>,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(InputObject)]
pub struct RegisterToSessionInput {
    pub habilitation_id: ID,
    pub session_id: ID,
    pub on: DateScalar,
    #[graphql(flatten)]
    pub command: CommandFields,
}

#[derive(SimpleObject)]
pub struct AidantsConnectPayload {
    #[graphql(flatten)]
    pub written: crate::mutation::Written,
    pub habilitation: Option<HabilitationView>,
    pub session: Option<SessionView>,
}

fn habilitation_id(id: &ID) -> Result<HabilitationId> {
    HabilitationId::parse(id).map_err(|e| bad_input("habilitationId", e))
}

fn answer(
    state: &AppState,
    command_id: CommandId,
    outcome: &CommandOutcome,
    h: Option<HabilitationId>,
    s: Option<SessionId>,
) -> AidantsConnectPayload {
    AidantsConnectPayload {
        written: crate::mutation::Written::new(command_id, outcome),
        habilitation: h
            .and_then(|h| state.programmes.read(|v| v.habilitations.get(&h).cloned()))
            .map(|h| shown(state, h.into())),
        session: s.and_then(|s| state.programmes.read(|v| v.sessions.get(&s).cloned())).map(Into::into),
    }
}

#[derive(Default)]
pub struct AidantsMutation;

impl AidantsMutation {
    async fn habilitation_step(
        ctx: &Context<'_>,
        operation: Operation,
        input: &HabilitationStepInput,
        make: impl FnOnce(HabilitationId) -> Result<HabilitationCommand>,
    ) -> Result<AidantsConnectPayload> {
        let principal = require(ctx, operation)?;
        let state = ctx.data_unchecked::<AppState>();
        let id = habilitation_id(&input.habilitation_id)?;
        let command = make(id)?;
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.habilitation(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        Ok(answer(state, command_id, &outcome, Some(id), None))
    }
}

fn needed(value: &Option<String>, field: &str) -> Result<String> {
    value.clone().ok_or_else(|| bad_input(field, format!("{field} is required for this step")))
}

#[Object]
impl AidantsMutation {
    /// Opens an Aidants Connect training session with a capacity and a seat cost.
    async fn open_aidants_connect_session(
        &self,
        ctx: &Context<'_>,
        input: OpenAidantsConnectSessionInput,
    ) -> Result<AidantsConnectPayload> {
        let principal = require(ctx, Operation::OpenAidantsConnectSession)?;
        let state = ctx.data_unchecked::<AppState>();
        let meta = input.command.meta(&principal.actor())?;
        let session_id = SessionId::for_command(meta.command_id);
        let command = SessionCommand::Open {
            session_id,
            convention_id: convention_id(&input.convention_id)?,
            capacity: input.capacity,
            seat_cost: input.seat_cost.0,
            held_on: input.held_on.0,
        };
        let stream = stream_name::<TrainingSession>(session_id.0);
        let result = state.use_cases.plain::<TrainingSession>(stream, command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        Ok(answer(state, command_id, &outcome, None, Some(session_id)))
    }

    /// Requests a habilitation for an aidant of a structure: one active at a time.
    async fn request_habilitation(
        &self,
        ctx: &Context<'_>,
        input: RequestHabilitationInput,
    ) -> Result<AidantsConnectPayload> {
        let principal = require(ctx, Operation::RequestHabilitation)?;
        let state = ctx.data_unchecked::<AppState>();
        let structure = structure(state, &input.structure_id).await?;
        if !principal.sees_structure(structure.structure_id.0) {
            // Another structure's: answered as if it did not exist.
            return Err(bad_input("structureId", format!("no structure {} is registered", structure.structure_id)));
        }
        // The log records the aidant's opaque id; the reference stays in the directory.
        let scope = structure.structure_id.0.to_string();
        let aidant = crate::personal::pseudonym(state, store::PersonKind::Aidant, &scope, &input.aidant, "aidant")?;
        let id = HabilitationId::of(structure.structure_id, &aidant);
        let command = HabilitationCommand::Request {
            habilitation_id: id,
            structure_id: structure.structure_id,
            departement: structure.departement.clone(),
            aidant,
            on: input.requested_on.0,
        };
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.habilitation(command, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        Ok(answer(state, command_id, &outcome, Some(id), None))
    }

    async fn validate_eligibility(
        &self,
        ctx: &Context<'_>,
        input: HabilitationStepInput,
    ) -> Result<AidantsConnectPayload> {
        let on = input.on.0;
        Self::habilitation_step(ctx, Operation::ValidateEligibility, &input, |id| {
            Ok(HabilitationCommand::ValidateEligibility { habilitation_id: id, on })
        })
        .await
    }

    async fn refuse_habilitation(
        &self,
        ctx: &Context<'_>,
        input: HabilitationStepInput,
    ) -> Result<AidantsConnectPayload> {
        let (on, reason) = (input.on.0, needed(&input.reason, "reason")?);
        Self::habilitation_step(ctx, Operation::RefuseHabilitation, &input, |id| {
            Ok(HabilitationCommand::Refuse { habilitation_id: id, reason, on })
        })
        .await
    }

    async fn cancel_habilitation(
        &self,
        ctx: &Context<'_>,
        input: HabilitationStepInput,
    ) -> Result<AidantsConnectPayload> {
        let (on, reason) = (input.on.0, needed(&input.reason, "reason")?);
        Self::habilitation_step(ctx, Operation::CancelHabilitation, &input, |id| {
            Ok(HabilitationCommand::Cancel { habilitation_id: id, reason, on })
        })
        .await
    }

    /// Registers a validated aidant to a session: reserves a seat (within its capacity).
    async fn register_to_session(
        &self,
        ctx: &Context<'_>,
        input: RegisterToSessionInput,
    ) -> Result<AidantsConnectPayload> {
        let principal = require(ctx, Operation::RegisterToSession)?;
        let state = ctx.data_unchecked::<AppState>();
        let id = habilitation_id(&input.habilitation_id)?;
        let session_id = SessionId::parse(&input.session_id).map_err(|e| bad_input("sessionId", e))?;
        let meta = input.command.meta(&principal.actor())?;
        let result = state.use_cases.register_to_session(id, session_id, input.on.0, meta.clone()).await;
        let (command_id, outcome) = written(state, meta.command_id, result).await?;
        Ok(answer(state, command_id, &outcome, Some(id), Some(session_id)))
    }

    /// Marks the training completed: charges the seat to the Aidants Connect envelope.
    async fn complete_training(
        &self,
        ctx: &Context<'_>,
        input: HabilitationStepInput,
    ) -> Result<AidantsConnectPayload> {
        let on = input.on.0;
        Self::habilitation_step(ctx, Operation::CompleteTraining, &input, |id| {
            Ok(HabilitationCommand::CompleteTraining { habilitation_id: id, on })
        })
        .await
    }

    /// Habilitates a trained aidant (card or app activated): no completed training, no habilitation.
    async fn habilitate(&self, ctx: &Context<'_>, input: HabilitationStepInput) -> Result<AidantsConnectPayload> {
        let on = input.on.0;
        let means = input.means.ok_or_else(|| bad_input("means", "means (CARD or APP) is required to habilitate"))?;
        Self::habilitation_step(ctx, Operation::Habilitate, &input, |id| {
            Ok(HabilitationCommand::Habilitate { habilitation_id: id, means: means.into(), on })
        })
        .await
    }

    async fn revoke_habilitation(
        &self,
        ctx: &Context<'_>,
        input: HabilitationStepInput,
    ) -> Result<AidantsConnectPayload> {
        let (on, reason) = (input.on.0, needed(&input.reason, "reason")?);
        Self::habilitation_step(ctx, Operation::RevokeHabilitation, &input, |id| {
            Ok(HabilitationCommand::Revoke { habilitation_id: id, reason, on })
        })
        .await
    }
}

#[derive(Default)]
pub struct AidantsQuery;

#[Object]
impl AidantsQuery {
    /// Aidants Connect training sessions, by date.
    async fn aidants_connect_sessions(&self, ctx: &Context<'_>) -> Result<Vec<SessionView>> {
        require(ctx, Operation::AidantsConnectSessions)?;
        let state = ctx.data_unchecked::<AppState>();
        let mut all: Vec<SessionRecord> = state.programmes.read(|v| v.sessions.values().cloned().collect());
        all.sort_by_key(|s| (s.held_on, s.id));
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Habilitations, optionally of one structure or in one status; a `structure` token
    /// sees only its own.
    async fn habilitations(
        &self,
        ctx: &Context<'_>,
        structure_id: Option<ID>,
        status: Option<HabilitationStatus>,
    ) -> Result<Vec<HabilitationView>> {
        let principal = require(ctx, Operation::Habilitations)?;
        let structure = structure_id
            .map(|id| domain::structure::StructureId::parse(&id).map_err(|e| bad_input("structureId", e)))
            .transpose()?;
        let state = ctx.data_unchecked::<AppState>();
        let all: Vec<HabilitationRecord> = state.programmes.read(|v| {
            v.habilitations
                .values()
                .filter(|h| principal.sees_structure(h.structure_id.0))
                .filter(|h| structure.is_none_or(|s| h.structure_id == s))
                .filter(|h| status.is_none_or(|s| HabilitationStatus::from(h.state) == s))
                .cloned()
                .collect()
        });
        // In the order of the references people know, not of the ids the log holds.
        let mut views: Vec<HabilitationView> = all.into_iter().map(|h| shown(state, h.into())).collect();
        views.sort_by(|a, b| (a.requested_on.0, &a.aidant).cmp(&(b.requested_on.0, &b.aidant)));
        Ok(views)
    }
}

//! Queries over the read models.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::bad_input;
use crate::inputs::convention_id;
use crate::types::{ConventionView, StructureView};
use async_graphql::{Context, ID, Object, Result};
use domain::ConventionId;

#[derive(Default)]
pub struct CoreQuery;

/// Who is calling: the page says who is logged in.
#[derive(async_graphql::SimpleObject)]
pub struct Me {
    /// `anct`, `opco`, `structure`, `copil` or `auditor`.
    pub role: String,
    /// The label the token was created with (`tracker token create --label`).
    pub label: String,
}

#[Object]
impl CoreQuery {
    /// The caller's role and token label; every role may ask.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let principal = ctx.data::<crate::auth::Principal>()?;
        Ok(Me { role: principal.role.name().to_string(), label: principal.label.clone() })
    }

    /// Every convention with its budget, in code order.
    async fn conventions(&self, ctx: &Context<'_>) -> Result<Vec<ConventionView>> {
        require(ctx, Operation::Conventions)?;
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.budget.read(|v| v.list().into_iter().cloned().map(ConventionView).collect()))
    }

    /// One convention, by id or by code (exactly one of them); null when none matches.
    async fn convention(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        code: Option<String>,
    ) -> Result<Option<ConventionView>> {
        require(ctx, Operation::Convention)?;
        let id = match (id, code) {
            (Some(id), None) => convention_id(&id)?,
            (None, Some(code)) => ConventionId::for_code(&code),
            _ => return Err(bad_input("id", "give exactly one of `id` or `code`")),
        };
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.budget.read(|v| v.conventions.get(&id).cloned()).map(ConventionView))
    }

    /// Employer structures in name order, optionally of one département (INSEE code). A
    /// `structure` token sees only its own.
    async fn structures(&self, ctx: &Context<'_>, departement: Option<String>) -> Result<Vec<StructureView>> {
        let principal = require(ctx, Operation::Structures)?;
        if let Some(d) = &departement {
            domain::DepartementCode::parse(d).map_err(|e| bad_input("departement", e))?;
        }
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.structures.read(|v| {
            v.list(departement.as_deref())
                .into_iter()
                .filter(|s| principal.sees_structure(s.structure_id.0))
                .cloned()
                .map(StructureView)
                .collect()
        }))
    }

    /// One structure; null when none has this id, or when it is not the caller's own
    /// (for a `structure` token): the same answer, so nothing leaks.
    async fn structure(&self, ctx: &Context<'_>, id: ID) -> Result<Option<StructureView>> {
        let principal = require(ctx, Operation::Structure)?;
        let id = domain::structure::StructureId::parse(&id).map_err(|e| bad_input("id", e))?;
        if !principal.sees_structure(id.0) {
            return Ok(None);
        }
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.structures.read(|v| v.structures.get(&id).cloned()).map(StructureView))
    }
}

/// Every query of the API.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    CoreQuery,
    crate::purchases::PurchaseQuery,
    crate::programmes::ProgrammeQuery,
    crate::aidants::AidantsQuery,
    crate::claims::ClaimQuery,
    crate::dashboard::DashboardQuery,
    crate::report::ReportQuery,
    crate::measures::MeasureQuery,
    crate::disbursements::DisbursementQuery,
);

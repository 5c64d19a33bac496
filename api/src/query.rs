//! Queries over the read models.

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::bad_input;
use crate::inputs::convention_id;
use crate::types::ConventionView;
use async_graphql::{Context, ID, Object, Result};
use domain::ConventionId;

pub struct Query;

#[Object]
impl Query {
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
}

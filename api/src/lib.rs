//! The GraphQL API of Convention Tracker: the schema (transport-free) and the few poem
//! routes around it (`/graphql`, GraphiQL at `/`, `/health`).
//!
//! Resolvers never decide anything: mutations turn their input into a domain command and
//! hand it to the command handler; queries read the projections. Every error leaves with
//! an `extensions.code` and never with internals (SQL, paths, stack traces).

mod errors;
mod graphiql;
mod inputs;
mod mutation;
mod query;
mod scalars;
mod types;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema};
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Route, get, handler, post};
use projections::{BudgetView, Runner};
use std::sync::Arc;
use std::time::Duration;
use store::EventStore;

pub use errors::codes;
pub use scalars::{DateScalar, MoneyScalar};

/// Largest query nesting accepted: deep enough for every real query and for GraphiQL's
/// introspection (its type references nest about 13 deep), shallow enough to refuse
/// abusive ones cheaply.
pub const MAX_DEPTH: usize = 20;
/// Largest query complexity (fields counted) accepted.
pub const MAX_COMPLEXITY: usize = 5_000;

/// What resolvers need: the log and the read models.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub budget: Arc<Runner<BudgetView>>,
    /// How long a mutation waits for the read models to show what it wrote.
    pub read_your_writes_timeout: Duration,
}

impl AppState {
    /// Starts the read models on this log.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        let budget = Runner::spawn(store.clone());
        Self { store, budget, read_your_writes_timeout: Duration::from_secs(2) }
    }
}

/// Who sends the request. Until tokens exist, the client names itself in `X-Actor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(pub String);

pub type TrackerSchema = Schema<query::Query, mutation::Mutation, EmptySubscription>;

/// The one place the schema is built.
pub fn schema(state: AppState) -> TrackerSchema {
    Schema::build(query::Query, mutation::Mutation, EmptySubscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema's SDL with fields, arguments and enum items sorted, for review and snapshots.
pub fn sdl(schema: &TrackerSchema) -> String {
    schema.sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_arguments().sorted_enum_items())
}

/// Executes a request as every transport must: with its actor, and with every error
/// given a code.
pub async fn execute(schema: &TrackerSchema, request: async_graphql::Request, actor: Actor) -> async_graphql::Response {
    let mut response = schema.execute(request.data(actor)).await;
    errors::ensure_codes(&mut response.errors);
    response
}

#[handler]
async fn graphql_endpoint(
    schema: Data<&TrackerSchema>,
    headers: &poem::http::HeaderMap,
    request: async_graphql_poem::GraphQLRequest,
) -> async_graphql_poem::GraphQLResponse {
    let actor = headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or("anonymous");
    execute(&schema, request.0, Actor(actor.to_string())).await.into()
}

#[handler]
async fn health(state: Data<&AppState>) -> poem::Response {
    let log = *state.store.head().borrow();
    let projected = state.budget.position();
    let failure = state.budget.failure();
    let body = serde_json::json!({
        "status": if failure.is_none() { "ok" } else { "degraded" },
        "logPosition": log,
        "projectionPosition": projected,
    });
    let status = if failure.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Json(body).with_status(status).into_response()
}

/// The HTTP routes around the schema.
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let schema = schema(state.clone());
    Route::new()
        .at("/", get(graphiql::page))
        .at("/graphql", post(graphql_endpoint).get(graphql_endpoint))
        .at("/health", get(health))
        .nest("/assets/graphiql", graphiql::assets())
        .data(schema)
        .data(state)
}

#[cfg(test)]
mod tests;

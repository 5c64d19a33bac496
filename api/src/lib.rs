//! The GraphQL API of Convention Tracker: the schema (transport-free) and the few poem
//! routes around it (`/graphql`, GraphiQL at `/`, `/health`, the dashboard page at `/dashboard`).
//!
//! Resolvers never decide anything: mutations check access, turn their input into a
//! domain command and hand it to the use cases (the one write path, `usecases`); queries
//! read the projections. Every error leaves with
//! an `extensions.code` and never with internals (SQL, paths, stack traces).

mod aidants;
pub mod auth;
mod claims;
mod dashboard;
mod dashboard_page;
mod disbursements;
mod errors;
mod graphiql;
pub mod heavy;
pub mod import_route;
mod inputs;
mod limits;
mod measures;
mod mutation;
mod personal;
mod programmes;
mod purchases;
mod query;
mod report;
mod scalars;
mod types;

use async_graphql::{SDLExportOptions, Schema};
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Route, get, handler, post};
use projections::{
    AnyRunner, BudgetView, DashboardView, ProgrammesView, PurchasesView, ReimbursementsView, Runner, StructuresView,
};
use sagas::SagaRunner;
use std::sync::Arc;
use std::time::Duration;
use store::EventStore;

pub use auth::{
    AuthError, Holder, MATRIX, Operation, Principal, Role, TokenError, TokenRecord, TokenStore, matrix_markdown,
};
pub use errors::codes;
pub use limits::{DEFAULT_RATE_PER_SECOND, MAX_TEXT_CHARS};
pub use scalars::{DateScalar, MoneyScalar};

/// Largest query nesting accepted: deep enough for every real query and for GraphiQL's
/// introspection (its type references nest about 13 deep), shallow enough to refuse
/// abusive ones cheaply.
pub const MAX_DEPTH: usize = 20;
/// Largest query complexity accepted: fields counted, each 1 but the expensive ones,
/// which count what they cost (see [`REPLAY_COST`]).
pub const MAX_COMPLEXITY: usize = 5_000;
/// What a replay of the log (`report`, `reportProvenance`) counts against
/// [`MAX_COMPLEXITY`]: each folds the whole log, so a request holds two at most (ours), and
/// the 1 000 aliases of `report` that once stalled the server are refused before any runs.
pub const REPLAY_COST: usize = (MAX_COMPLEXITY - 100) / 2;
/// What a `dashboard` counts against [`MAX_COMPLEXITY`], besides its fields: a scope
/// not yet memoised folds the figures of its months and territories; ours, so that a
/// request holds some fifty at most (the page asks one).
pub const DASHBOARD_COST: usize = 100;
/// Largest request body accepted on `/graphql`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest a request may run before it is answered with `TIMEOUT`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What resolvers need: the log and the read models.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    /// The one write path: every mutation goes through it.
    pub use_cases: Arc<usecases::UseCases>,
    pub budget: Arc<Runner<BudgetView>>,
    pub structures: Arc<Runner<StructuresView>>,
    pub purchases: Arc<Runner<PurchasesView>>,
    pub programmes: Arc<Runner<ProgrammesView>>,
    pub reimbursements: Arc<Runner<ReimbursementsView>>,
    pub dashboard: Arc<Runner<DashboardView>>,
    /// Dashboard figures already computed for the current position.
    pub dashboards: Arc<dashboard::DashboardMemo>,
    /// The reimbursement saga, when this process runs it: claim mutations wait for it
    /// to act before they answer.
    pub saga: Option<Arc<SagaRunner>>,
    /// How long a mutation waits for the read models to show what it wrote.
    pub read_your_writes_timeout: Duration,
    /// Replays of the whole log (reports) run one at a time...
    pub replays: Arc<tokio::sync::Semaphore>,
    /// ...on their own thread, stopped with their request.
    pub heavy: Arc<heavy::HeavyLane>,
    /// Requests per token over HTTP.
    pub rate: Arc<limits::RateLimiter>,
    /// The tokens, to revoke an erased person's.
    pub tokens: Option<Arc<TokenStore>>,
}

impl AppState {
    /// Starts the read models on this log, in memory, from the start of the log.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            budget: Runner::spawn(store.clone()),
            structures: Runner::spawn(store.clone()),
            purchases: Runner::spawn(store.clone()),
            programmes: Runner::spawn(store.clone()),
            reimbursements: Runner::spawn(store.clone()),
            dashboard: Runner::spawn(store.clone()),
            dashboards: Default::default(),
            use_cases: usecases::UseCases::new(store.clone()),
            store,
            saga: None,
            read_your_writes_timeout: Duration::from_secs(2),
            replays: Arc::new(tokio::sync::Semaphore::new(1)),
            heavy: heavy::HeavyLane::new(),
            rate: Arc::new(limits::RateLimiter::new(limits::DEFAULT_RATE_PER_SECOND)),
            tokens: None,
        }
    }

    /// Starts the read models from their snapshots in `dir` (when usable) and keeps
    /// snapshots there, so a restart folds only what was recorded since.
    pub async fn persisted(store: Arc<dyn EventStore>, dir: &std::path::Path) -> Self {
        let (budget, structures, purchases, programmes, reimbursements, dashboard) = tokio::join!(
            Runner::spawn_persisted(store.clone(), dir),
            Runner::spawn_persisted(store.clone(), dir),
            Runner::spawn_persisted(store.clone(), dir),
            Runner::spawn_persisted(store.clone(), dir),
            Runner::spawn_persisted(store.clone(), dir),
            Runner::spawn_persisted(store.clone(), dir),
        );
        Self {
            use_cases: usecases::UseCases::new(store.clone()),
            store,
            budget,
            structures,
            purchases,
            programmes,
            reimbursements,
            dashboard,
            dashboards: Default::default(),
            saga: None,
            read_your_writes_timeout: Duration::from_secs(2),
            replays: Arc::new(tokio::sync::Semaphore::new(1)),
            heavy: heavy::HeavyLane::new(),
            rate: Arc::new(limits::RateLimiter::new(limits::DEFAULT_RATE_PER_SECOND)),
            tokens: None,
        }
    }

    /// Proves every snapshot the read models started from against a fold of the log from
    /// zero (in the background: the server answers meanwhile); a view whose snapshot
    /// differs takes the log's figures and rewrites it (see [`Runner::prove`]).
    pub async fn prove_snapshots(&self) {
        let log = self.store.as_ref();
        for runner in self.runners() {
            let view = runner.name();
            match runner.prove(log).await {
                Ok(proof) => tracing::info!(view, ?proof, "read model's snapshot checked against the log"),
                Err(e) => tracing::error!(view, error = %e, "the read model's snapshot could not be checked"),
            }
        }
    }

    /// What became of each read model's snapshot, by view.
    pub fn snapshot_proofs(&self) -> Vec<(&'static str, projections::runner::Proof)> {
        self.runners().iter().map(|r| (r.name(), r.proof())).collect()
    }

    /// Where each read model started from (0, or its snapshot's position).
    pub fn resumed_from(&self) -> Vec<(&'static str, u64)> {
        self.runners().iter().map(|r| (r.name(), r.resumed_from())).collect()
    }

    /// Every read model's runner: the one list the server goes through (besides the
    /// fields and the constructors, which name each view's type).
    pub fn runners(&self) -> [&dyn AnyRunner; 6] {
        [
            self.budget.as_ref(),
            self.structures.as_ref(),
            self.purchases.as_ref(),
            self.programmes.as_ref(),
            self.reimbursements.as_ref(),
            self.dashboard.as_ref(),
        ]
    }

    /// The same state, writing through these use cases (shared with the saga, so that
    /// the saga's commands and the API's take turns on the same streams).
    pub fn with_use_cases(mut self, use_cases: Arc<usecases::UseCases>) -> Self {
        self.use_cases = use_cases;
        self
    }

    /// The same state, letting each token send `per_second` requests on average (0: no limit).
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate = Arc::new(limits::RateLimiter::new(per_second));
        self
    }

    /// The same state, with the data directory's tokens (`forgetPerson` revokes an
    /// erased person's). The directory of persons is the use cases' (see
    /// [`usecases::UseCases::people`]).
    pub fn with_tokens(mut self, tokens: Arc<TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The same state, with the reimbursement saga this process runs.
    pub fn with_saga(mut self, saga: Arc<SagaRunner>) -> Self {
        self.saga = Some(saga);
        self
    }

    /// Waits until every read model has applied `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let waits = self.runners().map(|r| r.wait_for(position, timeout));
        futures::future::join_all(waits).await.into_iter().all(|reached| reached)
    }

    /// The position every read model has reached.
    pub fn position(&self) -> u64 {
        self.runners().iter().map(|r| r.position()).min().unwrap_or(0)
    }
}

pub type TrackerSchema = Schema<query::Query, mutation::Mutation, dashboard::DashboardSubscription>;

/// The one place the schema is built. Introspection (what GraphiQL needs) is on only
/// when asked for.
pub fn schema(state: AppState, introspection: bool) -> TrackerSchema {
    let builder =
        Schema::build(query::Query::default(), mutation::Mutation::default(), dashboard::DashboardSubscription)
            .data(state)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .extension(limits::TextLimits);
    if introspection { builder.finish() } else { builder.disable_introspection().finish() }
}

/// The schema's SDL with fields, arguments and enum items sorted, for review and snapshots.
pub fn sdl(schema: &TrackerSchema) -> String {
    schema.sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_arguments().sorted_enum_items())
}

/// Executes a request as every transport must: as its principal, within the time limit,
/// and with every error given a code.
pub async fn execute(
    schema: &TrackerSchema,
    request: async_graphql::Request,
    principal: Principal,
) -> async_graphql::Response {
    execute_within(schema, request, principal, REQUEST_TIMEOUT).await
}

/// [`execute`] with another time limit. When it runs out, the request's work is dropped:
/// its resolvers stop at their next await, and a replay on the replay lane with them.
pub async fn execute_within(
    schema: &TrackerSchema,
    request: async_graphql::Request,
    principal: Principal,
    limit: Duration,
) -> async_graphql::Response {
    let mut response = match tokio::time::timeout(limit, schema.execute(request.data(principal))).await {
        Ok(response) => response,
        Err(_) => {
            let mut error = async_graphql::ServerError::new(
                "the request took too long and was stopped; a command it carried may still have been applied: \
                 retry it with the same commandId to get its answer",
                None,
            );
            error.extensions.get_or_insert_with(Default::default).set("code", codes::TIMEOUT);
            async_graphql::Response::from_errors(vec![error])
        }
    };
    errors::ensure_codes(&mut response.errors);
    response
}

/// The answer to a request whose credentials are refused: HTTP 401, in GraphQL's shape.
fn unauthorized(e: AuthError) -> poem::Response {
    let body = serde_json::json!({
        "errors": [{ "message": e.to_string(), "extensions": { "code": codes::UNAUTHENTICATED } }]
    });
    Json(body).with_status(StatusCode::UNAUTHORIZED).with_header("WWW-Authenticate", "Bearer").into_response()
}

/// Whether a request's body is declared as JSON (`application/json`, any parameters).
/// Anything else is refused before it is read: a browser sends `text/plain` and form
/// bodies across sites without asking the server first, so accepting them would let any
/// page make a signed-in user's browser write to the log.
fn declared_json(headers: &poem::http::HeaderMap) -> bool {
    headers
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses a body that is not declared as JSON: HTTP 415, in GraphQL's shape.
fn not_json(request: &poem::Request) -> poem::Response {
    let declared = request.header(poem::http::header::CONTENT_TYPE).unwrap_or("none");
    let body = serde_json::json!({ "errors": [{
        "message": format!("a GraphQL request is sent as application/json (this one declares {declared})"),
        "extensions": { "code": codes::BAD_USER_INPUT }
    }] });
    Json(body).with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE).into_response()
}

/// The answer to a token over its rate: HTTP 429, in GraphQL's shape, with when to retry.
fn too_many(wait: Duration) -> poem::Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let body = serde_json::json!({ "errors": [{
        "message": format!("too many requests for this token: retry in {seconds} s"),
        "extensions": { "code": codes::RATE_LIMITED, "retryAfterSeconds": seconds }
    }] });
    Json(body)
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_header("Retry-After", seconds.to_string())
        .into_response()
}

#[handler]
async fn graphql_endpoint(
    schema: Data<&TrackerSchema>,
    tokens: Data<&Arc<TokenStore>>,
    state: Data<&AppState>,
    headers: &poem::http::HeaderMap,
    open: Data<&graphiql::GraphiqlOpen>,
    request: async_graphql_poem::GraphQLRequest,
) -> poem::Response {
    let header = headers.get(poem::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let authenticated = match tokens.authenticate(header).await {
        // With GraphiQL on, the schema alone is open to anyone: the page loads its docs
        // before a token is pasted. Nothing else runs without a token.
        Err(AuthError::Missing) if open.0.0 && graphiql::introspection_only(&request.0.query) => {
            Ok(Principal::local(Role::Copil, "GraphiQL, schema only"))
        }
        other => other,
    };
    match authenticated {
        Ok(principal) if let Err(wait) = state.rate.check(principal.token_id) => too_many(wait),
        Ok(principal) => {
            async_graphql_poem::GraphQLResponse(execute(&schema, request.0, principal).await).into_response()
        }
        Err(e) => unauthorized(e),
    }
}

/// How often an open websocket checks that its token still stands.
pub const REVOCATION_CHECK: Duration = Duration::from_millis(500);

/// The close code of a socket whose token was revoked (4403, "forbidden", as
/// `graphql-transport-ws` names it).
pub const CLOSE_REVOKED: u16 = 4403;

/// GraphQL subscriptions over a websocket (`graphql-transport-ws` or `graphql-ws`). The
/// token goes in the `connection_init` payload: `{"Authorization": "Bearer <token>"}`;
/// without a valid one the connection is closed. Revoking the token closes the socket too,
/// within [`REVOCATION_CHECK`], with code [`CLOSE_REVOKED`] and the reason.
#[handler]
async fn subscriptions(
    schema: Data<&TrackerSchema>,
    tokens: Data<&Arc<TokenStore>>,
    protocol: async_graphql_poem::GraphQLProtocol,
    websocket: poem::web::websocket::WebSocket,
) -> impl IntoResponse {
    use futures::{SinkExt, StreamExt};
    use poem::web::websocket::Message;
    let (schema, tokens) = (schema.clone(), tokens.clone());
    websocket.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let (mut sink, source) = socket.split();
        // Everything sent goes through this channel, so that the revocation watch can
        // close the socket while the GraphQL protocol owns its side.
        let (out, mut outgoing) = futures::channel::mpsc::unbounded::<Message>();
        let (token_tx, mut token_rx) = tokio::sync::watch::channel(None::<uuid::Uuid>);
        let (revoked_tx, revoked_rx) = tokio::sync::oneshot::channel::<()>();
        let watch = {
            let (tokens, out) = (tokens.clone(), out.clone());
            async move {
                let Ok(id) = token_rx.wait_for(Option::is_some).await.map(|id| id.expect("set")) else { return };
                loop {
                    tokio::time::sleep(REVOCATION_CHECK).await;
                    if !tokens.is_active(id).await {
                        let _ = out.unbounded_send(Message::close_with(CLOSE_REVOKED, "the token was revoked"));
                        let _ = revoked_tx.send(());
                        return;
                    }
                }
            }
        };
        let graphql =
            async_graphql_poem::GraphQLWebSocket::new_with_pair(out, source.take_until(revoked_rx), schema, protocol)
                .on_connection_init(move |payload: serde_json::Value| {
                    let (tokens, token_tx) = (tokens.clone(), token_tx.clone());
                    async move {
                        let header = payload
                            .get("Authorization")
                            .or_else(|| payload.get("authorization"))
                            .and_then(|v| v.as_str())
                            .map(str::to_string);
                        let principal = tokens
                            .authenticate(header.as_deref())
                            .await
                            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                        token_tx.send_replace(Some(principal.token_id));
                        let mut data = async_graphql::Data::default();
                        data.insert(principal);
                        Ok(data)
                    }
                })
                .serve();
        let forward = async move {
            while let Some(message) = outgoing.next().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        // The protocol and the watch end together (whichever first: the client leaving,
        // or the revocation, whose close frame is then the last message sent); the
        // forwarding ends once both have let go of the channel.
        let session = async move {
            tokio::select! {
                _ = graphql => {}
                _ = watch => {}
            }
        };
        tokio::join!(session, forward);
    })
}

#[handler]
async fn health(state: Data<&AppState>) -> poem::Response {
    let log = *state.store.head().borrow();
    let projected = state.position();
    let failure = state
        .budget
        .failure()
        .or_else(|| state.structures.failure())
        .or_else(|| state.purchases.failure())
        .or_else(|| state.programmes.failure())
        .or_else(|| state.reimbursements.failure())
        .or_else(|| state.dashboard.failure())
        .map(|e| e.to_string());
    let saga = state
        .saga
        .as_ref()
        .map(|s| serde_json::json!({ "position": s.position(), "failure": s.failure(), "leading": s.leading() }));
    let proofs = state.snapshot_proofs();
    let replaced: Vec<&str> =
        proofs.iter().filter(|(_, p)| *p == projections::runner::Proof::Replaced).map(|(view, _)| *view).collect();
    let snapshots: serde_json::Map<String, serde_json::Value> =
        proofs.iter().map(|(view, proof)| (view.to_string(), serde_json::json!(proof))).collect();
    let mut body = serde_json::json!({
        "status": if failure.is_none() { "ok" } else { "degraded" },
        "logPosition": log,
        "projectionPosition": projected,
        "saga": saga,
        "snapshots": snapshots,
    });
    if !replaced.is_empty() {
        // Served from the log now, but someone or something altered the data directory.
        body["warning"] = serde_json::json!(format!(
            "the snapshot of {} did not give the log's figures (edited or corrupted on disk): \
             the log's figures are served and the snapshot was written again",
            replaced.join(", ")
        ));
    }
    let status = if failure.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Json(body).with_status(status).into_response()
}

/// The HTTP routes around the schema. GraphiQL (and introspection) only when `graphiql`.
pub fn routes(state: AppState, tokens: Arc<TokenStore>, graphiql: bool) -> impl poem::Endpoint {
    let schema = schema(state.clone(), graphiql);
    let mut route = Route::new()
        .at(
            "/graphql",
            post(graphql_endpoint.with(poem::middleware::SizeLimit::new(MAX_BODY_BYTES)).around(
                // Checked before the body is read or parsed.
                |endpoint, request| async move {
                    if !declared_json(request.headers()) {
                        return Ok(not_json(&request));
                    }
                    endpoint.call(request).await.map(IntoResponse::into_response)
                },
            )),
        )
        .at("/graphql/ws", get(subscriptions))
        // Partners' files (issue 22): raw CSV or xlsx body, the report as JSON.
        .at("/import/:kind", post(import_route::endpoint))
        .at("/health", get(health));
    route = dashboard_page::routes(route);
    if graphiql {
        route = route.at("/", get(graphiql::page)).nest("/assets/graphiql", graphiql::assets());
    }
    route.data(schema).data(state).data(tokens).data(graphiql::GraphiqlOpen(graphiql))
}

#[cfg(test)]
mod tests;

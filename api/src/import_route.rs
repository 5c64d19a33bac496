//! `POST /import/{kind}`: a partner's file (the raw CSV or xlsx body) imported line by line
//! through the use cases, under the same bearer tokens and access matrix as GraphQL; the
//! answer is the report as JSON. `?dryRun=true` decides every line and writes nothing.
//!
//! Who may import what follows the matrix: a kind needs every operation its lines may run
//! (the OPCO the purchases, ANCT the Aidants Connect, Pix and CCAS extracts, ANCT or the
//! OPCO the structures); a structure imports claims, and only as itself.

use crate::auth::{Operation as O, Role, allowed};
use crate::errors::codes;
use crate::{AppState, TokenStore};
use imports::{Importer, Kind, Options};
use poem::http::StatusCode;
use poem::web::{Data, Json, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;
use std::sync::Arc;

/// Largest file accepted (ours): ten times the largest extract the plan's partners would
/// send in one go (20 000 habilitation lines are about 1.5 MB as CSV).
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

/// The operations a kind's lines may run: a role must be allowed all of them.
pub fn operations(kind: Kind) -> &'static [O] {
    match kind {
        Kind::Structures => &[O::RegisterStructure],
        Kind::Purchases => {
            &[O::RequestPurchase, O::ApprovePurchase, O::RecordAttendance, O::RecordPurchasePayment, O::CancelPurchase]
        }
        Kind::AidantsSessions => &[O::OpenAidantsConnectSession],
        Kind::Habilitations => &[
            O::RequestHabilitation,
            O::ValidateEligibility,
            O::RefuseHabilitation,
            O::CancelHabilitation,
            O::RegisterToSession,
            O::CompleteTraining,
            O::Habilitate,
            O::RevokeHabilitation,
        ],
        Kind::PixCampaigns => &[O::OpenPixCampaign],
        Kind::PixCertifications => &[O::RecordPixCertification],
        Kind::CcasActions => &[O::RecordCcasAction],
        Kind::AnnexClaims => &[O::SubmitAnnexClaim],
    }
}

/// Whether `role` may import files of `kind`.
pub fn may_import(role: Role, kind: Kind) -> bool {
    operations(kind).iter().all(|op| allowed(role, *op))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    #[serde(default)]
    dry_run: bool,
}

fn error(status: StatusCode, code: &str, message: String, extra: serde_json::Value) -> Response {
    let mut body = serde_json::json!({ "error": { "code": code, "message": message } });
    if let (Some(e), serde_json::Value::Object(extra)) = (body["error"].as_object_mut(), extra) {
        e.extend(extra);
    }
    Json(body).with_status(status).into_response()
}

/// The media types a file is sent as. Any other is refused before the body is read: none
/// of these may be sent across sites without the browser asking the server first.
fn file_type(headers: &poem::http::HeaderMap) -> bool {
    let declared = headers
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    matches!(
        declared.as_deref(),
        Some(
            "text/csv"
                | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                | "application/vnd.ms-excel"
                | "application/octet-stream"
        )
    )
}

#[handler]
pub async fn endpoint(
    Path(kind): Path<String>,
    Query(params): Query<Params>,
    tokens: Data<&Arc<TokenStore>>,
    state: Data<&AppState>,
    headers: &poem::http::HeaderMap,
    body: poem::Body,
) -> Response {
    let header = headers.get(poem::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let principal = match tokens.authenticate(header).await {
        Ok(p) => p,
        Err(e) => {
            return error(StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED, e.to_string(), serde_json::json!({}))
                .with_header("WWW-Authenticate", "Bearer")
                .into_response();
        }
    };
    if let Err(wait) = state.rate.check(principal.token_id) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("too many requests for this token: retry in {seconds} s"),
            serde_json::json!({ "retryAfterSeconds": seconds }),
        )
        .with_header("Retry-After", seconds.to_string())
        .into_response();
    }
    let Some(kind) = Kind::parse(&kind) else {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        let message = format!("no kind of file `{kind}`: one of {}", names.join(", "));
        return error(StatusCode::NOT_FOUND, codes::NOT_FOUND, message, serde_json::json!({}));
    };
    if !may_import(principal.role, kind) {
        let message = format!("role {} may not import {} files", principal.role.name(), kind.name());
        return error(StatusCode::FORBIDDEN, codes::FORBIDDEN, message, serde_json::json!({}));
    }
    if !file_type(headers) {
        let message = "a file is sent as text/csv, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet \
                       or application/octet-stream"
            .to_string();
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::BAD_USER_INPUT, message, serde_json::json!({}));
    }
    let bytes = match body.into_bytes_limit(MAX_IMPORT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let message = format!("the file is larger than {} MB, or could not be read", MAX_IMPORT_BYTES >> 20);
            return error(StatusCode::PAYLOAD_TOO_LARGE, codes::BAD_USER_INPUT, message, serde_json::json!({}));
        }
    };
    let who = Importer {
        actor: principal.actor(),
        // A structure's lines are its own: the use case refuses another buyer's training.
        structure: (principal.role == Role::Structure)
            .then_some(principal.structure.map(domain::structure::StructureId))
            .flatten(),
    };
    if principal.role == Role::Structure && who.structure.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "a structure token names no structure".into(),
            serde_json::json!({}),
        );
    }
    let use_cases = state.use_cases.clone();
    let options = Options { dry_run: params.dry_run };
    // The import runs to its end even if the client goes away: what it wrote, it reports
    // to whoever imports the file again (every line then already there).
    let task = tokio::spawn(async move { imports::import(&use_cases, kind, &bytes, &who, &options, &|_, _| {}).await });
    match task.await {
        Ok(Ok(report)) => {
            if let (Some(saga), Kind::AnnexClaims, false) = (&state.saga, kind, report.dry_run) {
                // Claims imported: the saga acts on them before the answer, as for a mutation.
                let head = *state.store.head().borrow();
                let _ = saga.wait_for(head, state.read_your_writes_timeout).await;
            }
            Json(report).into_response()
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            codes::BAD_USER_INPUT,
            e.message.clone(),
            serde_json::json!({ "line": e.line, "column": e.column }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "an import task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "internal error: the import could not complete (see the server's log); importing the file again \
                 completes it"
                    .into(),
                serde_json::json!({}),
            )
        }
    }
}

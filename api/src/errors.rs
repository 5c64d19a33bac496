//! How failures leave the API: one mapping from each error kind to an `extensions.code`,
//! with the broken rule and its figures for domain errors, and nothing internal ever.

use async_graphql::{Error, ErrorExtensions, ServerError, Value};
use domain::convention::ConventionError;
use store::HandleError;

pub mod codes {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const CONFLICT: &str = "CONFLICT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const INTERNAL: &str = "INTERNAL";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
}

/// An input the API itself refuses (a malformed id, an unknown département).
pub fn bad_input(field: &str, message: impl std::fmt::Display) -> Error {
    Error::new(message.to_string()).extend_with(|_, e| {
        e.set("code", codes::BAD_USER_INPUT);
        e.set("field", field);
    })
}

/// A failure we cannot explain to the client: logged in full, shown as a generic message.
pub fn internal(error: &dyn std::fmt::Display) -> Error {
    tracing::error!(%error, "internal error while handling a request");
    Error::new("internal error: the server could not complete the request (see its log)")
        .extend_with(|_, e| e.set("code", codes::INTERNAL))
}

/// The code a domain error leaves with: most broken rules are the client's input to fix.
pub trait DomainCode: std::error::Error + serde::Serialize {
    fn code(&self) -> &'static str {
        codes::BAD_USER_INPUT
    }
}

impl DomainCode for ConventionError {
    fn code(&self) -> &'static str {
        match self {
            ConventionError::NotFound => codes::NOT_FOUND,
            ConventionError::AlreadySigned { .. } => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for domain::structure::StructureError {
    fn code(&self) -> &'static str {
        match self {
            domain::structure::StructureError::AlreadyRegistered { .. } => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for domain::purchase::PurchaseError {
    fn code(&self) -> &'static str {
        match self {
            domain::purchase::PurchaseError::NotFound => codes::NOT_FOUND,
            domain::purchase::PurchaseError::AlreadyRequested => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for domain::pix::PixError {
    fn code(&self) -> &'static str {
        match self {
            domain::pix::PixError::NotFound => codes::NOT_FOUND,
            domain::pix::PixError::AlreadyOpen => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for domain::ccas::CcasError {
    fn code(&self) -> &'static str {
        match self {
            domain::ccas::CcasError::AlreadyRecorded => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

/// The single mapping from a command's failure to a GraphQL error.
pub fn command_error<E: DomainCode>(err: HandleError<E>) -> Error {
    match err {
        HandleError::Domain(e) => {
            let figures = serde_json::to_value(&e).unwrap_or_default();
            Error::new(e.to_string()).extend_with(|_, ext| {
                if let serde_json::Value::Object(fields) = figures {
                    // The error's kind is `code`: no figure may take its place.
                    for (k, v) in fields.into_iter().filter(|(k, _)| k != "code") {
                        if let Ok(v) = Value::from_json(v) {
                            ext.set(k, v);
                        }
                    }
                }
                ext.set("code", e.code());
            })
        }
        HandleError::Conflict { .. } | HandleError::CommandIdReused(_) => {
            Error::new(err.to_string()).extend_with(|_, e| e.set("code", codes::CONFLICT))
        }
        HandleError::Store(e) => internal(&e),
    }
}

/// The mapping for use cases that write several streams: the entity's rule, or the rule
/// of the convention (or session) its step moves, each with its own code and figures.
pub fn step_error<E: DomainCode>(err: usecases::StepError<E>) -> Error {
    use usecases::StepError;
    match err {
        StepError::Domain(e) => command_error(HandleError::Domain(e)),
        StepError::Convention(e) => command_error(HandleError::Domain(e)),
        StepError::Session(e) => command_error(HandleError::Domain(e)),
        StepError::Disbursement(e) => command_error(HandleError::Domain(e)),
        StepError::Missing { field, message } => bad_input(field, message),
        StepError::Conflict { .. } | StepError::CommandIdReused(_) => {
            Error::new(err.to_string()).extend_with(|_, e| e.set("code", codes::CONFLICT))
        }
        StepError::Store(e) => internal(&e),
    }
}

/// Errors raised by the GraphQL engine itself (syntax, unknown field, wrong type, limits)
/// carry no code: they are all the client's to fix.
pub fn ensure_codes(errors: &mut [ServerError]) {
    for e in errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", codes::BAD_USER_INPUT);
        }
    }
}

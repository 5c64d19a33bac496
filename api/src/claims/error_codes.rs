//! Each refusal of a claim or a funds call mapped to its GraphQL code.

#[allow(unused_imports)]
use super::*;

impl DomainCode for ClaimError {
    fn code(&self) -> &'static str {
        match self {
            ClaimError::NotFound => codes::NOT_FOUND,
            ClaimError::AlreadySubmitted => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

impl DomainCode for FundsCallError {
    fn code(&self) -> &'static str {
        match self {
            FundsCallError::UnknownCall => codes::NOT_FOUND,
            FundsCallError::AlreadyIssued | FundsCallError::AlreadyPaid { .. } => codes::CONFLICT,
            _ => codes::BAD_USER_INPUT,
        }
    }
}

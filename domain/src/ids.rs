//! Identifiers are newtypes over UUIDs so that a convention id can never be passed where an
//! envelope id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Namespace for the name-based (v5) ids we derive, so that the same business key always
/// maps to the same id on every machine and in every replay.
pub const TRACKER_NAMESPACE: Uuid = Uuid::from_u128(0x6f0c_5b1e_2a41_4c7e_9d3a_8e21_7b90_c4d2);

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8)")]
pub struct IdError {
    pub kind: &'static str,
    pub input: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id; only edges (API, CLI) call this, never `decide`.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn parse(input: &str) -> Result<Self, IdError> {
                Uuid::parse_str(input.trim())
                    .map(Self)
                    .map_err(|_| IdError { kind: $kind, input: input.to_string() })
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// A convention; derived from its code, so a code can be signed only once.
    ConventionId, "convention"
);
id_type!(
    /// A budget line of a convention; derived from the convention and the envelope's name.
    EnvelopeId, "envelope"
);
id_type!(
    /// The idempotency key of a command: the same id sent twice gives the same answer.
    CommandId, "command"
);
id_type!(
    /// Groups every command and event of one user action or workflow.
    CorrelationId, "correlation"
);
id_type!(
    /// One recorded event.
    EventId, "event"
);

impl ConventionId {
    /// The id of the convention with this code. Codes are compared case-insensitively.
    pub fn for_code(code: &str) -> Self {
        let key = format!("convention:{}", code.trim().to_uppercase());
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, key.as_bytes()))
    }
}

impl EnvelopeId {
    /// The id of the envelope with this name in this convention (names are case-insensitive).
    pub fn for_name(convention: ConventionId, name: &str) -> Self {
        let key = format!("envelope:{}:{}", convention.0, name.trim().to_lowercase());
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, key.as_bytes()))
    }
}

impl EventId {
    /// Event ids are derived from the command that caused them, so a retried command
    /// produces the very same ids and the log can refuse the duplicate.
    pub fn for_command(command: CommandId, index: usize) -> Self {
        let key = format!("event:{}:{}", command.0, index);
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convention_id_is_derived_from_the_code_case_insensitively() {
        assert_eq!(ConventionId::for_code("anct-uniformation-2021 "), ConventionId::for_code("ANCT-UNIFORMATION-2021"));
        assert_ne!(ConventionId::for_code("ANCT-PIX-2021"), ConventionId::for_code("ANCT-UNIFORMATION-2021"));
    }

    #[test]
    fn malformed_id_is_refused_with_its_kind() {
        let err = ConventionId::parse("not-a-uuid").unwrap_err();
        assert_eq!(err.kind, "convention");
        assert!(err.to_string().contains("not-a-uuid"));
    }
}

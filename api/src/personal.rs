//! Personal data: ANCT, the controller, erases a person from the directory of persons
//! (`forgetPerson`). The log is not touched: its digest and every figure stay, and the
//! person shows as "personne effacée".

use crate::AppState;
use crate::auth::{Operation, require};
use crate::errors::{bad_input, codes, internal};
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject};

#[derive(InputObject)]
pub struct ForgetPersonInput {
    /// The person's id in the directory (what `tracker token list` and the access export show).
    pub person: ID,
    /// Why: kept with the erasure, which holds nothing about the person. Default `request`.
    pub reason: Option<String>,
}

/// What an erasure did.
#[derive(SimpleObject)]
pub struct ErasurePayload {
    pub person: ID,
    /// agent, aidant, trainee or candidate.
    pub kind: String,
    pub erased_at: String,
    pub reason: String,
    /// The person's tokens, revoked by the erasure.
    pub tokens_revoked: Vec<ID>,
}

#[derive(Default)]
pub struct PersonalMutation;

#[Object]
impl PersonalMutation {
    /// Erases a person from the directory of persons: their name or reference goes,
    /// their tokens are revoked; the log, its head digest and every figure are unchanged.
    async fn forget_person(&self, ctx: &Context<'_>, input: ForgetPersonInput) -> Result<ErasurePayload> {
        require(ctx, Operation::ForgetPerson)?;
        let state = ctx.data_unchecked::<AppState>();
        let id = uuid::Uuid::parse_str(input.person.trim()).map_err(|_| {
            bad_input("person", format!("person: `{}` is not a person id (a UUID)", input.person.as_str()))
        })?;
        let reason = input.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or("request").to_string();
        match state.use_cases.people().lookup(id).map_err(|e| internal(&e))? {
            store::directory::Lookup::Known(_) => {}
            store::directory::Lookup::Erased(e) => {
                return Err(async_graphql::Error::new(format!("person {id} was already erased on {}", e.erased_at))
                    .extend_with(|_, x| x.set("code", codes::CONFLICT)));
            }
            store::directory::Lookup::Unknown => {
                return Err(async_graphql::Error::new(format!("no person {id} in the directory"))
                    .extend_with(|_, x| x.set("code", codes::NOT_FOUND)));
            }
        }
        let tokens_revoked = match &state.tokens {
            Some(tokens) => tokens.revoke_person(id).await.map_err(|e| internal(&e))?,
            None => Vec::new(),
        };
        let erasure = state.use_cases.people().forget(id, &reason).map_err(|e| internal(&e))?;
        Ok(ErasurePayload {
            person: ID(erasure.id.to_string()),
            kind: erasure.kind.name().to_string(),
            erased_at: erasure.erased_at.to_rfc3339(),
            reason: erasure.reason,
            tokens_revoked: tokens_revoked.into_iter().map(|t| ID(t.to_string())).collect(),
        })
    }
}

/// The opaque id the log records for a reference of a person given in `field`, issued by
/// the directory of persons; `BAD_USER_INPUT` naming the field (and what it looks like)
/// when the reference looks like an e-mail address, a phone number or a NIR.
pub(crate) fn pseudonym(
    state: &AppState,
    kind: store::PersonKind,
    scope: &str,
    reference: &str,
    field: &str,
) -> Result<String> {
    state.use_cases.pseudonym(kind, scope, reference).map_err(|e| match e {
        usecases::PseudonymError::PersonalData(looks_like) => bad_input(
            field,
            format!(
                "{field} looks like {looks_like}: give a pseudonymous reference, never contact details or a social \
                 security number"
            ),
        )
        .extend_with(|_, x| x.set("looksLike", format!("{looks_like:?}").to_uppercase_snake())),
        other => internal(&other),
    })
}

/// What to show for an id the log holds instead of a person's reference: the reference,
/// "personne effacée" once erased.
pub(crate) fn shown(state: &AppState, id: &str) -> String {
    state.use_cases.people().display(id)
}

trait SnakeCase {
    fn to_uppercase_snake(&self) -> String;
}

impl SnakeCase for String {
    fn to_uppercase_snake(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }
}

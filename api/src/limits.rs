//! Limits on the text a request may carry, checked once for every transport before
//! anything runs: every string of the query's arguments and of its variables.

use crate::errors::codes;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, ServerResult, Value, Variables};
use std::sync::Arc;

/// The longest text any input may hold, in characters: ours, far above any name, title,
/// reference or reason the plan's partners write, far below what would bloat the log.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// Why a text is refused, if it is.
pub fn text_problem(text: &str) -> Option<String> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Some(format!("is {chars} characters long: at most {MAX_TEXT_CHARS}"));
    }
    text.chars().find_map(|c| {
        let control = c.is_control() && !matches!(c, '\n' | '\r' | '\t');
        // Bidirectional overrides, embeddings and isolates make a text read otherwise
        // than it is stored (a reference shown reversed, say).
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        (control || bidi).then(|| format!("holds the character U+{:04X}, which no input may hold", u32::from(c)))
    })
}

/// The inputs people write freely, where a sentence about a person can slip in
/// (reasons, titles, labels). Names of organisations, references of purchases and
/// receipts are codes and names of bodies; the references of persons (`aidant`,
/// `trainee`, `candidate`) are checked where they become ids, with their own error
/// (`crate::personal::pseudonym`); identifiers, codes and amounts are the domain's to
/// parse (a 13-digit SIRET is a wrong SIRET, not a NIR).
const FREE_TEXT: [&str; 7] = ["reason", "reductionReason", "title", "label", "comment", "description", "note"];

/// Why a text is refused, and what personal datum it looks like when that is why.
type Refused = (String, String, Option<domain::personal::LooksLike>);

/// Checks every string of `value`; in a mutation (`written`), a free text ([`FREE_TEXT`])
/// that holds an e-mail address, a phone number or a NIR is refused too: what a mutation
/// writes stays in the log for ever, where nothing can be erased.
fn check(path: &str, value: &Value, written: bool) -> Result<(), Refused> {
    match value {
        Value::String(s) => {
            if let Some(problem) = text_problem(s) {
                return Err((path.to_string(), problem, None));
            }
            let key = path.rsplit(['.', '(']).next().unwrap_or(path).trim_end_matches(')');
            let key = key.split('[').next().unwrap_or(key);
            match domain::personal::looks_like(s) {
                Some(looks_like) if written && FREE_TEXT.contains(&key) => Err((
                    path.to_string(),
                    format!(
                        "holds what looks like {looks_like}: free text stays in the log for ever, where it cannot be \
                         erased; write no contact details nor social security number in it"
                    ),
                    Some(looks_like),
                )),
                _ => Ok(()),
            }
        }
        Value::List(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check(&format!("{path}[{i}]"), v, written))
        }
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| check(&format!("{path}.{k}"), v, written)),
        _ => Ok(()),
    }
}

fn check_selection(set: &Positioned<SelectionSet>, written: bool) -> Result<(), Refused> {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                for (name, value) in &field.node.arguments {
                    // Variables are checked with the variables.
                    let value = value.node.clone().into_const_with(|_| Ok::<_, std::convert::Infallible>(Value::Null));
                    let value = value.unwrap_or(Value::Null);
                    check(&format!("{}({})", field.node.name.node, name.node), &value, written)?;
                }
                check_selection(&field.node.selection_set, written)?;
            }
            Selection::InlineFragment(fragment) => check_selection(&fragment.node.selection_set, written)?,
            Selection::FragmentSpread(_) => {} // checked with the fragments
        }
    }
    Ok(())
}

fn check_request(document: &ExecutableDocument, variables: &Variables) -> Result<(), Refused> {
    let written = document.operations.iter().any(|(_, o)| o.node.ty == OperationType::Mutation);
    for (name, value) in variables.iter() {
        check(&format!("${name}"), value, written)?;
    }
    for (_, operation) in document.operations.iter() {
        check_selection(&operation.node.selection_set, operation.node.ty == OperationType::Mutation)?;
    }
    document.fragments.values().try_for_each(|f| check_selection(&f.node.selection_set, written))
}

/// The extension that applies the limits as the query is parsed.
pub struct TextLimits;

impl ExtensionFactory for TextLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TextLimitsExtension)
    }
}

struct TextLimitsExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for TextLimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        match check_request(&document, variables) {
            Ok(()) => Ok(document),
            Err((field, problem, looks_like)) => {
                let mut error = ServerError::new(format!("the text of {field} {problem}"), None);
                let extensions = error.extensions.get_or_insert_with(Default::default);
                extensions.set("code", codes::BAD_USER_INPUT);
                extensions.set("field", field);
                if let Some(looks_like) = looks_like {
                    let name = serde_json::to_value(looks_like).ok().and_then(|v| v.as_str().map(String::from));
                    extensions.set("looksLike", name.unwrap_or_default());
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_in_length_and_refuse_controls_and_bidi_overrides() {
        assert_eq!(text_problem("Emmaüs Connect — Paris 11ᵉ"), None);
        assert_eq!(text_problem("ligne 1\nligne 2\tfin"), None);
        assert_eq!(text_problem(&"é".repeat(MAX_TEXT_CHARS)), None, "characters, not bytes");
        assert!(text_problem(&"x".repeat(MAX_TEXT_CHARS + 1)).unwrap().contains("1001 characters"));
        assert!(text_problem("ACHAT\u{0}1").unwrap().contains("U+0000"));
        assert!(text_problem("ACHAT\u{202E}1000").unwrap().contains("U+202E"));
        assert!(text_problem("A\u{2066}B").unwrap().contains("U+2066"));
        assert!(text_problem("bell\u{7}").unwrap().contains("U+0007"));
    }
}

/// Requests a token may send per second, on average, by default: ours, far above what a
/// person or a partner's system sends, low enough that one token cannot take the server.
pub const DEFAULT_RATE_PER_SECOND: u32 = 200;

/// A token bucket per token: each holds up to two seconds' worth of requests (a burst),
/// refilled at the rate; an empty bucket answers when the next request will be let in.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// `per_second` = 0 turns the limit off (benchmarks measure the server, not the limit).
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        Self { per_second, burst: per_second * 2.0, buckets: Default::default() }
    }

    /// Lets a request of `token` in, or says after how long one will be.
    pub fn check(&self, token: uuid::Uuid) -> Result<(), std::time::Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().expect("rate buckets poisoned");
        let (tokens, last) = buckets.entry(token).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_its_rate_and_others_are_not_held_back() {
        let limiter = RateLimiter::new(10);
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        for _ in 0..20 {
            assert!(limiter.check(a).is_ok(), "two seconds' worth at once");
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(wait <= std::time::Duration::from_millis(100) && wait > std::time::Duration::ZERO, "{wait:?}");
        assert!(limiter.check(b).is_ok(), "another token has its own bucket");
        std::thread::sleep(wait + std::time::Duration::from_millis(5));
        assert!(limiter.check(a).is_ok(), "refilled at the rate");
        assert!(RateLimiter::new(0).check(a).is_ok());
    }
}

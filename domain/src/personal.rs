//! Guards against personal data where the tracker expects a pseudonym. The programmes'
//! references of persons (aidants, trainees, Pix candidates) are the partner's
//! pseudonyms; the log keeps them (or, once issued, the tracker's opaque ids) for ever,
//! so a reference that looks like an e-mail address, a phone number or a French social
//! security number (NIR) is refused before anything is written. The shapes are ours
//! (conservative: a false refusal costs a renamed reference, a false acceptance a
//! personal datum in the log).

use serde::Serialize;

/// What a reference looks like when it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LooksLike {
    EmailAddress,
    PhoneNumber,
    /// A French social security number (NIR): 13 digits (15 with its key), starting
    /// with the sex digit, Corsica's 2A/2B allowed.
    SocialSecurityNumber,
}

impl std::fmt::Display for LooksLike {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LooksLike::EmailAddress => "an e-mail address",
            LooksLike::PhoneNumber => "a phone number",
            LooksLike::SocialSecurityNumber => "a social security number (NIR)",
        })
    }
}

impl LooksLike {
    pub fn french(self) -> &'static str {
        match self {
            LooksLike::EmailAddress => "une adresse électronique",
            LooksLike::PhoneNumber => "un numéro de téléphone",
            LooksLike::SocialSecurityNumber => "un numéro de sécurité sociale (NIR)",
        }
    }
}

/// What personal datum `text` looks like, if any.
pub fn looks_like(text: &str) -> Option<LooksLike> {
    // The tracker's own opaque ids are no one's contact details (their digits could
    // happen to look like a number).
    if uuid::Uuid::parse_str(text.trim()).is_ok() {
        return None;
    }
    if text.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '<' || c == '>').any(is_email) {
        return Some(LooksLike::EmailAddress);
    }
    // Runs of digits with the separators people type inside numbers.
    let mut runs: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '+' || (matches!(c, 'A' | 'B' | 'a' | 'b') && corsica(&current)) {
            current.push(c.to_ascii_uppercase());
        } else if matches!(c, ' ' | '.' | '-' | '(' | ')' | '/') && !current.is_empty() {
            continue;
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    runs.push(current);
    for run in runs {
        if is_nir(&run) {
            return Some(LooksLike::SocialSecurityNumber);
        }
        if is_phone(&run) {
            return Some(LooksLike::PhoneNumber);
        }
    }
    None
}

/// After `1 85 05 2`, an `A` or a `B` continues a NIR (Corsica: 2A, 2B).
fn corsica(digits: &str) -> bool {
    digits.len() == 6 && digits.ends_with('2') && matches!(digits.as_bytes()[0], b'1' | b'2')
}

fn is_email(word: &str) -> bool {
    let Some((local, domain)) = word.rsplit_once('@') else { return false };
    !local.is_empty() && domain.split_once('.').is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
}

fn is_nir(run: &str) -> bool {
    let b = run.as_bytes();
    (b.len() == 13 || b.len() == 15)
        && matches!(b[0], b'1' | b'2' | b'3' | b'4' | b'7' | b'8')
        && b.iter().enumerate().all(|(i, c)| c.is_ascii_digit() || (i == 6 && matches!(c, b'A' | b'B')))
}

fn is_phone(run: &str) -> bool {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    match run.strip_prefix('+') {
        Some(_) => (8..=15).contains(&digits),
        None => (run.starts_with('0') && digits == 10) || (run.starts_with("0033") && digits == 13),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_pass() {
        for r in ["AIDANT-00003", "A-1", "PIX-0042", "STAGIAIRE 12", "aidant-42", "T-2021-0001", "Marie"] {
            assert_eq!(looks_like(r), None, "{r}");
        }
    }

    #[test]
    fn e_mail_addresses_phone_numbers_and_nir_are_told() {
        let cases = [
            ("marie.dupont@example.org", LooksLike::EmailAddress),
            ("contact: m@ccas-brest.fr", LooksLike::EmailAddress),
            ("06 12 34 56 78", LooksLike::PhoneNumber),
            ("06.12.34.56.78", LooksLike::PhoneNumber),
            ("+33 6 12 34 56 78", LooksLike::PhoneNumber),
            ("0612345678", LooksLike::PhoneNumber),
            ("1 85 05 75 123 456 78", LooksLike::SocialSecurityNumber),
            ("185057512345678", LooksLike::SocialSecurityNumber),
            ("2850575123456", LooksLike::SocialSecurityNumber),
            ("1 85 05 2A 123 456 78", LooksLike::SocialSecurityNumber),
        ];
        for (text, kind) in cases {
            assert_eq!(looks_like(text), Some(kind), "{text}");
        }
    }
}

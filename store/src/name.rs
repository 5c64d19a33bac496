//! [`Name`]: a string the log repeats on many events (a stream's name, an event type),
//! shared rather than copied, so that reading the log does not allocate it once per
//! event (measured: the copies were 15% of a replay).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A shared, immutable string; compares, hashes, prints and serialises as the text it holds.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(s.into())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(s.as_str().into())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0.to_string()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == &*other.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Name(String::deserialize(d)?.into()))
    }
}

impl rusqlite::ToSql for Name {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.as_str().to_sql()
    }
}

/// Hands out one shared [`Name`] per distinct text: what a reader of the log keeps.
#[derive(Default)]
pub(crate) struct Names {
    known: std::collections::HashSet<Name>,
    /// The last name handed out: events of one type often follow each other.
    last: Option<Name>,
}

impl Names {
    pub(crate) fn get(&mut self, text: &str) -> Name {
        if let Some(last) = self.last.as_ref().filter(|l| l.as_str() == text) {
            return last.clone();
        }
        let name = match self.known.get(text) {
            Some(name) => name.clone(),
            None => {
                let name = Name::from(text);
                self.known.insert(name.clone());
                name
            }
        };
        self.last = Some(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_behaves_as_its_text_and_names_are_shared() {
        let n = Name::from("convention-42");
        assert_eq!(n, "convention-42");
        assert_eq!("convention-42", n);
        assert_eq!(n, "convention-42".to_string());
        assert_eq!(n.split_once('-'), Some(("convention", "42")));
        assert_eq!(format!("{n} {n:?}"), "convention-42 \"convention-42\"");
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"convention-42\"");
        assert_eq!(serde_json::from_str::<Name>("\"convention-42\"").unwrap(), n);
        let mut names = Names::default();
        let (a, b, c) = (names.get("FundsCommitted"), names.get("ConventionSigned"), names.get("FundsCommitted"));
        assert!(Arc::ptr_eq(&a.0, &c.0), "one allocation per distinct text");
        assert_ne!(a, b);
    }
}

//! An event's JSON payload, kept as the exact text the log holds: reading the log does not
//! parse it (replay decodes it once, straight into the typed event), and the hash chain
//! covers exactly these bytes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

impl Payload {
    /// The payload of a serialisable value (compact JSON).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Payload(serde_json::to_string(value)?.into()))
    }

    /// Text read back from a log; trusted to be what was written (the chain checks it).
    pub fn from_text(text: impl Into<Arc<str>>) -> Self {
        Payload(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decodes the payload into a typed event.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The payload as a JSON tree, for tests and tools.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialised as the JSON it is (not as a string), so exports stay readable.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(Payload(raw.get().into()))
    }
}

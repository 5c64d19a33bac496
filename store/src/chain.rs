//! Tamper evidence. Every event carries a hash covering its whole content and the hash of
//! the previous event of its stream (a chain per stream, which any backend can keep, since
//! an append already knows the stream's last version). The embedded log also keeps a chain
//! over the whole log in position order (`log_hash`), so a deleted, inserted or reordered
//! event anywhere breaks it.
//!
//! A chain proves that nobody altered the log *relative to a digest published earlier*:
//! someone able to rewrite the file could recompute every hash after their change. So the
//! head digest (`verify` prints it) is what reports quote and auditors keep.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 digest, shown in hexadecimal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash "before" the first event of a stream or of the log.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        Some(ChainHash(out))
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(ChainHash)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChainHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hexadecimal digits"))
    }
}

/// Everything an event's hash covers, borrowed from wherever the event is (a new event
/// being appended, or a row being verified).
pub struct HashedFields<'a> {
    pub stream: &'a str,
    pub version: u64,
    pub event_id: &'a [u8; 16],
    pub event_type: &'a str,
    pub schema_version: u32,
    pub business_date: NaiveDate,
    /// Microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    pub payload: &'a str,
    pub command_id: &'a [u8; 16],
    pub actor: &'a str,
    pub correlation_id: &'a [u8; 16],
    pub causation_id: Option<&'a [u8; 16]>,
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    // Length-prefixed, so that no two different events encode to the same bytes.
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// `YYYY-MM-DD` for years 0 to 9999, byte for byte what `format("%Y-%m-%d")` writes,
/// without its cost (every append and every verified event hashes a date).
fn iso_date(d: NaiveDate) -> Option<[u8; 10]> {
    use chrono::Datelike;
    let year = u32::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let (m, day) = (d.month(), d.day());
    Some([
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(day / 10),
        digit(day),
    ])
}

/// The hash of an event: its content chained to the previous event of its stream.
pub fn event_hash(previous_in_stream: &ChainHash, e: &HashedFields<'_>) -> ChainHash {
    let mut h = Sha256::new();
    h.update(b"convention-tracker/event/v1");
    h.update(previous_in_stream.0);
    field(&mut h, e.stream.as_bytes());
    h.update(e.version.to_be_bytes());
    h.update(e.event_id);
    field(&mut h, e.event_type.as_bytes());
    h.update(e.schema_version.to_be_bytes());
    match iso_date(e.business_date) {
        Some(text) => field(&mut h, &text),
        None => field(&mut h, e.business_date.format("%Y-%m-%d").to_string().as_bytes()),
    }
    h.update(e.recorded_at_micros.to_be_bytes());
    field(&mut h, e.payload.as_bytes());
    h.update(e.command_id);
    field(&mut h, e.actor.as_bytes());
    h.update(e.correlation_id);
    match e.causation_id {
        Some(c) => {
            h.update([1]);
            h.update(c);
        }
        None => h.update([0]),
    }
    ChainHash(h.finalize().into())
}

/// The hash of the whole log up to an event: the previous log hash, the event's global
/// position and its own hash.
pub fn log_hash(previous: &ChainHash, position: u64, event: &ChainHash) -> ChainHash {
    let mut h = Sha256::new();
    h.update(b"convention-tracker/log/v1");
    h.update(previous.0);
    h.update(position.to_be_bytes());
    h.update(event.0);
    ChainHash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(payload: &'a str, actor: &'a str) -> HashedFields<'a> {
        HashedFields {
            stream: "convention-x",
            version: 1,
            event_id: &[1; 16],
            event_type: "ConventionSigned",
            schema_version: 1,
            business_date: NaiveDate::from_ymd_opt(2021, 3, 15).unwrap(),
            recorded_at_micros: 1_615_800_000_000_000,
            payload,
            command_id: &[2; 16],
            actor,
            correlation_id: &[3; 16],
            causation_id: None,
        }
    }

    #[test]
    fn any_change_of_content_or_predecessor_changes_the_hash() {
        let base = event_hash(&ChainHash::GENESIS, &fields("{\"a\":1}", "anct"));
        assert_ne!(base, event_hash(&ChainHash::GENESIS, &fields("{\"a\":2}", "anct")));
        assert_ne!(base, event_hash(&ChainHash::GENESIS, &fields("{\"a\":1}", "opco")));
        assert_ne!(base, event_hash(&base, &fields("{\"a\":1}", "anct")));
        assert_eq!(base, event_hash(&ChainHash::GENESIS, &fields("{\"a\":1}", "anct")), "deterministic");
        // Length prefixes keep field boundaries: moving a byte between fields changes the hash.
        assert_ne!(
            event_hash(&ChainHash::GENESIS, &fields("ab", "c")),
            event_hash(&ChainHash::GENESIS, &fields("a", "bc"))
        );
    }

    #[test]
    fn dates_hash_as_their_iso_text() {
        for (y, m, d) in [(2021, 3, 15), (1, 1, 1), (999, 12, 31), (9999, 12, 31)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(iso_date(date).unwrap(), date.format("%Y-%m-%d").to_string().as_bytes());
        }
        assert_eq!(iso_date(NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap()), None);
    }

    #[test]
    fn log_hash_depends_on_position() {
        let e = event_hash(&ChainHash::GENESIS, &fields("{}", "anct"));
        assert_ne!(log_hash(&ChainHash::GENESIS, 1, &e), log_hash(&ChainHash::GENESIS, 2, &e));
    }

    #[test]
    fn hex_round_trips() {
        let e = event_hash(&ChainHash::GENESIS, &fields("{}", "anct"));
        assert_eq!(ChainHash::from_hex(&e.to_hex()), Some(e));
        assert_eq!(ChainHash::from_hex("zz"), None);
    }
}

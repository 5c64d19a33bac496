//! The packed record of an event: every field the log does not index, in one blob of
//! fixed-width little-endian fields and length-prefixed strings, so that writing an event
//! binds two values and replaying it reads two columns, instead of fifteen (each column
//! read costs 0.1 to 0.2 µs: more than the rest of a replay together).
//!
//! Layout: tag u8 · stream id i64 · position of the stream's previous event u64 (0
//! before its first) · version u64 · event id [16] · command id [16] · correlation id
//! [16] · causation flag u8 (+ [16] when 1) · schema version u32 · business date i32
//! (days from 0001-01-01) · recorded at i64 (µs since the epoch) · hash [32] · log hash
//! [32] · *append mark (tag 2 only)* · event type (u16 length + UTF-8) · actor (u16
//! length + UTF-8) · payload (UTF-8 JSON, the rest of the blob: last, so that it can be
//! edited in place with SQL, as the tamper tests do).
//!
//! Tag 1 is log format 2, whose commands had a table of their own. Tag 2 (format 3)
//! carries the command in the events instead, so that an append writes one row per event
//! and nothing else: the append mark is a u8, 0 on every event but an append's first,
//! which has 1 (fingerprint as text: u16 length + UTF-8) or 2 (a SHA-256 fingerprint in
//! hex, packed: [32]), then the append's event count u32, then the fingerprint.

use crate::chain::ChainHash;
use chrono::{Datelike, NaiveDate};

/// Format 2 records: no append mark.
const TAG_UNMARKED: u8 = 1;
const TAG: u8 = 2;

/// Where an event stands in the append that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Append<'a> {
    /// A format 2 record: its command is in the commands table.
    Unmarked,
    /// Not the first event of its append.
    Continues,
    /// The first event of an append of `events` events, for a command with this fingerprint.
    Starts { events: u32, fingerprint: Fingerprint<'a> },
}

/// A command's fingerprint as stored: the handler's (SHA-256 in lowercase hex) in half
/// the bytes, any other as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fingerprint<'a> {
    Text(&'a str),
    Sha256([u8; 32]),
}

impl<'a> Fingerprint<'a> {
    pub fn new(text: &'a str) -> Self {
        let b = text.as_bytes();
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        if b.len() == 64 {
            let mut packed = [0u8; 32];
            if packed.iter_mut().zip(b.chunks_exact(2)).all(|(p, pair)| match (nibble(pair[0]), nibble(pair[1])) {
                (Some(h), Some(l)) => {
                    *p = h << 4 | l;
                    true
                }
                _ => false,
            }) {
                return Fingerprint::Sha256(packed);
            }
        }
        Fingerprint::Text(text)
    }

    /// The fingerprint as the command handler made it.
    pub fn text(&self) -> String {
        match self {
            Fingerprint::Text(t) => t.to_string(),
            Fingerprint::Sha256(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Appends the record to `out` (cleared first). Strings longer than 65 535 bytes are
/// refused by the request checks (`check_request`) before they get here.
pub(crate) fn encode(r: &Record<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.push(if r.append == Append::Unmarked { TAG_UNMARKED } else { TAG });
    out.extend_from_slice(&r.stream_id.to_le_bytes());
    out.extend_from_slice(&r.previous.to_le_bytes());
    out.extend_from_slice(&r.version.to_le_bytes());
    out.extend_from_slice(&r.event_id);
    out.extend_from_slice(&r.command_id);
    out.extend_from_slice(&r.correlation_id);
    match r.causation_id {
        Some(c) => {
            out.push(1);
            out.extend_from_slice(&c);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&r.schema_version.to_le_bytes());
    out.extend_from_slice(&r.business_date.num_days_from_ce().to_le_bytes());
    out.extend_from_slice(&r.recorded_at_micros.to_le_bytes());
    out.extend_from_slice(&r.hash.0);
    out.extend_from_slice(&r.log_hash.0);
    match r.append {
        Append::Unmarked => {}
        Append::Continues => out.push(0),
        Append::Starts { events, fingerprint } => {
            out.push(if matches!(fingerprint, Fingerprint::Text(_)) { 1 } else { 2 });
            out.extend_from_slice(&events.to_le_bytes());
            match fingerprint {
                Fingerprint::Text(t) => {
                    out.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
                Fingerprint::Sha256(bytes) => out.extend_from_slice(&bytes),
            }
        }
    }
    for s in [r.event_type, r.actor] {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(r.payload.as_bytes());
}

/// The fields of a record: what the writer encodes and what a read decodes (strings
/// borrow the request or the blob; ids and hashes are copied, a few bytes each).
pub(crate) struct Record<'a> {
    pub stream_id: i64,
    pub previous: u64,
    pub version: u64,
    pub event_id: [u8; 16],
    pub command_id: [u8; 16],
    pub correlation_id: [u8; 16],
    pub causation_id: Option<[u8; 16]>,
    pub schema_version: u32,
    pub business_date: NaiveDate,
    pub recorded_at_micros: i64,
    pub hash: ChainHash,
    pub log_hash: ChainHash,
    pub append: Append<'a>,
    pub event_type: &'a str,
    pub actor: &'a str,
    pub payload: &'a str,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = u16::from_le_bytes(self.take()?) as usize;
        if self.0.len() < len {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }
}

/// The date `days` after 0001-01-01, remembered: chrono's conversion took 8% of the
/// reader thread's time in a replay (2% with this), and a log's business dates span a
/// few years (2 048 days fit; others are computed).
fn date(days: i32) -> Option<NaiveDate> {
    use std::cell::RefCell;
    const SLOTS: usize = 2048;
    thread_local! {
        static DATES: RefCell<Vec<Option<(i32, NaiveDate)>>> = const { RefCell::new(Vec::new()) };
    }
    DATES.with_borrow_mut(|slots| {
        if slots.is_empty() {
            slots.resize(SLOTS, None);
        }
        let slot = &mut slots[days.rem_euclid(SLOTS as i32) as usize];
        match *slot {
            Some((known, date)) if known == days => Some(date),
            _ => {
                let date = NaiveDate::from_num_days_from_ce_opt(days)?;
                *slot = Some((days, date));
                Some(date)
            }
        }
    })
}

/// Decodes a record; `None` when it is not a well-formed record of this format (which
/// `verify` reports as an unreadable event).
pub(crate) fn decode(blob: &[u8]) -> Option<Record<'_>> {
    let mut r = Reader(blob);
    let tag = r.take::<1>()?[0];
    if tag != TAG && tag != TAG_UNMARKED {
        return None;
    }
    let stream_id = i64::from_le_bytes(r.take()?);
    let previous = u64::from_le_bytes(r.take()?);
    let version = u64::from_le_bytes(r.take()?);
    let event_id = r.take()?;
    let command_id = r.take()?;
    let correlation_id = r.take()?;
    let causation_id = match r.take::<1>()?[0] {
        0 => None,
        1 => Some(r.take()?),
        _ => return None,
    };
    let schema_version = u32::from_le_bytes(r.take()?);
    let business_date = date(i32::from_le_bytes(r.take()?))?;
    let recorded_at_micros = i64::from_le_bytes(r.take()?);
    let hash = ChainHash(r.take()?);
    let log_hash = ChainHash(r.take()?);
    let append = if tag == TAG_UNMARKED {
        Append::Unmarked
    } else {
        match r.take::<1>()?[0] {
            0 => Append::Continues,
            kind @ (1 | 2) => {
                let events = u32::from_le_bytes(r.take()?);
                let fingerprint = if kind == 1 { Fingerprint::Text(r.text()?) } else { Fingerprint::Sha256(r.take()?) };
                Append::Starts { events, fingerprint }
            }
            _ => return None,
        }
    };
    let event_type = r.text()?;
    let actor = r.text()?;
    let payload = std::str::from_utf8(r.0).ok()?;
    Some(Record {
        stream_id,
        previous,
        version,
        event_id,
        command_id,
        correlation_id,
        causation_id,
        schema_version,
        business_date,
        recorded_at_micros,
        hash,
        log_hash,
        append,
        event_type,
        actor,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_damaged_one_is_refused() {
        let (hash, log) = (ChainHash([7; 32]), ChainHash([9; 32]));
        let r = Record {
            stream_id: 12,
            previous: 40,
            version: 42,
            event_id: [1; 16],
            command_id: [2; 16],
            correlation_id: [3; 16],
            causation_id: Some([4; 16]),
            schema_version: 3,
            business_date: NaiveDate::from_ymd_opt(2021, 3, 15).unwrap(),
            recorded_at_micros: -5,
            hash,
            log_hash: log,
            append: Append::Starts { events: 3, fingerprint: Fingerprint::Text("fp") },
            event_type: "ConventionSigned",
            actor: "anct·é",
            payload: "{\"n\":1}",
        };
        let mut blob = Vec::new();
        encode(&r, &mut blob);
        let d = decode(&blob).unwrap();
        assert_eq!((d.stream_id, d.previous, d.version, d.schema_version, d.recorded_at_micros), (12, 40, 42, 3, -5));
        assert_eq!(
            (d.event_id, d.command_id, d.correlation_id, d.causation_id),
            ([1; 16], [2; 16], [3; 16], Some([4; 16]))
        );
        assert_eq!((d.business_date, d.hash, d.log_hash), (r.business_date, hash, log));
        assert_eq!((d.event_type, d.actor, d.payload), ("ConventionSigned", "anct·é", "{\"n\":1}"));
        assert_eq!(d.append, r.append);
        assert!(decode(&blob[..100]).is_none(), "truncated");
        blob.push(0xff);
        assert!(decode(&blob).is_none(), "not UTF-8");
        assert!(decode(&[3]).is_none(), "another format");
        // Every kind of append mark, and the format 2 record without one.
        let sha = "0123456789abcdef".repeat(4);
        for append in [
            Append::Unmarked,
            Append::Continues,
            Append::Starts { events: 1, fingerprint: Fingerprint::new(&sha) },
            Append::Starts { events: u32::MAX, fingerprint: Fingerprint::new("") },
        ] {
            let mut blob = Vec::new();
            encode(&Record { append, ..r }, &mut blob);
            let d = decode(&blob).unwrap();
            assert_eq!((d.append, d.payload, d.actor), (append, r.payload, r.actor));
        }
        let mut blob = encoded(&Record { append: Append::Continues, ..r });
        let mark = blob.len() - r.payload.len() - r.actor.len() - r.event_type.len() - 5;
        blob[mark] = 3;
        assert!(decode(&blob).is_none(), "an unknown append mark");
    }

    fn encoded(r: &Record<'_>) -> Vec<u8> {
        let mut blob = Vec::new();
        encode(r, &mut blob);
        blob
    }

    #[test]
    fn sha256_fingerprints_are_packed_and_come_back_the_same() {
        let sha = "00ff10aa".repeat(8);
        assert!(matches!(Fingerprint::new(&sha), Fingerprint::Sha256(b) if b[1] == 0xff && b[3] == 0xaa));
        assert_eq!(Fingerprint::new(&sha).text(), sha);
        // Anything else stays text: upper case, 63 or 65 characters, not hex, a UUID.
        for other in [sha.to_uppercase(), sha[1..].to_string(), format!("{sha}0"), "g".repeat(64), "fp-1".into()] {
            assert_eq!(Fingerprint::new(&other), Fingerprint::Text(&other));
            assert_eq!(Fingerprint::new(&other).text(), other);
        }
    }

    #[test]
    fn remembered_dates_are_the_dates() {
        // Two days that share a slot, each asked twice, and days out of chrono's range.
        for days in [738_000, 738_000 + 2048, 738_000, 738_000 + 2048, 1, -1_000] {
            assert_eq!(date(days), NaiveDate::from_num_days_from_ce_opt(days));
        }
        assert_eq!(date(i32::MIN), None);
        assert_eq!(date(i32::MAX), None);
    }
}

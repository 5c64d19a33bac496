//! The packed record of an event (log format 2): every field the log does not index, in
//! one blob of fixed-width little-endian fields and length-prefixed strings, so that
//! writing an event binds two values and replaying it reads two columns, instead of
//! fifteen (each column read costs 0.1 to 0.2 µs: more than the rest of a replay together).
//!
//! Layout (format tag 1): tag u8 · stream id i64 · position of the stream's previous
//! event u64 (0 before its first) · version u64 · event id [16] · command id [16] ·
//! correlation id [16] · causation flag u8 (+ [16] when 1) · schema version u32 ·
//! business date i32 (days from 0001-01-01) · recorded at i64 (µs since the epoch) ·
//! hash [32] · log hash [32] · event type (u16 length + UTF-8) · actor (u16 length + UTF-8) ·
//! payload (UTF-8 JSON, the rest of the blob: last, so that it can be edited in place
//! with SQL, as the tamper tests do).

use crate::chain::ChainHash;
use chrono::{Datelike, NaiveDate};

const TAG: u8 = 1;

/// Appends the record to `out` (cleared first). Strings longer than 65 535 bytes are
/// refused by the caller's checks before they get here.
pub(crate) fn encode(r: &Record<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.push(TAG);
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
    if r.take::<1>()?[0] != TAG {
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
        assert!(decode(&blob[..100]).is_none(), "truncated");
        blob.push(0xff);
        assert!(decode(&blob).is_none(), "not UTF-8");
        assert!(decode(&[2]).is_none(), "another format");
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

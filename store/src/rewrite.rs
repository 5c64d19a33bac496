//! A copy of a log with some fields changed, chained anew: the one way a log's content
//! ever changes, for a migration that must take something out of it (the actors' names
//! and the persons' references written before the directory of persons, and the ids
//! derived from those references). The copy goes into a new place (a file, a schema) and
//! never touches the original, which the caller keeps sealed by its head digest.
//!
//! What changes is the same whatever the backend ([`Rewrite`]); each backend reads and
//! writes its own way ([`crate::sqlite::rewrite`], [`crate::postgres::rewrite`]) and
//! shares here the bookkeeping of each stream, event and command, so that both call the
//! [`Rewrite`] alike and count alike.

use crate::StoreError;
use crate::chain::ChainHash;
use std::collections::HashSet;
use uuid::Uuid;

/// What a rewrite may change in an event.
pub struct Rewritten {
    pub actor: String,
    pub payload: String,
}

/// What changes in the copy. Only [`Rewrite::event`] is required; by default streams keep
/// their names and commands their fingerprints.
pub trait Rewrite {
    /// A stream's name in the copy (called once per stream, before any event). Two streams
    /// may not end up with one name (the copy is refused).
    fn stream(&mut self, name: &str) -> String {
        name.to_string()
    }

    /// An id in the copy: each event's id, its command's, its correlation's and its
    /// causation's go through it (an id derived from something the copy changes changes
    /// with it).
    fn id(&mut self, id: Uuid) -> Uuid {
        id
    }

    /// An event's actor and payload in the copy; `stream` is its stream's new name.
    fn event(&mut self, stream: &str, event_type: &str, actor: &str, payload: &str) -> Rewritten;

    /// The fingerprint the copy keeps for the command of one append (to `stream`, its new
    /// name), given its events' new payloads; `changed` says whether the stream was
    /// renamed or a payload of the append changed (the command then had other content).
    fn fingerprint(
        &mut self,
        _command_id: Uuid,
        _stream: &str,
        old: &str,
        _changed: bool,
        _payloads: &[&str],
    ) -> String {
        old.to_string()
    }
}

/// A closure of `(stream, event type, actor, payload)` changes events only.
impl<F: FnMut(&str, &str, &str, &str) -> Rewritten> Rewrite for F {
    fn event(&mut self, stream: &str, event_type: &str, actor: &str, payload: &str) -> Rewritten {
        self(stream, event_type, actor, payload)
    }
}

/// What a rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteReport {
    pub events: u64,
    /// Events whose actor or payload changed.
    pub changed: u64,
    /// Streams whose name changed.
    pub streams_renamed: u64,
    /// Commands whose fingerprint changed.
    pub fingerprints_changed: u64,
    /// Events one of whose ids (its own, its command's, correlation's or causation's)
    /// changed.
    pub ids_changed: u64,
    /// The copy's head: position and log hash.
    pub head_position: u64,
    pub head_hash: ChainHash,
}

/// The ids of an event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventIds {
    pub event: Uuid,
    pub command: Uuid,
    pub correlation: Uuid,
    pub causation: Option<Uuid>,
}

/// One copy under way: the [`Rewrite`], what it did so far, the streams' new names.
pub(crate) struct Copying<R> {
    pub change: R,
    pub report: RewriteReport,
    names: HashSet<String>,
}

/// One append being copied: whether its stream was renamed or one of its payloads
/// changed (its command had other content then).
#[derive(Default)]
pub(crate) struct AppendCopy {
    pub changed: bool,
}

impl<R: Rewrite> Copying<R> {
    pub fn new(change: R) -> Self {
        let report = RewriteReport {
            events: 0,
            changed: 0,
            streams_renamed: 0,
            fingerprints_changed: 0,
            ids_changed: 0,
            head_position: 0,
            head_hash: ChainHash::GENESIS,
        };
        Self { change, report, names: HashSet::new() }
    }

    /// A stream's new name (once per stream, before its events); refused when another
    /// stream has it already.
    pub fn stream(&mut self, old: &str) -> Result<String, StoreError> {
        let new = self.change.stream(old);
        if !self.names.insert(new.clone()) {
            return Err(StoreError::backend(format!(
                "stream {old} cannot be named {new} in the copy: two streams would have that name"
            )));
        }
        self.report.streams_renamed += u64::from(new != old);
        Ok(new)
    }

    /// An event's ids in the copy.
    pub fn ids(&mut self, old: EventIds) -> EventIds {
        let change = &mut self.change;
        let new = EventIds {
            event: change.id(old.event),
            command: change.id(old.command),
            correlation: change.id(old.correlation),
            causation: old.causation.map(|c| change.id(c)),
        };
        self.report.ids_changed += u64::from(new != old);
        new
    }

    /// An event's actor and payload in the copy (`stream`: its new name), as part of
    /// `append`.
    pub fn event(
        &mut self,
        append: &mut AppendCopy,
        stream: &str,
        event_type: &str,
        actor: &str,
        payload: &str,
    ) -> Rewritten {
        let n = self.change.event(stream, event_type, actor, payload);
        self.report.changed += u64::from(n.actor != actor || n.payload != payload);
        append.changed |= n.payload != payload;
        n
    }

    /// The fingerprint of an append's command in the copy (`command`: its new id,
    /// `stream`: its new name, `renamed`: whether that is not its old one).
    pub fn fingerprint(
        &mut self,
        append: &AppendCopy,
        command: Uuid,
        stream: &str,
        renamed: bool,
        old: &str,
        payloads: &[&str],
    ) -> String {
        let fresh = self.change.fingerprint(command, stream, old, append.changed || renamed, payloads);
        self.report.fingerprints_changed += u64::from(fresh != old);
        fresh
    }

    /// One event written at `position`, the log's hash then `log_hash`.
    pub fn written(&mut self, position: u64, log_hash: ChainHash) {
        self.report.events += 1;
        self.report.head_position = position;
        self.report.head_hash = log_hash;
    }
}

/// What the tests of both copies share: events to write, and a change to copy them with.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Rewrite, Rewritten};
    use crate::{NewEvent, Payload};
    use domain::{CommandId, CommandMeta, EventId};
    use uuid::Uuid;

    pub(crate) fn event(command_id: CommandId, i: usize, payload: &str) -> NewEvent {
        NewEvent {
            event_id: EventId::for_command(command_id, i),
            event_type: "Noted".into(),
            schema_version: 1,
            business_date: chrono::NaiveDate::from_ymd_opt(2021, 3, 1).unwrap(),
            payload: Payload::from_text(payload.to_string()),
            metadata: CommandMeta::new(command_id, "anct"),
        }
    }

    /// Renames `…-old` streams, takes `secret` out of payloads, gives a command another id.
    pub(crate) struct Renaming(pub Uuid, pub Uuid);

    impl Rewrite for Renaming {
        fn id(&mut self, id: Uuid) -> Uuid {
            if id == self.0 { self.1 } else { id }
        }
        fn stream(&mut self, name: &str) -> String {
            name.replace("old", "new")
        }
        fn event(&mut self, _: &str, _: &str, actor: &str, payload: &str) -> Rewritten {
            Rewritten { actor: actor.to_string(), payload: payload.replace("secret", "id") }
        }
        fn fingerprint(&mut self, _: Uuid, stream: &str, old: &str, changed: bool, payloads: &[&str]) -> String {
            if changed { format!("{stream}:{}", payloads.join("+")) } else { old.to_string() }
        }
    }
}

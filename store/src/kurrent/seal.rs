//! The whole-log seal of the KurrentDB backend and its verification: KurrentDB keeps no
//! whole-log chain of its own, so the digest `verify` computes is written into the log
//! (`tracker verify --seal`) and checked by every later verification; and every command
//! record is checked against its events.

use super::*;

/// A digest of the whole log up to `position`, written in the log itself by `tracker
/// verify --seal`, and checked by every later verification: events deleted or changed
/// before it (a whole stream deleted included) change the digest; a log that ends before
/// it was cut. KurrentDB keeps no whole-log chain of its own, so this is what stands for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seal {
    /// The last event it covers.
    pub position: u64,
    /// The whole-log digest there (`verify`'s head digest).
    pub hash: ChainHash,
    /// How many tracker events it covers.
    pub events: u64,
    pub sealed_at: DateTime<Utc>,
}

/// Where a command record says its events are.
struct Span {
    stream: String,
    first_version: u64,
    last_version: u64,
}

impl KurrentStore {
    /// The last seal written, with its revision in [`SEAL_STREAM`].
    pub async fn last_seal(&self) -> Result<Option<(Seal, u64)>, StoreError> {
        let Some(raw) = self.reads.stream_last(SEAL_STREAM).await? else { return Ok(None) };
        let seal = serde_json::from_slice(&raw.data)
            .map_err(|e| StoreError::corrupt(format!("{SEAL_STREAM} revision {}: {e}", raw.revision)))?;
        Ok(Some((seal, raw.revision)))
    }

    /// Verifies every event's hash and every stream's chain, and the whole log against
    /// `expect` (a digest published earlier) or, without it, against the last seal;
    /// answers the seal checked.
    pub async fn verify(
        &self,
        expect: Option<(u64, ChainHash)>,
    ) -> Result<(crate::Verification, Option<Seal>), StoreError> {
        let seal = self.last_seal().await?.map(|(seal, _)| seal);
        let anchor = expect.or(seal.as_ref().map(|s| (s.position, s.hash)));
        let mut verifier = crate::Verifier::new(false);
        if let Some((position, hash)) = anchor {
            verifier = verifier.expecting(position, hash);
        }
        let mut after = 0;
        // Each command's stream and versions, as its events say.
        let mut commands: HashMap<CommandId, (String, u64, u64, u64)> = HashMap::new();
        'pages: loop {
            let page = self.read_all(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for e in &page {
                if !verifier.check(e, None) {
                    break 'pages;
                }
                let c = commands.entry(e.metadata.command_id).or_insert((
                    e.stream.clone(),
                    e.version,
                    e.version,
                    e.position,
                ));
                c.2 = c.2.max(e.version);
            }
        }
        let mut report = verifier.finish();
        if report.is_intact() {
            report.first_break = self.check_command_records(commands).await?;
        }
        Ok((report, if expect.is_none() { seal } else { None }))
    }

    /// Every command of the log has its record, naming its stream and versions, and every
    /// record its events: a record deleted would let a retry apply its command again.
    async fn check_command_records(
        &self,
        mut commands: HashMap<CommandId, (String, u64, u64, u64)>,
    ) -> Result<Option<crate::Break>, StoreError> {
        let mut from = None;
        let mut seen = None;
        loop {
            let page = self.reads.commands_forwards(from, 4096).await?;
            let full = page.len() == 4096;
            for raw in &page {
                if seen.is_some_and(|s: Position| raw.position.prepare <= s.prepare) {
                    continue;
                }
                seen = Some(raw.position);
                let Some(id) = raw.stream.strip_prefix(COMMAND_STREAM).and_then(|id| id.parse::<Uuid>().ok()) else {
                    continue;
                };
                let broken = |reason: String| crate::Break {
                    position: raw.position.prepare,
                    stream: raw.stream.clone(),
                    version: 1,
                    reason,
                };
                // The stream and versions it names (a record of before the v2 append holds them
                // in its answer).
                #[derive(Deserialize)]
                struct Before {
                    outcome: AppendOutcome,
                }
                let body = match serde_json::from_slice::<CommandRecordBody>(&raw.data) {
                    Ok(b) => (b.stream, b.first_version, b.last_version),
                    Err(e) => match serde_json::from_slice::<Before>(&raw.data) {
                        Ok(b) => (b.outcome.stream, b.outcome.first_version, b.outcome.last_version),
                        Err(_) => return Ok(Some(broken(format!("the record of command {id} is unreadable: {e}")))),
                    },
                };
                let body = Span { stream: body.0, first_version: body.1, last_version: body.2 };
                match commands.remove(&CommandId(id)) {
                    Some((stream, first, last, _))
                        if stream == body.stream && (first, last) == (body.first_version, body.last_version) => {}
                    Some((stream, first, last, _)) => {
                        return Ok(Some(broken(format!(
                            "the record of command {id} names {} versions {}..={}, its events are {stream} versions {first}..={last}",
                            body.stream, body.first_version, body.last_version
                        ))));
                    }
                    None => {
                        return Ok(Some(broken(format!(
                            "the record of command {id} names {} versions {}..={}, which the log does not hold",
                            body.stream, body.first_version, body.last_version
                        ))));
                    }
                }
            }
            match page.last() {
                Some(last) if full => from = Some(last.position),
                _ => break,
            }
        }
        // Commands whose record is missing (the first in log order is reported).
        Ok(commands.into_iter().min_by_key(|(_, c)| c.3).map(|(id, (stream, first, _, position))| crate::Break {
            position,
            stream,
            version: first,
            reason: format!(
                "command {id} has no record: it was deleted, and a retry of the command could be applied again"
            ),
        }))
    }

    /// Writes a seal of an intact verification: later ones are checked against it.
    pub async fn seal(&self, report: &crate::Verification) -> Result<Seal, StoreError> {
        let wire = match &self.writes {
            Writes::V2(wire) => wire,
            Writes::Refused(why) => return Err(StoreError::Unsupported(why)),
        };
        if !report.is_intact() || report.events == 0 {
            return Err(backend("only an intact, non-empty log is sealed"));
        }
        let last = self.last_seal().await?;
        if let Some((previous, _)) = &last
            && previous.position > report.head_position
        {
            return Err(backend(format!(
                "the last seal covers position {}, beyond this verification's {}",
                previous.position, report.head_position
            )));
        }
        let seal = Seal {
            position: report.head_position,
            hash: report.head_hash,
            events: report.events,
            sealed_at: crate::now(),
        };
        let request = pb::AppendRequest {
            stream: SEAL_STREAM.into(),
            records: vec![pb::AppendRecord {
                record_id: Some(Uuid::new_v4().to_string()),
                properties: Default::default(),
                schema: Some(pb::SchemaInfo {
                    format: Some(pb::SCHEMA_FORMAT_JSON),
                    name: SEAL_EVENT_TYPE.into(),
                    id: None,
                }),
                data: serde_json::to_vec(&seal).map_err(backend)?,
            }],
            expected_revision: Some(last.map_or(wire::NO_STREAM, |(_, revision)| revision as i64)),
        };
        match wire.append_session(vec![request]).await {
            Ok(_) => Ok(seal),
            Err(WireError::Conflict { .. }) => Err(backend("another seal was written meanwhile: verify again")),
            Err(WireError::Ambiguous(e) | WireError::Refused(e) | WireError::Unimplemented(e)) => Err(backend(e)),
        }
    }
}

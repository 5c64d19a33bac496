//! `tracker verify` on PostgreSQL: every event's hash, every stream's chain, the
//! whole-log chain each row keeps, positions 1..n without a gap, the head row against
//! the last event, and the command records against the events they answer for.

use super::{PostgresStore, SELECT_EVENT, hash_of, pg, to_event};
use crate::{ChainHash, StoreError, Verification, Verifier};
use std::collections::HashMap;
use uuid::Uuid;

/// Events read per page.
const PAGE: i64 = 10_000;

impl PostgresStore {
    /// Verifies the whole log (against a digest published earlier, if given). Reads only.
    pub async fn verify(&self, anchor: Option<(u64, ChainHash)>) -> Result<Verification, StoreError> {
        let client = self.client().await?;
        let mut verifier = Verifier::new(true);
        if let Some((position, hash)) = anchor {
            verifier = verifier.expecting(position, hash);
        }
        // Command id → (stream, first and last position), checked off as events come.
        let mut commands: HashMap<Uuid, (String, u64, u64)> = HashMap::new();
        for row in client
            .query("SELECT command_id, stream, first_position, last_position FROM tracker_commands", &[])
            .await
            .map_err(pg)?
        {
            let (first, last): (i64, i64) = (row.get(2), row.get(3));
            commands.insert(row.get(0), (row.get(1), first as u64, last as u64));
        }
        let head: (i64, Vec<u8>) = {
            let row = client.query_one("SELECT position, log_hash FROM tracker_head", &[]).await.map_err(pg)?;
            (row.get(0), row.get(1))
        };
        let stmt = client
            .prepare(&format!(
                "{}, log_hash FROM tracker_events WHERE position > $1 ORDER BY position LIMIT $2",
                SELECT_EVENT.trim_end_matches(" FROM tracker_events")
            ))
            .await
            .map_err(pg)?;
        let (mut after, mut last_log) = (0i64, ChainHash::GENESIS);
        'pages: loop {
            let rows = client.query(&stmt, &[&after, &PAGE]).await.map_err(pg)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let position: i64 = row.get(0);
                after = position;
                let checked = to_event(row).and_then(|e| Ok((e, hash_of(row.get(14), position)?)));
                let (event, log) = match checked {
                    Ok(found) => found,
                    Err(e) => {
                        verifier.broken(position as u64, "", 0, e.to_string());
                        break 'pages;
                    }
                };
                if !verifier.check(&event, Some(&log)) {
                    break 'pages;
                }
                last_log = log;
                let belongs = commands.get(&event.metadata.command_id.0).is_some_and(|(stream, first, last)| {
                    *stream == event.stream && (*first..=*last).contains(&event.position)
                });
                if !belongs {
                    let reason =
                        "no command record answers for this event: its command's record was deleted or altered";
                    verifier.broken(event.position, &event.stream, event.version, reason);
                    break 'pages;
                }
            }
        }
        if !verifier.is_broken() {
            let (position, log_hash) = (head.0 as u64, head.1);
            if position != after as u64 || log_hash != last_log.0 {
                let reason = format!(
                    "the head row says the log ends at position {position}, but its last event is at position {after}: \
                     events were cut from its end or the head was altered"
                );
                verifier.broken(after as u64, "", 0, reason);
            } else if let Some((id, (stream, first, _))) =
                commands.iter().find(|(_, (_, first, _))| *first > after as u64)
            {
                let reason =
                    format!("the record of command {id} names events (from position {first}) that the log lacks");
                verifier.broken(*first, stream, 0, reason);
            }
        }
        Ok(verifier.finish())
    }
}

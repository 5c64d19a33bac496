//! `tracker replay` and `tracker explain`: the financial report of a past date, verified
//! first, so its header says whether the log it comes from is intact.

use projections::report::{Cutoff, Integrity, ReportBuilder, replay};
use std::path::Path;
use store::{EventStore, Verification};

fn integrity(v: &Verification) -> Integrity {
    Integrity {
        position: v.head_position,
        digest: v.head_hash.to_hex(),
        first_break: v
            .first_break
            .as_ref()
            .map(|b| format!("position {}, stream {}, version {}: {}", b.position, b.stream, b.version, b.reason)),
    }
}

/// Verifies the log (the embedded one at `sqlite`, with its whole-log chain; any other
/// through its per-stream chains), then replays it up to what was verified.
pub async fn replayed(
    log: &dyn EventStore,
    sqlite: Option<&Path>,
    cutoff: Cutoff,
) -> anyhow::Result<(ReportBuilder, Integrity)> {
    let verification = match sqlite {
        Some(path) => store::sqlite::verify(path, None)?,
        None => store::verify_store(log, false).await?,
    };
    let integrity = integrity(&verification);
    // An altered log is replayed all the same (up to its end): the header says it is altered.
    let until = if verification.is_intact() { verification.head_position } else { *log.head().borrow() };
    Ok((replay(log, cutoff, until).await?, integrity))
}

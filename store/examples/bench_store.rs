//! `tracker bench store` without building the API and the server: a release build of the
//! store alone takes seconds, the `tracker` binary minutes, so changes to the log are
//! measured with this first.
//!
//! `cargo run --release -p store --example bench_store [-- writers N | replay]`
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc; // as the tracker binary

#[path = "../../bench/src/log.rs"]
mod bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("writers") {
        // Only the concurrent writers, with the fsync floor of the same run.
        let n = args.get(2).map_or(Ok(64), |n| n.parse())?;
        let dir = tempfile::tempdir()?;
        let floor = bench::fsync_floor(dir.path(), std::time::Duration::from_secs(2))?;
        let store = std::sync::Arc::new(store::SqliteStore::open(dir.path().join("events.sqlite3"))?);
        let rate = bench::appends(store.clone(), n, std::time::Duration::from_secs(5)).await?;
        let (groups, appends) = store.stats();
        println!(
            "fsync floor {floor:.0}/s; {n} writers: {rate:.0} appends/s = {:.1}× the floor, {:.1} appends per commit",
            rate / floor,
            appends as f64 / groups.max(1) as f64
        );
        return Ok(());
    }
    if args.get(1).map(String::as_str) == Some("replay") {
        // Only the replay, three times over the same million events, then decoding each payload.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("events.sqlite3");
        bench::batched(&store::SqliteStore::open(&path)?, 1_000_000, 1_000).await?;
        // Opening reads the log once, for where each command starts and each stream ends.
        let started = std::time::Instant::now();
        let store = store::SqliteStore::open(&path)?;
        println!("open of 1000000 events: {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
        for _ in 0..3 {
            for typed in [false, true] {
                let r = bench::replay(&store, typed).await?;
                let per_cpu_s = r.per_cpu_s.map_or("?".into(), |c| format!("{c:.0}"));
                let what = if typed { "typed replay" } else { "replay" };
                println!("{what} {} events: {:.0} events/s, {per_cpu_s} per CPU-second", r.events, r.per_s);
            }
        }
        return Ok(());
    }
    let figures = bench::store(1_000_000, std::time::Duration::from_secs(3)).await?;
    print!("{}", bench::report(&figures));
    Ok(())
}

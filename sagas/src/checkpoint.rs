//! Where a process records how far in the log it has acted: in memory, in a file of the
//! data directory (one process), or in the database replicas share ([`SharedCheckpoint`]).

use async_trait::async_trait;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[async_trait]
pub trait Checkpoint: Send + Sync {
    async fn load(&self) -> std::io::Result<u64>;
    async fn save(&self, position: u64) -> std::io::Result<()>;
}

/// A checkpoint in memory (tests, the in-memory store).
#[derive(Default)]
pub struct MemoryCheckpoint(AtomicU64);

#[async_trait]
impl Checkpoint for MemoryCheckpoint {
    async fn load(&self) -> std::io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }

    async fn save(&self, position: u64) -> std::io::Result<()> {
        self.0.store(position, Ordering::SeqCst);
        Ok(())
    }
}

/// A checkpoint in a small file of the data directory, replaced atomically (write to a
/// temporary file, fsync, rename), so a crash leaves the old or the new one, never half.
pub struct FileCheckpoint(pub PathBuf);

#[async_trait]
impl Checkpoint for FileCheckpoint {
    async fn load(&self) -> std::io::Result<u64> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => text.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold a log position: {text:?}", self.0.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    async fn save(&self, position: u64) -> std::io::Result<()> {
        let tmp = self.0.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{position}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.0)
    }
}

/// A checkpoint in the database the replicas of a shared log share, saved only while
/// `holder` holds the saga's lease of the same name: a replica that lost the lease gets
/// an error instead of moving the new holder's checkpoint.
pub struct SharedCheckpoint {
    pub state: Arc<dyn store::ReplicaState>,
    pub name: String,
    pub holder: uuid::Uuid,
}

#[async_trait]
impl Checkpoint for SharedCheckpoint {
    async fn load(&self) -> std::io::Result<u64> {
        self.state.load_checkpoint(&self.name).await.map_err(std::io::Error::other)
    }

    async fn save(&self, position: u64) -> std::io::Result<()> {
        match self.state.save_checkpoint(&self.name, self.holder, position).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(std::io::Error::other(format!("this replica no longer holds the lease of {}", self.name))),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_checkpoint_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saga.checkpoint");
        assert_eq!(FileCheckpoint(path.clone()).load().await.unwrap(), 0, "absent means the start of the log");
        FileCheckpoint(path.clone()).save(42).await.unwrap();
        assert_eq!(FileCheckpoint(path.clone()).load().await.unwrap(), 42);
        std::fs::write(&path, "garbage").unwrap();
        assert!(FileCheckpoint(path).load().await.is_err(), "a damaged checkpoint is an error, not a silent zero");
    }
}

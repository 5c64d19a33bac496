//! Where a process records how far in the log it has acted.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub trait Checkpoint: Send + Sync {
    fn load(&self) -> std::io::Result<u64>;
    fn save(&self, position: u64) -> std::io::Result<()>;
}

/// A checkpoint in memory (tests, the in-memory store).
#[derive(Default)]
pub struct MemoryCheckpoint(AtomicU64);

impl Checkpoint for MemoryCheckpoint {
    fn load(&self) -> std::io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }

    fn save(&self, position: u64) -> std::io::Result<()> {
        self.0.store(position, Ordering::SeqCst);
        Ok(())
    }
}

/// A checkpoint in a small file of the data directory, replaced atomically (write to a
/// temporary file, fsync, rename), so a crash leaves the old or the new one, never half.
pub struct FileCheckpoint(pub PathBuf);

impl Checkpoint for FileCheckpoint {
    fn load(&self) -> std::io::Result<u64> {
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

    fn save(&self, position: u64) -> std::io::Result<()> {
        let tmp = self.0.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{position}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_checkpoint_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saga.checkpoint");
        assert_eq!(FileCheckpoint(path.clone()).load().unwrap(), 0, "absent means the start of the log");
        FileCheckpoint(path.clone()).save(42).unwrap();
        assert_eq!(FileCheckpoint(path.clone()).load().unwrap(), 42);
        std::fs::write(&path, "garbage").unwrap();
        assert!(FileCheckpoint(path).load().is_err(), "a damaged checkpoint is an error, not a silent zero");
    }
}

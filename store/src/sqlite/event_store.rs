//! [`EventStore`] for [`SqliteStore`]: the trait's calls onto the writer and the read pool.

use super::*;

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>, StoreError> {
        check_requests(&requests)?;
        self.write(requests).await
    }

    /// One writer thread takes appends from a channel in order (the job is sent before the
    /// first await), and a lock file keeps other processes from writing.
    fn ordered_log(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.writing().then(|| self.shared.clone() as Arc<dyn std::any::Any + Send + Sync>)
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_from(stream, 1).await
    }

    async fn read_stream_from(&self, stream: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        if self.shared.format == Format::Legacy {
            return self.read(move |c| legacy::read_stream_from(&c.conn, &stream, version)).await;
        }
        let shared = self.shared.clone();
        let writing = self.writing();
        self.read(move |c| c.read_stream_from(&stream, version, &shared.index, shared.format, writing)).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        match self.shared.format {
            Format::Legacy => self.read(move |c| legacy::read_all(&c.conn, after, limit)).await,
            Format::Packed2 | Format::Packed => self.read(move |c| c.read_all(after, limit)).await,
        }
    }

    async fn find_command(&self, command_id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        if self.shared.format == Format::Legacy {
            return self.read(move |c| legacy::find_command(&c.conn, command_id)).await;
        }
        // The writer keeps the index of a log it writes; a read-only store catches up first.
        let writing = self.writing();
        let first = if writing {
            match self.shared.index.read().expect("log index poisoned").commands.get(&command_id) {
                Some(&first) => Some(first),
                None => return Ok(None),
            }
        } else {
            None
        };
        let shared = self.shared.clone();
        self.read(move |c| {
            let tx = c.conn.unchecked_transaction()?;
            let first = match first {
                Some(first) => Some(first),
                None => {
                    let mut index = shared.index.write().expect("log index poisoned");
                    index.catch_up(&tx, shared.format)?;
                    index.commands.get(&command_id).copied()
                }
            };
            let Some(first) = first else { return Ok(None) };
            let found = stored_command(&tx, shared.format, first)?;
            Ok(found.filter(|(id, _)| *id == command_id).map(|(_, record)| record))
        })
        .await
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }
}

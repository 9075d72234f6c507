//! An in-process log backend for tests: durable only as long as the process (and the backend
//! value) lives, which is enough to test replay, snapshots and injected failures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use flashsale_protocol::ShardId;

use super::{LocalBoxFuture, LogBackend, LogError, ShardLog};

#[derive(Debug, Default)]
struct Stored {
    snapshot: Option<(u64, Vec<u8>)>,
    records: Vec<(u64, Vec<u8>)>,
}

/// A backend keeping every shard's records in memory; clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    shards: Arc<Mutex<Vec<Arc<Mutex<Stored>>>>>,
    failing: Arc<AtomicBool>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, every flush fails with [`LogError::Unavailable`] (to test outages).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Number of durable records of `shard`.
    pub fn durable_records(&self, shard: ShardId) -> usize {
        self.shard(shard)
            .lock()
            .map(|s| s.records.len())
            .unwrap_or(0)
    }

    fn shard(&self, shard: ShardId) -> Arc<Mutex<Stored>> {
        let mut shards = match self.shards.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        while shards.len() <= shard as usize {
            shards.push(Arc::default());
        }
        shards[shard as usize].clone()
    }
}

impl LogBackend for MemoryBackend {
    fn open(
        &self,
        shard: ShardId,
        _shard_count: u16,
    ) -> LocalBoxFuture<'static, Result<Box<dyn ShardLog>, LogError>> {
        let log = MemoryLog {
            stored: self.shard(shard),
            pending: Vec::new(),
            failing: self.failing.clone(),
        };
        Box::pin(async move { Ok(Box::new(log) as Box<dyn ShardLog>) })
    }

    fn describe(&self) -> String {
        "in-memory log (not durable across processes)".to_string()
    }
}

struct MemoryLog {
    stored: Arc<Mutex<Stored>>,
    pending: Vec<(u64, Vec<u8>)>,
    failing: Arc<AtomicBool>,
}

impl MemoryLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        match self.stored.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl ShardLog for MemoryLog {
    fn load_snapshot(&mut self) -> LocalBoxFuture<'_, Result<Option<(u64, Vec<u8>)>, LogError>> {
        let snap = self.lock().snapshot.clone();
        Box::pin(async move { Ok(snap) })
    }

    fn replay<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut dyn FnMut(u64, &[u8]) -> Result<(), LogError>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            let records: Vec<(u64, Vec<u8>)> = self
                .lock()
                .records
                .iter()
                .filter(|(s, _)| *s > after)
                .cloned()
                .collect();
            let mut last = after;
            for (seq, rec) in records {
                apply(seq, &rec)?;
                last = seq;
            }
            Ok(last)
        })
    }

    fn append(&mut self, seq: u64, record: &[u8]) {
        self.pending.push((seq, record.to_vec()));
    }

    fn flush(&mut self) -> LocalBoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(LogError::Unavailable("memory log set to fail".into()));
            }
            let pending = std::mem::take(&mut self.pending);
            self.lock().records.extend(pending);
            Ok(())
        })
    }

    fn write_snapshot<'a>(
        &'a mut self,
        seq: u64,
        snapshot: &'a [u8],
    ) -> LocalBoxFuture<'a, Result<(), LogError>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.snapshot = Some((seq, snapshot.to_vec()));
            s.records.retain(|(r, _)| *r > seq);
            Ok(())
        })
    }
}

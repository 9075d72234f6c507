//! The shard (glommio) side of the Postgres log: buffers appends and hands batches to the
//! shard's connection task on the backend's tokio runtime.

use flashsale_engine::log::{LocalBoxFuture, LogError, ShardLog};
use flashsale_protocol::ShardId;
use tokio::sync::{mpsc, oneshot};

use super::worker::{Batch, Request};

/// One shard's Postgres write-ahead log.
#[derive(Debug)]
pub struct PostgresLog {
    shard: ShardId,
    requests: mpsc::Sender<Request>,
    pending: Batch,
    /// Successful flushes (one transaction each).
    commits: u64,
}

fn gone() -> LogError {
    LogError::Unavailable("postgres connection task stopped".into())
}

impl PostgresLog {
    pub(super) fn new(shard: ShardId, requests: mpsc::Sender<Request>) -> PostgresLog {
        PostgresLog {
            shard,
            requests,
            pending: Batch::default(),
            commits: 0,
        }
    }

    /// Number of successful flushes (each one transaction) since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The shard this log belongs to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    async fn request(&self, req: Request) -> Result<(), LogError> {
        self.requests.send(req).await.map_err(|_| gone())
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Flush { .. } => "Flush",
            Request::Replay { .. } => "Replay",
            Request::LoadSnapshot { .. } => "LoadSnapshot",
            Request::WriteSnapshot { .. } => "WriteSnapshot",
        })
    }
}

impl ShardLog for PostgresLog {
    fn load_snapshot(&mut self) -> LocalBoxFuture<'_, Result<Option<(u64, Vec<u8>)>, LogError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.request(Request::LoadSnapshot { reply: tx }).await?;
            rx.await.map_err(|_| gone())?
        })
    }

    fn replay<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut dyn FnMut(u64, &[u8]) -> Result<(), LogError>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel(2);
            self.request(Request::Replay { after, pages: tx }).await?;
            let mut last = after;
            let mut first = true;
            while let Some(page) = rx.recv().await {
                for (seq, rec) in page? {
                    // The first row may follow a snapshot-covered gap; after it, no gaps.
                    if !first && seq != last + 1 {
                        return Err(LogError::Corrupt(format!(
                            "shard {}: log rows {}..{} missing",
                            self.shard,
                            last + 1,
                            seq - 1
                        )));
                    }
                    if first && seq > after + 1 {
                        return Err(LogError::Corrupt(format!(
                            "shard {}: log rows {}..{} missing after the snapshot",
                            self.shard,
                            after + 1,
                            seq - 1
                        )));
                    }
                    first = false;
                    apply(seq, &rec)?;
                    last = seq;
                }
            }
            Ok(last)
        })
    }

    fn append(&mut self, seq: u64, record: &[u8]) {
        if let Some(prev) = self.pending.seqs.last() {
            debug_assert_eq!(
                seq,
                *prev as u64 + 1,
                "log sequence numbers must be consecutive"
            );
        }
        self.pending.push(seq, record);
    }

    fn flush(&mut self) -> LocalBoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            if self.pending.is_empty() {
                return Ok(());
            }
            let batch = std::mem::take(&mut self.pending);
            let (tx, rx) = oneshot::channel();
            if let Err(mpsc::error::SendError(req)) = self
                .requests
                .send(Request::Flush { batch, reply: tx })
                .await
            {
                if let Request::Flush { batch, .. } = req {
                    self.pending = batch;
                }
                return Err(gone());
            }
            match rx.await {
                Ok((mut batch, res)) => {
                    if res.is_ok() {
                        batch.clear();
                        self.commits += 1;
                    }
                    // Keep the records (on error) or the allocation (on success).
                    let appended_meanwhile = std::mem::replace(&mut self.pending, batch);
                    debug_assert!(appended_meanwhile.is_empty());
                    res
                }
                // The worker vanished with the batch: the records are lost from this process;
                // the shard must not acknowledge them (it will not: this is an error).
                Err(_) => Err(gone()),
            }
        })
    }

    fn write_snapshot<'a>(
        &'a mut self,
        seq: u64,
        snapshot: &'a [u8],
    ) -> LocalBoxFuture<'a, Result<(), LogError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.request(Request::WriteSnapshot {
                seq,
                snapshot: snapshot.to_vec(),
                reply: tx,
            })
            .await?;
            rx.await.map_err(|_| gone())?
        })
    }
}

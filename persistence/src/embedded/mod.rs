//! The embedded write-ahead log: per shard, a directory of append-only segment files written
//! with O_DIRECT through glommio (io_uring), one `fdatasync` per group commit, plus snapshots.
//!
//! Layout of a data dir:
//! ```text
//! <data dir>/LOCK                     flock'ed by the running server (holds its pid)
//! <data dir>/FORMAT                   format version and shard count
//! <data dir>/shard-0003/00000000000000000001.seg   segment: frames from seq 1 on
//! <data dir>/shard-0003/00000000000000500000.snap  snapshot covering seqs ..= 500000
//! ```
//! See `docs/adr/0004-embedded-segment-log.md` for the design and its failure handling.

mod files;
mod lock;
pub mod pipeline;
pub mod replay;
pub mod scan;
mod shard_log;
pub mod tail;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flashsale_engine::log::{LocalBoxFuture, LogBackend, LogError, ShardLog};
use flashsale_protocol::ShardId;

use crate::PersistenceError;
pub use lock::DirLock;
pub use replay::{replay_archived, replay_decoded, replay_segments, ReplayMode, ReplayOutcome};
pub use scan::{SegmentScan, TailEnd};
pub use shard_log::EmbeddedLog;
pub use tail::{EmbeddedTail, TailMarks};

/// Default size at which a segment is closed and a new one started: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 << 20;

/// Tunables of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// A new segment is started when a flush would take the current one past this size
    /// (one flush never spans two segments). Segments are pre-allocated to this size.
    pub segment_size_bytes: u64,
    /// Write zeros over a new segment before use, so later `fdatasync`s need no extent
    /// (metadata) updates, only a data flush. Costs one sequential write of the segment size
    /// at each rotation.
    pub zero_fill_segments: bool,
    /// How recovery reads and checks segments relative to applying their records
    /// ([`ReplayMode::Auto`] by default: pipelined when there are fewer shards than cores,
    /// ADR 0036).
    pub replay: ReplayMode,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            zero_fill_segments: true,
            replay: ReplayMode::default(),
        }
    }
}

/// The embedded backend: owns (and locks) a data dir; opens one [`EmbeddedLog`] per shard.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: EmbeddedOptions,
    lock: Arc<DirLock>,
    /// Durable seqs and follower holds, shared with every shard's log and with tails.
    marks: Arc<TailMarks>,
    /// The shard count recorded in `FORMAT` once a shard has been opened.
    shard_count: Mutex<Option<u16>>,
}

const FORMAT_LINE: &str = "flashsale embedded log v1";

impl EmbeddedBackend {
    /// Opens (creating if needed) the data dir and locks it against other servers.
    pub fn open(data_dir: &Path) -> Result<EmbeddedBackend, PersistenceError> {
        Self::open_with(data_dir, EmbeddedOptions::default())
    }

    /// Like [`EmbeddedBackend::open`], with explicit options.
    pub fn open_with(
        data_dir: &Path,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedBackend, PersistenceError> {
        if options.segment_size_bytes < 4096 {
            return Err(PersistenceError::Config(
                "segment size must be at least 4096 bytes".into(),
            ));
        }
        std::fs::create_dir_all(data_dir).map_err(|source| PersistenceError::Io {
            op: "creating data dir",
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(data_dir)?;
        Ok(EmbeddedBackend {
            inner: Arc::new(Inner {
                dir: data_dir.to_path_buf(),
                options,
                lock: Arc::new(lock),
                marks: Arc::new(TailMarks::default()),
                shard_count: Mutex::new(None),
            }),
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The durable seqs and follower holds of this log's shards.
    pub fn tail_marks(&self) -> Arc<TailMarks> {
        self.inner.marks.clone()
    }

    /// A reader of this log's durable records (see [`tail`]).
    pub fn tail(&self) -> EmbeddedTail {
        EmbeddedTail::new(&self.inner.dir, self.inner.marks.clone())
    }

    /// The directory holding `shard`'s segments and snapshots.
    pub fn shard_dir(&self, shard: ShardId) -> PathBuf {
        shard_dir(&self.inner.dir, shard)
    }

    /// Checks (or records, on first use) the shard count the data dir was written with:
    /// SKUs map to shards by hash, so another count would replay records on the wrong shard.
    fn check_shard_count(&self, shard_count: u16) -> Result<(), LogError> {
        let mut known = match self.inner.shard_count.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *known == Some(shard_count) {
            return Ok(());
        }
        let path = self.inner.dir.join("FORMAT");
        let wanted = format!("{FORMAT_LINE}\nshards={shard_count}\n");
        match std::fs::read_to_string(&path) {
            Ok(found) => {
                let mut lines = found.lines();
                if lines.next() != Some(FORMAT_LINE) {
                    return Err(LogError::Corrupt(format!(
                        "{} is not a flashsale embedded log v1 format file",
                        path.display()
                    )));
                }
                let found_count = lines
                    .next()
                    .and_then(|l| l.strip_prefix("shards="))
                    .and_then(|n| n.trim().parse::<u16>().ok());
                match found_count {
                    Some(n) if n == shard_count => {}
                    Some(n) => {
                        return Err(LogError::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!(
                            "data dir {} was written with {n} shards; restart with --shards {n}",
                            self.inner.dir.display()
                        ),
                        )))
                    }
                    None => {
                        return Err(LogError::Corrupt(format!(
                            "{} has no valid shard count",
                            path.display()
                        )))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let tmp = self.inner.dir.join("FORMAT.tmp");
                std::fs::write(&tmp, wanted.as_bytes())?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&self.inner.dir)?.sync_all()?;
            }
            Err(e) => return Err(LogError::Io(e)),
        }
        *known = Some(shard_count);
        Ok(())
    }
}

impl EmbeddedBackend {
    /// Opens `shard`'s log as its concrete type (what [`LogBackend::open`] boxes); for tools
    /// and benchmarks that want [`EmbeddedLog`]'s extra accessors. Call on a glommio thread.
    pub async fn open_shard(
        &self,
        shard: ShardId,
        shard_count: u16,
    ) -> Result<EmbeddedLog, LogError> {
        if shard >= shard_count {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("shard {shard} out of range (shard count {shard_count})"),
            )));
        }
        self.check_shard_count(shard_count)?;
        let dir = self.shard_dir(shard);
        std::fs::create_dir_all(&dir)?;
        // Make the shard dir's own entry durable.
        std::fs::File::open(&self.inner.dir)?.sync_all()?;
        let mut options = self.inner.options.clone();
        options.replay = options.replay.resolve(shard_count);
        Ok(EmbeddedLog::new(
            dir,
            shard,
            options,
            self.inner.lock.clone(),
            self.inner.marks.clone(),
        ))
    }
}

fn shard_dir(data_dir: &Path, shard: ShardId) -> PathBuf {
    data_dir.join(format!("shard-{shard:04}"))
}

impl LogBackend for EmbeddedBackend {
    fn open(
        &self,
        shard: ShardId,
        shard_count: u16,
    ) -> LocalBoxFuture<'static, Result<Box<dyn ShardLog>, LogError>> {
        let this = self.clone();
        Box::pin(async move {
            let log = this.open_shard(shard, shard_count).await?;
            Ok(Box::new(log) as Box<dyn ShardLog>)
        })
    }

    fn describe(&self) -> String {
        format!(
            "embedded log in {} (segments of {} MiB, group commit with fdatasync)",
            self.inner.dir.display(),
            self.inner.options.segment_size_bytes >> 20
        )
    }
}

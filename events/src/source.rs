//! Where events come from: the committed log of either backend, read in bounded batches.
//! Only durable records are ever returned (embedded: up to the seq the last group commit made
//! durable; Postgres: committed rows), so nothing is published that a crash could take back.

use std::sync::{Arc, Mutex};

use flashsale_persistence::embedded::{EmbeddedTail, TailMarks};
use flashsale_protocol::ShardId;
use tokio_postgres::NoTls;

use crate::error::EventsError;

/// A batch of `(seq, encoded record)`.
pub type Records = Vec<(u64, Vec<u8>)>;

/// A reader of the committed log of every shard.
#[derive(Clone)]
pub enum LogSource {
    /// The embedded segment files.
    Embedded {
        /// The reader (blocking reads, run on the blocking pool).
        tail: Arc<Mutex<EmbeddedTail>>,
        /// Durable seqs and the hold on segment removal.
        marks: Arc<TailMarks>,
        /// The data dir (for readers of their own, see [`LogSource::own_reader`]).
        dir: std::path::PathBuf,
    },
    /// The Postgres `log` table.
    Postgres {
        /// Connection settings.
        pg: Box<tokio_postgres::Config>,
        /// The validated schema name, quoted.
        schema: String,
        /// One connection, (re)opened on demand.
        client: Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
        /// The lease epoch the hold's writes are conditional on (a high-availability
        /// leader), so a deposed leader cannot move the hold; `None` on a single node.
        fence: Option<i64>,
    },
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSource::Embedded { .. } => f.write_str("LogSource::Embedded"),
            LogSource::Postgres { schema, .. } => write!(f, "LogSource::Postgres({schema})"),
        }
    }
}

impl LogSource {
    /// A source reading the embedded log of `backend`.
    pub fn embedded(backend: &flashsale_persistence::EmbeddedBackend) -> LogSource {
        LogSource::Embedded {
            tail: Arc::new(Mutex::new(backend.tail())),
            marks: backend.tail_marks(),
            dir: backend.data_dir().to_path_buf(),
        }
    }

    /// A source with a reader of its own: the embedded reader keeps one file cursor per shard,
    /// so readers at different positions (each destination's worker, the ledger keeper) must
    /// not share it, or every read seeks from the segment's start again. Postgres: its own
    /// connection.
    pub fn own_reader(&self) -> LogSource {
        match self {
            LogSource::Embedded { marks, dir, .. } => LogSource::Embedded {
                tail: Arc::new(Mutex::new(EmbeddedTail::new(dir, marks.clone()))),
                marks: marks.clone(),
                dir: dir.clone(),
            },
            LogSource::Postgres {
                pg, schema, fence, ..
            } => LogSource::Postgres {
                pg: pg.clone(),
                schema: schema.clone(),
                client: Arc::new(tokio::sync::Mutex::new(None)),
                fence: *fence,
            },
        }
    }

    /// A source reading the Postgres log of `backend` (its hold written fenced with
    /// `backend`'s epoch, if it has one).
    pub fn postgres(backend: &flashsale_persistence::PostgresBackend) -> LogSource {
        LogSource::Postgres {
            pg: Box::new(backend.pg_config().clone()),
            schema: format!("\"{}\"", backend.schema()),
            client: Arc::new(tokio::sync::Mutex::new(None)),
            fence: backend
                .fence()
                .map(|e| i64::try_from(e).unwrap_or(i64::MAX)),
        }
    }

    /// Up to `max` committed records of `shard` after `after`, in order.
    pub async fn read(
        &self,
        shard: ShardId,
        after: u64,
        max: usize,
    ) -> Result<Records, EventsError> {
        match self {
            LogSource::Embedded { tail, .. } => {
                let tail = tail.clone();
                tokio::task::spawn_blocking(move || {
                    let mut t = match tail.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    t.read(shard, after, max).map_err(EventsError::from)
                })
                .await
                .map_err(|e| EventsError::Runtime(e.to_string()))?
            }
            LogSource::Postgres {
                schema, pg, client, ..
            } => {
                let sql = format!(
                    "SELECT seq, record FROM {schema}.log WHERE shard = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3"
                );
                let after_i = i64::try_from(after).unwrap_or(i64::MAX);
                let limit = i64::try_from(max).unwrap_or(i64::MAX);
                let mut guard = client.lock().await;
                let c = connect(pg, &mut guard).await?;
                let res = c.query(&sql, &[&(shard as i16), &after_i, &limit]).await;
                let rows = res.inspect_err(|_| *guard = None)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let seq: i64 = row.try_get(0)?;
                    let rec: Vec<u8> = row.try_get(1)?;
                    out.push((u64::try_from(seq).unwrap_or(0), rec));
                }
                Ok(out)
            }
        }
    }

    /// The last committed seq of `shard` (0 if none): where a new destination starts.
    pub async fn head(&self, shard: ShardId) -> Result<u64, EventsError> {
        match self {
            LogSource::Embedded { marks, .. } => Ok(marks.durable(shard)),
            LogSource::Postgres {
                schema, pg, client, ..
            } => {
                let sql =
                    format!("SELECT coalesce(max(seq), 0) FROM {schema}.log WHERE shard = $1");
                let mut guard = client.lock().await;
                let c = connect(pg, &mut guard).await?;
                let res = c.query(&sql, &[&(shard as i16)]).await;
                let rows = res.inspect_err(|_| *guard = None)?;
                let head: i64 = match rows.first() {
                    Some(r) => r.try_get(0)?,
                    None => 0,
                };
                Ok(u64::try_from(head).unwrap_or(0))
            }
        }
    }

    /// Keeps the log from `first_needed` on when a snapshot compacts it (`u64::MAX` = no
    /// need): embedded segments through the in-memory marks, Postgres rows through the
    /// `events_hold` table (durable, so it holds across restarts before delivery resumes).
    pub async fn hold(&self, shard: ShardId, first_needed: u64) -> Result<(), EventsError> {
        match self {
            LogSource::Embedded { marks, .. } => {
                marks.set_hold(shard, first_needed);
                Ok(())
            }
            LogSource::Postgres {
                schema,
                pg,
                client,
                fence,
            } => {
                let delivered = i64::try_from(first_needed.saturating_sub(1)).unwrap_or(i64::MAX);
                let upsert = |cond: &str| {
                    format!(
                        "INSERT INTO {schema}.events_hold (shard, seq) SELECT $1::int2, $2::int8 {cond} \
                         ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq"
                    )
                };
                let mut guard = client.lock().await;
                let res = {
                    let c = connect(pg, &mut guard).await?;
                    match fence {
                        None => c
                            .execute(&upsert(""), &[&(shard as i16), &delivered])
                            .await
                            .map(|_| true),
                        // Like the log's appends: the lease row share-locked in the same
                        // statement, nothing written once another node took the lease.
                        Some(epoch) => c
                            .query_one(
                                &format!(
                                    "WITH lease AS (SELECT epoch FROM {schema}.ha_lease \
                                       WHERE id = 1 AND epoch = $3 FOR SHARE), \
                                     w AS ({}) SELECT count(*) FROM lease",
                                    upsert("WHERE EXISTS (SELECT 1 FROM lease)")
                                ),
                                &[&(shard as i16), &delivered, epoch],
                            )
                            .await
                            .and_then(|row| row.try_get::<_, i64>(0))
                            .map(|held| held > 0),
                    }
                };
                match res {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(EventsError::Fenced {
                        epoch: fence.unwrap_or_default().max(0) as u64,
                    }),
                    Err(e) => {
                        *guard = None;
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Like [`LogSource::hold`] for the embedded log, at once (before the engine starts);
    /// Postgres keeps its stored hold until the first [`LogSource::hold`].
    pub fn hold_now(&self, shard: ShardId, first_needed: u64) {
        if let LogSource::Embedded { marks, .. } = self {
            marks.set_hold(shard, first_needed);
        }
    }
}

/// The open connection in `slot`, opened now if there is none.
pub(crate) async fn connect<'a>(
    pg: &tokio_postgres::Config,
    slot: &'a mut Option<tokio_postgres::Client>,
) -> Result<&'a tokio_postgres::Client, EventsError> {
    if slot.as_ref().is_none_or(|c| c.is_closed()) {
        let (client, connection) = pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "events: log connection closed");
            }
        });
        *slot = Some(client);
    }
    slot.as_ref()
        .ok_or_else(|| EventsError::Runtime("no log connection".into()))
}

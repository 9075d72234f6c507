//! The tokio side of a shard's Postgres log: one task per shard owning one connection, serving
//! requests from the shard's glommio thread, reconnecting with backoff.

use std::time::{Duration, Instant};

use flashsale_engine::log::LogError;
use flashsale_protocol::ShardId;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls};

use super::schema::quoted;

/// Records appended but not yet committed: seqs and concatenated bytes with end offsets.
#[derive(Debug, Default)]
pub struct Batch {
    pub seqs: Vec<i64>,
    pub data: Vec<u8>,
    pub ends: Vec<usize>,
}

impl Batch {
    pub fn push(&mut self, seq: u64, record: &[u8]) {
        self.seqs.push(seq as i64);
        self.data.extend_from_slice(record);
        self.ends.push(self.data.len());
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    fn records(&self, from: usize, to: usize) -> Vec<&[u8]> {
        (from..to)
            .map(|i| {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                &self.data[start..self.ends[i]]
            })
            .collect()
    }

    pub fn clear(&mut self) {
        self.seqs.clear();
        self.data.clear();
        self.ends.clear();
    }
}

/// The latest snapshot (seq, bytes), if any.
pub type SnapshotResult = Result<Option<(u64, Vec<u8>)>, LogError>;

/// A page of replayed records.
pub type Page = Result<Vec<(u64, Vec<u8>)>, LogError>;

/// What the shard asks of its worker.
pub enum Request {
    /// Commit the batch in one transaction; the batch comes back with the outcome.
    Flush {
        batch: Batch,
        reply: oneshot::Sender<(Batch, Result<(), LogError>)>,
    },
    /// Stream records with `seq > after`, in order, in pages.
    Replay {
        after: u64,
        pages: mpsc::Sender<Page>,
    },
    /// The latest snapshot.
    LoadSnapshot {
        reply: oneshot::Sender<SnapshotResult>,
    },
    /// Store a snapshot and delete the log rows it covers.
    WriteSnapshot {
        seq: u64,
        snapshot: Vec<u8>,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub pg: tokio_postgres::Config,
    pub schema: String,
    pub shard: ShardId,
    /// Longest a flush may take before the connection is dropped and the flush reported
    /// unavailable.
    pub op_timeout: Duration,
    /// The writer's lease epoch (high availability): every flush and snapshot commits only
    /// while the group's lease row still holds this epoch. `None`: unfenced (a single node).
    pub fence: Option<i64>,
    /// The schema holding the `ha_lease` row the fence checks (usually `schema`).
    pub lease_schema: String,
}

/// Rows per INSERT statement (one transaction may hold several).
const ROWS_PER_STATEMENT: usize = 20_000;
/// Rows per replay page.
const REPLAY_PAGE: i64 = 10_000;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

struct Conn {
    client: Client,
    insert: tokio_postgres::Statement,
    /// With a fence: `SELECT … FROM ha_lease … FOR SHARE` (the lease check of a transaction).
    check_fence: Option<tokio_postgres::Statement>,
    /// With a fence: the insert and its lease check in one statement, returning whether the
    /// epoch held (then the rows are in).
    fenced_insert: Option<tokio_postgres::Statement>,
}

/// Why a fenced write did not commit.
enum WriteError {
    /// Postgres failed (or the connection did).
    Pg(tokio_postgres::Error),
    /// The lease epoch moved on: this writer is deposed.
    Fenced,
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Pg(e)
    }
}

/// The lease check: locks the lease row in share mode (a takeover's epoch bump waits for the
/// transaction, and a transaction after the bump sees the new epoch) and yields a row only
/// while `epoch = $1`.
fn fence_sql(s: &str) -> String {
    format!("SELECT epoch FROM {s}.ha_lease WHERE id = 1 AND epoch = $1 FOR SHARE")
}

/// Opens a connection (its driver runs as a task) and prepares the insert.
pub async fn connect(cfg: &WorkerConfig) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = cfg.pg.connect(NoTls).await?;
    let shard = cfg.shard;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(shard, error = %e, "postgres log connection closed");
        }
    });
    Ok(client)
}

async fn open_conn(cfg: &WorkerConfig) -> Result<Conn, tokio_postgres::Error> {
    let client = connect(cfg).await?;
    let s = quoted(&cfg.schema);
    let insert = client
        .prepare(&format!(
            "INSERT INTO {s}.log (shard, seq, record) \
             SELECT $1::int2, t.seq, t.record FROM unnest($2::int8[], $3::bytea[]) AS t(seq, record) \
             ON CONFLICT (shard, seq) DO NOTHING"
        ))
        .await?;
    let (check_fence, fenced_insert) = match cfg.fence {
        None => (None, None),
        Some(_) => {
            let lease = quoted(&cfg.lease_schema);
            let check = client.prepare(&fence_sql(&lease)).await?;
            // One statement, one transaction: the lease row is share-locked for the
            // insert's duration, and the rows go in only if the epoch still holds. Standbys
            // tailing the log are notified at its commit (`tail.rs`).
            let insert = client
                .prepare(&format!(
                    "WITH lease AS ({fence}), ins AS ( \
                       INSERT INTO {s}.log (shard, seq, record) \
                       SELECT $2::int2, t.seq, t.record \
                       FROM unnest($3::int8[], $4::bytea[]) AS t(seq, record) \
                       WHERE EXISTS (SELECT 1 FROM lease) \
                       ON CONFLICT (shard, seq) DO NOTHING) \
                     SELECT count(*) FROM lease, pg_notify('{channel}', $5::text)",
                    fence = fence_sql(&lease),
                    channel = super::tail::CHANNEL,
                ))
                .await?;
            (Some(check), Some(insert))
        }
    };
    Ok(Conn {
        client,
        insert,
        check_fence,
        fenced_insert,
    })
}

/// Serves `requests` until every sender is dropped.
pub async fn run(cfg: WorkerConfig, mut requests: mpsc::Receiver<Request>) {
    let mut conn: Option<Conn> = None;
    let mut backoff = BACKOFF_MIN;
    let mut next_attempt = Instant::now();
    let mut last_error = String::from("not connected yet");
    while let Some(req) = requests.recv().await {
        if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            conn = None;
        }
        if conn.is_none() && Instant::now() >= next_attempt {
            match tokio::time::timeout(cfg.op_timeout, open_conn(&cfg)).await {
                Ok(Ok(c)) => {
                    tracing::info!(shard = cfg.shard, "postgres log connected");
                    conn = Some(c);
                    backoff = BACKOFF_MIN;
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "connect timed out".into(),
            }
            if conn.is_none() {
                next_attempt = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        let Some(c) = conn.as_mut() else {
            let err = unavailable(format!("postgres unreachable: {last_error}"));
            reply_error(req, err);
            continue;
        };
        let ok = serve(&cfg, c, req).await;
        if !ok {
            // The connection failed (or timed out) mid-request: start afresh next time.
            conn = None;
            next_attempt = Instant::now();
        }
    }
}

fn reply_error(req: Request, err: LogError) {
    match req {
        Request::Flush { batch, reply } => {
            let _ = reply.send((batch, Err(err)));
        }
        Request::Replay { pages, .. } => {
            let _ = pages.try_send(Err(err));
        }
        Request::LoadSnapshot { reply } => {
            let _ = reply.send(Err(err));
        }
        Request::WriteSnapshot { reply, .. } => {
            let _ = reply.send(Err(err));
        }
    }
}

/// Serves one request; false if the connection must be dropped.
async fn serve(cfg: &WorkerConfig, c: &mut Conn, req: Request) -> bool {
    let shard = cfg.shard as i16;
    let s = quoted(&cfg.schema);
    match req {
        Request::Flush { batch, reply } => {
            let res = tokio::time::timeout(
                cfg.op_timeout,
                insert_batch(c, shard, cfg.fence, &cfg.schema, &batch),
            )
            .await;
            let (out, ok) = match res {
                Ok(Ok(())) => (Ok(()), true),
                Ok(Err(WriteError::Fenced)) => (Err(fenced(cfg.fence)), true),
                Ok(Err(WriteError::Pg(e))) => {
                    let closed = e.is_closed() || c.client.is_closed();
                    (
                        Err(unavailable(format!("postgres flush failed: {e}"))),
                        !closed,
                    )
                }
                Err(_) => (Err(unavailable("postgres flush timed out")), false),
            };
            let _ = reply.send((batch, out));
            ok
        }
        Request::Replay { after, pages } => {
            let q = format!(
                "SELECT seq, record FROM {s}.log WHERE shard = $1 AND seq > $2 \
                 ORDER BY seq LIMIT {REPLAY_PAGE}"
            );
            let mut from = after as i64;
            loop {
                let rows = match c.client.query(&q, &[&shard, &from]).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        let closed = e.is_closed();
                        let _ = pages.send(Err(unavailable(e))).await;
                        return !closed;
                    }
                };
                let mut page = Vec::with_capacity(rows.len());
                for row in &rows {
                    let seq: i64 = match row.try_get(0) {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = pages.send(Err(LogError::Corrupt(e.to_string()))).await;
                            return true;
                        }
                    };
                    let rec: Vec<u8> = match row.try_get(1) {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = pages.send(Err(LogError::Corrupt(e.to_string()))).await;
                            return true;
                        }
                    };
                    page.push((seq as u64, rec));
                }
                let done = (page.len() as i64) < REPLAY_PAGE;
                if let Some((last, _)) = page.last() {
                    from = *last as i64;
                }
                if pages.send(Ok(page)).await.is_err() || done {
                    return true;
                }
            }
        }
        Request::LoadSnapshot { reply } => {
            let res = c
                .client
                .query_opt(
                    &format!("SELECT seq, snapshot FROM {s}.snapshots WHERE shard = $1"),
                    &[&shard],
                )
                .await;
            let (out, ok) = match res {
                Ok(None) => (Ok(None), true),
                Ok(Some(row)) => {
                    let v = row
                        .try_get::<_, i64>(0)
                        .and_then(|seq| Ok((seq as u64, row.try_get::<_, Vec<u8>>(1)?)));
                    (
                        v.map(Some).map_err(|e| LogError::Corrupt(e.to_string())),
                        true,
                    )
                }
                Err(e) => {
                    let closed = e.is_closed();
                    (Err(unavailable(e)), !closed)
                }
            };
            let _ = reply.send(out);
            ok
        }
        Request::WriteSnapshot {
            seq,
            snapshot,
            reply,
        } => {
            let res = write_snapshot(c, &s, shard, seq as i64, &snapshot, cfg.fence).await;
            let ok = !matches!(&res, Err(WriteError::Pg(e)) if e.is_closed());
            let _ = reply.send(res.map_err(|e| match e {
                WriteError::Fenced => fenced(cfg.fence),
                WriteError::Pg(e) => unavailable(e),
            }));
            ok
        }
    }
}

/// The error of a write refused by the fence.
fn fenced(fence: Option<i64>) -> LogError {
    LogError::Fenced {
        epoch: fence.unwrap_or_default().max(0) as u64,
    }
}

async fn insert_batch(
    c: &mut Conn,
    shard: i16,
    fence: Option<i64>,
    schema: &str,
    batch: &Batch,
) -> Result<(), WriteError> {
    if let (Some(epoch), Some(fenced_insert)) = (fence, &c.fenced_insert) {
        if batch.len() <= ROWS_PER_STATEMENT {
            let records = batch.records(0, batch.len());
            let row = c
                .client
                .query_one(
                    fenced_insert,
                    &[&epoch, &shard, &batch.seqs, &records, &schema],
                )
                .await?;
            let held: i64 = row.try_get(0)?;
            return if held == 1 {
                Ok(())
            } else {
                Err(WriteError::Fenced)
            };
        }
    }
    if batch.len() <= ROWS_PER_STATEMENT {
        // One statement = one transaction, committed before the reply.
        let records = batch.records(0, batch.len());
        c.client
            .execute(&c.insert, &[&shard, &batch.seqs, &records])
            .await?;
        return Ok(());
    }
    let tx = c.client.transaction().await?;
    if let (Some(epoch), Some(check)) = (fence, &c.check_fence) {
        if tx.query_opt(check, &[&epoch]).await?.is_none() {
            return Err(WriteError::Fenced);
        }
    }
    let mut from = 0;
    while from < batch.len() {
        let to = (from + ROWS_PER_STATEMENT).min(batch.len());
        let records = batch.records(from, to);
        tx.execute(&c.insert, &[&shard, &&batch.seqs[from..to], &records])
            .await?;
        from = to;
    }
    if fence.is_some() {
        tx.execute(
            &format!("SELECT pg_notify('{}', $1::text)", super::tail::CHANNEL),
            &[&schema],
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

async fn write_snapshot(
    c: &mut Conn,
    s: &str,
    shard: i16,
    seq: i64,
    snapshot: &[u8],
    fence: Option<i64>,
) -> Result<(), WriteError> {
    let tx = c.client.transaction().await?;
    if let (Some(epoch), Some(check)) = (fence, &c.check_fence) {
        // A deposed writer's state may hold records that never became durable: its
        // snapshot must not either.
        if tx.query_opt(check, &[&epoch]).await?.is_none() {
            return Err(WriteError::Fenced);
        }
    }
    tx.execute(
        &format!(
            "INSERT INTO {s}.snapshots (shard, seq, snapshot) VALUES ($1, $2, $3) \
             ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq, snapshot = excluded.snapshot, \
             taken_at = now() WHERE {s}.snapshots.seq <= excluded.seq"
        ),
        &[&shard, &seq, &snapshot],
    )
    .await?;
    tx.execute(
        // Rows the read model or an event destination has not consumed yet stay until it has.
        &format!(
            "DELETE FROM {s}.log WHERE shard = $1 AND seq <= LEAST($2, COALESCE( \
             (SELECT p.seq FROM {s}.read_model_position p WHERE p.shard = $1), $2), \
             COALESCE((SELECT h.seq FROM {s}.events_hold h WHERE h.shard = $1), $2))"
        ),
        &[&shard, &seq],
    )
    .await?;
    Ok(tx.commit().await?)
}

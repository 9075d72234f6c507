//! The Postgres write-ahead log: one connection per shard, each group commit one transaction
//! (a multi-row `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` of `(shard, seq,
//! record)`), acknowledged only after COMMIT.
//!
//! Shards run on glommio, tokio-postgres needs tokio: the backend starts one small tokio
//! runtime (one worker thread, `flashsale-pg`) where every shard's connection lives as a task;
//! the shard talks to it over bounded channels and oneshots. See
//! `docs/adr/0005-postgres-log.md`.

pub mod lease;
pub mod schema;
mod shard_log;
pub mod tail;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::log::{LocalBoxFuture, LogBackend, LogError, ShardLog};
use flashsale_protocol::ShardId;
use tokio::sync::mpsc;

use crate::PersistenceError;
pub use schema::SCHEMA_VERSION;
pub use shard_log::PostgresLog;

/// Schema used when none is given.
pub const DEFAULT_SCHEMA: &str = "flashsale";

/// The Postgres backend: a parsed URL, a schema, and the tokio runtime hosting connections.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
    /// The lease epoch every append and snapshot of this handle is conditional on (high
    /// availability); `None` for a single node.
    fence: Option<i64>,
    /// The schema whose `ha_lease` row the fence checks (`None`: this backend's own). A log
    /// of its own next to the group's (the waiting room's journal) is fenced by the group's
    /// lease.
    lease_schema: Option<Arc<str>>,
}

struct Inner {
    pg: tokio_postgres::Config,
    schema: String,
    display: String,
    runtime: Option<tokio::runtime::Runtime>,
    op_timeout: Duration,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("target", &self.display)
            .field("schema", &self.schema)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Never blocks, so dropping the backend inside another async runtime is fine.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PostgresBackend {
    /// Connects to `url` (e.g. `postgres://postgres@127.0.0.1/test`), applies the schema
    /// migrations in schema [`DEFAULT_SCHEMA`], and starts the connection runtime. Fails if
    /// Postgres is unreachable at start. Call from any thread (it blocks until migrated).
    pub fn new(url: &str) -> Result<PostgresBackend, PersistenceError> {
        Self::with_schema(url, DEFAULT_SCHEMA)
    }

    /// Like [`PostgresBackend::new`], keeping every table in `schema` (a lower-case SQL
    /// identifier), so several instances (or tests) can share one database.
    pub fn with_schema(url: &str, schema: &str) -> Result<PostgresBackend, PersistenceError> {
        if !schema::valid_schema_name(schema) {
            return Err(PersistenceError::Config(format!(
                "schema name {schema:?} must match [a-z_][a-z0-9_]{{0,62}}"
            )));
        }
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| PersistenceError::Config(format!("database url: {e}")))?;
        pg.connect_timeout(Duration::from_secs(2));
        // Named per schema so operators (and tests) can tell instances apart.
        let app: String = format!("flashsale-{schema}").chars().take(63).collect();
        pg.application_name(&app);
        // `IF NOT EXISTS` on existing objects (migrations, the read model's partitions) sends a
        // NOTICE ("already exists, skipping") at every start, which tokio-postgres logs: a
        // start is not news. Warnings and errors still show; options in the URL come later,
        // so they win.
        let options = match pg.get_options() {
            Some(user) => format!("-c client_min_messages=warning {user}"),
            None => "-c client_min_messages=warning".to_string(),
        };
        pg.options(&options);
        let display = format!(
            "{}@{}/{}",
            pg.get_user().unwrap_or("?"),
            pg.get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default(),
            pg.get_dbname().unwrap_or("?")
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flashsale-pg")
            .enable_all()
            .build()
            .map_err(|e| PersistenceError::Runtime(format!("starting postgres runtime: {e}")))?;
        let migrate_cfg = pg.clone();
        let schema_name = schema.to_string();
        // Run the migration on the backend's runtime from a plain thread: works whether or
        // not the caller is itself inside an async runtime.
        let handle = runtime.handle().clone();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    handle.block_on(async move {
                        let (mut client, connection) =
                            migrate_cfg.connect(tokio_postgres::NoTls).await?;
                        let driver = tokio::spawn(connection);
                        let res = schema::migrate(&mut client, &schema_name).await;
                        drop(client);
                        let _ = driver.await;
                        res
                    })
                })
                .join()
                .map_err(|_| PersistenceError::Runtime("migration thread panicked".into()))?
        })?;
        Ok(PostgresBackend {
            inner: Arc::new(Inner {
                pg,
                schema: schema.to_string(),
                display,
                runtime: Some(runtime),
                op_timeout: Duration::from_secs(10),
            }),
            fence: None,
            lease_schema: None,
        })
    }

    /// This backend with every log append and snapshot conditional on the group's lease
    /// still holding `epoch` (checked inside the writing transaction, see [`lease`]): once
    /// another node has taken the lease, nothing written through the returned handle can
    /// become durable, and flushes fail with [`LogError::Fenced`].
    pub fn fenced(&self, epoch: u64) -> PostgresBackend {
        PostgresBackend {
            inner: self.inner.clone(),
            fence: Some(i64::try_from(epoch).unwrap_or(i64::MAX)),
            lease_schema: None,
        }
    }

    /// Like [`PostgresBackend::fenced`], checking the lease row of `group`'s schema instead of
    /// this backend's own: a second log of the same group (the waiting room's journal, in
    /// schema `<schema>_queues`) is fenced by the group's one lease.
    pub fn fenced_by(&self, epoch: u64, group: &PostgresBackend) -> PostgresBackend {
        PostgresBackend {
            inner: self.inner.clone(),
            fence: Some(i64::try_from(epoch).unwrap_or(i64::MAX)),
            lease_schema: Some(Arc::from(group.schema())),
        }
    }

    /// The epoch this handle's writes are fenced with, if any.
    pub fn fence(&self) -> Option<u64> {
        self.fence.map(|e| e.max(0) as u64)
    }

    /// The schema holding this instance's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The parsed connection settings (for the read model or tools).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.inner.pg
    }

    /// Opens `shard`'s log as its concrete type (what [`LogBackend::open`] boxes).
    pub async fn open_shard(
        &self,
        shard: ShardId,
        shard_count: u16,
    ) -> Result<PostgresLog, LogError> {
        let Some(rt) = self.inner.runtime.as_ref() else {
            return Err(LogError::Unavailable("postgres runtime stopped".into()));
        };
        if shard >= shard_count {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("shard {shard} out of range (shard count {shard_count})"),
            )));
        }
        // Check (or record) the shard count: records are routed to shards by SKU hash.
        let pg = self.inner.pg.clone();
        let schema = self.inner.schema.clone();
        let check = rt.spawn(async move { check_shard_count(pg, &schema, shard_count).await });
        match check.await {
            Ok(res) => res?,
            Err(e) => return Err(LogError::Unavailable(format!("postgres task failed: {e}"))),
        }
        let (tx, rx) = mpsc::channel(4);
        let cfg = worker::WorkerConfig {
            pg: self.inner.pg.clone(),
            schema: self.inner.schema.clone(),
            shard,
            op_timeout: self.inner.op_timeout,
            fence: self.fence,
            lease_schema: self
                .lease_schema
                .as_deref()
                .unwrap_or(&self.inner.schema)
                .to_string(),
        };
        rt.spawn(worker::run(cfg, rx));
        Ok(PostgresLog::new(shard, tx))
    }
}

async fn check_shard_count(
    pg: tokio_postgres::Config,
    schema: &str,
    shard_count: u16,
) -> Result<(), LogError> {
    let s = schema::quoted(schema);
    let (client, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| LogError::Unavailable(format!("postgres unreachable: {e}")))?;
    let driver = tokio::spawn(connection);
    let res = async {
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.meta (key, value) VALUES ('shard_count', $1) \
                     ON CONFLICT (key) DO NOTHING"
                ),
                &[&shard_count.to_string()],
            )
            .await?;
        client
            .query_one(
                &format!("SELECT value FROM {s}.meta WHERE key = 'shard_count'"),
                &[],
            )
            .await?
            .try_get::<_, String>(0)
    }
    .await;
    drop(client);
    let _ = driver.await;
    let found = res.map_err(|e| LogError::Unavailable(format!("postgres: {e}")))?;
    if found != shard_count.to_string() {
        return Err(LogError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "postgres schema {schema} was written with {found} shards; restart with --shards {found}"
            ),
        )));
    }
    Ok(())
}

impl LogBackend for PostgresBackend {
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
        let fence = match self.fence {
            Some(epoch) => format!(
                ", fenced at lease epoch {epoch} of schema {}",
                self.lease_schema.as_deref().unwrap_or(&self.inner.schema)
            ),
            None => String::new(),
        };
        format!(
            "postgres log at {} (schema {}, one connection per shard{fence})",
            self.inner.display, self.inner.schema
        )
    }
}

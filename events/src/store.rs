//! The durable state of event delivery: the webhook endpoints (`endpoints`), each
//! destination's delivery position per shard (`positions-<dest>`) and each endpoint's dead
//! letters (`dead-<dest>`) and each shard's stock ledger (`ledger-<shard>`, see
//! [`crate::ledger`]), as JSON documents in one of two places:
//!
//! - [`FileStore`]: files in `<data dir>/events/` (a single node, either log backend). Every
//!   file is replaced atomically (write, fsync, rename, fsync dir), so a crash leaves the old
//!   or the new version, never a mix.
//! - [`PgStore`]: rows of `<schema>.events_state` (a high-availability group: every node
//!   reads the same registry and positions, so a new leader resumes where the old one
//!   stopped). Each write is one statement that commits only while the group's lease still
//!   holds the writer's epoch, so a deposed leader can never move a position
//!   ([`EventsError::Fenced`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::EventsError;

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `wh_<hex>`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Subscribed types (`["*"]` or names).
    pub events: Vec<String>,
    /// `whsec_…`.
    pub secret: String,
    /// When created, RFC 3339.
    pub created_at: String,
}

/// An event given up on after the retry period, kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Event id.
    pub id: String,
    /// Event type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The exact body that was signed and sent.
    pub body: String,
    /// When it was given up on, RFC 3339.
    pub failed_at: String,
    /// The last failure.
    pub last_error: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Most dead letters kept per endpoint; older ones are dropped first (and counted).
pub const MAX_DEAD_LETTERS: usize = 10_000;

#[derive(Serialize, Deserialize)]
struct Positions {
    shards: Vec<u64>,
}

/// Where the durable state lives (cheap to clone).
#[derive(Debug, Clone)]
pub enum Store {
    /// Files in the data dir (a single node).
    Files(FileStore),
    /// Rows in the shared Postgres schema, written fenced (a high-availability group).
    Postgres(PgStore),
}

/// The name of a destination's positions document.
fn positions_name(dest: &str) -> String {
    format!("positions-{dest}")
}

/// The name of a destination's dead-letters document.
fn dead_name(dest: &str) -> String {
    format!("dead-{dest}")
}

/// The name of a shard's stock ledger document.
fn ledger_name(shard: u16) -> String {
    format!("ledger-{shard}")
}

/// The name of the endpoints document.
const ENDPOINTS: &str = "endpoints";

impl Store {
    /// The file store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Store, EventsError> {
        FileStore::open(dir).map(Store::Files)
    }

    /// The stored endpoints (none if never stored).
    pub async fn load_endpoints(&self) -> Result<Vec<EndpointRecord>, EventsError> {
        match self {
            Store::Files(f) => f.load_endpoints(),
            Store::Postgres(p) => Ok(p.read_json(ENDPOINTS).await?.unwrap_or_default()),
        }
    }

    /// Replaces the stored endpoints.
    pub async fn save_endpoints(&self, endpoints: &[EndpointRecord]) -> Result<(), EventsError> {
        match self {
            Store::Files(f) => f.save_endpoints(endpoints),
            Store::Postgres(p) => p.write_json(ENDPOINTS, &endpoints).await,
        }
    }

    /// The stored positions of `dest` (last delivered seq per shard), if any.
    pub async fn load_positions(&self, dest: &str) -> Result<Option<Vec<u64>>, EventsError> {
        match self {
            Store::Files(f) => f.load_positions(dest),
            Store::Postgres(p) => {
                let pos: Option<Positions> = p.read_json(&positions_name(dest)).await?;
                Ok(pos.map(|p| p.shards))
            }
        }
    }

    /// Stores the positions of `dest` (files: on the blocking pool, it fsyncs).
    pub async fn save_positions(&self, dest: &str, shards: &[u64]) -> Result<(), EventsError> {
        match self {
            Store::Files(f) => {
                let (f, dest, shards) = (f.clone(), dest.to_string(), shards.to_vec());
                tokio::task::spawn_blocking(move || f.save_positions(&dest, &shards))
                    .await
                    .map_err(|e| EventsError::Runtime(e.to_string()))?
            }
            Store::Postgres(p) => {
                let doc = Positions {
                    shards: shards.to_vec(),
                };
                p.write_json(&positions_name(dest), &doc).await
            }
        }
    }

    /// The dead letters of `dest`.
    pub async fn load_dead(&self, dest: &str) -> Result<Vec<DeadLetter>, EventsError> {
        match self {
            Store::Files(f) => f.load_dead(dest),
            Store::Postgres(p) => Ok(p.read_json(&dead_name(dest)).await?.unwrap_or_default()),
        }
    }

    /// Replaces the dead letters of `dest`.
    pub async fn save_dead(&self, dest: &str, dead: &[DeadLetter]) -> Result<(), EventsError> {
        match self {
            Store::Files(f) => f.save_dead(dest, dead),
            Store::Postgres(p) => p.write_json(&dead_name(dest), &dead).await,
        }
    }

    /// The stored ledger of `shard`, if any.
    pub async fn load_ledger(
        &self,
        shard: u16,
    ) -> Result<Option<crate::ledger::StoredLedger>, EventsError> {
        match self {
            Store::Files(f) => f.load_ledger(shard),
            Store::Postgres(p) => p.read_json(&ledger_name(shard)).await,
        }
    }

    /// Replaces the stored ledger of `shard` (files: on the blocking pool, it fsyncs).
    pub async fn save_ledger(
        &self,
        shard: u16,
        ledger: crate::ledger::StoredLedger,
    ) -> Result<(), EventsError> {
        match self {
            Store::Files(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.save_ledger(shard, &ledger))
                    .await
                    .map_err(|e| EventsError::Runtime(e.to_string()))?
            }
            Store::Postgres(p) => p.write_json(&ledger_name(shard), &ledger).await,
        }
    }

    /// Removes everything stored of `dest` (after its endpoint was deleted); best effort.
    pub async fn remove(&self, dest: &str) {
        match self {
            Store::Files(f) => f.remove(dest),
            Store::Postgres(p) => {
                for name in [positions_name(dest), dead_name(dest)] {
                    if let Err(e) = p.delete(&name).await {
                        tracing::warn!(destination = dest, error = %e, "events: cannot remove stored state");
                    }
                }
            }
        }
    }
}

/// The events state in the shared Postgres schema (`events_state`, one JSON document per
/// name), every write fenced by the group's lease epoch.
#[derive(Clone)]
pub struct PgStore {
    pg: Box<tokio_postgres::Config>,
    /// The validated schema name, quoted.
    schema: String,
    /// The epoch every write is conditional on; `None`: unfenced.
    fence: Option<i64>,
    /// One connection, (re)opened on demand.
    client: Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("fence", &self.fence)
            .finish()
    }
}

impl PgStore {
    /// The store in `backend`'s schema; its writes are fenced with `backend`'s epoch if it
    /// has one ([`flashsale_persistence::PostgresBackend::fenced`]).
    pub fn new(backend: &flashsale_persistence::PostgresBackend) -> PgStore {
        PgStore {
            pg: Box::new(backend.pg_config().clone()),
            schema: format!("\"{}\"", backend.schema()),
            fence: backend
                .fence()
                .map(|e| i64::try_from(e).unwrap_or(i64::MAX)),
            client: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The document `name`, if stored.
    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, EventsError> {
        let s = &self.schema;
        let sql = format!("SELECT value FROM {s}.events_state WHERE name = $1");
        let mut guard = self.client.lock().await;
        let c = crate::source::connect(&self.pg, &mut guard).await?;
        let rows = c
            .query(&sql, &[&name])
            .await
            .inspect_err(|_| *guard = None)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text: String = row.try_get(0)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EventsError::Corrupt {
                path: PathBuf::from(format!("{s}.events_state/{name}")),
                reason: e.to_string(),
            })
    }

    /// Stores the document `name`: one statement, committed only while the lease holds the
    /// fence's epoch (else [`EventsError::Fenced`] and nothing changed).
    async fn write_json<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), EventsError> {
        let text = serde_json::to_string(value).map_err(|e| EventsError::Corrupt {
            path: PathBuf::from(name),
            reason: e.to_string(),
        })?;
        let upsert = format!(
            "INSERT INTO {s}.events_state (name, value) SELECT $1, $2 {cond}              ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()",
            s = self.schema,
            cond = if self.fence.is_some() {
                "WHERE EXISTS (SELECT 1 FROM lease)"
            } else {
                ""
            }
        );
        self.fenced(&upsert, &[&name, &text]).await
    }

    /// Deletes the document `name` (fenced like a write).
    async fn delete(&self, name: &str) -> Result<(), EventsError> {
        let delete = format!(
            "DELETE FROM {s}.events_state WHERE name = $1 {cond}",
            s = self.schema,
            cond = if self.fence.is_some() {
                "AND EXISTS (SELECT 1 FROM lease)"
            } else {
                ""
            }
        );
        self.fenced(&delete, &[&name]).await
    }

    /// Runs `statement` (its parameters `$1`, `$2`, …), with the lease check as a `lease`
    /// CTE in the same statement when fenced: the lease row is share-locked while it runs, so
    /// a takeover waits for it, and a write after the takeover changes nothing.
    async fn fenced(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), EventsError> {
        let s = &self.schema;
        let mut guard = self.client.lock().await;
        let c = crate::source::connect(&self.pg, &mut guard).await?;
        let Some(epoch) = self.fence else {
            c.execute(statement, params)
                .await
                .inspect_err(|_| *guard = None)?;
            return Ok(());
        };
        let n = params.len() + 1;
        let sql = format!(
            "WITH lease AS (SELECT epoch FROM {s}.ha_lease WHERE id = 1 AND epoch = ${n} FOR SHARE),              w AS ({statement}) SELECT count(*) FROM lease"
        );
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
        all.push(&epoch);
        let row = c
            .query_one(&sql, &all)
            .await
            .inspect_err(|_| *guard = None)?;
        let held: i64 = row.try_get(0)?;
        if held == 0 {
            return Err(EventsError::Fenced {
                epoch: epoch.max(0) as u64,
            });
        }
        Ok(())
    }
}

/// The events state directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> Result<FileStore, EventsError> {
        std::fs::create_dir_all(dir).map_err(|source| EventsError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(FileStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The stored endpoints (none if the file does not exist).
    pub fn load_endpoints(&self) -> Result<Vec<EndpointRecord>, EventsError> {
        Ok(self
            .read_json(&self.dir.join("endpoints.json"))?
            .unwrap_or_default())
    }

    /// Replaces the stored endpoints.
    pub fn save_endpoints(&self, endpoints: &[EndpointRecord]) -> Result<(), EventsError> {
        self.write_json(&self.dir.join("endpoints.json"), &endpoints)
    }

    /// The stored positions of `dest` (last delivered seq per shard), if any.
    pub fn load_positions(&self, dest: &str) -> Result<Option<Vec<u64>>, EventsError> {
        let p: Option<Positions> = self.read_json(&self.positions_path(dest))?;
        Ok(p.map(|p| p.shards))
    }

    /// Stores the positions of `dest`.
    pub fn save_positions(&self, dest: &str, shards: &[u64]) -> Result<(), EventsError> {
        self.write_json(
            &self.positions_path(dest),
            &Positions {
                shards: shards.to_vec(),
            },
        )
    }

    /// The dead letters of `dest`.
    pub fn load_dead(&self, dest: &str) -> Result<Vec<DeadLetter>, EventsError> {
        Ok(self.read_json(&self.dead_path(dest))?.unwrap_or_default())
    }

    /// Replaces the dead letters of `dest`.
    pub fn save_dead(&self, dest: &str, dead: &[DeadLetter]) -> Result<(), EventsError> {
        self.write_json(&self.dead_path(dest), &dead)
    }

    /// The stored ledger of `shard`, if any.
    pub fn load_ledger(
        &self,
        shard: u16,
    ) -> Result<Option<crate::ledger::StoredLedger>, EventsError> {
        self.read_json(&self.dir.join(format!("ledger-{shard}.json")))
    }

    /// Replaces the stored ledger of `shard`.
    pub fn save_ledger(
        &self,
        shard: u16,
        ledger: &crate::ledger::StoredLedger,
    ) -> Result<(), EventsError> {
        self.write_json(&self.dir.join(format!("ledger-{shard}.json")), ledger)
    }

    /// Removes every file of `dest` (after its endpoint was deleted).
    pub fn remove(&self, dest: &str) {
        let _ = std::fs::remove_file(self.positions_path(dest));
        let _ = std::fs::remove_file(self.dead_path(dest));
    }

    fn positions_path(&self, dest: &str) -> PathBuf {
        self.dir.join(format!("positions-{dest}.json"))
    }

    fn dead_path(&self, dest: &str) -> PathBuf {
        self.dir.join(format!("dead-{dest}.json"))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, EventsError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(EventsError::Io {
                    op: "reading",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EventsError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    fn write_json<T: Serialize + ?Sized>(&self, path: &Path, value: &T) -> Result<(), EventsError> {
        let io = |op, source| EventsError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let bytes = serde_json::to_vec(value).map_err(|e| EventsError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            // Owner only: endpoints.json holds the signing secrets.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("creating", e))?;
            f.write_all(&bytes).map_err(|e| io("writing", e))?;
            f.sync_data().map_err(|e| io("syncing", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io("renaming", e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing dir of", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen() -> Result<(), EventsError> {
        let dir = tempfile::tempdir().map_err(|e| EventsError::Runtime(e.to_string()))?;
        let store = FileStore::open(dir.path())?;
        assert_eq!(store.load_positions("wh_1")?, None);
        store.save_positions("wh_1", &[3, 0, 9])?;
        let ep = EndpointRecord {
            id: "wh_1".into(),
            url: "http://127.0.0.1:1/".into(),
            events: vec!["*".into()],
            secret: "whsec_x".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        store.save_endpoints(std::slice::from_ref(&ep))?;
        let again = FileStore::open(dir.path())?;
        assert_eq!(again.load_positions("wh_1")?, Some(vec![3, 0, 9]));
        assert_eq!(again.load_endpoints()?, vec![ep]);
        std::fs::write(dir.path().join("positions-bad.json"), b"{nope")
            .map_err(|e| EventsError::Runtime(e.to_string()))?;
        assert!(matches!(
            again.load_positions("bad"),
            Err(EventsError::Corrupt { .. })
        ));
        Ok(())
    }
}

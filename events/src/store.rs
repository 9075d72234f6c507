//! The durable state of event delivery, in `<data dir>/events/`: the webhook endpoints
//! (`endpoints.json`), each destination's delivery position per shard
//! (`positions-<dest>.json`) and each endpoint's dead letters (`dead-<dest>.json`). Every
//! file is replaced atomically (write, fsync, rename, fsync dir), so a crash leaves the old
//! or the new version, never a mix.

use std::path::{Path, PathBuf};

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

/// The events state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the state directory.
    pub fn open(dir: &Path) -> Result<Store, EventsError> {
        std::fs::create_dir_all(dir).map_err(|source| EventsError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
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
        let store = Store::open(dir.path())?;
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
        let again = Store::open(dir.path())?;
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

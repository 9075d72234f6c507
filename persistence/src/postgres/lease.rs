//! High availability bookkeeping in Postgres: the group's lease (one row: epoch, holder,
//! its advertised URL, expiry by the database's clock) and the group's nodes (identities
//! unique among live nodes). See `docs/adr/0021-ha-lease-and-fencing.md`.
//!
//! The lease is the safety core together with the fence of the log
//! ([`PostgresBackend::fenced`]): taking the lease bumps the epoch in one `UPDATE`, which
//! waits for every append still holding the row in share mode, and every later append of an
//! older epoch finds no row and commits nothing.

use tokio_postgres::{Client, NoTls};

use super::schema::quoted;
use crate::{PersistenceError, PostgresBackend};

/// The lease as stored: who holds it, at which epoch, and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// Bumped by every takeover; 0 before the first.
    pub epoch: u64,
    /// The holder's node id (empty before the first takeover).
    pub node_id: String,
    /// The holder's process instance (see [`GroupStore::join`]).
    pub instance: String,
    /// The holder's advertised URL.
    pub advertise_url: String,
    /// Milliseconds until it expires by the database's clock (≤ 0: expired).
    pub remaining_ms: i64,
}

/// Where the log stands, summed over shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogPosition {
    /// The last durable sequence number of every shard, summed (grows by one per record).
    pub end: u64,
    /// The sequence numbers covered by snapshots, summed: `end - snapshot` records are
    /// replayed by a node that starts now.
    pub snapshot: u64,
}

/// A connection for the group's bookkeeping (one per node, on the caller's tokio runtime).
#[derive(Debug)]
pub struct GroupStore {
    client: Client,
    schema: String,
}

/// `ms` as a Postgres interval parameter (milliseconds, as float8).
fn ms(v: u64) -> f64 {
    v as f64
}

impl GroupStore {
    /// Connects to `backend`'s database; the connection is driven by a task on the current
    /// tokio runtime.
    pub async fn connect(backend: &PostgresBackend) -> Result<GroupStore, PersistenceError> {
        let (client, connection) = backend.pg_config().connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "group connection closed");
            }
        });
        Ok(GroupStore {
            client,
            schema: quoted(backend.schema()),
        })
    }

    /// Whether the connection is gone (then connect again).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Registers `node_id` for this process (`instance`, unique per process). Refused with
    /// [`PersistenceError::NodeIdInUse`] while another live instance (seen within
    /// `stale_after_ms`) holds the same id.
    pub async fn join(
        &self,
        node_id: &str,
        instance: &str,
        advertise_url: &str,
        stale_after_ms: u64,
    ) -> Result<(), PersistenceError> {
        let s = &self.schema;
        let row = self
            .client
            .query_opt(
                &format!(
                    "INSERT INTO {s}.ha_nodes AS n (node_id, instance, advertise_url, seen_at) \
                     VALUES ($1, $2, $3, now()) \
                     ON CONFLICT (node_id) DO UPDATE \
                       SET instance = excluded.instance, advertise_url = excluded.advertise_url, \
                           seen_at = now() \
                     WHERE n.instance = excluded.instance \
                        OR n.seen_at < now() - $4 * interval '1 millisecond' \
                     RETURNING 1"
                ),
                &[&node_id, &instance, &advertise_url, &ms(stale_after_ms)],
            )
            .await?;
        if row.is_some() {
            return Ok(());
        }
        let other = self
            .client
            .query_opt(
                &format!(
                    "SELECT advertise_url, \
                       (extract(epoch FROM now() - seen_at) * 1000)::int8 \
                     FROM {s}.ha_nodes WHERE node_id = $1"
                ),
                &[&node_id],
            )
            .await?;
        let (url, seen_ms_ago) = match other {
            Some(row) => (row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?),
            None => (String::new(), 0),
        };
        Err(PersistenceError::NodeIdInUse {
            node_id: node_id.to_string(),
            advertise_url: url,
            seen_ms_ago,
        })
    }

    /// Records that this instance is alive; false if another instance took the node id over
    /// (this one was presumed dead).
    pub async fn heartbeat(&self, node_id: &str, instance: &str) -> Result<bool, PersistenceError> {
        let s = &self.schema;
        let n = self
            .client
            .execute(
                &format!(
                    "UPDATE {s}.ha_nodes SET seen_at = now() \
                     WHERE node_id = $1 AND instance = $2"
                ),
                &[&node_id, &instance],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes this instance's registration (a clean stop).
    pub async fn leave(&self, node_id: &str, instance: &str) -> Result<(), PersistenceError> {
        let s = &self.schema;
        self.client
            .execute(
                &format!("DELETE FROM {s}.ha_nodes WHERE node_id = $1 AND instance = $2"),
                &[&node_id, &instance],
            )
            .await?;
        Ok(())
    }

    /// Takes the lease if it has expired (by the database's clock), if this very process
    /// (`node_id` and `instance`) holds it (it stepped down and has stopped writing), or if the
    /// holder's group connection is gone from Postgres (`holder_pid` no longer in
    /// `pg_stat_activity`: its process died, so there is no need to wait for the expiry):
    /// bumps the epoch and returns it. `None` while another node holds a live lease.
    pub async fn try_acquire(
        &self,
        node_id: &str,
        instance: &str,
        advertise_url: &str,
        lease_ms: u64,
    ) -> Result<Option<u64>, PersistenceError> {
        let s = &self.schema;
        let row = self
            .client
            .query_opt(
                &format!(
                    "UPDATE {s}.ha_lease l SET epoch = epoch + 1, node_id = $1, instance = $4, \
                       advertise_url = $2, expires_at = now() + $3 * interval '1 millisecond', \
                       holder_pid = pg_backend_pid() \
                     WHERE id = 1 AND (expires_at <= now() OR (node_id = $1 AND instance = $4) \
                       OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.holder_pid)) \
                     RETURNING epoch"
                ),
                &[&node_id, &advertise_url, &ms(lease_ms), &instance],
            )
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<_, i64>(0)?.max(0) as u64),
            None => None,
        })
    }

    /// Extends the lease held at `epoch` by `lease_ms` from the database's now, and records
    /// this connection as the holder's; false if it was lost (another node took it: the
    /// epoch moved on).
    pub async fn renew(
        &self,
        node_id: &str,
        instance: &str,
        epoch: u64,
        lease_ms: u64,
    ) -> Result<bool, PersistenceError> {
        let s = &self.schema;
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let n = self
            .client
            .execute(
                &format!(
                    "UPDATE {s}.ha_lease SET expires_at = now() + $3 * interval '1 millisecond', \
                       holder_pid = pg_backend_pid() \
                     WHERE id = 1 AND epoch = $2 AND node_id = $1 AND instance = $4"
                ),
                &[&node_id, &epoch, &ms(lease_ms), &instance],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives the lease up at once (a clean stop), so a standby need not wait for it to expire.
    /// The epoch stays: the next holder bumps it.
    pub async fn release(
        &self,
        node_id: &str,
        instance: &str,
        epoch: u64,
    ) -> Result<(), PersistenceError> {
        let s = &self.schema;
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        self.client
            .execute(
                &format!(
                    "UPDATE {s}.ha_lease SET expires_at = '-infinity' \
                     WHERE id = 1 AND epoch = $2 AND node_id = $1 AND instance = $3"
                ),
                &[&node_id, &epoch, &instance],
            )
            .await?;
        Ok(())
    }

    /// The lease as stored now.
    pub async fn lease(&self) -> Result<LeaseView, PersistenceError> {
        let s = &self.schema;
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT epoch, node_id, advertise_url, instance, \
                       CASE WHEN expires_at = '-infinity' THEN -1 \
                            ELSE (extract(epoch FROM expires_at - now()) * 1000)::int8 END \
                     FROM {s}.ha_lease WHERE id = 1"
                ),
                &[],
            )
            .await?;
        Ok(LeaseView {
            epoch: row.try_get::<_, i64>(0)?.max(0) as u64,
            node_id: row.try_get(1)?,
            advertise_url: row.try_get(2)?,
            remaining_ms: row.try_get(4)?,
            instance: row.try_get(3)?,
        })
    }

    /// The group's shared secret named `name` (in `meta`, key `secret:<name>`): created by
    /// the first node that asks (`candidate`, random), read by every later one, so every
    /// node of the group derives the same keys from it (e.g. the waiting room's pass key)
    /// without sharing files.
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, PersistenceError> {
        let s = &self.schema;
        let key = format!("secret:{name}");
        self.client
            .execute(
                &format!(
                    "INSERT INTO {s}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
                ),
                &[&key, &candidate],
            )
            .await?;
        let row = self
            .client
            .query_one(
                &format!("SELECT value FROM {s}.meta WHERE key = $1"),
                &[&key],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The log's end and snapshot coverage over `shard_count` shards (index lookups only).
    pub async fn log_position(&self, shard_count: u16) -> Result<LogPosition, PersistenceError> {
        let s = &self.schema;
        let last = i32::from(shard_count) - 1;
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(sum(greatest( \
                        (SELECT max(l.seq) FROM {s}.log l WHERE l.shard = g.s), \
                        (SELECT sn.seq FROM {s}.snapshots sn WHERE sn.shard = g.s), 0)), 0)::int8, \
                      coalesce(sum((SELECT sn.seq FROM {s}.snapshots sn WHERE sn.shard = g.s)), 0)::int8 \
                     FROM generate_series(0, $1) AS g(s)"
                ),
                &[&last],
            )
            .await?;
        Ok(LogPosition {
            end: row.try_get::<_, i64>(0)?.max(0) as u64,
            snapshot: row.try_get::<_, i64>(1)?.max(0) as u64,
        })
    }
}

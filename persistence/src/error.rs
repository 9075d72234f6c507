//! The crate's error type.

use std::path::PathBuf;

/// Why a persistence backend could not be opened or run.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (e.g. `creating data dir`).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another backend in this process) holds the data dir.
    #[error(
        "data dir {path} is in use by another flashsale server ({holder}); \
         stop it or choose another --data-dir"
    )]
    Locked {
        /// The data dir.
        path: PathBuf,
        /// What the lock file says about its holder (e.g. `pid 1234`).
        holder: String,
    },
    /// Another live node of the high-availability group already uses this node id.
    #[error(
        "node id {node_id:?} is in use by another live node ({advertise_url}, seen {seen_ms_ago} ms ago); \
         give each node its own --node-id"
    )]
    NodeIdInUse {
        /// The contested node id.
        node_id: String,
        /// The URL the other node advertises.
        advertise_url: String,
        /// How long ago the other node last reported, by the database's clock.
        seen_ms_ago: i64,
    },
    /// Postgres refused a connection or a statement.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A configuration value is invalid (bad URL, bad schema name, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A background runtime or thread could not be started or stopped.
    #[error("runtime: {0}")]
    Runtime(String),
    /// Stored data is not what this build can read.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

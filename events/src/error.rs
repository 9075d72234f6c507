//! The crate's error type.

/// Why reading the log, storing state or reaching a destination failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Reading the embedded log failed.
    #[error("log: {0}")]
    Log(#[from] flashsale_persistence::PersistenceError),
    /// Reading the Postgres log failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// Reading or writing the events state files failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds something this build cannot read.
    #[error("corrupt events state {path}: {reason}")]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The broker refused or dropped the connection, a publish or its confirm.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// The TLS connection to the broker failed (handshake, certificate, or a plain port).
    #[error("amqps: TLS connection failed: {0} (is the port a TLS port? RabbitMQ listens for TLS on 5671 by default; is the server certificate trusted by the platform roots or --amqp-ca-file?)")]
    AmqpTls(String),
    /// The broker did not complete the connection in time.
    #[error("amqp: no connection within {0:?}")]
    AmqpTimeout(std::time::Duration),
    /// The broker nacked a publish.
    #[error("amqp: the broker did not confirm a message")]
    Nacked,
    /// A write of the shared state was refused: the group's lease moved past this writer's
    /// epoch (this node no longer leads).
    #[error("fenced: the lease is no longer at epoch {epoch}")]
    Fenced {
        /// The writer's epoch.
        epoch: u64,
    },
    /// A background task failed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

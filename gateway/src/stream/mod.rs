//! The QUIC stock stream server: partners watch stock levels live (contract: "QUIC stock stream").
//!
//! - [`StockHub`] is the engine's [`StockObserver`](flashsale_engine::StockObserver): it numbers
//!   changes, keeps a bounded history for resume and the latest level per SKU, and never blocks
//!   the engine.
//! - [`StreamServer`] is the quinn endpoint: bind it (to learn the address and the certificate
//!   fingerprint), then [`StreamServer::run`] it until shutdown. [`serve`] does both.
//!
//! Wiring in `flashsale serve`:
//! ```ignore
//! let hub = StockHub::new(stream_config.history_capacity);
//! // EngineConfig { observer: Some(hub.clone()), .. }; after start:
//! hub.seed(&engine.stock_levels().await);
//! let server = StreamServer::bind(stream_config)?;
//! println!("quic: {} (sha256 {})", server.local_addr(), server.fingerprint());
//! server.run(hub, tokens, shutdown_signal).await?;
//! ```

pub mod hub;
mod server;
mod session;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use hub::{unix_micros, HubStats, StockHub, DEFAULT_HISTORY_CAPACITY};
pub use server::{serve, ServerStats, ServerStatsSnapshot, StreamServer};
pub use tls::{fingerprint_of, TlsIdentity};

/// Settings of the stream server.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// UDP address to listen on (`--quic`, default `127.0.0.1:8443`).
    pub addr: SocketAddr,
    /// PEM certificate chain (`--tls-cert`); with `tls_key`. Without both, a self-signed
    /// certificate is generated at start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// Names put in a generated certificate, besides `localhost` and the bound IP.
    pub self_signed_names: Vec<String>,
    /// How often an idle connection gets a heartbeat.
    pub heartbeat: Duration,
    /// Updates kept for resume (pass to [`StockHub::new`]).
    pub history_capacity: usize,
    /// How many updates a connection may fall behind the head before it is served the latest
    /// value per SKU (coalesced) instead of every update.
    pub lag_limit: u64,
    /// Bytes a connection may have in flight unacknowledged (bounds per-connection send memory).
    pub send_window_bytes: u64,
    /// Most concurrent connections; more are refused.
    pub max_connections: usize,
    /// Time a client has to send `Hello` and `Subscribe`.
    pub handshake_timeout: Duration,
    /// Largest client frame accepted, in bytes.
    pub max_frame_len: usize,
    /// A connection with no packet from the peer for this long is closed.
    pub idle_timeout: Duration,
}

impl StreamConfig {
    /// Defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> StreamConfig {
        StreamConfig {
            addr,
            tls_cert: None,
            tls_key: None,
            self_signed_names: Vec::new(),
            heartbeat: Duration::from_secs(1),
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            lag_limit: 1024,
            send_window_bytes: 1 << 20,
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: flashsale_protocol::stream::MAX_FRAME_LEN,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig::new(SocketAddr::from(([127, 0, 0, 1], 8443)))
    }
}

/// Why the stream server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS configuration was refused.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The settings are inconsistent.
    #[error("invalid stream settings: {0}")]
    Config(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

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

mod dialogue;
pub mod driver;
pub mod gate;
pub mod hub;
pub mod metrics;
mod proto;
mod server;
mod session;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use driver::StreamDriver;
pub use gate::{LeaderGate, Serving};
pub use hub::{unix_micros, HubStats, StockHub, DEFAULT_HISTORY_CAPACITY};
pub use server::{serve, ServerStats, ServerStatsSnapshot, StreamServer, StreamThread};
pub use tls::{fingerprint_of, TlsIdentity};

/// Default shortest time between two publications of stock updates.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_millis(5);

/// Default fan-out budget, update packets per second for the whole server: ≈ 6 % of one core of
/// quinn work on our 2-vCPU benchmark machine (≈ 23 µs per update; docs/adr/0012), which keeps
/// reservation throughput with 1 000 subscribers within 10 % of without. Raise it on bigger
/// machines.
pub const DEFAULT_MAX_SENDS_PER_S: u64 = 2_500;

/// Longest time between publications, whatever the number of connections.
pub const MAX_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Default heartbeat of an idle stream connection (`--stream-heartbeat-ms`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// Shortest heartbeat accepted, in ms: below it idle connections cost more packets than the
/// quicker notice of a dead server is worth (a client probes a quarter of a heartbeat late).
pub const MIN_HEARTBEAT_MS: u64 = 100;

/// Longest heartbeat accepted, in ms: a client notices a dead server only after three missed
/// heartbeats, and QUIC's idle timeout (30 s) must not close an idle connection first.
pub const MAX_HEARTBEAT_MS: u64 = 5_000;

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
    /// Certificate and key to serve when no `tls_cert`/`tls_key` files are given (the stored
    /// self-signed identity of `flashsale serve`). Without either, a self-signed certificate is
    /// generated at bind.
    pub identity: Option<TlsIdentity>,
    /// Key of the QUIC stateless resets. Kept across restarts (the stored identity), it lets a
    /// restarted server tell the clients of its previous run at their next packet that their
    /// connection is gone, so they reconnect at once. `None`: a random key per start.
    pub reset_key: Option<crate::identity::ResetKey>,
    /// Names put in a generated certificate, besides `localhost` and the bound IP.
    pub self_signed_names: Vec<String>,
    /// How often an idle connection gets a heartbeat (`--stream-heartbeat-ms`). Clients take
    /// a heartbeat a quarter late as a sign of trouble (they probe the server and, given the
    /// other nodes of a group, look for a new leader) and three missed ones (+ 2 s) as a lost
    /// server.
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
    /// Shortest time between two publications of the hub (`--stream-publish-interval-ms`):
    /// changes within one interval are conflated into the latest value per SKU. Bounds the
    /// packets per second each subscriber of a busy SKU costs; zero publishes every change
    /// as soon as the pump sees it.
    pub publish_interval: Duration,
    /// Fan-out budget in update packets per second for the whole server
    /// (`--stream-max-sends-per-s`, 0 = none): with N connections, publications are at least
    /// N / budget seconds apart, so the stream's CPU cost stays bounded however many partners
    /// subscribe; each then sees a busy SKU at budget / N updates per second (conflated).
    pub max_sends_per_s: u64,
    /// Nice value for the stream thread (`--stream-thread-nice`, Linux): below 0 lets fan-out
    /// run promptly on a busy machine (needs CAP_SYS_NICE; refused values are logged and
    /// ignored). `None` leaves the thread as it is.
    pub thread_nice: Option<i32>,
    /// OS threads that run the stream (`--stream-threads`, ≥ 1): connections, their sessions and
    /// the fan-out of each publication are spread over them, so a burst to many subscribers can
    /// use N spare cores (each delivery costs a little more CPU: docs/adr/0013). One thread uses
    /// a single-threaded runtime.
    pub threads: usize,
    /// Whether to serve now: always by default; a node of a high-availability group installs
    /// a check so that only the leader serves (ADR 0033).
    pub leader_gate: LeaderGate,
    /// What drives the QUIC connections (`--stream-driver`): the single quinn-proto loop
    /// (default; one thread, so `StreamThread::bind` refuses it with `threads` above 1) or
    /// quinn's tasks (ADR 0046).
    pub driver: StreamDriver,
}

impl StreamConfig {
    /// The time between publications for `connections` open connections: the configured
    /// minimum, or longer so that one update to every connection fits the sends budget.
    pub fn publish_interval_for(&self, connections: u64) -> Duration {
        if self.max_sends_per_s == 0 {
            return self.publish_interval;
        }
        let budget_us = connections.saturating_mul(1_000_000) / self.max_sends_per_s;
        self.publish_interval
            .max(Duration::from_micros(budget_us))
            .min(MAX_PUBLISH_INTERVAL)
    }
}

impl StreamConfig {
    /// Defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> StreamConfig {
        StreamConfig {
            addr,
            tls_cert: None,
            tls_key: None,
            identity: None,
            reset_key: None,
            self_signed_names: Vec::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            lag_limit: 1024,
            send_window_bytes: 1 << 20,
            max_connections: 20_000,
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: flashsale_protocol::stream::MAX_FRAME_LEN,
            idle_timeout: Duration::from_secs(30),
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            max_sends_per_s: DEFAULT_MAX_SENDS_PER_S,
            thread_nice: None,
            threads: 1,
            leader_gate: LeaderGate::default(),
            driver: StreamDriver::default(),
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
    /// The stream thread or its runtime could not be started.
    #[error("cannot start the stream thread: {0}")]
    Thread(std::io::Error),
    /// The UDP socket failed while serving (`--stream-driver proto`).
    #[error("the stream socket failed: {0}")]
    Socket(std::io::Error),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_interval_grows_with_connections_to_fit_the_budget() {
        let mut c = StreamConfig {
            publish_interval: Duration::from_millis(5),
            max_sends_per_s: 5_000,
            ..StreamConfig::default()
        };
        assert_eq!(c.publish_interval_for(0), Duration::from_millis(5));
        assert_eq!(c.publish_interval_for(10), Duration::from_millis(5));
        assert_eq!(c.publish_interval_for(1_000), Duration::from_millis(200));
        assert_eq!(c.publish_interval_for(100_000), MAX_PUBLISH_INTERVAL);
        c.max_sends_per_s = 0;
        assert_eq!(c.publish_interval_for(1_000), Duration::from_millis(5));
    }
}

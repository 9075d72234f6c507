//! The quinn endpoint: accepts connections and runs a session task per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashsale_protocol::stream::ErrorCode;
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::proto::ProtoEndpoint;
use super::session::{run_connection, Shared};
use super::{StockHub, StreamConfig, StreamDriver, StreamError, TlsIdentity};
use crate::auth::Tokens;

/// Longest delay a client may wait before acknowledging stream data (ACK frequency extension).
const ACK_DELAY: Duration = Duration::from_millis(200);

/// Bytes of client probe datagrams a connection keeps unread (the oldest are dropped).
const PROBE_BUFFER_BYTES: usize = 64;

/// How long connections get to say goodbye at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Live counters of a stream server (shared with its connections).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) refused_busy: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) updates_sent: AtomicU64,
    pub(crate) coalesced_batches: AtomicU64,
    pub(crate) heartbeats_sent: AtomicU64,
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) resumes: AtomicU64,
}

/// A copy of [`ServerStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerStatsSnapshot {
    /// Connections accepted (handshake started).
    pub accepted: u64,
    /// Connections currently open.
    pub active: u64,
    /// Connections refused because `max_connections` was reached.
    pub refused_busy: u64,
    /// Handshakes refused for an unknown token.
    pub unauthorized: u64,
    /// Connections closed for a malformed, oversized or unexpected frame.
    pub protocol_errors: u64,
    /// Update frames sent.
    pub updates_sent: u64,
    /// Times a lagging connection was served the latest value per SKU.
    pub coalesced_batches: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Snapshots sent (handshakes without a usable resume point).
    pub snapshots_sent: u64,
    /// Handshakes resumed from the history.
    pub resumes: u64,
}

impl ServerStats {
    /// The current values.
    pub fn snapshot(&self) -> ServerStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStatsSnapshot {
            accepted: l(&self.accepted),
            active: l(&self.active),
            refused_busy: l(&self.refused_busy),
            unauthorized: l(&self.unauthorized),
            protocol_errors: l(&self.protocol_errors),
            updates_sent: l(&self.updates_sent),
            coalesced_batches: l(&self.coalesced_batches),
            heartbeats_sent: l(&self.heartbeats_sent),
            snapshots_sent: l(&self.snapshots_sent),
            resumes: l(&self.resumes),
        }
    }
}

/// A bound stream server: its address and certificate fingerprint are known; call
/// [`StreamServer::run`] to serve.
#[derive(Debug)]
pub struct StreamServer {
    endpoint: Transport,
    local_addr: SocketAddr,
    identity: TlsIdentity,
    config: StreamConfig,
    stats: Arc<ServerStats>,
}

fn transport(config: &StreamConfig) -> Result<quinn::TransportConfig, StreamError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| StreamError::Config("idle timeout too large".into()))?;
    let window = |v: u64| {
        quinn::VarInt::from_u64(v).map_err(|_| StreamError::Config("window too large".into()))
    };
    // Clients send a handful of small frames; one stream each.
    let recv_window = (config.max_frame_len as u64 + 4).clamp(64 << 10, 4 << 20);
    t.max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .stream_receive_window(window(recv_window)?)
        .receive_window(window(recv_window)?)
        .send_window(config.send_window_bytes.max(16 << 10))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.idle_timeout / 4))
        // Clients send a tiny datagram when the server has been silent for longer than a
        // heartbeat, so that a restarted server answers it with a stateless reset at once.
        // Nothing reads them: keep only the last few bytes (the default would be 1.25 MB each).
        .datagram_receive_buffer_size(Some(PROBE_BUFFER_BYTES))
        .datagram_send_buffer_size(0);
    // The stream is one-way and paced: ask clients to acknowledge every 10th packet (or after
    // 200 ms) instead of every 2nd, which takes most ACK packets off both ends' CPU. Loss
    // recovery waits at most that extra delay; clients without the extension ignore it.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(9u8.into())
        .max_ack_delay(Some(ACK_DELAY));
    t.ack_frequency_config(Some(ack));
    Ok(t)
}

/// Shortest time between two stateless resets the endpoint sends. quinn's default (20 ms)
/// would take 20 s to tell 1 000 clients of a restarted server that their connections are gone;
/// a reset is smaller than the packet that caused it, so a faster pace amplifies nothing.
const MIN_RESET_INTERVAL: Duration = Duration::from_millis(1);

/// The endpoint of either driver (`--stream-driver`).
#[derive(Debug)]
enum Transport {
    /// quinn's endpoint, its driver task and a task per connection.
    Quinn(quinn::Endpoint),
    /// One loop over quinn-proto (ADR 0046); boxed, it is much larger than quinn's handle.
    Proto(Box<ProtoEndpoint>),
}

/// Binds the endpoint of the configured driver.
fn bind_transport(
    config: &StreamConfig,
    server_config: quinn::ServerConfig,
) -> Result<Transport, StreamError> {
    match config.driver {
        StreamDriver::Quinn => bind_endpoint(config, server_config).map(Transport::Quinn),
        StreamDriver::Proto => {
            ProtoEndpoint::bind(config.addr, endpoint_config(config), server_config)
                .map(|endpoint| Transport::Proto(Box::new(endpoint)))
        }
    }
}

/// The endpoint settings: the configured stateless-reset key (a random one without) and the
/// reset pace.
fn endpoint_config(config: &StreamConfig) -> quinn::EndpointConfig {
    let mut endpoint_config = match &config.reset_key {
        Some(key) => {
            let mut c = quinn::EndpointConfig::new(Arc::new(key.clone()));
            // Connection ids of an earlier run with this key must still validate, or their
            // packets are dropped before a reset can be sent.
            let cid_key = key.cid_key();
            c.cid_generator(move || {
                Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            });
            c
        }
        None => quinn::EndpointConfig::default(),
    };
    endpoint_config.min_reset_interval(MIN_RESET_INTERVAL);
    endpoint_config
}

/// Binds the quinn endpoint on `config.addr`.
fn bind_endpoint(
    config: &StreamConfig,
    server_config: quinn::ServerConfig,
) -> Result<quinn::Endpoint, StreamError> {
    let bind_err = |source| StreamError::Bind {
        addr: config.addr,
        source,
    };
    let endpoint_config = endpoint_config(config);
    let socket = std::net::UdpSocket::bind(config.addr).map_err(bind_err)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| StreamError::Config("no async runtime for the stream endpoint".into()))?;
    quinn::Endpoint::new(endpoint_config, Some(server_config), socket, runtime).map_err(bind_err)
}

impl StreamServer {
    /// Loads or generates the certificate and binds the UDP socket. Must run inside a tokio
    /// runtime.
    pub fn bind(config: StreamConfig) -> Result<StreamServer, StreamError> {
        if config.heartbeat.is_zero() {
            return Err(StreamError::Config("heartbeat interval must be > 0".into()));
        }
        let identity = match (&config.tls_cert, &config.tls_key, &config.identity) {
            (Some(cert), Some(key), _) => TlsIdentity::from_pem_files(cert, key)?,
            (None, None, Some(identity)) => identity.clone(),
            (None, None, None) => {
                let mut names = vec!["localhost".to_string()];
                let ip = config.addr.ip();
                if ip.is_unspecified() {
                    names.push("127.0.0.1".into());
                    names.push("::1".into());
                } else {
                    names.push(ip.to_string());
                }
                names.extend(config.self_signed_names.iter().cloned());
                TlsIdentity::self_signed(names)?
            }
            _ => {
                return Err(StreamError::Config(
                    "--tls-cert and --tls-key must be given together".into(),
                ))
            }
        };
        let crypto = QuicServerConfig::try_from(identity.server_crypto()?)
            .map_err(|e| StreamError::Tls(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(Arc::new(transport(&config)?));
        let endpoint = bind_transport(&config, server_config)?;
        let local_addr = match &endpoint {
            Transport::Quinn(endpoint) => {
                endpoint.local_addr().map_err(|source| StreamError::Bind {
                    addr: config.addr,
                    source,
                })?
            }
            Transport::Proto(endpoint) => endpoint.local_addr(),
        };
        Ok(StreamServer {
            endpoint,
            local_addr,
            identity,
            config,
            stats: Arc::new(ServerStats::default()),
        })
    }

    /// The UDP address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 of the server certificate (lowercase hex), for `flashsale watch --fingerprint`.
    pub fn fingerprint(&self) -> String {
        self.identity.fingerprint()
    }

    /// Whether the certificate was generated at start.
    pub fn is_self_signed(&self) -> bool {
        self.identity.self_signed
    }

    /// The server certificate chain as PEM (usable as a client `--ca` file).
    pub fn certificate_pem(&self) -> String {
        self.identity.certificate_pem()
    }

    /// Live counters; stays valid after `run` consumed the server.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` completes, then closes every connection with
    /// [`ErrorCode::ServerShutdown`] (clients reconnect and resume elsewhere or later) and waits
    /// briefly for them to go.
    pub async fn run(
        self,
        hub: Arc<StockHub>,
        tokens: Tokens,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StreamError> {
        let pump = {
            let config = self.config.clone();
            let stats = Arc::clone(&self.stats);
            hub.spawn_pump(move || {
                config.publish_interval_for(stats.active.load(Ordering::Relaxed))
            })
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            hub,
            tokens,
            config: self.config.clone(),
            stop: stop_rx,
            stats: Arc::clone(&self.stats),
        });
        let endpoint = match self.endpoint {
            Transport::Quinn(endpoint) => endpoint,
            Transport::Proto(endpoint) => {
                let result = (*endpoint).run(shared, DRAIN_TIMEOUT, shutdown).await;
                drop(stop_tx);
                pump.abort();
                return result;
            }
        };
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    if sessions.len() >= self.config.max_connections {
                        self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                        incoming.refuse();
                        continue;
                    }
                    sessions.spawn(run_connection(incoming, Arc::clone(&shared)));
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        tracing::info!("stock stream shutting down");
        endpoint.set_server_config(None);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            sessions.abort_all();
        }
        endpoint.close(
            ErrorCode::ServerShutdown.as_u32().into(),
            b"server shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        pump.abort();
        Ok(())
    }
}

/// Applies the configured nice value to the calling thread (best effort: refusals are logged).
fn set_nice(nice: Option<i32>) {
    if let Some(nice) = nice {
        if let Err(e) = flashsale_stream_client::priority::set_current_thread_nice(nice) {
            tracing::warn!(nice, error = %e, "cannot change the stream thread's priority; running at the default");
        }
    }
}

/// What the stream thread reports once its socket is bound.
type Bound = Result<(SocketAddr, String, bool, Arc<ServerStats>), StreamError>;

/// A stream server on its own OS thread(s) with its own tokio runtime (quinn's endpoint driver,
/// the pump and every session; single-threaded unless [`StreamConfig::threads`] asks for more),
/// so bursts of HTTP work on the main runtime never queue in front of stock updates, and fan-out
/// to many subscribers never delays HTTP tasks.
///
/// [`StreamThread::bind`] binds and reports the address and fingerprint;
/// [`StreamThread::start`] begins serving (after the engine has seeded the hub);
/// [`StreamThread::stop`] closes every connection and joins the thread.
#[derive(Debug)]
pub struct StreamThread {
    config: StreamConfig,
    local_addr: SocketAddr,
    fingerprint: String,
    self_signed: bool,
    stats: Arc<ServerStats>,
    go: Option<tokio::sync::oneshot::Sender<(Arc<StockHub>, Tokens)>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), StreamError>>>,
}

impl StreamThread {
    /// Starts the thread and binds the UDP socket there; returns once bound (or failed).
    pub fn bind(config: StreamConfig) -> Result<StreamThread, StreamError> {
        StreamDriver::for_threads(Some(config.driver), config.threads)?;
        let (bound_tx, bound_rx) = std::sync::mpsc::sync_channel::<Bound>(1);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<(Arc<StockHub>, Tokens)>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let kept = config.clone();
        let thread = std::thread::Builder::new()
            .name("flashsale-stream".into())
            .spawn(move || -> Result<(), StreamError> {
                let nice = config.thread_nice;
                set_nice(nice);
                // The quinn-proto loop is one future: it runs on this thread alone (`bind`
                // refused it with more threads).
                let runtime = if config.threads <= 1 || config.driver == StreamDriver::Proto {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(config.threads)
                        .thread_name("flashsale-stream")
                        .on_thread_start(move || set_nice(nice))
                        .enable_all()
                        .build()
                }
                .map_err(StreamError::Thread)?;
                runtime.block_on(async move {
                    let server = match StreamServer::bind(config) {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let info = (
                        server.local_addr(),
                        server.fingerprint(),
                        server.is_self_signed(),
                        server.stats(),
                    );
                    if bound_tx.send(Ok(info)).is_err() {
                        return Ok(());
                    }
                    let mut stop_rx = stop_rx;
                    let (hub, tokens) = tokio::select! {
                        go = go_rx => match go {
                            Ok(go) => go,
                            // The handle was dropped without starting: nothing to serve.
                            Err(_) => return Ok(()),
                        },
                        _ = &mut stop_rx => return Ok(()),
                    };
                    server
                        .run(hub, tokens, async move {
                            let _ = stop_rx.await;
                        })
                        .await
                })
            })
            .map_err(StreamError::Thread)?;
        let (local_addr, fingerprint, self_signed, stats) = match bound_rx.recv() {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            // The thread ended before binding: its runtime could not be built.
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => StreamError::Config("the stream thread stopped while binding".into()),
                })
            }
        };
        Ok(StreamThread {
            config: kept,
            local_addr,
            fingerprint,
            self_signed,
            stats,
            go: Some(go_tx),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The UDP address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The settings it runs with.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// SHA-256 of the server certificate (lowercase hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the certificate was generated at start.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Begins accepting connections, streaming from `hub`. Later calls do nothing.
    pub fn start(&mut self, hub: Arc<StockHub>, tokens: Tokens) {
        if let Some(go) = self.go.take() {
            let _ = go.send((hub, tokens));
        }
    }

    /// Closes every connection ([`ErrorCode::ServerShutdown`]) and waits for the thread to end.
    pub async fn stop(mut self) -> Result<(), StreamError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(StreamError::Config("the stream thread panicked".into())),
        }
    }
}

/// Binds and runs a stream server until `shutdown` completes (see [`StreamServer`] to print the
/// address and fingerprint first).
pub async fn serve(
    config: StreamConfig,
    hub: Arc<StockHub>,
    tokens: Tokens,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = StreamServer::bind(config)?;
    tracing::info!(addr = %server.local_addr(), fingerprint = %server.fingerprint(), "stock stream listening");
    server.run(hub, tokens, shutdown).await?;
    Ok(())
}

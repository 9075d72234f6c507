//! Client settings and the shared QUIC endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_protocol::stream::{Subscription, MAX_FRAME_LEN};
use quinn::crypto::rustls::QuicClientConfig;

use crate::{ClientError, Trust};

/// Most addresses (`server` and `other_servers`) a subscription takes: a group has two or three
/// nodes; more is a mistake (and would make a pass over them long).
pub const MAX_SERVERS: usize = 16;

/// What to connect to, how to authenticate and what to watch.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Server address, `host:port` (a name or an IP).
    pub server: String,
    /// The other nodes of a high-availability group, `host:port` each (ADR 0033). A
    /// [`crate::Subscriber`] connects to `server` first; when a node refuses (a standby answers
    /// [`flashsale_protocol::stream::ErrorCode::NotLeader`]) or a session is lost, it tries the
    /// next address of `server` + `other_servers` in turn, so it follows the leader. At most
    /// [`MAX_SERVERS`] addresses in all.
    pub other_servers: Vec<String>,
    /// TLS server name; defaults to the host part of `server`.
    pub server_name: Option<String>,
    /// Storefront, admin or partner token.
    pub token: String,
    /// SKUs to watch (default: all).
    pub subscription: Subscription,
    /// Which certificates to trust.
    pub trust: Trust,
    /// Limit for connecting and completing the handshake.
    pub connect_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Largest server frame accepted, in bytes.
    pub max_frame_len: usize,
    /// Bytes the server may send on the stream before this client reads them (QUIC flow
    /// control); `None` keeps quinn's default.
    pub receive_window: Option<u32>,
    /// Limit of the QUIC handshake of each attempt to reconnect after a session was lost
    /// (`None`: `connect_timeout`). A short limit (e.g. 300 ms, what `flashsale watch` uses)
    /// sends a fresh handshake to a restarting server every `limit + backoff`, so the client
    /// is back within about a second of the server; keep `None` when many clients reconnect at
    /// once, so that a busy restarted server is not flooded with abandoned handshakes.
    pub reconnect_handshake_timeout: Option<Duration>,
}

impl ClientOptions {
    /// Defaults: all SKUs, 5 s connect timeout, backoff 100 ms..5 s.
    pub fn new(server: impl Into<String>, token: impl Into<String>, trust: Trust) -> ClientOptions {
        ClientOptions {
            server: server.into(),
            other_servers: Vec::new(),
            server_name: None,
            token: token.into(),
            subscription: Subscription::All,
            trust,
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_frame_len: MAX_FRAME_LEN,
            receive_window: None,
            reconnect_handshake_timeout: None,
        }
    }

    /// The TLS name to present: `server_name`, or the host part of `server`.
    pub fn tls_name(&self) -> String {
        if let Some(name) = &self.server_name {
            return name.clone();
        }
        let host = match self.server.rsplit_once(':') {
            Some((host, _port)) => host,
            None => self.server.as_str(),
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    /// Resolves `server` to a socket address.
    pub async fn resolve(&self) -> Result<SocketAddr, ClientError> {
        let resolve_err = |reason: String| ClientError::Resolve {
            server: self.server.clone(),
            reason,
        };
        let mut addrs = tokio::net::lookup_host(self.server.as_str())
            .await
            .map_err(|e| resolve_err(e.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| resolve_err("no address found".into()))
    }
}

#[derive(Debug)]
struct Inner {
    config: quinn::ClientConfig,
    v4: Mutex<Option<quinn::Endpoint>>,
    v6: Mutex<Option<quinn::Endpoint>>,
}

/// A UDP endpoint (one per address family, made on first use) with a TLS trust setting. Cheap
/// to clone; many connections can share it.
#[derive(Debug, Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

impl Connector {
    /// A connector trusting per `trust`; `receive_window` as in [`ClientOptions`].
    pub fn new(trust: &Trust, receive_window: Option<u32>) -> Result<Connector, ClientError> {
        let crypto = QuicClientConfig::try_from(trust.rustls_config()?)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(Duration::from_secs(30))
                    .map_err(|e| ClientError::Config(e.to_string()))?,
            ))
            .keep_alive_interval(Some(Duration::from_secs(5)))
            .max_concurrent_uni_streams(0u8.into());
        if let Some(window) = receive_window {
            transport
                .stream_receive_window(window.into())
                .receive_window(window.into());
        }
        config.transport_config(Arc::new(transport));
        Ok(Connector {
            inner: Arc::new(Inner {
                config,
                v4: Mutex::new(None),
                v6: Mutex::new(None),
            }),
        })
    }

    fn endpoint(&self, for_addr: SocketAddr) -> Result<quinn::Endpoint, ClientError> {
        let (slot, bind) = if for_addr.is_ipv4() {
            (&self.inner.v4, SocketAddr::from(([0, 0, 0, 0], 0)))
        } else {
            (&self.inner.v6, SocketAddr::from(([0u16; 8], 0)))
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(endpoint) = slot.as_ref() {
            return Ok(endpoint.clone());
        }
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| ClientError::Connection(format!("cannot open a UDP socket: {e}")))?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Opens a QUIC connection (TLS verified per the trust setting) to `addr`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<quinn::Connection, ClientError> {
        let connecting = self
            .endpoint(addr)?
            .connect_with(self.inner.config.clone(), addr, server_name)
            .map_err(|e| ClientError::Config(format!("cannot connect to {addr}: {e}")))?;
        Ok(connecting.await?)
    }
}

//! One simulated buyer's HTTP/1.1 keep-alive connection (hyper client conn over a tokio socket),
//! reconnecting after failures, with a deadline on every exchange.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

/// Largest response body read (contract responses are small JSON documents).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A failed exchange that produced no HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The TCP connect (or bind, or HTTP handshake) failed.
    #[error("connect: {0}")]
    Connect(String),
    /// No complete answer within the timeout.
    #[error("timeout")]
    Timeout,
    /// The connection broke while sending or reading.
    #[error("io: {0}")]
    Io(String),
}

impl TransportError {
    /// The error kind used in reports: `connect`, `timeout` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Connect(_) => "connect",
            TransportError::Timeout => "timeout",
            TransportError::Io(_) => "io",
        }
    }
}

/// A complete HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Body (at most [`MAX_BODY_BYTES`]).
    pub body: Bytes,
    /// The `Retry-After` header in seconds, when present and numeric.
    pub retry_after_s: Option<u64>,
}

/// A lazily (re)connected HTTP/1.1 client connection.
#[derive(Debug)]
pub struct Conn {
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// How many times a TCP connection was established.
    pub connects: u64,
}

impl Conn {
    /// A connection to `target`, bound to `source` if given; nothing is opened yet.
    pub fn new(target: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> Conn {
        Conn {
            target,
            source,
            timeout,
            sender: None,
            connects: 0,
        }
    }

    /// Changes the deadline of later exchanges (and connects).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Points later exchanges at `target`; an open connection elsewhere is dropped.
    pub fn retarget(&mut self, target: SocketAddr) {
        if self.target != target {
            self.target = target;
            self.sender = None;
        }
    }

    /// True if a usable connection is open.
    pub fn is_open(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Opens the connection if it is not open.
    pub async fn ensure_open(&mut self) -> Result<(), TransportError> {
        if self.is_open() {
            return Ok(());
        }
        self.sender = None;
        let open = tokio::time::timeout(self.timeout, self.open()).await;
        let sender = open.map_err(|_| TransportError::Connect("connect timed out".into()))??;
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let stream = connect_tcp(self.target, self.source).await?;
        let (sender, conn) = http1::Builder::new()
            .read_buf_exact_size(Some(4096))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Connect(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            // The connection task ends when the peer closes or the sender is dropped; its error
            // surfaces on the next request through the sender.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole answer, opening the connection first if needed.
    /// After a timeout or an I/O error the connection is dropped (its state is unknown).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, TransportError> {
        self.ensure_open().await?;
        let timeout = self.timeout;
        let Some(sender) = self.sender.as_mut() else {
            return Err(TransportError::Connect("no connection".into()));
        };
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| TransportError::Io(format!("not ready: {e}")))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?;
            let status = resp.status();
            let retry_after_s = resp
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = Limited::new(resp.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| TransportError::Io(format!("body: {e}")))?
                .to_bytes();
            Ok::<_, TransportError>(Answer {
                status,
                body,
                retry_after_s,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(TransportError::Timeout)
            }
        }
    }
}

/// A TCP connection to `target` (from `source` when given, any port), Nagle off: the one
/// connect of the hyper connections here and of the queue bench's raw pollers.
pub(crate) async fn connect_tcp(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<TcpStream, TransportError> {
    let err = |what: &str, e: std::io::Error| TransportError::Connect(format!("{what}: {e}"));
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| err("socket", e))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| err(&format!("bind {src}"), e))?;
    }
    let stream = socket
        .connect(target)
        .await
        .map_err(|e| err("connect", e))?;
    stream.set_nodelay(true).map_err(|e| err("nodelay", e))?;
    Ok(stream)
}

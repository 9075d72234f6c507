//! The socket side of the HTTP API: accepts connections (at most `max_connections` at once),
//! serves HTTP/1.1 keep-alive and HTTP/2 prior-knowledge (h2c) on each with hyper's auto
//! builder, bounds header reads, and on shutdown stops accepting and drains in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::app::App;
use super::inventory::Inventory;
use super::problem::{Problem, ProblemKind};

/// Most connections being refused at once; beyond it, extra connections are closed at once.
const MAX_PENDING_REFUSALS: usize = 256;
/// How long a refusal may take (write the 503, drain what the client sent, close).
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

/// Socket-level settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Longest time to receive a request head (also bounds an idle keep-alive connection).
    pub header_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 20_000,
            header_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            h2_max_concurrent_streams: 256,
        }
    }
}

/// What happened when the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOutcome {
    /// Whether every connection finished within the grace period.
    pub drained: bool,
    /// Connections still open when the grace period ended (closed by force).
    pub forced: usize,
}

/// Decrements the open-connection gauge when a connection task ends, however it ends.
struct OpenGuard<E: Inventory>(Arc<App<E>>);

impl<E: Inventory> Drop for OpenGuard<E> {
    fn drop(&mut self) {
        self.0
            .metrics()
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains within the grace period.
pub async fn serve<E: Inventory>(
    listener: TcpListener,
    app: Arc<App<E>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> ServeOutcome {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));

    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            app.metrics()
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: limit reached");
            if let Ok(p) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, config.max_connections).await;
                    drop(p);
                });
            }
            continue;
        };
        app.metrics()
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        app.metrics()
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(app.clone());
        let service_app = app.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let app = service_app.clone();
            async move { Ok::<_, Infallible>(app.handle(req, peer.ip()).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
            drop(guard);
        });
    }
    drop(listener);

    let open = app.metrics().connections_open.load(Ordering::Relaxed);
    tracing::info!(open, "shutting down: draining in-flight requests");
    match tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => ServeOutcome {
            drained: true,
            forced: 0,
        },
        Err(_) => {
            let forced = app.metrics().connections_open.load(Ordering::Relaxed) as usize;
            tracing::warn!(
                forced,
                "grace period over; closing the remaining connections"
            );
            ServeOutcome {
                drained: false,
                forced,
            }
        }
    }
}

/// Answers a connection over the cap with a 503 problem and closes it.
async fn refuse(mut stream: TcpStream, max: usize) {
    let mut p = Problem::new(
        ProblemKind::Unavailable,
        format!("the server is at its connection limit ({max}); retry shortly"),
    );
    p.retry_after_s = Some(1);
    let body = serde_json::to_vec(&p.body()).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        // Read (and drop) what the client sent so that closing does not reset the connection
        // before it has read the answer.
        let mut sink = [0u8; 4096];
        let mut budget: usize = 64 * 1024;
        while budget > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            budget = budget.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

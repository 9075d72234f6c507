//! The socket side of the HTTP API: accepts connections (at most `max_connections` at once, at
//! most `per_ip_max_connections` per client address), serves HTTP/1.1 keep-alive and HTTP/2
//! prior-knowledge (h2c) on each with hyper's auto builder, bounds header reads, closes
//! connections idle for the idle timeout (both protocols alike), and on shutdown stops
//! accepting and drains in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::{service_fn, Service};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::app::{Answered, App, ResBody};
use super::idle::{Activity, InFlight};
use super::inventory::Inventory;
use super::metrics::Metrics;
use super::on_shards::{Handoff, Offer};
use super::per_ip::{IpSlot, PerIpLimit};
use super::phase::{Phase, PhaseSender, PhaseWatch};
use super::problem::{Problem, ProblemKind};

/// Most connections being refused at once; beyond it, extra connections are closed at once.
const MAX_PENDING_REFUSALS: usize = 256;
/// How long a refusal may take (write the answer, drain what the client sent, close).
pub(super) const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// How long connections may take to close once the grace period is over and they are told to.
pub(super) const FORCE_CLOSE_DEADLINE: Duration = Duration::from_secs(1);
/// Default of [`ServerConfig::per_ip_max_connections`].
pub const DEFAULT_PER_IP_MAX_CONNECTIONS: usize = 256;

/// Socket-level settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Longest time to receive a request head; also how long a connection with no request in
    /// flight is kept (HTTP/1.1 and HTTP/2 alike).
    pub header_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Most open connections from one client address (an IPv6 /64); more are answered 429 and
    /// closed. 0 = no per-address cap.
    pub per_ip_max_connections: usize,
    /// Whether loopback peers count against `per_ip_max_connections` (by default a local
    /// proxy or load generator is not capped).
    pub per_ip_limit_loopback: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 20_000,
            header_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            h2_max_concurrent_streams: 256,
            per_ip_max_connections: DEFAULT_PER_IP_MAX_CONNECTIONS,
            per_ip_limit_loopback: false,
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
pub(super) struct OpenGuard<E: Inventory>(pub(super) Arc<App<E>>);

impl<E: Inventory> Drop for OpenGuard<E> {
    fn drop(&mut self) {
        self.0
            .metrics()
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a connection holds while it is open; dropping it gives all of it back.
pub(super) struct Held<E: Inventory> {
    /// Its slots under the connection cap and its address's cap.
    _admitted: Admitted,
    /// Its count in the open-connection gauge.
    _open: OpenGuard<E>,
    /// Keeps the drain waiting until this connection is gone.
    _done: mpsc::Sender<()>,
}

impl<E: Inventory> Held<E> {
    /// What an admitted connection of `app` holds; counts it accepted and open.
    pub(super) fn new(admitted: Admitted, app: Arc<App<E>>, done: mpsc::Sender<()>) -> Self {
        let metrics = app.metrics();
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        Held {
            _admitted: admitted,
            _open: OpenGuard(app),
            _done: done,
        }
    }
}

/// A connection's slots under the two caps.
pub(super) struct Admitted {
    /// Its slot under the connection cap.
    _slot: OwnedSemaphorePermit,
    /// Its slot under its address's cap.
    _ip: IpSlot,
}

/// The caps both servers apply when they accept: connections in all, and per address.
pub(super) struct Caps {
    /// The connection cap.
    slots: Arc<Semaphore>,
    /// Its size, for the refusal's detail.
    max_connections: usize,
    /// The per-address cap.
    per_ip: Arc<PerIpLimit>,
}

impl Caps {
    /// The caps of `config`.
    pub(super) fn new(config: &ServerConfig) -> Self {
        Caps {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            max_connections: config.max_connections,
            per_ip: PerIpLimit::new(config.per_ip_max_connections, config.per_ip_limit_loopback),
        }
    }

    /// The slots of a connection from `peer`, or the problem it is refused with (per-address
    /// cap: 429; connection cap: 503), counted in `metrics` either way.
    pub(super) fn admit(&self, peer: SocketAddr, metrics: &Metrics) -> Result<Admitted, Problem> {
        let Some(ip) = self.per_ip.try_acquire(peer.ip()) else {
            metrics
                .connections_refused_per_ip
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: per-address limit reached");
            let mut p = Problem::new(
                ProblemKind::RateLimited,
                format!(
                    "too many open connections from this address (limit {}); reuse a \
                     connection or retry shortly",
                    self.per_ip.max()
                ),
            );
            p.retry_after_s = Some(1);
            return Err(p);
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: limit reached");
            let mut p = Problem::new(
                ProblemKind::Unavailable,
                format!(
                    "the server is at its connection limit ({}); retry shortly",
                    self.max_connections
                ),
            );
            p.retry_after_s = Some(1);
            return Err(p);
        };
        Ok(Admitted {
            _slot: slot,
            _ip: ip,
        })
    }
}

/// What the accept loop shares with every connection it starts.
struct Acceptor<E: Inventory> {
    /// The API.
    app: Arc<App<E>>,
    /// HTTP/1.1 + HTTP/2 connection settings.
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// The settings.
    config: ServerConfig,
    /// The connection caps.
    caps: Caps,
    /// Bounds the refusals in progress.
    refusals: Arc<Semaphore>,
    /// The server's phase, for every connection.
    phase: Arc<PhaseSender>,
    /// Cloned into every connection; the drain ends when all clones are gone.
    done: mpsc::Sender<()>,
    /// Where connections go while a term serves on the shard executors.
    handoff: Option<Arc<Handoff<E>>>,
}

/// The hyper connection settings: timers, header timeout, HTTP/2 streams and keep-alive pings
/// (which detect dead peers; idle live ones are closed by [`run_connection`]). `executor` runs
/// HTTP/2 streams and `timer` keeps hyper's sleeps (tokio's here; a shard executor's and a
/// per-thread coarse timer in `on_shards.rs`, ADR 0050).
pub(super) fn builder<X, T>(config: &ServerConfig, executor: X, timer: T) -> auto::Builder<X>
where
    T: hyper::rt::Timer + Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(timer)
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains within the grace period.
pub async fn serve<E: Inventory>(
    listener: TcpListener,
    app: Arc<App<E>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> ServeOutcome {
    serve_with(listener, app, config, shutdown, None).await
}

/// [`serve`], handing each admitted connection to `handoff` (a high-availability leader's
/// shard executors, `--ha --http-runtime shards`) while a term serves there; the rest are served
/// here. At shutdown the term's connections are told to drain too.
pub async fn serve_handing_off<E: Inventory>(
    listener: TcpListener,
    app: Arc<App<E>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    handoff: Arc<Handoff<E>>,
) -> ServeOutcome {
    serve_with(listener, app, config, shutdown, Some(handoff)).await
}

/// [`serve`] with an optional hand-off.
async fn serve_with<E: Inventory>(
    listener: TcpListener,
    app: Arc<App<E>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    handoff: Option<Arc<Handoff<E>>>,
) -> ServeOutcome {
    let phase = Arc::new(PhaseSender::new());
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let acceptor = Acceptor {
        builder: Arc::new(builder(&config, TokioExecutor::new(), TokioTimer::new())),
        caps: Caps::new(&config),
        refusals: Arc::new(Semaphore::new(MAX_PENDING_REFUSALS)),
        app: app.clone(),
        config: config.clone(),
        phase: phase.clone(),
        done,
        handoff: handoff.clone(),
    };
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
        acceptor.admit(stream, peer);
    }
    drop(listener);
    drop(acceptor);
    if let Some(handoff) = &handoff {
        handoff.close();
    }
    drain(&app, &config, &phase, &mut all_done).await
}

/// Tells every connection to finish and waits for them within the grace period; then tells
/// the rest to close at once.
pub(super) async fn drain<E: Inventory>(
    app: &App<E>,
    config: &ServerConfig,
    phase: &PhaseSender,
    all_done: &mut mpsc::Receiver<()>,
) -> ServeOutcome {
    let open = app.metrics().connections_open.load(Ordering::Relaxed);
    tracing::info!(open, "shutting down: draining in-flight requests");
    phase.send(Phase::Draining);
    if tokio::time::timeout(config.shutdown_grace, all_done.recv())
        .await
        .is_ok()
    {
        return ServeOutcome {
            drained: true,
            forced: 0,
        };
    }
    let forced = app.metrics().connections_open.load(Ordering::Relaxed) as usize;
    tracing::warn!(
        forced,
        "grace period over; closing the remaining connections"
    );
    phase.send(Phase::Closing);
    let _ = tokio::time::timeout(FORCE_CLOSE_DEADLINE, all_done.recv()).await;
    ServeOutcome {
        drained: false,
        forced,
    }
}

impl<E: Inventory> Acceptor<E> {
    /// Starts serving `stream`, or refuses it (per-address cap: 429; connection cap: 503).
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let admitted = match self.caps.admit(peer, self.app.metrics()) {
            Ok(a) => a,
            Err(p) => return self.refuse(stream, p),
        };
        let held = Held::new(admitted, self.app.clone(), self.done.clone());
        let (stream, held) = match &self.handoff {
            Some(handoff) => match handoff.offer(stream, peer, held) {
                Offer::Taken => return,
                Offer::Declined { stream, held } => (stream, held),
            },
            None => (stream, held),
        };
        let (builder, app) = (self.builder.clone(), self.app.clone());
        let (idle_timeout, phase) = (self.config.header_timeout, self.phase.watch());
        tokio::spawn(async move {
            run_connection(&builder, app, stream, peer, idle_timeout, phase).await;
            drop(held);
        });
    }

    /// Answers `stream` with `problem` and closes it, unless too many refusals are under way
    /// (then it is closed at once).
    fn refuse(&self, stream: TcpStream, problem: Problem) {
        if let Ok(p) = self.refusals.clone().try_acquire_owned() {
            tokio::spawn(async move {
                refuse(stream, problem).await;
                drop(p);
            });
        }
    }
}

/// Serves one connection until it ends, the server closes it, or it has had no request in
/// flight for `idle_timeout` (then it is shut down gracefully: HTTP/2 gets a GOAWAY, HTTP/1.1
/// is closed; if it still has not ended `idle_timeout` later, it is dropped).
async fn run_connection<E: Inventory>(
    builder: &auto::Builder<TokioExecutor>,
    app: Arc<App<E>>,
    stream: TcpStream,
    peer: SocketAddr,
    idle_timeout: Duration,
    phase: PhaseWatch,
) {
    // A zero timeout would make the idle check spin; the flag's minimum is 1 ms anyway.
    let idle_timeout = idle_timeout.max(Duration::from_millis(1));
    let activity = Activity::new(Instant::now());
    let service = counted_service(app.clone(), activity.clone(), peer);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let timer = TokioTimer::new();
    drive_connection(conn, &app, &activity, peer, idle_timeout, phase, &timer).await;
}

/// Drives a served connection until it ends, the server closes it, or it has had no request
/// in flight for `idle_timeout` (see [`run_connection`]). Shared by the tokio accept loop and
/// the shard executors' (`on_shards.rs`). The idle check sleeps on `timer`: tokio's on the
/// tokio server, the shard's coarse table on a shard executor (ADR 0052: the connection task
/// polls this sleep on every wake-up, i.e. on every request, and a tokio sleep's poll costs
/// an atomic waker registration each time). The branches are polled connection first.
pub(super) async fn drive_connection<E: Inventory, C, T>(
    conn: C,
    app: &App<E>,
    activity: &Activity,
    peer: SocketAddr,
    idle_timeout: Duration,
    mut phase: PhaseWatch,
    timer: &T,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
    T: hyper::rt::Timer,
{
    tokio::pin!(conn);
    // `Some(deadline)` once the connection is being shut down: dropped at the deadline if it
    // has not ended by then (`None` while draining: the server's grace period bounds it).
    let mut closing: Option<Option<Instant>> = None;
    loop {
        let wake = match closing {
            None => next_idle_check(activity, idle_timeout),
            Some(Some(deadline)) => deadline,
            Some(None) => Instant::now() + idle_timeout,
        };
        let sleep = timer.sleep_until(wake);
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep, if closing != Some(None) => match closing {
                Some(_) => {
                    tracing::debug!(%peer, "connection did not close in time; dropped");
                    return;
                }
                None => {
                    let idle = activity.idle_for(Instant::now());
                    if idle.is_some_and(|d| d >= idle_timeout) {
                        app.metrics().connections_closed_idle.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Some(Instant::now() + idle_timeout));
                    }
                }
            },
            now = phase.changed() => {
                match now {
                    Phase::Serving => {}
                    Phase::Draining => {
                        if closing.is_none() {
                            conn.as_mut().graceful_shutdown();
                        }
                        closing = Some(None);
                    }
                    Phase::Closing => return,
                }
            }
        }
    }
}

/// The API as the service of one connection from `peer`, each request counted in `activity`
/// from the moment hyper hands it over until its answer (or until it is abandoned).
pub(super) fn counted_service<E: Inventory>(
    app: Arc<App<E>>,
    activity: Arc<Activity>,
    peer: SocketAddr,
) -> impl Service<
    Request<Incoming>,
    Response = Response<ResBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static,
> + Send
       + 'static {
    // One per-connection handle cloned per request: its count is touched by this connection's
    // task alone, unlike the `App`'s, which every worker thread would pass back and forth on
    // every request (ADR 0043).
    let conn = Arc::new(ConnContext { app, peer });
    service_fn(move |req: Request<Incoming>| {
        let conn = conn.clone();
        let in_flight = activity.begin();
        async move {
            let Answered { response: res, at } = conn.app.handle_timed(req, conn.peer.ip()).await;
            // A streamed body (server-sent events) is in flight until it ends, not just until
            // its head is ready: the idle check must not close its connection. A whole body
            // is sent at once (the body's kind tells, no header lookup: ADR 0061).
            let streaming = matches!(res.body(), ResBody::Stream(_));
            let res = if streaming {
                res.map(|body| {
                    ResBody::stream(UntilDone {
                        body,
                        _in_flight: in_flight,
                    })
                })
            } else {
                in_flight.end_at(at);
                res
            };
            Ok::<_, Infallible>(res)
        }
    })
}

/// What the requests of one connection share.
struct ConnContext<E> {
    /// The API.
    app: Arc<App<E>>,
    /// The client's address.
    peer: SocketAddr,
}

/// A response body that keeps its request counted as in flight until the body ends or is
/// dropped.
struct UntilDone {
    body: ResBody,
    _in_flight: InFlight,
}

impl Body for UntilDone {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// When to look again whether the connection has been idle for `idle_timeout`.
pub(super) fn next_idle_check(activity: &Activity, idle_timeout: Duration) -> Instant {
    let now = Instant::now();
    match activity.idle_for(now) {
        Some(idle) => now + idle_timeout.saturating_sub(idle),
        // A request is in flight: its own timeouts bound it; look again later.
        None => now + idle_timeout,
    }
}

/// The HTTP/1.1 answer to a connection refused before hyper sees it (both servers send it).
pub(super) struct Refusal {
    /// Status line and headers, ending with the blank line.
    pub(super) head: String,
    /// The problem body.
    pub(super) body: Vec<u8>,
}

impl Refusal {
    /// The answer carrying `problem`, closing the connection.
    pub(super) fn of(problem: &Problem) -> Self {
        let status = super::problem::status_of(problem.kind);
        let body = problem.body_bytes();
        let retry_after = problem
            .retry_after_s
            .map(|s| format!("retry-after: {s}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n\
             content-length: {}\r\n{retry_after}connection: close\r\n\
             x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            body.len()
        );
        Refusal { head, body }
    }
}

/// Answers a refused connection with `problem` (HTTP/1.1) and closes it.
async fn refuse(mut stream: TcpStream, problem: Problem) {
    let Refusal { head, body } = Refusal::of(&problem);
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

//! The HTTP API served on the engine's shard executors themselves (`serve --http-runtime
//! shards`, the default since ADR 0047; built in ADR 0045), thread-per-core all the way. Each shard's glommio
//! executor accepts on its own `SO_REUSEPORT` listener bound to the same `--http` address
//! (the kernel spreads connections over them) and runs hyper's HTTP/1.1 connections there,
//! calling the same [`App`] as the tokio server. A request for a SKU of the executor's own
//! shard then never leaves the thread (the engine's same-thread path, `Engine::ask`); other
//! shards' SKUs go over the shard queues as before. Replies still wait for the log's flush.
//!
//! Kept from the tokio server ([`super::server`]): the same hyper settings (HTTP/1.1 and h2c
//! prior knowledge; an HTTP/2 connection's streams run as tasks on the same executor), the
//! connection cap and per-address cap (answered 503 / 429 and closed), the header-read and
//! idle timeouts, graceful drain on shutdown (the same phase every connection follows).
//! hyper's own sleeps (the header-read timeout, HTTP/2 pings) are kept in a per-thread coarse
//! table ([`super::shard_timer`], ADR 0050). The App's tokio timers (the body timeout, the
//! idle check) and `tokio::spawn`s work because every task here is polled inside the
//! tokio runtime's context ([`InTokio`]): their timers are driven by the tokio threads.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use flashsale_engine::Engine;
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use hyper::rt::ReadBufCursor;
use hyper_util::server::conn::auto;
use tokio::sync::mpsc;

use super::app::App;
use super::idle::Activity;
use super::inventory::Inventory;
use super::phase::{Phase, PhaseSender};
use super::problem::Problem;
use super::server::{
    builder, counted_service, drain, drive_connection, Caps, Held, Refusal, ServeOutcome,
    ServerConfig, FORCE_CLOSE_DEADLINE, REFUSAL_DEADLINE,
};
use super::shard_timer::{mark_shard_thread, ShardTimer};

/// Accept backlog of each shard's listener (as the tokio server's).
const BACKLOG: u32 = crate::serve::HTTP_BACKLOG;
/// Bytes read from the socket per read call at most (a stack buffer).
const READ_CHUNK: usize = 8 * 1024;

/// Binds `count` listeners on `addr` with `SO_REUSEPORT` (one per shard executor). With port
/// 0, the probe picks the port and every listener binds the same one.
///
/// `SO_REUSEPORT` lets any socket of the same user that sets it join the group and take a
/// share of the connections, so a second server started on the same address by mistake (a
/// second engine selling the same stock) would not be refused by its own bind. The address
/// is therefore first probed with a plain socket, bound but never listening (so no client
/// can connect to it): a port any listener holds, with the option or without, fails it with
/// `AddrInUse`, as the tokio server's bind does. Only a server binding in the instant
/// between the probe and the group's first bind could still join.
///
/// A port found taken is probed again for up to [`BIND_RETRY_FOR`] before the start is
/// refused: a predecessor killed a moment ago (`kill -9`, then a supervisor's restart) can
/// hold its listeners after it has been reaped, because the kernel releases the files an
/// io_uring instance still references (glommio's accepts in flight) only when the ring's
/// asynchronous teardown has run. A live server holds the port for good and is still refused.
pub fn bind_on_shards(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let addr = probe_free_within(addr, BIND_RETRY_FOR)?;
    let first = bind_reuseport(addr)?;
    let mut all = Vec::with_capacity(count.max(1));
    all.push(first);
    for _ in 1..count {
        all.push(bind_reuseport(addr)?);
    }
    Ok(all)
}

/// How long a taken `--http` port is probed again before the start is refused (see
/// [`bind_on_shards`]).
pub const BIND_RETRY_FOR: Duration = Duration::from_secs(3);

/// Pause between two probes of a taken port.
const BIND_RETRY_EVERY: Duration = Duration::from_millis(50);

/// [`probe_free`], repeated while the port is taken, for at most `patience`.
fn probe_free_within(addr: SocketAddr, patience: Duration) -> io::Result<SocketAddr> {
    let started = std::time::Instant::now();
    loop {
        match probe_free(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && started.elapsed() < patience => {
                std::thread::sleep(BIND_RETRY_EVERY);
            }
            other => return other,
        }
    }
}

/// Binds a plain socket (`SO_REUSEADDR` only, not listening) to `addr` and returns the bound
/// address: fails with `AddrInUse` when another socket listens there (see [`bind_on_shards`]).
fn probe_free(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = crate::serve::reuseaddr_socket(addr)?;
    socket.bind(addr)?;
    socket.local_addr()
}

/// One blocking-mode listener with `SO_REUSEADDR` and `SO_REUSEPORT` (glommio's accept goes
/// through io_uring, which wants a blocking socket).
fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = crate::serve::reuseaddr_socket(addr)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?.into_std()?;
    listener.set_nonblocking(false)?;
    Ok(listener)
}

/// What every shard's accept loop shares.
struct Shared<E: Inventory> {
    /// The API.
    app: Arc<App<E>>,
    /// The settings.
    config: ServerConfig,
    /// HTTP/1.1 + HTTP/2 connection settings (HTTP/2 streams run on the accepting executor).
    builder: auto::Builder<ShardExecutor>,
    /// The connection caps (over all shards).
    caps: Caps,
    /// The server's phase.
    phase: Arc<PhaseSender>,
    /// The tokio runtime whose context every task runs in (timers, spawns).
    tokio: tokio::runtime::Handle,
}

/// Serves `app` on the shard executors of `engine`, one listener each (from
/// [`bind_on_shards`]), until `shutdown` resolves; then drains as [`super::serve`] does.
pub async fn serve_on_shards<E: Inventory>(
    engine: &Engine,
    listeners: Vec<std::net::TcpListener>,
    app: Arc<App<E>>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<ServeOutcome, flashsale_engine::CommandError> {
    let phase = Arc::new(PhaseSender::new());
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let shared = Shared::new(app.clone(), &config, phase.clone());
    // Each shard takes its listener (and a clone of the drain's sender) once.
    let per_shard: Vec<_> = listeners.into_iter().map(|l| (l, done.clone())).collect();
    drop(done);
    spawn_each(engine, shared, per_shard, |shared, (listener, done)| {
        accept_loop(shared, listener, done)
    })?;
    shutdown.await;
    Ok(drain(&app, &config, &phase, &mut all_done).await)
}

impl<E: Inventory> Shared<E> {
    /// What the shard tasks of one server (or one HA term) share; call inside the tokio
    /// runtime.
    fn new(app: Arc<App<E>>, config: &ServerConfig, phase: Arc<PhaseSender>) -> Arc<Self> {
        let tokio = tokio::runtime::Handle::current();
        Arc::new(Shared {
            app,
            config: config.clone(),
            builder: builder(
                config,
                ShardExecutor {
                    tokio: tokio.clone(),
                },
                ShardTimer::new(),
            ),
            caps: Caps::new(config),
            phase,
            tokio,
        })
    }
}

/// A connection the tokio server accepted and admitted, handed to a shard executor.
pub(super) struct Handed<E: Inventory> {
    /// The socket, in blocking mode (glommio's reads and writes go through io_uring).
    stream: std::net::TcpStream,
    /// The client's address.
    peer: SocketAddr,
    /// Its slots under the tokio server's caps and that server's drain count.
    held: Held<E>,
}

/// What [`Handoff::offer`] did with a connection.
pub(super) enum Offer<E: Inventory> {
    /// A shard executor serves it now.
    Taken,
    /// No term serves on the shards (or every shard's queue is full): the tokio server keeps
    /// it.
    Declined {
        /// The connection, unchanged.
        stream: tokio::net::TcpStream,
        /// Its slots.
        held: Held<E>,
    },
}

/// One term's shard queues (see [`Handoff`]).
struct TermSink<E: Inventory> {
    /// One bounded queue per shard executor.
    queues: Vec<mpsc::Sender<Handed<E>>>,
    /// The queue the next connection tries first (round robin).
    next: usize,
    /// The term's phase, followed by every connection it serves.
    phase: Arc<PhaseSender>,
}

/// Where the tokio server hands the connections it accepts while an engine serves HTTP on its
/// shard executors: a high-availability leader's term with `--http-runtime shards` (ADR 0045,
/// sixth round). The tokio server accepts on the one listener whatever the node's role; a
/// standby (no engine) serves on tokio, a leader's connections are served on its shards.
pub struct Handoff<E: Inventory> {
    /// The current term's queues, while one serves.
    current: Mutex<Option<TermSink<E>>>,
}

impl<E: Inventory> std::fmt::Debug for Handoff<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let serving = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("Handoff")
            .field("serving", &serving)
            .finish()
    }
}

impl<E: Inventory> Handoff<E> {
    /// No term serves yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Handoff {
            current: Mutex::new(None),
        })
    }

    /// Hands an admitted connection to a shard executor (round robin, the next one when a
    /// queue is full), or gives it back.
    pub(super) fn offer(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        held: Held<E>,
    ) -> Offer<E> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = current.as_mut() else {
            return Offer::Declined { stream, held };
        };
        let count = sink.queues.len();
        let permit = (0..count).find_map(|i| {
            let at = (sink.next + i) % count;
            sink.queues[at].try_reserve().ok().map(|p| (at, p))
        });
        let Some((at, permit)) = permit else {
            return Offer::Declined { stream, held };
        };
        sink.next = (at + 1) % count;
        let stream = match stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                // The socket is gone with the error (dropped: the client sees it closed).
                tracing::warn!(error = %e, %peer, "cannot hand a connection to a shard executor");
                return Offer::Taken;
            }
        };
        permit.send(Handed { stream, peer, held });
        Offer::Taken
    }

    /// Stops handing connections over and tells the term's connections to finish (the
    /// server is stopping, or the term ends).
    pub(super) fn close(&self) {
        let taken = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sink) = taken {
            sink.phase.send(Phase::Draining);
        }
    }
}

/// Most connections waiting in one shard's hand-off queue; beyond it the next shard is tried,
/// then the tokio server keeps the connection.
const HANDOFF_QUEUE_CONNECTIONS: usize = 1024;

/// A high-availability leader's term serving HTTP on its engine's shard executors: started
/// once the engine has caught up, stopped at the step-down (before the engine stops).
pub struct ShardTerm<E: Inventory> {
    /// The tokio server's hand-off (cleared at the stop).
    handoff: Arc<Handoff<E>>,
    /// The term's phase, followed by its connections.
    phase: Arc<PhaseSender>,
    /// Resolves once every connection of the term is gone.
    all_done: mpsc::Receiver<()>,
    /// How long the stop waits for in-flight requests.
    grace: Duration,
}

impl<E: Inventory> std::fmt::Debug for ShardTerm<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardTerm")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl<E: Inventory> ShardTerm<E> {
    /// Starts a task on each shard executor of `engine` that serves the connections the
    /// tokio server hands over through `handoff`; call inside the tokio runtime.
    pub fn start(
        engine: &Engine,
        handoff: Arc<Handoff<E>>,
        app: Arc<App<E>>,
        config: &ServerConfig,
    ) -> Result<ShardTerm<E>, flashsale_engine::CommandError> {
        let phase = Arc::new(PhaseSender::new());
        let (done, all_done) = mpsc::channel::<()>(1);
        let shared = Shared::new(app, config, phase.clone());
        let mut queues = Vec::with_capacity(engine.shard_count());
        let mut receivers = Vec::with_capacity(engine.shard_count());
        for _ in 0..engine.shard_count() {
            let (tx, rx) = mpsc::channel::<Handed<E>>(HANDOFF_QUEUE_CONNECTIONS);
            queues.push(tx);
            receivers.push((rx, done.clone()));
        }
        drop(done);
        spawn_each(engine, shared, receivers, |shared, (queue, done)| {
            serve_handed(shared, queue, done)
        })?;
        *handoff
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(TermSink {
            queues,
            next: 0,
            phase: phase.clone(),
        });
        Ok(ShardTerm {
            handoff,
            phase,
            all_done,
            grace: config.shutdown_grace,
        })
    }

    /// Stops handing connections to the shards and drains the term's connections: in-flight
    /// requests finish within the grace period, then the rest are told to close.
    pub async fn stop(mut self) -> TermStop {
        self.handoff.close();
        self.phase.send(Phase::Draining);
        if tokio::time::timeout(self.grace, self.all_done.recv())
            .await
            .is_ok()
        {
            return TermStop::Drained;
        }
        self.phase.send(Phase::Closing);
        let _ = tokio::time::timeout(FORCE_CLOSE_DEADLINE, self.all_done.recv()).await;
        TermStop::ClosedAfterGrace
    }
}

/// How a [`ShardTerm`]'s connections ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermStop {
    /// Every connection finished its requests within the grace period.
    Drained,
    /// Some were still busy after the grace period and were told to close.
    ClosedAfterGrace,
}

/// Serves the connections handed to this shard executor until the term's queue closes.
async fn serve_handed<E: Inventory>(
    shared: Arc<Shared<E>>,
    mut queue: mpsc::Receiver<Handed<E>>,
    done: mpsc::Sender<()>,
) {
    while let Some(Handed { stream, peer, held }) = queue.recv().await {
        // SAFETY: the descriptor comes from `into_raw_fd` of a connected stream we own;
        // glommio's stream takes sole ownership of it (closes it on drop).
        let stream = unsafe { glommio::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
        let _ = stream.set_nodelay(true);
        spawn_connection(&shared, stream, peer, (held, done.clone()));
    }
}

/// Runs `run(shared, item)` on shard executor `i` for the `i`-th of `items` (each taken
/// once), polled inside the tokio runtime's context.
fn spawn_each<E: Inventory, T: Send + 'static, F: Future<Output = ()> + 'static>(
    engine: &Engine,
    shared: Arc<Shared<E>>,
    items: Vec<T>,
    run: fn(Arc<Shared<E>>, T) -> F,
) -> Result<(), flashsale_engine::CommandError> {
    let items = Mutex::new(items.into_iter().map(Some).collect::<Vec<_>>());
    let task = Arc::new(move |shard: usize| -> Pin<Box<dyn Future<Output = ()>>> {
        let taken = items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(shard)
            .and_then(Option::take);
        let shared = shared.clone();
        Box::pin(async move {
            if let Some(item) = taken {
                mark_shard_thread();
                let tokio = shared.tokio.clone();
                InTokio::new(tokio, run(shared, item)).await;
            }
        })
    });
    engine.spawn_on_shards(task)
}

/// Accepts connections on one shard's listener until the server stops serving.
async fn accept_loop<E: Inventory>(
    shared: Arc<Shared<E>>,
    listener: std::net::TcpListener,
    done: mpsc::Sender<()>,
) {
    // SAFETY: the descriptor comes from `into_raw_fd` of a listener we own, bound and
    // listening; glommio's listener takes sole ownership of it (closes it on drop).
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let mut phase = shared.phase.watch();
    loop {
        let accepted = tokio::select! {
            biased;
            now = phase.changed() => match now {
                Phase::Serving => continue,
                Phase::Draining | Phase::Closing => break,
            },
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(stream) => admit(&shared, stream, &done),
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Starts serving `stream` on this executor, or refuses it (per-address cap: 429; connection
/// cap: 503).
fn admit<E: Inventory>(
    shared: &Arc<Shared<E>>,
    stream: glommio::net::TcpStream,
    done: &mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let admitted = match shared.caps.admit(peer, shared.app.metrics()) {
        Ok(a) => a,
        Err(p) => return refuse(shared, stream, p),
    };
    let held = Held::new(admitted, shared.app.clone(), done.clone());
    spawn_connection(shared, stream, peer, held);
}

/// Serves the admitted connection `stream` from `peer` on this executor; `held` (its slots
/// and the drain's count) is dropped when it ends.
fn spawn_connection<E: Inventory, H: 'static>(
    shared: &Arc<Shared<E>>,
    stream: glommio::net::TcpStream,
    peer: SocketAddr,
    held: H,
) {
    shared
        .app
        .metrics()
        .connections_on_shards
        .fetch_add(1, Ordering::Relaxed);
    let app = shared.app.clone();
    let idle_timeout = shared.config.header_timeout.max(Duration::from_millis(1));
    let phase = shared.phase.watch();
    let shared_conn = shared.clone();
    let conn = async move {
        let activity = Activity::new(std::time::Instant::now());
        let service = counted_service(app.clone(), activity.clone(), peer);
        let conn = shared_conn
            .builder
            .serve_connection(GlommioIo(stream), service);
        let timer = ShardTimer::new();
        drive_connection(conn, &app, &activity, peer, idle_timeout, phase, &timer).await;
        drop(held);
    };
    glommio::spawn_local(InTokio::new(shared.tokio.clone(), conn)).detach();
}

/// Answers a refused connection with `problem` (HTTP/1.1) and closes it, within
/// [`REFUSAL_DEADLINE`].
fn refuse<E: Inventory>(
    shared: &Arc<Shared<E>>,
    mut stream: glommio::net::TcpStream,
    problem: Problem,
) {
    let Refusal { head, body } = Refusal::of(&problem);
    let write = async move {
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.close().await
        })
        .await;
    };
    glommio::spawn_local(InTokio::new(shared.tokio.clone(), write)).detach();
}

/// Runs an HTTP/2 connection's streams as tasks on the executor that accepted it (in the tokio
/// runtime's context, like the connection itself).
#[derive(Clone)]
struct ShardExecutor {
    /// The runtime whose context the tasks run in.
    tokio: tokio::runtime::Handle,
}

impl<F> hyper::rt::Executor<F> for ShardExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        glommio::spawn_local(InTokio::new(self.tokio.clone(), fut)).detach();
    }
}

/// Polls `inner` inside the tokio runtime's context, so that tokio timers and `tokio::spawn`
/// work from a shard executor's thread (the context is entered for each poll and left before
/// it returns, so guards never interleave).
struct InTokio<F> {
    /// The runtime.
    tokio: tokio::runtime::Handle,
    /// The task.
    inner: Pin<Box<F>>,
}

impl<F: Future> InTokio<F> {
    /// `inner`, polled in `tokio`'s context.
    fn new(tokio: tokio::runtime::Handle, inner: F) -> Self {
        InTokio {
            tokio,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for InTokio<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.tokio.enter();
        this.inner.as_mut().poll(cx)
    }
}

/// hyper's I/O traits over glommio's TCP stream.
struct GlommioIo(glommio::net::TcpStream);

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // Read into an initialised buffer, then copy: no `unsafe` for hyper's uninitialised
        // cursor (requests are a few hundred bytes). The buffer is the executor thread's
        // scratch, zeroed once, not a fresh 8 KiB stack array zeroed on every call.
        let want = buf.remaining().min(READ_CHUNK);
        let stream = Pin::new(&mut self.0);
        READ_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut chunk) => read_into(stream, cx, &mut chunk[..want], &mut buf),
            // Not reachable (nothing in a read calls back into another read); stay correct.
            Err(_) => read_into(stream, cx, &mut [0u8; READ_CHUNK][..want], &mut buf),
        })
    }
}

thread_local! {
    /// Each executor thread's read buffer for [`GlommioIo`] (a read never yields while it
    /// holds it).
    static READ_SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// Reads from `stream` into `chunk`, then copies what arrived into hyper's `buf`.
fn read_into(
    stream: Pin<&mut glommio::net::TcpStream>,
    cx: &mut Context<'_>,
    chunk: &mut [u8],
    buf: &mut ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    match stream.poll_read(cx, chunk) {
        Poll::Ready(Ok(n)) => {
            buf.put_slice(&chunk[..n]);
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port whose holder lets go within the patience (a predecessor's listeners released
    /// by its ring's teardown) is bound, by every shard's listener. (A tokio runtime, as
    /// `serve` has: the listeners are made with tokio's socket builder.)
    #[tokio::test]
    async fn a_port_released_within_the_patience_is_bound() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        let all = bind_on_shards(addr, 2).unwrap();
        releaser.join().unwrap();
        assert_eq!(all.len(), 2);
        for listener in &all {
            assert_eq!(listener.local_addr().unwrap(), addr);
        }
    }

    /// A port held for good (a live server) is refused once the patience has run out.
    #[test]
    fn a_port_held_for_good_is_refused_after_the_patience() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let patience = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let err = probe_free_within(addr, patience).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(started.elapsed() >= patience, "{:?}", started.elapsed());
        drop(held);
    }
}

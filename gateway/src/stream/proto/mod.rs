//! The experimental stream driver (`--stream-driver proto`, ADR 0046): ONE loop drives
//! `quinn-proto` directly — the sans-IO endpoint and every connection in one table, one timer
//! structure, UDP read in `recvmmsg` batches and written with GSO — instead of quinn's endpoint
//! driver task, a task per connection and a task per session (ADR 0013: that machinery, not
//! our code, is most of the stream's CPU per update).
//!
//! It speaks the same conversation as `session.rs` (both go through `dialogue.rs`), with the
//! same TLS and transport settings, the same counters and the same shutdown: every session is
//! told `ServerShutdown`, then the loop waits a bounded time for the connections to go.
//!
//! Where things are:
//! - `proto/mod.rs`: binding, and the loop ([`ProtoEndpoint::run`]);
//! - `proto/conn.rs`: one connection and its session state machine;
//! - `proto/socket.rs`: the UDP socket (batched receives and sends, a bounded backlog);
//! - `proto/timers.rs`: every connection's next deadline.

mod conn;
mod socket;
mod tally;
mod timers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_proto::{DatagramEvent, Endpoint, EndpointConfig, ServerConfig};

use super::session::Shared;
use super::StreamError;
use conn::{Conn, Liveness};
use socket::{Datagram, Received, UdpIo};
use tally::Tally;
use timers::Timers;

/// Receive batches (`recvmmsg` calls) per turn of the loop before driving connections, so a
/// flood of packets cannot starve timers and publications.
const MAX_RECV_BATCHES: usize = 16;

/// Default time the loop lets datagrams (mostly ACKs, which trickle in one per subscriber
/// after each publication) gather in the socket after a read before it reads again, so that one
/// wake-up and one `recvmmsg` take many of them. Adds at most this much to the server's view of
/// the RTT (and to each handshake flight).
const DEFAULT_RECV_COALESCE: Duration = Duration::from_millis(2);

/// Environment variable overriding [`DEFAULT_RECV_COALESCE`] in µs (0 = read as soon as a
/// datagram arrives); an experiment knob of this experimental driver (ADR 0046).
const RECV_COALESCE_ENV: &str = "FLASHSALE_STREAM_PROTO_RECV_COALESCE_US";

/// The receive coalescing delay: [`RECV_COALESCE_ENV`] if set to a number of µs, else the default.
fn recv_coalesce() -> Duration {
    std::env::var(RECV_COALESCE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RECV_COALESCE, Duration::from_micros)
}

/// Whether the loop serves or is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Accepting connections and streaming.
    Serving,
    /// Every session was told `ServerShutdown`; new connections are refused. At `close_at`
    /// the remaining connections are closed at once, and at `give_up_at` the loop returns.
    Draining {
        close_at: Instant,
        give_up_at: Instant,
    },
}

/// A bound quinn-proto endpoint, ready to [`run`](ProtoEndpoint::run).
#[derive(Debug)]
pub(crate) struct ProtoEndpoint {
    endpoint: Endpoint,
    io: UdpIo,
    local_addr: SocketAddr,
}

impl ProtoEndpoint {
    /// Binds `addr` (inside a tokio runtime) with the same endpoint and server settings as
    /// the quinn driver.
    pub(crate) fn bind(
        addr: SocketAddr,
        endpoint_config: EndpointConfig,
        server_config: ServerConfig,
    ) -> Result<ProtoEndpoint, StreamError> {
        let bind_err = |source| StreamError::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let max_payload =
            usize::try_from(endpoint_config.get_max_udp_payload_size()).unwrap_or(usize::MAX);
        let io = UdpIo::new(socket, max_payload).map_err(bind_err)?;
        let local_addr = io.local_addr().map_err(bind_err)?;
        let allow_mtud = !io.may_fragment();
        let endpoint = Endpoint::new(
            Arc::new(endpoint_config),
            Some(Arc::new(server_config)),
            allow_mtud,
            None,
        );
        Ok(ProtoEndpoint {
            endpoint,
            io,
            local_addr,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then ends every session with `ServerShutdown` and
    /// waits up to `drain` (+ 1 s) for the connections to go.
    pub(crate) async fn run(
        self,
        shared: Arc<Shared>,
        drain: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StreamError> {
        let mut lp = Loop {
            endpoint: self.endpoint,
            io: self.io,
            conns: Vec::new(),
            live: 0,
            timers: Timers::default(),
            ready: Vec::new(),
            datagrams: Vec::new(),
            buf: Vec::new(),
            shared,
            run: Run::Serving,
            head: 0,
            tally: Tally::default(),
        };
        let coalesce = recv_coalesce();
        let mut read_at = Instant::now();
        let mut head = lp.shared.hub.subscribe_head();
        lp.head = *head.borrow_and_update();
        tokio::pin!(shutdown);
        loop {
            let now = Instant::now();
            if now >= read_at && lp.receive(now)? > 0 {
                read_at = now + coalesce;
            }
            while let Some(slot) = lp.timers.pop_due(now) {
                if let Some(Some(conn)) = lp.conns.get_mut(slot) {
                    conn.timer = None;
                    match conn.due {
                        // Filed early (the deadline moved later since): refile, nothing to do.
                        Some(due) if due > now => {
                            lp.timers.file(slot, &mut conn.timer, Some(due));
                            continue;
                        }
                        None => continue,
                        Some(_) => {}
                    }
                }
                lp.mark(slot);
            }
            lp.drive_ready(now);
            if let Run::Draining {
                close_at,
                give_up_at,
            } = lp.run
            {
                if lp.live == 0 || now >= give_up_at {
                    break;
                }
                if now >= close_at {
                    lp.close_all(now);
                }
            }
            let next = lp.next_deadline();
            let serving = lp.run == Run::Serving;
            let wake_at = match lp.run {
                Run::Serving => next,
                Run::Draining {
                    close_at,
                    give_up_at,
                } => Some(next.unwrap_or(give_up_at).min(if now < close_at {
                    close_at
                } else {
                    give_up_at
                })),
            };
            tokio::select! {
                biased;
                () = &mut shutdown, if serving => lp.start_draining(Instant::now(), drain),
                readable = lp.io.readable(), if now >= read_at => {
                    readable.map_err(StreamError::Socket)?;
                }
                () = sleep_until(Some(read_at)), if now < read_at => {}
                writable = lp.io.writable(), if lp.io.has_backlog() => {
                    if writable.is_ok() {
                        lp.io.flush_backlog();
                    }
                }
                changed = head.changed(), if serving => match changed {
                    Ok(()) => {
                        lp.head = *head.borrow_and_update();
                        lp.mark_streaming();
                    }
                    // The hub is gone: nothing more to stream.
                    Err(_) => lp.start_draining(Instant::now(), drain),
                },
                () = sleep_until(wake_at), if wake_at.is_some() => {}
            }
        }
        for conn in lp.conns.iter().flatten() {
            lp.tally.add(&conn.stats());
        }
        lp.tally
            .log(lp.shared.stats.updates_sent.load(Ordering::Relaxed));
        if lp.io.dropped > 0 {
            tracing::warn!(
                dropped = lp.io.dropped,
                "stream datagrams dropped while the socket was full"
            );
        }
        Ok(())
    }
}

/// Sleeps until `at` (forever without one; the select's guard skips that case).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The loop's state.
struct Loop {
    endpoint: Endpoint,
    io: UdpIo,
    /// Connections by `ConnectionHandle` (the endpoint's slab index).
    conns: Vec<Option<Conn>>,
    /// Connections in `conns`.
    live: usize,
    timers: Timers,
    /// Slots to drive this turn.
    ready: Vec<usize>,
    /// Datagrams of the current receive batch.
    datagrams: Vec<Datagram>,
    /// Transmit buffer, reused.
    buf: Vec<u8>,
    shared: Arc<Shared>,
    run: Run,
    /// The newest sequence number published, as of the last head notification.
    head: u64,
    /// Transport statistics of the connections drained so far.
    tally: Tally,
}

impl Loop {
    /// Queues a connection to be driven this turn (once).
    fn mark(&mut self, slot: usize) {
        if let Some(Some(conn)) = self.conns.get_mut(slot) {
            if !conn.queued {
                conn.queued = true;
                self.ready.push(slot);
            }
        }
    }

    /// A publication: every streaming connection has updates to read.
    fn mark_streaming(&mut self) {
        for slot in 0..self.conns.len() {
            if self.conns[slot].as_ref().is_some_and(Conn::is_streaming) {
                self.mark(slot);
            }
        }
    }

    /// Reads and dispatches datagrams until none is waiting (at most `MAX_RECV_BATCHES`);
    /// returns how many were read.
    fn receive(&mut self, now: Instant) -> Result<usize, StreamError> {
        let mut count = 0;
        for _ in 0..MAX_RECV_BATCHES {
            let mut datagrams = std::mem::take(&mut self.datagrams);
            let received = self
                .io
                .recv_batch(|d| datagrams.push(d))
                .map_err(StreamError::Socket)?;
            count += datagrams.len();
            for d in datagrams.drain(..) {
                self.dispatch(now, d);
            }
            self.datagrams = datagrams;
            if matches!(received, Received::Empty | Received::Short(_)) {
                break;
            }
        }
        Ok(count)
    }

    /// Hands one datagram to the endpoint and acts on what it says.
    fn dispatch(&mut self, now: Instant, d: Datagram) {
        let mut response = Vec::new();
        let event = self
            .endpoint
            .handle(now, d.remote, d.local_ip, d.ecn, d.data, &mut response);
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(Some(conn)) = self.conns.get_mut(handle.0) {
                    conn.handle_event(event);
                    self.mark(handle.0);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let full = self.live >= self.shared.config.max_connections;
                if self.run != Run::Serving || full {
                    if full {
                        self.shared
                            .stats
                            .refused_busy
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let transmit = self.endpoint.refuse(incoming, &mut response);
                    if let Some(contents) = response.get(..transmit.size) {
                        self.io.send(&transmit, contents);
                    }
                    return;
                }
                match self.endpoint.accept(incoming, now, &mut response, None) {
                    Ok((handle, connection)) => {
                        let slot = handle.0;
                        if self.conns.len() <= slot {
                            self.conns.resize_with(slot + 1, || None);
                        }
                        debug_assert!(self.conns[slot].is_none(), "slot reused while live");
                        self.conns[slot] = Some(Conn::new(handle, connection));
                        self.live += 1;
                        self.mark(slot);
                    }
                    Err(e) => {
                        tracing::debug!(remote = %d.remote, error = %e.cause, "stream handshake failed");
                        if let Some(transmit) = e.response {
                            if let Some(contents) = response.get(..transmit.size) {
                                self.io.send(&transmit, contents);
                            }
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(transmit)) => {
                if let Some(contents) = response.get(..transmit.size) {
                    self.io.send(&transmit, contents);
                }
            }
            None => {}
        }
    }

    /// The earliest deadline to wake for. Entries filed earlier than their connection's
    /// deadline (it moved later since, see [`Timers::file`]) are refiled first, so that they do
    /// not wake the loop on their own.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((at, slot)) = self.timers.first() {
            let Some(Some(conn)) = self.conns.get_mut(slot) else {
                return Some(at);
            };
            if conn.due.is_some_and(|due| due <= at) {
                return Some(at);
            }
            // Stale: its connection's deadline moved later (or went) since it was filed.
            let popped = self.timers.pop_due(at);
            debug_assert_eq!(popped, Some(slot));
            conn.timer = None;
            self.timers.file(slot, &mut conn.timer, conn.due);
        }
        None
    }

    /// Drives every queued connection, refiles its deadline and sends what they queued.
    fn drive_ready(&mut self, now: Instant) {
        while let Some(slot) = self.ready.pop() {
            let Some(Some(conn)) = self.conns.get_mut(slot) else {
                continue;
            };
            conn.queued = false;
            let liveness = conn.drive(
                now,
                self.head,
                &self.shared,
                &mut self.endpoint,
                &mut self.io,
                &mut self.buf,
            );
            match liveness {
                Liveness::Alive => {
                    conn.due = conn.deadline();
                    self.timers.file(slot, &mut conn.timer, conn.due);
                }
                Liveness::Drained => {
                    self.tally.add(&conn.stats());
                    self.timers.reschedule(slot, conn.timer, None);
                    self.conns[slot] = None;
                    self.live -= 1;
                }
            }
        }
        // What the connections (and the endpoint's responses since the last drive) queued:
        // one `sendmmsg` per `SEND_BATCH` transmits, across connections.
        self.io.flush();
    }

    /// Stops accepting, tells every session `ServerShutdown`.
    fn start_draining(&mut self, now: Instant, drain: Duration) {
        if self.run != Run::Serving {
            return;
        }
        tracing::info!("stock stream shutting down");
        self.endpoint.set_server_config(None);
        self.run = Run::Draining {
            close_at: now + drain,
            give_up_at: now + drain + Duration::from_secs(1),
        };
        for slot in 0..self.conns.len() {
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                conn.shut_down(now, &self.shared);
                self.mark(slot);
            }
        }
    }

    /// Closes every remaining connection at once.
    fn close_all(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                conn.close_now(now);
                self.mark(slot);
            }
        }
        self.drive_ready(now);
    }
}

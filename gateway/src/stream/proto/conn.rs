//! One connection of the quinn-proto loop: the `quinn_proto::Connection` and its session, an
//! explicit state machine speaking the same conversation as `session.rs` (through
//! `dialogue.rs`), woken by the loop instead of by tasks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use flashsale_protocol::stream::{ClientFrame, ErrorCode, FrameDecoder, Subscription};
use quinn_proto::{
    Connection, ConnectionHandle, Dir, Endpoint, Event, ReadError, ReadableError, StreamEvent,
    StreamId, VarInt, WriteError,
};

use super::super::dialogue::{
    accept_hello, accept_subscribe, count_end, encode, heartbeat_frame, opening,
    unexpected_after_subscribe, welcome, End, Greeting, ERROR_FLUSH_TIMEOUT, MAX_HELLO_LEN,
    MAX_SCAN,
};
use super::super::session::Shared;
use super::socket::UdpIo;

/// Rounds of (events, session, transmit, endpoint events) per wake-up of one connection; more
/// rounds only happen while the endpoint keeps answering the connection's events.
const MAX_DRIVE_ROUNDS: usize = 4;

/// Where the client's half of the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientHalf {
    /// It may still send bytes.
    Open,
    /// It sent its FIN.
    Finished,
}

/// Which client frame the greeting waits for.
#[derive(Debug)]
enum Awaiting {
    /// The first frame.
    Hello,
    /// The second frame, after `Welcome` was queued.
    Subscribe(Greeting),
}

/// Whether the `Error` frame's stream has been finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Waiting for the queued frames to be taken by the stream.
    Pending,
    /// FIN queued: waiting for its acknowledgement.
    Sent,
}

/// A session's state.
#[derive(Debug)]
enum Phase {
    /// The TLS handshake is running (bounded by the idle timeout, as with quinn).
    Connecting,
    /// Connected: the client has until `deadline` to open its stream and send `Hello` and
    /// `Subscribe`.
    Greeting {
        deadline: Instant,
        stream: Option<StreamId>,
        decoder: FrameDecoder<ClientFrame>,
        awaiting: Awaiting,
    },
    /// Updates after `cursor`, heartbeats after `silence`.
    Streaming {
        stream: StreamId,
        decoder: FrameDecoder<ClientFrame>,
        client: ClientHalf,
        subscription: Subscription,
        cursor: u64,
        replaying: Replay,
        silence: Instant,
        gate_checked: Instant,
    },
    /// Telling the client why the session ends (an `Error` frame, then FIN); closes when the
    /// FIN is acknowledged or at `deadline`.
    Closing {
        stream: StreamId,
        end: End,
        finish: Finish,
        deadline: Instant,
    },
    /// Closed by either side: waiting for quinn-proto to drain the connection.
    Closed,
}

/// Whether a connection replays history after a resume (never coalesced) or follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Replaying from the resume point.
    Replaying,
    /// Following the head (coalesced beyond the lag limit).
    Live,
}

/// Whether the connection still exists after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    /// Keep it.
    Alive,
    /// quinn-proto drained it: remove it.
    Drained,
}

/// One connection of the loop.
#[derive(Debug)]
pub(super) struct Conn {
    handle: ConnectionHandle,
    conn: Connection,
    remote: SocketAddr,
    phase: Phase,
    /// Encoded frames waiting for room in the stream's send buffer (bounded: a session reads
    /// the hub again only once this is empty).
    pending: VecDeque<Bytes>,
    /// Whether the client's stream may have bytes (or its end) to read: set by quinn-proto's
    /// `Readable` events, cleared by a read. A streaming session reads only then, not on every
    /// ACK (ADR 0046).
    readable: bool,
    /// The entry filed in the loop's timers: at or before `due` (filing is lazy, see
    /// [`Timers::file`](super::timers::Timers::file)).
    pub(super) timer: Option<Instant>,
    /// When the connection must be driven next, as of its last drive.
    pub(super) due: Option<Instant>,
    /// Whether it is in the loop's list of connections to drive.
    pub(super) queued: bool,
}

impl Conn {
    /// A connection just accepted by the endpoint.
    pub(super) fn new(handle: ConnectionHandle, conn: Connection) -> Conn {
        Conn {
            handle,
            remote: conn.remote_address(),
            conn,
            phase: Phase::Connecting,
            pending: VecDeque::new(),
            readable: true,
            timer: None,
            due: None,
            queued: false,
        }
    }

    /// quinn-proto's statistics of the connection.
    pub(super) fn stats(&self) -> quinn_proto::ConnectionStats {
        self.conn.stats()
    }

    /// Passes an event from the endpoint (a datagram, new connection ids) to the connection.
    pub(super) fn handle_event(&mut self, event: quinn_proto::ConnectionEvent) {
        self.conn.handle_event(event);
    }

    /// Whether the session streams updates (a new publication concerns it).
    pub(super) fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    /// Ends the session because the server stops: `ServerShutdown`, told to the client.
    pub(super) fn shut_down(&mut self, now: Instant, shared: &Shared) {
        match self.phase {
            Phase::Connecting => {
                self.phase = Phase::Closed;
                self.conn.close(
                    now,
                    VarInt::from_u32(ErrorCode::ServerShutdown.as_u32()),
                    Bytes::from_static(b"server shutting down"),
                );
            }
            Phase::Greeting { .. } | Phase::Streaming { .. } => self.end(
                now,
                shared,
                End::new(ErrorCode::ServerShutdown, "server shutting down"),
            ),
            Phase::Closing { .. } | Phase::Closed => {}
        }
    }

    /// Closes at once (the last moment of a shutdown that ran out of time).
    pub(super) fn close_now(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Closed;
            self.conn.close(
                now,
                VarInt::from_u32(ErrorCode::ServerShutdown.as_u32()),
                Bytes::from_static(b"server shutting down"),
            );
        }
    }

    /// Runs timers, events and the session, sends what the connection has to send and passes
    /// its events to the endpoint. Returns whether it still exists; on `Alive`, `deadline()`
    /// says when to drive it next without an outside event.
    pub(super) fn drive(
        &mut self,
        now: Instant,
        head: u64,
        shared: &Shared,
        endpoint: &mut Endpoint,
        io: &mut UdpIo,
        buf: &mut Vec<u8>,
    ) -> Liveness {
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now);
        }
        for _ in 0..MAX_DRIVE_ROUNDS {
            while let Some(event) = self.conn.poll() {
                self.on_event(event, now, shared);
            }
            self.advance(now, head, shared);
            let segments = io.max_gso_segments();
            loop {
                buf.clear();
                let Some(transmit) = self.conn.poll_transmit(now, segments, buf) else {
                    break;
                };
                let Some(contents) = buf.get(..transmit.size) else {
                    break;
                };
                io.send(&transmit, contents);
            }
            let mut answered = false;
            while let Some(event) = self.conn.poll_endpoint_events() {
                let drained = event.is_drained();
                if let Some(reply) = endpoint.handle_event(self.handle, event) {
                    self.conn.handle_event(reply);
                    answered = true;
                }
                if drained {
                    return Liveness::Drained;
                }
            }
            if !answered {
                break;
            }
        }
        Liveness::Alive
    }

    /// When to drive the connection next: quinn-proto's timer or the session's.
    pub(super) fn deadline(&mut self) -> Option<Instant> {
        let session = match &self.phase {
            Phase::Connecting | Phase::Closed => None,
            Phase::Greeting { deadline, .. } | Phase::Closing { deadline, .. } => Some(*deadline),
            Phase::Streaming { silence, .. } => Some(*silence),
        };
        match (self.conn.poll_timeout(), session) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_event(&mut self, event: Event, now: Instant, shared: &Shared) {
        match event {
            Event::Connected => {
                if matches!(self.phase, Phase::Connecting) {
                    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    shared.stats.active.fetch_add(1, Ordering::Relaxed);
                    self.phase = Phase::Greeting {
                        deadline: now + shared.config.handshake_timeout,
                        stream: None,
                        decoder: FrameDecoder::new(MAX_HELLO_LEN.min(shared.config.max_frame_len)),
                        awaiting: Awaiting::Hello,
                    };
                }
            }
            Event::ConnectionLost { reason } => match self.phase {
                Phase::Connecting => {
                    tracing::debug!(remote = %self.remote, error = %reason, "stream handshake failed");
                    self.phase = Phase::Closed;
                }
                Phase::Greeting { .. } | Phase::Streaming { .. } => {
                    self.end(now, shared, End::gone(format!("connection lost: {reason}")));
                }
                Phase::Closing { .. } | Phase::Closed => self.phase = Phase::Closed,
            },
            Event::Stream(StreamEvent::Finished { id } | StreamEvent::Stopped { id, .. }) => {
                if let Phase::Closing { stream, .. } = &self.phase {
                    if *stream == id {
                        self.close(now);
                    }
                }
            }
            Event::DatagramReceived => {
                // Clients' liveness probes: nothing reads them.
                while self.conn.datagrams().recv().is_some() {}
            }
            Event::Stream(StreamEvent::Readable { .. }) => self.readable = true,
            // Writable and opened streams are handled by `advance`, which writes whatever it
            // can every time the connection is driven (and, while greeting, reads too).
            Event::Stream(_) | Event::HandshakeDataReady | Event::DatagramsUnblocked => {}
        }
    }

    /// Moves the session on as far as it can now.
    /// `head` is the newest sequence number the loop knows of: a session at or past it skips
    /// the hub (an ACK wakes a connection far more often than a publication does).
    fn advance(&mut self, now: Instant, head: u64, shared: &Shared) {
        let result = match self.phase {
            Phase::Connecting | Phase::Closed => Ok(()),
            Phase::Greeting { .. } => self.greet(now, head, shared),
            Phase::Streaming { .. } => self.stream(now, head, shared),
            Phase::Closing { .. } => {
                self.linger(now);
                Ok(())
            }
        };
        if let Err(end) = result {
            self.end(now, shared, end);
            if matches!(self.phase, Phase::Closing { .. }) {
                self.linger(now);
            }
        }
    }

    /// Hello, Welcome, Subscribe, then the opening frames.
    fn greet(&mut self, now: Instant, head: u64, shared: &Shared) -> Result<(), End> {
        let Phase::Greeting {
            deadline,
            stream,
            decoder,
            awaiting,
        } = &mut self.phase
        else {
            return Ok(());
        };
        if stream.is_none() {
            *stream = self.conn.streams().accept(Dir::Bi);
        }
        let Some(id) = *stream else {
            return if now >= *deadline {
                Err(End::new(
                    ErrorCode::HandshakeTimeout,
                    "no stream opened in time",
                ))
            } else {
                Ok(())
            };
        };
        let half = read_into(&mut self.conn, id, decoder)?;
        loop {
            let frame = decoder
                .next_frame()
                .map_err(|e| End::new(e.code(), e.to_string()))?;
            let Some(frame) = frame else { break };
            match awaiting {
                Awaiting::Hello => {
                    let greeting = accept_hello(frame, shared)?;
                    decoder.set_max_len(shared.config.max_frame_len);
                    self.pending
                        .push_back(Bytes::from(encode(&welcome(shared, &greeting))?));
                    *awaiting = Awaiting::Subscribe(greeting);
                }
                Awaiting::Subscribe(greeting) => {
                    let subscription = accept_subscribe(frame)?;
                    let start = opening(shared, &subscription, greeting.resume_from);
                    for frame in &start.frames {
                        self.pending.push_back(Bytes::from(encode(frame)?));
                    }
                    start.count(&shared.stats);
                    let decoder = std::mem::replace(decoder, FrameDecoder::new(0));
                    // Frames after `Subscribe` may already be buffered or waiting.
                    self.readable = true;
                    self.phase = Phase::Streaming {
                        stream: id,
                        decoder,
                        client: half,
                        subscription,
                        cursor: start.cursor,
                        replaying: if start.replaying() {
                            Replay::Replaying
                        } else {
                            Replay::Live
                        },
                        silence: now + shared.config.heartbeat,
                        gate_checked: now,
                    };
                    return self.stream(now, head, shared);
                }
            }
        }
        if half == ClientHalf::Finished {
            if decoder.buffered() > 0 {
                return Err(End::new(
                    ErrorCode::MalformedFrame,
                    "stream ended inside a frame",
                ));
            }
            let what = match awaiting {
                Awaiting::Hello => "client left before Hello",
                Awaiting::Subscribe(_) => "client left before Subscribe",
            };
            return Err(End::gone(what));
        }
        flush(&mut self.conn, id, &mut self.pending)?;
        if now >= *deadline {
            let what = match awaiting {
                Awaiting::Hello => "no Hello in time",
                Awaiting::Subscribe(_) => "no Subscribe in time",
            };
            return Err(End::new(ErrorCode::HandshakeTimeout, what));
        }
        Ok(())
    }

    /// Updates after the cursor (coalesced when the client lags), and a heartbeat when silent.
    fn stream(&mut self, now: Instant, head: u64, shared: &Shared) -> Result<(), End> {
        let Phase::Streaming {
            stream,
            decoder,
            client,
            subscription,
            cursor,
            replaying,
            silence,
            gate_checked,
        } = &mut self.phase
        else {
            return Ok(());
        };
        let id = *stream;
        if *client == ClientHalf::Open && std::mem::take(&mut self.readable) {
            *client = read_into(&mut self.conn, id, decoder)?;
            if let Some(frame) = decoder
                .next_frame()
                .map_err(|e| End::new(e.code(), e.to_string()))?
            {
                return Err(unexpected_after_subscribe(&frame));
            }
            if *client == ClientHalf::Finished && decoder.buffered() > 0 {
                return Err(End::new(
                    ErrorCode::MalformedFrame,
                    "stream ended inside a frame",
                ));
            }
        }
        flush(&mut self.conn, id, &mut self.pending)?;
        let hub = &shared.hub;
        let stats = &shared.stats;
        while self.pending.is_empty() && *cursor < head {
            let lag_limit = (*replaying == Replay::Live).then_some(shared.config.lag_limit);
            let batch = hub.read_since(*cursor, subscription, lag_limit, MAX_SCAN);
            if batch.coalesced {
                stats.coalesced_batches.fetch_add(1, Ordering::Relaxed);
            }
            debug_assert!(batch.entries.iter().all(|e| e.seq > *cursor));
            if !batch.entries.is_empty() {
                self.pending
                    .extend(batch.entries.iter().map(|e| e.frame.clone()));
                stats
                    .updates_sent
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                *silence = now + shared.config.heartbeat;
                if now.duration_since(*gate_checked) >= shared.config.heartbeat {
                    *gate_checked = now;
                    if let Some(refusal) = shared.config.leader_gate.serving().refusal() {
                        return Err(End::new(ErrorCode::NotLeader, refusal));
                    }
                }
                flush(&mut self.conn, id, &mut self.pending)?;
            }
            let progressed = batch.cursor > *cursor;
            *cursor = batch.cursor;
            if !progressed || batch.caught_up {
                *replaying = Replay::Live;
                break;
            }
        }
        if now >= *silence {
            if let Some(refusal) = shared.config.leader_gate.serving().refusal() {
                return Err(End::new(ErrorCode::NotLeader, refusal));
            }
            if self.pending.is_empty() {
                self.pending
                    .push_back(Bytes::from(encode(&heartbeat_frame(*cursor))?));
                stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                flush(&mut self.conn, id, &mut self.pending)?;
            }
            *gate_checked = now;
            *silence = now + shared.config.heartbeat;
        }
        Ok(())
    }

    /// Ends the session: counts it, then tells the client (an `Error` frame on its stream)
    /// or closes at once.
    fn end(&mut self, now: Instant, shared: &Shared, end: End) {
        let stream = match &self.phase {
            Phase::Greeting { stream, .. } => *stream,
            Phase::Streaming { stream, .. } => Some(*stream),
            Phase::Connecting | Phase::Closing { .. } | Phase::Closed => return,
        };
        shared.stats.active.fetch_sub(1, Ordering::Relaxed);
        count_end(&shared.stats, end.code);
        tracing::debug!(remote = %self.remote, code = %end.code, message = %end.message, "stream connection ended");
        match stream {
            Some(stream) if end.tell_peer && end.code != ErrorCode::Normal => {
                if let Ok(bytes) = encode(&flashsale_protocol::stream::ServerFrame::Error {
                    code: end.code.as_u32(),
                    message: end.message.clone(),
                }) {
                    self.pending.push_back(Bytes::from(bytes));
                }
                self.phase = Phase::Closing {
                    stream,
                    end,
                    finish: Finish::Pending,
                    // Once to deliver the frame, once for its acknowledgement, as session.rs.
                    deadline: now + 2 * ERROR_FLUSH_TIMEOUT,
                };
            }
            _ => {
                self.phase = Phase::Closed;
                self.pending.clear();
                self.conn.close(
                    now,
                    VarInt::from_u32(end.code.as_u32()),
                    Bytes::from(end.reason_bytes()),
                );
            }
        }
    }

    /// While closing: writes the `Error` frame, then FIN; closes at the deadline.
    fn linger(&mut self, now: Instant) {
        let Phase::Closing {
            stream,
            finish,
            deadline,
            ..
        } = &mut self.phase
        else {
            return;
        };
        let id = *stream;
        if now >= *deadline {
            self.close(now);
            return;
        }
        if *finish == Finish::Pending {
            if flush(&mut self.conn, id, &mut self.pending).is_err() {
                self.close(now);
                return;
            }
            if self.pending.is_empty() {
                if self.conn.send_stream(id).finish().is_err() {
                    self.close(now);
                    return;
                }
                *finish = Finish::Sent;
            }
        }
    }

    /// Closes the connection with the session's code and reason.
    fn close(&mut self, now: Instant) {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        if let Phase::Closing { end, .. } = phase {
            self.conn.close(
                now,
                VarInt::from_u32(end.code.as_u32()),
                Bytes::from(end.reason_bytes()),
            );
        }
        self.pending.clear();
    }
}

/// Reads what the client sent on stream `id` into `decoder`.
fn read_into(
    conn: &mut Connection,
    id: StreamId,
    decoder: &mut FrameDecoder<ClientFrame>,
) -> Result<ClientHalf, End> {
    let mut recv = conn.recv_stream(id);
    let mut chunks = match recv.read(true) {
        Ok(chunks) => chunks,
        Err(ReadableError::ClosedStream) => {
            return Err(End::gone("read failed: closed stream"));
        }
        Err(e @ ReadableError::IllegalOrderedRead) => {
            return Err(End::new(ErrorCode::Internal, format!("read failed: {e}")));
        }
    };
    let mut half = ClientHalf::Open;
    let mut failed = None;
    loop {
        match chunks.next(usize::MAX) {
            Ok(Some(chunk)) => decoder.feed(&chunk.bytes),
            Ok(None) => {
                half = ClientHalf::Finished;
                break;
            }
            Err(ReadError::Blocked) => break,
            Err(ReadError::Reset(code)) => {
                failed = Some(End::gone(format!(
                    "read failed: stream reset by peer: {code}"
                )));
                break;
            }
        }
    }
    // Whether a flow-control update is due: the loop polls transmits after every drive anyway.
    let _ = chunks.finalize();
    match failed {
        Some(end) => Err(end),
        None => Ok(half),
    }
}

/// Hands queued frames to the stream's send buffer, as far as flow control allows.
fn flush(conn: &mut Connection, id: StreamId, pending: &mut VecDeque<Bytes>) -> Result<(), End> {
    while !pending.is_empty() {
        let written = match conn.send_stream(id).write_chunks(pending.make_contiguous()) {
            Ok(written) => written,
            Err(WriteError::Blocked) => return Ok(()),
            Err(e) => return Err(End::gone(format!("write failed: {e}"))),
        };
        pending.drain(..written.chunks.min(pending.len()));
        if written.bytes == 0 {
            return Ok(());
        }
    }
    Ok(())
}

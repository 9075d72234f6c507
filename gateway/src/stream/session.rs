//! One client connection: handshake, snapshot or resume, then updates and heartbeats.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flashsale_protocol::stream::{ClientFrame, ErrorCode, FrameDecoder, ServerFrame, Subscription};
use quinn::{RecvStream, SendStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::dialogue::{
    accept_hello, accept_subscribe, count_end, encode, heartbeat_frame, opening,
    unexpected_after_subscribe, welcome, End, ERROR_FLUSH_TIMEOUT, MAX_HELLO_LEN, MAX_SCAN,
};
use super::server::ServerStats;
use super::{StockHub, StreamConfig};
use crate::auth::Tokens;

/// State shared by every connection of a server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) hub: Arc<StockHub>,
    pub(crate) tokens: Tokens,
    pub(crate) config: StreamConfig,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) stats: Arc<ServerStats>,
}

/// Reads client frames from the stream through the sans-IO decoder.
struct FrameReader {
    recv: RecvStream,
    decoder: FrameDecoder<ClientFrame>,
    buf: Box<[u8]>,
}

impl FrameReader {
    /// The next frame, or `None` when the client finished its side of the stream.
    async fn next(&mut self) -> Result<Option<ClientFrame>, End> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => return Err(End::new(e.code(), e.to_string())),
            }
            match self.recv.read(&mut self.buf).await {
                Ok(Some(n)) => {
                    let Some(bytes) = self.buf.get(..n) else {
                        return Err(End::new(ErrorCode::Internal, "read past buffer"));
                    };
                    self.decoder.feed(bytes);
                }
                Ok(None) => {
                    if self.decoder.buffered() > 0 {
                        return Err(End::new(
                            ErrorCode::MalformedFrame,
                            "stream ended inside a frame",
                        ));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(End::gone(format!("read failed: {e}"))),
            }
        }
    }
}

async fn write(send: &mut SendStream, bytes: &[u8]) -> Result<(), End> {
    send.write_all(bytes)
        .await
        .map_err(|e| End::gone(format!("write failed: {e}")))
}

/// Accepts the connection, runs the session, closes with the session's code.
pub(crate) async fn run_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "stream handshake failed");
            return;
        }
    };
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    shared.stats.active.fetch_add(1, Ordering::Relaxed);
    let end = session(&conn, &shared).await;
    shared.stats.active.fetch_sub(1, Ordering::Relaxed);
    count_end(&shared.stats, end.code);
    tracing::debug!(%remote, code = %end.code, message = %end.message, "stream connection ended");
    conn.close(end.code.as_u32().into(), &end.reason_bytes());
}

async fn session(conn: &quinn::Connection, shared: &Shared) -> End {
    let timeout = shared.config.handshake_timeout;
    let (mut send, recv) = match tokio::time::timeout(timeout, conn.accept_bi()).await {
        Err(_) => {
            return End::new(ErrorCode::HandshakeTimeout, "no stream opened in time");
        }
        Ok(Err(e)) => return End::gone(format!("connection lost: {e}")),
        Ok(Ok(streams)) => streams,
    };
    let reader = FrameReader {
        recv,
        decoder: FrameDecoder::new(MAX_HELLO_LEN.min(shared.config.max_frame_len)),
        buf: vec![0u8; 16 << 10].into_boxed_slice(),
    };
    let end = converse(&mut send, reader, shared).await;
    if end.tell_peer && end.code != ErrorCode::Normal {
        // Best effort: the close code and reason carry the same information.
        if let Ok(bytes) = encode(&ServerFrame::Error {
            code: end.code.as_u32(),
            message: end.message.clone(),
        }) {
            let _ = tokio::time::timeout(ERROR_FLUSH_TIMEOUT, send.write_all(&bytes)).await;
            let _ = send.finish();
            let _ = tokio::time::timeout(ERROR_FLUSH_TIMEOUT, send.stopped()).await;
        }
    }
    end
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, End>>,
) -> Result<T, End> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| End::new(ErrorCode::HandshakeTimeout, format!("no {what} in time")))?
}

async fn converse(send: &mut SendStream, reader: FrameReader, shared: &Shared) -> End {
    match converse_inner(send, reader, shared).await {
        Ok(end) | Err(end) => end,
    }
}

async fn converse_inner(
    send: &mut SendStream,
    mut reader: FrameReader,
    shared: &Shared,
) -> Result<End, End> {
    let limit = shared.config.handshake_timeout;

    // 1. Hello.
    let greeting = match with_timeout(limit, "Hello", reader.next()).await? {
        None => return Ok(End::gone("client left before Hello")),
        Some(frame) => accept_hello(frame, shared)?,
    };
    reader.decoder.set_max_len(shared.config.max_frame_len);
    write(send, &encode(&welcome(shared, &greeting))?).await?;

    // 2. Subscribe.
    let subscription = match with_timeout(limit, "Subscribe", reader.next()).await? {
        None => return Ok(End::gone("client left before Subscribe")),
        Some(frame) => accept_subscribe(frame)?,
    };

    // 3. Resume or snapshot.
    let start = opening(shared, &subscription, greeting.resume_from);
    for frame in &start.frames {
        write(send, &encode(frame)?).await?;
    }
    start.count(&shared.stats);
    let (cursor, replaying) = (start.cursor, start.replaying());

    // 4. Stream until the client misbehaves or leaves, or the server stops. The client's half
    // of the stream is read by a task of its own: polled in this task, it was polled again (a
    // lock of the connection and a look at its receive buffer) on every wake-up for an update,
    // ≈ 3.6 % of the stream thread's CPU per update (ADR 0013, issue 17 addendum), although a
    // client sends nothing after `Subscribe` but its FIN. Its end is collected through the
    // join handle, which costs one atomic load per wake-up.
    let mut stop = shared.stop.clone();
    let mut client_done = false;
    let mut client = ClientWatch::spawn(async move { reader.next().await });
    let writer = stream_updates(send, shared, &subscription, cursor, replaying);
    tokio::pin!(writer);
    loop {
        tokio::select! {
            biased;
            end = &mut writer => return end,
            frame = &mut client.handle, if !client_done => match frame {
                Ok(frame) => match frame? {
                    // The client half-closed its side; keep streaming until it closes the
                    // connection.
                    None => client_done = true,
                    Some(other) => return Err(unexpected_after_subscribe(&other)),
                },
                Err(e) => {
                    return Err(End::new(
                        ErrorCode::Internal,
                        format!("the client reader stopped: {e}"),
                    ))
                }
            },
            _ = stop.wait_for(|stopped| *stopped) => {
                return Ok(End::new(ErrorCode::ServerShutdown, "server shutting down"));
            }
        }
    }
}

/// The task reading the client's half of the stream after `Subscribe`; aborted when the
/// session ends (dropping it drops the stream's receive half, as before).
struct ClientWatch {
    handle: tokio::task::JoinHandle<Result<Option<ClientFrame>, End>>,
}

impl ClientWatch {
    /// Spawns `read` on the current runtime.
    fn spawn(
        read: impl std::future::Future<Output = Result<Option<ClientFrame>, End>> + Send + 'static,
    ) -> ClientWatch {
        ClientWatch {
            handle: tokio::spawn(read),
        }
    }
}

impl Drop for ClientWatch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Sends every update after `cursor` (coalesced when the client lags), and heartbeats when idle.
async fn stream_updates(
    send: &mut SendStream,
    shared: &Shared,
    subscription: &Subscription,
    mut cursor: u64,
    mut replaying: bool,
) -> Result<End, End> {
    let hub = &shared.hub;
    let stats = &shared.stats;
    let mut head_rx = hub.subscribe_head();
    let heartbeat = shared.config.heartbeat;
    // Fires after one heartbeat of silence. Every write pushes it back; moving a tokio timer
    // later only updates its deadline (the wheel re-files it when the old one passes), so a
    // busy connection is not woken by it once per heartbeat as an interval would.
    let silence = tokio::time::sleep(heartbeat);
    tokio::pin!(silence);
    let mut gate_checked = Instant::now();
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        head_rx.borrow_and_update();
        loop {
            let lag_limit = (!replaying).then_some(shared.config.lag_limit);
            let batch = hub.read_since(cursor, subscription, lag_limit, MAX_SCAN);
            if batch.coalesced {
                stats.coalesced_batches.fetch_add(1, Ordering::Relaxed);
            }
            debug_assert!(batch.entries.iter().all(|e| e.seq > cursor));
            debug_assert!(batch.entries.windows(2).all(|w| w[0].seq < w[1].seq));
            if !batch.entries.is_empty() {
                chunks.clear();
                chunks.extend(batch.entries.iter().map(|e| e.frame.clone()));
                let n = chunks.len() as u64;
                send.write_all_chunks(&mut chunks)
                    .await
                    .map_err(|e| End::gone(format!("write failed: {e}")))?;
                stats.updates_sent.fetch_add(n, Ordering::Relaxed);
                let now = Instant::now();
                silence.as_mut().reset(now + heartbeat);
                // A leader that stepped down publishes nothing more, but check the gate at
                // least once per heartbeat anyway, as while idle.
                if now.duration_since(gate_checked) >= heartbeat {
                    gate_checked = now;
                    if let Some(refusal) = shared.config.leader_gate.serving().refusal() {
                        return Ok(End::new(ErrorCode::NotLeader, refusal));
                    }
                }
            }
            let progressed = batch.cursor > cursor;
            cursor = batch.cursor;
            if !progressed || batch.caught_up {
                // Caught up with the head as of the read; a later publication changes `head_rx`
                // (marked seen before the read), so the select below wakes at once for it.
                replaying = false;
                break;
            }
        }
        tokio::select! {
            changed = head_rx.changed() => {
                if changed.is_err() {
                    return Ok(End::new(ErrorCode::ServerShutdown, "stock hub stopped"));
                }
            }
            () = &mut silence => {
                // A leader that stepped down publishes nothing more: send its clients on.
                if let Some(refusal) = shared.config.leader_gate.serving().refusal() {
                    return Ok(End::new(ErrorCode::NotLeader, refusal));
                }
                let beat = encode(&heartbeat_frame(cursor))?;
                write(send, &beat).await?;
                stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                gate_checked = now;
                silence.as_mut().reset(now + heartbeat);
            }
        }
    }
}

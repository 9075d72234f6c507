//! One connection to the stream server: handshake, snapshot or resume, then frames.

use std::time::{Duration, Instant};

use bytes::Bytes;

use flashsale_protocol::stream::{
    encode_frame, ClientFrame, FrameDecoder, LevelEntry, ResumePoint, ServerFrame, PROTOCOL_VERSION,
};

use crate::{ClientError, ClientOptions, Connector};

/// How a session started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStart {
    /// A full picture of the subscribed SKUs as of `seq` (replaces any state the caller had).
    Snapshot {
        /// Every change up to this sequence number is reflected.
        seq: u64,
        /// Counts per SKU, sorted by SKU.
        levels: Vec<LevelEntry>,
    },
    /// The server still had the resume point: updates after `seq` follow, nothing was missed.
    Resumed {
        /// The resume point, echoed.
        seq: u64,
    },
}

/// An open, subscribed connection.
#[derive(Debug)]
pub struct Session {
    conn: quinn::Connection,
    // Kept open: finishing it is allowed but dropping it early would reset it.
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder<ServerFrame>,
    buf: Box<[u8]>,
    epoch: u64,
    head_at_welcome: u64,
    silence_limit: Duration,
    /// Silence after which the session probes the server (see [`Session::next_frame`]).
    probe_after: Duration,
    /// When the server was last heard from.
    last_heard: Instant,
}

/// How often a session probes a silent server, once a heartbeat is overdue.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The probe: one byte in a QUIC datagram, which the server ignores.
const PROBE: &[u8] = &[0];

impl Session {
    /// Connects, authenticates and subscribes per `options`, resuming after `resume` if given.
    pub async fn open(
        connector: &Connector,
        options: &ClientOptions,
        resume: Option<ResumePoint>,
    ) -> Result<(Session, SessionStart), ClientError> {
        Self::open_within(connector, options, resume, options.connect_timeout).await
    }

    /// Like [`Session::open`], with the QUIC handshake limited to `handshake_timeout` (the
    /// whole opening still to `options.connect_timeout`).
    pub async fn open_within(
        connector: &Connector,
        options: &ClientOptions,
        resume: Option<ResumePoint>,
        handshake_timeout: Duration,
    ) -> Result<(Session, SessionStart), ClientError> {
        tokio::time::timeout(
            options.connect_timeout,
            Self::open_inner(connector, options, resume, handshake_timeout),
        )
        .await
        .map_err(|_| ClientError::Timeout("the connection and handshake"))?
    }

    async fn open_inner(
        connector: &Connector,
        options: &ClientOptions,
        resume: Option<ResumePoint>,
        handshake_timeout: Duration,
    ) -> Result<(Session, SessionStart), ClientError> {
        let addr = options.resolve().await?;
        let conn = tokio::time::timeout(
            handshake_timeout,
            connector.connect(addr, &options.tls_name()),
        )
        .await
        .map_err(|_| ClientError::Timeout("the QUIC handshake"))??;
        let (mut send, recv) = conn.open_bi().await?;
        let mut out = Vec::new();
        let frames = [
            ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                token: options.token.clone(),
                resume_from: resume,
            },
            ClientFrame::Subscribe {
                subscription: options.subscription.clone(),
            },
        ];
        for frame in &frames {
            encode_frame(frame, options.max_frame_len, &mut out)
                .map_err(|e| ClientError::Config(e.to_string()))?;
        }
        send.write_all(&out).await.map_err(write_error)?;
        let mut session = Session {
            conn,
            _send: send,
            recv,
            decoder: FrameDecoder::new(options.max_frame_len),
            buf: vec![0u8; 64 << 10].into_boxed_slice(),
            epoch: 0,
            head_at_welcome: 0,
            silence_limit: options.connect_timeout,
            probe_after: options.connect_timeout,
            last_heard: Instant::now(),
        };
        match session.next_frame().await? {
            ServerFrame::Welcome {
                epoch,
                head_seq,
                heartbeat_ms,
                ..
            } => {
                session.epoch = epoch;
                session.head_at_welcome = head_seq;
                // Three missed heartbeats (plus slack) mean the server is gone.
                let heartbeat = Duration::from_millis(u64::from(heartbeat_ms));
                session.silence_limit = heartbeat.saturating_mul(3) + Duration::from_secs(2);
                // A quarter of a heartbeat late: start probing (a restarted server answers a
                // probe with a stateless reset at once).
                session.probe_after = heartbeat + heartbeat / 4;
            }
            other => return Err(unexpected("Welcome", &other)),
        }
        let start = match session.next_frame().await? {
            ServerFrame::Resumed { seq } => SessionStart::Resumed { seq },
            ServerFrame::Snapshot { seq, levels, last } => {
                let mut all = levels;
                let mut done = last;
                while !done {
                    match session.next_frame().await? {
                        ServerFrame::Snapshot {
                            seq: part_seq,
                            levels,
                            last,
                        } if part_seq == seq => {
                            all.extend(levels);
                            done = last;
                        }
                        other => return Err(unexpected("the rest of the Snapshot", &other)),
                    }
                }
                SessionStart::Snapshot { seq, levels: all }
            }
            other => return Err(unexpected("Snapshot or Resumed", &other)),
        };
        if let (Some(rp), SessionStart::Resumed { seq }) = (resume, &start) {
            if rp.seq != *seq {
                return Err(ClientError::Protocol(format!(
                    "asked to resume after {} but the server resumed after {seq}",
                    rp.seq
                )));
            }
        }
        Ok((session, start))
    }

    /// The server's sequence epoch (part of a [`ResumePoint`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The server's newest sequence number when it welcomed this session.
    pub fn head_at_welcome(&self) -> u64 {
        self.head_at_welcome
    }

    /// When this session's server counts as late: a quarter of a heartbeat after it was last
    /// heard from (before the Welcome: the connect timeout). A [`crate::Subscriber`] given
    /// other nodes starts looking for a new leader then (ADR 0033).
    pub fn late_at(&self) -> Instant {
        self.last_heard + self.probe_after
    }

    /// The underlying connection (for stats).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// The next frame. An `Error` frame or a close from the server becomes
    /// [`ClientError::Closed`]; silence for three heartbeat intervals a [`ClientError::Timeout`].
    ///
    /// While a heartbeat is overdue, the session sends the server a tiny datagram every
    /// [`PROBE_INTERVAL`]: a server that restarted on the same address with the same identity
    /// (stateless-reset key) answers it with a stateless reset, which ends this session with
    /// [`ClientError::Reset`] at once instead of after the silence limit. This method is
    /// cancel-safe.
    pub async fn next_frame(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(ServerFrame::Error { code, message })) => {
                    return Err(ClientError::closed(u64::from(code), message))
                }
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    let err = ClientError::Protocol(e.to_string());
                    self.conn
                        .close(e.code().as_u32().into(), e.to_string().as_bytes());
                    return Err(err);
                }
            }
            // Past the silence limit the wait is zero, but the read is still tried once
            // (`timeout` polls its future before its deadline): a caller that comes back late
            // (a busy process, a consumer working through many subscribers) finds what the
            // server sent meanwhile instead of taking its own delay for the server's silence.
            let silent = self.last_heard.elapsed();
            let wait = if silent >= self.probe_after {
                PROBE_INTERVAL
            } else {
                self.probe_after - silent
            }
            .min(self.silence_limit.saturating_sub(silent));
            // quinn's `read` is cancel-safe: a timeout loses no data.
            let Ok(read) = tokio::time::timeout(wait, self.recv.read(&mut self.buf)).await else {
                let silent = self.last_heard.elapsed();
                if silent >= self.silence_limit {
                    return Err(ClientError::Timeout("a frame or heartbeat from the server"));
                }
                if silent >= self.probe_after {
                    self.probe();
                }
                continue;
            };
            self.last_heard = Instant::now();
            match read {
                Ok(Some(n)) => {
                    let bytes = self
                        .buf
                        .get(..n)
                        .ok_or_else(|| ClientError::Protocol("read past buffer".into()))?;
                    self.decoder.feed(bytes);
                }
                Ok(None) => {
                    // The server finished its side: the close (with its code) follows.
                    let reason =
                        tokio::time::timeout(Duration::from_secs(2), self.conn.closed()).await;
                    return Err(match reason {
                        Ok(e) => e.into(),
                        Err(_) => ClientError::Protocol("server ended the stream".into()),
                    });
                }
                Err(quinn::ReadError::ConnectionLost(e)) => return Err(e.into()),
                Err(e) => return Err(ClientError::Connection(e.to_string())),
            }
        }
    }

    /// Sends a probe datagram (best effort: a server without datagram support gets none).
    fn probe(&self) {
        if self
            .conn
            .max_datagram_size()
            .is_some_and(|max| max >= PROBE.len())
        {
            let _ = self.conn.send_datagram(Bytes::from_static(PROBE));
        }
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        self.conn.close(0u8.into(), b"bye");
    }
}

fn write_error(e: quinn::WriteError) -> ClientError {
    match e {
        quinn::WriteError::ConnectionLost(e) => e.into(),
        other => ClientError::Connection(other.to_string()),
    }
}

fn unexpected(wanted: &str, got: &ServerFrame) -> ClientError {
    let name = match got {
        ServerFrame::Welcome { .. } => "Welcome",
        ServerFrame::Error { .. } => "Error",
        ServerFrame::Snapshot { .. } => "Snapshot",
        ServerFrame::Resumed { .. } => "Resumed",
        ServerFrame::Update(_) => "Update",
        ServerFrame::Heartbeat { .. } => "Heartbeat",
    };
    ClientError::Protocol(format!("expected {wanted}, got {name}"))
}

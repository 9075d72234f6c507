//! The stream conversation's steps that do not depend on how bytes move: checking `Hello`, the
//! `Welcome`, `Subscribe`, the resume-or-snapshot opening, heartbeats, and how a session's end
//! is counted. Shared by both drivers: quinn's task per connection (`session.rs`) and the
//! quinn-proto loop (`proto/`), so both speak exactly the same protocol.

use std::sync::atomic::Ordering;
use std::time::Duration;

use flashsale_protocol::stream::{
    encode_frame, ClientFrame, ErrorCode, ResumePoint, ServerFrame, Subscription,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SNAPSHOT_CHUNK,
};

use super::hub::unix_micros;
use super::server::ServerStats;
use super::session::Shared;

/// History entries a connection scans per hub read (bounds lock hold time and batch size).
pub(crate) const MAX_SCAN: usize = 1024;

/// Largest frame accepted before the client authenticated (a `Hello` with a maximal token is
/// ~1.1 KiB), so unauthenticated peers cannot make the server buffer much.
pub(crate) const MAX_HELLO_LEN: usize = 8 << 10;

/// How long the server tries to deliver an `Error` frame before closing anyway.
pub(crate) const ERROR_FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a session ended.
#[derive(Debug)]
pub(crate) struct End {
    /// The close code (and `Error` frame code).
    pub(crate) code: ErrorCode,
    /// The close reason.
    pub(crate) message: String,
    /// Whether the peer can still be told (false when the connection is already gone).
    pub(crate) tell_peer: bool,
}

impl End {
    /// An end the peer is told of.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> End {
        End {
            code,
            message: message.into(),
            tell_peer: true,
        }
    }

    /// An end because the connection or its stream is already gone.
    pub(crate) fn gone(message: impl Into<String>) -> End {
        End {
            code: ErrorCode::Normal,
            message: message.into(),
            tell_peer: false,
        }
    }

    /// The close reason as sent (at most 512 bytes).
    pub(crate) fn reason_bytes(&self) -> Vec<u8> {
        let mut reason = self.message.clone().into_bytes();
        reason.truncate(512);
        reason
    }
}

/// Encodes one server frame.
pub(crate) fn encode(frame: &ServerFrame) -> Result<Vec<u8>, End> {
    let mut out = Vec::new();
    encode_frame(frame, flashsale_protocol::stream::MAX_FRAME_LEN, &mut out)
        .map_err(|e| End::new(ErrorCode::Internal, format!("cannot encode a frame: {e}")))?;
    Ok(out)
}

/// The name of a client frame, for error messages.
pub(crate) fn frame_name(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Hello { .. } => "Hello",
        ClientFrame::Subscribe { .. } => "Subscribe",
    }
}

/// What an accepted `Hello` settles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Greeting {
    /// The protocol version both sides speak.
    pub(crate) version: u16,
    /// Where the client asks to resume, if anywhere.
    pub(crate) resume_from: Option<ResumePoint>,
}

/// Checks the first client frame: a `Hello` of a supported version with a known token, while
/// this node serves. The caller then raises its decoder's frame limit to the configured one.
pub(crate) fn accept_hello(frame: ClientFrame, shared: &Shared) -> Result<Greeting, End> {
    match frame {
        ClientFrame::Hello {
            version,
            token,
            resume_from,
        } => {
            if version < MIN_PROTOCOL_VERSION {
                return Err(End::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "version {version} is not supported (server speaks {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION})"
                    ),
                ));
            }
            if shared.tokens.role_of(&token).is_none() {
                return Err(End::new(ErrorCode::Unauthorized, "unknown token"));
            }
            if let Some(refusal) = shared.config.leader_gate.serving().refusal() {
                return Err(End::new(ErrorCode::NotLeader, refusal));
            }
            Ok(Greeting {
                version: version.min(PROTOCOL_VERSION),
                resume_from,
            })
        }
        other => Err(End::new(
            ErrorCode::ProtocolViolation,
            format!("expected Hello, got {}", frame_name(&other)),
        )),
    }
}

/// The server's answer to an accepted `Hello`.
pub(crate) fn welcome(shared: &Shared, greeting: &Greeting) -> ServerFrame {
    let heartbeat_ms = u32::try_from(shared.config.heartbeat.as_millis()).unwrap_or(u32::MAX);
    ServerFrame::Welcome {
        version: greeting.version,
        epoch: shared.hub.epoch(),
        head_seq: shared.hub.head_seq(),
        heartbeat_ms,
    }
}

/// Checks the second client frame: a `Subscribe`.
pub(crate) fn accept_subscribe(frame: ClientFrame) -> Result<Subscription, End> {
    match frame {
        ClientFrame::Subscribe { subscription } => Ok(subscription),
        other => Err(End::new(
            ErrorCode::ProtocolViolation,
            format!("expected Subscribe, got {}", frame_name(&other)),
        )),
    }
}

/// How a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpeningKind {
    /// From the client's resume point, replaying the history.
    Resumed,
    /// With a snapshot of the subscribed SKUs.
    Snapshot,
}

/// The frames that start a subscription and where updates continue from.
#[derive(Debug)]
pub(crate) struct Opening {
    /// `Resumed`, or the snapshot in chunks (at least one, the last marked).
    pub(crate) frames: Vec<ServerFrame>,
    /// The last sequence number the client has after these frames.
    pub(crate) cursor: u64,
    /// Which start it is.
    pub(crate) kind: OpeningKind,
}

impl Opening {
    /// Whether the client replays history (not served coalesced while it catches up).
    pub(crate) fn replaying(&self) -> bool {
        self.kind == OpeningKind::Resumed
    }

    /// Counts the opening once its frames are written.
    pub(crate) fn count(&self, stats: &ServerStats) {
        match self.kind {
            OpeningKind::Resumed => stats.resumes.fetch_add(1, Ordering::Relaxed),
            OpeningKind::Snapshot => stats.snapshots_sent.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Resume from the client's point if this run still holds it, else a snapshot.
pub(crate) fn opening(
    shared: &Shared,
    subscription: &Subscription,
    resume_from: Option<ResumePoint>,
) -> Opening {
    let hub = &shared.hub;
    let resumable = resume_from
        .filter(|rp| rp.epoch == hub.epoch() && hub.can_resume_from(rp.seq))
        .map(|rp| rp.seq);
    if let Some(seq) = resumable {
        return Opening {
            frames: vec![ServerFrame::Resumed { seq }],
            cursor: seq,
            kind: OpeningKind::Resumed,
        };
    }
    let snap = hub.snapshot(subscription);
    let mut frames = Vec::new();
    let mut parts = snap.entries.chunks(SNAPSHOT_CHUNK).peekable();
    if parts.peek().is_none() {
        frames.push(ServerFrame::Snapshot {
            seq: snap.seq,
            levels: Vec::new(),
            last: true,
        });
    }
    while let Some(part) = parts.next() {
        frames.push(ServerFrame::Snapshot {
            seq: snap.seq,
            levels: part.iter().map(|e| e.level()).collect(),
            last: parts.peek().is_none(),
        });
    }
    Opening {
        frames,
        cursor: snap.seq,
        kind: OpeningKind::Snapshot,
    }
}

/// An error for a client frame after `Subscribe` (the client sends nothing but its FIN).
pub(crate) fn unexpected_after_subscribe(frame: &ClientFrame) -> End {
    End::new(
        ErrorCode::ProtocolViolation,
        format!("unexpected {} after Subscribe", frame_name(frame)),
    )
}

/// A heartbeat at position `cursor`, stamped now.
pub(crate) fn heartbeat_frame(cursor: u64) -> ServerFrame {
    ServerFrame::Heartbeat {
        seq: cursor,
        server_time_us: unix_micros(),
    }
}

/// Counts a session's end by its code (protocol errors, refused tokens).
pub(crate) fn count_end(stats: &ServerStats, code: ErrorCode) {
    match code {
        ErrorCode::MalformedFrame | ErrorCode::FrameTooLarge | ErrorCode::ProtocolViolation => {
            stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        }
        ErrorCode::Unauthorized => {
            stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

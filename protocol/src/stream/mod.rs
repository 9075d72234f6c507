//! The QUIC stock stream wire protocol: frames, error codes and a sans-IO codec.
//!
//! A connection carries one bidirectional QUIC stream opened by the client. Each direction is a
//! sequence of frames: a `u32` little-endian length followed by that many bytes of an rkyv
//! archive, validated on decode. The conversation is:
//!
//! 1. client → [`ClientFrame::Hello`] (protocol version, token, optional resume point);
//!    server → [`ServerFrame::Welcome`] or [`ServerFrame::Error`] and a connection close.
//! 2. client → [`ClientFrame::Subscribe`] (SKU list or all);
//!    server → one or more [`ServerFrame::Snapshot`] parts, or [`ServerFrame::Resumed`] when the
//!    resume point is still in the server's history.
//! 3. server → [`ServerFrame::Update`] in strictly increasing `seq` order, and
//!    [`ServerFrame::Heartbeat`] when idle.
//!
//! The wire layout is versioned by the ALPN ([`ALPN`]); [`PROTOCOL_VERSION`] in `Hello` names the
//! revision of the conversation within that layout.

mod code;
mod codec;
mod frame;

pub use code::ErrorCode;
pub use codec::{encode_frame, EncodeError, FrameDecoder, FrameError, WireFrame, LEN_PREFIX};
pub use frame::{
    ClientFrame, LevelEntry, ResumePoint, ServerFrame, Subscription, UpdateFrame,
    MAX_SUBSCRIBED_SKUS, MAX_TOKEN_LEN,
};

/// The ALPN protocol id of the stock stream; it versions the wire layout.
pub const ALPN: &[u8] = b"flashsale/1";

/// The conversation revision this build speaks (sent in `Hello`, echoed in `Welcome`).
///
/// Revision 2 (ADR 0033) added `log_seq` to [`UpdateFrame`] and [`LevelEntry`]: the position in
/// the group's log, comparable across the nodes of a group. A server refuses older revisions with
/// [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest conversation revision a server of this build accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// Largest frame body accepted by default, in bytes (1 MiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Most levels the server puts in one `Snapshot` part, so a part stays far below
/// [`MAX_FRAME_LEN`] (a level is at most ~130 bytes archived).
pub const SNAPSHOT_CHUNK: usize = 2048;

//! Error and close codes, shared by `Error` frames and QUIC application close codes.

/// Why a server (or client) ended a connection. The numeric value is used both in
/// [`ServerFrame::Error`](super::ServerFrame::Error) and as the QUIC application close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// Orderly close (client done, or nothing wrong).
    Normal = 0,
    /// A frame was well-formed but not allowed here (e.g. `Subscribe` before `Hello`).
    ProtocolViolation = 1,
    /// A frame failed validation (bad archive, bad SKU id, ...).
    MalformedFrame = 2,
    /// A frame's length prefix exceeds the maximum frame length.
    FrameTooLarge = 3,
    /// The token in `Hello` is not known to the server.
    Unauthorized = 4,
    /// The client's protocol version is not supported.
    UnsupportedVersion = 5,
    /// The server is shutting down; reconnect later (and resume).
    ServerShutdown = 6,
    /// The client did not complete the handshake in time.
    HandshakeTimeout = 7,
    /// The server failed internally; reconnect later.
    Internal = 8,
    /// The server has too many connections; reconnect later.
    Busy = 9,
    /// This node of a high-availability group is a standby: it does not serve the stream. The
    /// message names the leader's URL when known; connect to another node of the group.
    NotLeader = 10,
}

impl ErrorCode {
    /// Every code, for iteration in tests and docs.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Normal,
        ErrorCode::ProtocolViolation,
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::UnsupportedVersion,
        ErrorCode::ServerShutdown,
        ErrorCode::HandshakeTimeout,
        ErrorCode::Internal,
        ErrorCode::Busy,
        ErrorCode::NotLeader,
    ];

    /// The numeric code on the wire.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a number, if this build knows it.
    pub fn from_u32(code: u32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_u32() == code)
    }

    /// Whether a client should reconnect (and resume) after this code, rather than give up.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Normal
                | ErrorCode::ServerShutdown
                | ErrorCode::Internal
                | ErrorCode::Busy
                | ErrorCode::NotLeader
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            ErrorCode::Normal => "normal",
            ErrorCode::ProtocolViolation => "protocol violation",
            ErrorCode::MalformedFrame => "malformed frame",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::ServerShutdown => "server shutdown",
            ErrorCode::HandshakeTimeout => "handshake timeout",
            ErrorCode::Internal => "internal error",
            ErrorCode::Busy => "server busy",
            ErrorCode::NotLeader => "not the leader",
        };
        write!(f, "{name} ({})", self.as_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(ErrorCode::from_u32(c.as_u32()), Some(*c));
            assert_eq!(c.as_u32(), i as u32);
        }
        assert_eq!(ErrorCode::from_u32(1000), None);
        assert!(ErrorCode::ServerShutdown.is_retryable());
        assert!(!ErrorCode::Unauthorized.is_retryable());
    }
}

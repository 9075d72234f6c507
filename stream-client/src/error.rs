//! Client errors, and which of them a reconnect cannot fix.

use flashsale_protocol::stream::ErrorCode;

/// Why a stream client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The settings cannot work (bad fingerprint, unreadable CA file, bad address...).
    #[error("invalid client settings: {0}")]
    Config(String),
    /// The server address did not resolve.
    #[error("cannot resolve {server}: {reason}")]
    Resolve {
        /// The address as given.
        server: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed (certificate not trusted, fingerprint mismatch, ALPN...).
    #[error("TLS handshake with the server failed: {0}")]
    Tls(String),
    /// The connection could not be made or was lost.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The server ended the conversation with an error code.
    #[error("server closed the stream: {code_name}: {message}")]
    Closed {
        /// The code, if this build knows it.
        code: Option<ErrorCode>,
        /// The numeric code.
        raw_code: u64,
        /// Printable name of the code with its number, e.g. `server shutdown (6)`.
        code_name: String,
        /// The server's message.
        message: String,
    },
    /// The server answered with a stateless reset: it no longer knows this connection, so it
    /// restarted (or lost its state). Reconnecting right away usually succeeds.
    #[error("the server no longer knows this connection (stateless reset): it restarted")]
    Reset,
    /// The server broke the protocol (bad frame, wrong order, sequence going back).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl ClientError {
    /// A close with `raw` code and `message`.
    pub fn closed(raw: u64, message: impl Into<String>) -> ClientError {
        let code = u32::try_from(raw).ok().and_then(ErrorCode::from_u32);
        ClientError::Closed {
            code,
            raw_code: raw,
            // `ErrorCode`'s Display already ends with the number: `server shutdown (6)`.
            code_name: code.map_or_else(|| format!("unknown code ({raw})"), |c| c.to_string()),
            message: message.into(),
        }
    }

    /// Whether reconnecting cannot help (bad token, unsupported version, untrusted server,
    /// bad settings): a [`crate::Subscriber`] returns these instead of retrying.
    pub fn is_fatal(&self) -> bool {
        match self {
            ClientError::Config(_) | ClientError::Tls(_) => true,
            ClientError::Closed { code, .. } => matches!(
                code,
                Some(ErrorCode::Unauthorized) | Some(ErrorCode::UnsupportedVersion)
            ),
            _ => false,
        }
    }
}

impl From<quinn::ConnectionError> for ClientError {
    fn from(e: quinn::ConnectionError) -> ClientError {
        use quinn::ConnectionError as E;
        match e {
            E::ApplicationClosed(close) => ClientError::closed(
                close.error_code.into_inner(),
                String::from_utf8_lossy(&close.reason).into_owned(),
            ),
            E::TransportError(t) if is_crypto(u64::from(t.code)) => ClientError::Tls(t.to_string()),
            E::ConnectionClosed(c) if is_crypto(u64::from(c.error_code)) => {
                ClientError::Tls(c.to_string())
            }
            E::Reset => ClientError::Reset,
            other => ClientError::Connection(other.to_string()),
        }
    }
}

/// TLS alerts map to QUIC transport codes 0x100..=0x1ff.
fn is_crypto(code: u64) -> bool {
    (0x100..=0x1ff).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_names_its_code_once() {
        let e = ClientError::closed(6, "server shutting down");
        assert_eq!(
            e.to_string(),
            "server closed the stream: server shutdown (6): server shutting down"
        );
        let unknown = ClientError::closed(77, "bye");
        assert_eq!(
            unknown.to_string(),
            "server closed the stream: unknown code (77): bye"
        );
    }
}

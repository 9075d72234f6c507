//! Which machinery drives the stream's QUIC connections (`--stream-driver`).

/// The stream server's QUIC driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StreamDriver {
    /// quinn: an endpoint driver task plus one task per connection and one per session (the
    /// default).
    #[default]
    Quinn,
    /// Experimental: one loop drives `quinn-proto` directly — every connection in one table,
    /// one timer structure, batched UDP receives, no task per connection (ADR 0046).
    Proto,
}

impl StreamDriver {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamDriver::Quinn => "quinn",
            StreamDriver::Proto => "proto",
        }
    }
}

impl std::fmt::Display for StreamDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

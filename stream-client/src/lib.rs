//! Client for the flashsale QUIC stock stream (contract: "QUIC stock stream").
//!
//! - [`Connector`]: one UDP endpoint and a TLS trust setting ([`Trust`]: pinned SHA-256
//!   fingerprint, CA file, or insecure), shareable by many subscriptions.
//! - [`Session`]: one connection: handshake, snapshot or resume, then frames.
//! - [`Subscriber`]: a subscription that survives disconnects: it reconnects with backoff and
//!   resumes from the last sequence number it applied, yielding [`StreamEvent`]s. Given every
//!   node of a high-availability group ([`ClientOptions::other_servers`]), it follows the
//!   leader, and keeps per SKU only counts newer in the group's log than those it delivered
//!   (`log_seq`), so a takeover shows neither a gap nor a repeat (ADR 0033).
//!
//! ```no_run
//! # async fn demo() -> Result<(), flashsale_stream_client::ClientError> {
//! use flashsale_stream_client::{ClientOptions, StreamEvent, Subscriber, Trust};
//! let trust = Trust::from_fingerprint_hex("ab12...")?;
//! let options = ClientOptions::new("127.0.0.1:8443", "partner-token", trust);
//! let mut sub = Subscriber::connect(options)?;
//! loop {
//!     match sub.next_event().await? {
//!         StreamEvent::Update(u) => println!("{} available={}", u.sku, u.available),
//!         _ => {}
//!     }
//! }
//! # }
//! ```

mod connector;
mod error;
pub mod priority;
mod session;
mod subscriber;
mod trust;

use std::time::{SystemTime, UNIX_EPOCH};

pub use connector::{ClientOptions, Connector, MAX_SERVERS};
pub use error::ClientError;
pub use flashsale_protocol::stream::{
    ErrorCode, LevelEntry, ResumePoint, ServerFrame, Subscription, UpdateFrame,
};
pub use session::{Session, SessionStart};
pub use subscriber::{StreamEvent, Subscriber};
pub use trust::Trust;

/// The current Unix time in microseconds, on the same scale as `UpdateFrame::server_time_us`
/// (delivery delay = `unix_micros() - update.server_time_us`, on one host or synced clocks).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

//! The flashsale gateway: wires the engine, the log, the HTTP API and the QUIC stock stream.
//!
//! - [`auth`]: bearer tokens and their roles (shared by HTTP and the stream).
//! - [`http`]: the HTTP checkout API.
//! - [`serve`]: `flashsale serve`: flags and process wiring.
//! - [`stream`]: the QUIC stock stream.

pub mod auth;
pub mod http;
pub mod serve;
pub mod stream;
pub mod watch;

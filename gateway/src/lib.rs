//! The flashsale gateway: wires the engine, the log, the HTTP API and the QUIC stock stream.
//!
//! - [`auth`]: bearer tokens and their roles (shared by HTTP and the stream).
//! - [`cli`]: the operator commands (`sku`, `reservation`, `order`, `credentials`).
//! - [`ha`]: high availability on the Postgres log (`serve --ha`).
//! - [`dashboard`]: the live operator page at `/dashboard` (assets, session, event feed).
//! - [`http`]: the HTTP checkout API.
//! - [`identity`]: generated tokens, certificate and stateless-reset key kept across restarts.
//! - [`serve`]: `flashsale serve`: flags and process wiring.
//! - [`stream`]: the QUIC stock stream.
//! - [`watch`]: `flashsale watch`, the stream's command-line client.
//! - [`waiting_room`]: the waiting room in the server (room, journal, ticker).

pub mod auth;
pub mod cli;
pub mod dashboard;
pub mod ha;
pub mod http;
pub mod identity;
pub mod serve;
pub mod stream;
pub mod waiting_room;
pub mod watch;

//! The live operator dashboard at `GET /dashboard`: plain HTML, CSS and JavaScript embedded in
//! the binary ([`assets`]), signed in with the admin token for a session cookie ([`session`]),
//! and fed by server-sent events from `GET /dashboard/events` ([`feed`]), one per second
//! ([`sampler`] gathers, [`sample`] computes). The HTTP handlers are in
//! `http/app/dashboard.rs`; docs/adr/0022-operator-dashboard.md explains the choices.

pub mod assets;
pub mod feed;
pub mod sample;
pub mod sampler;
pub mod session;

pub use feed::DashboardFeed;

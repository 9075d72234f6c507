//! Events out of the committed log (the log is the outbox): webhooks signed per Standard
//! Webhooks 1.0 and a RabbitMQ sink, each with a durable delivery position per shard.
//!
//! - [`ledger`] folds each shard's log into stock levels and held reservations (for
//!   `sku.sold_out` and the order in `reservation.confirmed`);
//! - [`derive`] turns a log record into [`OutEvent`]s with stable ids (`evt_<shard>_<seq>`);
//! - [`source`] reads committed records of either log backend in bounded batches;
//! - [`worker`] delivers them per destination and shard, in log order, at least once;
//! - [`service`] holds the endpoints and answers the admin API; [`store`] keeps state durable.
//!
//! The engine never waits for any of this: a slow receiver or broker only grows the lag.
//! Design: `docs/adr/0024-events-outbox.md`; schemas: `docs/events.md`.

pub mod amqp;
pub mod backoff;
pub mod derive;
pub mod dest;
mod error;
pub mod gate;
pub mod keeper;
pub mod kind;
pub mod ledger;
pub mod metrics;
pub mod outgoing;
pub mod runtime;
pub mod service;
pub mod signature;
pub mod source;
pub mod store;
pub mod target;
pub mod webhook;
pub mod worker;

pub use amqp::{AmqpConfig, DEFAULT_EXCHANGE};
pub use backoff::RetryPolicy;
pub use error::EventsError;
pub use gate::Gate;
pub use kind::{EventFilter, EventType};
pub use outgoing::OutEvent;
pub use runtime::DeliveryRuntime;
pub use service::{CreateError, EndpointView, EventService, EventsConfig, DEFAULT_DELIVERY_NICE};
pub use signature::Secret;
pub use source::LogSource;
pub use store::{PgStore, Store};

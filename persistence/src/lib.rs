//! Write-ahead log backends for flashsale, implementing the engine's
//! [`LogBackend`](flashsale_engine::log::LogBackend):
//!
//! - [`embedded`]: segment files per shard in a data dir (the default), written through glommio
//!   with O_DIRECT and one `fdatasync` per group commit;
//! - [`postgres`]: one tokio-postgres connection per shard, one transaction per group commit;
//! - [`read_model`]: a background task that tails the durable log into Postgres tables
//!   (`orders`, `order_lines`, `sku_stock`) for other systems;
//! - [`queue_journal`]: the waiting room's records in a log of their own, on either backend.

pub mod embedded;
mod error;
pub mod frame;
pub mod postgres;
pub mod queue_journal;
pub mod read_model;

pub use embedded::{EmbeddedBackend, EmbeddedOptions};
pub use error::PersistenceError;
pub use postgres::PostgresBackend;
pub use queue_journal::{JournalError, JournalPermit, QueueJournal, Stored};
pub use read_model::{run_read_model, spawn_read_model, ReadModelConfig, ReadModelHandle};

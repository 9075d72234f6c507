//! The flashsale engine: inventory sharded by SKU across thread-per-core executors.
//!
//! - [`shard`]: a pure, deterministic state machine per shard (no I/O; clock injected).
//! - [`gate`]: the lock-free stock counter that rejects sold-out requests on the caller's thread.
//! - [`log`]: the interface to a durable write-ahead log (implemented in `flashsale-persistence`).
//! - [`runtime`]: glommio executors pinned to cores, group commit, expiry, the async [`Engine`] handle.
//!
//! The engine knows no HTTP, QUIC or SQL.

pub mod claim;
pub mod clock;
pub mod command;
pub mod gate;
pub mod limits;
pub mod log;
mod mirror;
pub mod node;
pub mod observer;
pub mod runtime;
pub mod shard;
pub mod stats;
mod sync;
pub mod view;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{CommandError, ReserveRequest};
pub use gate::StockGate;
pub use log::{LogBackend, LogError, ShardLog};
pub use observer::{StockLevel, StockObserver};
pub use runtime::{Engine, EngineConfig, StartError};
pub use stats::StatsSnapshot;
pub use view::{OrderView, ReservationStatus, ReservationView, SkuView};

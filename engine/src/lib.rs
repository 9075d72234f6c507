//! The flashsale engine: inventory sharded by SKU across thread-per-core executors.
//!
//! - [`shard`]: a pure, deterministic state machine per shard (no I/O; clock injected).
//! - [`node`]: everything one shard's executor does, sans-IO: the commit path, the coordinator
//!   of cross-shard reservations, idempotency keys in progress; plus the simulation [`node::world`].
//! - [`gate`] and [`claim`]: the lock-free stock counter that rejects sold-out requests on the
//!   caller's thread, and claims on it as guard values.
//! - `mirror`: consistent lock-free copies of each SKU's last durable counts (a seqlock).
//! - [`follower`]: a standby's copy of the shards, advanced only by applying committed
//!   records (high availability); [`Engine::start_from`] starts an engine from it.
//! - [`log`]: the interface to a durable write-ahead log (implemented in `flashsale-persistence`).
//! - [`runtime`]: the glommio shell around the nodes: executors pinned to cores, channels, the
//!   real log and timers, and the async [`Engine`] handle.
//! - [`limits`]: every bound the runtime keeps.
//!
//! The engine knows no HTTP, QUIC or SQL.

pub mod claim;
pub mod clock;
pub mod command;
pub mod follower;
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
pub use command::{CommandError, HoldLimit, ReserveRequest};
pub use follower::{FollowError, Follower};
pub use gate::StockGate;
pub use log::{LogBackend, LogError, ShardLog};
pub use observer::{StockLevel, StockObserver};
pub use runtime::{Engine, EngineConfig, StartError};
pub use shard::{ListPos, OrderQuery, ReservationQuery, MAX_LIST_LIMIT};
pub use stats::StatsSnapshot;
pub use view::{OrderView, ReservationStatus, ReservationView, SkuView};

//! Domain types and wire formats shared by the write-ahead log and the QUIC stock stream.
//!
//! This crate is pure: no I/O, no clock, no crate of ours. Everything that crosses a process
//! boundary (log records on disk or in Postgres, stream frames) is defined and validated here.

pub mod codec;
pub mod event;
pub mod ids;
pub mod limits;
pub mod payment_ref;
pub mod problem;
pub mod queue;
pub mod queue_snapshot;
pub mod stream;

pub use codec::{
    check_record, decode_record, decode_record_with, encode_record, with_record, Checked,
    CheckedArena, CheckedAt, DecodeError, RecordView, RECORD_VERSION,
};
pub use event::{
    default_max_hold_ms, Event, Line, LogRecord, ReleaseReason, RequestKey, SkuSpec,
    DEFAULT_MAX_EXTENSIONS, DEFAULT_MAX_HOLD_MS,
};
pub use ids::{
    BuyerId, IdError, IdempotencyKey, KeyOwner, OrderId, ReservationId, ScopedKey, ShardId, SkuId,
};
pub use limits::MAX_LINES;
pub use payment_ref::PaymentRef;
pub use problem::{ProblemKind, PROBLEM_TYPE_BASE};

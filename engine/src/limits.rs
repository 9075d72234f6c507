//! Every bound the engine's runtime keeps, in one place (the contract's own limits are in
//! `flashsale_protocol::limits`). A full bound refuses new work with `Busy` (503) — duplicates
//! of a key in progress with `IdempotencyInProgress` (409) — and never grows.

/// Most records' bytes a shard buffers for its next commit; mutating commands are refused
/// with `Busy` while the buffer is this full (the log is slower than the offered load).
pub const MAX_PENDING_BYTES: usize = 16 << 20;

/// Most replies a shard holds waiting for durability.
pub const MAX_COMMIT_WAITERS: usize = 65_536;

/// How long a cross-shard reservation may be coordinated before it is given up, in ms (only
/// a shard that stops answering reaches it).
pub const COORDINATION_DEADLINE_MS: u64 = 10_000;

/// Most cross-shard reservations one home shard coordinates at once.
pub const MAX_COORDINATIONS: usize = 8_192;

/// Most restock idempotency keys a SKU keeps (the latest ones): a retry of an older keyed
/// restock adds stock again (ADR 0015, addendum).
pub const MAX_RESTOCK_KEYS: usize = 64;

/// Most duplicates that may wait on one in-progress idempotency key; more get
/// `IdempotencyInProgress` at once.
pub const MAX_KEY_WAITERS: usize = 8;

/// How long a duplicate keyed request waits for the first one's outcome before it gets
/// `IdempotencyInProgress`, in ms.
pub const DUPLICATE_WAIT_MS: u64 = 1_000;

/// The retry hint given with `IdempotencyInProgress`, in ms.
pub const DUPLICATE_RETRY_AFTER_MS: u64 = 1_000;

/// How long a reply waits for durability while the log fails before it gets `Unavailable`,
/// in ms.
pub const UNAVAILABLE_AFTER_MS: u64 = 2_000;

/// How long after its expiry a part of a cross-shard reservation that is still held asks its
/// home shard what became of it, in ms (the home expires it first in the normal case).
pub const PART_RESOLVE_GRACE_MS: u64 = 5_000;

/// Most stale parts one shard asks about per tick.
pub const PART_RESOLVE_BATCH: usize = 256;

/// How long a home decision on a cross-shard reservation waits for its parts to acknowledge
/// before the caller hears back anyway (the decision is durable at the home), in ms.
pub const DECISION_ACK_WAIT_MS: u64 = 2_000;

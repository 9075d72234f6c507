//! Every bound and default of the waiting room, in one place. A full bound refuses new work
//! with a typed error and never grows.

/// Most queues one server keeps.
pub const MAX_QUEUES: usize = 256;

/// Most tickets (joins) one queue keeps, whatever became of them.
pub const MAX_TICKETS_PER_QUEUE: usize = 200_000;

/// Most SKUs one queue guards.
pub const MAX_QUEUE_SKUS: usize = 32;

/// Highest admission rate, buyers per second.
pub const MAX_ADMIT_PER_S: u32 = 100_000;

/// Highest `max_active`.
pub const MAX_ACTIVE: u32 = 1_000_000;

/// `max_active` when the admin leaves it out.
pub const DEFAULT_MAX_ACTIVE: u32 = 1_000;

/// Pass lifetime when the admin leaves it out, in s.
pub const DEFAULT_PASS_TTL_S: u32 = 120;

/// Longest pass lifetime, in s.
pub const MAX_PASS_TTL_S: u32 = 3_600;

/// Overbooking when the admin leaves it out: one idle pass per unclaimed unit, in percent.
pub const DEFAULT_OVERBOOKING_PCT: u32 = 100;

/// Highest overbooking, in percent (ten idle passes per unclaimed unit).
pub const MAX_OVERBOOKING_PCT: u32 = 1_000;

/// Admission credit saved while admission is blocked (by stock or `max_active`), in seconds of
/// the admission rate: a burst after a pause is at most this long.
pub const ADMIT_BURST_S: u64 = 1;

/// Most admissions one `tick` makes (the rest wait for the next tick, credit kept).
pub const MAX_ADMISSIONS_PER_TICK: usize = 4_096;

/// Shortest poll interval the server asks for, in ms.
pub const MIN_POLL_MS: u64 = 1_000;

/// Longest poll interval the server asks for, in ms.
pub const MAX_POLL_MS: u64 = 30_000;

/// Polls per second one queue's waiting tickets are asked to stay under together.
pub const POLL_BUDGET_PER_S: u64 = 5_000;

/// With [`crate::poll::PollSpread::ByPosition`], the poll interval per place in line, in ms
/// (place 10,000 → every 30 s, the longest interval).
pub const POLL_MS_PER_PLACE: u64 = 3;

/// Poll interval of a sold-out ticket while held units may still come back, in ms.
pub const SOLD_OUT_POLL_MS: u64 = 5_000;

/// Longest pass string accepted for verification, in bytes.
pub const MAX_PASS_LEN: usize = 512;

/// Most records the room buffers between two `take_records` calls (the caller drains after
/// every command; a tick adds at most `MAX_ADMISSIONS_PER_TICK` + expiries).
pub const MAX_PENDING_RECORDS: usize = 65_536;

/// Passes checked against the engine per tick after a restart (ADR 0034).
pub const MAX_PASS_CHECKS_PER_TICK: usize = 256;

/// Pages of a buyer's held reservations read per pass check (each shard examines at most
/// the engine's scan bound per page); a check that needs more is retried at the next tick.
pub const MAX_PASS_CHECK_PAGES: usize = 64;

/// How far before a pass's admission (clock skew between the room and the engine after a
/// failover) a pass check still looks for reservations made with it, in ms.
pub const PASS_CHECK_SKEW_MS: u64 = 60_000;

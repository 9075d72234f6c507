//! Counters and histograms the engine keeps for `/metrics`.

/// A point-in-time copy of the engine's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Reservations that became held (acknowledged).
    pub reservations_held: u64,
    /// Reservations confirmed into orders.
    pub reservations_confirmed: u64,
    /// Reservations cancelled or rolled back.
    pub reservations_released: u64,
    /// Reservations that expired.
    pub reservations_expired: u64,
    /// Reserve requests refused because stock ran out (gate or shard).
    pub sold_out_rejections: u64,
    /// Log commit batches written.
    pub log_batches: u64,
    /// Log records written.
    pub log_records: u64,
    /// Log batch sizes (records per commit): `(upper bound inclusive, cumulative count)` buckets.
    pub log_batch_size_buckets: Vec<(u64, u64)>,
    /// Sum of all batch sizes.
    pub log_batch_size_sum: u64,
    /// Commit latency in µs: `(upper bound inclusive, cumulative count)` buckets.
    pub commit_latency_us_buckets: Vec<(u64, u64)>,
    /// Sum of commit latencies in µs.
    pub commit_latency_us_sum: u64,
    /// True while every shard's log is writable.
    pub log_writable: bool,
}

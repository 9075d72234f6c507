//! A hook through which the stock stream learns of durable stock changes.

use flashsale_protocol::SkuId;

/// A SKU's stock counts at some point, published after the change is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The SKU.
    pub sku: SkuId,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// Where these counts stand in the SKU's shard log: the sequence number of the last record
    /// that changed the SKU (published with a commit), or the shard's position when the counts
    /// were read from a recovered or followed state (an upper bound of that record, see ADR
    /// 0032). The counts reflect every record of the shard up to it, so two levels of one SKU
    /// compare by it on every node of a group.
    pub log_seq: u64,
}

/// Receives stock changes from shard threads. Must never block: it is called on the hot path
/// (at most once per SKU per commit batch) and must coalesce or drop rather than wait.
pub trait StockObserver: Send + Sync + 'static {
    /// A SKU's stock changed (and the change is durable).
    fn stock_changed(&self, level: &StockLevel);
}

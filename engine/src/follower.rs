//! A standby's copy of the engine's state: every shard's state machine, advanced only by
//! applying records that are already committed to the log (a pure "apply a committed
//! record" path: no executors, no clock, no expiry timers, and nothing is ever written).
//!
//! A high-availability standby keeps one current by tailing the log (the persistence crate
//! reads the records, the gateway wires the two), answers reads from it (marked with its lag),
//! and at a takeover hands it to [`crate::Engine::start_from`], which then replays only the
//! log after each shard's [`Follower::position`] instead of the whole log after the snapshot.
//!
//! Records are applied with [`Shard::apply_record`], the very function recovery's replay uses,
//! so a follower at position `p` holds the state a recovery up to `p` would build.

use flashsale_protocol::{decode_record, OrderId, ReservationId, ShardId, SkuId};

use crate::command::CommandError;
use crate::observer::StockLevel;
use crate::shard::{
    assemble_order, assemble_reservation, merge_pages, shard_of, ListPos, OrderQuery, PartView,
    ReservationQuery, Shard,
};
use crate::view::{OrderView, ReservationView, SkuView};

/// Most shards a follower holds (the engine's own bound).
const MAX_SHARDS: usize = 64;

/// Why a follower could not take a record or a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The shard count is outside 1..=64.
    #[error("a follower needs 1..=64 shards, got {0}")]
    ShardCount(usize),
    /// A record or snapshot named a shard the follower does not have.
    #[error("no shard {shard} in a follower of {count} shards")]
    NoSuchShard {
        /// The shard named.
        shard: ShardId,
        /// The follower's shard count.
        count: usize,
    },
    /// A record is not the next one of its shard (records are applied in order, once).
    #[error("shard {shard}: record {got} is not the next one ({expected} expected)")]
    OutOfOrder {
        /// The shard.
        shard: ShardId,
        /// The sequence number the follower expects next.
        expected: u64,
        /// The one it was given.
        got: u64,
    },
    /// A record could not be decoded or applied (the log is corrupt or of another build).
    #[error("shard {shard}: record {seq} cannot be applied: {reason}")]
    Record {
        /// The shard.
        shard: ShardId,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A snapshot could not be restored.
    #[error("shard {shard}: snapshot at seq {seq} cannot be restored: {reason}")]
    Snapshot {
        /// The shard.
        shard: ShardId,
        /// The sequence number it claims to cover.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Every shard's state, advanced by committed records only (see the module docs).
#[derive(Debug)]
pub struct Follower {
    shards: Vec<Shard>,
}

impl Follower {
    /// An empty follower (position 0 on every shard) of `shard_count` shards.
    pub fn new(shard_count: usize) -> Result<Follower, FollowError> {
        if shard_count == 0 || shard_count > MAX_SHARDS {
            return Err(FollowError::ShardCount(shard_count));
        }
        let shards = (0..shard_count).map(|i| Shard::new(i as ShardId)).collect();
        Ok(Follower { shards })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The last record applied to `shard` (its sequence number; 0 = none).
    pub fn position(&self, shard: ShardId) -> u64 {
        self.shards.get(usize::from(shard)).map_or(0, Shard::seq)
    }

    /// The positions of every shard, summed (the log position this state stands at).
    pub fn applied(&self) -> u64 {
        self.shards.iter().map(Shard::seq).sum()
    }

    fn shard_mut(&mut self, shard: ShardId) -> Result<&mut Shard, FollowError> {
        let count = self.shards.len();
        self.shards
            .get_mut(usize::from(shard))
            .ok_or(FollowError::NoSuchShard { shard, count })
    }

    /// Replaces `shard`'s state by a stored snapshot covering every record up to `seq` (when
    /// the log before the follower's next record was compacted away). A snapshot older than
    /// the follower's position is ignored: it would move the state back.
    pub fn restore(&mut self, shard: ShardId, seq: u64, bytes: &[u8]) -> Result<(), FollowError> {
        let current = self.shard_mut(shard)?;
        if seq <= current.seq() {
            return Ok(());
        }
        let bad = |reason: String| FollowError::Snapshot { shard, seq, reason };
        let restored = Shard::restore(bytes).map_err(|e| bad(e.to_string()))?;
        if restored.seq() != seq || restored.id() != shard {
            return Err(bad(format!(
                "it holds seq {} of shard {}",
                restored.seq(),
                restored.id()
            )));
        }
        *current = restored;
        Ok(())
    }

    /// Applies one committed record of `shard`: it must be the next one (`position + 1`).
    /// On error the state is unchanged.
    pub fn apply(&mut self, shard: ShardId, seq: u64, record: &[u8]) -> Result<(), FollowError> {
        let count = self.shards.len();
        let target = self.shard_mut(shard)?;
        let expected = target.seq() + 1;
        if seq != expected {
            return Err(FollowError::OutOfOrder {
                shard,
                expected,
                got: seq,
            });
        }
        let bad = |reason: String| FollowError::Record { shard, seq, reason };
        let record = decode_record(record).map_err(|e| bad(e.to_string()))?;
        if record.seq != seq {
            return Err(bad(format!("the record says seq {}", record.seq)));
        }
        target
            .apply_record(record)
            .map_err(|e| bad(e.to_string()))?;
        debug_assert_eq!(target.seq(), seq);
        debug_assert!(usize::from(shard) < count);
        Ok(())
    }

    /// Takes the whole state out, leaving an empty follower of the same shard count (for a
    /// takeover: the state goes to [`crate::Engine::start_from`]).
    pub fn take(&mut self) -> Follower {
        let empty = (0..self.shards.len())
            .map(|i| Shard::new(i as ShardId))
            .collect();
        Follower {
            shards: std::mem::replace(&mut self.shards, empty),
        }
    }

    /// The shards, for the engine to run (each keeps its position).
    pub(crate) fn into_shards(self) -> Vec<Shard> {
        self.shards
    }

    fn shard(&self, s: usize) -> Option<&Shard> {
        self.shards.get(s)
    }

    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Result<SkuView, CommandError> {
        let s = usize::from(shard_of(sku, self.shards.len()));
        self.shard(s)
            .and_then(|sh| sh.sku(sku))
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit` (as [`crate::Engine::list_skus`]).
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let mut all: Vec<SkuView> = self
            .shards
            .iter()
            .flat_map(|s| s.list_skus(after, limit))
            .collect();
        all.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        all.truncate(limit);
        all
    }

    /// Every SKU's stock counts, ordered by SKU id.
    pub fn stock_levels(&self) -> Vec<StockLevel> {
        let mut all: Vec<StockLevel> = self.shards.iter().flat_map(Shard::stock_levels).collect();
        all.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        all
    }

    /// The parts of reservation `id` on every shard of its group except `home`.
    fn parts_of(&self, id: ReservationId, home: ShardId, group_mask: u64) -> Vec<PartView> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != usize::from(home) && group_mask & (1u64 << s) != 0)
            .filter_map(|(_, sh)| sh.reservation(id))
            .collect()
    }

    fn assemble(&self, home: PartView) -> ReservationView {
        match home.group {
            None => home.view,
            Some(g) => {
                let parts = self.parts_of(home.view.id, home.view.id.shard(), g.shards_mask);
                assemble_reservation(home, &parts)
            }
        }
    }

    /// A reservation's view.
    pub fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self
            .shard(usize::from(id.shard()))
            .and_then(|s| s.reservation(id))
            .ok_or(CommandError::ReservationNotFound(id))?;
        Ok(self.assemble(home))
    }

    /// An order's view.
    pub fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let (view, group) = self
            .shard(usize::from(id.shard()))
            .and_then(|s| s.order(id))
            .ok_or_else(|| CommandError::OrderNotFound(id.to_string()))?;
        let parts = match group {
            Some(g) => self.parts_of(view.reservation, id.shard(), g.shards_mask),
            None => Vec::new(),
        };
        Ok(assemble_order(view, group, &parts))
    }

    /// A page of a buyer's reservations (as [`crate::Engine::list_reservations`]).
    pub fn list_reservations(
        &self,
        query: &ReservationQuery,
    ) -> (Vec<ReservationView>, Option<ListPos>) {
        let pages = self
            .shards
            .iter()
            .map(|s| s.buyer_reservations(query))
            .collect();
        let (items, next) = merge_pages(pages, query.limit);
        let out = items
            .into_iter()
            .map(|(_, part)| self.assemble(part))
            .filter(|view| {
                query
                    .sku
                    .as_ref()
                    .is_none_or(|sku| view.lines.iter().any(|l| &l.sku == sku))
            })
            .collect();
        (out, next)
    }

    /// A page of a buyer's orders (as [`crate::Engine::list_orders`]).
    pub fn list_orders(&self, query: &OrderQuery) -> (Vec<OrderView>, Option<ListPos>) {
        let pages = self.shards.iter().map(|s| s.buyer_orders(query)).collect();
        let (items, next) = merge_pages(pages, query.limit);
        let out = items
            .into_iter()
            .map(|(_, (view, group))| {
                let parts = match group {
                    Some(g) => self.parts_of(view.reservation, view.id.shard(), g.shards_mask),
                    None => Vec::new(),
                };
                assemble_order(view, group, &parts)
            })
            .collect();
        (out, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::fixtures::{reserve_cmd, sku_spec};
    use flashsale_protocol::{encode_record, LogRecord, SkuSpec};

    fn spec(stock: u64) -> SkuSpec {
        sku_spec("tee", stock)
    }

    /// A leader shard's records: a SKU of 5, two reservations, one confirmed.
    fn leader_records() -> (Shard, Vec<Vec<u8>>, ReservationId) {
        let mut leader = Shard::new(0);
        let mut log: Vec<LogRecord> = Vec::new();
        leader.upsert_sku(0, spec(5), &mut log).unwrap();
        let mut ids = Vec::new();
        for qty in [1, 2] {
            let cmd = reserve_cmd("b", "tee", qty);
            ids.push(leader.reserve(1, cmd, &mut log).unwrap().id);
        }
        leader.confirm(2, ids[0], "p", &mut log).unwrap();
        let bytes = log
            .iter()
            .map(|r| {
                let mut out = Vec::new();
                encode_record(r, &mut out).unwrap();
                out
            })
            .collect();
        (leader, bytes, ids[1])
    }

    #[test]
    fn committed_records_apply_in_order_and_reach_the_leaders_state() {
        let (leader, records, _) = leader_records();
        let mut f = Follower::new(1).unwrap();
        assert!(matches!(
            f.apply(0, 2, &records[1]),
            Err(FollowError::OutOfOrder {
                expected: 1,
                got: 2,
                ..
            })
        ));
        for (i, r) in records.iter().enumerate() {
            f.apply(0, i as u64 + 1, r).unwrap();
        }
        assert!(matches!(
            f.apply(0, 1, &records[0]),
            Err(FollowError::OutOfOrder { .. })
        ));
        assert_eq!(f.position(0), leader.seq());
        assert_eq!(f.applied(), leader.seq());
        let taken = f.take();
        assert_eq!(
            (f.applied(), f.shard_count()),
            (0, 1),
            "an empty one stays behind"
        );
        let into = taken.into_shards();
        assert_eq!(into[0].state_hash(), leader.state_hash());
    }

    #[test]
    fn reads_answer_from_the_followed_state() {
        let (leader, records, held) = leader_records();
        let mut f = Follower::new(1).unwrap();
        let sku = SkuId::new("tee").unwrap();
        for (i, r) in records.iter().enumerate() {
            f.apply(0, i as u64 + 1, r).unwrap();
        }
        let view = f.sku(&sku).unwrap();
        assert_eq!((view.available, view.reserved, view.sold), (2, 2, 1));
        assert_eq!(f.list_skus(None, 10).len(), 1);
        assert_eq!(f.stock_levels().len(), 1);
        let r = f.reservation(held).unwrap();
        assert_eq!(r.lines[0].qty, 2);
        assert_eq!(leader.reservation(held).map(|p| p.view), Some(r));
        assert!(matches!(
            f.apply(5, 1, &records[0]),
            Err(FollowError::NoSuchShard { shard: 5, .. })
        ));
        assert!(matches!(Follower::new(0), Err(FollowError::ShardCount(0))));
    }

    #[test]
    fn a_snapshot_moves_a_shard_forward_never_back() {
        let (leader, records, _) = leader_records();
        let mut f = Follower::new(1).unwrap();
        f.restore(0, leader.seq(), &leader.snapshot()).unwrap();
        assert_eq!(f.position(0), leader.seq());
        // An older snapshot is ignored; a lying one is refused.
        f.restore(0, 1, &Shard::new(0).snapshot()).unwrap();
        assert_eq!(f.position(0), leader.seq());
        assert!(f.restore(0, leader.seq() + 5, &leader.snapshot()).is_err());
        assert_eq!(records.len() as u64, leader.seq());
    }
}

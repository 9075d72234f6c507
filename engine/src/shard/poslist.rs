//! [`PosList`]: an ordered set of list positions tuned for the per-buyer index, where nearly
//! every new position is the greatest so far (a shard's clock and ids only move forward).
//!
//! Positions in order go to a sorted ring (`run`): appending is O(1), with no tree to walk
//! (a `BTreeSet` insert was most of the reserve+confirm hot path, ADR 0029). The rare
//! position that is not the greatest (a clock step back, a snapshot restored out of time
//! order) goes to a tree (`stray`), so no operation is worse than O(log n). Removing from the
//! ring pops its front (retention forgets the oldest first) or leaves a tombstone, and the
//! ring is compacted once tombstones are half of it (amortized O(1)).

use std::collections::{BTreeSet, VecDeque};

use super::buyers::ListPos;
use super::{fast_map, FastMap};

/// An ordered set of [`ListPos`] (see the module doc).
#[derive(Debug)]
pub(super) struct PosList {
    /// Positions appended in increasing order (tombstoned ones included).
    run: VecDeque<ListPos>,
    /// Positions of `run` removed but not yet compacted away.
    dead: FastMap<ListPos, ()>,
    /// Positions that arrived out of order.
    stray: BTreeSet<ListPos>,
}

impl Default for PosList {
    fn default() -> Self {
        PosList {
            run: VecDeque::new(),
            dead: fast_map(),
            stray: BTreeSet::new(),
        }
    }
}

impl PosList {
    /// Number of positions held.
    pub(super) fn len(&self) -> usize {
        self.run.len() - self.dead.len() + self.stray.len()
    }

    /// True when no position is held.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring holds `pos` (alive).
    fn in_run(&self, pos: ListPos) -> bool {
        self.run.binary_search(&pos).is_ok() && !self.dead.contains_key(&pos)
    }

    /// Whether `pos` is held.
    pub(super) fn contains(&self, pos: ListPos) -> bool {
        self.stray.contains(&pos) || self.in_run(pos)
    }

    /// Adds `pos`; false if it was already held. The common case (a position after every
    /// other, no stray one) is an inlined append; the rest is [`PosList::insert_slow`].
    #[inline]
    pub(super) fn insert(&mut self, pos: ListPos) -> bool {
        if self.stray.is_empty() && self.run.back().is_none_or(|last| pos > *last) {
            self.run.push_back(pos);
            return true;
        }
        self.insert_slow(pos)
    }

    /// [`PosList::insert`] when a stray position exists or `pos` is not the greatest.
    #[cold]
    #[inline(never)]
    fn insert_slow(&mut self, pos: ListPos) -> bool {
        match self.run.back() {
            None => {
                if self.stray.contains(&pos) {
                    return false;
                }
                self.run.push_back(pos);
                true
            }
            Some(last) if pos > *last => {
                if self.stray.contains(&pos) {
                    return false;
                }
                self.run.push_back(pos);
                true
            }
            Some(_) => {
                if self.run.binary_search(&pos).is_ok() {
                    // In the ring: alive (already held) or a tombstone brought back.
                    return self.dead.remove(&pos).is_some();
                }
                self.stray.insert(pos)
            }
        }
    }

    /// Removes `pos`; false if it was not held.
    pub(super) fn remove(&mut self, pos: ListPos) -> bool {
        if self.stray.remove(&pos) {
            return true;
        }
        if !self.in_run(pos) {
            return false;
        }
        if self.run.front() == Some(&pos) {
            self.run.pop_front();
            self.pop_dead_front();
        } else if self.run.back() == Some(&pos) {
            self.run.pop_back();
            while let Some(last) = self.run.back().copied() {
                if self.dead.remove(&last).is_none() {
                    break;
                }
                self.run.pop_back();
            }
        } else {
            self.dead.insert(pos, ());
            if self.dead.len() * 2 > self.run.len() {
                let dead = std::mem::replace(&mut self.dead, fast_map());
                self.run.retain(|p| !dead.contains_key(p));
            }
        }
        debug_assert!(self.dead.len() <= self.run.len());
        true
    }

    /// Drops tombstones at the front of the ring.
    fn pop_dead_front(&mut self) {
        while let Some(first) = self.run.front().copied() {
            if self.dead.remove(&first).is_none() {
                break;
            }
            self.run.pop_front();
        }
    }

    /// The positions strictly before `before` (all when `None`), greatest first.
    pub(super) fn newest_first(
        &self,
        before: Option<ListPos>,
    ) -> impl Iterator<Item = ListPos> + '_ {
        let end = match before {
            Some(b) => self.run.partition_point(|p| *p < b),
            None => self.run.len(),
        };
        let run = self
            .run
            .range(..end)
            .rev()
            .copied()
            .filter(|p| !self.dead.contains_key(p))
            .peekable();
        let stray = match before {
            Some(b) => self.stray.range(..b),
            None => self.stray.range(..),
        }
        .rev()
        .copied()
        .peekable();
        MergeDesc { a: run, b: stray }
    }
}

/// Merges two descending iterators into one descending iterator.
struct MergeDesc<A: Iterator<Item = ListPos>, B: Iterator<Item = ListPos>> {
    /// One side.
    a: std::iter::Peekable<A>,
    /// The other side.
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = ListPos>, B: Iterator<Item = ListPos>> Iterator for MergeDesc<A, B> {
    type Item = ListPos;

    fn next(&mut self) -> Option<ListPos> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x >= y => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use flashsale_protocol::ReservationId;

    use super::*;

    /// A small deterministic generator (xorshift), so the model test needs no dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Random inserts (mostly in order, some out of order and repeated), removals (front,
    /// back, middle, absent) and range queries agree with a `BTreeSet` model.
    #[test]
    fn agrees_with_a_btreeset_model() {
        for seed in 1..=20u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut list = PosList::default();
            let mut model = BTreeSet::new();
            let mut clock = 0u64;
            let mut id = 0u64;
            for step in 0..4_000 {
                let r = next(&mut rng) % 100;
                if r < 55 {
                    // Usually forward; sometimes a step back or a repeat of a known position.
                    let pos = if r < 45 {
                        clock += next(&mut rng) % 3;
                        id += 1;
                        (clock, ReservationId(id))
                    } else if r < 50 {
                        (
                            clock.saturating_sub(next(&mut rng) % 10),
                            ReservationId(next(&mut rng) % (id + 1)),
                        )
                    } else {
                        match model
                            .iter()
                            .nth((next(&mut rng) as usize) % model.len().max(1))
                        {
                            Some(p) => *p,
                            None => (0, ReservationId(0)),
                        }
                    };
                    assert_eq!(
                        list.insert(pos),
                        model.insert(pos),
                        "seed {seed} step {step}"
                    );
                } else if r < 95 {
                    let pos = match r % 4 {
                        0 => model.first().copied(),
                        1 => model.last().copied(),
                        2 => model
                            .iter()
                            .nth((next(&mut rng) as usize) % model.len().max(1))
                            .copied(),
                        _ => Some((clock, ReservationId(next(&mut rng) % (id + 2)))),
                    };
                    if let Some(pos) = pos {
                        assert_eq!(
                            list.remove(pos),
                            model.remove(&pos),
                            "seed {seed} step {step}"
                        );
                    }
                } else {
                    let before = next(&mut rng)
                        .is_multiple_of(2)
                        .then(|| (clock / 2, ReservationId(next(&mut rng) % (id + 1))));
                    let got: Vec<ListPos> = list.newest_first(before).collect();
                    let want: Vec<ListPos> = match before {
                        Some(b) => model.range(..b).rev().copied().collect(),
                        None => model.iter().rev().copied().collect(),
                    };
                    assert_eq!(got, want, "seed {seed} step {step}");
                }
                assert_eq!(list.len(), model.len());
                assert!(list.dead.len() <= list.run.len());
            }
            for p in &model {
                assert!(list.contains(*p));
            }
        }
    }
}

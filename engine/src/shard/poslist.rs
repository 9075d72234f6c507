//! [`PosList`]: an ordered set of list positions tuned for the per-buyer index, where nearly
//! every new position is the greatest so far (a shard's clock and ids only move forward).
//!
//! Positions in order go to a sorted run (`run[head..]`): appending is O(1), with no tree to
//! walk (a `BTreeSet` insert was most of the reserve+confirm hot path, ADR 0029). The rare
//! position that is not the greatest (a clock step back, a snapshot restored out of time
//! order) goes to a tree (`stray`), so no operation is worse than O(log n). Removing from the
//! run advances its front (retention forgets the oldest first) or leaves a tombstone, and the
//! run is compacted once tombstones are half of it (amortized O(1)).
//!
//! The run is a `Vec` with a front offset rather than a ring (`VecDeque`): an append is a
//! plain push, and a small run grows into a fresh allocation (`malloc`, copy, `free`: the
//! allocator's per-thread cache serves these sizes) instead of `realloc`, which glibc serves
//! from its bins, bypassing that cache — on replay, where each buyer's lists grow as the log
//! is read, the growth was ≈ 7 % of the instructions (ADR 0036, eighth round). A growing run
//! whose popped front is at least half of it is compacted in place instead.

use std::collections::BTreeSet;

use super::buyers::ListPos;
use super::{fast_map, FastMap};

/// Largest run (in positions) grown by a fresh allocation; larger ones `realloc`, which
/// moves large blocks without copying (`mremap`). 64 positions = 1 KiB, the top of glibc's
/// per-thread cache sizes.
const FRESH_GROWTH_MAX: usize = 64;

/// An ordered set of [`ListPos`] (see the module doc).
#[derive(Debug)]
pub(super) struct PosList {
    /// `run[head..]`: positions appended in increasing order (tombstoned ones included);
    /// `run[..head]` were popped from the front and are dropped when the run grows.
    run: Vec<ListPos>,
    /// Start of the live run.
    head: usize,
    /// Positions of the run removed but not yet compacted away.
    dead: FastMap<ListPos, ()>,
    /// Positions that arrived out of order.
    stray: BTreeSet<ListPos>,
}

impl Default for PosList {
    fn default() -> Self {
        PosList {
            run: Vec::new(),
            head: 0,
            dead: fast_map(),
            stray: BTreeSet::new(),
        }
    }
}

impl PosList {
    /// The live run, oldest first.
    #[inline]
    fn live(&self) -> &[ListPos] {
        self.run.get(self.head..).unwrap_or(&[])
    }

    /// Number of positions held.
    pub(super) fn len(&self) -> usize {
        self.live().len() - self.dead.len() + self.stray.len()
    }

    /// True when no position is held.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the run holds `pos` (alive).
    fn in_run(&self, pos: ListPos) -> bool {
        self.live().binary_search(&pos).is_ok() && !self.dead.contains_key(&pos)
    }

    /// Whether `pos` is held.
    pub(super) fn contains(&self, pos: ListPos) -> bool {
        self.stray.contains(&pos) || self.in_run(pos)
    }

    /// Adds `pos`; false if it was already held. The common case (a position after every
    /// other, no stray one) is an inlined append; the rest is [`PosList::insert_slow`].
    #[inline(always)]
    pub(super) fn insert(&mut self, pos: ListPos) -> bool {
        if self.stray.is_empty() && self.live().last().is_none_or(|last| pos > *last) {
            self.push(pos);
            return true;
        }
        self.insert_slow(pos)
    }

    /// Appends `pos` to the run (the caller checked it is the greatest).
    #[inline]
    fn push(&mut self, pos: ListPos) {
        if self.run.len() == self.run.capacity() {
            self.grow();
        }
        self.run.push(pos);
    }

    /// Makes room for one more position in a full run: compacts it in place when its popped
    /// front is at least half of it, else moves it into a fresh run of twice its length (a
    /// small run; see the module doc) or `realloc`s it (a large one).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let live = self.run.len() - self.head;
        if self.head > 0 && self.head >= live {
            self.run.drain(..self.head);
            self.head = 0;
            return;
        }
        if self.run.capacity() < FRESH_GROWTH_MAX {
            let mut fresh = Vec::with_capacity((2 * live).max(4));
            fresh.extend_from_slice(self.live());
            self.run = fresh;
            self.head = 0;
        } else {
            self.run.reserve(self.run.len());
        }
    }

    /// [`PosList::insert`] when a stray position exists or `pos` is not the greatest.
    #[cold]
    #[inline(never)]
    fn insert_slow(&mut self, pos: ListPos) -> bool {
        match self.live().last() {
            None => {
                if self.stray.contains(&pos) {
                    return false;
                }
                self.push(pos);
                true
            }
            Some(last) if pos > *last => {
                if self.stray.contains(&pos) {
                    return false;
                }
                self.push(pos);
                true
            }
            Some(_) => {
                if self.live().binary_search(&pos).is_ok() {
                    // In the run: alive (already held) or a tombstone brought back.
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
        if self.live().first() == Some(&pos) {
            self.pop_front();
            self.pop_dead_front();
        } else if self.live().last() == Some(&pos) {
            self.run.pop();
            while let Some(last) = self.live().last().copied() {
                if self.dead.remove(&last).is_none() {
                    break;
                }
                self.run.pop();
            }
            self.reset_if_empty();
        } else {
            self.dead.insert(pos, ());
            if self.dead.len() * 2 > self.live().len() {
                let dead = std::mem::replace(&mut self.dead, fast_map());
                self.run.drain(..self.head);
                self.head = 0;
                self.run.retain(|p| !dead.contains_key(p));
            }
        }
        debug_assert!(self.dead.len() <= self.live().len());
        true
    }

    /// Drops the first live position of the run.
    fn pop_front(&mut self) {
        self.head += 1;
        self.reset_if_empty();
    }

    /// An empty live run starts again at the front of its buffer.
    fn reset_if_empty(&mut self) {
        if self.head >= self.run.len() {
            self.run.clear();
            self.head = 0;
        }
    }

    /// Drops tombstones at the front of the run.
    fn pop_dead_front(&mut self) {
        while let Some(first) = self.live().first().copied() {
            if self.dead.remove(&first).is_none() {
                break;
            }
            self.pop_front();
        }
    }

    /// The positions strictly before `before` (all when `None`), greatest first.
    pub(super) fn newest_first(
        &self,
        before: Option<ListPos>,
    ) -> impl Iterator<Item = ListPos> + '_ {
        let live = self.live();
        let end = match before {
            Some(b) => live.partition_point(|p| *p < b),
            None => live.len(),
        };
        let run = live
            .get(..end)
            .unwrap_or(&[])
            .iter()
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

    /// A run that is appended to at the back and forgotten at the front (retention) keeps
    /// a buffer of at most twice its live length, small or large (past the fresh-growth
    /// bound), and holds exactly the positions not yet forgotten.
    #[test]
    fn front_pops_are_reclaimed_when_the_run_grows() {
        for live in [1usize, 3, 10, FRESH_GROWTH_MAX, 3 * FRESH_GROWTH_MAX] {
            let mut list = PosList::default();
            let pos = |i: usize| (i as u64, ReservationId(i as u64));
            for i in 0..live {
                assert!(list.insert(pos(i)));
            }
            for i in live..(live + 10_000) {
                assert!(list.insert(pos(i)));
                assert!(list.remove(pos(i - live)));
                assert_eq!(list.len(), live);
                assert!(
                    list.run.capacity() <= (2 * live).max(4) * 2,
                    "live {live}: capacity {} at step {i}",
                    list.run.capacity()
                );
            }
            let all: Vec<ListPos> = list.newest_first(None).collect();
            let want: Vec<ListPos> = (10_000..(live + 10_000)).rev().map(pos).collect();
            assert_eq!(all, want);
        }
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
                assert!(list.dead.len() <= list.live().len());
                assert!(list.head <= list.run.len());
            }
            for p in &model {
                assert!(list.contains(*p));
            }
        }
    }
}

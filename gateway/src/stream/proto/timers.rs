//! The loop's one timer structure: the next deadline of every connection, earliest first.

use std::collections::BTreeSet;
use std::time::Instant;

/// Deadlines keyed by connection slot. A connection has at most one entry: the caller keeps
/// the deadline it filed and passes it back to move or cancel it.
///
/// Filing is lazy about deadlines that move later (ADR 0046, ninth session): a connection's
/// deadline moves earlier when it sends (quinn-proto's loss timer) and later again when the ACK
/// comes back, twice per delivered update; [`file`](Timers::file) keeps an entry that is at or
/// before the new deadline, and the loop refiles it when it reaches the front of the set (before
/// sleeping, so a stale entry never wakes the loop) instead of driving the connection: a
/// `pop_first` instead of a keyed B-tree removal.
#[derive(Debug, Default)]
pub(super) struct Timers {
    due: BTreeSet<(Instant, usize)>,
}

impl Timers {
    /// Moves `slot`'s deadline from `old` to `new` (either may be absent).
    pub(super) fn reschedule(&mut self, slot: usize, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            let removed = self.due.remove(&(old, slot));
            debug_assert!(removed, "a filed deadline is in the set");
        }
        if let Some(new) = new {
            self.due.insert((new, slot));
        }
    }

    /// Makes sure `slot` is woken at or before `due`, where `filed` is the entry it has (updated
    /// in place). An entry at or before `due` stays (also when `due` is `None`): when it comes
    /// due early, the caller refiles `due` instead of driving the connection.
    pub(super) fn file(&mut self, slot: usize, filed: &mut Option<Instant>, due: Option<Instant>) {
        let Some(due) = due else { return };
        if filed.is_some_and(|f| f <= due) {
            return;
        }
        self.reschedule(slot, *filed, Some(due));
        *filed = Some(due);
    }

    /// The earliest deadline.
    #[cfg(test)]
    pub(super) fn next(&self) -> Option<Instant> {
        self.first().map(|(at, _)| at)
    }

    /// The earliest entry: its deadline and slot.
    pub(super) fn first(&self) -> Option<(Instant, usize)> {
        self.due.first().copied()
    }

    /// Removes and returns the slot of one deadline at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        match self.due.first() {
            Some((at, _)) if *at <= now => self.due.pop_first().map(|(_, slot)| slot),
            _ => None,
        }
    }

    /// Deadlines filed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_due_deadlines_earliest_first_and_moves_them() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        timers.reschedule(1, None, Some(t0 + ms(30)));
        timers.reschedule(2, None, Some(t0 + ms(10)));
        timers.reschedule(3, None, Some(t0 + ms(20)));
        // Slot 1 moves earlier, slot 3 is cancelled.
        timers.reschedule(1, Some(t0 + ms(30)), Some(t0 + ms(5)));
        timers.reschedule(3, Some(t0 + ms(20)), None);
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next(), Some(t0 + ms(5)));
        assert_eq!(timers.pop_due(t0), None);
        assert_eq!(timers.pop_due(t0 + ms(10)), Some(1));
        assert_eq!(timers.pop_due(t0 + ms(10)), Some(2));
        assert_eq!(timers.pop_due(t0 + ms(100)), None);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn filing_moves_entries_earlier_only() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        let mut filed = None;
        timers.file(7, &mut filed, Some(t0 + ms(1000)));
        assert_eq!(filed, Some(t0 + ms(1000)));
        // Earlier (a send arms the loss timer): the entry moves.
        timers.file(7, &mut filed, Some(t0 + ms(30)));
        assert_eq!(filed, Some(t0 + ms(30)));
        assert_eq!(timers.len(), 1);
        // Later (the ACK disarms it) or gone: the early entry stays.
        timers.file(7, &mut filed, Some(t0 + ms(1010)));
        timers.file(7, &mut filed, None);
        assert_eq!(filed, Some(t0 + ms(30)));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next(), Some(t0 + ms(30)));
        // It comes due early; the caller refiles the real deadline.
        assert_eq!(timers.pop_due(t0 + ms(30)), Some(7));
        filed = None;
        timers.file(7, &mut filed, Some(t0 + ms(1010)));
        assert_eq!(timers.next(), Some(t0 + ms(1010)));
        assert_eq!(timers.len(), 1);
    }
}

//! The loop's one timer structure: the next deadline of every connection, earliest first.

use std::collections::BTreeSet;
use std::time::Instant;

/// Deadlines keyed by connection slot. A connection has at most one entry: the caller keeps
/// the deadline it filed and passes it back to move or cancel it.
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

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
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
}

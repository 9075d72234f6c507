//! A coarse, per-thread timer for hyper's connections on the shard executors (ADR 0050).
//!
//! hyper's HTTP/1.1 server makes one sleep per request head (the header-read timeout): it
//! starts it when it begins reading a head and drops it once the head is parsed. With tokio's
//! timer (`TokioTimer`) every such sleep is registered in, and removed from, the tokio
//! runtime's shared timer wheel by the shard thread (≈ 3 % of a sold-out request's CPU, ADR
//! 0049). [`ShardTimer`] keeps the sleeps made on a shard executor's thread in that thread's
//! own table instead: registering is a slot taken from a vector, cancelling gives it back, and
//! no clock is read while polling. One ticker task per executor (started when the first sleep
//! registers, ended when none is left) scans the table and wakes the sleeps whose deadline
//! has passed, at most [`MAX_TICK`] apart: a deadline fires late by at most that much (slow
//! clients are still cut off, a little later). Sleeps made on any other thread (none in
//! practice) fall back to tokio's timer.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioTimer;

/// Longest pause between two scans of a thread's table while sleeps are registered: the
/// most a deadline fires late by.
pub(super) const MAX_TICK: Duration = Duration::from_millis(50);

/// Shortest pause between two scans (a deadline due at once is not spun on).
const MIN_TICK: Duration = Duration::from_millis(1);

/// How far ahead a deadline beyond `Instant`'s range is put (never fires in practice).
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Gives each thread's table its own number (a sleep registered in one thread's table is
/// never looked up in another's).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Whether this thread is a shard executor's (set by [`mark_shard_thread`]).
    static ON_SHARD: Cell<bool> = const { Cell::new(false) };
    /// This thread's registered sleeps.
    static TABLE: RefCell<Table> = RefCell::new(Table::new());
}

/// Marks the calling thread as a shard executor's: sleeps made on it by [`ShardTimer`] from
/// now on go to its table (and its ticker runs as a glommio task there).
pub(super) fn mark_shard_thread() {
    ON_SHARD.with(|on| on.set(true));
}

/// hyper's timer for connections served on the shard executors: a coarse per-thread table on
/// a shard thread, tokio's timer elsewhere.
#[derive(Clone, Debug, Default)]
pub(super) struct ShardTimer {
    /// Used off the shard threads.
    fallback: TokioTimer,
}

impl ShardTimer {
    /// A timer (cheap to clone; all state is per thread).
    pub(super) fn new() -> Self {
        ShardTimer {
            fallback: TokioTimer::new(),
        }
    }
}

impl Timer for ShardTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = Instant::now();
        let deadline = now
            .checked_add(duration)
            .or_else(|| now.checked_add(FAR))
            .unwrap_or(now);
        self.sleep_until(deadline)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        if ON_SHARD.with(Cell::get) {
            Box::pin(CoarseSleep::new(deadline))
        } else {
            self.fallback.sleep_until(deadline)
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<CoarseSleep>() {
            Some(coarse) => coarse.get_mut().reset(new_deadline),
            None => self.fallback.reset(sleep, new_deadline),
        }
    }
}

/// Where a registered sleep sits in its thread's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    /// The table's number.
    table: u64,
    /// The slot.
    slot: usize,
    /// The registration's serial number (a slot is reused by later registrations).
    serial: u64,
}

/// Where a [`CoarseSleep`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SleepState {
    /// In no table: not polled yet, or reset after it fired or left its table.
    Unregistered,
    /// In a thread's table under this key.
    Registered(Key),
    /// Its deadline passed (it stays ready until reset).
    Fired,
}

/// A sleep in a shard thread's table (see the module documentation).
#[derive(Debug)]
pub(super) struct CoarseSleep {
    /// When it fires.
    deadline: Instant,
    /// Its registration.
    state: SleepState,
}

impl CoarseSleep {
    /// A sleep until `deadline`, registered at its first poll.
    fn new(deadline: Instant) -> Self {
        CoarseSleep {
            deadline,
            state: SleepState::Unregistered,
        }
    }

    /// Moves the deadline (in place in the table when registered there).
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.state = match self.state {
            SleepState::Registered(key) => {
                let kept = TABLE
                    .try_with(|t| {
                        t.try_borrow_mut()
                            .is_ok_and(|mut t| t.move_deadline(key, deadline))
                    })
                    .unwrap_or(false);
                if kept {
                    SleepState::Registered(key)
                } else {
                    // Fired (removed by the ticker) or another thread's: registered afresh
                    // at the next poll.
                    SleepState::Unregistered
                }
            }
            SleepState::Unregistered | SleepState::Fired => SleepState::Unregistered,
        };
    }
}

impl Sleep for CoarseSleep {}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.state == SleepState::Fired {
            return Poll::Ready(());
        }
        let (outcome, start_ticker) = TABLE.with(|t| {
            let Ok(mut t) = t.try_borrow_mut() else {
                // Not reachable (nothing polls a sleep while the table is borrowed); ask to be
                // polled again rather than lose the wake-up.
                cx.waker().wake_by_ref();
                return (Poll::Pending, false);
            };
            if let SleepState::Registered(key) = this.state {
                if key.table == t.id {
                    if t.refresh_waker(key, cx.waker()) {
                        return (Poll::Pending, false);
                    }
                    // The ticker removed it: the deadline has passed.
                    this.state = SleepState::Fired;
                    return (Poll::Ready(()), false);
                }
            }
            this.state = SleepState::Registered(t.insert(this.deadline, cx.waker().clone()));
            let start = !t.ticking;
            t.ticking = true;
            (Poll::Pending, start)
        });
        if start_ticker {
            glommio::spawn_local(tick()).detach();
        }
        outcome
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let SleepState::Registered(key) = self.state {
            self.state = SleepState::Unregistered;
            let _ = TABLE.try_with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.remove(key);
                }
            });
        }
    }
}

/// One registered sleep.
#[derive(Debug)]
struct Entry {
    /// Its registration's serial number.
    serial: u64,
    /// When it fires.
    deadline: Instant,
    /// Whom to wake then.
    waker: Waker,
}

/// A thread's registered sleeps: slots reused through a free list.
#[derive(Debug)]
struct Table {
    /// This table's number.
    id: u64,
    /// The slots (`None`: free).
    slots: Vec<Option<Entry>>,
    /// Free slots.
    free: Vec<usize>,
    /// Sleeps registered.
    live: usize,
    /// The next registration's serial number.
    next_serial: u64,
    /// A ticker task runs on this thread.
    ticking: bool,
}

impl Table {
    /// An empty table with a fresh number.
    fn new() -> Self {
        Table {
            id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_serial: 0,
            ticking: false,
        }
    }

    /// Registers a sleep until `deadline` that wakes `waker`.
    fn insert(&mut self, deadline: Instant, waker: Waker) -> Key {
        let serial = self.next_serial;
        self.next_serial += 1;
        let entry = Some(Entry {
            serial,
            deadline,
            waker,
        });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        self.live += 1;
        Key {
            table: self.id,
            slot,
            serial,
        }
    }

    /// The registration `key`, when it is still in this table.
    fn get_mut(&mut self, key: Key) -> Option<&mut Entry> {
        if key.table != self.id {
            return None;
        }
        self.slots
            .get_mut(key.slot)
            .and_then(Option::as_mut)
            .filter(|e| e.serial == key.serial)
    }

    /// Keeps `waker` as the one to wake for `key`; false when `key` is gone (fired).
    fn refresh_waker(&mut self, key: Key, waker: &Waker) -> bool {
        match self.get_mut(key) {
            Some(entry) => {
                if !entry.waker.will_wake(waker) {
                    entry.waker = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Moves `key`'s deadline; false when `key` is gone.
    fn move_deadline(&mut self, key: Key, deadline: Instant) -> bool {
        match self.get_mut(key) {
            Some(entry) => {
                entry.deadline = deadline;
                true
            }
            None => false,
        }
    }

    /// Unregisters `key` (nothing when it is gone).
    fn remove(&mut self, key: Key) {
        if self.get_mut(key).is_some() {
            self.slots[key.slot] = None;
            self.free.push(key.slot);
            self.live -= 1;
        }
    }

    /// Removes the sleeps due at `now`, their wakers into `due`; returns how long until the
    /// next scan, or `None` (and stops ticking) when no sleep is left.
    fn expire(&mut self, now: Instant, due: &mut Vec<Waker>) -> Option<Duration> {
        let mut earliest: Option<Instant> = None;
        for (slot, cell) in self.slots.iter_mut().enumerate() {
            let Some(entry) = cell else { continue };
            if entry.deadline <= now {
                if let Some(entry) = cell.take() {
                    due.push(entry.waker);
                }
                self.free.push(slot);
                self.live -= 1;
            } else if earliest.is_none_or(|e| entry.deadline < e) {
                earliest = Some(entry.deadline);
            }
        }
        if self.live == 0 {
            self.ticking = false;
            return None;
        }
        let wait = earliest.map_or(MAX_TICK, |e| e.saturating_duration_since(now));
        Some(wait.clamp(MIN_TICK, MAX_TICK))
    }
}

/// A thread's ticker: wakes due sleeps until none is registered.
async fn tick() {
    /// Marks the thread as not ticking if the task is dropped (its executor stopping).
    struct Ticking;
    impl Drop for Ticking {
        fn drop(&mut self) {
            let _ = TABLE.try_with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.ticking = false;
                }
            });
        }
    }
    let _ticking = Ticking;
    let mut due = Vec::new();
    loop {
        let next = TABLE.with(|t| match t.try_borrow_mut() {
            Ok(mut t) => t.expire(Instant::now(), &mut due),
            Err(_) => Some(MIN_TICK),
        });
        for waker in due.drain(..) {
            waker.wake();
        }
        let Some(wait) = next else { return };
        glommio::timer::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh glommio executor marked as a shard thread.
    fn on_shard<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                mark_shard_thread();
                f().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Registered sleeps on this thread.
    fn live() -> usize {
        TABLE.with(|t| t.borrow().live)
    }

    #[test]
    fn a_sleep_fires_after_its_deadline_within_a_tick() {
        on_shard(|| async {
            let timer = ShardTimer::new();
            let started = Instant::now();
            let sleep = timer.sleep(Duration::from_millis(120));
            assert!(sleep.is::<CoarseSleep>());
            sleep.await;
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(120), "{took:?}");
            assert!(took < Duration::from_millis(120) + MAX_TICK * 4, "{took:?}");
            assert_eq!(live(), 0);
        });
    }

    #[test]
    fn a_reset_moves_the_deadline_and_a_dropped_sleep_leaves_the_table() {
        on_shard(|| async {
            let timer = ShardTimer::new();
            let started = Instant::now();
            let mut sleep = timer.sleep(Duration::from_millis(60));
            // Registered by a first poll, then moved later: it fires at the new deadline.
            assert!(futures::poll!(sleep.as_mut()).is_pending());
            assert_eq!(live(), 1);
            timer.reset(&mut sleep, started + Duration::from_millis(200));
            sleep.as_mut().await;
            assert!(started.elapsed() >= Duration::from_millis(200));
            // Fired stays ready; a reset arms it again.
            assert!(futures::poll!(sleep.as_mut()).is_ready());
            timer.reset(&mut sleep, Instant::now() + Duration::from_secs(60));
            assert!(futures::poll!(sleep.as_mut()).is_pending());
            assert_eq!(live(), 1);
            drop(sleep);
            assert_eq!(live(), 0);
            // Many sleeps in flight, most dropped before their deadline: the rest fire.
            let sleeps: Vec<_> = (0..100)
                .map(|i| timer.sleep(Duration::from_millis(10 + i)))
                .collect();
            let mut kept = Vec::new();
            for (i, mut s) in sleeps.into_iter().enumerate() {
                assert!(futures::poll!(s.as_mut()).is_pending());
                if i % 10 == 0 {
                    kept.push(s);
                }
            }
            assert_eq!(live(), 10);
            for s in kept {
                s.await;
            }
            assert_eq!(live(), 0);
        });
    }

    #[tokio::test]
    async fn off_the_shards_it_is_tokios_timer() {
        let timer = ShardTimer::new();
        let started = Instant::now();
        let sleep = timer.sleep(Duration::from_millis(30));
        assert!(!sleep.is::<CoarseSleep>());
        sleep.await;
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}

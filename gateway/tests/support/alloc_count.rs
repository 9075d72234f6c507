//! A counting global allocator for allocation-count tests: it forwards to the system
//! allocator and counts every allocation (`alloc`, `alloc_zeroed`, and a `realloc`, which
//! may move the block), process-wide, on the calling thread, and per thread in a table the
//! test reads by thread name ([`by_thread`]). A test binary that uses it declares
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
//!
//! For an investigation, [`sample_every`] makes it capture a backtrace of one allocation in
//! `n` on threads other than the caller's ([`samples`] hands them over); off (0) by default.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Allocations by every thread since the process started.
static PROCESS: AtomicU64 = AtomicU64::new(0);

/// Threads with a slot of their own in the per-thread table; later threads share the last.
const SLOTS: usize = 128;

/// Bytes of a thread name kept (the kernel's limit is 15 and a NUL).
const NAME_BYTES: usize = 16;

/// One thread's row of the table: its allocations and its name (16 bytes, NUL-padded, packed
/// into two words so that the allocator writes it without a lock).
struct Slot {
    count: AtomicU64,
    name: [AtomicU64; 2],
}

/// The per-thread table, one row per thread in order of its first allocation.
static TABLE: [Slot; SLOTS] = [const {
    Slot {
        count: AtomicU64::new(0),
        name: [AtomicU64::new(0), AtomicU64::new(0)],
    }
}; SLOTS];

/// The next free row.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Capture a backtrace every this many allocations on a sampled thread (0: never).
static SAMPLE_EVERY: AtomicU64 = AtomicU64::new(0);

/// The row whose thread is not sampled (the test's own thread).
static UNSAMPLED_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Backtraces captured while sampling, with their thread's name.
static SAMPLES: Mutex<Vec<(String, Backtrace)>> = Mutex::new(Vec::new());

thread_local! {
    /// Allocations by this thread since it started (const-initialised, no destructor: safe
    /// to touch from inside the allocator).
    static THREAD: Cell<u64> = const { Cell::new(0) };
    /// This thread's row of the table (`usize::MAX`: none yet).
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set while this thread captures a backtrace (its own allocations are not sampled).
    static SAMPLING: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counted.
pub struct CountingAlloc;

/// This thread's name as the kernel knows it (what `std::thread::Builder::name` and
/// glommio's executor names set, cut to 15 bytes), packed into two words; zero if unknown.
fn os_thread_name() -> [u64; 2] {
    let mut buf = [0u8; NAME_BYTES];
    // SAFETY: `buf` is a writable buffer of `NAME_BYTES` bytes for the whole call, the length
    // passed is its length, and `pthread_self()` is the calling thread, alive.
    let rc = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr().cast(), buf.len())
    };
    if rc != 0 {
        return [0, 0];
    }
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&buf[..8]);
    hi.copy_from_slice(&buf[8..]);
    [u64::from_le_bytes(lo), u64::from_le_bytes(hi)]
}

/// Counts one allocation on every counter; returns this thread's row.
#[inline]
fn count() -> usize {
    PROCESS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread being torn down may still allocate after its locals are gone.
    let n = THREAD
        .try_with(|c| {
            let n = c.get() + 1;
            c.set(n);
            n
        })
        .unwrap_or(0);
    let slot = SLOT
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed).min(SLOTS - 1));
            }
            s.get()
        })
        .unwrap_or(SLOTS - 1);
    let row = &TABLE[slot];
    row.count.fetch_add(1, Ordering::Relaxed);
    // A thread may be named after its first allocations: read the name again for a while
    // (one `prctl` each), then now and then.
    if n <= 256 || n.is_power_of_two() {
        let [lo, hi] = os_thread_name();
        row.name[0].store(lo, Ordering::Relaxed);
        row.name[1].store(hi, Ordering::Relaxed);
    }
    slot
}

/// Captures a backtrace of this allocation if sampling is on and it is due.
#[inline]
fn maybe_sample(slot: usize) {
    let every = SAMPLE_EVERY.load(Ordering::Relaxed);
    if every == 0 || slot == UNSAMPLED_SLOT.load(Ordering::Relaxed) {
        return;
    }
    // A hash of the count, not the count itself: requests that allocate the same number of
    // times in the same order would otherwise sample the same sites over and over.
    let mixed = PROCESS
        .load(Ordering::Relaxed)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29);
    if !mixed.is_multiple_of(every) {
        return;
    }
    let Ok(false) = SAMPLING.try_with(Cell::get) else {
        return;
    };
    SAMPLING.with(|s| s.set(true));
    // The capture and the push allocate: they come back here with `SAMPLING` set and are
    // counted, not sampled.
    let bt = Backtrace::force_capture();
    let name = name_of(slot);
    if let Ok(mut samples) = SAMPLES.lock() {
        samples.push((name, bt));
    }
    SAMPLING.with(|s| s.set(false));
}

// SAFETY: every method forwards to `System` with the caller's own arguments, so the
// `GlobalAlloc` contract is `System`'s; counting touches only atomics, const-initialised
// thread-local cells and a `prctl`; sampling (off unless a test turns it on) allocates
// through this allocator behind a per-thread guard, so it never recurses into itself.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let slot = count();
        maybe_sample(slot);
        // SAFETY: forwarded unchanged (see the impl's comment).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let slot = count();
        maybe_sample(slot);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let slot = count();
        maybe_sample(slot);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A reading of both counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Allocations by every thread.
    pub process: u64,
    /// Allocations by the thread that took the reading.
    pub thread: u64,
}

impl Counts {
    /// The counters now.
    pub fn now() -> Counts {
        Counts {
            process: PROCESS.load(Ordering::SeqCst),
            thread: THREAD.with(Cell::get),
        }
    }

    /// Allocations between `earlier` and this reading.
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            process: self.process - earlier.process,
            thread: self.thread - earlier.thread,
        }
    }
}

/// The name of row `slot`'s thread ("?" if it has none).
fn name_of(slot: usize) -> String {
    let row = &TABLE[slot];
    let mut bytes = Vec::with_capacity(NAME_BYTES);
    bytes.extend_from_slice(&row.name[0].load(Ordering::Relaxed).to_le_bytes());
    bytes.extend_from_slice(&row.name[1].load(Ordering::Relaxed).to_le_bytes());
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    match String::from_utf8_lossy(&bytes[..end]).into_owned() {
        s if s.is_empty() => "?".to_string(),
        s => s,
    }
}

/// Allocations so far by thread, indexed by the thread's row (read without allocating:
/// the difference of two readings is what every thread allocated in between).
#[derive(Debug, Clone, Copy)]
pub struct PerThread([u64; SLOTS]);

impl PerThread {
    /// The per-thread counters now.
    pub fn now() -> PerThread {
        let mut rows = [0u64; SLOTS];
        for (row, slot) in rows.iter_mut().zip(TABLE.iter()) {
            *row = slot.count.load(Ordering::SeqCst);
        }
        PerThread(rows)
    }

    /// No allocation on any thread.
    pub fn zero() -> PerThread {
        PerThread([0; SLOTS])
    }

    /// Adds what every thread allocated between `earlier` and `later` to these counters.
    pub fn add_between(&mut self, earlier: &PerThread, later: &PerThread) {
        for ((sum, e), l) in self.0.iter_mut().zip(earlier.0.iter()).zip(later.0.iter()) {
            *sum += l - e;
        }
    }

    /// The counters by thread name (threads of one name summed; names with none left out),
    /// in name order.
    pub fn by_name(&self) -> Vec<(String, u64)> {
        let used = NEXT_SLOT.load(Ordering::SeqCst).min(SLOTS);
        let rows: Vec<(String, u64)> = (0..used).map(|s| (name_of(s), self.0[s])).collect();
        merge_names(rows)
    }
}

/// Sums rows of the same name, leaving out zeros, in name order.
fn merge_names(mut rows: Vec<(String, u64)>) -> Vec<(String, u64)> {
    rows.retain(|(_, n)| *n > 0);
    rows.sort();
    let mut merged: Vec<(String, u64)> = Vec::with_capacity(rows.len());
    for (name, n) in rows {
        match merged.last_mut() {
            Some((last, total)) if *last == name => *total += n,
            _ => merged.push((name, n)),
        }
    }
    merged
}

/// Turns backtrace sampling on (one allocation in `every` on any thread but the caller's)
/// or off (0).
pub fn sample_every(every: u64) {
    let own = SLOT.with(Cell::get);
    UNSAMPLED_SLOT.store(own, Ordering::SeqCst);
    SAMPLE_EVERY.store(every, Ordering::SeqCst);
}

/// Takes the backtraces captured so far, with their thread's name.
pub fn samples() -> Vec<(String, Backtrace)> {
    match SAMPLES.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    }
}

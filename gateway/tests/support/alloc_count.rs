//! A counting global allocator for allocation-count tests: it forwards to the system
//! allocator and counts every allocation (`alloc`, `alloc_zeroed`, and a `realloc`, which
//! may move the block), process-wide and on the calling thread. A test binary that uses it
//! declares `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations by every thread since the process started.
static PROCESS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations by this thread since it started (const-initialised, no destructor: safe
    /// to touch from inside the allocator).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counted.
pub struct CountingAlloc;

/// Counts one allocation on both counters.
#[inline]
fn count() {
    PROCESS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread being torn down may still allocate after its locals are gone.
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's own arguments, so the
// `GlobalAlloc` contract is `System`'s; counting touches only an atomic and a
// const-initialised thread-local cell (no allocation, no reentrancy).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged (see the impl's comment).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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

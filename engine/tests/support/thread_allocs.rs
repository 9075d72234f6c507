//! A counting global allocator for allocation-count tests: it forwards to the system
//! allocator and counts every allocation (`alloc`, `alloc_zeroed`, and a `realloc`, which
//! may move the block) made by the calling thread. A test binary that uses it declares
//! `#[global_allocator] static A: ThreadCounting = ThreadCounting;`.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations by this thread since it started (const-initialised, no destructor: safe
    /// to touch from inside the allocator).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counted per thread.
pub struct ThreadCounting;

/// Counts one allocation of the calling thread.
#[inline]
fn count() {
    // `try_with`: a thread being torn down may still allocate after its locals are gone.
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's own arguments, so the
// `GlobalAlloc` contract is `System`'s; counting touches only a const-initialised
// thread-local cell (no allocation, no reentrancy).
unsafe impl GlobalAlloc for ThreadCounting {
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

/// Allocations made by the calling thread so far.
pub fn thread_allocations() -> u64 {
    THREAD.with(Cell::get)
}

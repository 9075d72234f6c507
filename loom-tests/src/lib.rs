//! Loom models of flashsale's lock-free structures.
//!
//! The structures are compiled here from their own source files (`#[path]`), with a `sync`
//! module that swaps std's atomics for loom's, so the code checked is the code shipped.
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p flashsale-loom-tests --release`
//! (see `.ci/run`); without `--cfg loom` this crate is empty.

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::hint;
    pub(crate) use loom::sync::atomic;
}

/// The per-SKU stock gate (engine/src/gate.rs).
#[cfg(loom)]
#[path = "../../engine/src/gate.rs"]
pub mod gate;

/// The per-SKU stock mirror, a seqlock (engine/src/mirror.rs).
#[cfg(loom)]
#[path = "../../engine/src/mirror.rs"]
pub mod mirror;

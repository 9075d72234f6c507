//! Atomics and spin hints used by the lock-free structures. `loom-tests` swaps in loom's by
//! including those files with its own `sync` module.

pub(crate) use std::hint;
pub(crate) use std::sync::atomic;

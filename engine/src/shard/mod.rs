//! The shard: a pure, deterministic state machine owning a subset of SKUs.
//! (Being written: see the engine issue.)

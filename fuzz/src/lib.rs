//! Fuzz targets of flashsale, as plain functions: each `check(data)` runs one input and panics
//! when a property fails. The `cargo fuzz` binaries in `fuzz_targets/` only call them, and
//! `examples/gen_seeds.rs` runs them over the seed corpus it writes.
//!
//! - [`log_record`]: `flashsale_protocol::decode_record` (log records).
//! - [`stream_frame`]: the stock stream's `FrameDecoder` (client and server frames).
//! - [`segment_recovery`]: the embedded log's recovery scan over damaged and arbitrary segments.
//! - [`http_body`]: HTTP request bodies to validated engine commands (gateway `http::wire`).
//!
//! See `docs/fuzzing.md` for how to run them.

pub mod http_body;
pub mod input;
pub mod log_record;
pub mod segment_recovery;
pub mod stream_frame;

//! Where a shard's records go before they are applied (the log, or nowhere).

use flashsale_protocol::LogRecord;

/// Receives each record a shard produces, before it is applied.
pub trait EventSink {
    /// A new record (consecutive `seq` per shard).
    fn record(&mut self, record: &LogRecord);
}

impl EventSink for Vec<LogRecord> {
    fn record(&mut self, record: &LogRecord) {
        self.push(record.clone());
    }
}

/// A sink that drops every record (for benchmarks of the pure state machine).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn record(&mut self, _record: &LogRecord) {}
}

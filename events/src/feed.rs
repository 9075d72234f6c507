//! The shared feed of one shard: the committed log read, decoded, folded into the ledger and
//! turned into events with their JSON bodies **once** for every destination. Each
//! destination's worker only keeps its position and its filter and takes the prepared records
//! after its position from a bounded window of recent ones. A worker whose position is outside
//! the window (far behind, e.g. a slow receiver, or far ahead) reads and folds the log itself
//! until the window reaches it again ([`Got::Outside`]), so one slow destination never holds
//! back the others and memory stays bounded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::derive::derive;
use crate::dest::{lock, Dest};
use crate::error::EventsError;
use crate::kind::EventType;
use crate::ledger::Ledger;
use crate::outgoing::OutEvent;
use crate::service::Shared;
use crate::source::LogSource;

/// Most records kept in a shard's window (with their events and bodies).
pub const WINDOW_RECORDS: usize = 32_768;

/// Most body bytes kept in a shard's window.
pub const WINDOW_BYTES: usize = 32 << 20;

/// How far (in records) a worker may be ahead of the feed's end and still wait for it rather
/// than read the log itself.
pub const AHEAD_WAIT: u64 = 8_192;

/// An event ready to deliver: the body built once, shared by every destination and retry.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Stable id (`evt_<shard>_<seq>[_n]`).
    pub id: String,
    /// The type.
    pub kind: EventType,
    /// When the fact happened (the logged time), Unix ms.
    pub at_ms: u64,
    /// Events with the same key are delivered in log order.
    pub key: String,
    /// The JSON envelope `{id, type, timestamp, data}`.
    pub body: bytes::Bytes,
}

impl From<OutEvent> for Ready {
    fn from(ev: OutEvent) -> Ready {
        let body = bytes::Bytes::from(ev.body());
        Ready {
            id: ev.id,
            kind: ev.kind,
            at_ms: ev.at_ms,
            key: ev.key,
            body,
        }
    }
}

/// One committed record and the events derived from it (none for some records).
#[derive(Debug)]
pub struct Prepared {
    /// Its log seq.
    pub seq: u64,
    /// Its events in order.
    pub events: Vec<Ready>,
}

/// Records `(seq, bytes)` folded into `ledger` and derived (events `filter` accepts),
/// appended to `out` as [`Prepared`] records.
pub fn prepare(
    ledger: &mut Ledger,
    shard: u16,
    records: &[(u64, Vec<u8>)],
    filter: &crate::kind::EventFilter,
    out: &mut Vec<Arc<Prepared>>,
) {
    let mut scratch = Vec::new();
    for (seq, bytes) in records {
        match flashsale_protocol::decode_record(bytes) {
            Ok(rec) => {
                let facts = ledger.apply(&rec);
                if matches!(filter, crate::kind::EventFilter::All) {
                    derive(&rec, &facts, &mut scratch);
                } else {
                    crate::derive::derive_filtered(&rec, &facts, filter, &mut scratch);
                }
            }
            Err(e) => {
                ledger.seq = ledger.seq.max(*seq);
                tracing::error!(shard, seq, error = %e, "events: undecodable log record skipped");
            }
        }
        out.push(Arc::new(Prepared {
            seq: *seq,
            events: scratch.drain(..).map(Ready::from).collect(),
        }));
    }
}

/// What a worker gets from the feed.
#[derive(Debug)]
pub enum Got {
    /// The prepared records after the position (empty: nothing committed after it yet).
    Records(Vec<Arc<Prepared>>),
    /// The position is outside the window: read the log yourself.
    Outside,
}

/// The window of recent prepared records.
#[derive(Debug, Default)]
struct Window {
    /// The seq before the first record kept.
    base: u64,
    /// The seq of the last record kept (`base` when empty).
    end: u64,
    /// Records in log order.
    records: VecDeque<Arc<Prepared>>,
    /// Their body bytes.
    bytes: usize,
    /// Set once the feed has a ledger (before that, everything is outside).
    started: bool,
}

impl Window {
    /// Up to `max` records after `after`; `None` if the feed must read further first.
    fn after(&self, after: u64, max: usize) -> Option<Got> {
        if !self.started || after >= self.end {
            return None;
        }
        if after < self.base {
            return Some(Got::Outside);
        }
        let from = self.records.partition_point(|p| p.seq <= after);
        Some(Got::Records(
            self.records.iter().skip(from).take(max).cloned().collect(),
        ))
    }

    fn push(&mut self, p: Arc<Prepared>) {
        self.end = p.seq;
        self.bytes += body_bytes(&p);
        self.records.push_back(p);
        while self.records.len() > WINDOW_RECORDS || self.bytes > WINDOW_BYTES {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(body_bytes(&old));
            self.base = old.seq;
        }
    }
}

fn body_bytes(p: &Prepared) -> usize {
    p.events.iter().map(|e| e.body.len() + 64).sum::<usize>() + 32
}

/// The reader side of a feed: one log reader and the ledger at the window's end.
struct Reader {
    source: LogSource,
    ledger: Option<Ledger>,
}

/// The shared feed of one shard (see the module doc).
pub struct Feed {
    shard: u16,
    window: Mutex<Window>,
    reader: tokio::sync::Mutex<Reader>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("shard", &self.shard).finish()
    }
}

impl Feed {
    /// A feed of `shard` reading with a reader of its own of `source`; it starts at the
    /// position of its first caller (or the slowest stored position, if lower).
    pub fn new(shard: u16, source: &LogSource) -> Feed {
        Feed {
            shard,
            window: Mutex::new(Window::default()),
            reader: tokio::sync::Mutex::new(Reader {
                source: source.own_reader(),
                ledger: None,
            }),
        }
    }

    /// Whether `after` is inside the window (a worker reading on its own may come back).
    pub fn covers(&self, after: u64) -> bool {
        let w = lock(&self.window);
        w.started && after >= w.base && after <= w.end
    }

    /// Up to `max` prepared records after `after`, reading the log (once for every
    /// destination) when the window ends at or before `after`.
    pub async fn next(
        &self,
        shared: &Shared,
        dest: &Dest,
        after: u64,
        max: usize,
    ) -> Result<Got, EventsError> {
        if let Some(got) = lock(&self.window).after(after, max) {
            return Ok(got);
        }
        let mut reader = self.reader.lock().await;
        if let Some(got) = lock(&self.window).after(after, max) {
            return Ok(got);
        }
        let reader = &mut *reader;
        if reader.ledger.is_none() {
            let start = shared.slowest(self.shard).map_or(after, |s| s.min(after));
            let Some(ledger) =
                crate::worker::ledger_at(shared, &reader.source, dest, self.shard, start).await
            else {
                return Ok(Got::Records(Vec::new()));
            };
            let mut w = lock(&self.window);
            w.base = ledger.seq;
            w.end = ledger.seq;
            w.records.clear();
            w.bytes = 0;
            w.started = true;
            reader.ledger = Some(ledger);
        }
        let Some(ledger) = reader.ledger.as_mut() else {
            return Ok(Got::Outside);
        };
        if after < ledger.seq {
            // Raced past by the feed since the check: the window has it or dropped it.
            return Ok(lock(&self.window).after(after, max).unwrap_or(Got::Outside));
        }
        if after > ledger.seq.saturating_add(AHEAD_WAIT) {
            return Ok(Got::Outside);
        }
        let mut prepared = Vec::new();
        while ledger.seq <= after {
            let records = match reader
                .source
                .read(self.shard, ledger.seq, shared.config.batch)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // Start again at the next call (from the stored ledger, at the caller's
                    // position): the records after the feed's end may be compacted away
                    // once every destination is past them.
                    reader.ledger = None;
                    lock(&self.window).started = false;
                    return Err(e);
                }
            };
            if records.is_empty() {
                break;
            }
            prepared.clear();
            prepare(
                ledger,
                self.shard,
                &records,
                &crate::kind::EventFilter::All,
                &mut prepared,
            );
            let mut w = lock(&self.window);
            for p in prepared.drain(..) {
                w.push(p);
            }
        }
        Ok(lock(&self.window)
            .after(after, max)
            .unwrap_or(Got::Records(Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Arc<Prepared> {
        Arc::new(Prepared {
            seq,
            events: Vec::new(),
        })
    }

    fn seqs(got: Option<Got>) -> Option<Vec<u64>> {
        match got? {
            Got::Records(r) => Some(r.iter().map(|p| p.seq).collect()),
            Got::Outside => None,
        }
    }

    #[test]
    fn the_window_serves_positions_inside_it_and_sends_others_to_the_log() {
        let mut w = Window::default();
        // Not started: everyone reads further (the feed starts at the first caller).
        assert!(w.after(0, 10).is_none());
        w.started = true;
        w.base = 10;
        w.end = 10;
        for seq in 11..=15 {
            w.push(rec(seq));
        }
        assert_eq!(seqs(w.after(10, 10)), Some(vec![11, 12, 13, 14, 15]));
        assert_eq!(seqs(w.after(12, 2)), Some(vec![13, 14]));
        // At or past the end: the feed must read on.
        assert!(w.after(15, 10).is_none());
        assert!(w.after(20, 10).is_none());
        // Below the window: the worker reads the log itself.
        assert!(matches!(w.after(9, 10), Some(Got::Outside)));
        // Bounded: the oldest records go first, and the base follows them.
        for seq in 16..(16 + WINDOW_RECORDS as u64) {
            w.push(rec(seq));
        }
        assert_eq!(w.records.len(), WINDOW_RECORDS);
        assert_eq!(w.base, 15);
        assert!(matches!(w.after(14, 10), Some(Got::Outside)));
        assert_eq!(seqs(w.after(15, 1)), Some(vec![16]));
    }
}

//! The recent problems the API answered (4xx and 5xx), for the operator dashboard: a bounded
//! ring of the latest [`RECENT_CAPACITY`], recorded without ever blocking a request (a record
//! that finds the ring busy is only counted).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::problem::{Problem, ProblemKind};
use super::wire::format_ms;

/// Most problems kept.
pub const RECENT_CAPACITY: usize = 20;
/// Longest path and detail kept, in characters (longer ones are cut, with `…`).
const MAX_TEXT_CHARS: usize = 160;

/// One problem answer, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemRecord {
    /// When it was answered, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// HTTP status.
    pub status: u16,
    /// The problem `type` suffix (`not-found`, `internal`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Request method.
    pub method: String,
    /// Request path (no query), cut to a bounded length.
    pub path: String,
    /// The problem's `detail` (as the client saw it), cut to a bounded length.
    pub detail: String,
}

/// The ring of recent problems and how many there were in all.
#[derive(Debug, Default)]
pub struct RecentProblems {
    ring: Mutex<VecDeque<ProblemRecord>>,
    total: AtomicU64,
}

/// `s` cut to [`MAX_TEXT_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Whether the dashboard lists problems of `kind`: all but `sold-out`, the expected answer of
/// a sale's end (it has its own rate on the dashboard).
pub fn is_listed(kind: ProblemKind) -> bool {
    kind != ProblemKind::SoldOut
}

impl RecentProblems {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `problem`, answered to `method path` at `at_ms` (Unix ms), if it is listed.
    pub fn record(&self, method: &str, path: &str, problem: &Problem, at_ms: u64) {
        if !is_listed(problem.kind) {
            return;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        // Never wait: under a flood of errors, a busy ring skips the record (it is counted).
        let Ok(mut ring) = self.ring.try_lock() else {
            return;
        };
        if ring.len() == RECENT_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(ProblemRecord {
            at: format_ms(at_ms),
            status: super::problem::status_of(problem.kind).as_u16(),
            kind: problem.kind.suffix(),
            method: cut(method),
            path: cut(path),
            detail: cut(&problem.detail),
        });
    }

    /// The kept problems, newest first.
    pub fn latest(&self) -> Vec<ProblemRecord> {
        match self.ring.lock() {
            Ok(ring) => ring.iter().rev().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Listed problems since start (including those the ring no longer keeps).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_and_counts_all() {
        let r = RecentProblems::new();
        for i in 0..(RECENT_CAPACITY + 5) {
            let p = Problem::not_found(format!("unknown SKU n{i}"));
            r.record("GET", &format!("/v1/skus/n{i}"), &p, i as u64);
        }
        r.record(
            "POST",
            "/v1/reservations",
            &Problem::new(ProblemKind::SoldOut, "gone"),
            0,
        );
        assert_eq!(r.total(), RECENT_CAPACITY as u64 + 5);
        let latest = r.latest();
        assert_eq!(latest.len(), RECENT_CAPACITY);
        assert_eq!(latest[0].path, format!("/v1/skus/n{}", RECENT_CAPACITY + 4));
        assert_eq!(latest[0].kind, "not-found");
        assert_eq!(latest[0].status, 404);
        assert_eq!(latest.last().map(|p| p.at.clone()), Some(format_ms(5)));
        let long = "x".repeat(1000);
        r.record("GET", &long, &Problem::internal("boom"), 0);
        assert_eq!(r.latest()[0].path.chars().count(), MAX_TEXT_CHARS + 1);
    }
}

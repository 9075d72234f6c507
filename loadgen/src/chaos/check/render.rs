//! The checker's text output: what the history holds, the verdict, and for each violation the
//! shortest excerpt of the history that shows it (the lines, with their numbers).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Report, Verdict};
use crate::chaos::history::{excerpt_lines, History};

/// Longest excerpt line shown, in characters.
pub const MAX_EXCERPT_CHARS: usize = 1_200;
/// Unresolved outcomes listed.
pub const MAX_UNRESOLVED_SHOWN: usize = 10;

fn summary_ms(v: &[u64]) -> String {
    if v.is_empty() {
        return "none measured".into();
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.len() <= 6 {
        let all: Vec<String> = v.iter().map(u64::to_string).collect();
        return format!("{} ms", all.join(", "));
    }
    format!(
        "{} measured, median {} ms, max {} ms",
        s.len(),
        s[s.len() / 2],
        s[s.len() - 1]
    )
}

fn list(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as text; at most `per_kind` violations of each kind are shown with excerpts.
pub fn render(report: &Report, h: &History, per_kind: usize) -> String {
    let s = &report.stats;
    let mut out = String::new();
    let m = &h.meta;
    let _ = writeln!(
        out,
        "history {}: {} ops; backend {}, seed {}, {} SKUs, {} caller(s)",
        h.path.display(),
        s.ops,
        m.backend,
        m.seed,
        m.skus.len(),
        m.callers.len()
    );
    for n in &m.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let _ = writeln!(out, "  faults: {}", list(&s.faults));
    let _ = writeln!(
        out,
        "  reservations acknowledged: {}; final states: {}",
        s.reservations,
        list(&s.final_states)
    );
    let _ = writeln!(
        out,
        "  keys: {} ({} sent as concurrent duplicates); unknown outcomes: {}",
        s.keys, s.keys_with_concurrent_duplicates, s.unknown_outcomes
    );
    let mut top: Vec<(&String, &usize)> = s.outcomes.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = top
        .iter()
        .take(14)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(out, "  answers: {}", shown.join(", "));
    if s.unavailable_then_durable > 0 {
        let _ = writeln!(
            out,
            "  reservations answered 503 that were created by that request and exist: {}",
            s.unavailable_then_durable
        );
    }
    if !s.outage_answers.is_empty() {
        let _ = writeln!(
            out,
            "  answers while Postgres was down: {}",
            list(&s.outage_answers)
        );
    }
    let _ = writeln!(
        out,
        "  recovery to the next new reservation: after Postgres came back {}; after restarts \
         {}; after the disk was freed {}",
        summary_ms(&s.pg_recovery_ms),
        summary_ms(&s.restart_recovery_ms),
        summary_ms(&s.disk_recovery_ms)
    );
    if h.read_model.is_some() {
        let _ = writeln!(
            out,
            "  read model: {} confirmed orders checked",
            s.read_model_orders_checked
        );
    }
    if s.extensions_acknowledged + s.list_pages > 0 {
        let _ = writeln!(
            out,
            "  holds and lists: {} extensions acknowledged, {} list pages, {} confirmed \
             reservations found in their buyer's orders",
            s.extensions_acknowledged, s.list_pages, s.orders_listed_checked
        );
    }
    match report.verdict {
        Verdict::Valid => {
            let _ = writeln!(out, "verdict: VALID (no violation, every outcome resolved)");
        }
        Verdict::Unknown => {
            let _ = writeln!(
                out,
                "verdict: UNKNOWN (no violation found, but {} outcome(s) stayed unresolved)",
                report.unresolved.len()
            );
        }
        Verdict::Invalid => {
            let _ = writeln!(
                out,
                "verdict: INVALID ({} violation(s): {})",
                report.violations.len(),
                list(&report.violations_by_kind)
            );
        }
    }
    for u in report.unresolved.iter().take(MAX_UNRESOLVED_SHOWN) {
        let _ = writeln!(out, "  unresolved: {u}");
    }
    if report.unresolved.len() > MAX_UNRESOLVED_SHOWN {
        let _ = writeln!(
            out,
            "  … and {} more unresolved",
            report.unresolved.len() - MAX_UNRESOLVED_SHOWN
        );
    }
    let mut shown_per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &report.violations {
        let n = shown_per_kind.entry(v.kind.as_str()).or_insert(0);
        *n += 1;
        if *n > per_kind {
            continue;
        }
        let _ = writeln!(out, "\n[{}] {}", v.kind.as_str(), v.message);
        match excerpt_lines(&h.path, &v.at, MAX_EXCERPT_CHARS) {
            Ok(lines) => {
                for (n, text) in lines {
                    let _ = writeln!(out, "  {}:{n}: {text}", h.path.display());
                }
            }
            Err(e) => {
                let _ = writeln!(out, "  (cannot read the excerpt: {e})");
            }
        }
    }
    for (kind, n) in &shown_per_kind {
        if *n > per_kind {
            let _ = writeln!(out, "\n[{kind}] … {} more not shown", n - per_kind);
        }
    }
    out
}

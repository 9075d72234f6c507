//! The summary table printed on stdout at the end of a run.

use std::fmt::Write;

use super::{KindReport, Report};
use crate::cli::LoadModel;
use crate::units::{fmt_count, fmt_us};

fn row(out: &mut String, name: &str, k: &KindReport) {
    let l = &k.latency_us;
    let _ = writeln!(
        out,
        "{name:<14}{:>11}{:>10}{:>10}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        k.requests,
        k.ok,
        k.sold_out,
        k.errors,
        fmt_count(k.throughput_rps),
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.max),
    );
}

/// ANSI red, bold.
const RED: &str = "\x1b[1;31m";
/// ANSI green.
const GREEN: &str = "\x1b[32m";
/// ANSI reset.
const RESET: &str = "\x1b[0m";

/// Renders the summary table without colours (files, logs).
pub fn render(r: &Report) -> String {
    render_styled(r, false)
}

/// Renders the summary table; with `color` (a terminal), the verdict line is red when the run
/// failed (too many errors, oversell, mismatch, no check) and green when it passed.
pub fn render_styled(r: &Report, color: bool) -> String {
    let mut out = render_body(r);
    let failed = r.too_many_errors || r.failed_check();
    let mut verdict = String::from(if failed { "FAILED: " } else { "PASSED: " });
    verdict.push_str(&r.error_verdict());
    match (&r.oversold, &r.counts_match) {
        (Some(o), Some(m)) => verdict.push_str(&format!(
            "; oversold {o}, counts {}",
            if *m { "match" } else { "DO NOT match" }
        )),
        _ => verdict.push_str("; not checked"),
    }
    let (on, off) = match (color, failed) {
        (false, _) => ("", ""),
        (true, true) => (RED, RESET),
        (true, false) => (GREEN, RESET),
    };
    let _ = writeln!(out, "{on}{verdict}{off}");
    out
}

/// The leader changes of a run with several targets: one line each, with the gap.
fn follow_lines(out: &mut String, r: &Report) {
    let f = &r.follow;
    if f.targets.len() < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "leader changes: {}; {} request(s) sent again after a move ({} extra sends); leader at end {}",
        r.leader_changes, f.retried_requests, f.retries, f.leader_at_end
    );
    for c in &f.changes {
        let gap = c.gap_s.map_or("no answer since".to_string(), |g| {
            format!("gap {:.0} ms", g * 1000.0)
        });
        let _ = writeln!(
            out,
            "  at {:.2} s: {} -> {} (found by {}), {gap}",
            c.at_s,
            c.from,
            c.to,
            c.cause.as_str()
        );
    }
}

fn render_body(r: &Report) -> String {
    let mut out = String::new();
    let model = match r.config.load_model {
        LoadModel::Closed => "closed loop".to_string(),
        LoadModel::Open { rate_rps } => format!("open loop at {} req/s", fmt_count(rate_rps)),
    };
    let _ = writeln!(
        out,
        "flashsale-loadgen: {} against {}, {model}, {} connections ({} open at start), {:.1} s measured{}",
        r.scenario,
        r.config.target_url,
        r.connections.requested,
        r.connections.open_at_start,
        r.duration_s,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    let _ = writeln!(
        out,
        "{:<14}{:>11}{:>10}{:>10}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "kind",
        "requests",
        "ok",
        "sold_out",
        "errors",
        "req/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max"
    );
    for (name, k) in &r.per_kind {
        row(&mut out, name, k);
    }
    row(&mut out, "all requests", &r.all_kinds());
    if r.errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let list: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(out, "errors: {}", list.join(", "));
        for (k, m) in &r.error_samples {
            let _ = writeln!(out, "  e.g. {k}: {m}");
        }
    }
    follow_lines(&mut out, r);
    match (&r.check, &r.check_error) {
        (Some(c), _) => {
            let _ = writeln!(
                out,
                "check over {} SKU(s): oversold {} (server {}, client {}), invariant violations {}",
                c.skus_checked,
                c.oversold,
                c.server_oversold,
                c.client_oversold
                    .map_or("n/a (expiry possible)".to_string(), |v| v.to_string()),
                c.invariant_violations
            );
            let _ = writeln!(
                out,
                "  told: held {} confirmed {} cancelled {} (no answer: reserve {} confirm {} cancel {})",
                c.told.held,
                c.told.confirmed,
                c.told.cancelled,
                c.told.unknown_reserve,
                c.told.unknown_confirm,
                c.told.unknown_cancel
            );
            let _ = writeln!(
                out,
                "  server: sold +{} expected [{}, {}]; held+sold +{} expected [{}, {}] => {}{}",
                c.server_sold_delta,
                c.expected_sold.min,
                c.expected_sold.max,
                c.server_held_plus_sold_delta,
                c.expected_held_plus_sold.min,
                c.expected_held_plus_sold.max,
                if c.counts_match { "MATCH" } else { "MISMATCH" },
                if c.exact { " (exact)" } else { "" }
            );
            if c.abandoned > 0 && r.scenario == "checkout" {
                let _ = writeln!(
                    out,
                    "  abandoned holds: {} units, of which released by expiry (inferred): {}",
                    c.abandoned, c.expired_inferred
                );
            }
            if !c.mismatched_skus.is_empty() {
                let _ = writeln!(out, "  mismatched SKUs: {}", c.mismatched_skus.join(", "));
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "check: NOT DONE: {e}");
        }
        (None, None) => {}
    }
    if let Some(s) = &r.stream {
        let _ = writeln!(out, "stream: {s}");
    }
    if let Some(q) = &r.queue {
        out.push_str(&q.summary());
    }
    if let Some(b) = &r.queue_bench {
        out.push_str(&b.summary());
    }
    out
}

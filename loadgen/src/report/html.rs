//! The self-contained HTML report: summary tables and inline SVG plots of throughput and
//! latency over time and of the latency distribution. No external JS, CSS or fonts.

use std::fmt::Write;

use super::svg::{escape, Chart, Series};
use super::Report;
use crate::units::{fmt_count, fmt_us};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.ok{color:#176917;font-weight:bold}\
.bad{color:#b00020;font-weight:bold}svg{display:block;margin:8px 0 20px;width:100%;height:auto;\
max-width:1600px}svg .title{font-weight:bold;\
font-size:14px}svg .tick{font-size:11px}svg .label{font-size:12px}pre{background:#f7f7f7;padding:8px;\
overflow:auto}";

fn charts(r: &Report) -> Vec<Chart> {
    let t = |f: fn(&crate::metrics::Bucket) -> f64| -> Vec<(f64, f64)> {
        r.timeline.iter().map(|b| (b.t_s, f(b))).collect()
    };
    // Answers per second of a bucket (the last bucket of a run is shorter than a second).
    fn per_s(n: u64, b: &crate::metrics::Bucket) -> f64 {
        if b.span_s > 0.0 {
            n as f64 / b.span_s
        } else {
            0.0
        }
    }
    let throughput = Chart {
        title: "Throughput over time (answers per second)".into(),
        x_label: "seconds since measuring started".into(),
        y_label: "answers / s".into(),
        y_log: false,
        x_ticks: vec![],
        y_fmt: fmt_count,
        series: vec![
            Series {
                name: "all".into(),
                color: "#1f77b4",
                points: t(|b| per_s(b.counts.requests, b)),
            },
            Series {
                name: "ok".into(),
                color: "#2ca02c",
                points: t(|b| per_s(b.counts.ok, b)),
            },
            Series {
                name: "sold out".into(),
                color: "#ff7f0e",
                points: t(|b| per_s(b.counts.sold_out, b)),
            },
            Series {
                name: "errors".into(),
                color: "#d62728",
                points: t(|b| per_s(b.counts.errors, b)),
            },
        ],
    };
    let latency = Chart {
        title: "Latency over time (per second, all kinds)".into(),
        x_label: "seconds since measuring started".into(),
        y_label: "latency (log)".into(),
        y_log: true,
        x_ticks: vec![],
        y_fmt: |v| fmt_us(v as u64),
        series: vec![
            Series {
                name: "p50".into(),
                color: "#2ca02c",
                points: t(|b| b.p50_us as f64),
            },
            Series {
                name: "p99".into(),
                color: "#ff7f0e",
                points: t(|b| b.p99_us as f64),
            },
            Series {
                name: "max".into(),
                color: "#d62728",
                points: t(|b| b.max_us as f64),
            },
        ],
    };
    // Percentile spectrum: x = log10(1 / (1 - p)), so 90% -> 1, 99% -> 2, 99.9% -> 3 ...
    let nines = |p: f64| -> f64 { (1.0 / (1.0 - p / 100.0).max(1e-6)).log10() };
    let dist = Chart {
        title: "Latency distribution (percentile spectrum)".into(),
        x_label: "percentile".into(),
        y_label: "latency (log)".into(),
        y_log: true,
        x_ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
        y_fmt: |v| fmt_us(v as u64),
        series: vec![Series {
            name: "all kinds".into(),
            color: "#1f77b4",
            points: r
                .latency_distribution
                .iter()
                .filter(|d| d.percentile < 100.0)
                .map(|d| (nines(d.percentile), d.latency_us as f64))
                .collect(),
        }],
    };
    vec![throughput, latency, dist]
}

/// Renders the HTML report.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let title = format!(
        "flashsale-loadgen: {} ({})",
        r.scenario, r.config.target_url
    );
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    let verdict = match (&r.oversold, &r.counts_match) {
        (Some(0), Some(true)) => "<span class=\"ok\">oversold 0, counts match</span>".to_string(),
        (Some(o), Some(m)) => format!(
            "<span class=\"bad\">oversold {o}, counts {}</span>",
            if *m { "match" } else { "DO NOT match" }
        ),
        _ => format!(
            "<span class=\"bad\">not checked: {}</span>",
            escape(r.check_error.as_deref().unwrap_or("no check"))
        ),
    };
    let errors = format!(
        "<span class=\"{}\">{}</span>",
        if r.too_many_errors { "bad" } else { "ok" },
        escape(&r.error_verdict())
    );
    let _ = write!(
        h,
        "<p>{} connections, {:.1} s measured, {} requests, {} req/s, p99 {} — {errors}; {verdict}</p>",
        r.connections.requested,
        r.duration_s,
        r.requests,
        fmt_count(r.throughput_rps),
        fmt_us(r.latency_us.p99)
    );
    h.push_str("<h2>Requests</h2><table><tr><th class=\"l\">kind</th><th>requests</th><th>ok</th><th>sold out</th><th>errors</th><th>req/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    let all = r.all_kinds();
    let rows = r
        .per_kind
        .iter()
        .map(|(n, k)| (n.as_str(), k))
        .chain([("all", &all)]);
    for (n, k) in rows {
        let l = &k.latency_us;
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(n),
            k.requests,
            k.ok,
            k.sold_out,
            k.errors,
            fmt_count(k.throughput_rps),
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max)
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Errors</h2>");
    if r.errors.is_empty() {
        h.push_str("<p>none</p>");
    } else {
        h.push_str(
            "<table><tr><th class=\"l\">kind</th><th>count</th><th class=\"l\">example</th></tr>",
        );
        for (k, n) in &r.errors {
            let ex = r.error_samples.get(k).map(String::as_str).unwrap_or("");
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{n}</td><td class=\"l\">{}</td></tr>",
                escape(k),
                escape(ex)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Plots</h2>");
    for c in charts(r) {
        h.push_str(&c.render());
    }
    h.push_str("<h2>Check and configuration</h2><pre>");
    let detail = serde_json::json!({
        "check": r.check,
        "check_error": r.check_error,
        "connections": r.connections,
        "setup": r.setup,
        "leader_changes": r.leader_changes,
        "follow": r.follow,
        "stream": r.stream,
        "config": r.config,
    });
    let pretty = serde_json::to_string_pretty(&detail).unwrap_or_default();
    h.push_str(&escape(&pretty));
    h.push_str("</pre></body></html>\n");
    h
}

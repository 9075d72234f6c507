//! The stock stream's counters in Prometheus text, for `/metrics`.

use super::{HubStats, ServerStatsSnapshot};
use std::fmt::Write as _;

use crate::http::metrics::{counter, gauge, header, us_to_s};

/// Appends the stream's counters: connections, updates, conflation and publication wait.
pub fn render(out: &mut String, hub: &HubStats, server: &ServerStatsSnapshot, interval_us: u64) {
    gauge(
        out,
        "flashsale_stream_connections",
        "Open stock-stream connections.",
        server.active,
    );
    counter(
        out,
        "flashsale_stream_connections_accepted_total",
        "Stock-stream connections accepted.",
        server.accepted,
    );
    counter(
        out,
        "flashsale_stream_connections_refused_total",
        "Stock-stream connections refused at the connection limit.",
        server.refused_busy,
    );
    counter(
        out,
        "flashsale_stream_unauthorized_total",
        "Stock-stream handshakes refused for an unknown token.",
        server.unauthorized,
    );
    counter(
        out,
        "flashsale_stream_protocol_errors_total",
        "Stock-stream connections closed for a malformed or unexpected frame.",
        server.protocol_errors,
    );
    counter(
        out,
        "flashsale_stream_updates_sent_total",
        "Update frames sent, all connections.",
        server.updates_sent,
    );
    counter(
        out,
        "flashsale_stream_lagging_reads_total",
        "Times a lagging connection got the latest value per SKU instead of every update.",
        server.coalesced_batches,
    );
    counter(
        out,
        "flashsale_stream_snapshots_sent_total",
        "Snapshots sent.",
        server.snapshots_sent,
    );
    counter(
        out,
        "flashsale_stream_resumes_total",
        "Connections resumed from the history without a snapshot.",
        server.resumes,
    );
    counter(
        out,
        "flashsale_stream_changes_total",
        "Stock changes the stream learned of.",
        hub.observed,
    );
    counter(
        out,
        "flashsale_stream_changes_conflated_total",
        "Changes merged into a later value of the same SKU before publication.",
        hub.inbox_coalesced,
    );
    counter(
        out,
        "flashsale_stream_publications_total",
        "Publications (rounds of updates) of the stream.",
        hub.publishes,
    );
    gauge(
        out,
        "flashsale_stream_head_seq",
        "Newest update sequence number.",
        hub.head_seq,
    );
    header(
        out,
        "flashsale_stream_publish_interval_seconds",
        "gauge",
        "Current time between publications (grows with connections to fit the sends budget).",
    );
    let _ = writeln!(
        out,
        "flashsale_stream_publish_interval_seconds {}",
        us_to_s(interval_us)
    );
    header(
        out,
        "flashsale_stream_publish_wait_quantile_seconds",
        "gauge",
        "Time from a stock change to its publication since start, by quantile (1 = the longest).",
    );
    for (q, us) in [
        ("0.5", hub.wait_p50_us),
        ("0.99", hub.wait_p99_us),
        ("1", hub.wait_max_us),
    ] {
        let _ = writeln!(
            out,
            "flashsale_stream_publish_wait_quantile_seconds{{quantile=\"{q}\"}} {}",
            us_to_s(us)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_counter_is_rendered_with_help_and_type() {
        let hub = HubStats {
            observed: 10,
            inbox_coalesced: 7,
            head_seq: 3,
            history_len: 3,
            skus: 1,
            coalesced_reads: 0,
            publishes: 3,
            wait_p50_us: 100,
            wait_p99_us: 4_900,
            wait_max_us: 5_100,
        };
        let server = ServerStatsSnapshot {
            active: 2,
            updates_sent: 6,
            ..ServerStatsSnapshot::default()
        };
        let mut out = String::new();
        render(&mut out, &hub, &server, 5_000);
        for line in [
            "flashsale_stream_connections 2",
            "flashsale_stream_updates_sent_total 6",
            "flashsale_stream_changes_conflated_total 7",
            "flashsale_stream_publish_interval_seconds 0.005",
            "flashsale_stream_publish_wait_quantile_seconds{quantile=\"0.99\"} 0.0049",
            "flashsale_stream_publish_wait_quantile_seconds{quantile=\"1\"} 0.0051",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // One sample per family, but three quantiles of the publication wait.
        let samples = out.lines().filter(|l| !l.starts_with('#')).count();
        let types = out.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(samples, types + 2);
        assert!(!out.contains("_us"), "durations are in seconds:\n{out}");
    }
}

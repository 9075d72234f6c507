//! The load generator's defaults against a default `flashsale serve` (per-buyer rate limit on):
//! a buyer per arrival measures reservations, not the limiter; when more than `--max-error-rate`
//! (1 %) of requests fail, the summary and the HTML headline say so and the exit status is 3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::real_server::{RealServer, ADMIN, STOREFRONT};

/// What one loadgen run printed and wrote.
struct Run {
    code: i32,
    stdout: String,
    report: Value,
    html: String,
}

/// Runs the loadgen binary for a short hot-item run with `extra` flags.
fn loadgen(server: &RealServer, sku: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_flashsale-loadgen"))
        .args(["--target", &format!("http://{}", server.http)])
        .args(["--token", STOREFRONT, "--admin-token", ADMIN])
        .args(["--scenario", "hot-item", "--connections", "20"])
        .args(["--duration", "2", "--stock", "1000000", "--sku", sku])
        .arg("--report")
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .args(extra)
        .env_remove("FLASHSALE_STOREFRONT_TOKEN")
        .env_remove("FLASHSALE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let code = out.status.code().unwrap_or(-1);
    let json = std::fs::read(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); exit {code}\n{stdout}\n{stderr}"));
    Run {
        code,
        stdout,
        report: serde_json::from_slice(&json).unwrap(),
        html: std::fs::read_to_string(&html).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_measure_reservations_and_errors_fail_the_run() {
    // The server's defaults: 10 reservations/s per buyer (burst 20).
    let server = RealServer::start(&["--shards", "2"]).await;

    let run = loadgen(&server, "er-default", &[]);
    assert_eq!(run.report["config"]["buyer_ids"], "per-arrival");
    assert_eq!(
        run.report["errors_total"], 0,
        "a buyer per arrival is never rate limited: {}",
        run.report["errors"]
    );
    assert_eq!(run.report["too_many_errors"], false);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("PASSED: errors 0.00 % of requests"),
        "{}",
        run.stdout
    );
    let last = run.report["timeline"].as_array().unwrap().last().cloned();
    let last = last.expect("a timeline");
    assert!(
        last["counts"]["requests"].as_u64().unwrap() > 0,
        "no empty bucket at the end: {last}"
    );

    // One buyer per connection runs into the per-buyer limit: mostly 429s.
    let run = loadgen(&server, "er-limited", &["--buyer-ids", "per-connection"]);
    assert!(
        run.report["errors"]["http_429_rate-limited"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(run.report["error_rate_percent"].as_f64().unwrap() > 1.0);
    assert_eq!(run.report["too_many_errors"], true);
    assert_eq!(run.code, 3, "more than 1 % errors fails the run");
    assert!(run.stdout.contains("FAILED: "), "{}", run.stdout);
    assert!(
        run.stdout.contains("more than --max-error-rate 1 %"),
        "{}",
        run.stdout
    );
    assert!(
        run.html.contains("<span class=\"bad\">") && run.html.contains("requests were errors"),
        "the HTML headline says it in red"
    );
    assert_eq!(run.report["oversold"], 0, "the check itself passed");

    // The threshold is a flag.
    let run = loadgen(
        &server,
        "er-lenient",
        &["--buyer-ids", "per-connection", "--max-error-rate", "100"],
    );
    assert_eq!(run.report["too_many_errors"], false);
    assert_eq!(run.code, 0);
}

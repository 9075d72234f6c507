//! The `flashsale-chaos` binary: the workload against a real `flashsale serve` records a history
//! the checker accepts; exit codes follow the verdict; non-loopback targets and broken history
//! files are refused with a message, not a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output};

use flashsale_loadgen::chaos::history::{self, Call, Phase};
use support::history::{clean_history_text, write_text};
use support::real_server::{RealServer, ADMIN, STOREFRONT};

fn chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flashsale-chaos"))
        .args(args)
        .env_remove("FLASHSALE_STOREFRONT_TOKEN")
        .env_remove("FLASHSALE_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_records_a_history_the_checker_accepts() {
    // No faults and no same-key concurrency (duplicates, and retries racing a request the
    // client gave up on, are what the engine of this commit gets wrong; the chaos run covers
    // them): the history of a healthy server must be valid.
    let server = RealServer::start(&[
        "--shards",
        "2",
        "--rate-limit-buyer-rps",
        "0",
        "--expiry-tick-ms",
        "50",
        "--storefront-token",
        "it-shop-b",
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("h.jsonl");
    let target = format!("http://{}", server.http);
    let out = chaos(&[
        "workload",
        "--target",
        &target,
        "--token",
        STOREFRONT,
        "--token-b",
        "it-shop-b",
        "--admin-token",
        ADMIN,
        "--duration",
        "3",
        "--workers",
        "4",
        "--seed",
        "5",
        "--dup-share",
        "0",
        "--short-timeout-share",
        "0",
        "--reset-share",
        "0",
        "--history",
        hist.to_str().unwrap(),
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("verdict: VALID"), "{shown}");
    let h = history::read(&hist).unwrap();
    assert_eq!(h.meta.callers.len(), 2);
    assert!(h.ops.len() > 50, "{} ops", h.ops.len());
    let reserves = h
        .ops
        .iter()
        .filter(|(_, o)| matches!(o.call, Call::Reserve { .. }))
        .count();
    let finals = h
        .ops
        .iter()
        .filter(|(_, o)| o.phase == Phase::Final)
        .count();
    assert!(reserves > 20, "{reserves} reservations");
    assert!(finals >= h.meta.skus.len(), "{finals} read-back ops");
}

#[test]
fn exit_codes_follow_the_verdict() {
    let (_d, p) = write_text(&clean_history_text());
    let out = chaos(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let broken = clean_history_text().replace(r#""status":"expired""#, r#""status":"held""#);
    let (_d, p) = write_text(&broken);
    let report = p.with_extension("json");
    let out = chaos(&[
        "check",
        p.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["history"]["verdict"], "invalid");
}

#[test]
fn broken_histories_and_remote_targets_are_refused() {
    let t = clean_history_text();
    let (_d, p) = write_text(&t[..t.len() - 7]);
    let out = chaos(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let n = t.lines().count();
    assert!(
        text(&out).contains(&format!(":{n}: truncated record")),
        "{}",
        text(&out)
    );

    let out = chaos(&[
        "workload",
        "--target",
        "http://192.0.2.1:8080",
        "--token",
        "t",
        "--admin-token",
        "a",
        "--duration",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not a loopback address"),
        "{}",
        text(&out)
    );

    let out = chaos(&["run", "--bind", "192.0.2.1", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not a loopback address"),
        "{}",
        text(&out)
    );
}

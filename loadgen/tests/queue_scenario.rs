//! `flashsale-loadgen --scenario queue` against a real `flashsale serve` on loopback: 300
//! buyers (30 % in the pre-queue) for 150 units, and the report's promises: no reservation
//! without a pass, nothing oversold, fifo order after the start, a shuffled pre-queue, every
//! waiting ticket told of the sell-out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Instant;

use flashsale_loadgen::queue::report::MAX_SHUFFLE_Z;
use serde_json::Value;
use support::real_server::{RealServer, ADMIN, STOREFRONT};

fn loadgen(server: &RealServer, extra: &[&str]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flashsale-loadgen"))
        .args(["--target", &format!("http://{}", server.http)])
        .args(["--token", STOREFRONT, "--admin-token", ADMIN])
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let code = out.status.code().unwrap_or(-1);
    let json = std::fs::read(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); exit {code}\n{stdout}\n{stderr}"));
    (code, serde_json::from_slice(&json).unwrap(), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_scenario_keeps_the_waiting_rooms_promises() {
    let server = RealServer::start(&["--shards", "2", "--rate-limit-buyer-rps", "0"]).await;
    let started = Instant::now();
    let (code, r, stdout) = loadgen(
        &server,
        &[
            "--scenario",
            "queue",
            "--connections",
            "300",
            "--stock",
            "150",
            "--prequeue-share",
            "0.3",
            "--sku",
            "it-queue",
            "--prequeue-s",
            "2",
            "--join-window-s",
            "3",
            "--admit-per-s",
            "100",
            // Longer than the 5 s poll interval of a sold-out ticket: a buyer admitted while it
            // waits for its next poll still finds its pass alive.
            "--pass-ttl-s",
            "8",
            "--reservation-ttl-s",
            "2",
            "--confirm-share",
            "0.94",
            "--cancel-share",
            "0.03",
            "--duration",
            "45",
            "--quiet",
        ],
    );
    let took = started.elapsed();
    let q = &r["queue"];
    assert_eq!(code, 0, "the run and its checks passed: {}", q["failures"]);
    assert!(
        stdout.contains("order after the start: Kendall tau"),
        "{stdout}"
    );
    assert_eq!(q["failures"], serde_json::json!([]));
    assert_eq!(q["joined"], 300);

    // Nothing without a pass: the probes were all refused with the right problem.
    let w = &q["without_pass"];
    assert_eq!(w["attempts"], 20);
    assert_eq!(w["succeeded"], 0);
    assert_eq!(w["refused_pass_required"], 10);
    assert_eq!(w["refused_pass_invalid"], 10);

    // Nothing oversold, checked against the server's counts.
    assert_eq!(r["oversold"], 0);
    let counts = server.counts("it-queue").await;
    assert_eq!(counts.total, 150);
    assert!(counts.sold + counts.reserved <= 150, "{counts:?}");
    assert_eq!(
        q["server"]["spent"].as_i64().unwrap(),
        counts.sold,
        "each sale spent one pass"
    );
    assert_eq!(q["confirmed"].as_i64().unwrap(), counts.sold);

    // Fifo after the start, a shuffle before it.
    let after = &q["order"]["after_start"];
    assert!(after["n"].as_u64().unwrap() >= 20, "{after}");
    assert!(after["tau"].as_f64().unwrap() >= 0.99, "{after}");
    assert_eq!(after["discordant_pairs"], 0, "{after}");
    let pre = &q["order"]["prequeue"];
    assert!(pre["n"].as_u64().unwrap() >= 30, "{pre}");
    // Judged at a false-alarm rate of 10⁻⁶ (MAX_SHUFFLE_Z): a pre-queue left in join order has
    // |z| ≈ 14 here; the room's seeded χ² test checks uniformity closely.
    assert!(pre["z"].as_f64().unwrap().abs() <= MAX_SHUFFLE_Z, "{pre}");

    // Time to admission and polls were measured.
    let admitted = q["admitted"].as_u64().unwrap();
    assert!(admitted >= 150, "{q}");
    assert_eq!(q["time_to_admission_ms"]["count"], admitted);
    assert!(q["polls"]["total"].as_u64().unwrap() > 0);
    assert!(q["polls"]["median_rps"].as_f64().unwrap() > 0.0);

    // 300 buyers for 150 units: it sold out, and every waiting ticket learned it within one
    // poll interval (1 s for these waits, 5 s once sold out with holds) and a tick.
    let s = &q["sold_out"];
    assert!(s["final_at_s"].is_number(), "{s}");
    assert!(s["waiting"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["never_learned"], 0, "{s}");
    assert!(s["lag_ms"]["max"].as_u64().unwrap() <= 5_500, "{s}");
    assert!(
        took.as_secs() < 45,
        "the run ends once nothing can change: {took:?}"
    );
}

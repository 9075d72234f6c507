//! The load generator follows the leader of an HA group: two real `flashsale serve --ha` nodes
//! on one Postgres schema, a `hot-item` run given both as `--target`, the leader SIGKILLed in
//! the middle of the run. The run moves to the survivor: at least one leader change reported,
//! nothing oversold, every acknowledged reservation on the survivor, and no `not-leader` answer
//! counted as an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flashsale_client::Role;
use serde_json::Value;
use support::pg_schema::{PgSchema, PG_URL};
use support::real_server::{RealServer, Wait, ADMIN, STOREFRONT};

/// The group's lease (fast takeovers).
const LEASE_MS: &str = "1000";
/// The run's SKU.
const SKU: &str = "it-follow";

/// A node of the group on `schema`.
async fn node(schema: &str, node_id: &str, wait: Wait) -> RealServer {
    RealServer::start_with(
        &[
            "--shards",
            "2",
            "--rate-limit-buyer-rps",
            "0",
            "--database-url",
            PG_URL,
            "--database-schema",
            schema,
            "--ha",
            "--node-id",
            node_id,
            "--ha-lease-ms",
            LEASE_MS,
        ],
        wait,
    )
    .await
}

/// Waits (bounded) until `server` says it has `role`.
async fn wait_role(server: &RealServer, role: Role) {
    let client = server.client(ADMIN);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.cluster().await {
            if r.value.role == role {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} is not {role:?} after 20 s",
            server.http
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until `server` holds some of the SKU: the load has started.
async fn wait_load(server: &RealServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = server.client(STOREFRONT);
    let sku = flashsale_protocol::SkuId::new(SKU).unwrap();
    loop {
        if let Ok(v) = client.sku(&sku).await {
            if flashsale_loadgen::check::SkuCounts::from(&v.value).reserved > 0 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the load did not start in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_item_follows_the_leader_across_a_sigkill() {
    let started = Instant::now();
    let schema = PgSchema::new("follow");
    let mut leader = node(&schema.0, "n0", Wait::Ready).await;
    wait_role(&leader, Role::Leader).await;
    let survivor = node(&schema.0, "n1", Wait::Health).await;
    wait_role(&survivor, Role::Standby).await;

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_flashsale-loadgen"))
        .args(["--target", &leader.url(), "--target", &survivor.url()])
        .args(["--token", STOREFRONT, "--admin-token", ADMIN])
        .args(["--scenario", "hot-item", "--connections", "32"])
        .args(["--duration", "8", "--stock", "1000000", "--sku", SKU])
        .args(["--timeout-ms", "3000", "--quiet"])
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Kill the leader a moment into the load.
    wait_load(&leader).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    leader.kill();
    let killed_at = Instant::now();

    let out = tokio::task::spawn_blocking(move || run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let r: Value = serde_json::from_slice(
        &std::fs::read(&report).unwrap_or_else(|e| panic!("no report ({e})\n{stderr}")),
    )
    .unwrap();
    println!("follow: {}", r["follow"]);

    // The buyers moved to the survivor.
    let changes = r["leader_changes"].as_u64().unwrap();
    assert!(changes >= 1, "no leader change: {}", r["follow"]);
    assert_eq!(r["follow"]["leader_at_end"], survivor.url().as_str());
    let first = &r["follow"]["changes"][0];
    assert_eq!(first["to"], survivor.url().as_str(), "{first}");
    let gap = first["gap_s"].as_f64().expect("the gap of the move");
    assert!(
        (0.0..10.0).contains(&gap),
        "gap {gap} s (killed {:?} after the start)",
        killed_at - started
    );
    println!("leader change: gap {:.0} ms", gap * 1000.0);
    // A not-leader answer (or a broken connection) led to a move and a retry, not an error.
    let errors = r["errors"].as_object().unwrap();
    assert!(
        !errors.contains_key("http_503_not-leader"),
        "not-leader counted as errors: {errors:?}"
    );
    assert!(
        !errors.contains_key("io") && !errors.contains_key("connect"),
        "requests lost at the move were not sent again: {errors:?}"
    );
    assert!(
        r["follow"]["retried_requests"].as_u64().unwrap() >= 1,
        "requests in flight at the kill were sent again: {}",
        r["follow"]
    );
    assert_eq!(out.status.code(), Some(0), "the run and its check passed");

    // Nothing oversold; every acknowledged reservation is on the survivor.
    assert_eq!(r["oversold"], 0);
    assert_eq!(r["counts_match"], true, "{}", r["check"]);
    let told = &r["check"]["told"];
    let held = told["held"].as_u64().unwrap();
    let unknown = told["unknown_reserve"].as_u64().unwrap();
    assert_eq!(
        held,
        r["per_kind"]["reserve"]["ok"].as_u64().unwrap(),
        "one unit per acknowledged reservation"
    );
    assert!(held > 0, "the load acknowledged reservations");
    let counts = survivor.counts(SKU).await;
    assert_eq!(counts.total, 1_000_000);
    let on_survivor = u64::try_from(counts.reserved + counts.sold).unwrap();
    assert!(
        on_survivor >= held && on_survivor <= held + unknown,
        "acknowledged {held} (+{unknown} unknown), the survivor holds {on_survivor}"
    );
    println!("test took {:?}", started.elapsed());
}

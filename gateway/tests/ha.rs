//! High availability with real processes on one Postgres schema: roles and `503 not-leader`,
//! refused flags and duplicate node ids, carry-over of idempotency keys and expiry timers,
//! 20 SIGKILLs of the leader under load (every acknowledged reservation on the survivor, no
//! oversell, takeover time per cycle printed), a SIGSTOPped leader that is fenced, and
//! Postgres restarted under a group (a cluster of the test's own, never the shared one).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{flashsale, Api, Launch, PgSchema, Reply, Server, ADMIN, DATABASE_URL, SHOP};

/// The lease of the test nodes (fast takeovers).
const LEASE_MS: &str = "1000";

/// Starts a node of the group on `schema` in `dir`.
fn node(dir: &Path, schema: &str, node_id: &str) -> Server {
    node_on(DATABASE_URL, dir, schema, node_id)
}

/// Starts a node of the group on `schema` of the database at `url`, in `dir`.
fn node_on(url: &str, dir: &Path, schema: &str, node_id: &str) -> Server {
    let extra = [
        "--database-url",
        url,
        "--database-schema",
        schema,
        "--ha",
        "--node-id",
        node_id,
        "--ha-lease-ms",
        LEASE_MS,
    ];
    Server::launch(
        dir,
        Launch {
            extra: &extra,
            ..Launch::default()
        },
    )
}

async fn cluster(api: &Api) -> Reply {
    api.get("/v1/cluster", ADMIN).await
}

/// Waits (bounded) until `server` reports `role`.
async fn wait_role(server: &Server, role: &str, limit: Duration) -> Value {
    wait_view(server, role, limit, |v| v["role"] == role).await
}

/// Polls `GET /v1/cluster` on `server` until its view satisfies `done` (`what` names it).
async fn wait_view(
    server: &Server,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let api = Api::new(server);
    let deadline = Instant::now() + limit;
    loop {
        let r = cluster(&api).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not become {what} within {limit:?}: {}",
            server.addr,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sku_body(stock: u64, ttl_s: u64) -> Value {
    json!({"name": "HA tee", "price_cents": 1000, "stock": stock, "reservation_ttl_s": ttl_s})
}

#[test]
fn ha_without_a_database_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = flashsale(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--ha",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--ha needs --database-url"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_refuses_writes_and_takes_over_with_keys_and_timers() {
    let schema = PgSchema::new("ha_roles");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(da.path(), schema.name(), "a");
    let a_view = wait_role(&a, "leader", Duration::from_secs(20)).await;
    assert!(a_view["epoch"].as_u64().unwrap() >= 1, "{a_view}");
    assert_eq!(a_view["leader_url"], format!("http://{}", a.addr));
    let b = node(db.path(), schema.name(), "b");
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    // The standby: /ready 503 and writes 503 not-leader naming the leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let r = api_b.send("GET", "/ready", None, None).await;
        if r.body["leader_url"].is_string() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((ready.status, ready.problem()), (503, "not-leader"));
    assert_eq!(ready.body["leader_url"], format!("http://{}", a.addr));
    let b_view = cluster(&api_b).await.body;
    assert_eq!(
        (b_view["role"].as_str(), b_view["node_id"].as_str()),
        (Some("standby"), Some("b"))
    );
    api_a.put_sku("ha-tee", sku_body(10, 3600)).await;
    api_a.put_sku("ha-short", sku_body(5, 1)).await;
    // The leader's /metrics has per-SKU stock (its engine behind the HA switch); the standby's
    // has none (no engine).
    let metrics = |s: &Server| {
        let url = s.url("/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let text = metrics(&a).await;
    assert!(
        text.contains("flashsale_sku_stock_units{sku=\"ha-tee\",state=\"available\"} 10"),
        "{text}"
    );
    assert!(metrics(&b).await.contains("flashsale_skus 0"));
    let refused = api_b.reserve("x", "ha-tee", 1).await;
    assert_eq!((refused.status, refused.problem()), (503, "not-leader"));
    assert_eq!(refused.body["leader_url"], format!("http://{}", a.addr));
    assert!(refused.headers.contains_key("retry-after"));
    // Admin only.
    assert_eq!(api_b.get("/v1/cluster", SHOP).await.status, 403);

    // A second live node with the same id is refused at start.
    let dc = tempfile::tempdir().unwrap();
    let data_c = dc.path().join("data");
    let (code, _, err) = flashsale(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--data-dir",
            data_c.to_str().unwrap(),
            "--database-url",
            DATABASE_URL,
            "--database-schema",
            schema.name(),
            "--ha",
            "--node-id",
            "a",
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("node id \"a\" is in use"), "{err}");

    // State carried over: an idempotency key and an expiry timer.
    let body = json!({"buyer": "kim", "lines": [{"sku": "ha-tee", "qty": 2}]});
    let keyed = |api: &Api| {
        let (api, body) = (api.clone(), body.to_string());
        async move {
            api.raw(
                "POST",
                "/v1/reservations",
                Some(SHOP),
                Some(body),
                &[("idempotency-key", "carry-1")],
            )
            .await
        }
    };
    let first = keyed(&api_a).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let short = api_a.reserve("lee", "ha-short", 3).await;
    assert_eq!(short.status, 201, "{}", short.body);
    let short_id = short.body["id"].as_str().unwrap().to_owned();
    a.stop();
    // A clean stop releases the lease: the standby takes over without waiting for expiry.
    let b_view = wait_role(&b, "leader", Duration::from_secs(5)).await;
    assert!(
        b_view["epoch"].as_u64() > a_view["epoch"].as_u64(),
        "{b_view}"
    );
    let again = keyed(&api_b).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(
        again.body["id"], first.body["id"],
        "the retry returns the original"
    );
    assert_eq!(api_b.counts("ha-tee").await, (8, 2, 0));
    // The 1 s reservation expires on the new leader, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api_b
            .get(&format!("/v1/reservations/{short_id}"), SHOP)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api_b.counts("ha-short").await, (5, 0, 0));
    // A single node (unfenced writes) refuses the schema the group leads.
    let dd = tempfile::tempdir().unwrap();
    let data_d = dd.path().join("data");
    let (code, _, err) = flashsale(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--data-dir",
            data_d.to_str().unwrap(),
            "--database-url",
            DATABASE_URL,
            "--database-schema",
            schema.name(),
            "--admin-token",
            ADMIN,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("start with --ha to join it"), "{err}");
    b.stop();
}

/// What the load saw: acknowledged reservations (id, node) and when each node first acked.
#[derive(Default)]
struct Seen {
    acked: Vec<(String, String, Instant)>,
}

/// Buyers reserving one unit each against whichever node leads (following `leader_url`, and
/// trying every known node after a transport error), until `stop`.
async fn load(
    nodes: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    worker: usize,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut target: Option<String> = None;
    for i in 0..100_000usize {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let base = match &target {
            Some(t) => t.clone(),
            None => {
                let list = nodes.lock().unwrap().clone();
                list[(worker + i) % list.len()].clone()
            }
        };
        let res = http
            .post(format!("{base}/v1/reservations"))
            .bearer_auth(SHOP)
            .json(&json!({"buyer": format!("w{worker}-{i}"), "lines": [{"sku": "ha-load", "qty": 1}]}))
            .send()
            .await;
        let Ok(res) = res else {
            target = None;
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        match status {
            201 => {
                let id = body["id"].as_str().unwrap().to_owned();
                seen.lock().unwrap().acked.push((id, base, Instant::now()));
            }
            503 => {
                target = body["leader_url"].as_str().map(str::to_owned);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            409 => {
                assert!(
                    body["type"].as_str().unwrap_or("").ends_with("sold-out"),
                    "{body}"
                );
                return;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_under_load_twenty_times() {
    const CYCLES: usize = 20;
    const STOCK: u64 = 1_000_000;
    let schema = PgSchema::new("ha_kill");
    let dirs: Vec<_> = (0..=CYCLES + 1)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut leader = node(dirs[0].path(), schema.name(), "n0");
    wait_role(&leader, "leader", Duration::from_secs(20)).await;
    Api::new(&leader)
        .put_sku("ha-load", sku_body(STOCK, 3600))
        .await;
    let mut standby = node(dirs[1].path(), schema.name(), "n1");
    wait_role(&standby, "standby", Duration::from_secs(10)).await;
    let nodes = Arc::new(Mutex::new(vec![leader.url(""), standby.url("")]));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(load(nodes.clone(), seen.clone(), stop.clone(), w)))
        .collect();
    let mut takeovers = Vec::new();
    for cycle in 0..CYCLES {
        // Load on the leader for a moment, then kill it mid-load.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed_url = leader.url("");
        let before = seen.lock().unwrap().acked.len();
        leader.kill();
        let killed_at = Instant::now();
        // The survivor takes over; the load follows it.
        let survivor_url = standby.url("");
        let deadline = killed_at + Duration::from_secs(10);
        let first_ack = loop {
            let first = seen
                .lock()
                .unwrap()
                .acked
                .iter()
                .skip(before)
                .find(|(_, node, at)| *node == survivor_url && *at > killed_at)
                .map(|(_, _, at)| *at);
            if let Some(at) = first {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no reservation acknowledged by the survivor within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let takeover = first_ack - killed_at;
        println!(
            "cycle {cycle:2}: takeover {} ms (leader death → first acknowledged reservation)",
            takeover.as_millis()
        );
        takeovers.push(takeover);
        assert!(
            takeover < Duration::from_secs(5),
            "cycle {cycle}: takeover {takeover:?} beyond 5 s"
        );
        // A fresh standby replaces the dead node.
        leader = std::mem::replace(
            &mut standby,
            node(
                dirs[cycle + 2].path(),
                schema.name(),
                &format!("n{}", cycle + 2),
            ),
        );
        {
            let mut list = nodes.lock().unwrap();
            list.retain(|u| *u != killed_url);
            list.push(standby.url(""));
        }
        wait_role(&standby, "standby", Duration::from_secs(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    // Every acknowledged reservation is on the last leader; nothing oversold.
    let api = Api::new(&leader);
    let acked: Vec<String> = seen
        .lock()
        .unwrap()
        .acked
        .iter()
        .map(|(id, _, _)| id.clone())
        .collect();
    assert!(acked.len() > CYCLES, "too little load: {}", acked.len());
    for id in &acked {
        let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.body);
    }
    let (available, reserved, sold) = api.counts("ha-load").await;
    assert!(
        reserved + sold >= acked.len() as u64,
        "acknowledged units lost"
    );
    assert_eq!(available + reserved + sold, STOCK);
    takeovers.sort();
    let ms = |d: Duration| d.as_millis();
    println!(
        "takeovers over {CYCLES} kills: min {} ms, median {} ms, p90 {} ms, max {} ms; {} reservations acknowledged",
        ms(takeovers[0]),
        ms(takeovers[CYCLES / 2]),
        ms(takeovers[CYCLES * 9 / 10]),
        ms(takeovers[CYCLES - 1]),
        acked.len()
    );
    standby.stop();
    leader.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_fenced_and_steps_down() {
    let schema = PgSchema::new("ha_pause");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(da.path(), schema.name(), "a");
    wait_role(&a, "leader", Duration::from_secs(20)).await;
    let api_a = Api::new(&a);
    api_a.put_sku("ha-pause", sku_body(100_000, 3600)).await;
    let b = node(db.path(), schema.name(), "b");
    wait_role(&b, "standby", Duration::from_secs(10)).await;
    let api_b = Api::new(&b);
    // Requests to the old leader, in flight across the pause, and sent after it resumes.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let send = |buyer: String| {
        let (http, url) = (http.clone(), a.url("/v1/reservations"));
        async move {
            let res = http
                .post(url)
                .bearer_auth(SHOP)
                .json(&json!({"buyer": buyer, "lines": [{"sku": "ha-pause", "qty": 1}]}))
                .send()
                .await;
            match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(_) => (0, Value::Null),
            }
        }
    };
    let ok = send("before".into()).await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    a.signal("STOP");
    let paused_at = Instant::now();
    let in_flight: Vec<_> = (0..8)
        .map(|i| tokio::spawn(send(format!("paused-{i}"))))
        .collect();
    // The standby takes over once the paused leader's lease lapses.
    wait_role(&b, "leader", Duration::from_secs(10)).await;
    println!(
        "takeover after a pause: {} ms from SIGSTOP to the standby leading (lease {LEASE_MS} ms)",
        paused_at.elapsed().as_millis()
    );
    a.signal("CONT");
    let resumed_at = Instant::now();
    let mut after = Vec::new();
    while resumed_at.elapsed() < Duration::from_millis(1500) {
        after.push(send(format!("after-{}", after.len())).await);
    }
    let mut acked_by_old = Vec::new();
    for (status, body) in after {
        assert_ne!(
            status, 201,
            "the deposed leader acknowledged a request sent after the takeover: {body}"
        );
        if status == 503 {
            assert!(
                matches!(
                    body["type"].as_str(),
                    Some(t) if t.ends_with("not-leader") || t.ends_with("unavailable")
                ),
                "{body}"
            );
            // A resumed leader never names itself: unknown, or the new leader.
            assert_ne!(
                body["leader_url"],
                format!("http://{}", a.addr),
                "the deposed leader sent clients back to itself: {body}"
            );
        }
    }
    for t in in_flight {
        let (status, body) = t.await.unwrap();
        if status == 201 {
            acked_by_old.push(body["id"].as_str().unwrap().to_owned());
        }
    }
    // Whatever the old leader did acknowledge (committed before the takeover) is on the new.
    for id in &acked_by_old {
        let r = api_b.get(&format!("/v1/reservations/{id}"), SHOP).await;
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.body);
    }
    // A node that steps down names the new leader at once (it reads the lease as it steps
    // down); the wait covers the controller's first round after the resume.
    let b_url = format!("http://{}", b.addr);
    let a_view = wait_view(&a, "a standby naming b", Duration::from_secs(10), |v| {
        v["role"] == "standby" && v["leader_url"] == b_url.as_str()
    })
    .await;
    assert_eq!(
        a_view["leader_url"],
        format!("http://{}", b.addr),
        "{a_view}"
    );
    let (available, reserved, sold) = api_b.counts("ha-pause").await;
    assert_eq!(available + reserved + sold, 100_000);
    assert_eq!(
        reserved,
        1 + acked_by_old.len() as u64,
        "only acknowledged reservations hold stock"
    );
    b.stop();
    a.stop();
}

/// A Postgres cluster of the test's own (initdb in a temporary dir, its own port), so that it
/// can be stopped and started without touching the shared one. As root the tools run as the
/// `postgres` user (initdb refuses root).
struct OwnPostgres {
    bin: std::path::PathBuf,
    home: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl OwnPostgres {
    fn tool(&self, name: &str) -> std::process::Command {
        let path = self.bin.join(name);
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        c.stdin(std::process::Stdio::null());
        c
    }

    fn run(&self, mut c: std::process::Command, what: &str) {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn create() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .unwrap_or_else(|| panic!("no /usr/lib/postgresql/*/bin/initdb"));
        let home = tempfile::tempdir().unwrap();
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(home.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPostgres {
            bin,
            home,
            port,
            as_postgres,
        };
        let mut c = pg.tool("initdb");
        c.arg("-D").arg(pg.home.path().join("data")).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        pg.run(c, "initdb");
        pg.start();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40 -c shared_buffers=16MB",
            self.port,
            self.home.path().display()
        );
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.home.path().join("data"))
            .arg("-l")
            .arg(self.home.path().join("postgres.log"))
            .args(["-w", "-o", &opts, "start"]);
        self.run(c, "pg_ctl start");
    }

    /// Stops at once, like a crash of the database.
    fn crash(&self) {
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.home.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        self.run(c, "pg_ctl stop -m immediate");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.home.path().join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_a_group() {
    let pg = OwnPostgres::create();
    let url = pg.url();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node_on(&url, da.path(), "flashsale", "a");
    wait_role(&a, "leader", Duration::from_secs(20)).await;
    let b = node_on(&url, db.path(), "flashsale", "b");
    wait_role(&b, "standby", Duration::from_secs(10)).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    api_a.put_sku("ha-pg", sku_body(1_000, 3600)).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let r = api_a.reserve(&format!("pre-{i}"), "ha-pg", 1).await;
        assert_eq!(r.status, 201, "{}", r.body);
        acked.push(r.body["id"].as_str().unwrap().to_owned());
    }
    pg.crash();
    // Without Postgres nobody can renew: the leader steps down at its lease's end, and no
    // node acknowledges anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cluster(&api_a).await;
        if r.body["role"] == "standby" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader kept leading without Postgres"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for api in [&api_a, &api_b] {
        assert_eq!(api.send("GET", "/ready", None, None).await.status, 503);
        let r = api.reserve("during", "ha-pg", 1).await;
        assert_eq!(r.status, 503, "{}", r.body);
    }
    pg.start();
    // One of them takes the lease again (a new epoch) once Postgres is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let mut found = None;
        for api in [&api_a, &api_b] {
            if cluster(api).await.body["role"] == "leader" {
                found = Some(api.clone());
            }
        }
        if let Some(api) = found {
            break api;
        }
        assert!(
            Instant::now() < deadline,
            "no leader after Postgres came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in &acked {
        let r = leader.get(&format!("/v1/reservations/{id}"), SHOP).await;
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.body);
    }
    let r = leader.reserve("post", "ha-pg", 1).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(leader.counts("ha-pg").await, (979, 21, 0));
    a.stop();
    b.stop();
}

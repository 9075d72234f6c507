//! Starts the real `flashsale` binary on a free loopback port with a temporary data dir.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod pg;
#[allow(unused_imports)] // each test binary uses a part
pub use pg::{psql, PgSchema, DATABASE_URL};

/// The admin token the tests configure.
pub const ADMIN: &str = "test-admin-token";
/// The storefront token the tests configure.
pub const SHOP: &str = "test-storefront-token";
/// The partner token the tests configure.
pub const PARTNER: &str = "test-partner-token";

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Everything printed on stdout before it listened.
    pub banner: Vec<String>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts with the test tokens and `extra` flags in a fresh data dir.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, extra, true);
        s._tmp = Some(tmp);
        s
    }

    /// Starts in `dir` (kept by the caller); with or without the test tokens.
    pub fn start_in(dir: &Path, extra: &[&str], with_tokens: bool) -> Server {
        Self::launch(
            dir,
            Launch {
                extra,
                with_tokens,
                ..Launch::default()
            },
        )
    }

    /// Starts in `dir` (kept by the caller) as `launch` says.
    pub fn launch(dir: &Path, launch: Launch<'_>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashsale"));
        let Launch {
            extra,
            with_tokens,
            quic,
            stderr,
        } = launch;
        let stderr = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        cmd.arg("serve")
            .args(["--http", "127.0.0.1:0", "--quic", quic])
            .arg("--data-dir")
            .arg(Self::data_dir_in(dir))
            .args(["--shards", "2", "--no-pin-cores", "--expiry-tick-ms", "50"])
            .args(["--shutdown-grace-ms", "5000"]);
        if with_tokens {
            cmd.args([
                "--admin-token",
                ADMIN,
                "--storefront-token",
                SHOP,
                "--partner-token",
                PARTNER,
            ]);
        }
        cmd.args(extra)
            .env_remove("RUST_LOG")
            .env("FLASHSALE_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, _) in std::env::vars() {
            if k.starts_with("FLASHSALE_") && k != "FLASHSALE_LOG_LEVEL" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn flashsale");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("http listening on ") {
                        break a.trim().to_owned();
                    }
                    banner.push(line);
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("server did not start: {e:?}; stdout so far: {banner:?}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server {
            child: Some(child),
            addr,
            banner,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// The data dir of a server started in `dir`.
    pub fn data_dir_in(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    /// The QUIC address and certificate fingerprint it printed:
    /// `quic listening on ADDR (certificate sha256 HEX, self-signed)`.
    pub fn quic(&self) -> (std::net::SocketAddr, String) {
        let line = self
            .banner
            .iter()
            .find_map(|l| l.strip_prefix("quic listening on "))
            .unwrap_or_else(|| panic!("no quic line in {:?}", self.banner));
        let (addr, rest) = line.split_once(' ').unwrap();
        let fp = rest
            .strip_prefix("(certificate sha256 ")
            .and_then(|r| r.split([',', ')']).next())
            .unwrap_or_else(|| panic!("no fingerprint in {line:?}"));
        (addr.parse().unwrap(), fp.to_owned())
    }

    /// The token it printed as `generated {role} token: …`, if any.
    pub fn generated_token(&self, role: &str) -> Option<String> {
        let prefix = format!("generated {role} token: ");
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The data dir's parent.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends SIGTERM (no unsafe: the `kill` tool).
    pub fn sigterm(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends `sig` (e.g. `STOP`, `CONT`) with the `kill` tool.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// SIGKILL: the process dies at once, mid-write if it was writing (crash tests).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.sigterm();
        self.wait(Duration::from_secs(30))
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How to start a server besides the data dir.
pub struct Launch<'a> {
    /// More flags.
    pub extra: &'a [&'a str],
    /// Configure the test tokens (else the server uses its stored or generated ones).
    pub with_tokens: bool,
    /// `--quic` address (default: any free port).
    pub quic: &'a str,
    /// Write stderr to this file instead of the test's stderr.
    pub stderr: Option<&'a Path>,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch {
            extra: &[],
            with_tokens: true,
            quic: "127.0.0.1:0",
            stderr: None,
        }
    }
}

/// A free UDP port on loopback (for a server that must come back on the same port).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How long [`flashsale`] lets a command run before it kills it (a command expected to end,
/// such as a refused `serve`, that keeps running instead fails the test rather than hanging it).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Runs the `flashsale` binary with `args` (no server), returning its exit code, stdout and
/// stderr; a run past [`COMMAND_LIMIT`] is killed and reported with code -1.
pub fn flashsale(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashsale"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("FLASHSALE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run flashsale");
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for flashsale") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, mut err) = (out.join().unwrap(), err.join().unwrap());
    if code == -1 {
        err.push_str(&format!(
            "\n(flashsale {args:?} killed or ran past {COMMAND_LIMIT:?})"
        ));
    }
    (code, out, err)
}

/// A JSON answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (or a string if not JSON).
    pub body: Value,
}

impl Reply {
    /// The problem `type` suffix.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("https://flashsale.dev/problems/"))
            .unwrap_or_else(|| panic!("not a problem: {} {}", self.status, self.body))
    }
}

/// A small client for the API.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for `server`.
    pub fn new(server: &Server) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: server.url(""),
        }
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// Sends `method path` with `token` and a raw `body`, plus `headers`.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.raw(method, path, token, body.map(|b| b.to_string()), &[])
            .await
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), None).await
    }

    /// Creates a SKU (admin); panics unless 201/200.
    pub async fn put_sku(&self, sku: &str, body: Value) -> Reply {
        let r = self
            .send("PUT", &format!("/v1/skus/{sku}"), Some(ADMIN), Some(body))
            .await;
        assert!(
            r.status == 201 || r.status == 200,
            "{} {}",
            r.status,
            r.body
        );
        r
    }

    /// Reserves `qty` of `sku` for `buyer` (storefront token).
    pub async fn reserve(&self, buyer: &str, sku: &str, qty: i64) -> Reply {
        let body = serde_json::json!({"buyer": buyer, "lines": [{"sku": sku, "qty": qty}]});
        self.send("POST", "/v1/reservations", Some(SHOP), Some(body))
            .await
    }

    /// Asserts the SKU's counts add up and returns `(available, reserved, sold)`.
    pub async fn counts(&self, sku: &str) -> (u64, u64, u64) {
        let r = self.get(&format!("/v1/skus/{sku}"), SHOP).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let n = |k: &str| r.body[k].as_u64().unwrap();
        assert_eq!(
            n("available") + n("reserved") + n("sold"),
            n("total"),
            "{}",
            r.body
        );
        (n("available"), n("reserved"), n("sold"))
    }
}

/// Starts a node of an HA group on `schema` of the shared Postgres: id `node_id`, a 1 s lease,
/// `more` flags after those; its stderr goes to `stderr` when given (else it is inherited).
pub fn ha_node(
    dir: &Path,
    schema: &str,
    node_id: &str,
    more: &[&str],
    stderr: Option<&Path>,
) -> Server {
    let mut extra = vec![
        "--database-url",
        DATABASE_URL,
        "--database-schema",
        schema,
        "--ha",
        "--node-id",
        node_id,
        "--ha-lease-ms",
        "1000",
    ];
    extra.extend_from_slice(more);
    Server::launch(
        dir,
        Launch {
            extra: &extra,
            stderr,
            ..Launch::default()
        },
    )
}

/// Polls `GET /v1/cluster` of `server` until it reports `role` (within `limit`); its view.
pub async fn wait_role(server: &Server, role: &str, limit: Duration) -> Value {
    let api = Api::new(server);
    let deadline = Instant::now() + limit;
    loop {
        let r = api.get("/v1/cluster", ADMIN).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["role"] == role {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not become {role} within {limit:?}: {}",
            server.addr,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Now minus `secs`, as RFC 3339 (UTC), for queue start times.
pub fn now_rfc3339_minus(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - secs;
    let t = time::OffsetDateTime::from_unix_timestamp(now as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The view of ticket `t` of queue `drop` (asserts 200).
pub async fn ticket(api: &Api, t: &str) -> Value {
    let r = api.get(&format!("/v1/queues/drop/tickets/{t}"), SHOP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls every ticket of queue `drop` until `done` holds for the set, within 10 s.
pub async fn poll_until(
    api: &Api,
    tickets: &[String],
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let mut all = Vec::new();
        for t in tickets {
            all.push(ticket(api, t).await);
        }
        if done(&all) {
            return all;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reserves one `drop-tee` for `buyer`, with the waiting-room `pass` when given.
pub async fn reserve_with(api: &Api, buyer: &str, pass: Option<&str>) -> Reply {
    let body =
        serde_json::json!({"buyer": buyer, "lines": [{"sku": "drop-tee", "qty": 1}]}).to_string();
    let headers: Vec<(&str, &str)> = pass.map(|p| ("flashsale-pass", p)).into_iter().collect();
    api.raw("POST", "/v1/reservations", Some(SHOP), Some(body), &headers)
        .await
}

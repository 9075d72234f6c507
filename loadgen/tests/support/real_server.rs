//! Starting a real `flashsale serve` (the workspace's debug binary) on free loopback ports with
//! a temporary data dir and known tokens; killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flashsale_client::ApiClient;
use flashsale_loadgen::check::SkuCounts;
use flashsale_protocol::SkuId;

/// Admin token given to the server.
pub const ADMIN: &str = "it-admin-token";
/// Storefront token given to the server.
pub const STOREFRONT: &str = "it-storefront-token";

/// A running `flashsale serve`.
pub struct RealServer {
    child: Child,
    /// HTTP address.
    pub http: SocketAddr,
    /// QUIC address.
    pub quic: SocketAddr,
    _data: tempfile::TempDir,
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// The `flashsale` binary, built with `cargo build -p flashsale-gateway --bin flashsale` if it
/// is not there yet.
pub fn flashsale_binary() -> PathBuf {
    let bin = target_dir().join("debug").join("flashsale");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "flashsale-gateway", "--bin", "flashsale"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("running cargo build for the flashsale binary");
        assert!(status.success(), "cargo build -p flashsale-gateway failed");
    }
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What [`RealServer::start_with`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `GET /ready` answers 200 (a leader, or a server without `--ha`).
    Ready,
    /// `GET /health` answers 200 (a standby's `/ready` answers 503 `not-leader`).
    Health,
}

impl RealServer {
    /// Starts the server with `extra` flags and waits until `GET /ready` answers 200.
    pub async fn start(extra: &[&str]) -> RealServer {
        RealServer::start_with(extra, Wait::Ready).await
    }

    /// Starts the server with `extra` flags and waits for `wait`.
    pub async fn start_with(extra: &[&str], wait: Wait) -> RealServer {
        let bin = flashsale_binary();
        let data = tempfile::tempdir().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let quic: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .args(["--http", &http.to_string(), "--quic", &quic.to_string()])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--admin-token", ADMIN, "--storefront-token", STOREFRONT])
            .args(extra)
            .env_remove("FLASHSALE_ADMIN_TOKEN")
            .env_remove("FLASHSALE_STOREFRONT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut server = RealServer {
            child,
            http,
            quic,
            _data: data,
        };
        server.wait_ready(wait).await;
        server
    }

    /// `http://<its HTTP address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// Kills the process with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_ready(&mut self, wait: Wait) {
        let path = match wait {
            Wait::Ready => "/ready",
            Wait::Health => "/health",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = self.client(STOREFRONT);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("flashsale serve exited early: {status}");
            }
            if client.get(path).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "flashsale serve not ready after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `flashsale-client` of this server with `token`.
    pub fn client(&self, token: &str) -> ApiClient {
        ApiClient::new(
            &format!("http://{}", self.http),
            token,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    /// The server's counts of `sku`, read with our own request.
    pub async fn counts(&self, sku: &str) -> SkuCounts {
        let sku = SkuId::new(sku).unwrap();
        let view = self.client(STOREFRONT).sku(&sku).await.unwrap();
        SkuCounts::from(&view.value)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The `flashsale serve` process under test: started on a fixed loopback port (so clients
//! reconnect to the same address after a restart), killed with SIGKILL, paused with
//! SIGSTOP/SIGCONT, restarted on the same log. Its stderr goes to a log file in the run
//! directory; it is killed when dropped.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Longest wait for a (re)started server to listen (log replay included).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a clean exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `flashsale` binary.
    pub bin: PathBuf,
    /// HTTP address (fixed across restarts).
    pub http: SocketAddr,
    /// Embedded log directory (when not Postgres).
    pub data_dir: Option<PathBuf>,
    /// Postgres URL and schema (when Postgres).
    pub database: Option<(String, String)>,
    /// Engine shards.
    pub shards: usize,
    /// Admin token.
    pub admin_token: String,
    /// Storefront tokens.
    pub storefront_tokens: Vec<String>,
    /// Where stderr goes (appended).
    pub log: PathBuf,
    /// Working directory of the process.
    pub cwd: PathBuf,
}

/// A running (or killed) server.
#[derive(Debug)]
pub struct Server {
    spec: ServerSpec,
    child: Option<Child>,
    paused: bool,
    /// Successful starts so far.
    pub starts: u32,
}

/// The last `n` lines of `path` (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child's id (still unreaped, so not recycled).
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Server {
    /// Starts the server and waits until it listens.
    pub async fn start(spec: ServerSpec) -> anyhow::Result<Server> {
        let mut s = Server {
            spec,
            child: None,
            paused: false,
            starts: 0,
        };
        s.spawn()
            .await
            .map_err(|e| anyhow::anyhow!("starting flashsale serve: {e}"))?;
        Ok(s)
    }

    /// The spec it runs with.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// Whether a process is running (possibly paused).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Spawns the process; returns once it printed `http listening on`, or why not.
    pub async fn spawn(&mut self) -> Result<(), String> {
        let spec = &self.spec;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| format!("opening {}: {e}", spec.log.display()))?;
        let _ = writeln!(log, "=== chaos driver: start #{}", self.starts + 1);
        let mut cmd = Command::new(&spec.bin);
        cmd.arg("serve")
            .arg("--http")
            .arg(spec.http.to_string())
            .args(["--quic", "127.0.0.1:0"])
            .args(["--shards", &spec.shards.to_string(), "--no-pin-cores"])
            .args(["--expiry-tick-ms", "50", "--rate-limit-buyer-rps", "0"])
            .args(["--shutdown-grace-ms", "2000"])
            .args(["--admin-token", &spec.admin_token]);
        for t in &spec.storefront_tokens {
            cmd.args(["--storefront-token", t]);
        }
        match (&spec.database, &spec.data_dir) {
            (Some((url, schema)), _) => {
                cmd.args(["--database-url", url, "--database-schema", schema]);
            }
            (None, Some(dir)) => {
                cmd.arg("--data-dir").arg(dir);
            }
            (None, None) => return Err("neither a data dir nor a database".into()),
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("FLASHSALE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env("FLASHSALE_LOG_LEVEL", "warn")
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", spec.bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            return Err("no stdout pipe".into());
        };
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            // Keep draining so that the server never blocks on a full pipe.
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("http listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        self.child = Some(child);
        self.paused = false;
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(())) => {
                self.starts += 1;
                Ok(())
            }
            other => {
                let why = match other {
                    Err(_) => format!("not listening after {START_TIMEOUT:?}"),
                    _ => {
                        let status = match self.child.as_mut() {
                            Some(c) => c.wait().await.map(|s| s.to_string()).unwrap_or_default(),
                            None => String::new(),
                        };
                        format!("exited ({status})")
                    }
                };
                self.kill().await;
                Err(format!(
                    "{why}; last log lines: {}",
                    tail(&self.spec.log, 8)
                ))
            }
        }
    }

    /// SIGKILL, then reaps the process.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        self.paused = false;
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        let pid = self.pid().context("no server process to pause")?;
        signal(pid, libc::SIGSTOP).context("SIGSTOP")?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT (if paused).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if !self.paused {
            return Ok(());
        }
        let pid = self.pid().context("no server process to resume")?;
        signal(pid, libc::SIGCONT).context("SIGCONT")?;
        self.paused = false;
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGTERM and a bounded wait for a clean exit (SIGKILL after it).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.resume();
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        signal(pid, libc::SIGTERM).context("SIGTERM")?;
        let clean = match self.child.as_mut() {
            Some(c) => tokio::time::timeout(STOP_TIMEOUT, c.wait()).await,
            None => return Ok(()),
        };
        match clean {
            Ok(Ok(status)) if status.success() => {
                self.child = None;
                Ok(())
            }
            Ok(Ok(status)) => {
                self.child = None;
                anyhow::bail!("flashsale serve exited with {status} after SIGTERM")
            }
            _ => {
                self.kill().await;
                anyhow::bail!("flashsale serve did not exit within {STOP_TIMEOUT:?} of SIGTERM")
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if self.paused {
                if let Some(pid) = c.id() {
                    let _ = signal(pid, libc::SIGCONT);
                }
            }
            let _ = c.start_kill();
        }
    }
}

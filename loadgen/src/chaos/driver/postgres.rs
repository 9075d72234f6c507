//! A Postgres cluster of the driver's own: created with `initdb` in the run directory, on its
//! own loopback port and socket directory, stopped (immediate mode) and started again to inject
//! outages, and removed at the end. The machine's shared cluster is never touched. As root the
//! tools run as the `postgres` user (`runuser -u postgres --`), as `initdb` refuses root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Command;

/// The port of the machine's shared cluster, which the driver refuses to use.
pub const SHARED_PORT: u16 = 5432;
/// Longest wait for Postgres to accept connections after a start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Database the server and the read-model reader use.
pub const DATABASE: &str = "postgres";

/// The driver's own cluster.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// Owned by the cluster's user: data dir, socket, log.
    home: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The Postgres binaries directory: `explicit`, else the newest /usr/lib/postgresql/*/bin, else
/// `pg_config --bindir`.
pub fn find_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        anyhow::ensure!(
            p.join("initdb").exists(),
            "--pg-bin {}: no initdb there",
            p.display()
        );
        return Ok(p.to_path_buf());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("no /usr/lib/postgresql/*/bin and no pg_config: pass --pg-bin")?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    anyhow::ensure!(
        bin.join("initdb").exists(),
        "no initdb in {} (pass --pg-bin)",
        bin.display()
    );
    Ok(bin)
}

fn id_of(flag: &str) -> anyhow::Result<u32> {
    let out = std::process::Command::new("id")
        .args([flag, "postgres"])
        .output()
        .context("running id")?;
    anyhow::ensure!(
        out.status.success(),
        "there is no `postgres` user to run Postgres as"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing the postgres user's id")
}

impl PgCluster {
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    async fn run(&self, mut c: Command, what: &str) -> anyhow::Result<()> {
        let out = c
            .output()
            .await
            .with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// The server log of the cluster.
    pub fn log(&self) -> PathBuf {
        self.home.join("postgres.log")
    }

    /// Creates a cluster under `parent` (which must be traversable by the `postgres` user) on
    /// `port` (0: a free one) and starts it.
    pub async fn create(bin: PathBuf, parent: &Path, port: u16) -> anyhow::Result<PgCluster> {
        let port = match port {
            0 => free_port()?,
            SHARED_PORT => bail!("port {SHARED_PORT} is the shared cluster's; pick another"),
            p => p,
        };
        let home = parent.join("pg");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = (id_of("-u")?, id_of("-g")?);
            std::os::unix::fs::chown(&home, Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", home.display()))?;
        }
        let mut pg = PgCluster {
            bin,
            home,
            port,
            as_postgres,
            running: false,
        };
        let mut c = pg.tool("initdb");
        c.arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        pg.run(c, "initdb").await?;
        pg.start().await?;
        Ok(pg)
    }

    /// The server's connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts Postgres without waiting; see [`Self::wait_ready`].
    pub async fn start_nowait(&mut self) -> anyhow::Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60 \
             -c shared_buffers=32MB",
            self.port,
            self.home.display()
        );
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-W", "-o", &opts, "start"]);
        self.run(c, "pg_ctl start").await?;
        self.running = true;
        Ok(())
    }

    /// Starts Postgres and waits until it accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.start_nowait().await?;
        self.wait_ready().await
    }

    /// Waits (bounded) until a connection succeeds; returns as soon as one does.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(DATABASE)
            .connect_timeout(Duration::from_secs(1));
        loop {
            if let Ok((client, conn)) = cfg.connect(tokio_postgres::NoTls).await {
                let task = tokio::spawn(conn);
                let ok = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                task.abort();
                if ok {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "Postgres on port {} not accepting connections after {READY_TIMEOUT:?}; see {}",
                    self.port,
                    self.log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops Postgres at once (`pg_ctl stop -m immediate`: like a crash of the database).
    pub async fn stop_immediate(&mut self) -> anyhow::Result<()> {
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        self.run(c, "pg_ctl stop -m immediate").await?;
        self.running = false;
        Ok(())
    }

    /// Stops Postgres cleanly (end of the run).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let mut c = self.tool("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        self.run(c, "pg_ctl stop").await?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        // Best effort on an error path: never leave our cluster running.
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            std::process::Command::new(self.bin.join("pg_ctl"))
        };
        let _ = c
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A free loopback TCP port (bound and released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()?
        .port())
}

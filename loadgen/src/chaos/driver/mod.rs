//! The fault driver: starts `flashsale serve` (embedded log, or a Postgres cluster of its own),
//! runs the chaos workload against it while injecting faults on a seeded schedule (SIGKILL and
//! restart, SIGSTOP/SIGCONT, Postgres stopped and started, a full disk for the embedded log),
//! reads everything back once the server is healthy, and checks the history.
//!
//! Every step is bounded (load duration or kill cycles, a hard time cap, deadlines on starts and
//! reads), targets loopback only (unless `--allow-remote`), and cleans up what it started
//! (server, Postgres cluster, loop mount) on success, error and Ctrl-C alike.

pub mod disk;
pub mod plan;
pub mod postgres;
pub mod read_model;
pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use super::catalog::Catalog;
use super::check::{self, render, Report, Verdict};
use super::client::Client;
use super::finish::finish;
use super::history::{self, now_us, Entry, FaultEvent, FaultKind, HistoryWriter, Meta};
use super::workload::{Workload, WorkloadConfig};
use crate::target::Target;
use disk::LoopDisk;
use plan::{Fault, FaultPlan, FaultSet};
use postgres::PgCluster;
use server::{Server, ServerSpec};

/// Schema of the server's tables in the driver's Postgres cluster.
pub const PG_SCHEMA: &str = "chaos";
/// Seconds a generation of buyers is active.
pub const BUYER_GENERATION_S: u64 = 20;

/// Which log the server under test writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Segment files in a data dir.
    Embedded,
    /// Postgres (the driver's own cluster).
    Postgres,
}

impl Backend {
    /// `embedded` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgres => "postgres",
        }
    }
}

/// One driven run.
#[derive(Debug, Clone)]
pub struct DriveConfig {
    /// The log backend.
    pub backend: Backend,
    /// Seed of the workload and the fault schedule.
    pub seed: u64,
    /// Load duration (faults keep coming until then), unless `kill_cycles` is given.
    pub duration: Duration,
    /// Stop after this many SIGKILLs instead of after `duration` (soak).
    pub kill_cycles: Option<u32>,
    /// Hard cap on the load phase.
    pub max_duration: Duration,
    /// Engine shards of the server.
    pub shards: usize,
    /// Workload behaviour (seed and duration are set from this config).
    pub workload: WorkloadConfig,
    /// SKUs to create.
    pub skus: usize,
    /// Buyers active at one time.
    pub buyers: usize,
    /// The `flashsale` binary.
    pub server_bin: PathBuf,
    /// Run directory (history, logs, data).
    pub out_dir: PathBuf,
    /// Fault kinds to inject.
    pub faults: FaultSet,
    /// Quiet time between faults, ms (min, max).
    pub gap_ms: (u64, u64),
    /// Postgres binaries (default: found).
    pub pg_bin: Option<PathBuf>,
    /// Port of the driver's Postgres (0: a free one).
    pub pg_port: u16,
    /// Address the server listens on.
    pub bind: IpAddr,
    /// Allow a non-loopback `bind`.
    pub allow_remote: bool,
}

/// What a driven run produced.
#[derive(Debug)]
pub struct DriveOutcome {
    /// The history file.
    pub history: PathBuf,
    /// The checker's report.
    pub report: Report,
    /// The report as text.
    pub text: String,
}

fn event(h: &HistoryWriter, fault: FaultKind, detail: String) {
    h.write(&Entry::Fault(FaultEvent {
        at_us: now_us(),
        fault,
        detail,
    }));
}

/// Sleeps `d` unless aborted; returns false if aborted.
async fn sleep_or_abort(d: Duration, abort: &mut watch::Receiver<bool>) -> bool {
    if *abort.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = abort.changed() => !*abort.borrow(),
    }
}

struct Rig<'a> {
    cfg: &'a DriveConfig,
    server: Server,
    pg: Option<PgCluster>,
    disk: Option<LoopDisk>,
    history: Arc<HistoryWriter>,
    started: Instant,
}

impl Rig<'_> {
    fn say(&self, msg: &str) {
        eprintln!(
            "[{} +{:6.1}s] {msg}",
            self.cfg.backend.as_str(),
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Restarts the server; records `restart` or `restart_failed`. Returns whether it runs.
    async fn restart(&mut self, context: &str) -> bool {
        match self.server.spawn().await {
            Ok(()) => {
                event(&self.history, FaultKind::Restart, context.to_string());
                true
            }
            Err(e) => {
                let detail = if context.is_empty() {
                    e
                } else {
                    format!("{context}: {e}")
                };
                self.say(&format!("restart failed: {detail}"));
                event(&self.history, FaultKind::RestartFailed, detail);
                false
            }
        }
    }

    async fn kill(&mut self) {
        self.history.flush();
        self.server.kill().await;
        event(&self.history, FaultKind::Kill, String::new());
    }

    /// Injects one fault; returns false if the server could not be brought back.
    async fn inject(
        &mut self,
        fault: Fault,
        abort: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        match fault {
            Fault::Kill { down } => {
                self.kill().await;
                sleep_or_abort(down, abort).await;
                let ok = self.restart("").await;
                self.say(&format!("kill, down {} ms, restart", down.as_millis()));
                Ok(ok)
            }
            Fault::Pause { pause, then_kill } => {
                self.server.pause()?;
                event(
                    &self.history,
                    FaultKind::Pause,
                    format!("{} ms", pause.as_millis()),
                );
                sleep_or_abort(pause, abort).await;
                if then_kill {
                    self.kill().await;
                    let ok = self.restart("after a kill while paused").await;
                    self.say(&format!(
                        "pause {} ms, then kill and restart",
                        pause.as_millis()
                    ));
                    Ok(ok)
                } else {
                    self.server.resume()?;
                    event(&self.history, FaultKind::Resume, String::new());
                    self.say(&format!("pause {} ms, resume", pause.as_millis()));
                    Ok(true)
                }
            }
            Fault::PgOutage { down } => {
                let Some(pg) = self.pg.as_mut() else {
                    return Ok(true);
                };
                self.history.flush();
                pg.stop_immediate().await?;
                event(&self.history, FaultKind::PgStop, String::new());
                sleep_or_abort(down, abort).await;
                event(&self.history, FaultKind::PgStart, String::new());
                pg.start_nowait().await?;
                pg.wait_ready().await?;
                event(&self.history, FaultKind::PgReady, String::new());
                self.say(&format!(
                    "Postgres stopped (immediate) for {} ms",
                    down.as_millis()
                ));
                Ok(true)
            }
            Fault::DiskFull { hold, kill_during } => {
                let Some(disk) = self.disk.as_mut() else {
                    return Ok(true);
                };
                let left = disk.fill().map_err(anyhow::Error::msg)?;
                event(
                    &self.history,
                    FaultKind::DiskFull,
                    format!("{left} bytes left"),
                );
                let mut ok = true;
                if kill_during {
                    sleep_or_abort(hold / 2, abort).await;
                    self.kill().await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    match self.server.spawn().await {
                        Ok(()) => {
                            event(&self.history, FaultKind::Restart, "on the full disk".into());
                            // Recovery may have removed a spare segment: fill up again.
                            if let Some(d) = self.disk.as_mut() {
                                let _ = d.fill();
                            }
                            sleep_or_abort(hold / 2, abort).await;
                        }
                        Err(e) => {
                            // Refusing to start on a full disk loses nothing; it must start
                            // once there is room again.
                            if let Some(d) = self.disk.as_mut() {
                                d.free().map_err(anyhow::Error::msg)?;
                            }
                            event(&self.history, FaultKind::DiskFreed, String::new());
                            let ctx = format!("first start on the full disk failed ({e})");
                            ok = self.restart(&ctx).await;
                        }
                    }
                } else {
                    sleep_or_abort(hold, abort).await;
                }
                if let Some(d) = self.disk.as_mut() {
                    if d.is_full() {
                        d.free().map_err(anyhow::Error::msg)?;
                        event(&self.history, FaultKind::DiskFreed, String::new());
                    }
                }
                self.say(&format!(
                    "disk full for {} ms{}",
                    hold.as_millis(),
                    if kill_during {
                        ", kill and restart meanwhile"
                    } else {
                        ""
                    }
                ));
                Ok(ok)
            }
        }
    }

    /// Brings everything back to health (Postgres up, disk freed, server resumed or
    /// restarted) so that the read-back can run.
    async fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(d) = self.disk.as_mut() {
            if d.is_full() {
                d.free().map_err(anyhow::Error::msg)?;
                event(&self.history, FaultKind::DiskFreed, String::new());
            }
        }
        let _ = self.server.resume();
        if !self.server.is_running() && !self.restart("before the read-back").await {
            anyhow::bail!(
                "the server cannot be restarted; see {}",
                self.cfg.out_dir.display()
            );
        }
        Ok(())
    }
}

/// Runs one driven chaos run and checks its history.
pub async fn drive(
    cfg: DriveConfig,
    mut abort: watch::Receiver<bool>,
) -> anyhow::Result<DriveOutcome> {
    if !cfg.allow_remote && !crate::target::is_loopback(cfg.bind) {
        anyhow::bail!(
            "--bind {} is not a loopback address; chaos runs stay on loopback unless \
             --allow-remote is given",
            cfg.bind
        );
    }
    let out = &cfg.out_dir;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // The postgres user must traverse it to reach its own cluster directory.
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", out.display()))?;
    }
    let started = Instant::now();
    let mut faults = cfg.faults;
    let mut notes = Vec::new();
    let mut pg = None;
    let mut disk = None;
    let (data_dir, database) = match cfg.backend {
        Backend::Postgres => {
            faults.disk = false;
            let bin = postgres::find_bin(cfg.pg_bin.as_deref())?;
            let cluster = PgCluster::create(bin, out, cfg.pg_port)
                .await
                .context("creating the driver's Postgres cluster")?;
            eprintln!(
                "[postgres] own cluster on 127.0.0.1:{} (log {})",
                cluster.port(),
                cluster.log().display()
            );
            let url = cluster.url();
            pg = Some(cluster);
            (None, Some((url, PG_SCHEMA.to_string())))
        }
        Backend::Embedded => {
            faults.pg = false;
            let mut data = out.join("data");
            if faults.disk {
                match LoopDisk::create(out, disk::image_mb(cfg.shards)) {
                    Ok(d) => {
                        data = d.data_dir();
                        disk = Some(d);
                    }
                    Err(why) => {
                        faults.disk = false;
                        let note = format!("full-disk fault not possible on this machine: {why}");
                        eprintln!("[embedded] {note}");
                        notes.push(note);
                    }
                }
            }
            (Some(data), None)
        }
    };
    let http = SocketAddr::new(cfg.bind, postgres::free_port()?);
    let admin = format!("chaos-admin-{:x}", cfg.seed);
    let shops = vec![
        format!("chaos-shop-a-{:x}", cfg.seed),
        format!("chaos-shop-b-{:x}", cfg.seed),
    ];
    let log = out.join("server.log");
    let server = Server::start(ServerSpec {
        bin: cfg.server_bin.clone(),
        http,
        data_dir,
        database: database.clone(),
        shards: cfg.shards,
        admin_token: admin.clone(),
        storefront_tokens: shops.clone(),
        log: log.clone(),
        cwd: out.clone(),
    })
    .await?;
    let history_path = out.join("history.jsonl");
    let history = Arc::new(HistoryWriter::create(&history_path)?);
    let target = Target::parse(&format!("http://{http}"), cfg.allow_remote)?;
    let client = Client::new(target, &shops, Some(&admin), history.clone())?;
    let catalog = Catalog::new(
        &format!("c{:x}", cfg.seed & 0xffff_ffff),
        cfg.skus,
        cfg.buyers,
        BUYER_GENERATION_S,
    );
    history.write(&Entry::Meta(Meta {
        version: history::HISTORY_VERSION,
        seed: cfg.seed,
        backend: cfg.backend.as_str().into(),
        target: format!("http://{http}"),
        shards: Some(cfg.shards as u32),
        callers: vec!["shop-a".into(), "shop-b".into()],
        skus: catalog.skus.clone(),
        faults: faults.names(),
        notes: notes.clone(),
        started_us: now_us(),
    }));
    super::create_skus(&client, &catalog).await?;

    let mut rig = Rig {
        cfg: &cfg,
        server,
        pg,
        disk,
        history: history.clone(),
        started,
    };
    let mut wcfg = cfg.workload.clone();
    wcfg.seed = cfg.seed;
    wcfg.duration = cfg.max_duration + Duration::from_secs(60);
    let workload = Workload::new(client.clone(), catalog, wcfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    event(&history, FaultKind::LoadStart, String::new());
    let load = {
        let w = workload.clone();
        tokio::spawn(async move { w.run_load(stop_rx).await })
    };

    let mut plan = FaultPlan::new(cfg.seed, faults, cfg.gap_ms);
    let mut kills = 0u32;
    let mut last_progress = Instant::now();
    let mut broken = false;
    loop {
        let t = started.elapsed();
        let done = match cfg.kill_cycles {
            Some(n) => kills >= n,
            None => t >= cfg.duration,
        } || t >= cfg.max_duration
            || load.is_finished()
            || *abort.borrow();
        if done || broken {
            break;
        }
        let Some((gap, fault)) = plan.draw() else {
            let left = cfg.duration.saturating_sub(t).min(cfg.max_duration);
            sleep_or_abort(left, &mut abort).await;
            break;
        };
        if !sleep_or_abort(gap, &mut abort).await {
            break;
        }
        let t = started.elapsed();
        if cfg.kill_cycles.is_none() && t >= cfg.duration || t >= cfg.max_duration {
            break;
        }
        match rig.inject(fault, &mut abort).await {
            Ok(true) => {}
            Ok(false) => broken = true,
            Err(e) => {
                let _ = stop_tx.send(true);
                let _ = load.await;
                return Err(e.context("injecting a fault"));
            }
        }
        if fault.kills() {
            kills += 1;
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            let c = &workload.counters;
            rig.say(&format!(
                "progress: {} ops, {} reservations acknowledged, {} unknown outcomes, {} \
                 answers 503, {kills} kills",
                c.ops.load(Ordering::Relaxed),
                c.acked.load(Ordering::Relaxed),
                c.unknown.load(Ordering::Relaxed),
                c.unavailable.load(Ordering::Relaxed)
            ));
        }
    }
    let _ = stop_tx.send(true);
    load.await.context("load task")??;
    event(&history, FaultKind::LoadEnd, String::new());
    rig.say(&format!(
        "load stopped: {} ops, {kills} kills; reading back",
        workload.counters.ops.load(Ordering::Relaxed)
    ));

    let healed = if broken {
        Err(anyhow::anyhow!("the server could not be restarted"))
    } else {
        rig.heal().await
    };
    match healed {
        Ok(()) => {
            let stats = finish(&workload).await?;
            rig.say(&format!(
                "read back {} reservations and {} SKUs; {} of {} unknown keys left unresolved",
                stats.reservations_read, stats.skus_read, stats.keys_unresolved, stats.keys_retried
            ));
            if let Some((url, schema)) = &database {
                let rm = read_model::snapshot(url, schema).await?;
                history.write(&Entry::ReadModel(rm));
            }
        }
        Err(e) => rig.say(&format!("no read-back: {e:#}")),
    }
    history.finish()?;
    if let Err(e) = rig.server.stop().await {
        rig.say(&format!("warning: {e:#}"));
    }
    if let Some(pg) = rig.pg.as_mut() {
        pg.stop().await?;
    }
    drop(rig);

    let h = history::read(&history_path)?;
    let report = check::check(&h);
    let text = render::render(&report, &h, 3);
    if report.verdict != Verdict::Valid {
        eprintln!(
            "[{}] run directory kept: {}",
            cfg.backend.as_str(),
            out.display()
        );
    }
    Ok(DriveOutcome {
        history: history_path,
        report,
        text,
    })
}

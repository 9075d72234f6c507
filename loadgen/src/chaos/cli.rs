//! `flashsale-chaos`: `run` (fault driver + workload + checker, one or both backends),
//! `workload` (the workload against a server you started, no faults) and `check` (a history).
//!
//! Exit status: 0 the history is valid, 2 a violation was found, 3 no violation but some
//! outcomes stayed unresolved, 1 the run itself failed (or the history is unreadable).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use super::catalog::{Catalog, MAX_BUYERS, MAX_SKUS};
use super::check::{self, render, Report, Verdict};
use super::client::Client;
use super::driver::plan::FaultSet;
use super::driver::{self, Backend, DriveConfig};
use super::finish::finish;
use super::history::{self, now_us, Entry, FaultEvent, FaultKind, HistoryWriter, Meta};
use super::workload::{Workload, WorkloadConfig, MAX_WORKERS};
use crate::target::Target;

/// Longest load phase accepted, seconds (a soak of 100 kill cycles per backend fits easily).
pub const MAX_DURATION_S: u64 = 6 * 3600;

/// `flashsale-chaos`: record a history of the flashsale contract under faults and check it.
#[derive(Debug, Parser)]
#[command(name = "flashsale-chaos", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start flashsale serve, run the workload under faults, read back, check the history.
    Run(RunArgs),
    /// Run the workload (no faults) against a server you started, then check the history.
    Workload(WorkloadArgs),
    /// Check a history file.
    Check(CheckArgs),
}

/// Which backend(s) `run` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The embedded segment log.
    Embedded,
    /// Postgres (a cluster of the driver's own).
    Postgres,
    /// Embedded, then Postgres.
    Both,
}

/// Fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultArg {
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP, then SIGCONT (sometimes SIGKILL).
    Pause,
    /// Postgres stopped (immediate) and started again.
    Pg,
    /// The embedded log's filesystem full (loop mount; root only).
    Disk,
}

/// Workload knobs shared by `run` and `workload`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs2 {
    /// Seed of the workload and the fault schedule [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent workers (each with 3 connections).
    #[arg(long, default_value_t = 12)]
    pub workers: usize,
    /// SKUs (scarce, limited and plentiful in turn).
    #[arg(long, default_value_t = 24)]
    pub skus: usize,
    /// Buyers active at one time (a new generation every 20 s).
    #[arg(long, default_value_t = 40)]
    pub buyers: usize,
    /// Share of reservations sent as 2–3 concurrent duplicates (same key, same body).
    #[arg(long, default_value_t = 0.2)]
    pub dup_share: f64,
    /// Share of requests with a short deadline (100–500 ms), retried after the timeout.
    #[arg(long, default_value_t = 0.05)]
    pub short_timeout_share: f64,
    /// Share of requests whose connection the client drops right after sending.
    #[arg(long, default_value_t = 0.03)]
    pub reset_share: f64,
    /// Deadline of an ordinary request, ms (above the server's 2 s wait for the log).
    #[arg(long, default_value_t = 3_500)]
    pub timeout_ms: u64,
    /// Hard cap on requests of the load phase.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_ops: u64,
}

/// `run` flags.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Backend(s) to drive.
    #[arg(long, value_enum, default_value = "both")]
    pub backend: BackendArg,
    /// Load duration per backend in seconds (faults keep coming until then).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Stop each backend after this many SIGKILLs instead of after --duration (soak).
    #[arg(long)]
    pub kill_cycles: Option<u32>,
    /// Hard cap on the load phase per backend, seconds.
    #[arg(long, default_value_t = 7_200)]
    pub max_duration: u64,
    /// Engine shards of the server (≥ 2, so that carts span shards).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Fault kinds to inject (comma-separated) [default: all the machine allows].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Option<Vec<FaultArg>>,
    /// No faults at all (a baseline history).
    #[arg(long, conflicts_with = "faults")]
    pub no_faults: bool,
    /// Shortest quiet time between two faults, ms.
    #[arg(long, default_value_t = 2_500)]
    pub gap_min_ms: u64,
    /// Longest quiet time between two faults, ms.
    #[arg(long, default_value_t = 5_000)]
    pub gap_max_ms: u64,
    /// The flashsale binary [default: next to this one, e.g. target/debug/flashsale].
    #[arg(long, env = "FLASHSALE_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Run directory [default: a new one under the temp dir]; with Postgres as root, its parent
    /// directories must be traversable by the `postgres` user.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the run directory even when the history is valid.
    #[arg(long)]
    pub keep: bool,
    /// Postgres binaries directory [default: newest /usr/lib/postgresql/*/bin].
    #[arg(long)]
    pub pg_bin: Option<PathBuf>,
    /// Port of the driver's own Postgres cluster (never 5432) [default: a free one].
    #[arg(long, default_value_t = 0)]
    pub pg_port: u16,
    /// Address the server under test listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Allow a non-loopback --bind.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the checker's reports (JSON, one per backend) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Workload knobs.
    #[command(flatten)]
    pub w: WorkloadArgs2,
}

/// `workload` flags.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Base URL of the server (loopback only unless --allow-remote).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Storefront token (caller 0).
    #[arg(long, env = "FLASHSALE_STOREFRONT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A second storefront token (caller 1), to check that keys are scoped per caller.
    #[arg(long)]
    pub token_b: Option<String>,
    /// Admin token (creates the SKUs, restocks).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Load duration in seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// History file to write.
    #[arg(long, default_value = "chaos-history.jsonl")]
    pub history: PathBuf,
    /// Postgres URL to read the read model from after the run (Postgres backend).
    #[arg(long)]
    pub read_model_url: Option<String>,
    /// Schema of the server's tables.
    #[arg(long, default_value = "flashsale")]
    pub read_model_schema: String,
    /// Allow a non-loopback --target / --read-model-url host.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the checker's report (JSON) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Workload knobs.
    #[command(flatten)]
    pub w: WorkloadArgs2,
}

/// `check` flags.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The history file.
    pub history: PathBuf,
    /// Violations shown per kind (with excerpts).
    #[arg(long, default_value_t = 3)]
    pub show: usize,
    /// Write the report (JSON) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

fn exit_for(verdicts: &[Verdict]) -> ExitCode {
    if verdicts.contains(&Verdict::Invalid) {
        ExitCode::from(2)
    } else if verdicts.contains(&Verdict::Unknown) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_nanos() as u64) % 1_000_000_000_000)
            .unwrap_or(1)
    })
}

fn workload_config(
    w: &WorkloadArgs2,
    seed: u64,
    duration: Duration,
) -> anyhow::Result<WorkloadConfig> {
    let share = |s: f64, name: &str| {
        anyhow::ensure!(
            s.is_finite() && (0.0..=1.0).contains(&s),
            "--{name} must be in [0, 1]"
        );
        Ok(s)
    };
    anyhow::ensure!(
        (1..=MAX_WORKERS).contains(&w.workers),
        "--workers must be 1..={MAX_WORKERS}"
    );
    anyhow::ensure!(
        (3..=MAX_SKUS).contains(&w.skus),
        "--skus must be 3..={MAX_SKUS}"
    );
    anyhow::ensure!(
        (1..=MAX_BUYERS).contains(&w.buyers),
        "--buyers must be 1..={MAX_BUYERS}"
    );
    anyhow::ensure!(
        (100..=60_000).contains(&w.timeout_ms),
        "--timeout-ms must be 100..=60000"
    );
    anyhow::ensure!(w.max_ops >= 1, "--max-ops must be ≥ 1");
    let short = share(w.short_timeout_share, "short-timeout-share")?;
    let reset = share(w.reset_share, "reset-share")?;
    anyhow::ensure!(
        short + reset <= 1.0,
        "--short-timeout-share + --reset-share must be ≤ 1"
    );
    Ok(WorkloadConfig {
        seed,
        workers: w.workers,
        duration,
        max_ops: w.max_ops,
        timeout: Duration::from_millis(w.timeout_ms),
        dup_share: share(w.dup_share, "dup-share")?,
        short_timeout_share: short,
        reset_share: reset,
        think_max: Duration::from_millis(20),
    })
}

fn write_reports(path: &Path, reports: &[(String, &Report)]) -> anyhow::Result<()> {
    let v: serde_json::Map<String, serde_json::Value> = reports
        .iter()
        .map(|(k, r)| Ok((k.clone(), serde_json::to_value(r)?)))
        .collect::<Result<_, serde_json::Error>>()?;
    std::fs::write(path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The `flashsale` binary: `explicit`, else next to the running executable.
pub fn server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        anyhow::ensure!(p.exists(), "--server-bin {} does not exist", p.display());
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let sibling = exe.with_file_name("flashsale");
    anyhow::ensure!(
        sibling.exists(),
        "no flashsale binary at {}: build it (cargo build -p flashsale-gateway --bin flashsale) \
         or pass --server-bin",
        sibling.display()
    );
    Ok(sibling)
}

fn replay_command(a: &RunArgs, backend: &str, seed: u64) -> String {
    let mut cmd = format!(
        "flashsale-chaos run --backend {backend} --seed {seed} --shards {} --workers {} --skus {} \
         --buyers {} --dup-share {} --gap-min-ms {} --gap-max-ms {}",
        a.shards, a.w.workers, a.w.skus, a.w.buyers, a.w.dup_share, a.gap_min_ms, a.gap_max_ms
    );
    match a.kill_cycles {
        Some(n) => cmd.push_str(&format!(
            " --kill-cycles {n} --max-duration {}",
            a.max_duration
        )),
        None => cmd.push_str(&format!(" --duration {}", a.duration)),
    }
    if a.no_faults {
        cmd.push_str(" --no-faults");
    } else if let Some(f) = &a.faults {
        let names: Vec<&str> = f
            .iter()
            .map(|k| match k {
                FaultArg::Kill => "kill",
                FaultArg::Pause => "pause",
                FaultArg::Pg => "pg",
                FaultArg::Disk => "disk",
            })
            .collect();
        cmd.push_str(&format!(" --faults {}", names.join(",")));
    }
    cmd
}

/// `flashsale-chaos run`.
pub async fn run(a: RunArgs, abort: watch::Receiver<bool>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.shards >= 1, "--shards must be ≥ 1");
    anyhow::ensure!(
        (1..=MAX_DURATION_S).contains(&a.duration)
            && (1..=MAX_DURATION_S).contains(&a.max_duration),
        "--duration and --max-duration must be 1..={MAX_DURATION_S} s"
    );
    anyhow::ensure!(
        a.gap_min_ms <= a.gap_max_ms,
        "--gap-min-ms must be ≤ --gap-max-ms"
    );
    if !a.allow_remote && !crate::target::is_loopback(a.bind) {
        anyhow::bail!(
            "--bind {} is not a loopback address; pass --allow-remote to use it",
            a.bind
        );
    }
    let seed = seed_or_clock(a.w.seed);
    let bin = server_bin(a.server_bin.as_deref())?;
    let faults = if a.no_faults {
        FaultSet {
            kill: false,
            pause: false,
            pg: false,
            disk: false,
        }
    } else {
        match &a.faults {
            None => FaultSet {
                kill: true,
                pause: true,
                pg: true,
                disk: true,
            },
            Some(list) => FaultSet {
                kill: list.contains(&FaultArg::Kill),
                pause: list.contains(&FaultArg::Pause),
                pg: list.contains(&FaultArg::Pg),
                disk: list.contains(&FaultArg::Disk),
            },
        }
    };
    let backends = match a.backend {
        BackendArg::Embedded => vec![Backend::Embedded],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Embedded, Backend::Postgres],
    };
    let root = match &a.out {
        Some(p) => p.clone(),
        None => tempfile::Builder::new()
            .prefix(&format!("flashsale-chaos-{seed}-"))
            .tempdir()
            .context("creating a run directory")?
            .keep(),
    };
    let backend_name = match a.backend {
        BackendArg::Embedded => "embedded",
        BackendArg::Postgres => "postgres",
        BackendArg::Both => "both",
    };
    eprintln!(
        "flashsale-chaos: seed {seed}; run directory {}",
        root.display()
    );
    eprintln!("replay: {}", replay_command(&a, backend_name, seed));
    let wcfg = workload_config(&a.w, seed, Duration::from_secs(a.max_duration))?;
    let mut verdicts = Vec::new();
    let mut reports = Vec::new();
    for backend in backends {
        if *abort.borrow() {
            break;
        }
        let out = root.join(backend.as_str());
        let cfg = DriveConfig {
            backend,
            seed,
            duration: Duration::from_secs(a.duration),
            kill_cycles: a.kill_cycles,
            max_duration: Duration::from_secs(a.max_duration),
            shards: a.shards,
            workload: wcfg.clone(),
            skus: a.w.skus,
            buyers: a.w.buyers,
            server_bin: bin.clone(),
            out_dir: out.clone(),
            faults,
            gap_ms: (a.gap_min_ms, a.gap_max_ms),
            pg_bin: a.pg_bin.clone(),
            pg_port: a.pg_port,
            bind: a.bind,
            allow_remote: a.allow_remote,
        };
        let outcome = driver::drive(cfg, abort.clone()).await.with_context(|| {
            format!("{} run (run directory {})", backend.as_str(), out.display())
        })?;
        println!("== {} backend", backend.as_str());
        print!("{}", outcome.text);
        verdicts.push(outcome.report.verdict);
        if outcome.report.verdict == Verdict::Valid && !a.keep {
            let _ = std::fs::remove_dir_all(&out);
        } else {
            println!("history kept: {}", outcome.history.display());
        }
        reports.push((backend.as_str().to_string(), outcome.report));
    }
    if let Some(p) = &a.report {
        let refs: Vec<(String, &Report)> = reports.iter().map(|(k, r)| (k.clone(), r)).collect();
        write_reports(p, &refs)?;
    }
    if verdicts.iter().all(|v| *v == Verdict::Valid) && !a.keep && a.out.is_none() {
        let _ = std::fs::remove_dir(&root);
    }
    if verdicts.iter().any(|v| *v != Verdict::Valid) {
        println!("replay: {}", replay_command(&a, backend_name, seed));
    }
    Ok(exit_for(&verdicts))
}

/// `flashsale-chaos workload`.
pub async fn workload(a: WorkloadArgs, abort: watch::Receiver<bool>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=MAX_DURATION_S).contains(&a.duration),
        "--duration must be 1..={MAX_DURATION_S} s"
    );
    let target = Target::parse(&a.target, a.allow_remote)?;
    if let Some(url) = &a.read_model_url {
        let cfg: tokio_postgres::Config = url.parse().context("--read-model-url")?;
        for h in cfg.get_hosts() {
            let ok = match h {
                tokio_postgres::config::Host::Tcp(name) => Target::parse(
                    &format!(
                        "http://{}:5432",
                        name.trim_start_matches('[').trim_end_matches(']')
                    ),
                    a.allow_remote,
                )
                .is_ok(),
                tokio_postgres::config::Host::Unix(_) => true,
            };
            anyhow::ensure!(
                ok,
                "--read-model-url host is not loopback; pass --allow-remote to use it"
            );
        }
    }
    let seed = seed_or_clock(a.w.seed);
    let wcfg = workload_config(&a.w, seed, Duration::from_secs(a.duration))?;
    let history = Arc::new(HistoryWriter::create(&a.history)?);
    let mut tokens = vec![a.token.clone()];
    tokens.extend(a.token_b.clone());
    let client = Client::new(target, &tokens, Some(&a.admin_token), history.clone())?;
    let catalog = Catalog::new(
        &format!("x{:x}", now_us() & 0xffff_ffff),
        a.w.skus,
        a.w.buyers,
        driver::BUYER_GENERATION_S,
    );
    eprintln!(
        "flashsale-chaos workload: seed {seed}, {} s against {}; history {}",
        a.duration,
        a.target,
        a.history.display()
    );
    let callers = (0..tokens.len()).map(|i| format!("caller-{i}")).collect();
    history.write(&Entry::Meta(Meta {
        version: history::HISTORY_VERSION,
        seed,
        backend: "external".into(),
        target: a.target.clone(),
        shards: None,
        callers,
        skus: catalog.skus.clone(),
        faults: Vec::new(),
        notes: Vec::new(),
        started_us: now_us(),
    }));
    super::create_skus(&client, &catalog).await?;
    let w = Workload::new(client, catalog, wcfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let fault = |kind| {
        Entry::Fault(FaultEvent {
            at_us: now_us(),
            fault: kind,
            detail: String::new(),
        })
    };
    history.write(&fault(FaultKind::LoadStart));
    let load = {
        let w = w.clone();
        tokio::spawn(async move { w.run_load(stop_rx).await })
    };
    let mut abort2 = abort.clone();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(a.duration)) => {}
        _ = abort2.changed() => {}
    }
    let _ = stop_tx.send(true);
    load.await.context("load task")??;
    history.write(&fault(FaultKind::LoadEnd));
    finish(&w).await?;
    if let Some(url) = &a.read_model_url {
        let rm = driver::read_model::snapshot(url, &a.read_model_schema).await?;
        history.write(&Entry::ReadModel(rm));
    }
    history.finish()?;
    check_file(&a.history, 3, a.report.as_deref())
}

/// Checks `path`, prints the result; the exit code follows the verdict.
pub fn check_file(path: &Path, show: usize, report: Option<&Path>) -> anyhow::Result<ExitCode> {
    let h = history::read(path)?;
    let r = check::check(&h);
    print!("{}", render::render(&r, &h, show));
    if let Some(p) = report {
        write_reports(p, &[("history".into(), &r)])?;
    }
    Ok(exit_for(&[r.verdict]))
}

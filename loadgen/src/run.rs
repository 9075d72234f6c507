//! One run from start to report: fd limit, SKU setup, ramp-up, load with a progress ticker,
//! drain, the after-run check, and the report.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::api::Api;
use crate::api::Outcome;
use crate::check::{self, SkuObservation};
use crate::cli::{Config, LoadModel};
use crate::fdlimit;
use crate::follow::Leader;
use crate::ledger::Ledger;
use crate::metrics::Kind;
use crate::metrics::{Metrics, Snapshot};
use crate::progress::{self, Phase};
use crate::report::{ConnectionsReport, Report, RunFacts};
use crate::scenario::buyer::{self, Shared, Signals};
use crate::scenario::setup::{self, SetupClients};
use crate::scenario::{self, Plan};
use crate::schedule::{self, OpenSchedule};
use crate::source_addrs;
use crate::target::Target;

/// Descriptors kept free besides one per connection (setup connections, stdio, files, runtime).
pub const FD_HEADROOM: u64 = 512;
/// Error kind of open-loop arrivals that were due but never sent before the run ended.
pub const NOT_SENT: &str = "not_sent";
/// Longest ramp-up before the load starts anyway (unopened buyers then connect lazily).
pub const MAX_RAMP_UP: Duration = Duration::from_secs(120);
/// Extra time after the end of the run for answers in flight, besides the request timeout.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

fn eprint(cfg: &Config, msg: &str) {
    if !cfg.quiet {
        eprintln!("{msg}");
    }
}

/// Runs the configured scenario and returns its report.
pub async fn run(mut cfg: Config) -> anyhow::Result<Report> {
    if cfg.scenario == crate::cli::ScenarioName::Queue {
        return crate::queue::run(cfg).await;
    }
    let started_at_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Set-up, before the connections: create the SKUs and read their counts through the
    // client, which finds the leader when several targets are given.
    let clients = SetupClients::new(&cfg)?;
    let setup_info = if cfg.use_existing {
        None
    } else {
        eprint(
            &cfg,
            &format!("creating {} SKU(s) via PUT /v1/skus/…", cfg.skus.len()),
        );
        Some(
            setup::create_skus(&cfg, &clients)
                .await
                .context("creating SKUs")?,
        )
    };
    let before = setup::read_counts(&cfg, &clients)
        .await
        .context("reading SKU counts before the run")?;
    let leader = clients.storefront.server();
    if leader != cfg.target.url() {
        eprint(&cfg, &format!("load goes to the leader, {leader}"));
        cfg.target = Target::parse(&leader, cfg.allow_remote)
            .with_context(|| format!("the leader named by the group, {leader}"))?;
        cfg.target_url = leader;
        // A leader that is not a --target (named by a standby) joins the buyers' list.
        if !cfg.targets.iter().any(|t| t.addr == cfg.target.addr) {
            cfg.targets.push(cfg.target.clone());
        }
    }
    let cfg = Arc::new(cfg);
    let needed = (cfg.connections as u64).max(cfg.subscribers as u64) + FD_HEADROOM;
    let fd_limit = fdlimit::ensure_nofile(needed)
        .with_context(|| format!("opening {} connections", cfg.connections))?;
    if cfg.source_addrs <= 1 {
        if let Some(ports) = source_addrs::ephemeral_ports() {
            if cfg.connections as u64 > u64::from(ports) {
                eprint(
                    &cfg,
                    &format!(
                    "warning: {} connections from one source address but only {ports} ephemeral \
                     ports; pass --source-addrs {}",
                    cfg.connections,
                    cfg.connections.div_ceil(crate::cli::CONNECTIONS_PER_SOURCE_ADDR)
                ),
                );
            }
        }
    }
    let apis = cfg
        .targets
        .iter()
        .map(|t| Api::new(&t.authority, &cfg.token))
        .collect::<Result<Vec<_>, _>>()
        .context("building requests")?;
    // The buyers start at the leader found by set-up and follow it from there.
    let leader_index = cfg
        .targets
        .iter()
        .position(|t| t.addr == cfg.target.addr)
        .unwrap_or(0);
    let leader = Arc::new(Leader::new(cfg.targets.clone(), leader_index));

    let plan = Plan::for_config(&cfg).context("building the scenario")?;

    let shards = std::thread::available_parallelism().map_or(4, |n| n.get()) * 4;
    let metrics = Arc::new(Metrics::new(shards.min(64)));
    let ledger = Arc::new(Ledger::new(cfg.skus.len()));
    let window = Duration::from_secs(cfg.warmup_s + cfg.duration_s);
    let schedule = match cfg.load_model {
        LoadModel::Closed => None,
        LoadModel::Open { rate_rps } => Some(OpenSchedule::new(rate_rps, window, cfg.max_requests)),
    };
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        apis,
        leader: leader.clone(),
        plan,
        metrics: metrics.clone(),
        ledger: ledger.clone(),
        schedule,
        claimed: AtomicU64::new(0),
        connect_permits: Semaphore::new(cfg.connect_concurrency),
        ready: AtomicUsize::new(0),
        opened: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
    });
    let subscribers = if cfg.subscribers > 0 {
        let subs =
            scenario::stream::start(&cfg, metrics.clone()).context("starting subscribers")?;
        let ready = subs.wait_ready(|m| eprint(&cfg, m)).await;
        eprint(
            &cfg,
            &format!("stream: {ready}/{} subscribers subscribed", cfg.subscribers),
        );
        Some((subs, ready))
    } else {
        None
    };
    let sources = source_addrs::source_addrs(cfg.target.addr, cfg.source_addrs);
    let (go_tx, go_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop_tx.send(true);
            }
        })
    };

    // Ramp-up: every buyer opens its connection (bounded concurrency), then waits for "go".
    let ramp_start = Instant::now();
    let mut buyers = JoinSet::new();
    for who in 0..cfg.connections {
        let sig = Signals {
            go: go_rx.clone(),
            stop: stop_rx.clone(),
        };
        let src = source_addrs::for_index(&sources, who);
        buyers.spawn(buyer::run(shared.clone(), who, src, sig));
    }
    let mut last_note = Instant::now();
    while shared.ready.load(Ordering::Relaxed) < cfg.connections
        && ramp_start.elapsed() < MAX_RAMP_UP
        && !*stop_rx.borrow()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_note.elapsed() >= Duration::from_secs(1) {
            last_note = Instant::now();
            eprint(
                &cfg,
                &format!(
                    "ramp-up: {}/{} connections open",
                    shared.opened.load(Ordering::Relaxed),
                    cfg.connections
                ),
            );
        }
    }
    let ramp_up = ramp_start.elapsed();
    let open_at_start = shared.opened.load(Ordering::Relaxed);
    eprint(
        &cfg,
        &format!(
            "{open_at_start}/{} connections open after {:.1}s; load starts",
            cfg.connections,
            ramp_up.as_secs_f64()
        ),
    );

    // Load.
    let start = Instant::now();
    metrics.reset();
    let _ = go_tx.send(Some(start));
    let end = start + window;
    let warmup_end = start + Duration::from_secs(cfg.warmup_s);
    let mut measuring = cfg.warmup_s == 0;
    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut stop_watch = stop_rx.clone();
    let mut leader_generation = leader.current().generation;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop_watch.changed() => {}
        }
        let now = Instant::now();
        if !measuring && now >= warmup_end {
            metrics.reset();
            measuring = true;
            continue;
        }
        let (bucket, p99) = metrics.tick();
        let phase = if measuring {
            Phase::Load
        } else {
            Phase::Warmup
        };
        let t = now.saturating_duration_since(start).as_secs_f64();
        let running = shared.running.load(Ordering::Relaxed);
        eprint(&cfg, &progress::line(phase, t, &bucket, p99, running));
        let at = leader.current();
        if at.generation != leader_generation {
            leader_generation = at.generation;
            if let Some(to) = leader.target(at.index) {
                eprint(
                    &cfg,
                    &format!("the buyers moved to the new leader, {}", to.url()),
                );
            }
        }
        if now >= end || *stop_rx.borrow() || running == 0 {
            break;
        }
    }
    let load_end = Instant::now().min(end);

    // Drain: a buyer in flight may need a reconnect and a request (each bounded by the
    // timeout); after that it is aborted (counted in the report: its last request's fate is
    // unknown to the ledger).
    let hard_stop = Instant::now() + cfg.timeout() * 2 + DRAIN_GRACE;
    let mut aborted_buyers = 0;
    loop {
        match tokio::time::timeout_at(hard_stop.into(), buyers.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                aborted_buyers = buyers.len();
                buyers.abort_all();
                break;
            }
        }
    }
    if let Some(s) = shared.schedule.as_ref() {
        // Arrivals that were due but never sent (the server or the connections could not keep
        // up) are errors whose latency is at least the time they waited: leaving them out would
        // be coordinated omission.
        let stop = load_end.saturating_duration_since(start);
        let not_sent = Outcome::Error(NOT_SENT.to_string());
        for (who, (n, latency)) in schedule::unsent(s.claimed(), s.limit(), s.rate_rps(), stop)
            .into_iter()
            .enumerate()
        {
            metrics.record_unanswered(who, Kind::Reserve, &not_sent, latency, n);
        }
    }
    let stream = match subscribers {
        Some((subs, ready)) => {
            // Updates from the last changes are still in flight: give them a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let stats = subs.finish(ready).await;
            Some(serde_json::to_value(stats).context("stream statistics")?)
        }
        None => None,
    };
    let _ = metrics.tick();
    let snapshot: Snapshot = metrics.snapshot();
    let interrupted = *stop_rx.borrow();
    ctrl_c.abort();

    if cfg.settle_s > 0 {
        eprint(
            &cfg,
            &format!("settling {} s before reading counts", cfg.settle_s),
        );
        tokio::time::sleep(Duration::from_secs(cfg.settle_s)).await;
    }
    let total_since_start = ramp_start.elapsed() + Duration::from_secs(1);
    let expiry_possible =
        !cfg.ttl_known || Duration::from_secs(cfg.reservation_ttl_s) <= total_since_start;
    let check = match setup::read_counts(&cfg, &clients).await {
        Ok(after) => {
            let obs: Vec<SkuObservation> = (0..cfg.skus.len())
                .map(|i| SkuObservation {
                    before: before[i],
                    after: after[i],
                    tally: ledger.tally(i),
                })
                .collect();
            Ok(check::check(&cfg.skus, &obs, expiry_possible))
        }
        Err(e) => Err(format!("{e:#}")),
    };
    let facts = RunFacts {
        started_at_unix_s,
        connections: ConnectionsReport {
            requested: cfg.connections,
            open_at_start,
            source_addrs: sources.iter().map(|a| a.to_string()).collect(),
            ramp_up_s: ramp_up.as_secs_f64(),
            fd_limit: Some(fd_limit),
            aborted_buyers,
        },
        setup: setup_info,
        check,
        interrupted,
        stream,
        follow: leader.report(start),
    };
    Ok(Report::build(&cfg, &snapshot, facts))
}

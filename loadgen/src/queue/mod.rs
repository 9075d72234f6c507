//! `--scenario queue`: a crowd in front of a waiting room. The run creates a SKU and a queue
//! for it through the admin API (pre-queue open now, start after `--prequeue-s`); a share of
//! the buyers joins during the pre-queue, the rest join after the start at an even pace; each
//! polls when the server says, reserves with its pass (`Flashsale-Pass`) once admitted, then
//! confirms, cancels or abandons the hold. Meanwhile a few reservations are sent without a
//! valid pass on purpose, and a monitor reads the queue's view. The report adds a `queue`
//! section ([`report::QueueReport`]); see docs/adr/0011-loadgen.md and the "Waiting room"
//! section of the contract.
//!
//! A pure client: only the HTTP contract, never the engine.

pub mod bench;
pub mod buyer;
pub mod flags;
pub mod monitor;
pub mod raw_poll;
pub mod report;
pub mod stats;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hyper::StatusCode;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api;
use crate::check::{self, SkuCounts, SkuObservation};
use crate::cli::{Config, MAX_DURATION_S};
use crate::conn::Conn;
use crate::fdlimit;
use crate::follow::{self, Leader, Seat};
use crate::ledger::{Event, Ledger};
use crate::metrics::Metrics;
use crate::progress::{self, Phase};
use crate::report::{ConnectionsReport, Report, RunFacts};
use crate::scenario::setup::SetupInfo;
use crate::scenario::Plan;
use crate::source_addrs;
use buyer::{unix_ms, BuyerRecord, Shared};
use report::{Facts, QueueReport, WithoutPass};
use wire::QueueApi;

/// Pre-queue joins end this long before the start, so none is answered after it.
pub const PREQUEUE_MARGIN: Duration = Duration::from_millis(500);
/// Post-start joins begin this long after the start (clocks of client and server agree
/// to well within it on one machine).
pub const START_MARGIN: Duration = Duration::from_millis(200);
/// A forged pass for the probes (well-formed, wrong signature).
pub const FORGED_PASS: &str = "ZHJvcAo.Zm9yZ2Vk";

fn eprint(cfg: &Config, msg: &str) {
    if !cfg.quiet {
        eprintln!("{msg}");
    }
}

/// Runs the queue scenario and returns its report.
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    let started_at_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let qcfg = cfg
        .queue
        .clone()
        .context("the queue scenario needs its settings")?;
    let mut cfg = cfg;
    // With several targets, the run starts on the one that leads and its buyers follow the
    // leader from there (ADR 0032).
    let mut leader_index = 0;
    if cfg.targets.len() > 1 {
        let within = Instant::now() + cfg.timeout().max(Duration::from_secs(5));
        leader_index = follow::find_leader(&cfg.targets, within)
            .await
            .context("no --target answers GET /ready as the leader")?;
        if let Some(t) = cfg.targets.get(leader_index) {
            if t.addr != cfg.target.addr {
                eprint(&cfg, &format!("queue load goes to the leader, {}", t.url()));
            }
            cfg.target = t.clone();
            cfg.target_url = t.url();
        }
    }
    let leader = Arc::new(Leader::new(cfg.targets.clone(), leader_index));
    let cfg = Arc::new(cfg);
    let fd_limit = fdlimit::ensure_nofile(
        (cfg.connections + qcfg.hot_buyers) as u64 + crate::run::FD_HEADROOM,
    )
    .with_context(|| format!("opening {} connections", cfg.connections))?;
    if qcfg.bench_rounds > 0 {
        let flags = bench::BenchFlags {
            rounds: qcfg.bench_rounds,
            round_s: qcfg.bench_round_s,
            hot_buyers: qcfg.hot_buyers,
            poller: qcfg.bench_poller,
        };
        let t = Instant::now();
        let (bench, check) = bench::run(cfg.clone(), &qcfg.queue, flags).await?;
        let metrics = Metrics::new(1);
        let mut snapshot = metrics.snapshot();
        snapshot.elapsed = t.elapsed();
        let facts = RunFacts {
            started_at_unix_s,
            connections: ConnectionsReport {
                requested: cfg.connections,
                open_at_start: bench.joined as usize,
                source_addrs: Vec::new(),
                ramp_up_s: 0.0,
                fd_limit: Some(fd_limit),
                aborted_buyers: 0,
            },
            setup: None,
            check,
            interrupted: false,
            stream: None,
            follow: crate::follow::FollowReport::default(),
        };
        let mut report = Report::build(&cfg, &snapshot, facts);
        report.queue_bench = Some(bench);
        return Ok(report);
    }
    let admin = cfg
        .admin_token
        .as_deref()
        .context("the queue scenario creates its queue: it needs --admin-token")?;
    let qapi = QueueApi::new(&cfg.target.authority, &cfg.token, admin, &qcfg.queue)
        .context("building requests")?;
    let apis = cfg
        .targets
        .iter()
        .map(|t| QueueApi::new(&t.authority, &cfg.token, admin, &qcfg.queue))
        .collect::<Result<Vec<_>, _>>()
        .context("building requests")?;
    let mut setup_conn = Conn::new(
        cfg.target.addr,
        None,
        cfg.timeout().max(Duration::from_secs(5)),
    );

    // The SKU, then the queue: pre-queue opens now, the start follows after --prequeue-s.
    let sku = cfg.skus[0].clone();
    let put = qapi
        .put_sku(&sku, cfg.stock, cfg.price_cents, cfg.reservation_ttl_s)
        .context("PUT SKU request")?;
    let a = setup_conn.send(put).await.context("PUT /v1/skus")?;
    if !a.status.is_success() {
        bail!(
            "PUT /v1/skus/{sku} answered {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    let setup = SetupInfo {
        created: usize::from(a.status == StatusCode::CREATED),
        updated: usize::from(a.status == StatusCode::OK),
    };
    let before = read_sku(&mut setup_conn, &qapi, &sku).await?;
    let t0 = Instant::now();
    let t0_ms = unix_ms();
    let prequeue = Duration::from_secs_f64(qcfg.prequeue_s);
    let starts_at_ms = t0_ms + prequeue.as_millis() as u64;
    let mut settings = json!({
        "skus": [sku],
        // A second of slack: the server's clock may be a little behind ours.
        "prequeue_opens_at": wire::format_rfc3339_ms(t0_ms.saturating_sub(1_000)),
        "starts_at": wire::format_rfc3339_ms(starts_at_ms),
        "admit_per_s": qcfg.admit_per_s,
        "pass_ttl_s": qcfg.pass_ttl_s,
        "method": qcfg.method.as_str(),
    });
    if let Some(m) = qcfg.max_active {
        settings["max_active"] = json!(m);
    }
    let a = setup_conn
        .send(qapi.put_queue(settings).context("PUT queue request")?)
        .await
        .context("PUT /v1/queues")?;
    if !a.status.is_success() {
        bail!(
            "PUT /v1/queues/{} answered {}: {}",
            qcfg.queue,
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    eprint(
        &cfg,
        &format!(
            "queue {}: {} buyers, pre-queue {:.1} s, then {} admissions/s ({})",
            qcfg.queue,
            cfg.connections,
            qcfg.prequeue_s,
            qcfg.admit_per_s,
            qcfg.method.as_str()
        ),
    );

    let deadline = t0 + Duration::from_secs(cfg.duration_s + cfg.warmup_s);
    let seconds = (cfg.duration_s + cfg.warmup_s).min(MAX_DURATION_S) as usize + 2;
    let metrics = Arc::new(Metrics::new(16));
    let ledger = Arc::new(Ledger::new(1));
    let (final_tx, final_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        apis: apis.clone(),
        leader: leader.clone(),
        key_prefix: cfg.idempotency_keys.then(|| format!("lg-q-{t0_ms}")),
        plan: Plan::for_config(&cfg).context("follow-up shares")?,
        metrics: metrics.clone(),
        ledger: ledger.clone(),
        t0,
        deadline,
        polls_per_s: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        final_sold_out: final_rx,
    });
    let monitor = tokio::spawn(monitor::watch(
        Conn::new(cfg.target.addr, None, cfg.timeout()),
        qapi.clone(),
        deadline,
        final_tx,
        stop_rx,
    ));
    let probes = tokio::spawn(probe_without_pass(
        shared.clone(),
        t0 + prequeue + START_MARGIN,
        qcfg.no_pass_probes,
    ));

    // Buyers: the first share joins during the pre-queue (spread evenly), the rest after the
    // start at an even pace over --join-window-s.
    metrics.reset();
    let sources = source_addrs::source_addrs(cfg.target.addr, cfg.source_addrs);
    let n = cfg.connections;
    let n_pre = qcfg.prequeue_buyers(n);
    let pre_window = prequeue.saturating_sub(PREQUEUE_MARGIN);
    let post_window = Duration::from_secs_f64(qcfg.join_window_s);
    let mut buyers = JoinSet::new();
    for who in 0..n {
        let (pre, at) = if who < n_pre {
            (
                true,
                t0 + pre_window.mul_f64(who as f64 / n_pre.max(1) as f64),
            )
        } else {
            let k = (who - n_pre) as f64 / (n - n_pre).max(1) as f64;
            (false, t0 + prequeue + START_MARGIN + post_window.mul_f64(k))
        };
        let src = source_addrs::for_index(&sources, who);
        buyers.spawn(buyer::run(shared.clone(), who, pre, at, src));
    }

    // Progress once a second until every buyer is done or the deadline (+ a grace for
    // answers in flight).
    let hard_stop = deadline + cfg.timeout() + crate::run::DRAIN_GRACE;
    let mut records: Vec<BuyerRecord> = Vec::with_capacity(n);
    let mut ticker =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let mut aborted_buyers = 0;
    loop {
        tokio::select! {
            r = buyers.join_next() => match r {
                Some(Ok(rec)) => records.push(rec),
                Some(Err(e)) => eprint(&cfg, &format!("a buyer task failed: {e}")),
                None => break,
            },
            _ = ticker.tick() => {
                let (bucket, p99) = metrics.tick();
                let t = t0.elapsed().as_secs_f64();
                eprint(&cfg, &progress::line(Phase::Load, t, &bucket, p99, buyers.len()));
                if Instant::now() >= hard_stop {
                    aborted_buyers = buyers.len();
                    buyers.abort_all();
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let without_pass = probes.await.unwrap_or_default();
    let _ = metrics.tick();
    let snapshot = metrics.snapshot();

    if cfg.settle_s > 0 {
        eprint(
            &cfg,
            &format!("settling {} s before reading counts", cfg.settle_s),
        );
        tokio::time::sleep(Duration::from_secs(cfg.settle_s)).await;
    }
    let watched = monitor.await.unwrap_or_default();
    // The final reads go to the leader the buyers ended on (a takeover may have moved it).
    let end_at = leader.current().index;
    let (qapi, leader_moved) = match (apis.get(end_at), cfg.targets.get(end_at)) {
        (Some(api), Some(t)) if end_at != leader_index => {
            setup_conn.retarget(t.addr);
            (api.clone(), true)
        }
        _ => (qapi, false),
    };
    if leader_moved {
        eprint(&cfg, "reading the counts from the new leader");
    }
    // The queue's counts after the settle (a confirm in flight at the end is counted).
    let mut watched = watched;
    if let Ok(req) = qapi.get_queue() {
        if let Ok(a) = setup_conn.send(req).await {
            if let Some(q) = wire::QueueAnswer::parse(&a.body) {
                watched.last = Some(q.counts);
            }
        }
    }
    let check = match read_sku(&mut setup_conn, &qapi, &sku).await {
        Ok(after) => Ok(check::check(
            std::slice::from_ref(&sku),
            &[SkuObservation {
                before,
                after,
                tally: ledger.tally(0),
            }],
            true,
        )),
        Err(e) => Err(format!("{e:#}")),
    };
    let tally = ledger.tally(0);
    let facts = Facts {
        queue: qcfg.queue.clone(),
        method: qcfg.method,
        starts_at_ms,
        t0_ms,
        polls_per_s: shared
            .polls_per_s
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        watched,
        without_pass,
        confirmed: tally.confirmed / cfg.qty.max(1),
        unknown_confirms: tally.unknown_confirm / cfg.qty.max(1),
    };
    let queue_report = QueueReport::build(&records, facts);
    let run_facts = RunFacts {
        started_at_unix_s,
        connections: ConnectionsReport {
            requested: n,
            open_at_start: records.iter().filter(|r| r.ticket.is_some()).count(),
            source_addrs: sources.iter().map(|a| a.to_string()).collect(),
            ramp_up_s: 0.0,
            fd_limit: Some(fd_limit),
            aborted_buyers,
        },
        setup: Some(setup),
        check,
        interrupted: false,
        stream: None,
        follow: leader.report(t0),
    };
    let mut report = Report::build(&cfg, &snapshot, run_facts);
    report.queue = Some(queue_report);
    Ok(report)
}

async fn read_sku(conn: &mut Conn, api: &QueueApi, sku: &str) -> anyhow::Result<SkuCounts> {
    let a = conn
        .send(api.get_sku(sku).context("GET SKU request")?)
        .await
        .with_context(|| format!("GET /v1/skus/{sku}"))?;
    if a.status != StatusCode::OK {
        bail!("GET /v1/skus/{sku} answered {}", a.status);
    }
    serde_json::from_slice::<flashsale_client::Sku>(&a.body)
        .map(|s| SkuCounts::from(&s))
        .with_context(|| format!("GET /v1/skus/{sku}: no counts"))
}

/// Sends `count` reservations without a valid pass from `at` on: even ones without the
/// header (403 `pass-required` expected), odd ones with a forged pass (403 `pass-invalid`).
/// One that succeeds is counted, told to the ledger and cancelled.
async fn probe_without_pass(shared: Arc<Shared>, at: Instant, count: u64) -> WithoutPass {
    let mut w = WithoutPass::default();
    if count == 0 || at >= shared.deadline {
        return w;
    }
    tokio::time::sleep_until(at.into()).await;
    let cfg = &shared.cfg;
    let mut seat = Seat::new(&shared.leader, None, cfg.timeout());
    for i in 0..count {
        // Sent to the leader as the buyers know it (no search of its own).
        seat.sync(&shared.leader);
        let Some(api) = shared.apis.get(seat.at().index) else {
            break;
        };
        let conn = &mut seat.conn;
        if Instant::now() >= shared.deadline {
            break;
        }
        let forged = i % 2 == 1;
        let buyer = format!("lg-nopass-{i}");
        let pass = forged.then_some(FORGED_PASS);
        let Ok(req) = api.reserve(&buyer, &cfg.skus[0], cfg.qty, pass, None) else {
            break;
        };
        w.attempts += 1;
        match conn.send(req).await {
            Ok(a) if a.status.is_success() => {
                w.succeeded += 1;
                shared.ledger.add(0, Event::Held, cfg.qty);
                if let Some(id) = api::reservation_id(&a.body) {
                    if let Ok(req) = api.cancel(&id) {
                        if matches!(conn.send(req).await, Ok(c) if c.status.is_success()) {
                            shared.ledger.add(0, Event::Cancelled, cfg.qty);
                        }
                    }
                }
            }
            Ok(a) => match (a.status, api::classify(a.status, &a.body)) {
                (StatusCode::FORBIDDEN, api::Outcome::Error(k))
                    if k == "http_403_pass-required" =>
                {
                    w.refused_pass_required += 1
                }
                (StatusCode::FORBIDDEN, api::Outcome::Error(k)) if k == "http_403_pass-invalid" => {
                    w.refused_pass_invalid += 1
                }
                _ => w.other += 1,
            },
            Err(_) => {
                w.other += 1;
                shared.ledger.add(0, Event::UnknownReserve, cfg.qty);
            }
        }
    }
    w
}

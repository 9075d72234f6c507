//! `stream`: QUIC stock-stream subscribers (flashsale-stream-client) measuring update delay while
//! a few buyers move the stock over HTTP (each arrival reserves one unit, then cancels it, so the
//! stock never runs out and every arrival makes two changes).
//!
//! Delay of an update = subscriber's clock at delivery − the update's `server_time_us` (when the
//! server published it), on one host. It covers the server's fan-out, QUIC and decoding; the time
//! a change waits for its publication (at most the server's publish interval) is reported by the
//! server (`flashsale_stream_publish_wait_quantile_seconds` in `/metrics`).
//!
//! Subscribers run on their own runtime thread, so HTTP buyers in the same process do not queue
//! in front of received updates (which would add the load generator's own scheduling delay to
//! the measured latency).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use flashsale_protocol::ids::SkuId;
use flashsale_stream_client::{
    unix_micros, ClientOptions, Connector, StreamEvent, Subscriber, Subscription, Trust,
};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{Picker, Plan};
use crate::api::Outcome;
use crate::cli::Config;
use crate::metrics::{Kind, Metrics};
use crate::zipf::{Zipf, ZipfError};

/// Longest wait for all subscribers to receive their first snapshot.
pub const MAX_SUBSCRIBE_WAIT: Duration = Duration::from_secs(60);
/// Subscribers sharing one UDP endpoint: a quinn endpoint decrypts and dispatches every packet
/// of its connections in one task, so 1 000 subscribers on one endpoint queue behind each other.
pub const SUBSCRIBERS_PER_ENDPOINT: usize = 128;
/// Handshakes in progress at once while subscribers first connect (a storm of 1 000 TLS
/// handshakes makes some time out and retry, which only slows the start).
pub const CONNECT_CONCURRENCY: usize = 64;

/// The stream scenario's buyer plan: reserve (SKU by Zipf over `--skus`), then always cancel.
pub fn plan(cfg: &Config) -> Result<Plan, ZipfError> {
    let picker = if cfg.skus.len() == 1 {
        Picker::One
    } else {
        Picker::Zipf(Zipf::new(cfg.skus.len(), cfg.zipf_exponent)?)
    };
    Ok(Plan {
        picker,
        confirm_share: 0.0,
        cancel_share: 1.0,
    })
}

/// Per-run subscriber totals (the delay histogram is `per_kind.stream_update`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StreamStats {
    /// Subscribers started.
    pub subscribers: usize,
    /// Subscribers that had their first snapshot when the load started.
    pub subscribed_at_start: usize,
    /// (Re)connections.
    pub connects: u64,
    /// Snapshots received.
    pub snapshots: u64,
    /// Updates received (each one a delay sample).
    pub updates: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Disconnections (the client reconnects and resumes).
    pub disconnects: u64,
    /// Subscribers that stopped on an error reconnecting cannot fix.
    pub fatal: u64,
    /// Updates whose sequence number did not increase (must be 0).
    pub out_of_order: u64,
}

impl StreamStats {
    fn merge(&mut self, o: &StreamStats) {
        self.connects += o.connects;
        self.snapshots += o.snapshots;
        self.updates += o.updates;
        self.heartbeats += o.heartbeats;
        self.disconnects += o.disconnects;
        self.fatal += o.fatal;
        self.out_of_order += o.out_of_order;
    }
}

/// Running subscribers.
#[derive(Debug)]
pub struct Subscribers {
    /// The subscribers' own runtime (one worker thread).
    runtime: Option<tokio::runtime::Runtime>,
    tasks: JoinSet<StreamStats>,
    stop: watch::Sender<bool>,
    ready: Arc<AtomicUsize>,
    count: usize,
}

/// Starts `cfg.subscribers` subscribers (sharing UDP endpoints, [`SUBSCRIBERS_PER_ENDPOINT`]
/// each, on `cfg.stream_threads` threads), recording update delays.
pub fn start(cfg: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Subscribers> {
    let trust = match (&cfg.fingerprint, cfg.insecure) {
        (Some(fp), _) => Trust::from_fingerprint_hex(fp).context("--fingerprint")?,
        (None, true) => Trust::Insecure,
        (None, false) => anyhow::bail!("the stream scenario needs --fingerprint or --insecure"),
    };
    let addr = cfg.quic_addr.context("the stream scenario needs --quic")?;
    let skus = cfg
        .skus
        .iter()
        .map(|s| SkuId::new(s.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .context("SKU ids")?;
    let mut options = ClientOptions::new(addr.to_string(), cfg.token.clone(), trust);
    options.subscription = Subscription::Skus(skus);
    options.connect_timeout = cfg.timeout();
    let nice = cfg.stream_nice;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.stream_threads.max(1))
        .thread_name("loadgen-stream")
        .on_thread_start(move || {
            if let Some(nice) = nice {
                if let Err(e) = flashsale_stream_client::priority::set_current_thread_nice(nice) {
                    eprintln!("warning: cannot set the subscribers' thread to nice {nice}: {e}");
                }
            }
        })
        .enable_all()
        .build()
        .context("starting the subscribers' runtime")?;
    // quinn endpoints bind to the runtime they are created in.
    let _in_runtime = runtime.enter();
    let connectors = (0..cfg.subscribers.div_ceil(SUBSCRIBERS_PER_ENDPOINT).max(1))
        .map(|_| Connector::new(&options.trust, options.receive_window))
        .collect::<Result<Vec<_>, _>>()
        .context("setting up the QUIC client")?;
    let (stop, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for who in 0..cfg.subscribers {
        let connector = connectors[who % connectors.len()].clone();
        let sub = Subscriber::with_connector(connector, options.clone());
        tasks.spawn_on(
            subscribe(
                who,
                sub,
                metrics.clone(),
                ready.clone(),
                permits.clone(),
                stop_rx.clone(),
            ),
            runtime.handle(),
        );
    }
    drop(_in_runtime);
    Ok(Subscribers {
        runtime: Some(runtime),
        tasks,
        stop,
        ready,
        count: cfg.subscribers,
    })
}

async fn subscribe(
    who: usize,
    mut sub: Subscriber,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> StreamStats {
    let mut s = StreamStats::default();
    let mut is_ready = false;
    // Held until the first snapshot (or the first failure): bounds concurrent handshakes.
    let mut permit = tokio::select! {
        p = permits.acquire_owned() => p.ok(),
        _ = stop.changed() => None,
    };
    let mut last_seq = 0u64;
    while !*stop.borrow() {
        let event = tokio::select! {
            e = sub.next_event() => e,
            _ = stop.changed() => break,
        };
        match event {
            Ok(StreamEvent::Connected { .. }) => s.connects += 1,
            Ok(StreamEvent::Snapshot { seq, .. }) => {
                s.snapshots += 1;
                last_seq = seq;
                if !is_ready {
                    is_ready = true;
                    drop(permit.take());
                    ready.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(StreamEvent::Update(u)) => {
                s.updates += 1;
                if u.seq <= last_seq {
                    s.out_of_order += 1;
                }
                last_seq = u.seq;
                let delay = Duration::from_micros(unix_micros().saturating_sub(u.server_time_us));
                metrics.record(who, Kind::StreamUpdate, &Outcome::Ok, delay);
            }
            Ok(StreamEvent::Heartbeat { .. }) => s.heartbeats += 1,
            Ok(StreamEvent::Disconnected { error, .. }) => {
                // Let others try while this one backs off.
                drop(permit.take());
                s.disconnects += 1;
                metrics.count_error(who, "stream_disconnected");
                metrics.sample_error(who, "stream_disconnected", &error.to_string());
            }
            Err(e) => {
                s.fatal += 1;
                metrics.count_error(who, "stream_fatal");
                metrics.sample_error(who, "stream_fatal", &e.to_string());
                break;
            }
        }
    }
    sub.disconnect();
    s
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.tasks.abort_all();
        // Dropping a runtime inside async code would block; let its thread wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Subscribers {
    /// Waits until every subscriber has its first snapshot (or the wait limit), printing progress
    /// through `note`; returns how many are ready.
    pub async fn wait_ready(&self, note: impl Fn(&str)) -> usize {
        let start = Instant::now();
        let mut last = Instant::now();
        loop {
            let n = self.ready.load(Ordering::Relaxed);
            if n >= self.count || start.elapsed() >= MAX_SUBSCRIBE_WAIT || self.tasks.is_empty() {
                return n;
            }
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                note(&format!(
                    "stream: {n}/{} subscribers have their snapshot",
                    self.count
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the subscribers and sums their statistics.
    pub async fn finish(mut self, subscribed_at_start: usize) -> StreamStats {
        let _ = self.stop.send(true);
        let mut total = StreamStats {
            subscribers: self.count,
            subscribed_at_start,
            ..StreamStats::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(Some(r)) =
            tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await
        {
            if let Ok(s) = r {
                total.merge(&s);
            }
        }
        // Drop aborts what is left and lets the runtime's thread wind down.
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::FollowUp;
    use super::*;
    use clap::Parser;

    #[test]
    fn every_hold_is_cancelled() {
        let argv = [
            "x",
            "--token",
            "t",
            "--admin-token",
            "a",
            "--scenario",
            "stream",
            "--insecure",
        ];
        let cfg = Config::from_args(crate::cli::Args::try_parse_from(argv).unwrap(), 0).unwrap();
        let p = plan(&cfg).unwrap();
        assert_eq!(p.follow_up(0.0), FollowUp::Cancel);
        assert_eq!(p.follow_up(0.999), FollowUp::Cancel);
    }
}

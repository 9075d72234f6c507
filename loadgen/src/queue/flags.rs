//! The `queue` scenario's flags (flattened into [`crate::cli::Args`]) and their validated form.

use clap::{Args, ValueEnum};
use serde::Serialize;

/// Most buyers one queue holds on the server (`MAX_TICKETS_PER_QUEUE` there).
pub const MAX_QUEUE_BUYERS: usize = 200_000;
/// Longest pre-queue accepted, in s.
pub const MAX_PREQUEUE_S: f64 = 600.0;
/// Most deliberate reservations without a (valid) pass.
pub const MAX_NO_PASS_PROBES: u64 = 10_000;

/// How the bench's waiting buyers poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchPoller {
    /// A raw keep-alive socket, the request built once (`queue::raw_poll`).
    Raw,
    /// The hyper client connection every other request uses (for comparison).
    Hyper,
}

/// How the queue admits buyers who join after the start (the server's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueMethod {
    /// Arrival order.
    Fifo,
    /// Uniform random draws.
    Random,
}

impl QueueMethod {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMethod::Fifo => "fifo",
            QueueMethod::Random => "random",
        }
    }
}

/// Flags of `--scenario queue` (ignored by the other scenarios). The buyers are
/// `--connections` (one connection each), the SKU is `--sku` with `--stock`, and held
/// reservations are confirmed / cancelled / abandoned by `--confirm-share` / `--cancel-share`.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// queue: name of the queue created through the admin API [default: `<sku>-q`].
    #[arg(long)]
    pub queue: Option<String>,
    /// queue: share of the buyers who join during the pre-queue (before the start); the others
    /// join after it, spread over --join-window-s.
    #[arg(long, default_value_t = 0.5)]
    pub prequeue_share: f64,
    /// queue: length of the pre-queue in seconds (from the queue's creation to its start).
    #[arg(long, default_value_t = 3.0)]
    pub prequeue_s: f64,
    /// queue: the buyers joining after the start join at an even pace over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub join_window_s: f64,
    /// queue: admissions per second (the queue's `admit_per_s`).
    #[arg(long, default_value_t = 200)]
    pub admit_per_s: u32,
    /// queue: most admitted buyers with a live pass (the queue's `max_active`) [default: the
    /// server's].
    #[arg(long)]
    pub max_active: Option<u32>,
    /// queue: pass lifetime in seconds (the queue's `pass_ttl_s`).
    #[arg(long, default_value_t = 10)]
    pub pass_ttl_s: u32,
    /// queue: admission of buyers who join after the start.
    #[arg(long, value_enum, default_value = "fifo")]
    pub queue_method: QueueMethod,
    /// queue: reservations sent on purpose without a pass (half) or with a forged one (half);
    /// each must be refused with 403 `pass-required` / `pass-invalid`.
    #[arg(long, default_value_t = 20)]
    pub no_pass_probes: u64,
    /// queue: instead of the scenario, alternate this many rounds (free SKU, pollers paused /
    /// queued SKU with passes, --connections waiting buyers polling as told) and report the
    /// ratio of the median reservation throughputs (0 = no bench).
    #[arg(long, default_value_t = 0)]
    pub bench_rounds: u32,
    /// queue bench: length of a round in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub bench_round_s: f64,
    /// queue bench: admitted buyers reserving and cancelling in a loop.
    #[arg(long, default_value_t = 64)]
    pub hot_buyers: usize,
    /// queue bench: how the waiting buyers poll (`hyper`: as before ADR 0039, to compare).
    #[arg(long, value_enum, default_value = "raw")]
    pub bench_poller: BenchPoller,
}

/// The validated queue settings of a run (echoed in the report's `config`).
#[derive(Debug, Clone, Serialize)]
pub struct QueueConfig {
    /// Queue name.
    pub queue: String,
    /// Share of buyers joining in the pre-queue.
    pub prequeue_share: f64,
    /// Pre-queue length, s.
    pub prequeue_s: f64,
    /// Post-start join window, s.
    pub join_window_s: f64,
    /// Admissions per second.
    pub admit_per_s: u32,
    /// `max_active`, if set.
    pub max_active: Option<u32>,
    /// Pass lifetime, s.
    pub pass_ttl_s: u32,
    /// Admission method after the start.
    pub method: QueueMethod,
    /// Deliberate reservations without a valid pass.
    pub no_pass_probes: u64,
    /// Bench rounds (0 = the scenario, not the bench).
    pub bench_rounds: u32,
    /// Bench round length, s.
    pub bench_round_s: f64,
    /// Bench: admitted buyers reserving.
    pub hot_buyers: usize,
    /// Bench: how the waiting buyers poll.
    pub bench_poller: BenchPoller,
}

impl QueueConfig {
    /// Validates the flags; `sku` names the queue by default.
    pub fn from_args(a: &QueueArgs, sku: &str, buyers: usize) -> Result<QueueConfig, String> {
        let queue = a.queue.clone().unwrap_or_else(|| format!("{sku}-q"));
        flashsale_protocol::queue::QueueId::new(queue.as_str())
            .map_err(|e| format!("--queue {queue:?}: {e}"))?;
        if buyers > MAX_QUEUE_BUYERS {
            return Err(format!(
                "queue: --connections (the buyers) must be <= {MAX_QUEUE_BUYERS}"
            ));
        }
        let share = a.prequeue_share;
        if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
            return Err("--prequeue-share must be in [0, 1]".into());
        }
        if !(a.prequeue_s.is_finite() && (1.0..=MAX_PREQUEUE_S).contains(&a.prequeue_s)) {
            return Err(format!("--prequeue-s must be in [1, {MAX_PREQUEUE_S}]"));
        }
        if !(a.join_window_s.is_finite() && (0.0..=MAX_PREQUEUE_S).contains(&a.join_window_s)) {
            return Err(format!("--join-window-s must be in [0, {MAX_PREQUEUE_S}]"));
        }
        if a.admit_per_s == 0 || a.pass_ttl_s == 0 || a.max_active == Some(0) {
            return Err("--admit-per-s, --pass-ttl-s and --max-active must be >= 1".into());
        }
        if a.bench_rounds > 1_000
            || !(a.bench_round_s.is_finite() && (0.5..=600.0).contains(&a.bench_round_s))
            || a.hot_buyers == 0
            || a.hot_buyers > 10_000
        {
            return Err(
                "--bench-rounds <= 1000, --bench-round-s in [0.5, 600], --hot-buyers in 1..=10000"
                    .into(),
            );
        }
        if a.no_pass_probes > MAX_NO_PASS_PROBES {
            return Err(format!("--no-pass-probes must be <= {MAX_NO_PASS_PROBES}"));
        }
        Ok(QueueConfig {
            queue,
            prequeue_share: share,
            prequeue_s: a.prequeue_s,
            join_window_s: a.join_window_s,
            admit_per_s: a.admit_per_s,
            max_active: a.max_active,
            pass_ttl_s: a.pass_ttl_s,
            method: a.queue_method,
            no_pass_probes: a.no_pass_probes,
            bench_rounds: a.bench_rounds,
            bench_round_s: a.bench_round_s,
            hot_buyers: a.hot_buyers,
            bench_poller: a.bench_poller,
        })
    }

    /// Buyers (of `buyers`) who join in the pre-queue: the first ones by index.
    pub fn prequeue_buyers(&self, buyers: usize) -> usize {
        ((buyers as f64) * self.prequeue_share).round() as usize
    }
}

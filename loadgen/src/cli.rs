//! Command-line flags and the validated run configuration derived from them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::target::{Target, TargetError};

/// Longest run accepted (`--duration` + `--warmup`), a hard cap on every loop.
pub const MAX_DURATION_S: u64 = 3_600;
/// Most buyer connections accepted.
pub const MAX_CONNECTIONS: usize = 200_000;
/// Most stream subscribers accepted.
pub const MAX_SUBSCRIBERS: usize = 100_000;
/// Most SKUs a run may create.
pub const MAX_SKUS: usize = 1_000_000;

/// What the simulated crowd does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// Everyone reserves one unit of one SKU.
    HotItem,
    /// Buyers pick SKUs from a Zipf distribution over `--skus`.
    Catalog,
    /// Reserve, then confirm / cancel / abandon (to expiry) by the configured shares.
    Checkout,
    /// QUIC stock-stream subscribers measuring update delay.
    Stream,
    /// A waiting room: buyers join a queue (pre-queue and after the start), poll as told,
    /// reserve with their pass, then confirm / cancel / abandon (see `--prequeue-share`, …).
    Queue,
}

impl ScenarioName {
    /// The kebab-case name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::HotItem => "hot-item",
            ScenarioName::Catalog => "catalog",
            ScenarioName::Checkout => "checkout",
            ScenarioName::Stream => "stream",
            ScenarioName::Queue => "queue",
        }
    }
}

/// Which buyer id a reservation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuyerIds {
    /// `lg-<connection>`: one buyer per connection (per-buyer limits apply per connection: a
    /// fast connection meets the server's per-buyer rate limit).
    PerConnection,
    /// `lg-<connection>-<n>`: a new buyer for every arrival (each buyer tries once, as in a
    /// real crowd), so the run measures reservations, not the per-buyer rate limiter.
    PerArrival,
}

/// Default of `--max-error-rate`, in percent of requests.
pub const DEFAULT_MAX_ERROR_RATE_PERCENT: f64 = 1.0;

/// `flashsale-loadgen`: a crowd of buyers (and stream subscribers) against any server speaking the
/// flashsale HTTP contract, with honest latencies and an oversell check.
#[derive(Debug, Clone, Parser)]
#[command(name = "flashsale-loadgen", version, about, long_about = None)]
pub struct Args {
    /// Base URL of the server under test (loopback only unless --allow-remote). Repeat it, or
    /// give a comma list, for the nodes of an HA group: set-up and the buyers follow the leader
    /// (a `503 not-leader` names it; after a lost connection every target's /ready is asked).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    pub target: Vec<String>,
    /// Storefront bearer token used for reservations and reads.
    #[arg(long, env = "FLASHSALE_STOREFRONT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Admin bearer token used to create the SKUs (not needed with --use-existing).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "hot-item")]
    pub scenario: ScenarioName,
    /// Concurrent buyer connections, one keep-alive HTTP/1.1 connection each [default: 10000;
    /// stream: 16 connections making the stock changes].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measured run time in seconds (after --warmup).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Open loop: total arrival rate in requests per second, latency measured from the intended
    /// send time. Without it the run is closed loop (each buyer waits for its answer)
    /// [stream: default 200, each arrival a reserve then a cancel].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of load before measuring starts (not counted in the report's latencies).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a self-contained HTML report (inline SVG plots) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// SKU id (hot-item) or SKU id prefix (catalog, checkout); default `lg-<unix seconds>`,
    /// unique per run.
    #[arg(long)]
    pub sku: Option<String>,
    /// Number of SKUs [default: 1 for hot-item, 1000 for catalog, 100 for checkout].
    #[arg(long)]
    pub skus: Option<usize>,
    /// Stock per SKU when creating SKUs.
    #[arg(long, default_value_t = 10_000)]
    pub stock: u64,
    /// Price in cents of the created SKUs.
    #[arg(long, default_value_t = 1_999)]
    pub price_cents: u64,
    /// Units per reservation line.
    #[arg(long, default_value_t = 1)]
    pub qty: u64,
    /// Zipf exponent for picking SKUs (0 = uniform; larger = more skewed).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_exponent: f64,
    /// checkout: share of held reservations that are confirmed.
    #[arg(long, default_value_t = 0.6)]
    pub confirm_share: f64,
    /// checkout: share of held reservations that are cancelled (the rest are abandoned to expiry).
    #[arg(long, default_value_t = 0.2)]
    pub cancel_share: f64,
    /// Reservation TTL set on created SKUs [default: 5 for checkout, otherwise longer than the run
    /// so that the held+sold check is exact]. With --use-existing: the TTL the SKUs have (if
    /// not given, holds are assumed to possibly expire and the check is bounded, not exact).
    #[arg(long)]
    pub reservation_ttl_s: Option<u64>,
    /// Use existing SKUs (no admin calls); counts are compared as deltas from before the run.
    #[arg(long)]
    pub use_existing: bool,
    /// Number of loopback source addresses (127.0.0.1, 127.0.0.2, …) to spread client sockets over
    /// [default: automatic, one per 20000 connections].
    #[arg(long)]
    pub source_addrs: Option<usize>,
    /// Per-request timeout in milliseconds (also the connect timeout).
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Connections opened concurrently while ramping up.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Buyer id of each reservation. per-connection reuses one buyer per connection, which
    /// servers with per-buyer rate limits (flashsale serve: --rate-limit-buyer-rps) throttle.
    #[arg(long, value_enum, default_value = "per-arrival")]
    pub buyer_ids: BuyerIds,
    /// Largest share of requests that may end in an error, in percent: above it the summary
    /// and the HTML headline say so in red and the exit status is 3.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_ERROR_RATE_PERCENT, allow_negative_numbers = true)]
    pub max_error_rate: f64,
    /// Send a unique Idempotency-Key with each reservation (always on with several --target:
    /// a buyer that follows a takeover sends its request again with the same key).
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Hard cap on the number of first requests (reservations) sent in the whole run.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub max_requests: u64,
    /// Seconds to wait after the load before reading the server's counts (e.g. for expiry).
    #[arg(long, default_value_t = 0)]
    pub settle_s: u64,
    /// Tokio worker threads [default: number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for the buyers' random choices (runs are reproducible up to scheduling).
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Allow a non-loopback --target / --quic (our CI allows loopback only).
    #[arg(long)]
    pub allow_remote: bool,
    /// stream: QUIC address of the stock stream.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub quic: String,
    /// stream: SHA-256 fingerprint (hex) of the server certificate.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// stream: accept any server certificate (loopback testing only).
    #[arg(long)]
    pub insecure: bool,
    /// QUIC subscribers measuring update delay [default: 100 for `stream`, none otherwise]. Given
    /// with another scenario (e.g. `hot-item`), they watch its SKUs while its buyers run (needs
    /// --quic and --fingerprint or --insecure).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Nice value (Linux, -20..=19) of the subscribers' thread, e.g. -10 so update receipt is
    /// timestamped promptly while the buyers saturate the CPU of a shared machine [default: leave
    /// it as is]. Below 0 needs CAP_SYS_NICE; if refused, a warning is printed.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub stream_nice: Option<i32>,
    /// Threads running the subscribers (1..=64); more spread a burst of updates over several
    /// cores when the machine has them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub stream_threads: u16,
    /// Do not print the per-second progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Flags of the queue scenario.
    #[command(flatten)]
    pub queue: crate::queue::flags::QueueArgs,
}

/// Why the flags do not make a runnable configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The target URL was refused.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A flag is out of range or conflicts with another.
    #[error("{0}")]
    Invalid(String),
}

/// How arrivals are generated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadModel {
    /// Each buyer sends its next request when the previous answer arrived.
    Closed,
    /// Requests are due at a fixed total rate, whatever the server does.
    Open {
        /// Arrivals per second over all connections.
        rate_rps: f64,
    },
}

/// The validated configuration of one run (echoed in the report).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// URL the load goes to (the first `--target`, or the leader found during set-up).
    pub target_url: String,
    /// Every `--target`, in order.
    pub target_urls: Vec<String>,
    /// Resolved target of the load.
    #[serde(skip)]
    pub target: Target,
    /// Every `--target`, resolved, in order (the buyers follow the leader among them).
    #[serde(skip)]
    pub targets: Vec<Target>,
    /// Storefront token.
    #[serde(skip)]
    pub token: String,
    /// Admin token, if any.
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// Scenario.
    pub scenario: ScenarioName,
    /// Buyer connections.
    pub connections: usize,
    /// Measured duration.
    pub duration_s: u64,
    /// Warm-up before measuring.
    pub warmup_s: u64,
    /// Closed or open loop.
    pub load_model: LoadModel,
    /// SKU ids used by the run (first few shown in the report).
    #[serde(skip)]
    pub skus: Vec<String>,
    /// Number of SKUs.
    pub sku_count: usize,
    /// First SKU id (or the only one).
    pub sku_first: String,
    /// Stock per created SKU.
    pub stock: u64,
    /// Price per created SKU.
    pub price_cents: u64,
    /// Units per reservation.
    pub qty: u64,
    /// Zipf exponent.
    pub zipf_exponent: f64,
    /// checkout confirm share.
    pub confirm_share: f64,
    /// checkout cancel share.
    pub cancel_share: f64,
    /// TTL set on created SKUs.
    pub reservation_ttl_s: u64,
    /// Whether the SKUs' TTL is known: created by this run, or `--reservation-ttl-s` given with
    /// `--use-existing` (the SKU view does not show it). If not, expiry is assumed possible.
    pub ttl_known: bool,
    /// Whether SKUs were pre-existing.
    pub use_existing: bool,
    /// Source addresses for client sockets.
    pub source_addrs: usize,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Concurrent connects during ramp-up.
    pub connect_concurrency: usize,
    /// Buyer id scheme.
    pub buyer_ids: BuyerIds,
    /// Largest acceptable share of errors, percent of requests.
    pub max_error_rate_percent: f64,
    /// Idempotency keys on reservations.
    pub idempotency_keys: bool,
    /// Hard cap on first requests.
    pub max_requests: u64,
    /// Wait before the final check.
    pub settle_s: u64,
    /// Seed.
    pub seed: u64,
    /// stream: QUIC address.
    pub quic: String,
    /// stream: resolved QUIC address.
    pub quic_addr: Option<std::net::SocketAddr>,
    /// stream: certificate fingerprint.
    #[serde(skip)]
    pub fingerprint: Option<String>,
    /// stream: accept any certificate.
    pub insecure: bool,
    /// QUIC subscribers (0 = none; only the stream scenario has them by default).
    pub subscribers: usize,
    /// Nice value of the subscribers' thread.
    pub stream_nice: Option<i32>,
    /// Threads running the subscribers.
    pub stream_threads: usize,
    /// Allow non-loopback targets.
    pub allow_remote: bool,
    /// Suppress progress lines.
    #[serde(skip)]
    pub quiet: bool,
    /// The queue scenario's settings (`None` for the other scenarios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::queue::flags::QueueConfig>,
}

/// Default buyer connections of the stream scenario (they only make the stock move).
pub const STREAM_CONNECTIONS: usize = 16;
/// Default subscribers of the stream scenario.
pub const STREAM_SUBSCRIBERS: usize = 100;
/// Default arrival rate of the stream scenario, reservations per second (each then cancelled).
pub const STREAM_RATE_RPS: f64 = 200.0;

/// Connections per loopback source address before another address is added automatically.
pub const CONNECTIONS_PER_SOURCE_ADDR: usize = 20_000;

impl Config {
    /// Validates the flags and fills in scenario-dependent defaults.
    pub fn from_args(args: Args, now_unix_s: u64) -> Result<Config, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let target_urls = flashsale_client::split_servers(&args.target);
        if target_urls.is_empty() || target_urls.len() > flashsale_client::MAX_SERVERS {
            return invalid(format!(
                "--target: 1 to {} URLs",
                flashsale_client::MAX_SERVERS
            ));
        }
        let mut targets = Vec::with_capacity(target_urls.len());
        for url in &target_urls {
            targets.push(Target::parse(url, args.allow_remote)?);
        }
        let Some(target) = targets.first().cloned() else {
            return invalid("--target: no URL given".into());
        };
        let is_stream = args.scenario == ScenarioName::Stream;
        let connections = args.connections.unwrap_or(if is_stream {
            STREAM_CONNECTIONS
        } else {
            10_000
        });
        if connections == 0 || connections > MAX_CONNECTIONS {
            return invalid(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if args.duration == 0 || args.duration + args.warmup > MAX_DURATION_S {
            return invalid(format!(
                "--duration must be >= 1 and --duration + --warmup <= {MAX_DURATION_S} s"
            ));
        }
        let load_model = match args.rate {
            None if is_stream => LoadModel::Open {
                rate_rps: STREAM_RATE_RPS,
            },
            None => LoadModel::Closed,
            Some(r) if r.is_finite() && r > 0.0 && r <= 10_000_000.0 => {
                LoadModel::Open { rate_rps: r }
            }
            Some(r) => return invalid(format!("--rate must be in (0, 1e7] requests/s, got {r}")),
        };
        if !(args.zipf_exponent.is_finite() && (0.0..=10.0).contains(&args.zipf_exponent)) {
            return invalid("--zipf-exponent must be in [0, 10]".into());
        }
        let shares_ok = |s: f64| s.is_finite() && (0.0..=1.0).contains(&s);
        if !shares_ok(args.confirm_share)
            || !shares_ok(args.cancel_share)
            || args.confirm_share + args.cancel_share > 1.0 + 1e-9
        {
            return invalid(
                "--confirm-share and --cancel-share must be in [0, 1] with sum <= 1".into(),
            );
        }
        if args.qty == 0 || args.qty > 1_000_000 {
            return invalid("--qty must be 1..=1000000".into());
        }
        if args.timeout_ms == 0 || args.timeout_ms > 600_000 {
            return invalid("--timeout-ms must be 1..=600000".into());
        }
        if args.connect_concurrency == 0 {
            return invalid("--connect-concurrency must be >= 1".into());
        }
        let subscribers =
            args.subscribers
                .unwrap_or(if is_stream { STREAM_SUBSCRIBERS } else { 0 });
        if (is_stream && subscribers == 0) || subscribers > MAX_SUBSCRIBERS {
            return invalid(format!("--subscribers must be 1..={MAX_SUBSCRIBERS}"));
        }
        if !(args.max_error_rate.is_finite() && (0.0..=100.0).contains(&args.max_error_rate)) {
            return invalid(format!(
                "--max-error-rate must be a percentage in [0, 100], got {}",
                args.max_error_rate
            ));
        }
        if args.settle_s > MAX_DURATION_S {
            return invalid(format!("--settle-s must be <= {MAX_DURATION_S}"));
        }
        if !args.use_existing && args.admin_token.is_none() {
            return invalid(
                "creating SKUs needs --admin-token (or FLASHSALE_ADMIN_TOKEN); \
                 pass --use-existing to load existing SKUs instead"
                    .into(),
            );
        }
        let sku_count = args.skus.unwrap_or(match args.scenario {
            ScenarioName::HotItem | ScenarioName::Stream | ScenarioName::Queue => 1,
            ScenarioName::Catalog => 1_000,
            ScenarioName::Checkout => 100,
        });
        if sku_count == 0 || sku_count > MAX_SKUS {
            return invalid(format!("--skus must be 1..={MAX_SKUS}"));
        }
        if args.scenario == ScenarioName::HotItem && sku_count != 1 {
            return invalid("hot-item uses exactly one SKU (use catalog for several)".into());
        }
        if args.scenario == ScenarioName::Queue && (sku_count != 1 || args.use_existing) {
            return invalid(
                "queue creates its one SKU and its queue (no --skus, no --use-existing)".into(),
            );
        }
        let base = args
            .sku
            .clone()
            .unwrap_or_else(|| format!("lg-{now_unix_s}"));
        let skus: Vec<String> = if sku_count == 1 {
            vec![base]
        } else {
            (0..sku_count).map(|i| format!("{base}-{i}")).collect()
        };
        for sku in skus.iter().take(1).chain(skus.last()) {
            flashsale_protocol::ids::SkuId::new(sku.as_str())
                .map_err(|e| ConfigError::Invalid(format!("SKU id {sku:?}: {e}")))?;
        }
        let reservation_ttl_s = args.reservation_ttl_s.unwrap_or(match args.scenario {
            ScenarioName::Checkout | ScenarioName::Queue => 5,
            _ => args.duration + args.warmup + args.settle_s + 600,
        });
        if reservation_ttl_s == 0 {
            return invalid("--reservation-ttl-s must be >= 1".into());
        }
        let quic_addr = if subscribers > 0 {
            if args.fingerprint.is_none() && !args.insecure {
                return invalid(
                    "stream subscribers need --fingerprint SHA256HEX (printed by flashsale serve) \
                     or --insecure"
                        .into(),
                );
            }
            let t = Target::parse(&format!("http://{}", args.quic), args.allow_remote)
                .map_err(|e| ConfigError::Invalid(format!("--quic {}: {e}", args.quic)))?;
            if sku_count > flashsale_protocol::stream::MAX_SUBSCRIBED_SKUS {
                return invalid(format!(
                    "stream subscribers watch at most {} SKUs",
                    flashsale_protocol::stream::MAX_SUBSCRIBED_SKUS
                ));
            }
            Some(t.addr)
        } else {
            None
        };
        let queue = match args.scenario {
            ScenarioName::Queue => Some(
                crate::queue::flags::QueueConfig::from_args(&args.queue, &skus[0], connections)
                    .map_err(ConfigError::Invalid)?,
            ),
            _ => None,
        };
        let auto_sources = connections.div_ceil(CONNECTIONS_PER_SOURCE_ADDR);
        let source_addrs = args.source_addrs.unwrap_or(auto_sources);
        if source_addrs > 1 && !target.addr.is_ipv4() {
            return invalid("--source-addrs > 1 needs an IPv4 loopback target".into());
        }
        if source_addrs > 1 && !target.addr.ip().is_loopback() {
            return invalid("--source-addrs > 1 is for loopback targets only".into());
        }
        if source_addrs > 250 {
            return invalid("--source-addrs must be <= 250".into());
        }
        Ok(Config {
            target_url: target_urls[0].clone(),
            target_urls,
            target,
            // With several targets every reservation carries a key: a buyer that follows a
            // takeover sends it again, and only a key makes that safe.
            idempotency_keys: args.idempotency_keys || targets.len() > 1,
            targets,
            token: args.token,
            admin_token: args.admin_token,
            scenario: args.scenario,
            connections,
            duration_s: args.duration,
            warmup_s: args.warmup,
            load_model,
            sku_first: skus[0].clone(),
            sku_count,
            skus,
            stock: args.stock,
            price_cents: args.price_cents,
            qty: args.qty,
            zipf_exponent: args.zipf_exponent,
            confirm_share: args.confirm_share,
            cancel_share: args.cancel_share,
            reservation_ttl_s,
            ttl_known: !args.use_existing || args.reservation_ttl_s.is_some(),
            use_existing: args.use_existing,
            source_addrs: source_addrs.max(1),
            timeout_ms: args.timeout_ms,
            connect_concurrency: args.connect_concurrency,
            buyer_ids: args.buyer_ids,
            max_error_rate_percent: args.max_error_rate,
            max_requests: args.max_requests,
            settle_s: args.settle_s,
            seed: args.seed,
            quic: args.quic,
            quic_addr,
            fingerprint: args.fingerprint,
            insecure: args.insecure,
            stream_nice: args.stream_nice,
            stream_threads: usize::from(args.stream_threads),
            subscribers,
            allow_remote: args.allow_remote,
            quiet: args.quiet,
            queue,
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["flashsale-loadgen", "--token", "t", "--admin-token", "a"];
        argv.extend_from_slice(extra);
        Config::from_args(Args::try_parse_from(argv).unwrap(), 1_700_000_000)
    }

    #[test]
    fn defaults_follow_the_scenario() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.connections, 10_000);
        assert_eq!(c.skus, vec!["lg-1700000000".to_string()]);
        assert_eq!(c.load_model, LoadModel::Closed);
        assert_eq!(c.source_addrs, 1);
        assert!(c.reservation_ttl_s > c.duration_s);
        // A buyer per arrival: the default run measures reservations, not a per-buyer limiter.
        assert_eq!(c.buyer_ids, BuyerIds::PerArrival);
        assert_eq!(c.max_error_rate_percent, DEFAULT_MAX_ERROR_RATE_PERCENT);
        let c = parse(&[
            "--scenario",
            "catalog",
            "--connections",
            "50000",
            "--rate",
            "1000",
        ])
        .unwrap();
        assert_eq!(c.skus.len(), 1_000);
        assert_eq!(c.skus[999], "lg-1700000000-999");
        assert_eq!(c.source_addrs, 3);
        assert_eq!(c.load_model, LoadModel::Open { rate_rps: 1000.0 });
        let c = parse(&["--scenario", "checkout"]).unwrap();
        assert_eq!(c.reservation_ttl_s, 5);
        let c = parse(&[
            "--scenario",
            "stream",
            "--insecure",
            "--quic",
            "localhost:9",
        ])
        .unwrap();
        assert_eq!(c.connections, STREAM_CONNECTIONS);
        assert_eq!(
            c.load_model,
            LoadModel::Open {
                rate_rps: STREAM_RATE_RPS
            }
        );
        assert_eq!(c.quic_addr, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(c.subscribers, STREAM_SUBSCRIBERS);
        // Other scenarios have no subscribers unless asked, then they watch the scenario's SKU.
        let c = parse(&["--scenario", "hot-item"]).unwrap();
        assert_eq!((c.subscribers, c.quic_addr), (0, None));
        let c = parse(&[
            "--scenario",
            "hot-item",
            "--subscribers",
            "1000",
            "--insecure",
            "--quic",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(c.subscribers, 1000);
        assert_eq!(c.stream_threads, 1);
        assert_eq!(c.load_model, LoadModel::Closed);
        assert_eq!(c.quic_addr, Some("127.0.0.1:9".parse().unwrap()));
        let two = parse(&[
            "--scenario",
            "stream",
            "--insecure",
            "--stream-threads",
            "2",
        ])
        .unwrap();
        assert_eq!(two.stream_threads, 2);
    }

    #[test]
    fn help_shows_each_default_once() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        let start = help.find("--stream-threads").unwrap();
        let end = help[start..]
            .find("--quiet")
            .map_or(help.len(), |i| start + i);
        let para = &help[start..end];
        assert_eq!(para.matches("default").count(), 1, "{para}");
        assert!(help.contains("[default: per-arrival]"));
    }

    #[test]
    fn several_targets_are_all_resolved_and_imply_idempotency_keys() {
        let c = parse(&["--target", "http://127.0.0.1:1,http://localhost:2"]).unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.target, c.targets[0]);
        assert_eq!(
            c.targets[1].addr,
            "127.0.0.1:2".parse::<std::net::SocketAddr>().unwrap()
        );
        assert!(
            c.idempotency_keys,
            "a buyer that follows a move resends with its key"
        );
        let one = parse(&["--target", "http://127.0.0.1:1"]).unwrap();
        assert_eq!(one.targets.len(), 1);
        assert!(
            !one.idempotency_keys,
            "one target: keys only with --idempotency-keys"
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--target", "http://192.0.2.1:80"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--confirm-share", "0.8", "--cancel-share", "0.3"]).is_err());
        assert!(parse(&["--scenario", "hot-item", "--skus", "3"]).is_err());
        assert!(parse(&["--sku", "bad sku"]).is_err());
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--max-error-rate", "101"]).is_err());
        assert!(parse(&["--max-error-rate", "-1"]).is_err());
        assert_eq!(
            parse(&["--max-error-rate", "5"])
                .unwrap()
                .max_error_rate_percent,
            5.0
        );
        assert!(
            parse(&["--scenario", "stream"]).is_err(),
            "no trust setting"
        );
        assert!(
            parse(&["--scenario", "hot-item", "--subscribers", "10"]).is_err(),
            "subscribers need a trust setting"
        );
        assert!(parse(&["--scenario", "stream", "--insecure", "--subscribers", "0"]).is_err());
        let remote = [
            "--scenario",
            "stream",
            "--insecure",
            "--quic",
            "192.0.2.1:8443",
        ];
        assert!(parse(&remote).is_err());
        for threads in ["0", "65"] {
            let argv = [
                "flashsale-loadgen",
                "--token",
                "t",
                "--stream-threads",
                threads,
            ];
            assert!(
                Args::try_parse_from(argv).is_err(),
                "--stream-threads {threads}"
            );
        }
        let argv = ["flashsale-loadgen", "--token", "t"];
        let no_admin = Config::from_args(Args::try_parse_from(argv).unwrap(), 0);
        assert!(no_admin.is_err());
    }
}

//! `flashsale serve`: its flags, and the wiring of log → engine → HTTP API (+ QUIC stream) with
//! a clean start (addresses and generated tokens printed once) and a graceful stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use flashsale_engine::{Engine, EngineConfig, LogBackend, StockObserver, SystemClock};
use tokio::net::TcpListener;

use crate::auth::{Role, Tokens};
use crate::dashboard::DashboardFeed;
use crate::ha::node::EngineFactory;
use crate::ha::{HaConfig, HaNode};
use crate::http::jwt::JwtVerifier;
use crate::http::rate_limit::Rate;
use crate::http::{ApiConfig, App, ServerConfig};
use crate::identity::{Identity, ResetKey};
use crate::stream::{StockHub, StreamConfig, StreamDriver, StreamThread};

/// `--queue-poll-spread`: how the waiting room spreads its poll budget over waiting tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PollSpreadArg {
    /// Every waiting ticket polls at the same interval.
    Even,
    /// Less often further back in the line.
    ByPosition,
}

impl From<PollSpreadArg> for flashsale_waiting_room::PollSpread {
    fn from(a: PollSpreadArg) -> Self {
        match a {
            PollSpreadArg::Even => flashsale_waiting_room::PollSpread::Even,
            PollSpreadArg::ByPosition => flashsale_waiting_room::PollSpread::ByPosition,
        }
    }
}

/// Where the HTTP API's connections are served (`--http-runtime`, ADR 0047).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpRuntime {
    /// On the shard executors themselves: one SO_REUSEPORT listener per shard, and a request
    /// for a SKU of the accepting shard never leaves its thread (with --ha: one listener, a
    /// leader hands its connections to its shard executors, a standby serves on tokio).
    Shards,
    /// On a tokio runtime beside the shard executors: every request crosses to its shard and
    /// back (the server before ADR 0047).
    Tokio,
}

/// Flags of `flashsale serve`. Every flag also reads the env var `FLASHSALE_<FLAG>`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API (HTTP/1.1 and h2c).
    #[arg(long, env = "FLASHSALE_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,

    /// Address of the QUIC stock stream (UDP).
    #[arg(long, env = "FLASHSALE_QUIC", default_value = "127.0.0.1:8443")]
    pub quic: SocketAddr,

    /// Directory of the embedded write-ahead log and snapshots (the default backend), and of
    /// the server identity with either backend: `identity.json` (mode 0600) keeps generated
    /// tokens, the stream's self-signed certificate and its stateless-reset key across restarts.
    #[arg(long, env = "FLASHSALE_DATA_DIR", default_value = "./flashsale-data")]
    pub data_dir: PathBuf,

    /// Use Postgres as the write-ahead log instead, e.g. postgres://postgres@127.0.0.1/test.
    #[arg(long, env = "FLASHSALE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Postgres schema holding the log, snapshots and read model (one per instance).
    #[arg(long, env = "FLASHSALE_DATABASE_SCHEMA", default_value = flashsale_persistence::postgres::DEFAULT_SCHEMA)]
    pub database_schema: String,

    /// Number of engine shards (one pinned executor each) [default: number of cores].
    #[arg(long, env = "FLASHSALE_SHARDS")]
    pub shards: Option<usize>,

    /// Admin token (SKU management). Repeatable; the env var takes a comma-separated list.
    /// Without one, the token stored in --data-dir is used: generated and printed at the first
    /// start, kept for the next (`flashsale credentials show` prints it again).
    #[arg(
        long = "admin-token",
        env = "FLASHSALE_ADMIN_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<String>,

    /// Storefront token (reserve, confirm, cancel for buyers). Repeatable; comma-separated in
    /// the env var. Without one, the stored token is used, as for --admin-token.
    #[arg(
        long = "storefront-token",
        env = "FLASHSALE_STOREFRONT_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub storefront_tokens: Vec<String>,

    /// Partner token (read-only stock: the QUIC stream and GET /v1/skus). Repeatable;
    /// comma-separated in the env var. None by default.
    #[arg(
        long = "partner-token",
        env = "FLASHSALE_PARTNER_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub partner_tokens: Vec<String>,

    /// Secret (≥ 32 bytes) enabling buyer JWTs (HS256; `sub` = buyer, `exp` required).
    /// Without it, only admin/storefront/partner tokens are accepted.
    #[arg(long, env = "FLASHSALE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM certificate chain of the QUIC stream [default: the self-signed certificate stored in
    /// --data-dir, generated at the first start].
    #[arg(long, env = "FLASHSALE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the QUIC stream (with --tls-cert).
    #[arg(long, env = "FLASHSALE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Shortest time between two stock-stream publications, in ms: changes of a SKU within one
    /// interval reach subscribers as its latest value (conflation), so a busy SKU costs each
    /// subscriber at most one packet per interval. 0 publishes every change at once.
    #[arg(long, env = "FLASHSALE_STREAM_PUBLISH_INTERVAL_MS", default_value_t = crate::stream::DEFAULT_PUBLISH_INTERVAL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub stream_publish_interval_ms: u64,

    /// Stock-stream fan-out budget in update packets per second for all partners together
    /// (0 = unlimited): with N connections, publications are at least N / budget s apart, so
    /// the stream's CPU cost stays bounded however many partners subscribe.
    #[arg(long, env = "FLASHSALE_STREAM_MAX_SENDS_PER_S", default_value_t = crate::stream::DEFAULT_MAX_SENDS_PER_S)]
    pub stream_max_sends_per_s: u64,

    /// Heartbeat of an idle stock-stream connection, in ms (100..=5000). A client takes a
    /// heartbeat a quarter late as a sign of trouble: it probes the server and, given every
    /// node of an HA group, connects to the node that now leads; three missed heartbeats (+ 2 s)
    /// end its session. Shorter notices a dead leader sooner, at one small packet per idle
    /// connection per interval.
    #[arg(long, env = "FLASHSALE_STREAM_HEARTBEAT_MS", default_value_t = crate::stream::DEFAULT_HEARTBEAT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(crate::stream::MIN_HEARTBEAT_MS..=crate::stream::MAX_HEARTBEAT_MS))]
    pub stream_heartbeat_ms: u64,

    /// Nice value of the stock-stream thread (Linux, -20..=19), e.g. -10 so updates go out
    /// promptly while HTTP saturates the CPU. Needs CAP_SYS_NICE below 0; if refused, a
    /// warning is logged and the thread runs at the default priority.
    #[arg(long, env = "FLASHSALE_STREAM_THREAD_NICE", allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub stream_thread_nice: Option<i32>,

    /// OS threads of the stock stream (1..=64): with N > 1, connections and the fan-out of each
    /// publication are spread over N threads, for machines with cores to spare for partners.
    #[arg(long, env = "FLASHSALE_STREAM_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub stream_threads: u16,

    /// What drives the stock stream's QUIC connections: `proto` (one loop drives quinn-proto
    /// directly — one timer structure, batched UDP, no task per connection; one thread) or
    /// `quinn` (quinn's endpoint driver and a task per connection; spreads over
    /// --stream-threads). Same protocol, TLS and transport settings. Default: `proto` with one
    /// stream thread, `quinn` with --stream-threads above 1 (ADR 0046).
    #[arg(long, env = "FLASHSALE_STREAM_DRIVER", value_enum)]
    pub stream_driver: Option<crate::stream::StreamDriver>,

    /// Most open HTTP connections; beyond it new connections get 503 and are closed.
    #[arg(long, env = "FLASHSALE_MAX_CONNECTIONS", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most open HTTP connections from one client address (an IPv6 /64); beyond it new
    /// connections from that address get 429 and are closed. 0 = no per-address cap. Behind a
    /// remote proxy or load balancer all clients share its address: raise it or use 0.
    #[arg(long, env = "FLASHSALE_PER_IP_MAX_CONNECTIONS", default_value_t = crate::http::server::DEFAULT_PER_IP_MAX_CONNECTIONS)]
    pub per_ip_max_connections: usize,

    /// Count loopback peers against --per-ip-max-connections too. By default they are not
    /// capped per address: a local proxy, health checks or a load test on the same machine.
    #[arg(long, env = "FLASHSALE_PER_IP_LIMIT_LOOPBACK")]
    pub per_ip_limit_loopback: bool,

    /// Largest request body in bytes (413 above).
    #[arg(long, env = "FLASHSALE_BODY_LIMIT_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(256..))]
    pub body_limit_bytes: u32,

    /// Longest time to receive a request head, in ms; also how long a connection with no
    /// request in flight is kept, HTTP/1.1 and HTTP/2 alike (slow-loris and idle-hoarding
    /// protection).
    #[arg(long, env = "FLASHSALE_HEADER_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,

    /// Longest time to receive a request body, in ms (408 after).
    #[arg(long, env = "FLASHSALE_BODY_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,

    /// On SIGINT/SIGTERM, how long to let in-flight requests finish, in ms.
    #[arg(long, env = "FLASHSALE_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Requests per second per client IP on /v1 routes (token bucket); 0 = no limit.
    /// Off by default: behind a proxy or in a load test all clients share few addresses.
    #[arg(long, env = "FLASHSALE_RATE_LIMIT_IP_RPS", default_value_t = 0.0)]
    pub rate_limit_ip_rps: f64,

    /// Burst size of the per-IP limit.
    #[arg(long, env = "FLASHSALE_RATE_LIMIT_IP_BURST", default_value_t = 100.0)]
    pub rate_limit_ip_burst: f64,

    /// How the waiting room spreads its poll budget: `even` (every waiting ticket polls at the
    /// same interval, 10,000 waiting → every 2 s) or `by-position` (the same at the front of
    /// the line, less often further back: 3 ms per place, at most 30 s; ADR 0039).
    #[arg(long, env = "FLASHSALE_QUEUE_POLL_SPREAD", value_enum, default_value_t = PollSpreadArg::Even)]
    pub queue_poll_spread: PollSpreadArg,

    /// Longest time, in ms, the waiting room's journal keeps records nobody awaits (a
    /// reservation's `HoldPlaced`, a cancel's `HoldReleased`, a confirm's `Spent`) before
    /// flushing them when no awaited record comes to take them along; 0 = flush each group at
    /// once, an fdatasync of its own (before ADR 0040).
    #[arg(long, env = "FLASHSALE_QUEUE_JOURNAL_DETACHED_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub queue_journal_detached_ms: u64,

    /// Reservations per second per buyer (token bucket); 0 = no limit.
    #[arg(long, env = "FLASHSALE_RATE_LIMIT_BUYER_RPS", default_value_t = 10.0)]
    pub rate_limit_buyer_rps: f64,

    /// Burst size of the per-buyer limit.
    #[arg(long, env = "FLASHSALE_RATE_LIMIT_BUYER_BURST", default_value_t = 20.0)]
    pub rate_limit_buyer_burst: f64,

    /// Most keys (IPs, buyers) each rate limiter tracks; bounds its memory.
    #[arg(long, env = "FLASHSALE_RATE_LIMIT_MAX_KEYS", default_value_t = 100_000)]
    pub rate_limit_max_keys: usize,

    /// SKUs with their own stock series in /metrics (`flashsale_sku_stock_units{sku,state}`):
    /// the busiest (most units reserved plus sold); the others are summed into
    /// `flashsale_sku_stock_other_units`, so the number of series stays bounded (0..=1000).
    #[arg(long, env = "FLASHSALE_METRICS_TOP_SKUS", default_value_t = crate::http::stock_metrics::DEFAULT_TOP_SKUS as u64, value_parser = clap::value_parser!(u64).range(0..=crate::http::stock_metrics::MAX_TOP_SKUS as u64))]
    pub metrics_top_skus: u64,

    /// Bound of each shard's command queue (a full queue answers 503). Keep it at least
    /// --max-connections so that a whole crowd on one hot SKU queues instead of being refused.
    #[arg(long, env = "FLASHSALE_QUEUE_DEPTH", default_value_t = 20_480)]
    pub queue_depth: usize,

    /// Period of the reservation expiry tick, in ms.
    #[arg(long, env = "FLASHSALE_EXPIRY_TICK_MS", default_value_t = 100)]
    pub expiry_tick_ms: u64,

    /// Accept webhook targets on loopback and private addresses (tests, development). Without
    /// it such URLs are refused with 422.
    #[arg(long, env = "FLASHSALE_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// How long a failing webhook delivery is retried (exponential backoff with jitter) before
    /// the event is dead-lettered, in seconds.
    #[arg(long, env = "FLASHSALE_WEBHOOK_RETRY_PERIOD_S", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_period_s: u64,

    /// First retry delay of a failing webhook delivery in ms (doubles per failure, up to 5 min).
    #[arg(long, env = "FLASHSALE_WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,

    /// Publish every event to RabbitMQ (AMQP 0-9-1), e.g. amqp://guest:guest@127.0.0.1:5672/%2f,
    /// or over TLS with amqps://…:5671/… (server certificate checked against the platform roots).
    /// With --ha the leader publishes (give it to every node).
    #[arg(long, env = "FLASHSALE_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// Extra CA certificates (PEM) trusted for an amqps:// broker, besides the platform roots.
    #[arg(long, env = "FLASHSALE_AMQP_CA_FILE", requires = "amqp_url")]
    pub amqp_ca_file: Option<PathBuf>,

    /// The topic exchange events are published to (routing key = event type).
    #[arg(long, env = "FLASHSALE_AMQP_EXCHANGE", default_value = flashsale_events::DEFAULT_EXCHANGE)]
    pub amqp_exchange: String,

    /// Nice value (0 = the server's priority … 19 = lowest) of the thread event delivery
    /// (webhooks, AMQP) runs on: higher lets reservations take the CPU first under contention,
    /// at the cost of delivery lag (the log is the buffer).
    #[arg(long, env = "FLASHSALE_EVENTS_DELIVERY_NICE", default_value_t = flashsale_events::DEFAULT_DELIVERY_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub events_delivery_nice: i32,

    /// Do not pin shard executors to cores.
    #[arg(long, env = "FLASHSALE_NO_PIN_CORES")]
    pub no_pin_cores: bool,

    /// How long an idle shard executor keeps polling for work before it sleeps, in µs (0 =
    /// sleep at once). Only with pinned executors; it trades CPU for fewer thread wake-ups
    /// (ADR 0038 measures it).
    #[arg(long, env = "FLASHSALE_SHARD_SPIN_US", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub shard_spin_us: u64,

    /// Where HTTP connections are served (ADR 0045, ADR 0047). Either way replies wait for
    /// the log's flush, and HTTP/1.1 and h2c are served.
    #[arg(long, env = "FLASHSALE_HTTP_RUNTIME", value_enum, default_value_t = HttpRuntime::Shards)]
    pub http_runtime: HttpRuntime,

    /// The earlier experimental flag, kept for scripts: the same as `--http-runtime shards`.
    #[arg(long, hide = true, conflicts_with = "http_runtime")]
    pub http_on_shards: bool,

    /// High availability (needs --database-url): join the group of nodes on the same schema;
    /// lead while holding the lease, else stand by (503 not-leader) and take over when the
    /// leader's lease lapses.
    #[arg(long, env = "FLASHSALE_HA")]
    pub ha: bool,

    /// With --ha: the URL clients reach this node's HTTP API at (standbys name the leader by
    /// it) [default: http://<--http address>].
    #[arg(long, env = "FLASHSALE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// With --ha: this node's identity in the group; a second live node with the same id is
    /// refused [default: the advertise URL].
    #[arg(long, env = "FLASHSALE_NODE_ID")]
    pub node_id: Option<String>,

    /// With --ha: how long the lease lasts without renewal, in ms (renewed every fifth of it).
    /// A dead leader is replaced after at most this plus a fifth, plus the catch-up.
    #[arg(long, env = "FLASHSALE_HA_LEASE_MS", default_value_t = 1500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub ha_lease_ms: u64,

    /// With --ha: a standby keeps a live copy of the state by tailing the log, answers reads
    /// from it (marked with its lag) and at a takeover replays only the records it has not
    /// applied. `false`: it keeps no copy (no memory for it), refuses reads, and recovers
    /// from the snapshot and the whole log after it at a takeover.
    #[arg(long, env = "FLASHSALE_HA_FOLLOW", default_value_t = true, action = clap::ArgAction::Set)]
    pub ha_follow: bool,
}

/// Checks the high-availability flags before anything starts.
fn check_ha_flags(args: &ServeArgs) -> anyhow::Result<()> {
    if args.ha {
        anyhow::ensure!(
            args.database_url.is_some(),
            "--ha needs --database-url: the group shares its log, lease and fencing through Postgres"
        );
    } else {
        anyhow::ensure!(
            args.advertise_url.is_none() && args.node_id.is_none(),
            "--advertise-url and --node-id only apply with --ha"
        );
    }
    if let Some(url) = &args.advertise_url {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--advertise-url must be an http:// or https:// URL, got {url:?}"
        );
    }
    Ok(())
}

/// A rate from `rps`/`burst` flags; `None` when `rps` is 0.
fn rate(name: &str, rps: f64, burst: f64) -> anyhow::Result<Option<Rate>> {
    if rps == 0.0 {
        return Ok(None);
    }
    anyhow::ensure!(
        rps.is_finite() && rps > 0.0,
        "--rate-limit-{name}-rps must be ≥ 0"
    );
    anyhow::ensure!(
        burst.is_finite() && burst >= 1.0,
        "--rate-limit-{name}-burst must be ≥ 1"
    );
    Ok(Some(Rate { per_s: rps, burst }))
}

/// The tokens given with flags (or their env vars), checked: printable ASCII, no spaces.
fn flag_tokens(args: &ServeArgs) -> anyhow::Result<Tokens> {
    let mut t = Tokens::new();
    for (list, role, name) in [
        (&args.admin_tokens, Role::Admin, "admin"),
        (&args.storefront_tokens, Role::Storefront, "storefront"),
        (&args.partner_tokens, Role::Partner, "partner"),
    ] {
        for token in list {
            let token = token.trim();
            anyhow::ensure!(!token.is_empty(), "an empty --{name}-token was given");
            anyhow::ensure!(
                token.bytes().all(|b| b.is_ascii_graphic()),
                "--{name}-token must be printable ASCII without spaces"
            );
            t.add(token, role);
        }
    }
    Ok(t)
}

/// The tokens in force: those of the flags, and for each of admin and storefront without one,
/// the token stored in the identity. Prints stored tokens only when the identity was `created`
/// just now; later starts print where they are kept instead.
fn tokens(mut t: Tokens, identity: &Identity, created: bool, dir: &Path) -> Tokens {
    let path = crate::identity::path_in(dir);
    let mut stored = Vec::new();
    for (role, name, token, env) in [
        (
            Role::Admin,
            "admin",
            &identity.admin_token,
            "FLASHSALE_ADMIN_TOKEN",
        ),
        (
            Role::Storefront,
            "storefront",
            &identity.storefront_token,
            "FLASHSALE_STOREFRONT_TOKEN",
        ),
    ] {
        if t.has(role) {
            continue;
        }
        if created {
            println!("generated {name} token: {token} (set --{name}-token or {env} to choose one)");
        }
        stored.push(name);
        t.add(token.clone(), role);
    }
    if !stored.is_empty() {
        println!(
            "{} token{} kept in {} (`flashsale credentials show --data-dir {}` prints {} again)",
            stored.join(" and "),
            if stored.len() > 1 { "s" } else { "" },
            path.display(),
            dir.display(),
            if stored.len() > 1 { "them" } else { "it" },
        );
    }
    t
}

/// The write-ahead log the flags ask for, and the Postgres backend when that is the log (the
/// read model follows it).
struct OpenedLog {
    log: Arc<dyn LogBackend>,
    postgres: Option<flashsale_persistence::PostgresBackend>,
    /// The committed log as the events outbox reads it.
    events_source: flashsale_events::LogSource,
}

/// Opens the write-ahead log the flags ask for: Postgres with `--database-url`, else the
/// embedded segment files in `--data-dir` (created if missing).
fn open_log(args: &ServeArgs) -> anyhow::Result<OpenedLog> {
    if let Some(url) = &args.database_url {
        let backend =
            flashsale_persistence::PostgresBackend::with_schema(url, &args.database_schema)
                .context("--database-url: cannot use the Postgres log")?;
        return Ok(OpenedLog {
            log: Arc::new(backend.clone()),
            events_source: flashsale_events::LogSource::postgres(&backend),
            postgres: Some(backend),
        });
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create --data-dir {}", args.data_dir.display()))?;
    // Absolute, so the shards' executors (and io_uring) never depend on the working directory.
    let data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("cannot resolve --data-dir {}", args.data_dir.display()))?;
    let backend = flashsale_persistence::EmbeddedBackend::open(&data_dir).with_context(|| {
        format!(
            "cannot open the log in --data-dir {}",
            args.data_dir.display()
        )
    })?;
    Ok(OpenedLog {
        events_source: flashsale_events::LogSource::embedded(&backend),
        log: Arc::new(backend),
        postgres: None,
    })
}

/// Raises the soft open-files limit to the hard limit (10K+ connections need it).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit struct; raising the soft limit up to the hard limit
        // needs no privilege and affects only this process.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            tracing::warn!("cannot raise the open-files limit");
        }
    }
}

/// Accept backlog of the HTTP listener (the kernel caps it at `net.core.somaxconn`): a crowd
/// connecting at once should queue, not be dropped.
pub const HTTP_BACKLOG: u32 = 8192;

/// A TCP socket of `addr`'s family with SO_REUSEADDR set, not yet bound.
pub fn reuseaddr_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// Binds the HTTP listener with SO_REUSEADDR and a deep accept backlog.
pub fn bind_http(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = reuseaddr_socket(addr)?;
    socket.bind(addr)?;
    socket.listen(HTTP_BACKLOG)
}

/// The HTTP listener(s): one for the tokio server, or one per shard executor
/// (`--http-runtime shards`).
enum HttpListeners {
    /// The tokio accept loop's listener.
    Tokio(TcpListener),
    /// One `SO_REUSEPORT` listener per shard executor.
    OnShards(Vec<std::net::TcpListener>),
}

impl HttpListeners {
    /// The bound address (all listeners share it).
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            HttpListeners::Tokio(l) => l.local_addr(),
            HttpListeners::OnShards(all) => match all.first() {
                Some(l) => l.local_addr(),
                None => Err(std::io::Error::other("no HTTP listener")),
            },
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives. Installing the handlers happens up front so that
/// a failure is reported at start, not at shutdown.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// Refuses to start a single node (unfenced writes) on a schema a live HA group leads.
async fn refuse_if_group(pg: &flashsale_persistence::PostgresBackend) -> anyhow::Result<()> {
    let store = flashsale_persistence::postgres::lease::GroupStore::connect(pg)
        .await
        .context("--database-url: cannot reach Postgres")?;
    let lease = store.lease().await.context("reading the HA lease")?;
    anyhow::ensure!(
        lease.node_id.is_empty() || lease.remaining_ms <= 0,
        "schema {} is led by node {:?} of a high-availability group (epoch {}); \
         start with --ha to join it",
        pg.schema(),
        lease.node_id,
        lease.epoch
    );
    Ok(())
}

/// Prints the stream's address and certificate fingerprint (tests and operators read it).
fn print_quic(quic: &StreamThread) {
    println!(
        "quic listening on {} (certificate sha256 {}{})",
        quic.local_addr(),
        quic.fingerprint(),
        if quic.is_self_signed() {
            ", self-signed"
        } else {
            ""
        }
    );
}

/// `app` with the dashboard's feed, and the feed's one-second sampler started (it stops when
/// the feed is closed, on shutdown, or the API is dropped).
fn with_dashboard<E: crate::http::Inventory>(
    app: App<E>,
    quic: &StreamThread,
) -> (Arc<App<E>>, Arc<DashboardFeed>) {
    let feed = Arc::new(DashboardFeed::new());
    let app = Arc::new(app.with_dashboard(feed.clone()));
    let stats = quic.stats();
    tokio::spawn(crate::dashboard::sampler::run(
        Arc::downgrade(&app),
        feed.clone(),
        Box::new(move || stats.snapshot().active),
    ));
    (app, feed)
}

/// Runs `flashsale serve` until SIGINT/SIGTERM; returns once drained and stopped.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let stop = shutdown_signal()?;
    check_ha_flags(&args)?;
    // Every flag that can be refused is checked before anything is created or printed: a bad
    // flag never leaves freshly generated tokens on the terminal.
    let jwt = args
        .jwt_secret
        .as_deref()
        .map(|s| JwtVerifier::new(s.as_bytes()))
        .transpose()
        .context("--jwt-secret")?;
    let ip_rate = rate("ip", args.rate_limit_ip_rps, args.rate_limit_ip_burst)?;
    let buyer_rate = rate(
        "buyer",
        args.rate_limit_buyer_rps,
        args.rate_limit_buyer_burst,
    )?;
    let shards = match args.shards {
        Some(0) => anyhow::bail!("--shards must be ≥ 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let stream_driver =
        StreamDriver::for_threads(args.stream_driver, usize::from(args.stream_threads))
            .context("--stream-driver")?;
    let flag_tokens = flag_tokens(&args)?;
    // Bind early: a taken port is reported before any token is generated or printed, and
    // before the engine replays its log. On the shard executors a taken port is probed again
    // for up to 3 s first (`on_shards::BIND_RETRY_FOR`: a predecessor killed a moment ago may
    // still hold it); that wait blocks this start-up thread only, before anything is served.
    // With --ha the tokio server accepts on one listener and hands a leader's connections to
    // its shard executors (ha::shard_http).
    let http = if args.http_runtime == HttpRuntime::Shards && !args.ha {
        let all = crate::http::on_shards::bind_on_shards(args.http, shards)
            .with_context(|| format!("cannot listen on --http {}", args.http))?;
        HttpListeners::OnShards(all)
    } else {
        HttpListeners::Tokio(
            bind_http(args.http)
                .with_context(|| format!("cannot listen on --http {}", args.http))?,
        )
    };
    let http_addr = http
        .local_addr()
        .context("local address of the HTTP listener")?;

    // The identity (generated tokens, the stream's certificate and its stateless-reset key)
    // survives restarts in the data dir, whichever log backend is used.
    let names = crate::identity::certificate_names(args.quic.ip(), &[]);
    let (identity, created) = Identity::load_or_create(&args.data_dir, names)
        .context("--data-dir: cannot use the server identity")?;
    let tokens = tokens(flag_tokens, &identity, created, &args.data_dir);
    let reset_key = identity
        .reset_secret()
        .map(|secret| ResetKey::new(&secret))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the stored stateless-reset secret")?;
    let stored_tls = if args.tls_cert.is_none() {
        Some(identity.tls().context("the stored stream certificate")?)
    } else {
        None
    };

    let api = ApiConfig {
        tokens: tokens.clone(),
        jwt,
        body_limit_bytes: args.body_limit_bytes as usize,
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        ip_rate,
        buyer_rate,
        rate_limit_max_keys: args.rate_limit_max_keys,
        metrics_top_skus: usize::try_from(args.metrics_top_skus).unwrap_or(usize::MAX),
    };
    let server = ServerConfig {
        max_connections: args.max_connections as usize,
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        per_ip_max_connections: args.per_ip_max_connections,
        per_ip_limit_loopback: args.per_ip_limit_loopback,
        ..ServerConfig::default()
    };

    let OpenedLog {
        log,
        postgres,
        events_source,
    } = open_log(&args)?;
    // Event delivery settings (a single node stores its state in the data dir; an HA group in
    // the shared schema, see below).
    let mut events_config = flashsale_events::EventsConfig::new(
        args.data_dir.join("events"),
        u16::try_from(shards).unwrap_or(u16::MAX),
    );
    events_config.allow_private = args.webhook_allow_private;
    events_config.retry.period = Duration::from_secs(args.webhook_retry_period_s);
    events_config.retry.base = Duration::from_millis(args.webhook_retry_base_ms);
    events_config.runtime = flashsale_events::DeliveryRuntime::Dedicated {
        nice: args.events_delivery_nice,
    };
    events_config.amqp = match &args.amqp_url {
        Some(url) => Some(
            flashsale_events::AmqpConfig::new(
                url,
                &args.amqp_exchange,
                args.amqp_ca_file.as_deref(),
            )
            .context("--amqp-url / --amqp-ca-file")?,
        ),
        None => None,
    };
    // The stock hub learns of every durable stock change from the shards (never blocking them)
    // and feeds the QUIC stream. Bind the stream before the engine replays, like HTTP.
    let mut stream_config = StreamConfig::new(args.quic);
    stream_config.tls_cert = args.tls_cert.clone();
    stream_config.tls_key = args.tls_key.clone();
    stream_config.identity = stored_tls;
    stream_config.reset_key = Some(reset_key);
    stream_config.publish_interval = Duration::from_millis(args.stream_publish_interval_ms);
    stream_config.max_sends_per_s = args.stream_max_sends_per_s;
    stream_config.heartbeat = Duration::from_millis(args.stream_heartbeat_ms);
    stream_config.thread_nice = args.stream_thread_nice;
    stream_config.threads = usize::from(args.stream_threads);
    stream_config.driver = stream_driver;
    let hub = StockHub::new(stream_config.history_capacity);
    let leader_gate = stream_config.leader_gate.clone();
    let observer: Option<Arc<dyn StockObserver>> = Some(hub.clone());
    let mut quic = StreamThread::bind(stream_config)
        .with_context(|| format!("cannot listen on --quic {}", args.quic))?;
    let engine_config = {
        let (pin_cores, queue_depth, expiry_tick_ms, spin_before_park_us) = (
            !args.no_pin_cores,
            args.queue_depth,
            args.expiry_tick_ms,
            args.shard_spin_us,
        );
        move |log: Arc<dyn LogBackend>| EngineConfig {
            shards,
            pin_cores,
            queue_depth,
            expiry_tick_ms,
            expiry_batch: 1024,
            snapshot_every_events: 100_000,
            snapshot_state_factor: 2,
            log,
            clock: Arc::new(SystemClock),
            observer: observer.clone(),
            spin_before_park_us,
        }
    };
    let stream_metrics = {
        let (hub, stats, config) = (hub.clone(), quic.stats(), quic.config().clone());
        crate::http::app::ExtraMetrics(Box::new(move |out: &mut String| {
            let server = stats.snapshot();
            let interval = config.publish_interval_for(server.active);
            let interval_us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
            crate::stream::metrics::render(out, &hub.stats(), &server, interval_us);
        }))
    };
    if args.ha {
        drop(events_source);
        let Some(pg) = postgres else {
            anyhow::bail!("--ha needs --database-url");
        };
        let advertise_url = args
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_addr}"));
        let node_id = args
            .node_id
            .clone()
            .unwrap_or_else(|| advertise_url.clone());
        let factory: EngineFactory = Arc::new(move |log, followed| match followed {
            Some(f) => Engine::start_from(engine_config(log), f).context("cannot start the engine"),
            None => Engine::start(engine_config(log)).context("cannot start the engine"),
        });
        let ha = HaConfig {
            node_id: node_id.clone(),
            advertise_url: advertise_url.clone(),
            lease: Duration::from_millis(args.ha_lease_ms),
            follow: args.ha_follow,
            shard_count: u16::try_from(shards).unwrap_or(u16::MAX),
        };
        // Event delivery and the waiting room run on the leader only, for one term at a time
        // (ADR 0027): their state is in the shared schema, so a new leader resumes them.
        let events_slot = crate::ha::Slot::empty();
        let queue_slot = crate::ha::Slot::empty();
        let queues = crate::waiting_room::postgres_journal(
            args.database_url.as_deref().unwrap_or_default(),
            &args.database_schema,
        )
        .context("cannot open the waiting room's journal")?;
        let pass_key = crate::ha::services::group_pass_key(&pg).await?;
        let node = HaNode::join(ha, pg.clone(), factory, Some(hub.clone())).await?;
        {
            // Only the leader's hub is fed by an engine: a standby sends stream clients on.
            let state = node.state();
            leader_gate.set(move || {
                if state.is_leader() {
                    crate::stream::Serving::Yes
                } else {
                    crate::stream::Serving::NotLeader {
                        leader_url: state.leader_url(),
                    }
                }
            });
        }
        let services = Arc::new(crate::ha::services::LeaderServices {
            group: pg,
            events: events_config,
            events_slot: events_slot.clone(),
            queues: Some(queues),
            poll_spread: args.queue_poll_spread.into(),
            pass_key,
            queue_slot: queue_slot.clone(),
            state: node.state(),
        });
        let handoff = (args.http_runtime == HttpRuntime::Shards)
            .then(crate::http::on_shards::Handoff::<crate::ha::SwitchEngine>::new);
        let app_slot = crate::ha::Slot::empty();
        let hook = match &handoff {
            Some(handoff) => crate::ha::shard_http::with_http_on_shards(
                services.hook(),
                handoff.clone(),
                app_slot.clone(),
                server.clone(),
            ),
            None => services.hook(),
        };
        let node = node.with_term_hook(hook);
        print_quic(&quic);
        quic.start(hub.clone(), tokens.clone());
        if handoff.is_some() {
            println!("http served on the shard executors while leading (--http-runtime shards)");
        }
        println!("http listening on {http_addr}");
        println!("dashboard: http://{http_addr}/dashboard (sign in with the admin token)");
        println!("ha: node {node_id} joined as standby, advertising {advertise_url}");
        let (app, feed) = with_dashboard(
            App::new(node.engines(), api)
                .with_cluster(node.state())
                .with_extra_metrics(stream_metrics)
                .with_queue_slot(queue_slot)
                .with_events_slot(events_slot),
            &quic,
        );
        app_slot.set(Some(app.clone()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(node.run(async move {
            let _ = stop_rx.await;
        }));
        let HttpListeners::Tokio(http) = http else {
            anyhow::bail!("internal: --ha binds one HTTP listener");
        };
        let stopping = async move {
            let sig = stop.await;
            tracing::info!(signal = sig, "stopping");
            feed.close();
        };
        let outcome = match handoff {
            Some(handoff) => {
                crate::http::server::serve_handing_off(http, app, server, stopping, handoff).await
            }
            None => crate::http::serve(http, app, server, stopping).await,
        };
        if !outcome.drained {
            tracing::warn!(
                forced = outcome.forced,
                "some connections were closed before finishing"
            );
        }
        let _ = stop_tx.send(());
        if let Err(e) = controller.await {
            tracing::error!(error = %e, "ha controller failed");
        }
        if let Err(e) = quic.stop().await {
            tracing::warn!(error = %e, "stock stream stopped with an error");
        }
        tracing::info!("stopped");
        return Ok(());
    }
    if let Some(pg) = &postgres {
        refuse_if_group(pg).await?;
    }
    // Event delivery reads the committed log (the outbox); its stored positions hold the log
    // segments it still needs, so it is prepared before the engine may take a snapshot.
    let events = flashsale_events::EventService::prepare(events_config, events_source)
        .await
        .context("cannot prepare event delivery (webhooks, AMQP)")?;
    let config = engine_config(log);
    let engine = tokio::task::spawn_blocking(move || Engine::start(config))
        .await
        .context("engine start task")?
        .context("cannot start the engine")?;

    hub.seed(&engine.stock_levels().await);
    events
        .start()
        .await
        .context("cannot start event delivery")?;
    // The read model (orders, order_lines, sku_stock) follows the committed Postgres log from
    // its own connection: it never blocks or slows an acknowledgement.
    let read_model = postgres.as_ref().map(|pg| {
        let shard_count = u16::try_from(shards).unwrap_or(u16::MAX);
        flashsale_persistence::spawn_read_model(
            flashsale_persistence::ReadModelConfig::for_backend(pg, shard_count),
        )
    });
    print_quic(&quic);
    quic.start(hub.clone(), tokens.clone());
    if let HttpListeners::OnShards(all) = &http {
        println!(
            "http served on {} shard executors (--http-runtime shards)",
            all.len()
        );
    }
    println!("http listening on {http_addr}");
    println!("dashboard: http://{http_addr}/dashboard (sign in with the admin token)");
    // The waiting room: its own journal next to the log, passes keyed by the stored identity.
    let queues = {
        let backend = crate::waiting_room::journal_backend(
            args.database_url
                .as_deref()
                .map(|url| (url, args.database_schema.as_str())),
            &args.data_dir,
        )
        .context("cannot open the waiting room's journal")?;
        let secret = identity
            .reset_secret()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("the stored identity secret")?;
        crate::waiting_room::open_with(
            backend,
            crate::waiting_room::pass_key_from(&secret),
            Arc::new(SystemClock),
            Duration::from_millis(args.queue_journal_detached_ms),
        )?
    };
    queues.set_poll_spread(args.queue_poll_spread.into());
    let queue_ticker = queues.clone().spawn_ticker(Arc::new(engine.clone()));
    let (app, feed) = with_dashboard(
        App::new(engine.clone(), api)
            .with_extra_metrics(stream_metrics)
            .with_queues(queues)
            .with_events(events.clone()),
        &quic,
    );
    let stopping = async move {
        let sig = stop.await;
        tracing::info!(signal = sig, "stopping");
        // Dashboard streams end now, so they do not hold up the drain.
        feed.close();
    };
    let outcome = match http {
        HttpListeners::Tokio(http) => crate::http::serve(http, app, server, stopping).await,
        HttpListeners::OnShards(all) => {
            crate::http::on_shards::serve_on_shards(&engine, all, app, server, stopping)
                .await
                .context("cannot start HTTP on the shard executors")?
        }
    };
    if !outcome.drained {
        tracing::warn!(
            forced = outcome.forced,
            "some connections were closed before finishing"
        );
    }
    queue_ticker.abort();
    events.stop().await;
    if let Some(rm) = read_model {
        if let Err(e) = rm.stop().await {
            tracing::warn!(error = %e, "read model stopped with an error");
        }
    }
    // Stop the stream before the engine, so partners see a clean close rather than silence.
    if let Err(e) = quic.stop().await {
        tracing::warn!(error = %e, "stock stream stopped with an error");
    }
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .context("engine shutdown task")?;
    tracing::info!("stopped");
    Ok(())
}

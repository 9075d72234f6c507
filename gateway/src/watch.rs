//! `flashsale watch`: prints live stock from the QUIC stock stream, one line per update,
//! reconnecting and resuming on its own.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use flashsale_protocol::SkuId;
use flashsale_stream_client::{
    ClientOptions, LevelEntry, StreamEvent, Subscriber, Subscription, Trust, UpdateFrame,
    MAX_SERVERS,
};

/// Longest wait between two reconnection attempts of `watch`.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Limit of each reconnection handshake of `watch` (a restarting server gets a fresh one every
/// limit + backoff, at most ≈ 0.55 s apart).
pub const RECONNECT_HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);

/// How often `watch` repeats that it is still reconnecting (the first loss is always shown).
const RECONNECT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Output format of `flashsale watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchFormat {
    /// `SKU available=N reserved=N sold=N seq=N log_seq=N` per line (`seq`: the server's
    /// stream numbering; `log_seq`: the SKU's position in the group's log, the same on every
    /// node).
    Text,
    /// One JSON object per line (`type`: `snapshot` or `update`).
    Json,
}

/// Flags of `flashsale watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Address of the stock stream, HOST:PORT (the `--quic` address of `flashsale serve`).
    /// Repeatable, or a comma-separated list: give every node of a high-availability group
    /// and watch follows the leader (a standby refuses and names it), resuming after a
    /// takeover without a gap or a repeat (per SKU, `log_seq` only increases). With several
    /// nodes, trust them with --ca (or give every node the same --tls-cert).
    #[arg(
        long,
        env = "FLASHSALE_SERVER",
        value_delimiter = ',',
        default_value = "127.0.0.1:8443"
    )]
    pub server: Vec<String>,

    /// Token to authenticate with (partner, storefront or admin).
    #[arg(long, env = "FLASHSALE_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Watch only this SKU; repeatable [default: every SKU, including SKUs created later].
    #[arg(long = "sku", value_name = "SKU")]
    pub skus: Vec<String>,

    /// Trust the server certificate with this SHA-256 fingerprint (64 hex digits), as printed
    /// by `flashsale serve` for its self-signed certificate.
    #[arg(long, value_name = "SHA256HEX", conflicts_with_all = ["ca", "insecure"])]
    pub fingerprint: Option<String>,

    /// Trust server certificates issued by a CA in this PEM file (the name in --server, or
    /// --server-name, must match the certificate).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// Accept any server certificate: encrypted but not authenticated. Local testing only.
    #[arg(long)]
    pub insecure: bool,

    /// TLS name to verify with --ca [default: the host part of --server].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: WatchFormat,

    /// Exit after printing this many updates (snapshot lines not counted) [default: run until
    /// Ctrl-C].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

impl WatchArgs {
    /// The client settings these flags describe.
    pub fn client_options(&self) -> anyhow::Result<ClientOptions> {
        let trust = match (&self.fingerprint, &self.ca, self.insecure) {
            (Some(fp), None, false) => {
                Trust::from_fingerprint_hex(fp).context("--fingerprint")?
            }
            (None, Some(ca), false) => Trust::CaFile(ca.clone()),
            (None, None, true) => Trust::Insecure,
            (None, None, false) => anyhow::bail!(
                "choose how to trust the server: --fingerprint SHA256HEX (printed by `flashsale serve`), --ca FILE, or --insecure"
            ),
            _ => anyhow::bail!("use only one of --fingerprint, --ca and --insecure"),
        };
        let subscription = if self.skus.is_empty() {
            Subscription::All
        } else {
            let mut skus = self
                .skus
                .iter()
                .map(|s| SkuId::new(s.as_str()).with_context(|| format!("--sku {s:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            skus.sort();
            skus.dedup();
            Subscription::Skus(skus)
        };
        let servers = flashsale_client::split_servers(&self.server);
        let Some((first, others)) = servers.split_first() else {
            anyhow::bail!("--server: give at least one HOST:PORT");
        };
        if servers.len() > MAX_SERVERS {
            anyhow::bail!("--server: at most {MAX_SERVERS} addresses");
        }
        let mut options = ClientOptions::new(first.clone(), self.token.clone(), trust);
        options.other_servers = others.to_vec();
        options.server_name = self.server_name.clone();
        options.subscription = subscription;
        // One interactive client: try a restarting server often, so its first change shows
        // within about a second of it answering again.
        options.backoff_max = RECONNECT_BACKOFF_MAX;
        options.reconnect_handshake_timeout = Some(RECONNECT_HANDSHAKE_TIMEOUT);
        Ok(options)
    }
}

fn level_line(format: WatchFormat, level: &LevelEntry, snapshot_seq: u64) -> String {
    match format {
        WatchFormat::Text => format!(
            "{} available={} reserved={} sold={} seq={} log_seq={} (snapshot)",
            level.sku, level.available, level.reserved, level.sold, level.seq, level.log_seq
        ),
        WatchFormat::Json => serde_json::json!({
            "type": "snapshot",
            "snapshot_seq": snapshot_seq,
            "seq": level.seq,
            "log_seq": level.log_seq,
            "sku": level.sku.as_str(),
            "available": level.available,
            "reserved": level.reserved,
            "sold": level.sold,
        })
        .to_string(),
    }
}

fn update_line(format: WatchFormat, u: &UpdateFrame) -> String {
    match format {
        WatchFormat::Text => format!(
            "{} available={} reserved={} sold={} seq={} log_seq={}",
            u.sku, u.available, u.reserved, u.sold, u.seq, u.log_seq
        ),
        WatchFormat::Json => serde_json::json!({
            "type": "update",
            "seq": u.seq,
            "log_seq": u.log_seq,
            "sku": u.sku.as_str(),
            "available": u.available,
            "reserved": u.reserved,
            "sold": u.sold,
            "server_time_us": u.server_time_us,
        })
        .to_string(),
    }
}

/// The requested SKUs a snapshot does not contain: they do not exist on the server (yet).
pub fn missing_skus<'a>(subscription: &'a Subscription, levels: &[LevelEntry]) -> Vec<&'a SkuId> {
    match subscription {
        Subscription::All => Vec::new(),
        Subscription::Skus(skus) => skus
            .iter()
            .filter(|s| !levels.iter().any(|l| &l.sku == *s))
            .collect(),
    }
}

/// The stdout lines for one event (status goes to stderr, see [`run`]).
pub fn event_lines(format: WatchFormat, event: &StreamEvent) -> Vec<String> {
    match event {
        StreamEvent::Snapshot { seq, levels } => {
            levels.iter().map(|l| level_line(format, l, *seq)).collect()
        }
        StreamEvent::Update(u) => vec![update_line(format, u)],
        _ => Vec::new(),
    }
}

/// Runs `flashsale watch` until Ctrl-C (or `--count` updates): prints the snapshot, then one
/// line per update; reconnects and resumes by itself, reporting that on stderr.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let options = args.client_options()?;
    let servers = std::iter::once(options.server.as_str())
        .chain(options.other_servers.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",");
    let subscription = options.subscription.clone();
    let mut subscriber = Subscriber::connect(options).context("stream client setup")?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    // SKUs already reported missing, and the state of an ongoing reconnection.
    let mut reported_missing: BTreeSet<SkuId> = BTreeSet::new();
    let mut lost: Option<(Instant, u64)> = None;
    let mut last_report = Instant::now();
    loop {
        let event = tokio::select! {
            event = subscriber.next_event() => event
                .with_context(|| format!("stock stream at {servers}"))?,
            _ = tokio::signal::ctrl_c() => {
                subscriber.disconnect();
                return Ok(());
            }
        };
        match &event {
            StreamEvent::Connected { epoch, resumed } => {
                let after = lost
                    .take()
                    .map(|(since, _)| format!(" after {:.1} s", since.elapsed().as_secs_f64()))
                    .unwrap_or_default();
                eprintln!(
                    "connected to {} (epoch {epoch:x}{}){after}",
                    subscriber.current_server(),
                    if *resumed { ", resumed" } else { "" }
                );
            }
            StreamEvent::Disconnected { error, retry_in } => match &mut lost {
                None => {
                    eprintln!("disconnected: {error}; reconnecting in {retry_in:?}");
                    lost = Some((Instant::now(), 1));
                    last_report = Instant::now();
                }
                Some((since, attempts)) => {
                    *attempts += 1;
                    if last_report.elapsed() >= RECONNECT_REPORT_EVERY {
                        eprintln!(
                            "still reconnecting after {:.0} s ({attempts} attempts): {error}",
                            since.elapsed().as_secs_f64()
                        );
                        last_report = Instant::now();
                    }
                }
            },
            StreamEvent::Snapshot { levels, .. } => {
                for sku in missing_skus(&subscription, levels) {
                    if reported_missing.insert(sku.clone()) {
                        eprintln!(
                            "SKU {sku} does not exist on {}; its updates will show if it is \
                             created",
                            subscriber.current_server()
                        );
                    }
                }
            }
            _ => {}
        }
        let lines = event_lines(args.format, &event);
        if lines.is_empty() {
            continue;
        }
        let mut out = stdout.lock();
        for line in &lines {
            if let Err(e) = writeln!(out, "{line}") {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e).context("writing to stdout");
            }
        }
        if let Err(e) = out.flush() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing to stdout");
        }
        if matches!(event, StreamEvent::Update(_)) {
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                subscriber.disconnect();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchArgs,
    }

    fn parse(args: &[&str]) -> Result<WatchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("watch").chain(args.iter().copied())).map(|c| c.watch)
    }

    #[test]
    fn flags_build_client_options() {
        let fp = "ab".repeat(32);
        let a = parse(&[
            "--server",
            "10.0.0.1:9000",
            "--token",
            "t",
            "--sku",
            "tee",
            "--sku",
            "mug",
            "--sku",
            "tee",
            "--fingerprint",
            &fp,
        ])
        .unwrap();
        let o = a.client_options().unwrap();
        assert_eq!(o.server, "10.0.0.1:9000");
        assert_eq!(o.trust, Trust::Fingerprint([0xab; 32]));
        assert_eq!(
            o.subscription,
            Subscription::Skus(vec![SkuId::new("mug").unwrap(), SkuId::new("tee").unwrap()])
        );
        let all = parse(&["--token", "t", "--insecure"]).unwrap();
        assert_eq!(
            all.client_options().unwrap().subscription,
            Subscription::All
        );
    }

    #[test]
    fn trust_must_be_chosen_once_and_skus_valid() {
        let no_trust = parse(&["--token", "t"]).unwrap();
        assert!(no_trust.client_options().is_err());
        assert!(parse(&["--token", "t", "--insecure", "--ca", "x.pem"]).is_err());
        let bad_sku = parse(&["--token", "t", "--insecure", "--sku", "no spaces"]).unwrap();
        assert!(bad_sku.client_options().is_err());
        let bad_fp = parse(&["--token", "t", "--fingerprint", "abc"]).unwrap();
        assert!(bad_fp.client_options().is_err());
    }

    #[test]
    fn skus_missing_from_the_snapshot_are_named() {
        let level = |s: &str| LevelEntry {
            sku: SkuId::new(s).unwrap(),
            available: 1,
            reserved: 0,
            sold: 0,
            seq: 1,
            log_seq: 1,
        };
        let sub = Subscription::Skus(vec![
            SkuId::new("nosuch").unwrap(),
            SkuId::new("tee").unwrap(),
        ]);
        let missing = missing_skus(&sub, &[level("tee")]);
        assert_eq!(missing, vec![&SkuId::new("nosuch").unwrap()]);
        assert!(missing_skus(&Subscription::All, &[]).is_empty());
    }

    #[test]
    fn every_node_of_a_group_is_tried() {
        let a = parse(&[
            "--token",
            "t",
            "--insecure",
            "--server",
            "127.0.0.1:1,127.0.0.1:2",
            "--server",
            "127.0.0.1:3",
        ])
        .unwrap();
        let o = a.client_options().unwrap();
        assert_eq!(o.server, "127.0.0.1:1");
        assert_eq!(o.other_servers, vec!["127.0.0.1:2", "127.0.0.1:3"]);
        let many = (0..=MAX_SERVERS)
            .map(|i| format!("127.0.0.1:{}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let too_many = parse(&["--token", "t", "--insecure", "--server", &many]).unwrap();
        assert!(too_many.client_options().is_err());
    }

    #[test]
    fn reconnects_are_quick() {
        let a = parse(&["--token", "t", "--insecure"]).unwrap();
        let o = a.client_options().unwrap();
        assert_eq!(o.backoff_max, RECONNECT_BACKOFF_MAX);
        assert_eq!(
            o.reconnect_handshake_timeout,
            Some(RECONNECT_HANDSHAKE_TIMEOUT)
        );
    }

    #[test]
    fn lines_name_the_sku_and_its_available_count() {
        let u = UpdateFrame {
            seq: 9,
            sku: SkuId::new("tee").unwrap(),
            available: 4,
            reserved: 1,
            sold: 5,
            server_time_us: 1,
            log_seq: 77,
        };
        let lines = event_lines(WatchFormat::Text, &StreamEvent::Update(u.clone()));
        assert_eq!(
            lines,
            vec!["tee available=4 reserved=1 sold=5 seq=9 log_seq=77"]
        );
        let json = event_lines(WatchFormat::Json, &StreamEvent::Update(u));
        let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
        assert_eq!(v["sku"], "tee");
        assert_eq!(v["available"], 4);
        let snap = StreamEvent::Snapshot {
            seq: 9,
            levels: vec![LevelEntry {
                sku: SkuId::new("mug").unwrap(),
                available: 2,
                reserved: 0,
                sold: 0,
                seq: 3,
                log_seq: 40,
            }],
        };
        assert_eq!(
            event_lines(WatchFormat::Text, &snap),
            vec!["mug available=2 reserved=0 sold=0 seq=3 log_seq=40 (snapshot)"]
        );
        assert!(event_lines(
            WatchFormat::Text,
            &StreamEvent::Connected {
                epoch: 1,
                resumed: false
            }
        )
        .is_empty());
    }
}

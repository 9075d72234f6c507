//! `flashsale`: engine + HTTP gateway + QUIC stock stream in one process.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// flashsale: sells a limited stock to a crowd in seconds, never one unit more than it has.
#[derive(Debug, Parser)]
#[command(name = "flashsale", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `debug`, `flashsale_gateway=debug`) [default: RUST_LOG, else info].
    /// Logs go to stderr; at `info` nothing is logged per request.
    #[arg(long, global = true, env = "FLASHSALE_LOG_LEVEL")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine, the HTTP API and the QUIC stock stream until SIGINT/SIGTERM.
    Serve(Box<flashsale_gateway::serve::ServeArgs>),
    /// Print live stock from the QUIC stock stream, one line per update.
    Watch(flashsale_gateway::watch::WatchArgs),
}

fn init_tracing(level: Option<&str>) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| anyhow::anyhow!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_level.as_deref())?;
    match cli.command {
        Command::Serve(args) => flashsale_gateway::serve::run(*args).await,
        Command::Watch(args) => flashsale_gateway::watch::run(args).await,
    }
}

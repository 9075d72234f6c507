//! `flashsale`: engine + HTTP gateway + QUIC stock stream in one process, its stream client
//! (`watch`), and the operator commands (`sku`, `reservation`, `order`, `credentials`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flashsale_gateway::cli;
use tracing_subscriber::EnvFilter;

/// mimalloc as the process allocator, the default feature (ADR 0062); glibc malloc in a build
/// with `--no-default-features` (ADR 0042).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// flashsale: sells a limited stock to a crowd in seconds, never one unit more than it has.
#[derive(Debug, Parser)]
#[command(name = "flashsale", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `debug`, `flashsale_gateway=debug`) [default: RUST_LOG, else
    /// info]. Logs go to stderr.
    #[arg(long, global = true, env = "FLASHSALE_LOG_LEVEL")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine, the HTTP API and the QUIC stock stream until SIGINT/SIGTERM.
    ///
    /// At the default log level nothing is logged per request; `--log-level debug` does.
    Serve(Box<flashsale_gateway::serve::ServeArgs>),
    /// Print live stock from the QUIC stock stream, one line per update.
    Watch(flashsale_gateway::watch::WatchArgs),
    /// Create, show, list and restock SKUs over the HTTP API.
    Sku(cli::sku::SkuArgs),
    /// Show or cancel a reservation over the HTTP API.
    Reservation(cli::reservation::ReservationArgs),
    /// Show an order over the HTTP API.
    Order(cli::order::OrderArgs),
    /// Show the tokens and certificate fingerprint `serve` keeps in its data dir.
    #[command(subcommand)]
    Credentials(cli::credentials::CredentialsCommand),
}

/// Logs to stderr, filtered by `--log-level` (else `RUST_LOG`, else `info`).
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

/// Runs one subcommand to its end.
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => flashsale_gateway::serve::run(*args).await,
        Command::Watch(args) => flashsale_gateway::watch::run(args).await,
        Command::Sku(args) => cli::print(&cli::sku::run(&args).await?),
        Command::Reservation(args) => cli::print(&cli::reservation::run(&args).await?),
        Command::Order(args) => cli::print(&cli::order::run(&args).await?),
        Command::Credentials(cli::credentials::CredentialsCommand::Show(args)) => {
            cli::print(&cli::credentials::show(&args)?)
        }
    }
}

/// A clap usage error as one line: the message without the usage block, plus a pointer to
/// `--help`.
fn one_line_usage_error(rendered: &str) -> String {
    let head = rendered.split("\n\nUsage:").next().unwrap_or(rendered);
    let head = head
        .split("\n\nFor more information")
        .next()
        .unwrap_or(head);
    let mut line = head.split_whitespace().collect::<Vec<_>>().join(" ");
    line.push_str(" (see --help)");
    line
}

/// Exit status: 0 on success, 1 on any error (bad flags included), printed as one line on
/// stderr.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout; a bare `flashsale` shows the help.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.render().to_string()));
            return ExitCode::FAILURE;
        }
    };
    let outcome = match init_tracing(cli.log_level.as_deref()) {
        Ok(()) => run(cli.command).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

//! `flashsale-chaos`: see `flashsale-chaos --help` and docs/reliability.md.
//!
//! Exit status: 0 valid history, 2 violation found, 3 outcomes left unresolved, 1 error.

use std::process::ExitCode;

use clap::Parser;
use flashsale_loadgen::chaos::cli::{self, Cli, Cmd};

fn main() -> ExitCode {
    let args = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match args.cmd {
        Cmd::Check(c) => cli::check_file(&c.history, c.show, c.report.as_deref()),
        Cmd::Run(a) => block_on(|abort| cli::run(a, abort)),
        Cmd::Workload(a) => block_on(|abort| cli::workload(a, abort)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flashsale-chaos: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs `f` on a two-thread runtime with a Ctrl-C watch it can stop on.
fn block_on<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::Error::new(e).context("starting the tokio runtime"))?;
    rt.block_on(async move {
        let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("flashsale-chaos: interrupted; stopping and cleaning up");
                let _ = abort_tx.send(true);
            }
        });
        f(abort_rx).await
    })
}

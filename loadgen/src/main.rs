//! `flashsale-loadgen`: see `flashsale-loadgen --help` and docs/benchmarks/loadgen.md.
//!
//! Exit status: 0 when the run completed and its check passed, 1 on errors, 2 when the check
//! found an oversell, an invariant violation or counts that do not match (or could not check),
//! 3 when more requests failed than `--max-error-rate` allows (1 % by default).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use flashsale_loadgen::cli::{Args, Config};
use flashsale_loadgen::report::{self, Report};

fn main() -> ExitCode {
    match real_main() {
        Ok(report) if report.failed_check() => ExitCode::from(2),
        Ok(report) if report.too_many_errors => ExitCode::from(3),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flashsale-loadgen: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<Report> {
    let args = Args::parse();
    let threads = args.threads;
    let paths = (args.report.clone(), args.html.clone());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cfg = Config::from_args(args, now).context("invalid flags")?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("starting the tokio runtime")?;
    let report = rt.block_on(flashsale_loadgen::run::run(cfg))?;
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    print!("{}", report::summary::render_styled(&report, color));
    if let Some(p) = paths.0 {
        report::json::write(&report, &p)?;
        eprintln!("JSON report written to {}", p.display());
    }
    if let Some(p) = paths.1 {
        std::fs::write(&p, report::html::render(&report))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("HTML report written to {}", p.display());
    }
    Ok(report)
}

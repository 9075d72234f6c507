//! Process and build metrics for `/metrics`: `flashsale_build_info` and the standard
//! `process_*` gauges (resident memory, open and maximum file descriptors, CPU seconds, start
//! time), read from `/proc/self` on Linux with no extra crate. Elsewhere only the build info
//! is rendered.

use std::fmt::Write as _;

use super::metrics::header;

/// The build of this binary: crate version, profile, target OS and architecture.
pub fn render_build_info(out: &mut String) {
    header(
        out,
        "flashsale_build_info",
        "gauge",
        "Always 1; the labels describe the running build.",
    );
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let _ = writeln!(
        out,
        "flashsale_build_info{{version=\"{}\",profile=\"{profile}\",os=\"{}\",arch=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    );
}

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// Resident set size, in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: u64,
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    /// Process start, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// OS threads of the process.
    pub threads: u64,
}

/// The fields of `/proc/self/stat` after the command name (which may contain spaces), with
/// the clock-tick and page sizes: `None` if the text is not what Linux writes.
fn parse_stat(
    stat: &str,
    ticks_per_s: f64,
    page_bytes: u64,
    boot_time_s: f64,
) -> Option<ProcessStats> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // `after_comm` starts at field 3 (state); field n is at index n - 3.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_pages = field(24)?;
    Some(ProcessStats {
        resident_memory_bytes: rss_pages.saturating_mul(page_bytes),
        virtual_memory_bytes: vsize,
        cpu_seconds: (utime + stime) as f64 / ticks_per_s,
        open_fds: 0,
        max_fds: 0,
        start_time_seconds: boot_time_s + start_ticks as f64 / ticks_per_s,
        threads,
    })
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the Unix epoch.
fn parse_boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads this process's stats from `/proc`; `None` where there is no `/proc` (not Linux) or
/// it cannot be read.
pub fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_boot_time(&s))
        .unwrap_or(0.0);
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let page = u64::try_from(page).unwrap_or(4096).max(1);
    let mut stats = parse_stat(&stat, ticks, page, boot)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        stats.max_fds = lim.rlim_cur;
    }
    Some(stats)
}

/// Renders `stats` as the standard Prometheus process metrics.
pub fn render_process(out: &mut String, stats: &ProcessStats) {
    let gauges: [(&str, &str, String); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            stats.resident_memory_bytes.to_string(),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stats.virtual_memory_bytes.to_string(),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            stats.open_fds.to_string(),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors (the soft limit).",
            stats.max_fds.to_string(),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            format!("{:.2}", stats.start_time_seconds),
        ),
        (
            "process_threads",
            "OS threads of the process.",
            stats.threads.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {:.2}", stats.cpu_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        // Fields 3.. as Linux writes them; utime 250, stime 50 ticks; 7 threads; start at
        // tick 1000; vsize 1 MiB; rss 300 pages.
        let stat = "4242 (flash sale) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    1000 1048576 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(s.resident_memory_bytes, 300 * 4096);
        assert_eq!(s.virtual_memory_bytes, 1_048_576);
        assert_eq!(s.threads, 7);
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9);
        assert!((s.start_time_seconds - 1_700_000_010.0).abs() < 1e-6);
        assert_eq!(parse_stat("garbage", 100.0, 4096, 0.0), None);
        assert_eq!(parse_boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[test]
    fn this_process_is_measured_and_rendered() {
        let mut out = String::new();
        render_build_info(&mut out);
        assert!(out.contains(&format!(
            "flashsale_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        let stats = read_process_stats().unwrap();
        assert!(stats.resident_memory_bytes > 1024 * 1024, "{stats:?}");
        assert!(
            stats.open_fds >= 3 && stats.open_fds <= stats.max_fds,
            "{stats:?}"
        );
        assert!(stats.threads >= 1);
        render_process(&mut out, &stats);
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("# TYPE {name} ")), "{name}\n{out}");
            assert!(
                out.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name}"
            );
        }
    }
}

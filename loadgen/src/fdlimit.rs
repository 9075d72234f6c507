//! Raising `RLIMIT_NOFILE` so that tens of thousands of sockets can be open at once.

/// Why the file-descriptor limit could not be raised far enough.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `getrlimit` failed.
    #[error("getrlimit(RLIMIT_NOFILE) failed: {0}")]
    Get(std::io::Error),
    /// `setrlimit` failed (typically EPERM when raising the hard limit without privileges).
    #[error(
        "need {needed} file descriptors but RLIMIT_NOFILE is soft {soft} / hard {hard} and \
         raising it failed (raising the hard limit needs root with CAP_SYS_RESOURCE); raise it \
         before starting (`ulimit -Hn {needed}; ulimit -n {needed}` as root, LimitNOFILE= for a \
         systemd service, --ulimit nofile= for a container) or use fewer --connections"
    )]
    Set {
        /// Descriptors needed.
        needed: u64,
        /// Soft limit before.
        soft: u64,
        /// Hard limit before.
        hard: u64,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel's per-process ceiling (`fs.nr_open`) is below what is needed.
    #[error(
        "need {needed} file descriptors but the kernel allows at most {nr_open} per process \
         (sysctl fs.nr_open); raise it or use fewer --connections"
    )]
    KernelCeiling {
        /// Descriptors needed.
        needed: u64,
        /// `/proc/sys/fs/nr_open`.
        nr_open: u64,
    },
}

/// The limit before and after [`ensure_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FdLimit {
    /// Soft limit in effect now.
    pub soft: u64,
    /// Hard limit in effect now.
    pub hard: u64,
    /// Whether this process changed it.
    pub raised: bool,
}

/// Makes sure at least `needed` descriptors may be open, raising the soft (and, when privileged,
/// the hard) limit as required.
pub fn ensure_nofile(needed: u64) -> Result<FdLimit, FdLimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(FdLimitError::Get(std::io::Error::last_os_error()));
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= needed {
        return Ok(FdLimit {
            soft,
            hard,
            raised: false,
        });
    }
    if needed > hard {
        if let Some(nr_open) = read_nr_open() {
            if needed > nr_open {
                return Err(FdLimitError::KernelCeiling { needed, nr_open });
            }
        }
    }
    let new = libc::rlimit {
        rlim_cur: needed as libc::rlim_t,
        rlim_max: hard.max(needed) as libc::rlim_t,
    };
    // SAFETY: `new` is a valid rlimit struct; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
    if rc != 0 {
        return Err(FdLimitError::Set {
            needed,
            soft,
            hard,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(FdLimit {
        soft: needed,
        hard: hard.max(needed),
        raised: true,
    })
}

fn read_nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_already_met() {
        let lim = ensure_nofile(16).unwrap();
        assert!(lim.soft >= 16);
        assert!(!lim.raised);
    }

    #[test]
    fn an_impossible_need_is_explained() {
        let err = ensure_nofile(u64::from(u32::MAX) * 4).unwrap_err();
        assert!(err.to_string().contains("file descriptors"), "{err}");
    }
}

//! The data-dir lock: an exclusive `flock` on `<data dir>/LOCK`, held while the backend or any
//! of its shard logs lives, so two servers can never write the same log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::PersistenceError;

/// An exclusive lock on a data dir; released when dropped (the file is closed).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `data_dir` (which must exist) without waiting.
    pub fn acquire(data_dir: &Path) -> Result<DirLock, PersistenceError> {
        let path = data_dir.join("LOCK");
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| PersistenceError::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening lock file"))?;
        // SAFETY: `flock` only reads the descriptor, which `file` keeps open for this call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(PersistenceError::Locked {
                    path: data_dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_string()
                    } else {
                        holder.to_string()
                    },
                });
            }
            return Err(io("locking")(err));
        }
        file.set_len(0).map_err(io("writing lock file"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io("writing lock file"))?;
        writeln!(file, "pid {}", std::process::id()).map_err(io("writing lock file"))?;
        Ok(DirLock { _file: file })
    }
}

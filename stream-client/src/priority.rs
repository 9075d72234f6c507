//! Thread priority for stream I/O threads (Linux nice values, best effort): the server's
//! fan-out thread and a client's receive thread run promptly on a busy machine.

use std::io;

/// Sets the nice value of the calling thread only (Linux: `setpriority` on the thread id).
/// Lower is more CPU share under contention; raising priority (below 0) needs CAP_SYS_NICE.
pub fn set_current_thread_nice(nice: i32) -> io::Result<()> {
    if !(-20..=19).contains(&nice) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("nice value {nice} is outside -20..=19"),
        ));
    }
    set_nice(nice)
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions and only returns the caller's thread id.
    let tid = unsafe { libc::gettid() };
    let Ok(who) = libc::id_t::try_from(tid) else {
        return Err(io::Error::other("negative thread id"));
    };
    // SAFETY: setpriority reads only its integer arguments; PRIO_PROCESS with a thread id
    // changes that one thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "per-thread priority is only supported on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(
            set_current_thread_nice(40).map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lowering_the_priority_of_this_thread_works_without_privileges() {
        let handle = std::thread::spawn(|| {
            set_current_thread_nice(5)?;
            // SAFETY: getpriority reads only its integer arguments.
            let now =
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            Ok::<_, io::Error>(now)
        });
        assert_eq!(handle.join().expect("thread").expect("setpriority"), 5);
    }
}

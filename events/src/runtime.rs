//! Where delivery runs: by default on a thread of its own (a single-threaded tokio runtime),
//! so its many small awaits (log reads, HTTP responses, broker confirms) do not each wait for
//! a turn behind every HTTP connection on the server's run queue, and so the OS can run it at
//! a lower priority than the shards and the HTTP workers (reservations never wait for
//! delivery, and under CPU contention delivery yields to them). The log is the buffer: a
//! delivery thread that gets little CPU only grows the lag.

use std::future::Future;

use crate::error::EventsError;

/// Where the service runs its workers, ledger keepers and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRuntime {
    /// On the runtime that calls [`crate::EventService::start`] (tests, embedding).
    Caller,
    /// On a thread of its own at this nice value (0 = the process's priority, up to 19 =
    /// lowest; its blocking-pool threads and the AMQP I/O thread inherit it).
    Dedicated {
        /// Linux nice value of the thread, 0..=19.
        nice: i32,
    },
}

/// A running delivery runtime; a dedicated thread shuts down when this is dropped (tasks
/// still on it are dropped; positions already stored stay).
#[derive(Debug)]
pub struct DeliveryThread {
    /// Spawns onto the dedicated runtime (`None`: the caller's runtime).
    handle: Option<tokio::runtime::Handle>,
    /// Dropped (or sent) to end the dedicated thread.
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl DeliveryThread {
    /// Starts the runtime `kind` describes.
    pub fn start(kind: DeliveryRuntime) -> Result<DeliveryThread, EventsError> {
        let nice = match kind {
            DeliveryRuntime::Caller => {
                return Ok(DeliveryThread {
                    handle: None,
                    _stop: None,
                })
            }
            DeliveryRuntime::Dedicated { nice } => nice,
        };
        if !(0..=19).contains(&nice) {
            return Err(EventsError::Config(format!(
                "the delivery thread's nice value {nice} is outside 0..=19"
            )));
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("flashsale-events".into())
            .spawn(move || {
                // Before the runtime exists, so its blocking-pool threads inherit it.
                if nice > 0 {
                    if let Err(e) = set_current_thread_nice(nice) {
                        tracing::warn!(nice, error = %e, "events: cannot lower the delivery thread's priority");
                    }
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("flashsale-evblk")
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                // Runs the spawned tasks until the owner goes away.
                let _ = rt.block_on(stop_rx);
                rt.shutdown_background();
            })
            .map_err(|e| EventsError::Runtime(format!("cannot start the delivery thread: {e}")))?;
        let handle = handle_rx
            .recv()
            .map_err(|e| EventsError::Runtime(format!("the delivery thread ended: {e}")))?
            .map_err(|e| EventsError::Runtime(format!("the delivery runtime: {e}")))?;
        Ok(DeliveryThread {
            handle: Some(handle),
            _stop: Some(stop_tx),
        })
    }

    /// Spawns `task` on the delivery runtime (or the caller's).
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.handle {
            Some(h) => h.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

/// Sets the nice value of the calling thread only (Linux: `setpriority` on the thread id;
/// elsewhere unsupported). Raising the value needs no privilege.
#[cfg(target_os = "linux")]
fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions and only returns the caller's thread id.
    let tid = unsafe { libc::gettid() };
    let Ok(who) = libc::id_t::try_from(tid) else {
        return Err(std::io::Error::other("negative thread id"));
    };
    // SAFETY: setpriority reads only its integer arguments; PRIO_PROCESS with a thread id
    // changes that one thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Per-thread priority is Linux only.
#[cfg(not(target_os = "linux"))]
fn set_current_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread priority is only supported on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dedicated_runtime_runs_tasks_on_its_own_lower_priority_thread() {
        let rt = DeliveryThread::start(DeliveryRuntime::Dedicated { nice: 7 });
        let Ok(rt) = rt else {
            panic!("cannot start: {rt:?}");
        };
        let seen = rt.spawn(async {
            let name = std::thread::current().name().map(str::to_string);
            // SAFETY: getpriority and gettid read only their integer arguments.
            let nice =
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            // Blocking-pool threads inherit the priority.
            let pool = tokio::task::spawn_blocking(|| {
                // SAFETY: as above.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
            })
            .await
            .ok();
            (name, nice, pool)
        });
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(waiter) = waiter else {
            panic!("no runtime");
        };
        let got = waiter.block_on(seen).ok();
        assert_eq!(
            got,
            Some((Some("flashsale-events".to_string()), 7, Some(7)))
        );
        assert!(DeliveryThread::start(DeliveryRuntime::Dedicated { nice: 20 }).is_err());
        assert!(DeliveryThread::start(DeliveryRuntime::Dedicated { nice: -1 }).is_err());
    }
}

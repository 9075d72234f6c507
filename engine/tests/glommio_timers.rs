//! The patched glommio reactor (vendor/glommio/PATCHES.md) keeps its preemption and throughput
//! timers armed across loop passes instead of cancelling and re-arming them on every `wait`.
//! These tests pin down what must still hold: a sleep fires on an idle executor, a sleep fires
//! while another task keeps the executor busy (both a task that yields on every poll and one
//! that yields only when the preemption timer says so), and the preemption timer keeps firing
//! pass after pass (it is re-armed once it has fired).

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

/// How long a test waits for its executor thread before calling it hung.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// The preemption period the busy tests run with (glommio's default is 100 ms).
const PREEMPT_PERIOD: Duration = Duration::from_millis(5);

/// Runs `body` on a fresh glommio executor thread and returns its result, failing the test if
/// the executor does not finish within [`HANG_LIMIT`] (a timer that never fires).
fn on_executor<T, F, Fut>(body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .preempt_timer(PREEMPT_PERIOD)
        .spawn(move || async move {
            let out = body().await;
            tx.send(out).unwrap();
        })
        .unwrap();
    let out = rx
        .recv_timeout(HANG_LIMIT)
        .expect("executor hung: a timer did not fire");
    handle.join().unwrap();
    out
}

#[test]
fn sleep_fires_on_an_idle_executor() {
    let slept = on_executor(|| async {
        let mut slept = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            glommio::timer::sleep(Duration::from_millis(20)).await;
            slept.push(start.elapsed());
        }
        slept
    });
    assert_eq!(slept.len(), 5);
    for s in slept {
        assert!(s >= Duration::from_millis(20), "woke early: {s:?}");
    }
}

#[test]
fn sleep_fires_while_a_task_yields_on_every_poll() {
    let (sleeps, spins) = on_executor(|| async {
        let done = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        let busy = glommio::spawn_local({
            let done = done.clone();
            let spins = spins.clone();
            async move {
                while !done.get() {
                    spins.set(spins.get() + 1);
                    futures_lite::future::yield_now().await;
                }
            }
        });
        let mut sleeps = 0u32;
        for _ in 0..50 {
            let start = Instant::now();
            glommio::timer::sleep(Duration::from_millis(1)).await;
            assert!(start.elapsed() >= Duration::from_millis(1));
            sleeps += 1;
        }
        done.set(true);
        busy.await;
        (sleeps, spins.get())
    });
    assert_eq!(sleeps, 50);
    assert!(spins > 0, "the busy task never ran");
}

#[test]
fn preemption_timer_fires_pass_after_pass_and_lets_sleeps_through() {
    let (sleeps, preemptions) = on_executor(|| async {
        let done = Rc::new(Cell::new(false));
        let preemptions = Rc::new(Cell::new(0u32));
        // Yields only when the reactor's preemption timer has fired: without it this task
        // would never give the sleeper (or the timer wheel) a turn.
        let busy = glommio::spawn_local({
            let done = done.clone();
            let preemptions = preemptions.clone();
            async move {
                while !done.get() {
                    if glommio::executor().need_preempt() {
                        preemptions.set(preemptions.get() + 1);
                    }
                    glommio::yield_if_needed().await;
                }
            }
        });
        let mut sleeps = 0u32;
        for _ in 0..10 {
            let start = Instant::now();
            glommio::timer::sleep(Duration::from_millis(2)).await;
            assert!(start.elapsed() >= Duration::from_millis(2));
            sleeps += 1;
        }
        done.set(true);
        busy.await;
        (sleeps, preemptions.get())
    });
    assert_eq!(sleeps, 10);
    // Every sleep past the first needs at least one preemption of the busy task.
    assert!(preemptions >= 9, "preempted only {preemptions} times");
}

#[test]
fn idle_then_busy_then_idle_sleeps_all_fire() {
    let rounds = on_executor(|| async {
        let mut rounds = 0u32;
        for _ in 0..3 {
            // Idle: only this task, parked on the timer.
            glommio::timer::sleep(Duration::from_millis(10)).await;
            // Busy: a task that hogs the executor until preempted, racing a sleep.
            let done = Rc::new(Cell::new(false));
            let busy = glommio::spawn_local({
                let done = done.clone();
                async move {
                    while !done.get() {
                        glommio::yield_if_needed().await;
                    }
                }
            });
            glommio::timer::sleep(Duration::from_millis(10)).await;
            done.set(true);
            busy.await;
            rounds += 1;
        }
        rounds
    });
    assert_eq!(rounds, 3);
}

/// The calling thread's voluntary context switches so far (Linux `/proc/thread-self/status`).
fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

#[test]
fn an_idle_executor_is_not_woken_by_a_kept_preemption_timer() {
    let switches = on_executor(|| async {
        // Busy first, so the preemption timer is armed (and kept) when the executor goes idle.
        let done = Rc::new(Cell::new(false));
        let busy = glommio::spawn_local({
            let done = done.clone();
            async move {
                while !done.get() {
                    futures_lite::future::yield_now().await;
                }
            }
        });
        glommio::timer::sleep(Duration::from_millis(3)).await;
        done.set(true);
        busy.await;
        let before = voluntary_switches();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        voluntary_switches() - before
    });
    // A preemption timer left armed while sleeping would wake the thread every
    // PREEMPT_PERIOD (40 times in 200 ms); the sleep itself needs about one.
    assert!(
        switches < 10,
        "{switches} wake-ups during an idle 200 ms sleep"
    );
}

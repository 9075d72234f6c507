//! What runs on each shard's executor: a thin glommio shell around the sans-IO
//! [`ShardNode`]. The command loop feeds it requests and peer messages, the flusher appends
//! and flushes its batches to the real log, the ticker feeds it the clock; every output is
//! carried out here (replies on oneshot channels, messages on the peers' queues, SKUs into the
//! directory). The node lives in an `Rc<RefCell<_>>` that is never borrowed across an `.await`.
//!
//! No glommio timer is live on the hot path: the clock ticks arrive as [`Cmd::Tick`] on the
//! shard's own queue (sent by the engine's ticker thread, [`spawn_ticker`]). A live glommio
//! timer makes the executor submit an io_uring timeout every time it parks and cancel it every
//! time it wakes (ADR 0038, addendum "timer churn"); under load a shard parks thousands of
//! times a second, the ticker needs a hundred wake-ups.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashsale_protocol::ShardId;
use tokio::sync::oneshot;

use super::directory::Directory;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::command::CommandError;
use crate::log::ShardLog;
use crate::node::message::{Answer, Output, PeerMsg, Request};
use crate::node::ShardNode;
use crate::observer::StockObserver;

/// A reply channel.
pub(crate) type Reply = oneshot::Sender<Result<Answer, CommandError>>;

/// A message on a shard's queue.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A caller's request.
    Request(Request, Reply),
    /// A message from another shard.
    Peer(PeerMsg),
    /// The clock ticked (expiry, duplicates that waited too long, parts to resolve).
    Tick,
    /// Stop.
    Shutdown,
}

/// Everything a shard executor shares with the rest of the engine.
pub(crate) struct Ctx {
    pub(crate) id: ShardId,
    pub(crate) peers: Vec<flume::Sender<Cmd>>,
    pub(crate) dir: Arc<Directory>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) writable: Arc<[AtomicBool]>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn StockObserver>>,
    pub(crate) expiry_tick: Duration,
}

type NodeRef = Rc<RefCell<ShardNode<Reply>>>;

/// Runs a recovered shard until shutdown.
pub(crate) async fn run(
    ctx: Rc<Ctx>,
    node: ShardNode<Reply>,
    log: Box<dyn ShardLog>,
    rx: flume::Receiver<Cmd>,
) {
    let (wake_tx, wake_rx) = flume::bounded::<()>(1);
    let node: NodeRef = Rc::new(RefCell::new(node));
    let stopping = Rc::new(std::cell::Cell::new(false));
    let flusher = glommio::spawn_local(flusher(
        ctx.clone(),
        node.clone(),
        log,
        wake_rx,
        stopping.clone(),
    ));
    // One output buffer for the command loop: no allocation per command in steady state.
    let mut out = Vec::new();
    let mut ticks = TickWatch::new(ctx.expiry_tick);
    while let Ok(cmd) = rx.recv_async().await {
        let now = ctx.clock.now_ms();
        match cmd {
            Cmd::Shutdown => break,
            Cmd::Request(req, reply) => node.borrow_mut().request(now, req, reply, &mut out),
            Cmd::Peer(msg) => node.borrow_mut().peer(now, msg, &mut out),
            Cmd::Tick => {
                ticks.ticked();
                node.borrow_mut().tick(now, &mut out);
            }
        }
        // A tick the ticker could not queue (the queue was full) is not lost: a shard that
        // has been too busy to see one for two periods ticks here.
        if ticks.overdue() {
            ticks.ticked();
            node.borrow_mut().tick(now, &mut out);
        }
        carry_out(&ctx, &node, &mut out);
        if node.borrow().has_pending() {
            let _ = wake_tx.try_send(());
        }
    }
    stopping.set(true);
    let _ = wake_tx.try_send(());
    drop(wake_tx);
    flusher.await;
    // Anything still waiting was never made durable.
    let mut out = Vec::new();
    node.borrow_mut().shut_down(ctx.clock.now_ms(), &mut out);
    carry_out(&ctx, &node, &mut out);
    while let Ok(cmd) = rx.try_recv() {
        if let Cmd::Request(_, reply) = cmd {
            let _ = reply.send(Err(CommandError::Busy("engine is shutting down".into())));
        }
    }
}

/// Carries out (and drains) a node's outputs (the node is not borrowed meanwhile).
fn carry_out(ctx: &Rc<Ctx>, node: &NodeRef, out: &mut Vec<Output<Reply>>) {
    let counters = node.borrow_mut().take_counters();
    ctx.metrics.add(&counters);
    for o in out.drain(..) {
        match o {
            Output::Reply { to, result } => {
                let _ = to.send(result);
            }
            Output::Send { to, msg } => send_peer(ctx, to, msg),
            Output::Publish(p) => {
                ctx.dir.insert(&p.sku, p.gate, p.ttl_ms, p.level);
            }
        }
    }
}

/// Sends a message to a peer's queue; when the queue is full it waits in a task of its own
/// (a message between shards is never dropped while the engine runs).
fn send_peer(ctx: &Rc<Ctx>, to: ShardId, msg: PeerMsg) {
    let Some(peer) = ctx.peers.get(usize::from(to)) else {
        tracing::error!(shard = ctx.id, to, "message to a shard that does not exist");
        return;
    };
    match peer.try_send(Cmd::Peer(msg)) {
        Ok(()) => {}
        Err(flume::TrySendError::Full(cmd)) => {
            let peer = peer.clone();
            glommio::spawn_local(async move {
                let _ = peer.send_async(cmd).await;
            })
            .detach();
        }
        Err(flume::TrySendError::Disconnected(_)) => {}
    }
}

/// Group commit: appends whatever accumulated, flushes, releases what waited for it.
async fn flusher(
    ctx: Rc<Ctx>,
    node: NodeRef,
    mut log: Box<dyn ShardLog>,
    wake: flume::Receiver<()>,
    stopping: Rc<std::cell::Cell<bool>>,
) {
    loop {
        let batch = loop {
            if let Some(batch) = node.borrow_mut().cut() {
                break batch;
            }
            if stopping.get() {
                return;
            }
            if wake.recv_async().await.is_err() && !node.borrow().has_pending() {
                return;
            }
        };
        for (seq, bytes) in batch.records() {
            log.append(seq, bytes);
        }
        let started = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut first_failure = true;
        while let Err(e) = log.flush().await {
            ctx.writable[usize::from(ctx.id)].store(false, Ordering::Release);
            if first_failure {
                tracing::error!(shard = ctx.id, error = %e, "log flush failed; shard unavailable");
                first_failure = false;
            }
            let mut out = Vec::new();
            let failing_for_ms = started.elapsed().as_millis() as u64;
            node.borrow_mut()
                .flush_failed(ctx.clock.now_ms(), failing_for_ms, &mut out);
            carry_out(&ctx, &node, &mut out);
            if stopping.get() && started.elapsed() > Duration::from_secs(2) {
                return;
            }
            glommio::timer::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
        if !first_failure {
            tracing::info!(shard = ctx.id, "log writable again");
        }
        ctx.writable[usize::from(ctx.id)].store(true, Ordering::Release);
        ctx.metrics
            .batch(batch.len() as u64, started.elapsed().as_micros() as u64);
        // Publish the durable counts before any reply goes out, so a caller that got its answer
        // reads mirrors at least as new as its own change.
        for level in &batch.levels {
            ctx.dir.with(&level.sku, |e| {
                if let Some(e) = e {
                    e.set_level(level);
                }
            });
            if let Some(obs) = &ctx.observer {
                obs.stock_changed(level);
            }
        }
        let mut out = Vec::new();
        node.borrow_mut().flushed(ctx.clock.now_ms(), &mut out);
        carry_out(&ctx, &node, &mut out);
        if let Some(snap) = &batch.snapshot {
            if let Err(e) = log.write_snapshot(batch.last_seq, snap).await {
                tracing::warn!(shard = ctx.id, error = %e, "snapshot failed; will retry later");
            }
        }
    }
}

/// How many commands the command loop handles between two looks at the wall clock for an
/// overdue tick (reading the clock per command would cost more than the check is worth).
const TICK_CHECK_EVERY: u32 = 256;

/// Notices when a shard has gone two tick periods without a [`Cmd::Tick`] (the ticker's
/// `try_send` found the queue full), so the command loop ticks by itself.
struct TickWatch {
    period: Duration,
    last: Instant,
    until_check: u32,
}

impl TickWatch {
    fn new(period: Duration) -> Self {
        assert!(!period.is_zero(), "the expiry tick must be positive");
        TickWatch {
            period,
            last: Instant::now(),
            until_check: TICK_CHECK_EVERY,
        }
    }

    /// The shard just ticked.
    fn ticked(&mut self) {
        self.last = Instant::now();
        self.until_check = TICK_CHECK_EVERY;
    }

    /// Whether the shard should tick now (checked against the clock once per
    /// [`TICK_CHECK_EVERY`] calls).
    fn overdue(&mut self) -> bool {
        self.until_check -= 1;
        if self.until_check > 0 {
            return false;
        }
        self.until_check = TICK_CHECK_EVERY;
        self.last.elapsed() >= self.period * 2
    }
}

/// Starts the engine's ticker thread: every `period` it offers a [`Cmd::Tick`] to each shard
/// (`try_send`: a full queue skips the tick, see [`TickWatch`]). It ends when `stop`'s sender
/// is dropped (at once) or once every shard's queue is closed (within one period).
pub(crate) fn spawn_ticker(
    shards: Vec<flume::Sender<Cmd>>,
    period: Duration,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    assert!(!period.is_zero(), "the expiry tick must be positive");
    std::thread::Builder::new()
        .name("flashsale-ticker".into())
        .spawn(move || loop {
            match stop.recv_timeout(period) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let mut open = 0usize;
            for s in &shards {
                match s.try_send(Cmd::Tick) {
                    Ok(()) | Err(flume::TrySendError::Full(_)) => open += 1,
                    Err(flume::TrySendError::Disconnected(_)) => {}
                }
            }
            if open == 0 {
                return;
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_watch_looks_at_the_clock_once_per_check_period() {
        let mut w = TickWatch::new(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(3));
        // Overdue by now, but only the TICK_CHECK_EVERY-th call reads the clock.
        for _ in 1..TICK_CHECK_EVERY {
            assert!(!w.overdue());
        }
        assert!(w.overdue());
        w.ticked();
        for _ in 0..TICK_CHECK_EVERY {
            assert!(!w.overdue(), "a tick just happened");
        }
    }

    #[test]
    fn the_ticker_ticks_every_shard_and_stops_when_told() {
        let (a_tx, a_rx) = flume::bounded(4);
        let (b_tx, b_rx) = flume::bounded(4);
        let (stop, stop_rx) = std::sync::mpsc::channel();
        let join = spawn_ticker(vec![a_tx, b_tx], Duration::from_millis(1), stop_rx).unwrap();
        assert!(matches!(
            a_rx.recv_timeout(Duration::from_secs(5)),
            Ok(Cmd::Tick)
        ));
        assert!(matches!(
            b_rx.recv_timeout(Duration::from_secs(5)),
            Ok(Cmd::Tick)
        ));
        drop(stop);
        join.join().unwrap();
    }

    #[test]
    fn the_ticker_ends_when_every_shard_queue_is_closed() {
        let (tx, rx) = flume::bounded::<Cmd>(1);
        let (_stop, stop_rx) = std::sync::mpsc::channel();
        let join = spawn_ticker(vec![tx], Duration::from_millis(1), stop_rx).unwrap();
        drop(rx);
        join.join().unwrap();
    }
}

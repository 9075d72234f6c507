//! What runs on each shard's executor: a thin glommio shell around the sans-IO
//! [`ShardNode`]. The command loop feeds it requests and peer messages, the flusher appends
//! and flushes its batches to the real log, the ticker feeds it the clock; every output is
//! carried out here (replies on oneshot channels, messages on the peers' queues, SKUs into the
//! directory). The node lives in an `Rc<RefCell<_>>` that is never borrowed across an `.await`.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
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
pub(crate) enum Cmd {
    /// A caller's request.
    Request(Request, Reply),
    /// A message from another shard.
    Peer(PeerMsg),
    /// Start a task on this shard's executor (see [`super::Engine::spawn_on_shards`]).
    Spawn(Arc<super::ShardTask>),
    /// Stop.
    Shutdown,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Request(req, _) => f.debug_tuple("Request").field(req).finish(),
            Cmd::Peer(msg) => f.debug_tuple("Peer").field(msg).finish(),
            Cmd::Spawn(_) => f.write_str("Spawn"),
            Cmd::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// Everything a shard executor shares with the rest of the engine.
pub(crate) struct Ctx {
    pub(crate) id: ShardId,
    /// The engine's process-unique id (for the same-thread fast path).
    pub(crate) engine_id: u64,
    pub(crate) peers: Vec<flume::Sender<Cmd>>,
    pub(crate) dir: Arc<Directory>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) writable: Arc<[AtomicBool]>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn StockObserver>>,
    pub(crate) expiry_tick: Duration,
}

type NodeRef = Rc<RefCell<ShardNode<Reply>>>;

/// Wakes the flusher: set by the tasks of its own executor thread (the command loop, the
/// same-thread path, the ticker) when records wait. A flag and the flusher's waker, so a wait
/// allocates nothing (a channel's receive allocated a waiter each time the flusher parked:
/// ADR 0055).
#[derive(Default)]
struct FlushWake {
    /// Records may wait since the flusher last looked.
    due: Cell<bool>,
    /// The flusher, while it waits.
    waiter: RefCell<Option<Waker>>,
}

impl FlushWake {
    /// Tells the flusher to look for records (wakes it if it waits).
    fn wake(&self) {
        self.due.set(true);
        if let Some(w) = self.waiter.borrow_mut().take() {
            w.wake();
        }
    }

    /// Waits until [`FlushWake::wake`] was called since the last wait returned.
    async fn wait(&self) {
        poll_fn(|cx| {
            if self.due.replace(false) {
                return Poll::Ready(());
            }
            let mut waiter = self.waiter.borrow_mut();
            match &mut *waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

/// The shard an executor thread runs, for requests made on that very thread (same-thread
/// fast path: no queue, no cross-thread wake-up).
struct LocalShard {
    /// Which engine the shard belongs to (a process may run several engines).
    engine_id: u64,
    /// The shard's context.
    ctx: Rc<Ctx>,
    /// The shard's node.
    node: NodeRef,
    /// Wakes the flusher.
    wake: Rc<FlushWake>,
    /// Reused output buffer (no allocation per request in steady state).
    out: RefCell<Vec<Output<Reply>>>,
}

thread_local! {
    /// Set while this thread runs a shard's command loop.
    static LOCAL: RefCell<Option<LocalShard>> = const { RefCell::new(None) };
}

/// Hands `req` to shard `shard` of engine `engine_id` directly when the calling thread is
/// that shard's executor: the node takes it at once and its reply comes on `reply` once
/// durable, exactly as from the queue. Gives the request back (`Some`) otherwise.
pub(crate) fn try_local(
    engine_id: u64,
    shard: usize,
    req: Request,
    reply: Reply,
) -> Option<(Request, Reply)> {
    LOCAL.with(|local| {
        let Ok(local) = local.try_borrow() else {
            return Some((req, reply));
        };
        match &*local {
            Some(l) if l.engine_id == engine_id && usize::from(l.ctx.id) == shard => {
                let Ok(mut out) = l.out.try_borrow_mut() else {
                    return Some((req, reply));
                };
                l.ctx.metrics.same_thread();
                let now = l.ctx.clock.now_ms();
                l.node.borrow_mut().request(now, req, reply, &mut out);
                carry_out(&l.ctx, &l.node, &mut out);
                if l.node.borrow().has_pending() {
                    l.wake.wake();
                }
                None
            }
            _ => Some((req, reply)),
        }
    })
}

/// Runs a recovered shard until shutdown.
pub(crate) async fn run(
    ctx: Rc<Ctx>,
    node: ShardNode<Reply>,
    log: Box<dyn ShardLog>,
    rx: flume::Receiver<Cmd>,
) {
    let wake = Rc::new(FlushWake::default());
    let node: NodeRef = Rc::new(RefCell::new(node));
    let stopping = Rc::new(std::cell::Cell::new(false));
    let flusher = glommio::spawn_local(flusher(
        ctx.clone(),
        node.clone(),
        log,
        wake.clone(),
        stopping.clone(),
    ));
    let ticker = glommio::spawn_local(ticker(ctx.clone(), node.clone(), wake.clone()));
    LOCAL.with(|local| {
        *local.borrow_mut() = Some(LocalShard {
            engine_id: ctx.engine_id,
            ctx: ctx.clone(),
            node: node.clone(),
            wake: wake.clone(),
            out: RefCell::new(Vec::new()),
        });
    });
    // One output buffer for the command loop: no allocation per command in steady state.
    let mut out = Vec::new();
    while let Ok(cmd) = rx.recv_async().await {
        let now = ctx.clock.now_ms();
        match cmd {
            Cmd::Shutdown => break,
            Cmd::Spawn(task) => {
                glommio::spawn_local(task(usize::from(ctx.id))).detach();
                continue;
            }
            Cmd::Request(req, reply) => node.borrow_mut().request(now, req, reply, &mut out),
            Cmd::Peer(msg) => node.borrow_mut().peer(now, msg, &mut out),
        }
        carry_out(&ctx, &node, &mut out);
        if node.borrow().has_pending() {
            wake.wake();
        }
    }
    // From here on requests made on this thread go through the (closing) queue.
    LOCAL.with(|local| local.borrow_mut().take());
    stopping.set(true);
    wake.wake();
    ticker.cancel().await;
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
    wake: Rc<FlushWake>,
    stopping: Rc<std::cell::Cell<bool>>,
) {
    // One output buffer for every batch: no allocation per flush in steady state.
    let mut out = Vec::new();
    loop {
        let batch = loop {
            if let Some(batch) = node.borrow_mut().cut() {
                break batch;
            }
            if stopping.get() {
                return;
            }
            wake.wait().await;
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
        node.borrow_mut().flushed(ctx.clock.now_ms(), &mut out);
        carry_out(&ctx, &node, &mut out);
        if let Some(snap) = &batch.snapshot {
            if let Err(e) = log.write_snapshot(batch.last_seq, snap).await {
                tracing::warn!(shard = ctx.id, error = %e, "snapshot failed; will retry later");
            }
        }
        // Its buffers serve the next batch.
        node.borrow_mut().recycle(batch);
    }
}

/// Feeds the clock to the node every tick (expiry, duplicates that waited too long, parts to
/// resolve).
async fn ticker(ctx: Rc<Ctx>, node: NodeRef, wake: Rc<FlushWake>) {
    let mut out = Vec::new();
    loop {
        glommio::timer::sleep(ctx.expiry_tick).await;
        node.borrow_mut().tick(ctx.clock.now_ms(), &mut out);
        carry_out(&ctx, &node, &mut out);
        if node.borrow().has_pending() {
            wake.wake();
        }
    }
}

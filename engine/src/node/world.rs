//! A deterministic world of shard nodes for simulation: message queues instead of channels, an
//! in-memory log per shard that can fail flushes and lose its unflushed tail in a crash, and a
//! clock the driver sets. The driver chooses every step (which message is delivered, which
//! shard flushes, whether that flush fails, when the clock ticks, when the process crashes),
//! so a seed replays exactly. [`super::cluster::Cluster`] drives it in FIFO order without
//! faults; the runtime simulation drives it at random with faults.

use std::collections::{BTreeMap, VecDeque};

use flashsale_protocol::{decode_record, ShardId, SkuId};

use crate::command::CommandError;
use crate::shard::{assemble_reservation, reconcile, shard_of, PartView, Shard};
use crate::view::ReservationView;

use super::caller::GateInfo;
use super::message::{Answer, Output, PeerMsg, Request};
use super::{Counters, NodeConfig, ShardNode};

/// Whether clock ticks reach the shards while they recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticks {
    /// Recovery runs before any tick.
    NotDuringRecovery,
    /// Every shard ticks after replay, before the reconciliation.
    DuringRecovery,
}

/// Names one caller request in a [`World`].
pub type Ticket = u64;

/// A message on its way to a shard.
#[derive(Debug)]
pub enum Envelope {
    /// A caller's request.
    Request(Request, Ticket),
    /// A message from another shard.
    Peer(PeerMsg),
}

/// One shard's simulated log: durable records, the appended-but-unflushed tail, a snapshot.
#[derive(Debug, Default, Clone)]
pub struct SimLog {
    snapshot: Option<(u64, Vec<u8>)>,
    durable: Vec<(u64, Vec<u8>)>,
    tail: Vec<(u64, Vec<u8>)>,
}

impl SimLog {
    /// Records appended but not yet flushed.
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// Whether a snapshot was stored.
    pub fn has_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Durable records after the snapshot.
    pub fn durable_len(&self) -> usize {
        self.durable.len()
    }

    fn write_snapshot(&mut self, seq: u64, bytes: Vec<u8>) {
        self.durable.retain(|(s, _)| *s > seq);
        self.snapshot = Some((seq, bytes));
    }

    /// Rebuilds the shard from the snapshot and the durable records.
    fn recover(&self, id: ShardId, retention_ms: u64) -> Result<Shard, String> {
        let mut shard = match &self.snapshot {
            Some((seq, bytes)) => {
                let s = Shard::restore(bytes).map_err(|e| format!("snapshot at {seq}: {e}"))?;
                if s.seq() != *seq {
                    return Err(format!("snapshot claims {seq}, holds {}", s.seq()));
                }
                s
            }
            None => Shard::new(id),
        };
        shard.set_retention_ms(retention_ms);
        for (seq, bytes) in &self.durable {
            let record = decode_record(bytes).map_err(|e| format!("record {seq}: {e}"))?;
            shard
                .apply_record(record)
                .map_err(|e| format!("replay of shard {id} at {seq}: {e}"))?;
        }
        Ok(shard)
    }
}

/// Shard nodes, their logs and the messages between them.
#[derive(Debug)]
pub struct World {
    nodes: Vec<ShardNode<Ticket>>,
    logs: Vec<SimLog>,
    messages: VecDeque<(ShardId, Envelope)>,
    replies: BTreeMap<Ticket, Result<Answer, CommandError>>,
    next_ticket: Ticket,
    config: NodeConfig,
    retention_ms: u64,
    /// Snapshots cut with a batch, stored once that batch is durable.
    pending_snapshots: Vec<(usize, u64, Vec<u8>)>,
}

impl World {
    /// `shards` empty shards (1..=64).
    pub fn new(shards: usize, config: NodeConfig) -> Self {
        let n = shards.clamp(1, 64);
        World {
            nodes: (0..n)
                .map(|i| {
                    let mut node = ShardNode::new(Shard::new(i as ShardId), config);
                    node.mark_recovered();
                    node
                })
                .collect(),
            logs: vec![SimLog::default(); n],
            messages: VecDeque::new(),
            replies: BTreeMap::new(),
            next_ticket: 1,
            config,
            retention_ms: crate::shard::DEFAULT_RETENTION_MS,
            pending_snapshots: Vec::new(),
        }
    }

    /// Sets every shard's retention of released reservations (kept across crashes).
    pub fn set_retention_ms(&mut self, retention_ms: u64) {
        self.retention_ms = retention_ms;
        for n in &mut self.nodes {
            n.shard.set_retention_ms(retention_ms);
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes (read-only).
    pub fn nodes(&self) -> &[ShardNode<Ticket>] {
        &self.nodes
    }

    /// The logs (read-only).
    pub fn logs(&self) -> &[SimLog] {
        &self.logs
    }

    /// Queues a caller's request to shard `to`; its reply arrives under the returned ticket.
    pub fn submit(&mut self, to: ShardId, request: Request) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.messages.push_back((to, Envelope::Request(request, t)));
        t
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.messages.len()
    }

    /// A SKU as callers see it (its gate and TTL), read from its shard.
    pub fn gate_info(&self, sku: &SkuId) -> Option<GateInfo> {
        let shard = self.nodes[usize::from(shard_of(sku, self.nodes.len()))].shard();
        Some(GateInfo {
            gate: shard.gate(sku)?,
            ttl_ms: shard.sku(sku)?.reservation_ttl_ms,
        })
    }

    /// The whole reservation from its home part and the other shards' parts (read directly).
    pub fn assemble(&self, home: PartView) -> ReservationView {
        let Some(group) = home.group else {
            return home.view;
        };
        let id = home.view.id;
        let parts: Vec<PartView> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != usize::from(id.shard()) && group.shards_mask & (1u64 << s) != 0)
            .filter_map(|(_, n)| n.shard().reservation(id))
            .collect();
        assemble_reservation(home, &parts)
    }

    /// Whether `ticket` has its reply.
    pub fn has_reply(&self, ticket: Ticket) -> bool {
        self.replies.contains_key(&ticket)
    }

    /// Completes every flush under way successfully.
    pub fn settle_flushes(&mut self, now_ms: u64) {
        for s in 0..self.nodes.len() {
            if self.is_flushing(s) {
                self.flush(s, true, now_ms);
            }
        }
    }

    /// The reply of `ticket`, once there is one.
    pub fn take_reply(&mut self, ticket: Ticket) -> Option<Result<Answer, CommandError>> {
        self.replies.remove(&ticket)
    }

    /// Counters of every node since the last call.
    pub fn take_counters(&mut self) -> Counters {
        let mut c = Counters::default();
        for n in &mut self.nodes {
            let d = n.take_counters();
            c.held += d.held;
            c.confirmed += d.confirmed;
            c.released += d.released;
            c.expired += d.expired;
            c.sold_out += d.sold_out;
        }
        c
    }

    /// Loses message `i` of the queue (0 = oldest): what a bug or a lost wake-up would do;
    /// the protocol must still converge (stale parts ask their home).
    pub fn lose(&mut self, i: usize) -> bool {
        self.messages.remove(i).is_some()
    }

    /// A short description of message `i` (for tests choosing what to lose or deliver).
    pub fn describe(&self, i: usize) -> Option<String> {
        self.messages.get(i).map(|(to, env)| match env {
            Envelope::Request(r, t) => format!("to {to}: request #{t} {r:?}"),
            Envelope::Peer(m) => format!("to {to}: {m:?}"),
        })
    }

    /// Delivers message `i` of the queue (0 = oldest).
    pub fn deliver(&mut self, i: usize, now_ms: u64) {
        let Some((to, env)) = self.messages.remove(i) else {
            return;
        };
        let mut out = Vec::new();
        let Some(node) = self.nodes.get_mut(usize::from(to)) else {
            return;
        };
        match env {
            Envelope::Request(req, t) => node.request(now_ms, req, t, &mut out),
            Envelope::Peer(msg) => node.peer(now_ms, msg, &mut out),
        }
        self.carry_out(out);
    }

    /// Cuts shard `s`'s pending records and appends them to its log's tail (not yet durable).
    /// Returns whether there was a batch.
    pub fn append(&mut self, s: usize) -> bool {
        let Some(mut batch) = self.nodes[s].cut() else {
            return false;
        };
        let log = &mut self.logs[s];
        for (seq, bytes) in batch.records() {
            log.tail.push((seq, bytes.to_vec()));
        }
        if let Some(snap) = batch.snapshot.take() {
            self.pending_snapshots.push((s, batch.last_seq, snap));
        }
        // As the runtime does: the next batch reuses its buffers.
        self.nodes[s].recycle(batch);
        true
    }

    /// Ends shard `s`'s flush: `ok` makes its log's tail durable; else the flush failed (the
    /// tail stays and the next flush retries it) and the log has been failing for
    /// `failing_for_ms`.
    pub fn flush(&mut self, s: usize, ok: bool, now_ms: u64) {
        self.flush_after(s, ok, now_ms, 0);
    }

    /// [`World::flush`] of a log that has been failing for `failing_for_ms`.
    pub fn flush_after(&mut self, s: usize, ok: bool, now_ms: u64, failing_for_ms: u64) {
        if !self.nodes[s].commit.is_flushing() {
            return;
        }
        let mut out = Vec::new();
        if ok {
            let log = &mut self.logs[s];
            log.durable.append(&mut log.tail);
            let snaps: Vec<_> = self
                .pending_snapshots
                .iter()
                .filter(|(x, _, _)| *x == s)
                .cloned()
                .collect();
            self.pending_snapshots.retain(|(x, _, _)| *x != s);
            for (_, seq, snap) in snaps {
                self.logs[s].write_snapshot(seq, snap);
            }
            self.nodes[s].flushed(now_ms, &mut out);
        } else {
            self.nodes[s].flush_failed(now_ms, failing_for_ms, &mut out);
        }
        self.carry_out(out);
    }

    /// Whether shard `s` has a flush under way.
    pub fn is_flushing(&self, s: usize) -> bool {
        self.nodes[s].commit.is_flushing()
    }

    /// Whether shard `s` has records waiting to be cut.
    pub fn has_pending(&self, s: usize) -> bool {
        self.nodes[s].has_pending()
    }

    /// A clock tick on shard `s`.
    pub fn tick(&mut self, s: usize, now_ms: u64) {
        let mut out = Vec::new();
        self.nodes[s].tick(now_ms, &mut out);
        self.carry_out(out);
    }

    fn carry_out(&mut self, out: Vec<Output<Ticket>>) {
        for o in out {
            match o {
                Output::Reply { to, result } => {
                    let previous = self.replies.insert(to, result);
                    assert!(previous.is_none(), "ticket {to} answered twice");
                }
                Output::Send { to, msg } => self.messages.push_back((to, Envelope::Peer(msg))),
                Output::Publish(_) => {}
            }
        }
    }

    /// Delivers every message in order and makes every record durable, until nothing moves.
    pub fn settle(&mut self, now_ms: u64) {
        loop {
            let mut moved = false;
            while !self.messages.is_empty() {
                self.deliver(0, now_ms);
                moved = true;
            }
            for s in 0..self.nodes.len() {
                if self.is_flushing(s) {
                    self.flush(s, true, now_ms);
                    moved = true;
                }
                if self.append(s) {
                    self.flush(s, true, now_ms);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Snapshots every shard now (all its records must be durable: call after [`World::settle`]).
    pub fn snapshot_all(&mut self) {
        for (s, n) in self.nodes.iter().enumerate() {
            self.logs[s].write_snapshot(n.shard.seq(), n.shard.snapshot());
        }
    }

    /// The process dies: messages, replies not yet given and unflushed records are lost,
    /// except that shard `s` keeps the first `kept_tail(s, tail_len)` records of its tail (a
    /// crash during a write may leave part of it on disk). Then every shard recovers from its
    /// snapshot and log, cross-shard reservations are reconciled and what is due expires.
    pub fn crash(
        &mut self,
        now_ms: u64,
        kept_tail: impl FnMut(usize, usize) -> usize,
    ) -> Result<(), String> {
        self.crash_ticking(now_ms, kept_tail, Ticks::NotDuringRecovery)
    }

    /// [`World::crash`], with clock ticks reaching every shard after replay and before the
    /// reconciliation when `ticks` says so — as the runtime's timers may.
    pub fn crash_ticking(
        &mut self,
        now_ms: u64,
        mut kept_tail: impl FnMut(usize, usize) -> usize,
        ticks: Ticks,
    ) -> Result<(), String> {
        self.messages.clear();
        self.pending_snapshots.clear();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for s in 0..self.nodes.len() {
            let log = &mut self.logs[s];
            let keep = kept_tail(s, log.tail.len()).min(log.tail.len());
            let kept: Vec<_> = log.tail.drain(..keep).collect();
            log.durable.extend(kept);
            log.tail.clear();
            let shard = log.recover(s as ShardId, self.retention_ms)?;
            nodes.push(ShardNode::new(shard, self.config));
        }
        self.nodes = nodes;
        if ticks == Ticks::DuringRecovery {
            for s in 0..self.nodes.len() {
                self.tick(s, now_ms);
            }
        }
        self.recover(now_ms)
    }

    /// Reconciles cross-shard reservations after a restart, then expires what is due.
    fn recover(&mut self, now_ms: u64) -> Result<(), String> {
        let mut states = Vec::new();
        for n in &self.nodes {
            states.extend(n.shard.group_states());
        }
        let mut tickets = Vec::new();
        for (s, id, action) in reconcile(&states) {
            tickets.push(self.submit(s, Request::Follow(id, action)));
        }
        for s in 0..self.nodes.len() {
            tickets.push(self.submit(s as ShardId, Request::ExpireAll));
        }
        self.settle(now_ms);
        for t in tickets {
            match self.take_reply(t) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("recovery step failed: {e}")),
                None => return Err("recovery step got no reply".into()),
            }
        }
        Ok(())
    }
}

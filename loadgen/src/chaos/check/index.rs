//! The history indexed for the checks: ops in invocation order, acknowledged reservations with
//! their request, ops per reservation, per key and per SKU, and the final (read-back) state.

use std::collections::{BTreeMap, HashMap};

use super::Stats;
use crate::chaos::history::{
    Call, FaultKind, History, HttpAnswer, Line, Op, Outcome, Phase, Pos, ReservationSeen, SkuSetup,
};

/// The server's default `max_hold_s` floor (a SKU without one holds at most the larger of
/// its TTL and this).
pub const DEFAULT_MAX_HOLD_S: u64 = 3_600;
/// The server's default `max_extensions`.
pub const DEFAULT_MAX_EXTENSIONS: u32 = 3;

/// What a write did, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// It took effect (2xx).
    Done,
    /// It did not (a 4xx refusal, or never sent).
    None,
    /// Unknown: no answer, a 503 (the record may still become durable) or another 5xx.
    Maybe,
}

/// The effect of `op` (meaningful for writes).
pub fn effect(op: &Op) -> Effect {
    match &op.outcome {
        Outcome::Refused { .. } => Effect::None,
        Outcome::Unknown { .. } => Effect::Maybe,
        Outcome::Http(h) if (200..300).contains(&h.status) => Effect::Done,
        Outcome::Http(h) if h.status >= 500 => Effect::Maybe,
        Outcome::Http(_) => Effect::None,
    }
}

/// The HTTP answer of `op`, if it got one.
pub fn http(op: &Op) -> Option<&HttpAnswer> {
    match &op.outcome {
        Outcome::Http(h) => Some(h),
        _ => None,
    }
}

/// A reservation state as read, normalised (`released` with reason `expired` is `Expired`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Held.
    Held,
    /// Confirmed, with its order id.
    Confirmed(Option<String>),
    /// Released by a cancel.
    Cancelled,
    /// Released by expiry.
    Expired,
    /// Rolled back (a failed multi-shard attempt): never acknowledged.
    Aborted,
    /// Something the contract does not define.
    Other(String),
}

impl State {
    /// The state a reservation view shows.
    pub fn of(r: &ReservationSeen) -> State {
        match (r.status.as_str(), r.release_reason.as_deref()) {
            ("held", _) => State::Held,
            ("confirmed", _) => State::Confirmed(r.order_id.clone()),
            ("expired", _) | ("released", Some("expired")) => State::Expired,
            ("released", Some("aborted")) => State::Aborted,
            ("released", _) => State::Cancelled,
            (other, _) => State::Other(other.to_string()),
        }
    }

    /// Whether no further change is legal.
    pub fn is_final(&self) -> bool {
        !matches!(self, State::Held)
    }

    /// A short name.
    pub fn name(&self) -> String {
        match self {
            State::Held => "held".into(),
            State::Confirmed(Some(o)) => format!("confirmed (order {o})"),
            State::Confirmed(None) => "confirmed (no order id)".into(),
            State::Cancelled => "released (cancelled)".into(),
            State::Expired => "expired".into(),
            State::Aborted => "released (aborted)".into(),
            State::Other(s) => format!("{s:?}"),
        }
    }

    /// The key used in the final-state figures.
    pub fn bucket(&self) -> &'static str {
        match self {
            State::Held => "held",
            State::Confirmed(_) => "confirmed",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
            State::Aborted => "aborted",
            State::Other(_) => "other",
        }
    }
}

/// One acknowledged reservation (an id some 201 answered).
#[derive(Debug, Clone)]
pub struct Res<'h> {
    /// The id.
    pub id: &'h str,
    /// Reserve ops answered 201 with this id (indices into [`Ix::ops`]).
    pub acks: Vec<usize>,
    /// The ack that completed first.
    pub first_ack: usize,
    /// Caller and key of the first ack's request.
    pub key: Option<(u32, &'h str)>,
    /// Buyer of the first ack's request.
    pub buyer: &'h str,
    /// Lines of the first ack's request.
    pub lines: &'h [Line],
    /// `expires_at` of the first ack.
    pub expires_at_ms: u64,
    /// Get / confirm / cancel / extend ops on this id, and list pages that show it.
    pub ops: Vec<usize>,
    /// The state read back after the run (last final-phase read), if any.
    pub final_state: Option<(usize, State)>,
    /// Whether a final-phase read answered 404.
    pub final_not_found: bool,
}

impl Res<'_> {
    /// Completion time of the first acknowledgement.
    pub fn acked_us(&self, ix: &Ix<'_>) -> u64 {
        ix.ops[self.first_ack].complete_us
    }
}

/// The indexed history.
#[derive(Debug)]
pub struct Ix<'h> {
    /// The history.
    pub h: &'h History,
    /// Ops in invocation order.
    pub ops: Vec<&'h Op>,
    /// Positions of `ops`.
    pub pos: Vec<Pos>,
    /// SKUs by id.
    pub skus: HashMap<&'h str, &'h SkuSetup>,
    /// Acknowledged reservations by id.
    pub res: BTreeMap<&'h str, Res<'h>>,
    /// Reserve ops by (caller, key).
    pub keys: BTreeMap<(u32, &'h str), Vec<usize>>,
    /// Restock ops by SKU.
    pub restocks: HashMap<&'h str, Vec<usize>>,
    /// SKU reads (get and restock answers with counts) by SKU.
    pub sku_reads: HashMap<&'h str, Vec<usize>>,
    /// Reservation list pages (`GET /v1/reservations?buyer=`), in invocation order.
    pub res_lists: Vec<usize>,
    /// Order list pages (`GET /v1/orders?buyer=`) by buyer, in invocation order.
    pub order_lists: BTreeMap<&'h str, Vec<usize>>,
    /// Whether the history has a read-back phase.
    pub has_final: bool,
}

impl<'h> Ix<'h> {
    /// Indexes `h`.
    pub fn new(h: &'h History) -> Ix<'h> {
        let mut order: Vec<usize> = (0..h.ops.len()).collect();
        order.sort_by_key(|&i| (h.ops[i].1.invoke_us, h.ops[i].1.op));
        let ops: Vec<&Op> = order.iter().map(|&i| &h.ops[i].1).collect();
        let pos: Vec<Pos> = order.iter().map(|&i| h.ops[i].0).collect();
        let skus = h.meta.skus.iter().map(|s| (s.sku.as_str(), s)).collect();
        let mut res: BTreeMap<&str, Res> = BTreeMap::new();
        let mut keys: BTreeMap<(u32, &str), Vec<usize>> = BTreeMap::new();
        let mut restocks: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut sku_reads: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut res_lists = Vec::new();
        let mut order_lists: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut has_final = false;
        let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            has_final |= op.phase == Phase::Final;
            match &op.call {
                Call::Reserve {
                    caller,
                    key,
                    buyer,
                    lines,
                } => {
                    if let Some(k) = key {
                        keys.entry((*caller, k.as_str())).or_default().push(i);
                    }
                    let Some(h) = http(op) else { continue };
                    let Some(r) = h.reservation.as_ref().filter(|_| h.status == 201) else {
                        continue;
                    };
                    let e = res.entry(r.id.as_str()).or_insert_with(|| Res {
                        id: r.id.as_str(),
                        acks: Vec::new(),
                        first_ack: i,
                        key: key.as_deref().map(|k| (*caller, k)),
                        buyer: buyer.as_str(),
                        lines: lines.as_slice(),
                        expires_at_ms: r.expires_at_ms,
                        ops: Vec::new(),
                        final_state: None,
                        final_not_found: false,
                    });
                    e.acks.push(i);
                    if op.complete_us < ops[e.first_ack].complete_us {
                        e.first_ack = i;
                        e.key = key.as_deref().map(|k| (*caller, k));
                        e.buyer = buyer.as_str();
                        e.lines = lines.as_slice();
                        e.expires_at_ms = r.expires_at_ms;
                    }
                }
                Call::GetReservation { id }
                | Call::Confirm { id, .. }
                | Call::Cancel { id }
                | Call::Extend { id, .. } => {
                    by_id.entry(id.as_str()).or_default().push(i);
                }
                Call::ListReservations { .. } => {
                    res_lists.push(i);
                    let items = http(op).and_then(|h| h.items.as_ref());
                    for r in items.into_iter().flatten() {
                        let list = by_id.entry(r.id.as_str()).or_default();
                        // A page showing it twice is reported by the list checks.
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                Call::ListOrders { buyer, .. } => {
                    order_lists.entry(buyer.as_str()).or_default().push(i);
                }
                Call::Restock { sku, .. } => {
                    restocks.entry(sku.as_str()).or_default().push(i);
                    if http(op).is_some_and(|h| h.sku.is_some()) {
                        sku_reads.entry(sku.as_str()).or_default().push(i);
                    }
                }
                Call::GetSku { sku } => {
                    if http(op).is_some_and(|h| h.sku.is_some()) {
                        sku_reads.entry(sku.as_str()).or_default().push(i);
                    }
                }
            }
        }
        for (id, list) in by_id {
            if let Some(r) = res.get_mut(id) {
                r.ops = list;
            }
        }
        // Final states: the last final-phase read of each reservation.
        for r in res.values_mut() {
            for &i in &r.ops {
                let op = ops[i];
                if op.phase != Phase::Final || !matches!(op.call, Call::GetReservation { .. }) {
                    continue;
                }
                match http(op) {
                    Some(h) if h.status == 200 => {
                        if let Some(v) = &h.reservation {
                            r.final_state = Some((i, State::of(v)));
                        }
                    }
                    Some(h) if h.status == 404 => r.final_not_found = true,
                    _ => {}
                }
            }
        }
        Ix {
            h,
            ops,
            pos,
            skus,
            res,
            keys,
            restocks,
            sku_reads,
            res_lists,
            order_lists,
            has_final,
        }
    }

    /// Positions of ops `idx`.
    pub fn at(&self, idx: &[usize]) -> Vec<Pos> {
        idx.iter().map(|&i| self.pos[i]).collect()
    }

    /// Fault events of `kind`, in time order, with positions.
    pub fn faults(&self, kind: FaultKind) -> Vec<(Pos, u64)> {
        let mut v: Vec<(Pos, u64)> = self
            .h
            .faults
            .iter()
            .filter(|(_, f)| f.fault == kind)
            .map(|(p, f)| (*p, f.at_us))
            .collect();
        v.sort_by_key(|(_, t)| *t);
        v
    }

    /// The shortest TTL (ms) of `lines`, from the SKUs' setup.
    pub fn ttl_ms(&self, lines: &[Line]) -> Option<u64> {
        lines
            .iter()
            .map(|l| self.skus.get(l.sku.as_str()).map(|s| s.ttl_s * 1000))
            .collect::<Option<Vec<u64>>>()?
            .into_iter()
            .min()
    }

    /// The strictest hold bounds of `lines`, from the SKUs' setup (the server's defaults where
    /// none was set): the maximum hold in ms and the number of extensions.
    pub fn hold_bounds(&self, lines: &[Line]) -> Option<(u64, u32)> {
        let mut max_hold_ms = u64::MAX;
        let mut max_extensions = u32::MAX;
        for l in lines {
            let s = self.skus.get(l.sku.as_str())?;
            let hold_s = s.max_hold_s.unwrap_or(s.ttl_s.max(DEFAULT_MAX_HOLD_S));
            max_hold_ms = max_hold_ms.min(hold_s * 1000);
            max_extensions = max_extensions.min(s.max_extensions.unwrap_or(DEFAULT_MAX_EXTENSIONS));
        }
        (!lines.is_empty()).then_some((max_hold_ms, max_extensions))
    }

    /// Fills the figures that come straight from the index.
    pub fn summarize(&self, s: &mut Stats) {
        s.ops = self.ops.len();
        for op in &self.ops {
            let class = match &op.outcome {
                Outcome::Http(h) => match &h.problem {
                    Some(p) => format!("{} {}", h.status, p),
                    None => h.status.to_string(),
                },
                Outcome::Unknown { reason } => {
                    s.unknown_outcomes += 1;
                    format!("unknown ({})", reason.split(':').next().unwrap_or(reason))
                }
                Outcome::Refused { .. } => "refused".into(),
            };
            *s.outcomes
                .entry(format!("{} {class}", op.call.name()))
                .or_insert(0) += 1;
        }
        s.reservations = self.res.len();
        s.extensions_acknowledged = self
            .ops
            .iter()
            .filter(|op| matches!(op.call, Call::Extend { .. }))
            .filter(|op| http(op).is_some_and(|a| a.status == 200))
            .count();
        for r in self.res.values() {
            let b = match (&r.final_state, r.final_not_found) {
                (Some((_, st)), _) => st.bucket(),
                (None, true) => "not found",
                (None, false) => "unresolved",
            };
            *s.final_states.entry(b.to_string()).or_insert(0) += 1;
        }
        s.keys = self.keys.len();
        s.keys_with_concurrent_duplicates = self
            .keys
            .values()
            .filter(|list| {
                list.windows(2).any(|w| {
                    let (a, b) = (self.ops[w[0]], self.ops[w[1]]);
                    b.invoke_us < a.complete_us
                })
            })
            .count();
        for (_, f) in &self.h.faults {
            *s.faults.entry(f.fault.as_str().to_string()).or_insert(0) += 1;
        }
        for r in self.res.values() {
            let (Some(key), Some(ttl_ms)) = (r.key, self.ttl_ms(r.lines)) else {
                continue;
            };
            let created_ms = r.expires_at_ms.saturating_sub(ttl_ms);
            let exists = !r.final_not_found;
            let by_a_503 = self.keys.get(&key).into_iter().flatten().any(|&i| {
                let op = self.ops[i];
                http(op).is_some_and(|a| a.is(503, "unavailable"))
                    && op.invoke_us / 1000 <= created_ms
                    && created_ms <= op.complete_us / 1000
            });
            if exists && by_a_503 {
                s.unavailable_then_durable += 1;
            }
        }
    }
}

//! The caller's side of a reservation, shared by the runtime's [`crate::Engine`] and the
//! simulation's [`super::cluster::Cluster`]: claim every line on its gate (a sold-out or
//! unknown line is refused right there, without a shard hop), split the request by shard and
//! hand each part its claims; and complete a home part with the other parts' lines.

use std::sync::Arc;

use flashsale_protocol::{ScopedKey, ShardId, SkuId};

use smallvec::SmallVec;

use crate::claim::{Claim, ClaimList, Claims};
use crate::command::{CommandError, HoldLimit, ReserveRequest};
use crate::gate::StockGate;
use crate::shard::{plan, request_hash, shard_of_key, validate_lines, ReserveCommand};

use super::message::{Answer, GroupRequest, Request};
use crate::shard::PartView;
use crate::view::ReservationView;

/// A SKU as callers see it: its gate and reservation TTL.
#[derive(Debug, Clone)]
pub struct GateInfo {
    /// The SKU's gate.
    pub gate: Arc<StockGate>,
    /// Its reservation TTL in ms.
    pub ttl_ms: u64,
}

/// A keyed request refused at the gates asks the key's home whether the key already has a
/// reservation (then that one is the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The key's home shard.
    pub home: ShardId,
    /// The key.
    pub key: ScopedKey,
    /// The request's hash.
    pub request_hash: u64,
}

/// What to do with a reservation request.
#[derive(Debug)]
pub enum Prepared {
    /// Send `request` to shard `home`.
    Send {
        /// The shard that executes (single shard) or coordinates (several) it.
        home: ShardId,
        /// [`Request::Reserve`] or [`Request::ReserveGroup`].
        request: Request,
    },
    /// Refused at the gates (nothing stays claimed).
    Refused {
        /// Why.
        error: CommandError,
        /// Ask this first when the request is keyed.
        probe: Option<Probe>,
    },
}

/// What a shard's answer to a reservation (or to a probe of its key) means for the caller.
#[derive(Debug)]
pub enum ReserveReply {
    /// The whole reservation.
    Whole(ReservationView),
    /// The home part: complete it with the other shards' parts.
    Complete(PartView),
    /// A probe found no reservation under the key.
    NoReservation,
}

impl ReserveReply {
    /// Reads a shard's answer to [`Request::Reserve`], [`Request::ReserveGroup`] or
    /// [`Request::Probe`].
    pub fn of(answer: Answer) -> Result<ReserveReply, CommandError> {
        match answer {
            Answer::Reservation(v) => Ok(ReserveReply::Whole(v)),
            Answer::Part(p) | Answer::MaybePart(Some(p)) => Ok(ReserveReply::Complete(p)),
            Answer::MaybePart(None) => Ok(ReserveReply::NoReservation),
            a => Err(CommandError::Internal(format!(
                "unexpected answer to a reservation: {a:?}"
            ))),
        }
    }
}

/// The probe that asks a keyed request's home shard for the reservation its key already has
/// (a retry's answer), without claiming or reserving anything; `None` for an unkeyed request.
pub fn probe_of(req: &ReserveRequest, shards: usize) -> Option<Probe> {
    let key = req.idempotency_key.clone()?;
    Some(Probe {
        home: shard_of_key(&key, shards),
        request_hash: hash_of(req),
        key,
    })
}

/// Validates `req`, claims its lines and splits it by shard. `gate_of` looks a SKU up.
pub fn prepare_reserve(
    req: ReserveRequest,
    shards: usize,
    now_ms: u64,
    gate_of: impl Fn(&SkuId) -> Option<GateInfo>,
) -> Result<Prepared, CommandError> {
    validate_lines(req.lines.iter().map(|(s, q)| (s, *q)))?;
    if let Some(ttl_ms) = req.ttl_ms {
        check_ttl(&req.lines, ttl_ms, &gate_of)?;
    }
    let hash = hash_of(&req);
    let (mut claims, min_ttl) = match claim_lines(&req.lines, &gate_of) {
        Ok(claimed) => claimed,
        Err(error) => {
            let probe = req.idempotency_key.map(|key| Probe {
                home: shard_of_key(&key, shards),
                request_hash: hash,
                key,
            });
            return Ok(Prepared::Refused { error, probe });
        }
    };
    let key_home = req
        .idempotency_key
        .as_ref()
        .map(|k| shard_of_key(k, shards));
    let plan = plan(req.lines, shards, key_home);
    let group = plan.is_group();
    // The cart rule: the shortest TTL of the lines, unless the request asks for less.
    let ttl_ms = req.ttl_ms.map_or(min_ttl, |t| t.min(min_ttl));
    let expires_at_ms = (group || req.ttl_ms.is_some()).then(|| now_ms.saturating_add(ttl_ms));
    if !group {
        // One shard holds every line (the common case): its command takes the request's
        // buyer, lines and claims as they are, with no copy and no allocation but the box.
        let home = plan.home;
        let Some(part) = plan.parts.into_iter().next() else {
            return Err(CommandError::Internal("a plan without parts".into()));
        };
        // Every line is claimed, in line order (one claim stays inline: no allocation).
        let own: ClaimList = claims.into_iter().flatten().collect();
        if own.len() != part.lines.len() {
            return Err(CommandError::Internal(
                "claims out of step with lines".into(),
            ));
        }
        let cmd = ReserveCommand {
            buyer: req.buyer,
            lines: part.lines,
            idempotency_key: req.idempotency_key,
            request_hash: hash,
            id: None,
            expires_at_ms,
            group: None,
            claims: Claims::held(own),
        };
        return Ok(Prepared::Send {
            home,
            request: Request::Reserve(Box::new(cmd)),
        });
    }
    let groups: Vec<_> = (0..plan.parts.len()).map(|i| plan.group(i)).collect();
    let mut key = req.idempotency_key;
    let mut parts = Vec::with_capacity(plan.parts.len());
    for (i, (p, group)) in plan.parts.into_iter().zip(groups).enumerate() {
        let own = take_claims(&mut claims, p.line_positions)?;
        assert_eq!(own.len(), p.lines.len(), "claims out of step with lines");
        let cmd = ReserveCommand {
            buyer: req.buyer.clone(),
            lines: p.lines,
            idempotency_key: if i == 0 { key.take() } else { None },
            request_hash: hash,
            id: None,
            expires_at_ms,
            group,
            claims: Claims::held(own),
        };
        parts.push((p.shard, cmd));
    }
    let home = plan.home;
    let request = if group {
        Request::ReserveGroup(Box::new(GroupRequest { parts }))
    } else {
        let (_, cmd) = parts
            .pop()
            .ok_or_else(|| CommandError::Internal("a plan without parts".into()))?;
        Request::Reserve(Box::new(cmd))
    };
    Ok(Prepared::Send { home, request })
}

/// The request's hash for idempotency: its buyer and lines, and its `ttl_ms` when given (so
/// a request without one hashes as before it existed).
fn hash_of(req: &ReserveRequest) -> u64 {
    let h = request_hash(&req.buyer, &req.lines);
    match req.ttl_ms {
        None => h,
        Some(t) => (h ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(17),
    }
}

/// Refuses a `ttl_ms` above the reservation TTL of any line's SKU (the cart rule), naming the
/// SKU with the shortest one. Unknown SKUs are left to the claims.
fn check_ttl(
    lines: &[(SkuId, u32)],
    ttl_ms: u64,
    gate_of: &impl Fn(&SkuId) -> Option<GateInfo>,
) -> Result<(), CommandError> {
    let shortest = lines
        .iter()
        .filter_map(|(sku, _)| gate_of(sku).map(|i| (i.ttl_ms, sku)))
        .min_by_key(|(ttl, _)| *ttl);
    match shortest {
        Some((limit, sku)) if ttl_ms > limit => Err(CommandError::HoldLimit {
            sku: sku.clone(),
            limit: HoldLimit::ReservationTtl,
            value: limit,
            detail: format!(
                "ttl_s {} is above the reservation_ttl_s of {sku} ({} s): a cart holds at most \
                 as long as its shortest line",
                ttl_ms / 1000,
                limit / 1000
            ),
        }),
        _ => Ok(()),
    }
}

/// Claims of a request's lines by position, taken out as each part gets its own (one line
/// held inline, no allocation).
type LineClaims = SmallVec<[Option<Claim>; 1]>;

/// Claims every line on its gate, in order; returns the claims (one per line) and the shortest
/// TTL, or why a line was refused (every claim taken so far is given back on the way out).
fn claim_lines(
    lines: &[(SkuId, u32)],
    gate_of: &impl Fn(&SkuId) -> Option<GateInfo>,
) -> Result<(LineClaims, u64), CommandError> {
    let mut claims = LineClaims::with_capacity(lines.len());
    let mut min_ttl = u64::MAX;
    for (sku, qty) in lines {
        let info = gate_of(sku).ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
        min_ttl = min_ttl.min(info.ttl_ms);
        let claim = Claim::try_new(&info.gate, u64::from(*qty)).map_err(|available| {
            CommandError::SoldOut {
                sku: sku.clone(),
                available,
            }
        })?;
        claims.push(Some(claim));
    }
    Ok((claims, min_ttl))
}

/// Takes the claims of the request lines whose bits are set in `positions`, in line order.
fn take_claims(claims: &mut [Option<Claim>], positions: u64) -> Result<ClaimList, CommandError> {
    let mut own = ClaimList::with_capacity(positions.count_ones() as usize);
    let mut bits = positions;
    while bits != 0 {
        let pos = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let c = claims
            .get_mut(pos)
            .and_then(Option::take)
            .ok_or_else(|| CommandError::Internal("a line claimed twice".into()))?;
        own.push(c);
    }
    Ok(own)
}

/// Idempotency keys of the requests callers have in flight (claims taken, answer not yet
/// back): a concurrent map shared by every caller thread. A duplicate that arrives while its
/// key is here gets `IdempotencyInProgress` at once — before it could be refused at a gate
/// whose units the first request claimed, or reach the home shard ahead of it.
#[derive(Debug, Default)]
pub struct KeysInFlight {
    keys: dashmap::DashMap<ScopedKey, (), ahash::RandomState>,
}

/// A key in flight; leaves the map when dropped (the request was answered or abandoned).
#[derive(Debug)]
#[must_use = "the key leaves the map when this guard drops"]
pub struct KeyInFlight {
    keys: Arc<KeysInFlight>,
    key: ScopedKey,
}

impl KeysInFlight {
    /// Marks `key` in flight, or refuses if it already is.
    pub fn enter(self: &Arc<Self>, key: &ScopedKey) -> Result<KeyInFlight, CommandError> {
        match self.keys.entry(key.clone()) {
            dashmap::mapref::entry::Entry::Occupied(_) => {
                Err(CommandError::IdempotencyInProgress {
                    retry_after_ms: crate::limits::DUPLICATE_RETRY_AFTER_MS,
                })
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(());
                Ok(KeyInFlight {
                    keys: self.clone(),
                    key: key.clone(),
                })
            }
        }
    }

    /// Keys in flight.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is in flight.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Drop for KeyInFlight {
    fn drop(&mut self) {
        self.keys.keys.remove(&self.key);
    }
}

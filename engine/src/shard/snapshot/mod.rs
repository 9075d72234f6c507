//! Snapshots of a shard: a canonical rkyv archive (SKUs and reservations sorted by id) behind
//! a magic tag. Derived indexes (SKU index, per-buyer usage, idempotency keys, orders, the
//! per-buyer lists, expiry
//! and retention queues, gates) are rebuilt on restore, and the result is validated: bad bytes
//! give an error, never a panic.
//!
//! Format 4 (`FSSNAP04`) adds each SKU's maximum hold and number of extensions and each
//! reservation's extension count to format 3 (`FSSNAP03`: release times for retention,
//! idempotency keys scoped to their caller, [`ScopedKey`]), which is still read ([`v3`]).
//! Format 5 (`FSSNAP05`) adds the keys of each reservation's keyed extensions and of each
//! SKU's latest keyed restocks (ADR 0015, addendum) to format 4, which is still read ([`v4`]).
//! Older formats hold unscoped keys, and their logs (record version 1) cannot be replayed
//! either, so they are refused by name ([`SnapshotError::Outdated`]).

mod v3;
mod v4;

use std::cmp::Reverse;
use std::sync::Arc;

use rkyv::util::AlignedVec;

use flashsale_protocol::event::Group;
use flashsale_protocol::limits::{checked_total_cents, MAX_MONEY_CENTS};
use flashsale_protocol::{
    BuyerId, Line, OrderId, ReleaseReason, RequestKey, ReservationId, ScopedKey, ShardId, SkuSpec,
};

use super::buyers::BuyerHandle;
use super::sku::SkuState;
use super::store::{CLine, Lines, Rare, Reservation};
use super::usage::Usage;
use super::{fast_map, validate_spec, Shard, MAX_STOCK};
use crate::gate::StockGate;
use crate::view::ReservationStatus;

/// Tag of the current format.
const MAGIC: &[u8; 8] = b"FSSNAP05";
/// Tags of the formats this build refuses (unscoped idempotency keys).
const OUTDATED: [&[u8; 8]; 2] = [b"FSSNAP01", b"FSSNAP02"];

/// Why snapshot bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a flashsale shard snapshot.
    #[error("not a flashsale shard snapshot (bad magic)")]
    Magic,
    /// A snapshot of an older format, written before idempotency keys were scoped per
    /// caller; it cannot be loaded (nor can its log be replayed).
    #[error(
        "shard snapshot format {found} is no longer supported (this build reads FSSNAP03 to FSSNAP05)"
    )]
    Outdated {
        /// The format's tag.
        found: String,
    },
    /// The archive failed validation.
    #[error("invalid snapshot archive: {0}")]
    Archive(String),
    /// The archive is well-formed but its contents are inconsistent.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

/// A SKU in a snapshot: settings and counts (the gate is derived).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SnapSku {
    spec: SkuSpec,
    reserved: u64,
    sold: u64,
    /// The keys of its latest keyed restocks, oldest first.
    restock_keys: Vec<RequestKey>,
}

/// A reservation in a snapshot (lines by SKU id, status as a code).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SnapReservation {
    id: ReservationId,
    buyer: BuyerId,
    lines: Vec<Line>,
    created_at_ms: u64,
    expires_at_ms: u64,
    /// Times its expiry was extended.
    extensions: u32,
    status: u8,
    release_reason: Option<ReleaseReason>,
    order: Option<OrderId>,
    payment_ref: String,
    confirmed_at_ms: u64,
    idempotency_key: Option<ScopedKey>,
    request_hash: u64,
    group: Option<Group>,
    /// When it was released or expired (0 while held or once confirmed).
    released_at_ms: u64,
    /// The keys of its keyed extensions (home shard only).
    extension_keys: Vec<RequestKey>,
}

/// A whole snapshot (format 5).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Snap {
    shard: ShardId,
    seq: u64,
    next_reservation: u64,
    next_order: u64,
    skus: Vec<SnapSku>,
    reservations: Vec<SnapReservation>,
}

/// A snapshot's bytes decoded and validated as an archive of the current format.
fn decode(bytes: &[u8]) -> Result<Snap, SnapshotError> {
    if let Some(body) = bytes.strip_prefix(v3::MAGIC) {
        let mut aligned = AlignedVec::<16>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        return rkyv::from_bytes::<v3::SnapV3, rkyv::rancor::Error>(&aligned)
            .map(Snap::from)
            .map_err(|e| SnapshotError::Archive(e.to_string()));
    }
    if let Some(body) = bytes.strip_prefix(v4::MAGIC) {
        let mut aligned = AlignedVec::<16>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        return rkyv::from_bytes::<v4::SnapV4, rkyv::rancor::Error>(&aligned)
            .map(Snap::from)
            .map_err(|e| SnapshotError::Archive(e.to_string()));
    }
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        let tag = bytes.get(..8);
        return Err(
            match OUTDATED.iter().find(|old| tag == Some(old.as_slice())) {
                Some(old) => SnapshotError::Outdated {
                    found: String::from_utf8_lossy(*old).into_owned(),
                },
                None => SnapshotError::Magic,
            },
        );
    };
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<Snap, rkyv::rancor::Error>(&aligned)
        .map_err(|e| SnapshotError::Archive(e.to_string()))
}

/// An inconsistent-snapshot error.
/// The one settled time a restored reservation keeps (ADR 0036, twelfth round): its
/// confirmation time if confirmed, its release time if released or expired, 0 while held.
/// A snapshot whose order or times disagree with the status (which no shard writes: both
/// are set only by the settling event) is refused rather than restored differently.
fn settled_time(r: &SnapReservation, status: ReservationStatus) -> Result<u64, SnapshotError> {
    let confirmed = status == ReservationStatus::Confirmed;
    let released = matches!(
        status,
        ReservationStatus::Released | ReservationStatus::Expired
    );
    if r.order.is_some() != confirmed
        || (!confirmed && r.confirmed_at_ms != 0)
        || (!released && r.released_at_ms != 0)
    {
        return Err(bad(format!(
            "{}: order or settled time disagrees with its status",
            r.id
        )));
    }
    Ok(if confirmed {
        r.confirmed_at_ms
    } else {
        r.released_at_ms
    })
}

fn bad(what: String) -> SnapshotError {
    SnapshotError::Inconsistent(what)
}

/// A reservation status as stored in snapshots.
fn status_code(s: ReservationStatus) -> u8 {
    match s {
        ReservationStatus::Held => 0,
        ReservationStatus::Confirmed => 1,
        ReservationStatus::Released => 2,
        ReservationStatus::Expired => 3,
    }
}

/// The status a snapshot code stands for (`None`: not a status).
fn status_from(code: u8) -> Option<ReservationStatus> {
    Some(match code {
        0 => ReservationStatus::Held,
        1 => ReservationStatus::Confirmed,
        2 => ReservationStatus::Released,
        3 => ReservationStatus::Expired,
        _ => return None,
    })
}

impl Shard {
    /// The full state as canonical bytes (equal states give equal bytes).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut skus: Vec<SnapSku> = self
            .skus
            .iter()
            .map(|s| SnapSku {
                spec: s.spec.clone(),
                reserved: s.reserved,
                sold: s.sold,
                restock_keys: s.restock_keys.iter().cloned().collect(),
            })
            .collect();
        skus.sort_unstable_by(|a, b| a.spec.sku.cmp(&b.spec.sku));
        let mut reservations: Vec<SnapReservation> = self
            .reservations
            .iter()
            .map(|r| SnapReservation {
                id: r.id,
                buyer: self.buyers.buyer_of_kept(r.buyer_handle).clone(),
                lines: self.full_lines(&r.lines),
                created_at_ms: r.created_at_ms,
                expires_at_ms: r.expires_at_ms,
                extensions: r.extensions(),
                status: status_code(r.status),
                release_reason: r.release_reason,
                order: r.order(),
                payment_ref: r.payment_ref.to_string(),
                confirmed_at_ms: r.confirmed_at_ms(),
                idempotency_key: r.idempotency_key.as_deref().cloned(),
                request_hash: r.request_hash,
                group: r.group(),
                released_at_ms: r.released_at_ms(),
                extension_keys: r.extension_keys().to_vec(),
            })
            .collect();
        reservations.sort_unstable_by_key(|r| r.id);
        let snap = Snap {
            shard: self.id,
            seq: self.seq,
            next_reservation: self.next_reservation,
            next_order: self.next_order,
            skus,
            reservations,
        };
        let mut out = MAGIC.to_vec();
        match rkyv::to_bytes::<rkyv::rancor::Error>(&snap) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => {
                // Serialising plain owned data into memory cannot fail short of OOM.
                debug_assert!(false, "snapshot serialisation failed: {e}");
            }
        }
        out
    }

    /// Rebuilds a shard from [`Shard::snapshot`] bytes (format 4, or 3; older formats are refused
    /// with [`SnapshotError::Outdated`]), validating everything. The retention is the default; set it afterwards.
    pub fn restore(bytes: &[u8]) -> Result<Shard, SnapshotError> {
        let snap = decode(bytes)?;
        let mut shard = Shard::new(snap.shard);
        shard.seq = snap.seq;
        shard.next_reservation = snap.next_reservation;
        shard.next_order = snap.next_order;
        for s in snap.skus {
            shard.restore_sku(s)?;
        }
        let mut usage = fast_map();
        let mut settled = Vec::new();
        for r in snap.reservations {
            shard.restore_reservation(r, &mut usage, &mut settled)?;
        }
        // Release order for retention: by release time, then id (deterministic).
        settled.sort_unstable();
        shard.settled = settled.into();
        shard.usage = usage;
        shard.check_invariants().map_err(bad)?;
        Ok(shard)
    }

    /// Adds one snapshotted SKU, with a gate at its available units.
    fn restore_sku(&mut self, s: SnapSku) -> Result<(), SnapshotError> {
        validate_spec(&s.spec).map_err(|e| bad(e.to_string()))?;
        let committed = s
            .reserved
            .checked_add(s.sold)
            .filter(|c| *c <= s.spec.stock && s.spec.stock <= MAX_STOCK)
            .ok_or_else(|| bad(format!("{}: counts exceed stock", s.spec.sku)))?;
        let gate = Arc::new(StockGate::new(s.spec.stock - committed));
        let key = s.spec.sku.clone();
        let added = self.add_sku(SkuState {
            spec: s.spec,
            reserved: s.reserved,
            sold: s.sold,
            gate,
            restock_keys: s.restock_keys.into(),
        });
        if !added {
            return Err(bad(format!("{key} twice")));
        }
        Ok(())
    }

    /// Adds one snapshotted reservation and its entries in the derived indexes: `usage`
    /// gains its held or bought units, `settled` its release if released.
    fn restore_reservation(
        &mut self,
        r: SnapReservation,
        usage: &mut Usage,
        settled: &mut Vec<(u64, ReservationId)>,
    ) -> Result<(), SnapshotError> {
        let status = status_from(r.status).ok_or_else(|| bad("bad status".into()))?;
        let home = r.id.shard() == self.id;
        if home && r.id.counter() >= self.next_reservation {
            return Err(bad(format!("{} beyond the id counter", r.id)));
        }
        let settled_at_ms = settled_time(&r, status)?;
        let buyer_handle = self.buyers.acquire(&r.buyer);
        let lines = self.restore_lines(&r, status, buyer_handle, usage)?;
        if home && status == ReservationStatus::Held {
            self.expiry.push(Reverse((r.expires_at_ms, r.id)));
        } else if !home && r.group.is_some() && status == ReservationStatus::Held {
            self.part_expiry.push(Reverse((r.expires_at_ms, r.id)));
        }
        if matches!(
            status,
            ReservationStatus::Released | ReservationStatus::Expired
        ) {
            settled.push((r.released_at_ms, r.id));
        }
        // Shared by the slot and the key map (ADR 0060).
        let idempotency_key = r.idempotency_key.map(Arc::new);
        if home && r.release_reason != Some(ReleaseReason::Aborted) {
            if let Some(key) = &idempotency_key {
                if self.idempotency.insert(Arc::clone(key), r.id).is_some() {
                    return Err(bad(format!("idempotency key {key} twice")));
                }
            }
        }
        if let Some(order) = r.order {
            if order.shard() == self.id && order.counter() >= self.next_order {
                return Err(bad(format!("{order} beyond the order counter")));
            }
            self.orders.insert(order, r.id);
            if home {
                self.buyers.add_order(buyer_handle, r.confirmed_at_ms, r.id);
            }
        }
        if home && r.release_reason != Some(ReleaseReason::Aborted) {
            self.buyers
                .add_reservation(buyer_handle, r.created_at_ms, r.id);
        }
        let res = Reservation {
            id: r.id,
            buyer_handle,
            lines,
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            status,
            release_reason: r.release_reason,
            settled_at_ms,
            order_id: r.order.unwrap_or(OrderId(0)),
            payment_ref: r.payment_ref.into(),
            idempotency_key,
            request_hash: r.request_hash,
            rare: Rare::boxed(r.group, r.extension_keys, r.extensions),
        };
        if !self.reservations.insert(self.id, res) {
            return Err(bad("reservation twice".into()));
        }
        Ok(())
    }

    /// A snapshotted reservation's lines in stored form; held and bought units of SKUs with a
    /// per-buyer limit count towards the `usage` of the buyer (handle `buyer`).
    fn restore_lines(
        &self,
        r: &SnapReservation,
        status: ReservationStatus,
        buyer: BuyerHandle,
        usage: &mut Usage,
    ) -> Result<Lines, SnapshotError> {
        if r.lines.len() > flashsale_protocol::MAX_LINES {
            return Err(bad(format!("{} has too many lines", r.id)));
        }
        if checked_total_cents(r.lines.iter().map(|l| (l.qty, l.unit_price_cents))).is_none() {
            return Err(bad(format!(
                "{} totals more than {MAX_MONEY_CENTS} cents",
                r.id
            )));
        }
        let counts = matches!(
            status,
            ReservationStatus::Held | ReservationStatus::Confirmed
        );
        let mut lines = Vec::with_capacity(r.lines.len());
        for l in &r.lines {
            let Some(&i) = self.sku_index.get(&l.sku) else {
                return Err(bad(format!("{} holds unknown {}", r.id, l.sku)));
            };
            if counts && self.skus[i as usize].counts_usage() {
                let u: &mut u64 = usage.entry((buyer, i)).or_default();
                *u = u.saturating_add(u64::from(l.qty));
            }
            lines.push(CLine {
                sku: i,
                qty: l.qty,
                unit_price_cents: l.unit_price_cents,
            });
        }
        Ok(Lines::from_slice(&lines))
    }

    /// A stable hash of the full state (FNV-1a of the canonical snapshot).
    pub fn state_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.snapshot() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

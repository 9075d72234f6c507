//! Snapshots of format 4 (`FSSNAP04`), as written before reservations kept the keys of their
//! extensions and SKUs the keys of their restocks: a frozen copy of that layout, read and converted to the current one (no
//! extension has a key), so a data dir written by an older build still starts.

use flashsale_protocol::event::Group;
use flashsale_protocol::{
    BuyerId, Line, OrderId, ReleaseReason, ReservationId, ScopedKey, ShardId, SkuSpec,
};

use super::{Snap, SnapReservation, SnapSku};

/// Tag of format 4.
pub(super) const MAGIC: &[u8; 8] = b"FSSNAP04";

/// A SKU in a format-4 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapSkuV4 {
    spec: SkuSpec,
    reserved: u64,
    sold: u64,
}

/// A reservation in a format-4 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapReservationV4 {
    id: ReservationId,
    buyer: BuyerId,
    lines: Vec<Line>,
    created_at_ms: u64,
    expires_at_ms: u64,
    extensions: u32,
    status: u8,
    release_reason: Option<ReleaseReason>,
    order: Option<OrderId>,
    payment_ref: String,
    confirmed_at_ms: u64,
    idempotency_key: Option<ScopedKey>,
    request_hash: u64,
    group: Option<Group>,
    released_at_ms: u64,
}

/// A whole format-4 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapV4 {
    shard: ShardId,
    seq: u64,
    next_reservation: u64,
    next_order: u64,
    skus: Vec<SnapSkuV4>,
    reservations: Vec<SnapReservationV4>,
}

impl From<SnapV4> for Snap {
    fn from(s: SnapV4) -> Snap {
        Snap {
            shard: s.shard,
            seq: s.seq,
            next_reservation: s.next_reservation,
            next_order: s.next_order,
            skus: s
                .skus
                .into_iter()
                .map(|k| SnapSku {
                    spec: k.spec,
                    reserved: k.reserved,
                    sold: k.sold,
                    restock_keys: Vec::new(),
                })
                .collect(),
            reservations: s
                .reservations
                .into_iter()
                .map(|r| SnapReservation {
                    id: r.id,
                    buyer: r.buyer,
                    lines: r.lines,
                    created_at_ms: r.created_at_ms,
                    expires_at_ms: r.expires_at_ms,
                    extensions: r.extensions,
                    status: r.status,
                    release_reason: r.release_reason,
                    order: r.order,
                    payment_ref: r.payment_ref,
                    confirmed_at_ms: r.confirmed_at_ms,
                    idempotency_key: r.idempotency_key,
                    request_hash: r.request_hash,
                    group: r.group,
                    released_at_ms: r.released_at_ms,
                    extension_keys: Vec::new(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
impl SnapV4 {
    /// A format-4 snapshot's bytes of `snap` (for tests of the upgrade path): the idempotency
    /// keys of extensions and restocks are dropped.
    pub(super) fn bytes_of(snap: Snap) -> Vec<u8> {
        let v4 = SnapV4 {
            shard: snap.shard,
            seq: snap.seq,
            next_reservation: snap.next_reservation,
            next_order: snap.next_order,
            skus: snap
                .skus
                .into_iter()
                .map(|k| SnapSkuV4 {
                    spec: k.spec,
                    reserved: k.reserved,
                    sold: k.sold,
                })
                .collect(),
            reservations: snap
                .reservations
                .into_iter()
                .map(|r| SnapReservationV4 {
                    id: r.id,
                    buyer: r.buyer,
                    lines: r.lines,
                    created_at_ms: r.created_at_ms,
                    expires_at_ms: r.expires_at_ms,
                    extensions: r.extensions,
                    status: r.status,
                    release_reason: r.release_reason,
                    order: r.order,
                    payment_ref: r.payment_ref,
                    confirmed_at_ms: r.confirmed_at_ms,
                    idempotency_key: r.idempotency_key,
                    request_hash: r.request_hash,
                    group: r.group,
                    released_at_ms: r.released_at_ms,
                })
                .collect(),
        };
        let mut out = MAGIC.to_vec();
        if let Ok(b) = rkyv::to_bytes::<rkyv::rancor::Error>(&v4) {
            out.extend_from_slice(&b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use flashsale_protocol::{SkuId, SkuSpec};

    use super::super::{decode, Shard};
    use super::*;
    use crate::shard::fixtures::{reserve_cmd, sku_spec};
    use crate::shard::{ExtendCommand, NullSink};

    /// A format-4 snapshot (no keys kept) restores to the state of the format-5 one of the
    /// same shard without keys: extensions counted, stock restocked.
    #[test]
    fn a_format_4_snapshot_restores_without_keys() {
        let mut shard = Shard::new(0);
        let tee = SkuId::new("tee").unwrap();
        let spec = SkuSpec {
            name: "Tee".into(),
            price_cents: 100,
            reservation_ttl_ms: 60_000,
            max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
            ..sku_spec("tee", 10)
        };
        shard.upsert_sku(0, spec, &mut NullSink).unwrap();
        shard.restock(1, &tee, 5, None, &mut NullSink).unwrap();
        let id = shard
            .reserve(1, reserve_cmd("ann", "tee", 2), &mut NullSink)
            .unwrap()
            .id;
        let ext = ExtendCommand {
            id,
            ttl_ms: 120_000,
            max_hold: (3_600_000, tee.clone()),
            max_extensions: (3, tee),
            key: None,
        };
        shard.extend(2, &ext, &mut NullSink).unwrap();
        let old = SnapV4::bytes_of(decode(&shard.snapshot()).unwrap());
        assert!(old.starts_with(b"FSSNAP04"));
        let restored = Shard::restore(&old).unwrap();
        assert_eq!(restored.state_hash(), shard.state_hash());
        assert!(restored.snapshot().starts_with(b"FSSNAP05"));
    }
}

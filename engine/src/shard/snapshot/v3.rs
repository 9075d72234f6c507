//! Snapshots of format 3 (`FSSNAP03`), as written before SKUs had a maximum hold and a number
//! of extensions and before reservations counted their extensions: a frozen copy of that
//! layout, read and converted to the current one (SKU limits take their defaults, no
//! reservation was extended), so a data dir written by an older build still starts.

use flashsale_protocol::codec::v2::SkuSpecV2;
use flashsale_protocol::event::Group;
use flashsale_protocol::{
    BuyerId, Line, OrderId, ReleaseReason, ReservationId, ScopedKey, ShardId,
};

use super::{Snap, SnapReservation, SnapSku};

/// Tag of format 3.
pub(super) const MAGIC: &[u8; 8] = b"FSSNAP03";

/// A SKU in a format-3 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapSkuV3 {
    spec: SkuSpecV2,
    reserved: u64,
    sold: u64,
}

/// A reservation in a format-3 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapReservationV3 {
    id: ReservationId,
    buyer: BuyerId,
    lines: Vec<Line>,
    created_at_ms: u64,
    expires_at_ms: u64,
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

/// A whole format-3 snapshot.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SnapV3 {
    shard: ShardId,
    seq: u64,
    next_reservation: u64,
    next_order: u64,
    skus: Vec<SnapSkuV3>,
    reservations: Vec<SnapReservationV3>,
}

impl From<SnapV3> for Snap {
    fn from(s: SnapV3) -> Snap {
        Snap {
            shard: s.shard,
            seq: s.seq,
            next_reservation: s.next_reservation,
            next_order: s.next_order,
            skus: s
                .skus
                .into_iter()
                .map(|k| SnapSku {
                    spec: k.spec.into(),
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
                    extensions: 0,
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
impl SnapV3 {
    /// A format-3 snapshot's bytes of `snap` (for tests of the upgrade path): the SKU limits
    /// and extension counts are dropped.
    pub(super) fn bytes_of(snap: Snap) -> Vec<u8> {
        let v3 = SnapV3 {
            shard: snap.shard,
            seq: snap.seq,
            next_reservation: snap.next_reservation,
            next_order: snap.next_order,
            skus: snap
                .skus
                .into_iter()
                .map(|k| SnapSkuV3 {
                    spec: SkuSpecV2 {
                        sku: k.spec.sku,
                        name: k.spec.name,
                        price_cents: k.spec.price_cents,
                        stock: k.spec.stock,
                        per_buyer_limit: k.spec.per_buyer_limit,
                        sale_starts_at_ms: k.spec.sale_starts_at_ms,
                        sale_ends_at_ms: k.spec.sale_ends_at_ms,
                        reservation_ttl_ms: k.spec.reservation_ttl_ms,
                    },
                    reserved: k.reserved,
                    sold: k.sold,
                })
                .collect(),
            reservations: snap
                .reservations
                .into_iter()
                .map(|r| SnapReservationV3 {
                    id: r.id,
                    buyer: r.buyer,
                    lines: r.lines,
                    created_at_ms: r.created_at_ms,
                    expires_at_ms: r.expires_at_ms,
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
        if let Ok(b) = rkyv::to_bytes::<rkyv::rancor::Error>(&v3) {
            out.extend_from_slice(&b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use flashsale_protocol::SkuSpec;

    use super::super::{decode, Shard};
    use super::*;
    use crate::shard::fixtures::{reserve_cmd, sku_spec};
    use crate::shard::NullSink;

    /// A format-3 snapshot (SKUs with default limits, nothing extended) restores to the same
    /// state as the format-4 one of the same shard.
    #[test]
    fn a_format_3_snapshot_restores_with_the_default_limits() {
        let mut shard = Shard::new(0);
        let spec = SkuSpec {
            name: "Tee".into(),
            price_cents: 100,
            per_buyer_limit: Some(3),
            reservation_ttl_ms: 60_000,
            max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
            ..sku_spec("tee", 10)
        };
        shard.upsert_sku(0, spec, &mut NullSink).unwrap();
        shard
            .reserve(1, reserve_cmd("ann", "tee", 2), &mut NullSink)
            .unwrap();
        let old = SnapV3::bytes_of(decode(&shard.snapshot()).unwrap());
        assert!(old.starts_with(b"FSSNAP03"));
        let restored = Shard::restore(&old).unwrap();
        assert_eq!(restored.state_hash(), shard.state_hash());
        assert!(restored.snapshot().starts_with(b"FSSNAP05"));
    }
}

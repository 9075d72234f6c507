//! Replay's decode of a logged record with the shard's own handles (ADR 0036, fourth round).
//!
//! [`decode_record`](flashsale_protocol::decode_record) builds every SKU and buyer id of a
//! record as a fresh `Arc<str>` and a fresh line vector, which `apply` then drops again: two
//! or three allocations and frees per `Reserved`, most of replay's decode cost. Here the
//! record is built from its validated archive with the shard's own handle of each SKU and
//! buyer it already holds (a reference count, no allocation) and the line buffer the previous
//! reservation left, and notes the index of each line's SKU so that neither the check nor the
//! apply hashes the id again ([`Shard::apply_record_at`]). The record is equal to the one
//! `decode_record` returns, and it is checked and applied by the same functions, so the state
//! reached is the same.

use flashsale_protocol::event::{ArchivedEvent, ArchivedLogRecord};
use flashsale_protocol::ids::{ArchivedBuyerId, ArchivedSkuId};
use flashsale_protocol::{BuyerId, Event, Line, LogRecord, SkuId};
use rkyv::rancor::Error as ArchiveError;

use super::Shard;

impl Shard {
    /// The owned record of a validated archive, equal to what `decode_record` makes of it,
    /// sharing the shard's handles of the ids it holds (see the module doc). Errors only if
    /// rkyv fails to deserialize a field of the validated archive.
    /// `skus` is cleared, then, for a `Reserved` whose SKUs the shard all holds, filled with
    /// each line's SKU index, for [`Shard::apply_record_at`].
    pub fn record_from_archived(
        &mut self,
        archived: &ArchivedLogRecord,
        skus: &mut Vec<u32>,
    ) -> Result<LogRecord, ArchiveError> {
        skus.clear();
        let event = match &archived.event {
            ArchivedEvent::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                let mut owned = std::mem::take(&mut self.spare_lines);
                owned.clear();
                owned.reserve(lines.len());
                let mut all_known = true;
                for l in lines.iter() {
                    let (sku, index) = self.sku_handle(&l.sku)?;
                    match index {
                        Some(i) if all_known => skus.push(i),
                        _ => all_known = false,
                    }
                    owned.push(Line {
                        sku,
                        qty: l.qty.to_native(),
                        unit_price_cents: l.unit_price_cents.to_native(),
                    });
                }
                if !all_known {
                    skus.clear();
                }
                Event::Reserved {
                    id: rkyv::deserialize::<_, ArchiveError>(id)?,
                    buyer: self.buyer_handle_of(buyer)?,
                    lines: owned,
                    expires_at_ms: expires_at_ms.to_native(),
                    idempotency_key: rkyv::deserialize::<_, ArchiveError>(idempotency_key)?,
                    request_hash: request_hash.to_native(),
                    group: rkyv::deserialize::<_, ArchiveError>(group)?,
                    at_ms: at_ms.to_native(),
                }
            }
            other => rkyv::deserialize::<Event, ArchiveError>(other)?,
        };
        Ok(LogRecord {
            shard: archived.shard.to_native(),
            seq: archived.seq.to_native(),
            event,
        })
    }

    /// The shard's handle of an archived SKU id and its index, or a new id (and no index)
    /// for a SKU it does not hold.
    fn sku_handle(&self, sku: &ArchivedSkuId) -> Result<(SkuId, Option<u32>), ArchiveError> {
        match self.sku_index.get_key_value(sku.as_str()) {
            Some((known, &i)) => Ok((known.clone(), Some(i))),
            None => Ok((rkyv::deserialize::<SkuId, ArchiveError>(sku)?, None)),
        }
    }

    /// The shard's handle of an archived buyer id (a buyer with a kept reservation), or a
    /// new one.
    fn buyer_handle_of(&self, buyer: &ArchivedBuyerId) -> Result<BuyerId, ArchiveError> {
        match self.buyers.interned(buyer.as_str()) {
            Some(known) => Ok(known.clone()),
            None => rkyv::deserialize::<BuyerId, ArchiveError>(buyer),
        }
    }
}

//! One published update: numbered, stamped, and encoded once as an `Update` frame shared by every
//! connection that sends it.

use bytes::Bytes;
use flashsale_protocol::stream::{
    encode_frame, LevelEntry, ServerFrame, UpdateFrame, MAX_FRAME_LEN,
};
use flashsale_protocol::SkuId;

use super::inbox::Pending;

/// One numbered update, encoded once and shared by every connection that sends it.
#[derive(Debug)]
pub struct HubEntry {
    /// Global sequence number.
    pub seq: u64,
    /// The SKU.
    pub sku: SkuId,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// The shard log position of these counts, the same on every node of a group (ADR 0033).
    pub log_seq: u64,
    /// When this update was published (sequence number assigned), Unix µs; sent to clients as
    /// `server_time_us`, so receipt minus it is the delivery latency.
    pub server_time_us: u64,
    /// When the hub learned of the oldest change this entry carries, Unix µs (publication minus
    /// this is the time the change waited to be conflated and published).
    pub changed_us: u64,
    /// The encoded `Update` frame (length prefix included).
    pub frame: Bytes,
}

impl HubEntry {
    /// This entry as a snapshot level.
    pub fn level(&self) -> LevelEntry {
        LevelEntry {
            sku: self.sku.clone(),
            available: self.available,
            reserved: self.reserved,
            sold: self.sold,
            seq: self.seq,
            log_seq: self.log_seq,
        }
    }

    /// The update publishing `pending` as number `seq` at `published_us`, with its frame encoded.
    pub(super) fn publish(seq: u64, pending: Pending, published_us: u64) -> HubEntry {
        let changed_us = pending.first_seen_us;
        let update = UpdateFrame {
            seq,
            sku: pending.sku,
            available: pending.available,
            reserved: pending.reserved,
            sold: pending.sold,
            server_time_us: published_us,
            log_seq: pending.log_seq,
        };
        let mut frame = Vec::with_capacity(128);
        let frame = match encode_frame(
            &ServerFrame::Update(update.clone()),
            MAX_FRAME_LEN,
            &mut frame,
        ) {
            Ok(()) => Bytes::from(frame),
            Err(e) => {
                // A 64-byte SKU and four integers always fit; keep the sequence gap-free anyway.
                tracing::error!(error = %e, "cannot encode a stock update");
                Bytes::new()
            }
        };
        HubEntry {
            seq,
            sku: update.sku,
            available: update.available,
            reserved: update.reserved,
            sold: update.sold,
            log_seq: update.log_seq,
            server_time_us: update.server_time_us,
            changed_us,
            frame,
        }
    }
}

#[cfg(test)]
mod tests {
    use flashsale_engine::observer::StockObserver;
    use flashsale_protocol::stream::Subscription;

    use super::super::test_support::level;
    use super::super::StockHub;
    use super::*;

    #[test]
    fn entries_carry_a_decodable_update_frame() {
        use flashsale_protocol::stream::FrameDecoder;
        let hub = StockHub::new(4);
        hub.stock_changed(&level("tee", 7));
        hub.pump();
        let r = hub.read_since(0, &Subscription::All, None, 10);
        let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
        dec.feed(&r.entries[0].frame);
        match dec.next_frame().unwrap() {
            Some(ServerFrame::Update(u)) => {
                assert_eq!((u.seq, u.sku.as_str(), u.available), (1, "tee", 7));
                assert!(u.server_time_us > 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

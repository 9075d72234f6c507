//! A snapshot of the whole waiting room: every queue's live state at one point of its
//! journal, so the journal can drop the records before it (compaction, ADR 0025). Encoded
//! like the queue records: a header (version, archive length) and an rkyv archive validated
//! on decode.

use crate::ids::{BuyerId, ReservationId};
use crate::queue::{frame, unframe, QueueDecodeError, QueueEncodeError, QueueId, QueueSpec};

/// Version of the snapshot layout. Bump when [`RoomSnapshot`] changes shape.
pub const QUEUE_SNAPSHOT_VERSION: u16 = 1;

/// Where one ticket is (the waiting room's ticket states, as stored).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum TicketSnapshotState {
    /// Joined before the start.
    Prequeue,
    /// In the line (`order`) or the random pool (`None`).
    Waiting {
        /// Place in the ordered line.
        order: Option<u64>,
    },
    /// Admitted with a pass.
    Admitted {
        /// When, Unix ms.
        admitted_at_ms: u64,
        /// Place in the admission order (from 1).
        admission: u64,
        /// When the pass expires, Unix ms.
        pass_expires_at_ms: u64,
        /// The reservation it holds and when that expires (Unix ms), if any.
        hold: Option<(ReservationId, u64)>,
    },
    /// Spent by a confirm.
    Spent {
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Expired.
    Expired {
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// One ticket.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct TicketSnapshot {
    /// The buyer.
    pub buyer: BuyerId,
    /// When it joined, Unix ms.
    pub joined_at_ms: u64,
    /// Its state.
    pub state: TicketSnapshotState,
}

/// One queue's live state.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct QueueSnapshot {
    /// The queue.
    pub queue: QueueId,
    /// Its configuration.
    pub spec: QueueSpec,
    /// The pre-queue shuffle's seed.
    pub seed: u64,
    /// When it started, Unix ms (`None`: scheduled).
    pub started_at_ms: Option<u64>,
    /// Ticket `n` is `tickets[n - 1]`.
    pub tickets: Vec<TicketSnapshot>,
    /// The pre-queue, in join order.
    pub prequeue: Vec<u64>,
    /// The ordered line, front first.
    pub line: Vec<u64>,
    /// The `order` the next ticket appended to the line gets.
    pub next_order: u64,
    /// The random pool, in its order.
    pub pool: Vec<u64>,
    /// Tickets ever admitted.
    pub admitted_total: u64,
}

/// Every queue of a waiting room.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct RoomSnapshot {
    /// The queues, by name.
    pub queues: Vec<QueueSnapshot>,
}

/// Appends the encoded form of `snapshot` to `out`.
pub fn encode_room_snapshot(
    snapshot: &RoomSnapshot,
    out: &mut Vec<u8>,
) -> Result<(), QueueEncodeError> {
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(snapshot)
        .map_err(|e| QueueEncodeError::new(e.to_string()))?;
    frame(QUEUE_SNAPSHOT_VERSION, &archive, out)
}

/// Decodes and validates a snapshot. Never panics on any input.
pub fn decode_room_snapshot(bytes: &[u8]) -> Result<RoomSnapshot, QueueDecodeError> {
    let aligned = unframe(QUEUE_SNAPSHOT_VERSION, bytes)?;
    rkyv::from_bytes::<RoomSnapshot, rkyv::rancor::Error>(&aligned)
        .map_err(|e| QueueDecodeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SkuId;
    use crate::queue::AdmissionMethod;

    #[test]
    fn round_trips_and_refuses_truncations() {
        let q = QueueSnapshot {
            queue: QueueId::new("drop").unwrap_or_else(|e| panic!("{e}")),
            spec: QueueSpec {
                skus: vec![SkuId::new("tee").unwrap_or_else(|e| panic!("{e}"))],
                prequeue_opens_at_ms: None,
                starts_at_ms: 10,
                admit_per_s: 5,
                max_active: 9,
                pass_ttl_s: 60,
                method: AdmissionMethod::Fifo,
                overbooking_pct: 100,
            },
            seed: 3,
            started_at_ms: Some(11),
            tickets: vec![TicketSnapshot {
                buyer: BuyerId::new("b").unwrap_or_else(|e| panic!("{e}")),
                joined_at_ms: 4,
                state: TicketSnapshotState::Admitted {
                    admitted_at_ms: 12,
                    admission: 1,
                    pass_expires_at_ms: 99,
                    hold: Some((ReservationId::compose(1, 2), 50)),
                },
            }],
            prequeue: vec![],
            line: vec![],
            next_order: 1,
            pool: vec![],
            admitted_total: 1,
        };
        let snap = RoomSnapshot { queues: vec![q] };
        let mut buf = Vec::new();
        encode_room_snapshot(&snap, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decode_room_snapshot(&buf).unwrap_or_else(|e| panic!("{e}")),
            snap
        );
        for len in 0..buf.len() {
            assert!(decode_room_snapshot(&buf[..len]).is_err(), "cut at {len}");
        }
    }
}

//! The waiting room's log records: queue configuration, joins, admissions and what became of
//! each pass. A waiting room's state is a fold over these (see `flashsale-waiting-room`).
//!
//! Encoded like the shard log's records: a header (version, archive length) and an rkyv
//! archive validated on decode.

use std::fmt;

use crate::ids::{check_name, BuyerId, IdError, ReservationId, SkuId};

/// A waiting room queue's name: `[A-Za-z0-9._-]{1,64}` (the alphabet of SKU ids).
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct QueueId(String);

impl QueueId {
    /// Longest queue name in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps a queue name.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        check_name("queue", &s, Self::MAX_LEN)?;
        Ok(QueueId(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// How waiting buyers who joined after the start are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum AdmissionMethod {
    /// Arrival order.
    Fifo,
    /// Uniform random draws among everyone waiting.
    Random,
}

/// Everything an admin sets on a queue (validated by the waiting room, not here).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct QueueSpec {
    /// The SKUs a reservation needs a pass of this queue for.
    pub skus: Vec<SkuId>,
    /// Joins open at this Unix time in ms (the pre-queue); `None` = at `starts_at_ms`.
    pub prequeue_opens_at_ms: Option<u64>,
    /// Admission starts (and the pre-queue is shuffled) at this Unix time in ms.
    pub starts_at_ms: u64,
    /// Buyers admitted per second, at most.
    pub admit_per_s: u32,
    /// Most admitted buyers whose pass is neither spent nor expired.
    pub max_active: u32,
    /// How long a pass is valid after admission, in s.
    pub pass_ttl_s: u32,
    /// Fifo or random draws after the start.
    pub method: AdmissionMethod,
    /// Idle passes allowed per unclaimed unit, in percent (100 = one pass per unit).
    pub overbooking_pct: u32,
}

/// One fact of a waiting room. Ticket numbers are not logged: the `n`-th join of a queue is
/// ticket `n` (from 1), on every replay.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum QueueRecord {
    /// A queue was created or its configuration changed. `seed` shuffles the pre-queue; it is
    /// chosen when the queue is created and kept by later changes.
    Configured {
        /// The queue.
        queue: QueueId,
        /// Its configuration.
        spec: QueueSpec,
        /// The pre-queue shuffle's seed.
        seed: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A buyer joined and got the next ticket.
    Joined {
        /// The queue.
        queue: QueueId,
        /// The buyer.
        buyer: BuyerId,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The start: the pre-queue was shuffled (by the configured seed) into the line.
    Started {
        /// The queue.
        queue: QueueId,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A waiting ticket was admitted and given a pass.
    Admitted {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
        /// When the pass expires, Unix ms.
        pass_expires_at_ms: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A pass placed its (one) held reservation.
    HoldPlaced {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
        /// The reservation.
        reservation: ReservationId,
        /// When the reservation expires unless confirmed or extended, Unix ms.
        expires_at_ms: u64,
    },
    /// A pass's reservation was cancelled or expired: the pass may hold again while valid.
    HoldReleased {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A pass's reservation was confirmed: the pass is spent.
    Spent {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A pass expired without a hold: its place goes to the next buyer.
    PassExpired {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
}

impl QueueRecord {
    /// The queue this record is about.
    pub fn queue(&self) -> &QueueId {
        match self {
            QueueRecord::Configured { queue, .. }
            | QueueRecord::Joined { queue, .. }
            | QueueRecord::Started { queue, .. }
            | QueueRecord::Admitted { queue, .. }
            | QueueRecord::HoldPlaced { queue, .. }
            | QueueRecord::HoldReleased { queue, .. }
            | QueueRecord::Spent { queue, .. }
            | QueueRecord::PassExpired { queue, .. } => queue,
        }
    }
}

/// Version of the queue record layout. Bump when [`QueueRecord`] changes shape.
pub const QUEUE_RECORD_VERSION: u16 = 1;

/// Length of the header: version (u16 LE) and archive length (u32 LE).
const HEADER_LEN: usize = 6;

/// Why bytes could not be decoded into a queue record.
#[derive(Debug, thiserror::Error)]
pub enum QueueDecodeError {
    /// Fewer bytes than a header.
    #[error("queue record truncated: {len} bytes")]
    Truncated {
        /// How many bytes there were.
        len: usize,
    },
    /// A version this build does not read.
    #[error("unsupported queue record version {found} (this build reads {QUEUE_RECORD_VERSION})")]
    Version {
        /// The version found.
        found: u16,
    },
    /// The archive is not as long as its header says.
    #[error("queue record length {actual} does not match its header ({header})")]
    Length {
        /// Length from the header.
        header: usize,
        /// Bytes present after the header.
        actual: usize,
    },
    /// The archive failed validation.
    #[error("invalid queue record archive: {0}")]
    Invalid(String),
}

/// Why a queue record could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode queue record: {0}")]
pub struct QueueEncodeError(String);

impl QueueEncodeError {
    /// An encoding error saying `why`.
    pub fn new(why: impl Into<String>) -> Self {
        QueueEncodeError(why.into())
    }
}

/// Appends `archive` to `out` behind the frame header every queue journal item has: `version`
/// (u16 LE) and the archive's length (u32 LE).
pub(crate) fn frame(
    version: u16,
    archive: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), QueueEncodeError> {
    let len = u32::try_from(archive.len()).map_err(|_| QueueEncodeError::new("too large"))?;
    out.reserve(HEADER_LEN + archive.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(archive);
    Ok(())
}

/// The archive inside a frame written by [`frame`] with `version`, copied to an aligned
/// buffer for rkyv's validation. Never panics on any input.
pub(crate) fn unframe(
    version: u16,
    bytes: &[u8],
) -> Result<rkyv::util::AlignedVec<16>, QueueDecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(QueueDecodeError::Truncated { len: bytes.len() });
    }
    let found = u16::from_le_bytes([bytes[0], bytes[1]]);
    if found != version {
        return Err(QueueDecodeError::Version { found });
    }
    let len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    if bytes.len() - HEADER_LEN != len {
        return Err(QueueDecodeError::Length {
            header: len,
            actual: bytes.len() - HEADER_LEN,
        });
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(len);
    aligned.extend_from_slice(&bytes[HEADER_LEN..]);
    Ok(aligned)
}

/// Appends the encoded form of `record` to `out`.
pub fn encode_queue_record(
    record: &QueueRecord,
    out: &mut Vec<u8>,
) -> Result<(), QueueEncodeError> {
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(record)
        .map_err(|e| QueueEncodeError(e.to_string()))?;
    frame(QUEUE_RECORD_VERSION, &archive, out)
}

/// Decodes and validates one queue record. Never panics on any input.
pub fn decode_queue_record(bytes: &[u8]) -> Result<QueueRecord, QueueDecodeError> {
    let aligned = unframe(QUEUE_RECORD_VERSION, bytes)?;
    rkyv::from_bytes::<QueueRecord, rkyv::rancor::Error>(&aligned)
        .map_err(|e| QueueDecodeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> QueueId {
        QueueId::new("drop-1").unwrap_or_else(|e| panic!("{e}"))
    }

    fn samples() -> Vec<QueueRecord> {
        vec![
            QueueRecord::Configured {
                queue: q(),
                spec: QueueSpec {
                    skus: vec![SkuId::new("tee").unwrap_or_else(|e| panic!("{e}"))],
                    prequeue_opens_at_ms: Some(5),
                    starts_at_ms: 10,
                    admit_per_s: 50,
                    max_active: 100,
                    pass_ttl_s: 60,
                    method: AdmissionMethod::Random,
                    overbooking_pct: 120,
                },
                seed: 99,
                at_ms: 1,
            },
            QueueRecord::Joined {
                queue: q(),
                buyer: BuyerId::new("alice").unwrap_or_else(|e| panic!("{e}")),
                at_ms: 7,
            },
            QueueRecord::HoldPlaced {
                queue: q(),
                ticket: 3,
                reservation: ReservationId::compose(1, 2),
                expires_at_ms: 9,
            },
        ]
    }

    #[test]
    fn round_trips_and_refuses_truncations() {
        for r in samples() {
            let mut buf = Vec::new();
            encode_queue_record(&r, &mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                decode_queue_record(&buf).unwrap_or_else(|e| panic!("{e}")),
                r
            );
            for len in 0..buf.len() {
                assert!(decode_queue_record(&buf[..len]).is_err(), "cut at {len}");
            }
            buf[0] ^= 0x40;
            assert!(matches!(
                decode_queue_record(&buf),
                Err(QueueDecodeError::Version { .. })
            ));
        }
    }

    #[test]
    fn queue_ids_use_the_sku_alphabet() {
        assert!(QueueId::new("a.b_c-9").is_ok());
        assert!(QueueId::new("").is_err());
        assert!(QueueId::new("a b").is_err());
        assert!(QueueId::new("x".repeat(65)).is_err());
    }
}

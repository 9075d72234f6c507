//! Encoding of log records: a header (version tag, archive length) followed by an rkyv archive,
//! validated on decode. Records of the previous version ([`v2`]) are still read.

pub mod v2;

use crate::event::LogRecord;

/// Version of the log record layout. Bump when [`LogRecord`] changes shape, and keep a frozen
/// copy of the old layout to read older logs (as [`v2`]).
///
/// Version 3 added `SkuSpec::max_hold_ms`, `SkuSpec::max_extensions` and `Event::Extended`.
pub const RECORD_VERSION: u16 = 3;

/// Length of the header in front of the archive: version (u16 LE) and archive length (u32 LE).
const HEADER_LEN: usize = 6;

/// Why bytes could not be decoded into a record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header.
    #[error("record truncated: {len} bytes")]
    Truncated {
        /// How many bytes there were.
        len: usize,
    },
    /// A version this build does not read.
    #[error("unsupported record version {found} (this build reads 2 and {RECORD_VERSION})")]
    Version {
        /// The version found.
        found: u16,
    },
    /// The archive is not as long as its header says (truncated or padded).
    #[error("record length {actual} does not match its header ({header})")]
    Length {
        /// Length from the header.
        header: usize,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// The archive failed validation (corrupt or truncated bytes).
    #[error("invalid record archive: {0}")]
    Invalid(String),
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode record: {0}")]
pub struct EncodeError(String);

/// Appends the encoded form of `record` to `out`.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let archive =
        rkyv::to_bytes::<rkyv::rancor::Error>(record).map_err(|e| EncodeError(e.to_string()))?;
    out.reserve(HEADER_LEN + archive.len());
    let len = u32::try_from(archive.len()).map_err(|_| EncodeError("record too large".into()))?;
    out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&archive);
    Ok(())
}

/// Decodes and validates one record. Never panics on any input.
pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let found = u16::from_le_bytes([bytes[0], bytes[1]]);
    if found != RECORD_VERSION && found != v2::VERSION {
        return Err(DecodeError::Version { found });
    }
    let len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    if bytes.len() - HEADER_LEN != len {
        return Err(DecodeError::Length {
            header: len,
            actual: bytes.len() - HEADER_LEN,
        });
    }
    // rkyv needs the archive aligned; copying into an aligned buffer keeps any input safe.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len() - HEADER_LEN);
    aligned.extend_from_slice(&bytes[HEADER_LEN..]);
    if found == v2::VERSION {
        return rkyv::from_bytes::<v2::LogRecordV2, rkyv::rancor::Error>(&aligned)
            .map(LogRecord::from)
            .map_err(|e| DecodeError::Invalid(e.to_string()));
    }
    rkyv::from_bytes::<LogRecord, rkyv::rancor::Error>(&aligned)
        .map_err(|e| DecodeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Line, ReleaseReason};
    use crate::ids::{BuyerId, ReservationId, SkuId};

    fn sample() -> LogRecord {
        LogRecord {
            shard: 1,
            seq: 7,
            event: Event::Reserved {
                id: ReservationId::compose(1, 9),
                buyer: BuyerId::new("alice").unwrap_or_else(|e| panic!("{e}")),
                lines: vec![Line {
                    sku: SkuId::new("tee").unwrap_or_else(|e| panic!("{e}")),
                    qty: 2,
                    unit_price_cents: 1999,
                }],
                expires_at_ms: 1_000,
                idempotency_key: None,
                request_hash: 42,
                group: None,
                at_ms: 500,
            },
        }
    }

    #[test]
    fn round_trips() {
        let mut buf = Vec::new();
        encode_record(&sample(), &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decode_record(&buf).unwrap_or_else(|e| panic!("{e}")),
            sample()
        );
        let rel = LogRecord {
            shard: 0,
            seq: 1,
            event: Event::Released {
                id: ReservationId::compose(0, 1),
                reason: ReleaseReason::Expired,
                at_ms: 3,
            },
        };
        buf.clear();
        encode_record(&rel, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode_record(&buf).unwrap_or_else(|e| panic!("{e}")), rel);
        let ext = LogRecord {
            shard: 0,
            seq: 2,
            event: Event::Extended {
                id: ReservationId::compose(0, 1),
                expires_at_ms: 9_000,
                extensions: 1,
                at_ms: 4,
            },
        };
        buf.clear();
        encode_record(&ext, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode_record(&buf).unwrap_or_else(|e| panic!("{e}")), ext);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_a_valid_record() {
        let mut buf = Vec::new();
        encode_record(&sample(), &mut buf).unwrap_or_else(|e| panic!("{e}"));
        for len in 0..buf.len() {
            assert!(
                decode_record(&buf[..len]).is_err(),
                "truncation to {len} decoded"
            );
        }
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                // Must not panic or be UB; a flip in a plain integer may still decode.
                let _ = decode_record(&b);
            }
        }
    }

    /// A record written by a version-2 build (the frozen layout) reads as the current type,
    /// the SKU limits taking their defaults.
    #[test]
    fn reads_version_2_records() {
        let spec = v2::SkuSpecV2 {
            sku: SkuId::new("tee").unwrap_or_else(|e| panic!("{e}")),
            name: "Tee".into(),
            price_cents: 100,
            stock: 5,
            per_buyer_limit: None,
            sale_starts_at_ms: None,
            sale_ends_at_ms: None,
            reservation_ttl_ms: 600_000,
        };
        let old = v2::LogRecordV2 {
            shard: 0,
            seq: 1,
            event: v2::EventV2::SkuUpserted { spec, at_ms: 9 },
        };
        let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&old).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = v2::VERSION.to_le_bytes().to_vec();
        buf.extend_from_slice(&(archive.len() as u32).to_le_bytes());
        buf.extend_from_slice(&archive);
        let rec = decode_record(&buf).unwrap_or_else(|e| panic!("{e}"));
        let Event::SkuUpserted { spec, at_ms: 9 } = rec.event else {
            panic!("{rec:?}");
        };
        assert_eq!(spec.max_hold_ms, crate::event::DEFAULT_MAX_HOLD_MS);
        assert_eq!(spec.max_extensions, crate::event::DEFAULT_MAX_EXTENSIONS);
        assert_eq!(spec.reservation_ttl_ms, 600_000);
        // The sample (a Reserved) written as version 2 reads the same as version 3.
        let Event::Reserved {
            id,
            buyer,
            lines,
            expires_at_ms,
            idempotency_key,
            request_hash,
            group,
            at_ms,
        } = sample().event
        else {
            panic!("sample");
        };
        let old = v2::LogRecordV2 {
            shard: 1,
            seq: 7,
            event: v2::EventV2::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            },
        };
        let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&old).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = v2::VERSION.to_le_bytes().to_vec();
        buf.extend_from_slice(&(archive.len() as u32).to_le_bytes());
        buf.extend_from_slice(&archive);
        assert_eq!(
            decode_record(&buf).unwrap_or_else(|e| panic!("{e}")),
            sample()
        );
    }

    #[test]
    fn refuses_other_versions() {
        let mut buf = Vec::new();
        encode_record(&sample(), &mut buf).unwrap_or_else(|e| panic!("{e}"));
        buf[0] = 99;
        assert!(matches!(
            decode_record(&buf),
            Err(DecodeError::Version { found: 99 })
        ));
    }
}

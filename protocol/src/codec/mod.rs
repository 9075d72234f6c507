//! Encoding of log records: a header (version tag, archive length) followed by an rkyv archive,
//! validated on decode. Records of the previous versions ([`v2`], [`v3`]) are still read.

pub mod v2;
pub mod v3;

use crate::event::{ArchivedLogRecord, LogRecord};

/// Version of the log record layout. Bump when [`LogRecord`] changes shape, and keep a frozen
/// copy of the old layout to read older logs (as [`v2`]).
///
/// Version 3 added `SkuSpec::max_hold_ms`, `SkuSpec::max_extensions` and `Event::Extended`;
/// version 4 added `Event::Extended::key` and `Event::Restocked::key` (ADR 0015, addendum).
pub const RECORD_VERSION: u16 = 4;

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
    #[error("unsupported record version {found} (this build reads 2, 3 and {RECORD_VERSION})")]
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

/// An rkyv writer appending straight to the caller's buffer, with positions counted from the
/// archive's first byte (so the bytes equal those of `rkyv::to_bytes`, whatever the buffer
/// already holds): the record is encoded once, into its final place.
struct AppendWriter<'a> {
    /// The buffer the archive is appended to.
    out: &'a mut Vec<u8>,
    /// Where the archive starts in `out`.
    start: usize,
}

impl rkyv::ser::Positional for AppendWriter<'_> {
    fn pos(&self) -> usize {
        self.out.len() - self.start
    }
}

impl<E> rkyv::ser::Writer<E> for AppendWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

impl crate::event::direct::PadZeros for AppendWriter<'_> {
    #[inline(always)]
    fn pad_zeros_to(&mut self, align: usize) -> usize {
        debug_assert!(align.is_power_of_two() && align <= 8);
        let len = self.out.len();
        let pad = align.wrapping_sub(len - self.start) & (align - 1);
        // Eight zeros (a fixed-size store), then back to the pad's end.
        self.out.extend_from_slice(&[0; 8]);
        self.out.truncate(len + pad);
        len + pad - self.start
    }
}

/// Appends the encoded form of `record` to `out`: the header, then the archive serialized in
/// place (no intermediate buffer). A one-line `Reserved`, a `Confirmed` or a `Released` is
/// serialized by `event::direct` (rkyv's steps without its generic driver or scratch arena,
/// the same bytes: ADR 0054); any other record by rkyv's serializer with the thread's scratch
/// arena. On error `out` is left as it was.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let header_at = out.len();
    // A typical record is under 200 bytes: one reservation up front spares most regrowth.
    out.reserve(HEADER_LEN + 192);
    // The header in one write: the version, and the length's place (filled in below).
    let [v0, v1] = RECORD_VERSION.to_le_bytes();
    out.extend_from_slice(&[v0, v1, 0, 0, 0, 0]);
    let start = out.len();
    let mut writer = AppendWriter {
        out: &mut *out,
        start,
    };
    // The records of every sale without rkyv's generic driver (same bytes: ADR 0054).
    let direct =
        crate::event::direct::serialize_common(record, rkyv::rancor::Strategy::wrap(&mut writer));
    let written = match direct {
        Some(result) => result,
        None => generic(record, out, start),
    };
    if let Err(e) = written {
        out.truncate(header_at);
        return Err(EncodeError(e.to_string()));
    }
    let Ok(len) = u32::try_from(out.len() - start) else {
        out.truncate(header_at);
        return Err(EncodeError("record too large".into()));
    };
    out[header_at + 2..start].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Serializes `record` by rkyv's generic driver (every record [`crate::event::direct`] does
/// not handle), appending to `out` with positions counted from `start`.
#[inline(never)]
fn generic(record: &LogRecord, out: &mut Vec<u8>, start: usize) -> Result<(), rkyv::rancor::Error> {
    rkyv::util::with_arena(|arena| {
        let writer = AppendWriter {
            out: &mut *out,
            start,
        };
        rkyv::api::high::to_bytes_in_with_alloc::<_, _, rkyv::rancor::Error>(
            record,
            writer,
            arena.acquire(),
        )
        .map(|_| ())
    })
}

/// Decodes and validates one record. Never panics on any input.
pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, DecodeError> {
    with_aligned(bytes, decode_archive)
}

/// Like [`decode_record`], but a record of the current version is validated in place
/// (rkyv's `access`, the record's one validation) and handed to `build`, which makes the
/// owned record from the archive (replay builds it with the shard's own SKU and buyer
/// handles instead of allocating new ones: ADR 0036, fourth round). Records of older
/// versions are decoded as [`decode_record`] does. Never panics on any input; a `build`
/// error is reported as [`DecodeError::Invalid`].
pub fn decode_record_with<F>(bytes: &[u8], build: F) -> Result<LogRecord, DecodeError>
where
    F: FnOnce(&ArchivedLogRecord) -> Result<LogRecord, rkyv::rancor::Error>,
{
    with_aligned(bytes, |version, aligned| {
        if version != RECORD_VERSION {
            return decode_archive(version, aligned);
        }
        let archived = rkyv::access::<ArchivedLogRecord, rkyv::rancor::Error>(aligned)
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        build(archived).map_err(|e| DecodeError::Invalid(e.to_string()))
    })
}

/// One record as replay sees it: the validated archive of a record of the current version
/// (nothing deserialized), or the owned record an older version was converted to.
#[derive(Debug)]
pub enum RecordView<'a> {
    /// A record of [`RECORD_VERSION`], validated, read in place.
    Current(&'a ArchivedLogRecord),
    /// A record of an older version ([`v2`], [`v3`]), validated and converted.
    Older(LogRecord),
}

impl RecordView<'_> {
    /// The owned record (the current version's archive deserialized, as [`decode_record`]
    /// would give it).
    pub fn into_record(self) -> Result<LogRecord, DecodeError> {
        match self {
            RecordView::Current(archived) => {
                rkyv::deserialize::<LogRecord, rkyv::rancor::Error>(archived)
                    .map_err(|e| DecodeError::Invalid(e.to_string()))
            }
            RecordView::Older(record) => Ok(record),
        }
    }
}

/// What [`check_record`] found a record to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// A record of [`RECORD_VERSION`] whose archive passed rkyv's validation.
    Current,
    /// A record of an older version: validated again (and converted) when read.
    Older,
}

/// Checks one record without building anything: the header, and for a record of the
/// current version the whole archive (rkyv's `check_bytes`, the same validation as
/// [`decode_record`]). A replay may run this on a reader thread and hand the same, unchanged
/// record's validation without keeping the archive ([`CheckedArena::check`] keeps it, for replay).
/// Never panics on any input.
pub fn check_record(bytes: &[u8]) -> Result<Checked, DecodeError> {
    let (version, archive) = split_header(bytes)?;
    if version != RECORD_VERSION {
        return Ok(Checked::Older);
    }
    with_aligned_archive(archive, |aligned| {
        rkyv::access::<ArchivedLogRecord, rkyv::rancor::Error>(aligned)
            .map(|_| Checked::Current)
            .map_err(|e| DecodeError::Invalid(e.to_string()))
    })
}

/// Calls `f` with the view of one record: a record of the current version validated in
/// place (rkyv's `access`, the record's one validation, nothing deserialized), an older one
/// decoded as [`decode_record`] does. Never panics on any input.
pub fn with_record<R>(bytes: &[u8], f: impl FnOnce(RecordView<'_>) -> R) -> Result<R, DecodeError> {
    let (version, archive) = split_header(bytes)?;
    with_aligned_archive(archive, |aligned| {
        if version != RECORD_VERSION {
            return decode_archive(version, aligned).map(|r| f(RecordView::Older(r)));
        }
        let archived = rkyv::access::<ArchivedLogRecord, rkyv::rancor::Error>(aligned)
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        Ok(f(RecordView::Current(archived)))
    })
}

/// A buffer of record archives that were validated when they went in ([`CheckedArena::check`]),
/// so they can be read back in place without a second validation ([`CheckedArena::read`]) —
/// on another thread if the arena is moved there (replay validates on its reader thread and
/// applies on the shard's: ADR 0036, fifth round).
///
/// Its bytes are private and only ever grow by a validated archive or are cleared, and a
/// [`CheckedAt`] names the arena (and the generation of it) that made it, so reading with a
/// position from another arena, or from before a [`CheckedArena::clear`], is an error, never
/// a read of unvalidated bytes.
#[derive(Debug)]
pub struct CheckedArena {
    /// The archives, each at a 16-aligned offset.
    bytes: rkyv::util::AlignedVec<16>,
    /// This generation's identity, unique per arena and per clear (from [`NEXT_ARENA_ID`]),
    /// taken by the first [`CheckedArena::check`] of the generation; 0 until then.
    id: u64,
}

/// The next [`CheckedArena`] identity (never reused: a `u64` does not wrap in practice).
static NEXT_ARENA_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh, never used arena identity.
fn next_arena_id() -> u64 {
    NEXT_ARENA_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where [`CheckedArena::check`] put a record it validated (made only by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedAt {
    /// The arena (and generation) that validated it.
    arena: u64,
    /// The record's version.
    version: u16,
    /// The archive's first byte in the arena (a multiple of 16).
    start: usize,
    /// One past its last byte.
    end: usize,
}

impl Default for CheckedArena {
    fn default() -> Self {
        Self::new()
    }
}

impl CheckedArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self {
            bytes: rkyv::util::AlignedVec::new(),
            id: 0,
        }
    }

    /// Bytes held (archives and alignment padding).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no archive is held.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Drops every archive (keeping the allocation); positions given out before no longer
    /// read.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.id = 0;
    }

    /// Appends the archive of one record (16-aligned) and validates it there: the header, and
    /// for a record of the current version rkyv's `check_bytes` over the archive (the
    /// validation of [`decode_record`]). On error the arena is left as it was. Never panics on
    /// any input.
    pub fn check(&mut self, bytes: &[u8]) -> Result<CheckedAt, DecodeError> {
        let (version, archive) = split_header(bytes)?;
        if self.id == 0 {
            self.id = next_arena_id();
        }
        let before = self.bytes.len();
        let start = before.next_multiple_of(16);
        self.bytes.resize(start, 0);
        self.bytes.extend_from_slice(archive);
        let at = CheckedAt {
            arena: self.id,
            version,
            start,
            end: self.bytes.len(),
        };
        if version == RECORD_VERSION {
            if let Err(e) =
                rkyv::access::<ArchivedLogRecord, rkyv::rancor::Error>(&self.bytes[start..])
            {
                self.bytes.resize(before, 0);
                return Err(DecodeError::Invalid(e.to_string()));
            }
        }
        Ok(at)
    }

    /// Calls `f` with the view of the record [`CheckedArena::check`] put at `at`: a record of
    /// the current version read in place without validating it again, an older one decoded
    /// (and so validated) as [`decode_record`] does. A position this arena did not give out
    /// (another arena's, or from before a clear) is an error.
    pub fn read<R>(
        &self,
        at: CheckedAt,
        f: impl FnOnce(RecordView<'_>) -> R,
    ) -> Result<R, DecodeError> {
        let archive = match self.bytes.get(at.start..at.end) {
            Some(archive) if at.arena == self.id && self.id != 0 => archive,
            _ => {
                return Err(DecodeError::Invalid(
                    "a checked record read from an arena that did not check it".into(),
                ))
            }
        };
        if at.version != RECORD_VERSION {
            return decode_archive(at.version, archive).map(|r| f(RecordView::Older(r)));
        }
        // SAFETY: `at` names this arena's current generation (`at.arena == self.id`), so it
        // was made by `check` on this arena since its last clear, after
        // `rkyv::access::<ArchivedLogRecord>` returned `Ok` for exactly `start..end`. Those
        // bytes have not changed since: the field is private, `check` only appends after
        // them (or truncates back to where they end, on a refused record) and `clear` starts
        // a new generation. They sit at the same 16-aligned offset of an `AlignedVec<16>`
        // (moving or growing the vector keeps offsets and the 16-byte base alignment), so
        // rkyv reads exactly the archive it validated.
        let archived = unsafe { rkyv::access_unchecked::<ArchivedLogRecord>(archive) };
        Ok(f(RecordView::Current(archived)))
    }
}

/// The version and the archive of `bytes`, after checking the header (a version this build
/// reads, the archive length it gives).
fn split_header(bytes: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let found = u16::from_le_bytes([bytes[0], bytes[1]]);
    if found != RECORD_VERSION && found != v2::VERSION && found != v3::VERSION {
        return Err(DecodeError::Version { found });
    }
    let len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    if bytes.len() - HEADER_LEN != len {
        return Err(DecodeError::Length {
            header: len,
            actual: bytes.len() - HEADER_LEN,
        });
    }
    Ok((found, &bytes[HEADER_LEN..]))
}

/// Copies `archive` into the thread's aligned buffer and calls `f` on the copy.
fn with_aligned_archive<R>(
    archive: &[u8],
    f: impl FnOnce(&[u8]) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    // rkyv needs the archive aligned; copying into an aligned buffer keeps any input safe.
    // The buffer is the thread's, reused (replay decodes millions of records: no allocation
    // per record).
    ALIGNED.with(|cell| {
        let mut fresh = rkyv::util::AlignedVec::<16>::new();
        // Re-entrance cannot happen (nothing below decodes again); fall back to a fresh
        // buffer rather than panic if it ever did.
        let mut guard = cell.try_borrow_mut();
        let aligned = match guard.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut fresh,
        };
        aligned.clear();
        aligned.extend_from_slice(archive);
        if aligned.capacity() > MAX_KEPT_SCRATCH {
            // A huge record once should not pin its buffer for the thread's life.
            let done = f(aligned);
            *aligned = rkyv::util::AlignedVec::new();
            return done;
        }
        f(aligned)
    })
}

/// Checks the header of `bytes`, copies the archive into the thread's aligned buffer and
/// calls `decode(version, archive)` on it.
fn with_aligned<F>(bytes: &[u8], decode: F) -> Result<LogRecord, DecodeError>
where
    F: FnOnce(u16, &[u8]) -> Result<LogRecord, DecodeError>,
{
    let (version, archive) = split_header(bytes)?;
    with_aligned_archive(archive, |aligned| decode(version, aligned))
}

/// Largest decode buffer a thread keeps between records, in bytes.
const MAX_KEPT_SCRATCH: usize = 64 << 10;

thread_local! {
    /// The thread's aligned copy of the record being decoded.
    static ALIGNED: std::cell::RefCell<rkyv::util::AlignedVec<16>> =
        std::cell::RefCell::new(rkyv::util::AlignedVec::new());
}

/// Validates and deserializes an aligned archive of record version `version`.
fn decode_archive(version: u16, aligned: &[u8]) -> Result<LogRecord, DecodeError> {
    if version == v2::VERSION {
        return rkyv::from_bytes::<v2::LogRecordV2, rkyv::rancor::Error>(aligned)
            .map(LogRecord::from)
            .map_err(|e| DecodeError::Invalid(e.to_string()));
    }
    if version == v3::VERSION {
        return rkyv::from_bytes::<v3::LogRecordV3, rkyv::rancor::Error>(aligned)
            .map(LogRecord::from)
            .map_err(|e| DecodeError::Invalid(e.to_string()));
    }
    rkyv::from_bytes::<LogRecord, rkyv::rancor::Error>(aligned)
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

    /// Encoding in place gives the bytes of `rkyv::to_bytes` behind the header, whatever the
    /// buffer held before (archive positions count from the archive's start).
    #[test]
    fn encodes_in_place_like_to_bytes() {
        let archive =
            rkyv::to_bytes::<rkyv::rancor::Error>(&sample()).unwrap_or_else(|e| panic!("{e}"));
        for prefix in 0..19 {
            let mut buf = vec![0xAB; prefix];
            encode_record(&sample(), &mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&buf[..prefix], &vec![0xAB; prefix][..]);
            let rec = &buf[prefix..];
            assert_eq!(&rec[..2], &RECORD_VERSION.to_le_bytes());
            assert_eq!(&rec[2..6], &(archive.len() as u32).to_le_bytes());
            assert_eq!(&rec[HEADER_LEN..], &archive[..]);
            assert_eq!(
                decode_record(rec).unwrap_or_else(|e| panic!("{e}")),
                sample()
            );
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
                key: None,
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

    /// `check_record` and `CheckedArena::check` accept exactly what `with_record` accepts, and
    /// the view read in place without a second validation after `CheckedArena::check` is the
    /// record `decode_record` gives: intact, every truncation and every bit flip (a corrupt
    /// archive is an error, never a panic), several records in one arena at odd lengths.
    #[test]
    fn checked_records_read_like_validated_ones() {
        let mut buf = Vec::new();
        encode_record(&sample(), &mut buf).unwrap_or_else(|e| panic!("{e}"));
        let owned = |v: RecordView<'_>| v.into_record().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_record(&buf).ok(), Some(Checked::Current));
        let mut variants: Vec<Vec<u8>> = (0..buf.len()).map(|len| buf[..len].to_vec()).collect();
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                variants.push(b);
            }
        }
        variants.push(buf.clone());
        let mut arena = CheckedArena::new();
        let mut kept = Vec::new();
        for b in &variants {
            let len_before = arena.len();
            let checked = check_record(b);
            let into = arena.check(b);
            let validated = with_record(b, owned);
            assert_eq!(checked.is_ok(), validated.is_ok(), "{b:?}");
            assert_eq!(into.is_ok(), validated.is_ok(), "{b:?}");
            assert_eq!(decode_record(b).ok(), validated.as_ref().ok().cloned());
            match into {
                Ok(at) => kept.push((at, validated.unwrap_or_else(|e| panic!("{e}")))),
                Err(_) => assert_eq!(arena.len(), len_before, "a refused record stays out"),
            }
        }
        assert!(kept.len() > 1, "the intact record and some flips are valid");
        // Read back after every later append (the arena grew and may have moved).
        for (at, expected) in kept {
            let read = arena.read(at, owned);
            assert_eq!(read.ok(), Some(expected));
        }
        // A position of another arena, or of this one before a clear, does not read.
        let mut other = CheckedArena::new();
        let at = other.check(&buf).unwrap_or_else(|e| panic!("{e}"));
        assert!(arena.read(at, owned).is_err(), "another arena's position");
        assert!(other.read(at, owned).is_ok());
        other.clear();
        assert!(
            other.read(at, owned).is_err(),
            "a position from before the clear"
        );
        let again = other.check(&buf).unwrap_or_else(|e| panic!("{e}"));
        assert!(other.read(again, owned).is_ok());
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

    /// An extension written by a version-3 build reads as an extension without a key, and a
    /// keyed extension round-trips.
    #[test]
    fn reads_version_3_extensions() {
        let id = ReservationId::compose(0, 1);
        let old = v3::LogRecordV3 {
            shard: 0,
            seq: 2,
            event: v3::EventV3::Extended {
                id,
                expires_at_ms: 9_000,
                extensions: 1,
                at_ms: 4,
            },
        };
        let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&old).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = v3::VERSION.to_le_bytes().to_vec();
        buf.extend_from_slice(&(archive.len() as u32).to_le_bytes());
        buf.extend_from_slice(&archive);
        let expected = LogRecord {
            shard: 0,
            seq: 2,
            event: Event::Extended {
                id,
                expires_at_ms: 9_000,
                extensions: 1,
                key: None,
                at_ms: 4,
            },
        };
        assert_eq!(
            decode_record(&buf).unwrap_or_else(|e| panic!("{e}")),
            expected
        );
        let keyed = LogRecord {
            event: Event::Extended {
                id,
                expires_at_ms: 9_000,
                extensions: 1,
                key: Some(crate::event::RequestKey {
                    key: crate::ids::ScopedKey::new(
                        crate::ids::KeyOwner::Credential(7),
                        crate::ids::IdempotencyKey::new("k-1").unwrap_or_else(|e| panic!("{e}")),
                    ),
                    request_hash: 60_000,
                }),
                at_ms: 4,
            },
            ..expected
        };
        buf.clear();
        encode_record(&keyed, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode_record(&buf).unwrap_or_else(|e| panic!("{e}")), keyed);
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

    /// Records of every shape the direct encoder (`event::direct`, ADR 0054) takes, and of
    /// the shapes next to it that it leaves to rkyv: ids and references of every string
    /// length around the inline capacity (8 bytes), with and without a key or a group, all
    /// three release reasons, at several buffer offsets.
    fn direct_shapes() -> Vec<LogRecord> {
        use crate::event::Group;
        use crate::ids::{IdempotencyKey, KeyOwner, OrderId, ScopedKey};
        let text = |n: usize| -> String {
            "abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)[..n].to_string()
        };
        let mut records = Vec::new();
        for n in 1..=40 {
            let buyer = BuyerId::new(text(n)).unwrap_or_else(|e| panic!("{e}"));
            let sku = SkuId::new(text(41 - n)).unwrap_or_else(|e| panic!("{e}"));
            let key = (n % 3 == 0).then(|| {
                ScopedKey::new(
                    if n % 2 == 0 {
                        KeyOwner::Credential(n as u64)
                    } else {
                        KeyOwner::Buyer(buyer.clone())
                    },
                    IdempotencyKey::new(text(n % 24 + 1)).unwrap_or_else(|e| panic!("{e}")),
                )
            });
            let group = (n % 4 == 1).then_some(Group {
                shards_mask: 0b101 << n,
                line_positions: n as u64,
            });
            let line = |q: u32| Line {
                sku: sku.clone(),
                qty: q,
                unit_price_cents: 1_999 * n as u64,
            };
            for lines in [vec![line(1)], vec![], vec![line(2), line(3)]] {
                records.push(LogRecord {
                    shard: (n % 5) as u16,
                    seq: 1 << n,
                    event: Event::Reserved {
                        id: ReservationId::compose(3, n as u64 * 77),
                        buyer: buyer.clone(),
                        lines,
                        expires_at_ms: u64::MAX - n as u64,
                        idempotency_key: key.clone(),
                        request_hash: 0x9E37_79B9_7F4A_7C15 ^ n as u64,
                        group,
                        at_ms: n as u64,
                    },
                });
            }
            records.push(LogRecord {
                shard: 2,
                seq: n as u64,
                event: Event::Confirmed {
                    id: ReservationId::compose(2, n as u64),
                    order: OrderId::compose(2, n as u64 + 1),
                    payment_ref: text(n).as_str().into(),
                    at_ms: 1_700_000_000_000 + n as u64,
                },
            });
            for reason in [
                ReleaseReason::Cancelled,
                ReleaseReason::Expired,
                ReleaseReason::Aborted,
            ] {
                records.push(LogRecord {
                    shard: 1,
                    seq: n as u64 * 3,
                    event: Event::Released {
                        id: ReservationId::compose(1, n as u64),
                        reason,
                        at_ms: 9 * n as u64,
                    },
                });
            }
        }
        records
    }

    /// The direct encoder writes exactly the bytes of `rkyv::to_bytes` (the log format is
    /// unchanged: no record version moves), at any offset in the buffer, and they decode to
    /// the record.
    #[test]
    fn direct_encoding_matches_rkyv_byte_for_byte() {
        let records = direct_shapes();
        assert_eq!(records.len(), 40 * 7);
        for (i, record) in records.iter().enumerate() {
            let archive =
                rkyv::to_bytes::<rkyv::rancor::Error>(record).unwrap_or_else(|e| panic!("{e}"));
            let prefix = i % 11;
            let mut buf = vec![0xCD; prefix];
            encode_record(record, &mut buf).unwrap_or_else(|e| panic!("{e}"));
            let rec = &buf[prefix..];
            assert_eq!(
                &rec[2..6],
                &(archive.len() as u32).to_le_bytes(),
                "record {i}"
            );
            assert_eq!(&rec[HEADER_LEN..], &archive[..], "record {i}: {record:?}");
            assert_eq!(
                &decode_record(rec).unwrap_or_else(|e| panic!("{e}")),
                record
            );
        }
    }

    /// Two records back to back in one buffer (as the runtime's commit buffer holds them)
    /// each equal their own `rkyv::to_bytes`: the direct encoder counts positions from its
    /// record's start, not the buffer's.
    #[test]
    fn direct_encoding_counts_from_each_records_start() {
        let records = direct_shapes();
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for record in &records {
            starts.push(buf.len());
            encode_record(record, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        }
        starts.push(buf.len());
        for (record, at) in records.iter().zip(starts.windows(2)) {
            let archive =
                rkyv::to_bytes::<rkyv::rancor::Error>(record).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&buf[at[0] + HEADER_LEN..at[1]], &archive[..]);
        }
    }
}

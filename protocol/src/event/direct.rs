//! The records of every sale (`Reserved` with one line, `Confirmed`, `Released`) serialized
//! without rkyv's generic driver (ADR 0054): the same serialize and resolve steps, in the same
//! order, so the bytes are those of `rkyv::to_bytes` (tests `direct_encoding_*` in
//! `codec`), but no scratch arena (the one line's resolver lives on the stack instead of in
//! the thread's arena) and no dispatch over every event variant.

use rkyv::rancor::{Error, Strategy};
use rkyv::ser::{Writer, WriterExt};
use rkyv::vec::VecResolver;
use rkyv::Serialize;

use super::{ArchivedLine, ArchivedLogRecord, Event, EventResolver, LogRecord, LogRecordResolver};

/// A writer that pads with zeros to an alignment of at most 8 bytes without a variable-length
/// copy (rkyv's `WriterExt::align` writes a slice of zeros of the pad's length: a `memset`
/// call). The bytes are the same: zeros up to the next multiple of `align`.
pub(crate) trait PadZeros: Writer<Error> {
    /// Pads to the next multiple of `align` (a power of two, at most 8) and returns the
    /// position reached, as `WriterExt::align` does.
    fn pad_zeros_to(&mut self, align: usize) -> usize;
}

/// The alignment of an archived line and of the archived record, which [`PadZeros`] pads to.
const _: () = assert!(
    std::mem::align_of::<ArchivedLine>() <= 8 && std::mem::align_of::<ArchivedLogRecord>() <= 8
);

/// Serializes `record` as `rkyv::api::serialize_using` would, if it is one of the records
/// this function knows (`Reserved` with exactly one line, `Confirmed`, `Released`); returns
/// `None`, having written nothing, for any other record (the caller takes rkyv's generic
/// path). Every field is serialized by its own `Serialize` impl and the root resolved by the
/// derived `LogRecord::resolve`, in the derive's field order.
#[inline]
pub(crate) fn serialize_common<W: PadZeros>(
    record: &LogRecord,
    ser: &mut Strategy<W, Error>,
) -> Option<Result<(), Error>> {
    match &record.event {
        Event::Reserved { lines, .. } if lines.len() == 1 => {}
        Event::Confirmed { .. } | Event::Released { .. } => {}
        _ => return None,
    }
    Some(serialize_known(record, ser))
}

/// The body of [`serialize_common`] for a record it accepted (any other event is left to
/// rkyv's generic path, which the caller takes on `None`).
#[inline(always)]
fn serialize_known<W: PadZeros>(
    record: &LogRecord,
    ser: &mut Strategy<W, Error>,
) -> Result<(), Error> {
    // `LogRecord`'s derived `serialize`: its fields in order (`shard` and `seq` are plain
    // integers: nothing written, a unit resolver), then `event`'s.
    record.shard.serialize(ser)?;
    record.seq.serialize(ser)?;
    let event = match &record.event {
        Event::Reserved {
            id,
            buyer,
            lines,
            expires_at_ms,
            idempotency_key,
            request_hash,
            group,
            at_ms,
        } if lines.len() == 1 => {
            let id = id.serialize(ser)?;
            let buyer = buyer.serialize(ser)?;
            // `Vec<Line>`'s `serialize` (`<[Line]>::serialize_unsized`) for one line: its
            // out-of-line part, the alignment, then the line resolved in place (the resolver
            // on the stack instead of in the arena's scratch vector).
            let line = &lines[0];
            let line_resolver = line.serialize(ser)?;
            let lines_pos = ser.pad_zeros_to(std::mem::align_of::<ArchivedLine>());
            // SAFETY: `line_resolver` is the result of serializing `line`, and the writer was
            // just aligned for an `ArchivedLine` (the contract of `resolve_aligned`).
            unsafe { ser.resolve_aligned(line, line_resolver)? };
            EventResolver::Reserved {
                id,
                buyer,
                lines: VecResolver::from_pos(lines_pos),
                expires_at_ms: expires_at_ms.serialize(ser)?,
                // `Option`'s `serialize`, spelled out: rkyv's is a call per field.
                idempotency_key: match idempotency_key {
                    None => None,
                    Some(key) => Some(key.serialize(ser)?),
                },
                request_hash: request_hash.serialize(ser)?,
                group: match group {
                    None => None,
                    Some(group) => Some(group.serialize(ser)?),
                },
                at_ms: at_ms.serialize(ser)?,
            }
        }
        Event::Confirmed {
            id,
            order,
            payment_ref,
            at_ms,
        } => EventResolver::Confirmed {
            id: id.serialize(ser)?,
            order: order.serialize(ser)?,
            payment_ref: payment_ref.serialize(ser)?,
            at_ms: at_ms.serialize(ser)?,
        },
        Event::Released { id, reason, at_ms } => EventResolver::Released {
            id: id.serialize(ser)?,
            reason: reason.serialize(ser)?,
            at_ms: at_ms.serialize(ser)?,
        },
        // Not reached: `serialize_common` checked the shape before anything was written.
        _ => return Err(unexpected_shape()),
    };
    // `SerializeUnsized for T: Serialize`: align for the root, then resolve it in place.
    ser.pad_zeros_to(std::mem::align_of::<ArchivedLogRecord>());
    // SAFETY: the resolver is the result of serializing `record` field by field as its
    // derived `serialize` does, and the writer was just aligned for an `ArchivedLogRecord`.
    unsafe {
        ser.resolve_aligned(
            record,
            LogRecordResolver {
                shard: (),
                seq: (),
                event,
            },
        )?
    };
    Ok(())
}

/// The error for a record [`serialize_known`] does not handle (not reached: see there).
#[cold]
fn unexpected_shape() -> Error {
    <Error as rkyv::rancor::Source>::new(UnexpectedShape)
}

/// A record of a shape the direct encoder does not handle reached it.
#[derive(Debug)]
struct UnexpectedShape;

impl std::fmt::Display for UnexpectedShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("direct record encoder: unexpected record shape")
    }
}

impl std::error::Error for UnexpectedShape {}

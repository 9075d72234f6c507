//! Target `log_record`: `flashsale_protocol::decode_record` over arbitrary bytes.
//!
//! Input: the bytes of one record as stored in a log frame.
//!
//! Properties: decoding never panics (nor reads out of bounds, under a sanitizer); a record that
//! decodes re-encodes, and the re-encoded bytes decode to the same record; encoding a decoded
//! record is canonical (encoding it again gives the same bytes); replay's validation on the
//! reader thread accepts what `decode_record` decodes: `check_record` never refuses a record
//! that decodes and never passes a current-version record that does not (an older version is
//! only validated when read, so `Checked::Older` claims nothing), and a record validated into a
//! `CheckedArena` and read back is exactly `decode_record`'s record, or an error when that is.

use flashsale_protocol::{
    check_record, decode_record, encode_record, Checked, CheckedArena, DecodeError, LogRecord,
};

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let checked = check_record(data);
    let decoded = decode_record(data);
    match &checked {
        Ok(Checked::Current) => assert!(
            decoded.is_ok(),
            "check_record passed a current-version record decode_record refuses: {decoded:?}"
        ),
        // An older version is validated (and converted) when read, not by check_record.
        Ok(Checked::Older) => {}
        Err(e) => assert!(
            decoded.is_err(),
            "check_record refused a record decode_record decodes: {e}"
        ),
    }
    let mut arena = CheckedArena::new();
    let via_arena: Result<LogRecord, DecodeError> = arena
        .check(data)
        .and_then(|at| arena.read(at, |view| view.into_record()))
        .and_then(|record| record);
    assert_eq!(
        via_arena.as_ref().ok(),
        decoded.as_ref().ok(),
        "the checked arena and decode_record disagree: {via_arena:?} vs {decoded:?}"
    );
    let Ok(record) = decoded else {
        return;
    };
    let once = encode(&record);
    let again = decode_record(&once)
        .unwrap_or_else(|e| panic!("a decoded record re-encodes to undecodable bytes: {e}"));
    assert_eq!(again, record, "re-encoded record decodes to another record");
    assert_eq!(encode(&again), once, "record encoding is not canonical");
}

fn encode(record: &LogRecord) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(record, &mut out)
        .unwrap_or_else(|e| panic!("a decoded record does not re-encode: {e}"));
    out
}

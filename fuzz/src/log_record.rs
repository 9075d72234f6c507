//! Target `log_record`: `flashsale_protocol::decode_record` over arbitrary bytes.
//!
//! Input: the bytes of one record as stored in a log frame.
//!
//! Properties: decoding never panics (nor reads out of bounds, under a sanitizer); a record that
//! decodes re-encodes, and the re-encoded bytes decode to the same record; encoding a decoded
//! record is canonical (encoding it again gives the same bytes); replay's validation on the
//! reader thread (`check_record`) accepts exactly what `decode_record` decodes.

use flashsale_protocol::{check_record, decode_record, encode_record, LogRecord};

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let checked = check_record(data);
    let decoded = decode_record(data);
    assert_eq!(
        checked.is_ok(),
        decoded.is_ok(),
        "check_record and decode_record disagree: {checked:?} vs {decoded:?}"
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

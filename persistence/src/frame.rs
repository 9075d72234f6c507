//! The on-disk frame of one log record: `[len u32][crc32c u32][seq u64][bytes]`, little endian.
//!
//! `len` counts the record bytes only; the checksum covers `len`, `seq` and the bytes, so a
//! flipped bit anywhere in a frame is detected. A header of zeros marks the end of written
//! data (segments are pre-allocated with zeros, and no record is empty).

/// Bytes in front of every record.
pub const FRAME_HEADER_LEN: usize = 16;

/// Largest record a frame may carry (16 MiB): anything longer is treated as garbage.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// Appends the frame of `record` at `seq` to `out`.
pub fn encode_frame(seq: u64, record: &[u8], out: &mut Vec<u8>) {
    assert!(!record.is_empty(), "log records are never empty");
    assert!(
        record.len() <= MAX_RECORD_LEN,
        "record above MAX_RECORD_LEN"
    );
    let len = record.len() as u32;
    let crc = checksum(len, seq, record);
    out.reserve(FRAME_HEADER_LEN + record.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(record);
}

/// `len` and `seq` as the checksum reads them (little endian, one after the other), 8-byte
/// aligned so the CRC runs over a whole word and four bytes instead of byte by byte.
#[repr(align(8))]
struct ChecksumHead([u8; 12]);

fn checksum(len: u32, seq: u64, record: &[u8]) -> u32 {
    let mut head = ChecksumHead([0; 12]);
    head.0[..4].copy_from_slice(&len.to_le_bytes());
    head.0[4..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head.0), record)
}

/// What [`parse_frame`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid frame: its sequence number, the record's byte range and the frame's total length.
    Frame {
        /// Sequence number.
        seq: u64,
        /// Start of the record bytes in the buffer.
        start: usize,
        /// Total frame length (header + record).
        frame_len: usize,
    },
    /// End of written data: the buffer is empty or starts with an all-zero header.
    End,
    /// A short, oversized or checksum-failing frame.
    Invalid,
}

/// Parses the frame at the start of `buf`. Never panics on any input.
pub fn parse_frame(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::End;
    }
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else {
        return if buf.iter().all(|&b| b == 0) {
            Parsed::End
        } else {
            Parsed::Invalid
        };
    };
    let (len, crc, seq) = header_fields(header);
    if len == 0 && crc == 0 && seq == 0 {
        return Parsed::End;
    }
    if len == 0 || len as usize > MAX_RECORD_LEN {
        return Parsed::Invalid;
    }
    let frame_len = FRAME_HEADER_LEN + len as usize;
    let Some(record) = buf.get(FRAME_HEADER_LEN..frame_len) else {
        return Parsed::Invalid;
    };
    if checksum(len, seq, record) != crc {
        return Parsed::Invalid;
    }
    Parsed::Frame {
        seq,
        start: FRAME_HEADER_LEN,
        frame_len,
    }
}

fn header_fields(h: &[u8]) -> (u32, u32, u64) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    let mut seq = [0u8; 8];
    len.copy_from_slice(&h[0..4]);
    crc.copy_from_slice(&h[4..8]);
    seq.copy_from_slice(&h[8..16]);
    (
        u32::from_le_bytes(len),
        u32::from_le_bytes(crc),
        u64::from_le_bytes(seq),
    )
}

/// Whether any valid frame with a sequence number in `(after, after + window]` starts anywhere
/// in `buf` (byte by byte). Used after a bad frame to tell a torn tail (nothing valid follows)
/// from corruption in the middle of the log (valid records follow).
pub fn valid_frame_follows(buf: &[u8], after: u64, window: u64) -> bool {
    if buf.iter().all(|&b| b == 0) {
        return false;
    }
    let mut off = 0;
    while off + FRAME_HEADER_LEN <= buf.len() {
        let (len, _, seq) = header_fields(&buf[off..off + FRAME_HEADER_LEN]);
        if seq > after && seq - after <= window && len != 0 && len as usize <= MAX_RECORD_LEN {
            if let Parsed::Frame { .. } = parse_frame(&buf[off..]) {
                return true;
            }
        }
        off += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_corruption_is_detected() {
        let mut buf = Vec::new();
        encode_frame(7, b"hello world", &mut buf);
        assert_eq!(
            parse_frame(&buf),
            Parsed::Frame {
                seq: 7,
                start: FRAME_HEADER_LEN,
                frame_len: buf.len()
            }
        );
        for cut in 1..buf.len() {
            assert_eq!(parse_frame(&buf[..cut]), Parsed::Invalid, "cut {cut}");
        }
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert_ne!(
                    parse_frame(&b),
                    parse_frame(&buf),
                    "flip at byte {i} bit {bit} undetected"
                );
            }
        }
        assert_eq!(parse_frame(&[0u8; 40]), Parsed::End);
        assert_eq!(parse_frame(&[]), Parsed::End);
    }

    /// The on-disk checksum is CRC32C over `len ‖ seq ‖ record` (little endian), however it
    /// is computed: logs written before keep reading.
    #[test]
    fn checksum_is_crc32c_of_len_seq_and_record() {
        for (seq, record) in [
            (1u64, &b"x"[..]),
            (u64::MAX, &[7u8; 300][..]),
            (42, b"hello"),
        ] {
            let mut covered = (record.len() as u32).to_le_bytes().to_vec();
            covered.extend_from_slice(&seq.to_le_bytes());
            covered.extend_from_slice(record);
            let mut frame = Vec::new();
            encode_frame(seq, record, &mut frame);
            assert_eq!(&frame[4..8], &crc32c::crc32c(&covered).to_le_bytes());
        }
    }

    #[test]
    fn finds_valid_frames_after_garbage() {
        let mut buf = vec![0xAB; 13];
        encode_frame(5, b"rec", &mut buf);
        assert!(valid_frame_follows(&buf, 4, 10));
        assert!(!valid_frame_follows(&buf, 5, 10));
        assert!(!valid_frame_follows(&[0u8; 100], 0, 10));
        assert!(!valid_frame_follows(&[0xFFu8; 100], 0, u64::MAX));
    }
}

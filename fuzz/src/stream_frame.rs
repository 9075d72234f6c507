//! Target `stream_frame`: the stock stream's incremental `FrameDecoder` over arbitrary bytes.
//!
//! Input: a control byte, then the bytes of a stream direction.
//! - bit 0: 0 = client → server frames ([`ClientFrame`]), 1 = server → client ([`ServerFrame`]);
//! - bits 1–3: how the bytes are cut into `feed` calls (1 to 4096 bytes at a time);
//! - bits 4–5: the decoder's maximum frame length (`MAX_FRAME_LEN`, 4096, 64 or 8 bytes).
//!
//! Properties: decoding never panics; the decoder yields the same frames and the same error
//! whether the bytes arrive at once or in pieces; every frame it yields passes `validate`;
//! each frame re-encodes canonically and the encoding decodes to the same frame, alone.

use std::fmt::Debug;

use flashsale_protocol::stream::{
    encode_frame, ClientFrame, FrameDecoder, FrameError, ServerFrame, WireFrame, LEN_PREFIX,
    MAX_FRAME_LEN,
};

/// Sizes of the pieces the input is fed in, selected by bits 1–3 of the control byte.
const CHUNKS: [usize; 8] = [1, 2, 3, 5, 8, 13, 64, 4096];

/// Decoder maximum frame lengths, selected by bits 4–5 of the control byte.
const MAX_LENS: [usize; 4] = [MAX_FRAME_LEN, 4096, 64, 8];

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let chunk = CHUNKS[usize::from((ctl >> 1) & 7)];
    let max_len = MAX_LENS[usize::from((ctl >> 4) & 3)];
    if ctl & 1 == 0 {
        run::<ClientFrame>(bytes, chunk, max_len, ClientFrame::validate);
    } else {
        run::<ServerFrame>(bytes, chunk, max_len, ServerFrame::validate);
    }
}

/// What a decoder made of a byte stream: the frames, the error that ended it (if any) and the
/// bytes left buffered.
type Outcome<F> = (Vec<F>, Option<FrameError>, usize);

fn run<F: WireFrame + PartialEq + Debug>(
    bytes: &[u8],
    chunk: usize,
    max_len: usize,
    validate: fn(&F) -> Result<(), String>,
) {
    let whole = decode::<F>(bytes, bytes.len().max(1), max_len);
    let pieces = decode::<F>(bytes, chunk, max_len);
    assert_eq!(
        whole, pieces,
        "feeding {chunk} bytes at a time changed the outcome"
    );
    let (frames, error, buffered) = whole;
    if error.is_some() {
        assert_eq!(buffered, 0, "a failed decoder still buffers bytes");
    }
    let mut consumed = 0;
    for frame in &frames {
        if let Err(e) = validate(frame) {
            panic!("decoder yielded an invalid frame ({e}): {frame:?}");
        }
        let encoded = encode(frame);
        consumed += LEN_PREFIX;
        let (again, error, buffered) = decode::<F>(&encoded, encoded.len(), usize::MAX);
        assert_eq!(error, None, "re-encoded {frame:?} does not decode");
        assert_eq!(buffered, 0, "re-encoded {frame:?} leaves bytes behind");
        assert_eq!(again.as_slice(), std::slice::from_ref(frame), "round trip");
        assert_eq!(
            encode(&again[0]),
            encoded,
            "frame encoding is not canonical"
        );
    }
    assert!(
        consumed + buffered <= bytes.len(),
        "the decoder yielded more than it was fed"
    );
}

fn decode<F: WireFrame + PartialEq + Debug>(
    bytes: &[u8],
    chunk: usize,
    max_len: usize,
) -> Outcome<F> {
    let mut decoder = FrameDecoder::<F>::new(max_len);
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(
                        decoder.next_frame(),
                        Err(e.clone()),
                        "decoder error is sticky"
                    );
                    return (frames, Some(e), decoder.buffered());
                }
            }
        }
    }
    (frames, None, decoder.buffered())
}

fn encode<F: WireFrame>(frame: &F) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(frame, u32::MAX as usize, &mut out)
        .unwrap_or_else(|e| panic!("a decoded frame does not re-encode: {e}"));
    out
}

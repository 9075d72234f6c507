//! Sans-IO framing: `u32` LE length prefix + validated rkyv archive, and an incremental decoder.

use std::marker::PhantomData;

use rkyv::util::AlignedVec;

use super::frame::{ClientFrame, ServerFrame};

/// Bytes of the length prefix in front of every frame body.
pub const LEN_PREFIX: usize = 4;

/// Why bytes could not be decoded into a frame. After an error the decoder stays failed: the
/// connection must be closed with [`FrameError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces a body longer than allowed.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Announced body length in bytes.
        len: usize,
        /// Maximum body length in bytes.
        max: usize,
    },
    /// The body is not a valid archive of the expected frame type, or breaks an invariant.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The error code to close the connection with.
    pub fn code(&self) -> super::ErrorCode {
        match self {
            FrameError::TooLarge { .. } => super::ErrorCode::FrameTooLarge,
            FrameError::Malformed(_) => super::ErrorCode::MalformedFrame,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The archive is larger than the maximum frame length.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Body length in bytes.
        len: usize,
        /// Maximum body length in bytes.
        max: usize,
    },
    /// rkyv failed to serialize.
    #[error("cannot encode frame: {0}")]
    Archive(String),
}

/// A frame type that travels on the stream: [`ClientFrame`] or [`ServerFrame`].
pub trait WireFrame: Sized {
    /// Serializes the frame body.
    fn to_archive(&self) -> Result<AlignedVec, String>;
    /// Validates and deserializes a frame body (already copied into aligned memory).
    fn from_archive(body: &[u8]) -> Result<Self, String>;
    /// Checks invariants beyond the archive's structure.
    fn check(&self) -> Result<(), String>;
}

macro_rules! wire_frame {
    ($t:ty) => {
        impl WireFrame for $t {
            fn to_archive(&self) -> Result<AlignedVec, String> {
                rkyv::to_bytes::<rkyv::rancor::Error>(self).map_err(|e| e.to_string())
            }
            fn from_archive(body: &[u8]) -> Result<Self, String> {
                // rkyv's detailed errors quote memory addresses: never send those to the peer
                // (the message ends up in the `Error` frame and the close reason).
                rkyv::from_bytes::<$t, rkyv::rancor::Failure>(body)
                    .map_err(|_| format!("body is not a valid {} archive", stringify!($t)))
            }
            fn check(&self) -> Result<(), String> {
                self.validate()
            }
        }
    };
}
wire_frame!(ClientFrame);
wire_frame!(ServerFrame);

/// Appends `frame` (length prefix + body) to `out`, refusing bodies over `max_len` bytes.
pub fn encode_frame<F: WireFrame>(
    frame: &F,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let body = frame.to_archive().map_err(EncodeError::Archive)?;
    let too_large = EncodeError::TooLarge {
        len: body.len(),
        max: max_len,
    };
    if body.len() > max_len {
        return Err(too_large);
    }
    let len = u32::try_from(body.len()).map_err(|_| too_large)?;
    out.reserve(LEN_PREFIX + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// An incremental decoder: feed it bytes as they arrive, pull whole frames out.
///
/// It buffers at most one partial frame plus whatever was fed since the last pull; callers pull
/// every available frame after each feed. Oversized length prefixes are refused as soon as the
/// prefix is complete, before any body is buffered. Never panics on any input.
#[derive(Debug)]
pub struct FrameDecoder<F> {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    max_len: usize,
    aligned: AlignedVec,
    failed: Option<FrameError>,
    _frame: PhantomData<fn() -> F>,
}

impl<F: WireFrame> FrameDecoder<F> {
    /// A decoder refusing frame bodies longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_len,
            aligned: AlignedVec::new(),
            failed: None,
            _frame: PhantomData,
        }
    }

    /// Changes the largest accepted frame body (e.g. small until the peer authenticated).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet consumed by a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the error that ends the
    /// connection (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<F>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.try_next() {
            Ok(frame) => Ok(frame),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<F>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; LEN_PREFIX];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        let Some(body) = pending.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        // rkyv needs the archive aligned; copying into an aligned buffer keeps any input safe.
        self.aligned.clear();
        self.aligned.extend_from_slice(body);
        self.start += LEN_PREFIX + len;
        let frame = F::from_archive(&self.aligned).map_err(FrameError::Malformed)?;
        frame.check().map_err(FrameError::Malformed)?;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SkuId;
    use crate::stream::frame::{LevelEntry, ResumePoint, Subscription, UpdateFrame};
    use crate::stream::{ErrorCode, MAX_FRAME_LEN};

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap()
    }

    fn client_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::Hello {
                version: 1,
                token: "secret".into(),
                resume_from: Some(ResumePoint { epoch: 9, seq: 42 }),
            },
            ClientFrame::Hello {
                version: 1,
                token: String::new(),
                resume_from: None,
            },
            ClientFrame::Subscribe {
                subscription: Subscription::All,
            },
            ClientFrame::Subscribe {
                subscription: Subscription::Skus(vec![sku("tee"), sku("mug-2")]),
            },
        ]
    }

    fn server_frames() -> Vec<ServerFrame> {
        vec![
            ServerFrame::Welcome {
                version: 1,
                epoch: 7,
                head_seq: 100,
                heartbeat_ms: 1000,
            },
            ServerFrame::Error {
                code: ErrorCode::Unauthorized.as_u32(),
                message: "bad token".into(),
            },
            ServerFrame::Snapshot {
                seq: 100,
                levels: vec![LevelEntry {
                    sku: sku("tee"),
                    available: 5,
                    reserved: 2,
                    sold: 3,
                    seq: 99,
                    log_seq: 4_211,
                }],
                last: true,
            },
            ServerFrame::Resumed { seq: 80 },
            ServerFrame::Update(UpdateFrame {
                seq: 101,
                sku: sku("tee"),
                available: 4,
                reserved: 3,
                sold: 3,
                server_time_us: 1_700_000_000_000_000,
                log_seq: 4_212,
            }),
            ServerFrame::Heartbeat {
                seq: 101,
                server_time_us: 1,
            },
        ]
    }

    fn encode_all<F: WireFrame>(frames: &[F]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode_frame(f, MAX_FRAME_LEN, &mut out).unwrap();
        }
        out
    }

    fn decode_all<F: WireFrame>(bytes: &[u8], chunk: usize) -> Result<Vec<F>, FrameError> {
        let mut dec = FrameDecoder::<F>::new(MAX_FRAME_LEN);
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            dec.feed(piece);
            while let Some(f) = dec.next_frame()? {
                out.push(f);
            }
        }
        assert_eq!(dec.buffered(), 0, "leftover bytes");
        Ok(out)
    }

    #[test]
    fn frames_round_trip_in_any_chunking() {
        let cf = client_frames();
        let sf = server_frames();
        let cb = encode_all(&cf);
        let sb = encode_all(&sf);
        for chunk in [1, 2, 3, 7, 64, 10_000] {
            assert_eq!(decode_all::<ClientFrame>(&cb, chunk).unwrap(), cf);
            assert_eq!(decode_all::<ServerFrame>(&sb, chunk).unwrap(), sf);
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let mut dec = FrameDecoder::<ClientFrame>::new(1024);
        dec.feed(&2000u32.to_le_bytes());
        let err = dec.next_frame().unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: 2000,
                max: 1024
            }
        );
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        // Stays failed, buffers nothing more.
        dec.feed(&[0; 100]);
        assert_eq!(dec.buffered(), 0);
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let f = ClientFrame::Hello {
            version: 1,
            token: "x".repeat(500),
            resume_from: None,
        };
        let mut out = Vec::new();
        assert!(matches!(
            encode_frame(&f, 100, &mut out),
            Err(EncodeError::TooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn invalid_sku_inside_a_valid_archive_is_malformed() {
        // Forge a frame whose SKU breaks the alphabet (rkyv does not run SkuId::new).
        #[derive(rkyv::Archive, rkyv::Serialize)]
        enum ForgedClient {
            #[allow(dead_code)]
            Hello {
                version: u16,
                token: String,
                resume_from: Option<ResumePoint>,
            },
            Subscribe {
                subscription: ForgedSub,
            },
        }
        #[derive(rkyv::Archive, rkyv::Serialize)]
        enum ForgedSub {
            #[allow(dead_code)]
            All,
            Skus(Vec<String>),
        }
        let forged = ForgedClient::Subscribe {
            subscription: ForgedSub::Skus(vec!["bad sku!".into()]),
        };
        let body = rkyv::to_bytes::<rkyv::rancor::Error>(&forged).unwrap();
        let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let mut dec = FrameDecoder::<ClientFrame>::new(MAX_FRAME_LEN);
        dec.feed(&bytes);
        let err = dec.next_frame().unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
    }

    #[test]
    fn empty_or_huge_subscriptions_are_malformed() {
        let empty = ClientFrame::Subscribe {
            subscription: Subscription::Skus(vec![]),
        };
        let bytes = encode_all(&[empty]);
        assert!(matches!(
            decode_all::<ClientFrame>(&bytes, 100),
            Err(FrameError::Malformed(_))
        ));
        let huge = ClientFrame::Subscribe {
            subscription: Subscription::Skus(vec![sku("a"); MAX_SUBSCRIBED_SKUS_PLUS_ONE]),
        };
        let bytes = encode_all(&[huge]);
        assert!(decode_all::<ClientFrame>(&bytes, 100_000).is_err());
    }
    const MAX_SUBSCRIBED_SKUS_PLUS_ONE: usize = crate::stream::MAX_SUBSCRIBED_SKUS + 1;

    #[test]
    fn every_truncation_waits_and_every_bit_flip_is_safe() {
        let bytes = encode_all(&server_frames());
        for len in 0..bytes.len() {
            let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
            dec.feed(&bytes[..len]);
            // A prefix never yields more frames than it wholly contains, and never panics.
            while let Ok(Some(_)) = dec.next_frame() {}
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
                dec.feed(&b);
                for _ in 0..16 {
                    match dec.next_frame() {
                        Ok(Some(f)) => assert!(f.validate().is_ok()),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..3000 {
            let len = (rng(&mut seed) % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
            if round % 2 == 0 && bytes.len() >= 4 {
                // Plausible length prefix so the body reaches the archive validator.
                let body = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_le_bytes());
            }
            let mut c = FrameDecoder::<ClientFrame>::new(MAX_FRAME_LEN);
            let mut s = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
            c.feed(&bytes);
            s.feed(&bytes);
            for _ in 0..8 {
                if !matches!(c.next_frame(), Ok(Some(_))) {
                    break;
                }
            }
            for _ in 0..8 {
                if !matches!(s.next_frame(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }

    #[test]
    fn valid_frames_followed_by_garbage_yield_frames_then_an_error() {
        let mut bytes = encode_all(&client_frames());
        bytes.extend_from_slice(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let mut dec = FrameDecoder::<ClientFrame>::new(MAX_FRAME_LEN);
        dec.feed(&bytes);
        for expected in client_frames() {
            assert_eq!(dec.next_frame().unwrap(), Some(expected));
        }
        assert!(dec.next_frame().is_err());
        assert!(dec.next_frame().is_err(), "stays failed");
    }

    #[test]
    fn malformed_errors_quote_no_addresses() {
        // Found by the `stream_frame` fuzz target: rkyv's error text held heap addresses, so the
        // same bytes gave different errors (and leaked addresses to the peer).
        let mut bytes = encode_all(&[ServerFrame::Resumed { seq: 0 }]);
        bytes.extend_from_slice(&[0, 0, 0, 0]); // an empty body
        let errors: Vec<FrameError> = (0..2)
            .map(|_| {
                let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
                dec.feed(&bytes);
                assert_eq!(dec.next_frame(), Ok(Some(ServerFrame::Resumed { seq: 0 })));
                dec.next_frame().unwrap_err()
            })
            .collect();
        assert!(
            matches!(&errors[0], FrameError::Malformed(m) if !m.contains("0x")),
            "{errors:?}"
        );
        assert_eq!(errors[0], errors[1]);
    }

    #[test]
    fn a_client_frame_is_not_a_server_frame() {
        let bytes = encode_all(&[ClientFrame::Hello {
            version: 1,
            token: "t".into(),
            resume_from: None,
        }]);
        // Either refused or decoded into something valid; never a panic. Most layouts refuse.
        let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
        dec.feed(&bytes);
        if let Ok(Some(f)) = dec.next_frame() {
            assert!(f.validate().is_ok());
        }
    }
}

//! Writes the seed corpus `fuzz/corpus/<target>/`: valid log records, stream frames, segment
//! logs (raw and model inputs) and HTTP bodies, built with the project's own encoders. Every
//! seed is run through its target's `check` before it is written.
//!
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`

use std::path::{Path, PathBuf};

use flashsale_fuzz::input::Output;
use flashsale_fuzz::{http_body, log_record, segment_recovery, stream_frame};
use flashsale_persistence::frame::encode_frame as encode_log_frame;
use flashsale_protocol::event::Group;
use flashsale_protocol::stream::{
    encode_frame, ClientFrame, LevelEntry, ResumePoint, ServerFrame, Subscription, UpdateFrame,
    WireFrame, MAX_FRAME_LEN,
};
use flashsale_protocol::{
    encode_record, BuyerId, Event, IdempotencyKey, KeyOwner, Line, LogRecord, OrderId,
    ReleaseReason, ReservationId, ScopedKey, SkuId, SkuSpec,
};

type Check = fn(&[u8]);

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    total += write("log_record", &root, log_record::check, log_seeds());
    total += write("stream_frame", &root, stream_frame::check, stream_seeds());
    total += write(
        "segment_recovery",
        &root,
        segment_recovery::check,
        segment_seeds(),
    );
    total += write("http_body", &root, http_body::check, http_seeds());
    println!("wrote {total} seeds under {}", root.display());
}

/// Checks and writes `seeds` as `<root>/<target>/<name>`; returns how many.
fn write(target: &str, root: &Path, check: Check, seeds: Vec<(String, Vec<u8>)>) -> usize {
    let dir: PathBuf = root.join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, bytes) in &seeds {
        check(bytes);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    seeds.len()
}

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn buyer(s: &str) -> BuyerId {
    BuyerId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn records() -> Vec<(&'static str, LogRecord)> {
    let spec = SkuSpec {
        sku: sku("tee-black.L"),
        name: "Tee, black, L".into(),
        price_cents: 1999,
        stock: 1_000,
        per_buyer_limit: Some(2),
        sale_starts_at_ms: Some(1_795_255_200_000),
        sale_ends_at_ms: Some(1_795_258_800_000),
        reservation_ttl_ms: 600_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(600_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    };
    let key = IdempotencyKey::new("order-7f3a").unwrap_or_else(|e| panic!("{e}"));
    let events = vec![
        (
            "sku-upserted",
            Event::SkuUpserted {
                spec: spec.clone(),
                at_ms: 1_795_250_000_000,
            },
        ),
        (
            "sku-upserted-minimal",
            Event::SkuUpserted {
                spec: SkuSpec {
                    sku: sku("m"),
                    name: "m".into(),
                    price_cents: 0,
                    stock: 0,
                    per_buyer_limit: None,
                    sale_starts_at_ms: None,
                    sale_ends_at_ms: None,
                    reservation_ttl_ms: 1_000,
                    max_hold_ms: flashsale_protocol::default_max_hold_ms(1_000),
                    max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
                },
                at_ms: 0,
            },
        ),
        (
            "restocked",
            Event::Restocked {
                sku: sku("tee-black.L"),
                qty: 250,
                key: None,
                at_ms: 1_795_250_000_500,
            },
        ),
        (
            "reserved",
            Event::Reserved {
                id: ReservationId::compose(1, 9),
                buyer: buyer("alice"),
                lines: vec![Line {
                    sku: sku("tee-black.L"),
                    qty: 2,
                    unit_price_cents: 1999,
                }],
                expires_at_ms: 1_795_255_800_000,
                idempotency_key: None,
                request_hash: 42,
                group: None,
                at_ms: 1_795_255_200_000,
            },
        ),
        (
            "reserved-group-credential-key",
            Event::Reserved {
                id: ReservationId::compose(3, 77),
                buyer: buyer("bob@example.com"),
                lines: vec![
                    Line {
                        sku: sku("mug"),
                        qty: 1,
                        unit_price_cents: 1250,
                    },
                    Line {
                        sku: sku("cap_2"),
                        qty: 32,
                        unit_price_cents: 0,
                    },
                ],
                expires_at_ms: u64::MAX,
                idempotency_key: Some(ScopedKey::new(
                    KeyOwner::Credential(0xdead_beef),
                    key.clone(),
                )),
                request_hash: u64::MAX,
                group: Some(Group {
                    shards_mask: 0b1011,
                    line_positions: 0b101,
                }),
                at_ms: 1,
            },
        ),
        (
            "reserved-buyer-key",
            Event::Reserved {
                id: ReservationId::compose(0, 1),
                buyer: buyer("carol"),
                lines: vec![Line {
                    sku: sku("x"),
                    qty: 1_000_000,
                    unit_price_cents: (1 << 53) - 1,
                }],
                expires_at_ms: 10,
                idempotency_key: Some(ScopedKey::new(KeyOwner::Buyer(buyer("carol")), key)),
                request_hash: 7,
                group: None,
                at_ms: 5,
            },
        ),
        (
            "confirmed",
            Event::Confirmed {
                id: ReservationId::compose(1, 9),
                order: OrderId::compose(1, 4),
                payment_ref: "pay_3MtwBwLkdIwHu7ix".into(),
                at_ms: 1_795_255_260_000,
            },
        ),
        (
            "released-cancelled",
            Event::Released {
                id: ReservationId::compose(1, 10),
                reason: ReleaseReason::Cancelled,
                at_ms: 3,
            },
        ),
        (
            "released-expired",
            Event::Released {
                id: ReservationId::compose(2, 11),
                reason: ReleaseReason::Expired,
                at_ms: 4,
            },
        ),
        (
            "released-aborted",
            Event::Released {
                id: ReservationId::compose(0, 12),
                reason: ReleaseReason::Aborted,
                at_ms: 5,
            },
        ),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, (name, event))| {
            (
                name,
                LogRecord {
                    shard: (i % 4) as u16,
                    seq: 1 + i as u64,
                    event,
                },
            )
        })
        .collect()
}

fn encode(record: &LogRecord) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(record, &mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}

fn log_seeds() -> Vec<(String, Vec<u8>)> {
    records()
        .iter()
        .map(|(name, r)| (format!("{name}.bin"), encode(r)))
        .collect()
}

fn frames<F: WireFrame>(frames: &[F]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        encode_frame(f, MAX_FRAME_LEN, &mut out).unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

fn stream_seeds() -> Vec<(String, Vec<u8>)> {
    let client = vec![
        (
            "hello-resume",
            ClientFrame::Hello {
                version: 1,
                token: "storefront-token-0123456789".into(),
                resume_from: Some(ResumePoint {
                    epoch: 0x1234_5678_9abc,
                    seq: 42,
                }),
            },
        ),
        (
            "hello",
            ClientFrame::Hello {
                version: 1,
                token: String::new(),
                resume_from: None,
            },
        ),
        (
            "subscribe-all",
            ClientFrame::Subscribe {
                subscription: Subscription::All,
            },
        ),
        (
            "subscribe-skus",
            ClientFrame::Subscribe {
                subscription: Subscription::Skus(vec![sku("tee-black.L"), sku("mug"), sku("a")]),
            },
        ),
    ];
    let level = |s: &str, seq| LevelEntry {
        sku: sku(s),
        available: 998,
        reserved: 2,
        sold: 250,
        seq,
        log_seq: seq * 7,
    };
    let server = vec![
        (
            "welcome",
            ServerFrame::Welcome {
                version: 2,
                epoch: 0x1234_5678_9abc,
                head_seq: 100,
                heartbeat_ms: 1_000,
            },
        ),
        (
            "error",
            ServerFrame::Error {
                code: 0x101,
                message: "unauthenticated: unknown token".into(),
            },
        ),
        (
            "snapshot",
            ServerFrame::Snapshot {
                seq: 100,
                levels: vec![level("tee-black.L", 99), level("mug", 100), level("x", 0)],
                last: true,
            },
        ),
        ("resumed", ServerFrame::Resumed { seq: 42 }),
        (
            "update",
            ServerFrame::Update(UpdateFrame {
                seq: 101,
                sku: sku("tee-black.L"),
                available: 997,
                reserved: 3,
                sold: 250,
                server_time_us: 1_795_255_200_000_000,
                log_seq: 708,
            }),
        ),
        (
            "heartbeat",
            ServerFrame::Heartbeat {
                seq: 101,
                server_time_us: 1_795_255_201_000_000,
            },
        ),
    ];
    let mut seeds = Vec::new();
    // Control byte: bit 0 direction, bits 1-3 feed size, bits 4-5 maximum frame length.
    for (i, (name, f)) in client.iter().enumerate() {
        let ctl = ((i as u8 % 8) << 1) & 0x0e;
        let mut bytes = vec![ctl];
        bytes.extend(frames(std::slice::from_ref(f)));
        seeds.push((format!("client-{name}.bin"), bytes));
    }
    for (i, (name, f)) in server.iter().enumerate() {
        let ctl = 1 | (((i as u8 % 8) << 1) & 0x0e);
        let mut bytes = vec![ctl];
        bytes.extend(frames(std::slice::from_ref(f)));
        seeds.push((format!("server-{name}.bin"), bytes));
    }
    let all_client: Vec<ClientFrame> = client.into_iter().map(|(_, f)| f).collect();
    let all_server: Vec<ServerFrame> = server.into_iter().map(|(_, f)| f).collect();
    let mut conversation = vec![0b0000_0100];
    conversation.extend(frames(&all_client));
    seeds.push(("client-conversation.bin".into(), conversation));
    let mut conversation = vec![0b0000_0111];
    conversation.extend(frames(&all_server));
    seeds.push(("server-conversation.bin".into(), conversation));
    // A 64-byte maximum: the snapshot is refused as too large after the welcome.
    let mut too_large = vec![0b0010_0001];
    too_large.extend(frames(&all_server[..3]));
    seeds.push(("server-too-large.bin".into(), too_large));
    seeds
}

/// A raw segment_recovery input: mode 1, `after`, then segments (first seq, length, bytes).
fn raw_log(after: u64, segments: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Output::default();
    out.u8(1).u64(after).u8(segments.len() as u8);
    for (i, (first, data)) in segments.iter().enumerate() {
        out.u64(*first);
        if i + 1 < segments.len() {
            out.u16(data.len() as u16);
        }
        out.raw(data);
    }
    out.bytes
}

/// Log frames of the seed records with seqs `seqs`.
fn log_frames(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let recs = records();
    let mut out = Vec::new();
    for seq in seqs {
        let (_, r) = &recs[(seq as usize) % recs.len()];
        let record = encode(&LogRecord { seq, ..r.clone() });
        encode_log_frame(seq, &record, &mut out);
    }
    out
}

/// A model segment_recovery input (see `segment_recovery::model` for the layout).
struct Model {
    base_sel: u8,
    n: u8,
    splits: u64,
    after_rel: u8,
    pad: u8,
    damage: u8,
    at: u32,
    pick: u8,
    extra: Vec<u8>,
}

impl Model {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Output::default();
        out.u8(0).u8(self.base_sel);
        if self.base_sel == 1 {
            out.u16(999);
        }
        out.u8(self.n);
        for i in 0..self.n {
            out.u8(i.wrapping_mul(37) % 64);
        }
        out.u64(self.splits)
            .u8(self.after_rel)
            .u8(self.pad)
            .u8(self.damage)
            .u32(self.at)
            .u8(self.pick)
            .raw(&self.extra);
        out.bytes
    }
}

fn segment_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![
        (
            "raw-one-segment.bin".to_string(),
            raw_log(0, &[(1, log_frames(1..=5))]),
        ),
        (
            "raw-two-segments-snapshot.bin".to_string(),
            raw_log(3, &[(1, log_frames(1..=4)), (5, log_frames(5..=9))]),
        ),
        ("raw-torn-tail.bin".to_string(), {
            let mut seg = log_frames(1..=3);
            seg.truncate(seg.len() - 7);
            seg.extend([0; 64]);
            raw_log(0, &[(1, seg)])
        }),
        ("raw-zero-filled.bin".to_string(), {
            let mut seg = log_frames(10..=12);
            seg.extend([0; 128]);
            raw_log(9, &[(10, seg)])
        }),
    ];
    let names = [
        "intact",
        "torn-tail",
        "burst",
        "garbage",
        "truncated-segment",
        "missing-segment",
        "extra-frame",
        "rewritten-batch",
    ];
    for (damage, name) in names.iter().enumerate() {
        for (variant, (base_sel, splits, pick)) in [
            (0u8, 0x0000_0000_0010_0104u64, 1u8),
            (1, 0x8000_0000_0000_0022, 0),
        ]
        .into_iter()
        .enumerate()
        {
            let model = Model {
                base_sel,
                n: 12,
                splits,
                after_rel: if variant == 0 { 0 } else { 3 },
                pad: 0x23,
                damage: damage as u8,
                at: 151,
                pick,
                extra: vec![1, 0x5a, 0xa5, 0x0f, 0xf0, 7, 8, 9],
            };
            seeds.push((format!("model-{name}-{variant}.bin"), model.bytes()));
        }
    }
    seeds
}

fn http_seeds() -> Vec<(String, Vec<u8>)> {
    let bodies: &[(&str, u8, &str)] = &[
        (
            "put-sku",
            0,
            r#"{"name":"Tee, black, L","price_cents":1999,"stock":1000}"#,
        ),
        (
            "put-sku-full",
            0,
            r#"{"name":"Tee","price_cents":1999,"stock":10,"per_buyer_limit":2,"sale_starts_at":"2026-11-21T10:00:00Z","sale_ends_at":"2026-11-21T11:00:00.250+01:00","reservation_ttl_s":5}"#,
        ),
        (
            "put-sku-bad-window",
            0,
            r#"{"name":"x","price_cents":1,"stock":1,"sale_starts_at":"2026-11-21T10:00:00Z","sale_ends_at":"2026-11-21T09:00:00Z"}"#,
        ),
        (
            "put-sku-negative",
            0,
            r#"{"name":"x","price_cents":-1,"stock":1,"per_buyer_limit":0,"reservation_ttl_s":0}"#,
        ),
        ("restock", 1, r#"{"qty":250}"#),
        ("restock-zero", 1, r#"{"qty":0}"#),
        (
            "reserve",
            2,
            r#"{"buyer":"alice","lines":[{"sku":"tee-black.L","qty":2}]}"#,
        ),
        (
            "reserve-multi",
            2,
            r#"{"buyer":"bob@example.com","lines":[{"sku":"a","qty":1},{"sku":"b","qty":1000000},{"sku":"c.d_e-f","qty":3}]}"#,
        ),
        ("reserve-no-buyer", 2, r#"{"lines":[{"sku":"a","qty":1}]}"#),
        (
            "reserve-duplicate",
            2,
            r#"{"buyer":"b","lines":[{"sku":"a","qty":1},{"sku":"a","qty":1}]}"#,
        ),
        (
            "reserve-bad",
            2,
            r#"{"buyer":"a b","lines":[{"sku":"a/b","qty":-1}],"coupon":"x"}"#,
        ),
        ("confirm", 3, r#"{"payment_ref":"pay_3MtwBwLkdIwHu7ix"}"#),
        ("confirm-control", 3, "{\"payment_ref\":\"pay\\u0007\"}"),
        ("cancel", 4, "{}"),
        ("cancel-empty", 4, " \n"),
    ];
    bodies
        .iter()
        .map(|(name, selector, body)| {
            let mut bytes = vec![*selector];
            bytes.extend_from_slice(body.as_bytes());
            (format!("{name}.json"), bytes)
        })
        .collect()
}

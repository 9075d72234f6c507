//! The QUIC stock stream under abuse: stalled readers, malformed and oversized frames, frames out
//! of order, bad tokens and versions, silent clients. Real QUIC connections on loopback; every
//! scenario runs against both stream drivers.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod stream_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flashsale_engine::observer::StockObserver;
use flashsale_gateway::stream::{StockHub, StreamDriver};
use flashsale_protocol::stream::{ClientFrame, FrameDecoder, ServerFrame, MAX_FRAME_LEN};
use flashsale_stream_client::{
    ClientError, Connector, ErrorCode, Session, SessionStart, StreamEvent, Subscription, Trust,
};
use stream_support::*;

/// A fresh connection to `server` (its certificate unchecked) and the stream a client opens.
async fn raw_stream(
    server: &TestServer,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let connector = Connector::new(&Trust::Insecure, None).expect("connector");
    let conn = connector
        .connect(server.addr, "localhost")
        .await
        .expect("connect");
    let (send, recv) = conn.open_bi().await.expect("stream");
    (conn, send, recv)
}

/// Sends `bytes` on a fresh connection; returns the frames the server sent and how it closed.
async fn raw_exchange(server: &TestServer, bytes: &[u8]) -> (Vec<ServerFrame>, ClientError) {
    let (conn, mut send, mut recv) = raw_stream(server).await;
    send.write_all(bytes).await.expect("write");
    let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(5), recv.read(&mut buf))
        .await
        .expect("server answers in time")
    {
        dec.feed(&buf[..n]);
        while let Some(f) = dec.next_frame().expect("server frames are valid") {
            frames.push(f);
        }
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time");
    (frames, closed.into())
}

fn assert_refused((frames, closed): &(Vec<ServerFrame>, ClientError), code: ErrorCode) {
    match frames.last() {
        Some(ServerFrame::Error { code: c, message }) => {
            assert_eq!(*c, code.as_u32(), "error frame code ({message})");
            assert!(!message.is_empty());
        }
        other => panic!("expected an Error frame with {code}, got {other:?}"),
    }
    match closed {
        ClientError::Closed { code: c, .. } => assert_eq!(*c, Some(code)),
        other => panic!("expected a close with {code}, got {other}"),
    }
}

async fn assert_server_still_serves(server: &TestServer) {
    let mut sub = server.subscriber(Subscription::All);
    assert!(matches!(
        next_non_heartbeat(&mut sub).await,
        StreamEvent::Connected { .. }
    ));
    assert!(matches!(
        next_non_heartbeat(&mut sub).await,
        StreamEvent::Snapshot { .. }
    ));
}

async fn malformed_and_oversized_frames_close_only_that_connection(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 3, 0)).await;

    // A bystander that must not notice anything.
    let mut bystander = server.subscriber(Subscription::All);
    assert!(matches!(
        next_non_heartbeat(&mut bystander).await,
        StreamEvent::Connected { .. }
    ));
    assert!(matches!(
        next_non_heartbeat(&mut bystander).await,
        StreamEvent::Snapshot { .. }
    ));

    // Garbage body behind a plausible length prefix.
    let r = raw_exchange(&server, &[6, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff]).await;
    assert_refused(&r, ErrorCode::MalformedFrame);

    // A length prefix far over the limit.
    let r = raw_exchange(&server, &u32::MAX.to_le_bytes()).await;
    assert_refused(&r, ErrorCode::FrameTooLarge);

    // Before authentication only small frames are accepted (a Hello is ~1 KiB at most).
    let r = raw_exchange(&server, &100_000u32.to_le_bytes()).await;
    assert_refused(&r, ErrorCode::FrameTooLarge);

    // After it, a large subscription (4 000 SKU ids, ~300 KB) is fine.
    let mut options = server.options();
    options.subscription =
        Subscription::Skus((0..4000).map(|i| sku(&format!("s{i:04}"))).collect());
    let connector = Connector::new(&options.trust, None).expect("connector");
    let (_big, start) = Session::open(&connector, &options, None)
        .await
        .expect("big subscribe");
    assert!(matches!(start, SessionStart::Snapshot { .. }));

    // Garbage after a valid handshake, while streaming.
    let mut bytes = encode(&[hello(TOKEN), subscribe_all()]);
    bytes.extend_from_slice(&[3, 0, 0, 0, 1, 2, 3]);
    let r = raw_exchange(&server, &bytes).await;
    assert!(
        matches!(r.0.first(), Some(ServerFrame::Welcome { .. })),
        "{:?}",
        r.0
    );
    assert_refused(&r, ErrorCode::MalformedFrame);

    // Pseudo-random garbage of many shapes never takes the server down.
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..8 {
        let len = 4 + (seed % 200) as usize;
        let mut junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        junk[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
        let (frames, closed) = raw_exchange(&server, &junk).await;
        assert!(
            matches!(
                closed,
                ClientError::Closed {
                    code: Some(ErrorCode::MalformedFrame),
                    ..
                }
            ),
            "{closed} {frames:?}"
        );
    }

    let s = feed(&hub, level("tee", 2, 1)).await;
    match next_non_heartbeat(&mut bystander).await {
        StreamEvent::Update(u) => assert_eq!((u.seq, u.available), (s, 2)),
        other => panic!("bystander got {other:?}"),
    }
    assert!(server.stats.snapshot().protocol_errors >= 12);
    assert_server_still_serves(&server).await;
    server.shutdown().await;
}

async fn frames_out_of_order_are_protocol_violations(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    let r = raw_exchange(&server, &encode(&[subscribe_all()])).await;
    assert_refused(&r, ErrorCode::ProtocolViolation);
    let r = raw_exchange(&server, &encode(&[hello(TOKEN), hello(TOKEN)])).await;
    assert_refused(&r, ErrorCode::ProtocolViolation);
    let r = raw_exchange(
        &server,
        &encode(&[hello(TOKEN), subscribe_all(), subscribe_all()]),
    )
    .await;
    assert_refused(&r, ErrorCode::ProtocolViolation);
    let stats = stats_once(&server, |s| s.protocol_errors == 3 && s.active == 0).await;
    assert_eq!(stats.protocol_errors, 3, "one per refused connection");
    assert_eq!(stats.active, 0, "every refused connection is gone");
    assert_server_still_serves(&server).await;
    server.shutdown().await;
}

async fn bad_tokens_and_versions_are_refused_cleanly(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;

    let r = raw_exchange(&server, &encode(&[hello("wrong"), subscribe_all()])).await;
    assert_refused(&r, ErrorCode::Unauthorized);
    assert_eq!(r.0.len(), 1, "nothing but the error: {:?}", r.0);

    let r = raw_exchange(
        &server,
        &encode(&[ClientFrame::Hello {
            version: 0,
            token: TOKEN.into(),
            resume_from: None,
        }]),
    )
    .await;
    assert_refused(&r, ErrorCode::UnsupportedVersion);

    // The client library reports a bad token as fatal instead of retrying forever.
    let mut options = server.options();
    options.token = "wrong".into();
    let mut sub = flashsale_stream_client::Subscriber::connect(options).expect("subscriber");
    let err = tokio::time::timeout(Duration::from_secs(5), sub.next_event())
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(err.is_fatal());
    assert!(
        matches!(
            err,
            ClientError::Closed {
                code: Some(ErrorCode::Unauthorized),
                ..
            }
        ),
        "{err}"
    );

    // Every role may subscribe.
    let mut options = server.options();
    options.token = "shop-token".into();
    let mut sub = flashsale_stream_client::Subscriber::connect(options).expect("subscriber");
    assert!(matches!(
        next_non_heartbeat(&mut sub).await,
        StreamEvent::Connected { .. }
    ));
    assert_eq!(server.stats.snapshot().unauthorized, 2);
    server.shutdown().await;
}

async fn silent_clients_are_dropped_after_the_handshake_timeout(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |c| {
        c.handshake_timeout = Duration::from_millis(200)
    })
    .await;
    // Hello but no Subscribe.
    let r = raw_exchange(&server, &encode(&[hello(TOKEN)])).await;
    assert!(matches!(r.0.first(), Some(ServerFrame::Welcome { .. })));
    assert_refused(&r, ErrorCode::HandshakeTimeout);
    // No stream at all.
    let connector = Connector::new(&Trust::Insecure, None).expect("connector");
    let conn = connector
        .connect(server.addr, "localhost")
        .await
        .expect("connect");
    let closed: ClientError = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time")
        .into();
    assert!(
        matches!(
            closed,
            ClientError::Closed {
                code: Some(ErrorCode::HandshakeTimeout),
                ..
            }
        ),
        "{closed}"
    );
    let stats = stats_once(&server, |s| s.active == 0).await;
    assert_eq!(stats.active, 0, "timed-out connections are gone");
    assert_eq!(
        stats.protocol_errors, 0,
        "a timeout is not a protocol error"
    );
    server.shutdown().await;
}

async fn connections_over_the_limit_are_refused(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |c| c.max_connections = 1).await;
    let mut first = server.subscriber(Subscription::All);
    assert!(matches!(
        next_non_heartbeat(&mut first).await,
        StreamEvent::Connected { .. }
    ));
    let mut second = server.subscriber(Subscription::All);
    match next_non_heartbeat(&mut second).await {
        StreamEvent::Disconnected { error, .. } => assert!(!error.is_fatal(), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(server.stats.snapshot().refused_busy >= 1);
    server.shutdown().await;
}

/// Reads server frames other than heartbeats until `want` of them arrived (or the stream
/// ends); 5 s at most per read.
async fn read_frames(
    recv: &mut quinn::RecvStream,
    dec: &mut FrameDecoder<ServerFrame>,
    frames: &mut Vec<ServerFrame>,
    want: usize,
) {
    let mut buf = vec![0u8; 4096];
    while frames.len() < want {
        let read = tokio::time::timeout(Duration::from_secs(5), recv.read(&mut buf))
            .await
            .expect("server answers in time");
        let Ok(Some(n)) = read else { return };
        dec.feed(&buf[..n]);
        while let Some(f) = dec.next_frame().expect("server frames are valid") {
            if !matches!(f, ServerFrame::Heartbeat { .. }) {
                frames.push(f);
            }
        }
    }
}

/// A frame a client sends long after `Subscribe`, while updates (and their ACKs) keep the
/// connection busy with nothing to read, is still noticed (the loop reads a subscriber's stream
/// only when it has data, ADR 0046 addendum).
async fn a_frame_sent_long_after_subscribe_is_a_protocol_violation(driver: StreamDriver) {
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 10, 0)).await;
    let (conn, mut send, mut recv) = raw_stream(&server).await;
    send.write_all(&encode(&[hello(TOKEN), subscribe_all()]))
        .await
        .expect("write");
    let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
    let mut frames = Vec::new();
    read_frames(&mut recv, &mut dec, &mut frames, 2).await;
    assert!(
        matches!(frames[0], ServerFrame::Welcome { .. }),
        "{frames:?}"
    );
    assert!(
        matches!(frames[1], ServerFrame::Snapshot { .. }),
        "{frames:?}"
    );

    // Streaming: updates (and their ACKs) drive the connection many times with nothing to read.
    for i in 1..=5 {
        feed(&hub, level("tee", 10 - i, i)).await;
    }
    read_frames(&mut recv, &mut dec, &mut frames, 7).await;
    assert!(
        frames[2..7]
            .iter()
            .all(|f| matches!(f, ServerFrame::Update(_))),
        "{frames:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Then a second Subscribe, alone, long after the first.
    send.write_all(&encode(&[subscribe_all()]))
        .await
        .expect("write");
    read_frames(&mut recv, &mut dec, &mut frames, usize::MAX).await;
    match frames.last() {
        Some(ServerFrame::Error { code, .. }) => {
            assert_eq!(*code, ErrorCode::ProtocolViolation.as_u32(), "{frames:?}");
        }
        other => panic!("expected an Error frame, got {other:?}"),
    }
    let closed: ClientError = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time")
        .into();
    match closed {
        ClientError::Closed { code, .. } => assert_eq!(code, Some(ErrorCode::ProtocolViolation)),
        other => panic!("expected a close with ProtocolViolation, got {other}"),
    }
    let stats = stats_once(&server, |s| s.protocol_errors == 1).await;
    assert_eq!(stats.protocol_errors, 1);
    server.shutdown().await;
}

/// A reader that stops reading must not hold memory proportional to the updates it missed, nor
/// slow the engine side or other subscribers; when it reads again it gets the latest value of
/// each SKU (coalesced), in sequence order.
async fn a_stalled_reader_is_coalesced_and_delays_no_one(driver: StreamDriver) {
    const SKUS: usize = 20;
    const ROUNDS: u64 = 1000;
    const WINDOW: u32 = 16 * 1024;
    let hub = StockHub::new(4096);
    let server = TestServer::start(driver, hub.clone(), |c| c.lag_limit = 256).await;
    let names: Vec<String> = (0..SKUS).map(|i| format!("sku-{i}")).collect();
    for n in &names {
        feed(&hub, level(n, 1_000_000, 0)).await;
    }

    // The stalled reader: a small flow-control window, and it never reads until told.
    let mut options = server.options();
    options.receive_window = Some(WINDOW);
    let connector = Connector::new(&options.trust, options.receive_window).expect("connector");
    let (mut stalled, start) = Session::open(&connector, &options, None)
        .await
        .expect("open");
    assert!(matches!(start, SessionStart::Snapshot { ref levels, .. } if levels.len() == SKUS));
    let rx_at_open = stalled.connection().stats().udp_rx.bytes;

    // A healthy reader draining concurrently.
    let mut healthy = server.subscriber(Subscription::All);
    assert!(matches!(
        next_non_heartbeat(&mut healthy).await,
        StreamEvent::Connected { .. }
    ));
    assert!(matches!(
        next_non_heartbeat(&mut healthy).await,
        StreamEvent::Snapshot { .. }
    ));
    let (head_tx, mut head_rx) = tokio::sync::watch::channel(0u64);
    let healthy_task = tokio::spawn(async move {
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        let mut last_seq = 0;
        loop {
            let target = *head_rx.borrow();
            if target != 0 && last_seq >= target {
                return (latest, last_seq);
            }
            tokio::select! {
                ev = healthy.next_event() => match ev.expect("healthy reader") {
                    StreamEvent::Update(u) => {
                        assert!(u.seq > last_seq);
                        last_seq = u.seq;
                        latest.insert(u.sku.as_str().to_string(), u.available);
                    }
                    StreamEvent::Heartbeat { seq, .. } => last_seq = last_seq.max(seq),
                    other => panic!("healthy reader got {other:?}"),
                },
                _ = head_rx.changed() => {}
            }
        }
    });

    // The engine side: bursts of changes; every call returns at once.
    let mut slowest_call = Duration::ZERO;
    let mut want = BTreeMap::new();
    for round in 0..ROUNDS {
        let before = hub.head_seq();
        let mut head = hub.subscribe_head();
        for n in &names {
            let available = 1_000_000 - round - 1;
            let t = Instant::now();
            hub.stock_changed(&level(n, available, round + 1));
            slowest_call = slowest_call.max(t.elapsed());
            want.insert(n.clone(), available);
        }
        // Let the pump number this burst so the history really holds every change.
        tokio::time::timeout(Duration::from_secs(5), async {
            while *head.borrow_and_update() < before + SKUS as u64 {
                head.changed().await.expect("hub alive");
            }
        })
        .await
        .expect("pump keeps up while a reader is stalled");
    }
    let final_head = hub.head_seq();
    let published = final_head - SKUS as u64;
    assert!(
        published >= ROUNDS * SKUS as u64 / 2,
        "published {published}"
    );
    head_tx.send(final_head).expect("healthy task alive");

    // Other subscribers are not delayed: the healthy reader reaches the head while the stalled
    // one still has not read a byte.
    let (healthy_latest, healthy_seq) = tokio::time::timeout(Duration::from_secs(20), healthy_task)
        .await
        .expect("healthy reader keeps up")
        .expect("healthy task");
    assert_eq!(healthy_seq, final_head);
    assert_eq!(healthy_latest, want);
    let hub_stats = hub.stats();
    assert!(hub_stats.history_len <= hub.history_capacity());

    // Now the stalled reader reads: it gets a bounded amount, ends on the latest values.
    let mut received_updates = 0u64;
    let mut last_seq = 0u64;
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let frame = stalled.next_frame().await.expect("stalled reader frame");
        match frame {
            ServerFrame::Update(u) => {
                assert!(u.seq > last_seq, "seq {} after {last_seq}", u.seq);
                last_seq = u.seq;
                received_updates += 1;
                latest.insert(u.sku.as_str().to_string(), u.available);
                if u.seq == final_head {
                    break;
                }
            }
            ServerFrame::Heartbeat { seq, .. } => {
                assert!(seq >= last_seq);
                if seq == final_head {
                    break;
                }
            }
            other => panic!("stalled reader got {other:?}"),
        }
    }
    assert_eq!(latest.len(), SKUS);
    assert_eq!(
        latest, want,
        "the stalled reader ends on the latest value of every SKU"
    );
    assert!(
        received_updates * 4 < published,
        "coalesced: {received_updates} updates received of {published} published"
    );
    // Everything the server ever sent this connection after the snapshot, on the wire.
    let received_bytes = stalled.connection().stats().udp_rx.bytes - rx_at_open;
    assert!(
        received_bytes < 512 * 1024,
        "bounded: {received_bytes} bytes"
    );
    assert!(server.stats.snapshot().coalesced_batches >= 1);
    eprintln!(
        "stalled reader: {received_updates} of {published} updates, {received_bytes} bytes; slowest stock_changed call {slowest_call:?}"
    );
    server.shutdown().await;
}

on_both_drivers!(
    malformed_and_oversized_frames_close_only_that_connection,
    frames_out_of_order_are_protocol_violations,
    bad_tokens_and_versions_are_refused_cleanly,
    silent_clients_are_dropped_after_the_handshake_timeout,
    connections_over_the_limit_are_refused,
    a_stalled_reader_is_coalesced_and_delays_no_one,
    a_frame_sent_long_after_subscribe_is_a_protocol_violation,
);

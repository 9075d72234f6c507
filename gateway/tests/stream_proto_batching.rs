//! The quinn-proto loop's batching (ADR 0046, 2026-11-29 addendum): a publication's datagrams to
//! many subscribers go out in `sendmmsg` batches of at most 64, and a streaming session reads the
//! client's stream only when quinn-proto reports it readable. Real clients on loopback: every
//! subscriber of a publication larger than one batch gets every update in order, and a frame a
//! client sends long after `Subscribe` is still noticed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod stream_support;

use std::sync::Arc;
use std::time::Duration;

use flashsale_gateway::stream::{StockHub, StreamConfig, StreamDriver};
use flashsale_protocol::stream::{
    encode_frame, ClientFrame, FrameDecoder, ServerFrame, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use flashsale_stream_client::{ClientError, Connector, ErrorCode, Subscriber, Subscription, Trust};
use stream_support::*;

/// More subscribers than one `sendmmsg` batch (64) carries, so each publication crosses a
/// batch boundary.
const SUBSCRIBERS: usize = 100;

async fn start(hub: &Arc<StockHub>) -> TestServer {
    TestServer::start(StreamDriver::Proto, hub.clone(), |c: &mut StreamConfig| {
        c.max_connections = SUBSCRIBERS + 10;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_of_a_publication_larger_than_a_batch_gets_every_update_in_order() {
    let hub = StockHub::new(1024);
    let server = start(&hub).await;
    feed(&hub, level("tee", 1_000, 0)).await;
    let mut subs: Vec<Subscriber> = (0..SUBSCRIBERS)
        .map(|_| server.subscriber(Subscription::All))
        .collect();
    for sub in &mut subs {
        assert!(matches!(
            next_non_heartbeat(sub).await,
            flashsale_stream_client::StreamEvent::Connected { .. }
        ));
        let (seq, levels) = expect_snapshot(next_non_heartbeat(sub).await);
        assert_eq!(seq, 1);
        assert_eq!(levels.get("tee"), Some(&(1_000, 0)));
    }
    let mut fed = Vec::new();
    for i in 1..=20u64 {
        let name = if i % 2 == 0 { "tee" } else { "mug" };
        let seq = feed(&hub, level(name, 1_000 - i, i)).await;
        fed.push((seq, name.to_string(), 1_000 - i, i));
    }
    for sub in &mut subs {
        let mut got = Vec::new();
        while got.len() < fed.len() {
            got.push(expect_update(next_non_heartbeat(sub).await));
        }
        assert_eq!(got, fed);
    }
    let stats = server.stats.snapshot();
    assert_eq!(stats.active, SUBSCRIBERS as u64);
    assert_eq!(stats.snapshots_sent, SUBSCRIBERS as u64);
    assert_eq!(stats.updates_sent, (SUBSCRIBERS * fed.len()) as u64);
    server.shutdown().await;
}

fn encode(frames: &[ClientFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        encode_frame(f, MAX_FRAME_LEN, &mut out).expect("encode");
    }
    out
}

fn subscribe_all() -> ClientFrame {
    ClientFrame::Subscribe {
        subscription: Subscription::All,
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_long_after_subscribe_is_a_protocol_violation() {
    let hub = StockHub::new(64);
    let server = start(&hub).await;
    feed(&hub, level("tee", 10, 0)).await;
    let connector = Connector::new(&Trust::Insecure, None).expect("connector");
    let conn = connector
        .connect(server.addr, "localhost")
        .await
        .expect("connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let hello = ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        token: TOKEN.into(),
        resume_from: None,
    };
    send.write_all(&encode(&[hello, subscribe_all()]))
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
    assert_eq!(server.stats.snapshot().protocol_errors, 1);
    server.shutdown().await;
}

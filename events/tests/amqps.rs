//! `amqps://` against what this machine has: RabbitMQ listens in plain AMQP on 5672 (no TLS
//! listener), so these tests check that a TLS sink pointed at a plain port fails with a clear
//! TLS error quickly, and that a broker that never answers is given up on after the connect
//! timeout — never a hang. The broker must be up (the test fails, not skips, without it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use flashsale_events::amqp::{AmqpSink, CONNECT_TIMEOUT};
use flashsale_events::{AmqpConfig, EventType, EventsError, OutEvent};

fn event() -> OutEvent {
    OutEvent {
        id: OutEvent::id_for(0, 1),
        kind: EventType::SkuUpdated,
        at_ms: 1_790_000_000_000,
        key: "tls-test".into(),
        data: serde_json::json!({"sku": "tls-test"}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_to_the_plain_broker_port_fails_fast_with_a_tls_error() {
    tokio::net::TcpStream::connect("127.0.0.1:5672")
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 is required");
    let config = AmqpConfig::new(
        "amqps://guest:guest@127.0.0.1:5672/%2f",
        "flashsale.tls-test",
        None,
    )
    .unwrap();
    assert!(config.tls());
    let mut sink = AmqpSink::new(config);
    let t0 = Instant::now();
    let res = tokio::time::timeout(CONNECT_TIMEOUT * 3, sink.publish(&[event()]))
        .await
        .expect("publish over amqps to a plain port hung");
    let err = res.expect_err("a TLS handshake with a plain AMQP port cannot succeed");
    assert!(matches!(err, EventsError::AmqpTls(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("TLS") && text.contains("5671"), "{text}");
    assert!(!text.contains("guest:guest"), "the password leaked: {text}");
    assert!(
        t0.elapsed() < CONNECT_TIMEOUT,
        "took {:?} (a refused handshake should not wait for the timeout)",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_is_given_up_on_after_the_connect_timeout() {
    // Accepts connections and never says a word (a black hole behind a load balancer).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
            if conns.len() > 16 {
                return;
            }
        }
    });
    for scheme in ["amqps", "amqp"] {
        let config =
            AmqpConfig::new(&format!("{scheme}://guest:guest@{addr}/%2f"), "x", None).unwrap();
        let mut sink = AmqpSink::new(config);
        let t0 = Instant::now();
        let res = tokio::time::timeout(CONNECT_TIMEOUT * 3, sink.publish(&[event()]))
            .await
            .expect("publish to a silent broker hung past the connect timeout");
        let err = res.expect_err("a silent broker cannot confirm");
        assert!(
            matches!(err, EventsError::AmqpTimeout(_)),
            "{scheme}: {err:?}"
        );
        let took = t0.elapsed();
        assert!(
            took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT + Duration::from_secs(5),
            "{scheme}: took {took:?}"
        );
    }
    held.abort();
}

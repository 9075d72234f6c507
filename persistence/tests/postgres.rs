//! Postgres log against the real server (postgres://postgres@127.0.0.1:5432/test). These
//! tests fail, not skip, when it is unreachable.

mod common;

use std::time::{Duration, Instant};

use common::{append_flush, expect, query_i64, record, replay_all, run, Schema, PG_URL};
use flashsale_engine::log::{LogBackend, LogError, ShardLog};
use flashsale_persistence::PostgresBackend;

fn backend(schema: &Schema) -> PostgresBackend {
    PostgresBackend::with_schema(PG_URL, &schema.0)
        .unwrap_or_else(|e| panic!("postgres backend on {PG_URL}: {e}"))
}

#[test]
fn migrations_are_versioned_and_idempotent() {
    let schema = Schema::new("migrate");
    let _a = backend(&schema);
    let _b = backend(&schema);
    let s = &schema.0;
    assert_eq!(
        query_i64(&format!(
            "SELECT max(version)::int8 FROM \"{s}\".flashsale_schema_version"
        )),
        i64::from(flashsale_persistence::postgres::SCHEMA_VERSION)
    );
    assert_eq!(
        query_i64(&format!(
            "SELECT count(*) FROM \"{s}\".flashsale_schema_version"
        )),
        i64::from(flashsale_persistence::postgres::SCHEMA_VERSION)
    );
}

#[test]
fn append_flush_replay_round_trip() {
    let schema = Schema::new("roundtrip");
    let b = backend(&schema);
    let b2 = b.clone();
    run(move || async move {
        let mut log = b.open(0, 2).await.unwrap_or_else(|e| panic!("open: {e}"));
        assert!(replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
        assert!(log
            .load_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        append_flush(log.as_mut(), 1..=300).await;
        append_flush(log.as_mut(), 301..=301).await;
        // Another shard's records do not mix in.
        let mut other = b.open(1, 2).await.unwrap_or_else(|e| panic!("open: {e}"));
        append_flush(other.as_mut(), 1..=5).await;
    });
    drop(b2);
    let b = backend(&schema);
    run(move || async move {
        let mut log = b.open(0, 2).await.unwrap_or_else(|e| panic!("open: {e}"));
        assert_eq!(
            replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=301)
        );
        assert_eq!(
            replay_all(log.as_mut(), 290)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(291..=301)
        );
    });
}

#[test]
fn group_commit_is_one_transaction() {
    let schema = Schema::new("group");
    let b = backend(&schema);
    run(move || async move {
        let mut log = b
            .open_shard(0, 1)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Larger than one INSERT statement: several statements, one transaction.
        append_flush(&mut log, 1..=45_000).await;
        assert_eq!(log.commits(), 1);
        log.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.commits(), 1, "an empty flush is free");
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=45_000)
        );
    });
    assert_eq!(
        query_i64(&format!("SELECT count(*) FROM \"{}\".log", schema.0)),
        45_000
    );
}

#[test]
fn retried_batch_that_already_committed_is_not_duplicated() {
    let schema = Schema::new("dup");
    let b = backend(&schema);
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(log.as_mut(), 1..=10).await;
        // A retry after a lost COMMIT acknowledgement: 6..=10 again, plus new records.
        let mut retry = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        append_flush(retry.as_mut(), 6..=15).await;
        assert_eq!(
            replay_all(retry.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=15)
        );
    });
    assert_eq!(
        query_i64(&format!("SELECT count(*) FROM \"{}\".log", schema.0)),
        15
    );
}

#[test]
fn snapshot_deletes_covered_rows() {
    let schema = Schema::new("snap");
    let b = backend(&schema);
    let b2 = b.clone();
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(log.as_mut(), 1..=1000).await;
        log.write_snapshot(600, b"state@600")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // An older snapshot never replaces a newer one.
        log.write_snapshot(500, b"state@500")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    assert_eq!(
        query_i64(&format!("SELECT min(seq) FROM \"{}\".log", schema.0)),
        601
    );
    drop(b2);
    let b = backend(&schema);
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        let (seq, bytes) = log
            .load_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no snapshot"));
        assert_eq!((seq, bytes.as_slice()), (600, &b"state@600"[..]));
        assert_eq!(
            replay_all(log.as_mut(), seq)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(601..=1000)
        );
        // Replaying from before the snapshot finds the hole: an error, not silent loss.
        assert!(matches!(
            replay_all(log.as_mut(), 0).await,
            Err(LogError::Corrupt(_))
        ));
    });
}

#[test]
fn connection_loss_fails_fast_then_recovers() {
    let schema = Schema::new("outage");
    let b = backend(&schema);
    let app = format!("flashsale-{}", schema.0);
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(log.as_mut(), 1..=10).await;
        // Kill the shard's connection from the server side.
        let killed = std::thread::spawn(move || {
            query_i64(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = '{app}'"
            ))
        })
        .join()
        .unwrap_or_else(|_| panic!("terminate thread"));
        assert!(killed >= 1, "no connection to kill");
        glommio::timer::sleep(Duration::from_millis(100)).await;
        for s in 11..=20 {
            log.append(s, &record(s));
        }
        let started = Instant::now();
        // The first flush after the loss fails (or succeeds on a fresh connection); it never
        // hangs, and the records stay buffered.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match log.flush().await {
                Ok(()) => break,
                Err(LogError::Unavailable(_)) => {
                    assert!(attempts < 50, "never recovered");
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=20)
        );
    });
}

#[test]
fn unreachable_server_is_an_error_at_start() {
    let started = Instant::now();
    let res = PostgresBackend::with_schema("postgres://postgres@127.0.0.1:1/test", "unused");
    assert!(res.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bad_schema_name_is_refused() {
    assert!(matches!(
        PostgresBackend::with_schema(PG_URL, "Robert'); DROP TABLE students;--"),
        Err(flashsale_persistence::PersistenceError::Config(_))
    ));
}

#[test]
fn shard_count_change_is_refused() {
    let schema = Schema::new("shards");
    let b = backend(&schema);
    run(move || async move {
        b.open(0, 2).await.unwrap_or_else(|e| panic!("open: {e}"));
        match b.open(0, 3).await {
            Err(LogError::Io(e)) => assert!(e.to_string().contains("--shards 2"), "{e}"),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => panic!("opened with another shard count"),
        }
    });
}

/// A loopback TCP proxy to Postgres that can be switched off (dropping every connection and
/// refusing new ones) and on again, to simulate an outage.
struct Proxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
    _thread: std::thread::JoinHandle<()>,
}

impl Proxy {
    fn start() -> Proxy {
        let (up, rx) = tokio::sync::watch::channel(true);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            common::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let _ = port_tx.send(listener.local_addr().map(|a| a.port()).unwrap_or(0));
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if !*rx.borrow() {
                        drop(inbound); // refused while down
                        continue;
                    }
                    let mut rx = rx.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) =
                            tokio::net::TcpStream::connect("127.0.0.1:5432").await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = rx.wait_for(|up| !*up) => {}
                        }
                    });
                }
            })
        });
        let port = port_rx.recv().unwrap_or_else(|e| panic!("{e}"));
        Proxy {
            port,
            up,
            _thread: thread,
        }
    }

    fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

#[test]
fn outage_fails_fast_with_unavailable_and_service_resumes() {
    let schema = Schema::new("proxy");
    let proxy = Proxy::start();
    let url = format!("postgres://postgres@127.0.0.1:{}/test", proxy.port);
    let b = PostgresBackend::with_schema(&url, &schema.0)
        .unwrap_or_else(|e| panic!("postgres via proxy: {e}"));
    let proxy = std::sync::Arc::new(proxy);
    let p = proxy.clone();
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(log.as_mut(), 1..=10).await;
        p.set_up(false);
        glommio::timer::sleep(Duration::from_millis(100)).await;
        for s in 11..=20 {
            log.append(s, &record(s));
        }
        // Every flush during the outage fails quickly with Unavailable; nothing is lost.
        for _ in 0..5 {
            let t = Instant::now();
            match log.flush().await {
                Err(LogError::Unavailable(_)) => {}
                other => panic!("expected Unavailable during the outage, got {other:?}"),
            }
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "flush hung {:?}",
                t.elapsed()
            );
        }
        p.set_up(true);
        let started = Instant::now();
        loop {
            match log.flush().await {
                Ok(()) => break,
                Err(LogError::Unavailable(_)) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(15),
                        "never recovered"
                    );
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(
            replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=20)
        );
    });
}

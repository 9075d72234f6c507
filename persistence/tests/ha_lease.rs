//! High availability against the real server: the lease (acquire, renew, expiry by the
//! database's clock, epoch bump), node identities, and the fence of the log (a deposed
//! writer's appends and snapshots never become durable). Fails, not skips, without Postgres.

mod common;

use std::time::Duration;

use common::{block_on, expect, query_i64, record, replay_all, run, Schema, PG_URL};
use flashsale_engine::log::{LogError, ShardLog};
use flashsale_persistence::postgres::lease::GroupStore;
use flashsale_persistence::{PersistenceError, PostgresBackend};

fn backend(schema: &Schema) -> PostgresBackend {
    PostgresBackend::with_schema(PG_URL, &schema.0)
        .unwrap_or_else(|e| panic!("postgres backend on {PG_URL}: {e}"))
}

/// Runs `f` with a group connection on a throwaway tokio runtime.
fn with_group<T>(b: &PostgresBackend, f: impl AsyncFnOnce(&GroupStore) -> T) -> T {
    block_on(async {
        let g = GroupStore::connect(b)
            .await
            .unwrap_or_else(|e| panic!("group connection: {e}"));
        f(&g).await
    })
}

#[test]
fn a_lease_whose_holder_connection_is_gone_is_taken_before_it_expires() {
    let schema = Schema::new("ha_gone");
    let b = backend(&schema);
    // The holder's connection closes (its process died) with a minute of lease left.
    assert_eq!(acquire(&b, "dead", 60_000), Some(1));
    with_group(&b, async |g| {
        let lease = g.lease().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(lease.remaining_ms > 50_000, "{lease:?}");
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let Some(epoch) = acquire(&b, "next", 60_000) {
            break epoch;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dead holder's lease was not taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(taken, 2);
    // A holder whose connection lives keeps its lease.
    with_group(&b, async |g| {
        assert_eq!(
            g.try_acquire("live", "live-1", "http://live", 60_000)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            Some(3)
        );
        let other = GroupStore::connect(&b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            other
                .try_acquire("x", "x-1", "http://x", 60_000)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            None
        );
    });
}

fn acquire(b: &PostgresBackend, node: &str, lease_ms: u64) -> Option<u64> {
    with_group(b, async |g| {
        g.try_acquire(
            node,
            &format!("{node}-1"),
            &format!("http://{node}"),
            lease_ms,
        )
        .await
        .unwrap_or_else(|e| panic!("acquire: {e}"))
    })
}

#[test]
fn lease_is_exclusive_until_it_expires_and_each_takeover_bumps_the_epoch() {
    let schema = Schema::new("ha_lease");
    let b = backend(&schema);
    block_on(async {
        let connect = || async {
            GroupStore::connect(&b)
                .await
                .unwrap_or_else(|e| panic!("group connection: {e}"))
        };
        // Each node keeps its group connection, as a running node does.
        let (a, bn) = (connect().await, connect().await);
        let ok = |r: Result<Option<u64>, PersistenceError>| r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(a.try_acquire("a", "a-1", "http://a", 60_000).await),
            Some(1),
            "the first takeover bumps epoch 0 to 1"
        );
        assert_eq!(
            ok(bn.try_acquire("b", "b-1", "http://b", 60_000).await),
            None,
            "a live lease is not taken"
        );
        let lease = a.lease().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((lease.epoch, lease.node_id.as_str()), (1, "a"));
        assert_eq!(lease.advertise_url, "http://a");
        assert!(lease.remaining_ms > 50_000, "{lease:?}");
        let renew = |r: Result<bool, PersistenceError>| r.unwrap_or_else(|e| panic!("{e}"));
        assert!(renew(a.renew("a", "a-1", 1, 200).await));
        assert!(
            !renew(bn.renew("b", "b-1", 1, 200).await),
            "only the holder renews"
        );
        assert!(
            !renew(bn.renew("a", "a-2", 1, 200).await),
            "another process under the same node id does not renew"
        );
        assert_eq!(
            ok(bn.try_acquire("a", "a-2", "http://a", 200).await),
            None,
            "nor take a live lease"
        );
        // Renewed to 200 ms: expired by the database's clock after that, though the holder's
        // connection lives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            ok(bn.try_acquire("b", "b-1", "http://b", 60_000).await),
            Some(2)
        );
        assert!(
            !renew(a.renew("a", "a-1", 1, 60_000).await),
            "the deposed holder cannot renew"
        );
        bn.release("b", "b-1", 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            bn.lease()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .remaining_ms
                < 0
        );
        // Released: taken at once, not after the lease time.
        assert_eq!(
            ok(a.try_acquire("a", "a-1", "http://a", 60_000).await),
            Some(3)
        );
    });
}

#[test]
fn a_second_live_node_with_the_same_id_is_refused() {
    let schema = Schema::new("ha_nodes");
    let b = backend(&schema);
    with_group(&b, async |g| {
        g.join("n1", "instance-1", "http://one", 60_000)
            .await
            .unwrap_or_else(|e| panic!("join: {e}"));
        // The same instance joining again (a reconnect) is fine.
        g.join("n1", "instance-1", "http://one", 60_000)
            .await
            .unwrap_or_else(|e| panic!("rejoin: {e}"));
        match g.join("n1", "instance-2", "http://two", 60_000).await {
            Err(PersistenceError::NodeIdInUse {
                node_id,
                advertise_url,
                ..
            }) => {
                assert_eq!(
                    (node_id.as_str(), advertise_url.as_str()),
                    ("n1", "http://one")
                );
            }
            other => panic!("expected NodeIdInUse, got {other:?}"),
        }
        assert!(g
            .heartbeat("n1", "instance-1")
            .await
            .unwrap_or_else(|e| panic!("{e}")));
        // Once the first has not been seen for the stale time, the id may be taken over.
        tokio::time::sleep(Duration::from_millis(150)).await;
        g.join("n1", "instance-2", "http://two", 100)
            .await
            .unwrap_or_else(|e| panic!("join after stale: {e}"));
        assert!(!g
            .heartbeat("n1", "instance-1")
            .await
            .unwrap_or_else(|e| panic!("{e}")));
        g.leave("n1", "instance-2")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        g.join("n1", "instance-3", "http://three", 60_000)
            .await
            .unwrap_or_else(|e| panic!("join after leave: {e}"));
    });
}

#[test]
fn a_deposed_writer_can_never_make_a_record_or_snapshot_durable() {
    let schema = Schema::new("ha_fence");
    let b = backend(&schema);
    let epoch = acquire(&b, "old", 60_000).unwrap_or_else(|| panic!("first acquire"));
    let old = b.fenced(epoch);
    let (deposed_tx, deposed_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        run(move || async move {
            let mut log = old.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
            for s in 1..=10 {
                log.append(s, &record(s));
            }
            log.flush()
                .await
                .unwrap_or_else(|e| panic!("flush at the current epoch: {e}"));
            let _ = ready_tx.send(());
            // Another node takes the lease (its epoch is now stale).
            let _ = deposed_rx.recv();
            for s in 11..=20 {
                log.append(s, &record(s));
            }
            match log.flush().await {
                Err(LogError::Fenced { epoch: e }) => assert_eq!(e, epoch),
                other => panic!("expected a fenced flush, got {other:?}"),
            }
            // Retried: still fenced, the records stay out.
            assert!(matches!(log.flush().await, Err(LogError::Fenced { .. })));
            match log.write_snapshot(20, b"state with records 11..=20").await {
                Err(LogError::Fenced { .. }) => {}
                other => panic!("expected a fenced snapshot, got {other:?}"),
            }
            // A large batch (several statements in one transaction) is fenced too.
            let mut big = old.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
            for s in 11..=25_010 {
                big.append(s, &record(s));
            }
            assert!(matches!(big.flush().await, Err(LogError::Fenced { .. })));
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("writer did not flush: {e}"));
    // Released (as if expired) and taken by another node: epoch bumped.
    with_group(&b, async |g| {
        g.release("old", "old-1", epoch)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let new_epoch = acquire(&b, "new", 60_000).unwrap_or_else(|| panic!("takeover"));
    assert_eq!(new_epoch, epoch + 1);
    let _ = deposed_tx.send(());
    writer
        .join()
        .unwrap_or_else(|_| panic!("writer thread panicked"));
    let s = &schema.0;
    assert_eq!(
        query_i64(&format!("SELECT count(*) FROM \"{s}\".log")),
        10,
        "nothing of the deposed writer after the takeover is durable"
    );
    assert_eq!(
        query_i64(&format!("SELECT count(*) FROM \"{s}\".snapshots")),
        0
    );
    // The new leader's writes (same sequence numbers) go in.
    let new = b.fenced(new_epoch);
    run(move || async move {
        let mut log = new.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=10)
        );
        for s in 11..=12 {
            log.append(s, &record(s));
        }
        log.flush()
            .await
            .unwrap_or_else(|e| panic!("the new leader's flush: {e}"));
        log.write_snapshot(12, b"snapshot")
            .await
            .unwrap_or_else(|e| panic!("the new leader's snapshot: {e}"));
    });
    assert_eq!(
        query_i64(&format!("SELECT count(*) FROM \"{s}\".snapshots")),
        1
    );
    let pos = with_group(&b, async |g| {
        g.log_position(1).await.unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!((pos.end, pos.snapshot), (12, 12));
}

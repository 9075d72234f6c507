//! A second log of a high-availability group (the waiting room's journal, in its own schema)
//! fenced by the group's lease: `PostgresBackend::fenced_by` checks the lease row of the
//! group's schema, so after a takeover the deposed writer's appends never become durable
//! there either. Fails, not skips, without Postgres (127.0.0.1:5432).

mod common;

use common::{block_on, expect, record, replay_all, run, Schema, PG_URL};
use flashsale_engine::log::{LogError, ShardLog};
use flashsale_persistence::postgres::lease::GroupStore;
use flashsale_persistence::PostgresBackend;

fn backend(schema: &Schema) -> PostgresBackend {
    PostgresBackend::with_schema(PG_URL, &schema.0)
        .unwrap_or_else(|e| panic!("postgres backend on {PG_URL}: {e}"))
}

/// Takes the group's lease for `node` (a minute long); its epoch.
fn acquire(group: &PostgresBackend, node: &str) -> Option<u64> {
    block_on(async {
        let g = GroupStore::connect(group)
            .await
            .unwrap_or_else(|e| panic!("group connection: {e}"));
        g.release("old", "old-1", 1)
            .await
            .unwrap_or_else(|e| panic!("release: {e}"));
        g.try_acquire(node, &format!("{node}-1"), "http://x", 60_000)
            .await
            .unwrap_or_else(|e| panic!("acquire: {e}"))
    })
}

#[test]
fn a_second_log_is_fenced_by_the_groups_lease() {
    let group_schema = Schema::new("ha_fby");
    let journal_schema = Schema::new("ha_fby_q");
    let group = backend(&group_schema);
    let journal = backend(&journal_schema);
    let epoch = acquire(&group, "old").unwrap_or_else(|| panic!("first acquire"));
    assert_eq!(epoch, 1);
    // The journal's own (unused) lease row is at epoch 0: this flush succeeding shows the
    // fence reads the group's row.
    let old = journal.fenced_by(epoch, &group);
    let first = old.clone();
    run(move || async move {
        let mut log = first
            .open_shard(0, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for s in 1..=3 {
            log.append(s, &record(s));
        }
        log.flush()
            .await
            .unwrap_or_else(|e| panic!("flush at the current epoch: {e}"));
    });
    let new_epoch = acquire(&group, "new").unwrap_or_else(|| panic!("takeover"));
    assert_eq!(new_epoch, epoch + 1);
    run(move || async move {
        let mut log = old.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
        for s in 4..=6 {
            log.append(s, &record(s));
        }
        match log.flush().await {
            Err(LogError::Fenced { epoch: e }) => assert_eq!(e, epoch),
            other => panic!("expected a fenced flush, got {other:?}"),
        }
    });
    let reader = journal.clone();
    run(move || async move {
        let mut log = reader
            .open_shard(0, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=3),
            "only the records of the live term are durable"
        );
    });
}

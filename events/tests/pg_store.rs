//! The events state of a high-availability group in Postgres (real database on
//! 127.0.0.1:5432): documents survive a reopen (a new leader reads what the old one wrote),
//! and once another node has taken the lease, the old leader's writes of positions, endpoints
//! and the log hold change nothing and fail `Fenced`.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flashsale_events::store::EndpointRecord;
use flashsale_events::{EventsError, LogSource, PgStore, Store};
use flashsale_persistence::postgres::lease::GroupStore;
use flashsale_persistence::PostgresBackend;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of this test's own, dropped at the end (also when the test fails).
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A plain thread: the drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (c, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .unwrap();
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_move_positions_or_the_hold() {
    let schema = Schema(format!(
        "events_pg_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    let backend = {
        let name = schema.0.clone();
        tokio::task::spawn_blocking(move || PostgresBackend::with_schema(PG_URL, &name))
            .await
            .unwrap()
            .expect("Postgres on 127.0.0.1:5432 is required")
    };
    let group = GroupStore::connect(&backend).await.unwrap();
    let first = group
        .try_acquire("a", "a-1", "http://a", 60_000)
        .await
        .unwrap()
        .expect("a takes the free lease");
    let old = Store::Postgres(PgStore::new(&backend.fenced(first)));
    let old_source = LogSource::postgres(&backend.fenced(first));
    assert_eq!(old.load_positions("wh_1").await.unwrap(), None);
    old.save_positions("wh_1", &[5, 7]).await.unwrap();
    let ep = EndpointRecord {
        id: "wh_1".into(),
        url: "http://127.0.0.1:1/".into(),
        events: vec!["*".into()],
        secret: "whsec_x".into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
    };
    old.save_endpoints(std::slice::from_ref(&ep)).await.unwrap();
    old_source.hold(0, 6).await.unwrap();

    // b takes over (a released its lease): a new epoch.
    group.release("a", "a-1", first).await.unwrap();
    let second = group
        .try_acquire("b", "b-1", "http://b", 60_000)
        .await
        .unwrap()
        .expect("b takes the released lease");
    assert!(second > first);
    let new = Store::Postgres(PgStore::new(&backend.fenced(second)));
    // The new leader reads what the old one stored.
    assert_eq!(new.load_positions("wh_1").await.unwrap(), Some(vec![5, 7]));
    assert_eq!(new.load_endpoints().await.unwrap(), vec![ep]);

    // The deposed leader's writes are refused and change nothing.
    let refused = old.save_positions("wh_1", &[9, 9]).await;
    assert!(
        matches!(refused, Err(EventsError::Fenced { epoch }) if epoch == first),
        "{refused:?}"
    );
    assert!(matches!(
        old.save_endpoints(&[]).await,
        Err(EventsError::Fenced { .. })
    ));
    assert!(matches!(
        old_source.hold(0, 100).await,
        Err(EventsError::Fenced { .. })
    ));
    assert_eq!(new.load_positions("wh_1").await.unwrap(), Some(vec![5, 7]));
    assert_eq!(new.load_endpoints().await.unwrap().len(), 1);
    let (c, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let hold: i64 = c
        .query_one(
            &format!("SELECT seq FROM {}.events_hold WHERE shard = 0", schema.0),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        hold, 5,
        "the hold stays where the old leader left it legitimately"
    );

    // The new leader writes; a removed destination's documents go.
    new.save_positions("wh_1", &[8, 9]).await.unwrap();
    new.save_dead("wh_1", &[]).await.unwrap();
    assert_eq!(new.load_positions("wh_1").await.unwrap(), Some(vec![8, 9]));
    new.remove("wh_1").await;
    assert_eq!(new.load_positions("wh_1").await.unwrap(), None);
    drop(backend);
}

//! Versioned schema migrations, applied at start inside one transaction under an advisory
//! lock (so two servers starting together do not race). Applied versions are recorded in
//! `<schema>.flashsale_schema_version`.

use tokio_postgres::Client;

use crate::PersistenceError;

/// The migrations, in order; index + 1 is the version. `{s}` is the quoted schema name.
const MIGRATIONS: &[&str] = &[
    // 1: the write-ahead log and snapshots.
    r#"
    CREATE TABLE {s}.log (
        shard  int2  NOT NULL,
        seq    int8  NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (shard, seq)
    );
    ALTER TABLE {s}.log ALTER COLUMN record SET STORAGE EXTERNAL;
    CREATE TABLE {s}.snapshots (
        shard    int2        PRIMARY KEY,
        seq      int8        NOT NULL,
        snapshot bytea       NOT NULL,
        taken_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {s}.meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    "#,
    // 2: the read model (orders partitioned by month, order lines, SKU stock) and its position.
    r#"
    CREATE TABLE {s}.orders (
        order_id       text        NOT NULL,
        reservation_id text        NOT NULL,
        buyer          text        NOT NULL,
        payment_ref    text        NOT NULL,
        total_cents    int8        NOT NULL,
        created_at     timestamptz NOT NULL,
        PRIMARY KEY (order_id, created_at)
    ) PARTITION BY RANGE (created_at);
    CREATE TABLE {s}.orders_default PARTITION OF {s}.orders DEFAULT;
    CREATE TABLE {s}.order_lines (
        order_id         text        NOT NULL,
        sku              text        NOT NULL,
        qty              int4        NOT NULL CHECK (qty > 0),
        unit_price_cents int8        NOT NULL,
        created_at       timestamptz NOT NULL,
        PRIMARY KEY (order_id, sku)
    );
    CREATE TABLE {s}.sku_stock (
        sku        text        PRIMARY KEY,
        name       text        NOT NULL,
        price_cents int8       NOT NULL,
        total      int8        NOT NULL,
        reserved   int8        NOT NULL DEFAULT 0,
        sold       int8        NOT NULL DEFAULT 0,
        available  int8        GENERATED ALWAYS AS (total - reserved - sold) STORED,
        updated_at timestamptz NOT NULL
    );
    CREATE TABLE {s}.read_model_reservations (
        reservation_id text  NOT NULL,
        shard          int2  NOT NULL,
        buyer          text  NOT NULL,
        skus           text[] NOT NULL,
        qtys           int4[] NOT NULL,
        prices         int8[] NOT NULL,
        PRIMARY KEY (reservation_id, shard)
    );
    CREATE TABLE {s}.read_model_position (
        shard int2 PRIMARY KEY,
        seq   int8 NOT NULL
    );
    "#,
    // 3: high availability: the group's lease (one row; every fenced append checks its epoch)
    // and the nodes of the group (node identities are unique among live nodes).
    r#"
    CREATE TABLE {s}.ha_lease (
        id            int2        PRIMARY KEY CHECK (id = 1),
        epoch         int8        NOT NULL,
        node_id       text        NOT NULL,
        instance      text        NOT NULL,
        advertise_url text        NOT NULL,
        expires_at    timestamptz NOT NULL,
        holder_pid    int4        NOT NULL
    );
    INSERT INTO {s}.ha_lease (id, epoch, node_id, instance, advertise_url, expires_at, holder_pid)
        VALUES (1, 0, '', '', '', '-infinity', 0);
    CREATE TABLE {s}.ha_nodes (
        node_id       text        PRIMARY KEY,
        instance      text        NOT NULL,
        advertise_url text        NOT NULL,
        seen_at       timestamptz NOT NULL
    );
    "#,
    // 4: the events outbox's hold: per shard, the last seq every event destination has
    // delivered; compaction keeps the log rows after it.
    r#"
    CREATE TABLE {s}.events_hold (
        shard int2 PRIMARY KEY,
        seq   int8 NOT NULL
    );
    "#,
    // 5: the events state of a high-availability group (webhook endpoints, delivery positions,
    // dead letters), one JSON document per name, written by the leader fenced by its epoch.
    r#"
    CREATE TABLE {s}.events_state (
        name       text        PRIMARY KEY,
        value      text        NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Whether `name` is an acceptable schema name (lower-case identifier, ≤ 63 bytes).
pub fn valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 63
}

/// `"name"`, for splicing a validated schema name into SQL.
pub fn quoted(schema: &str) -> String {
    debug_assert!(valid_schema_name(schema));
    format!("\"{schema}\"")
}

/// Creates the schema if needed and applies every migration not yet applied.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<i32, PersistenceError> {
    let s = quoted(schema);
    let tx = client.transaction().await?;
    // Serialise concurrent migrators of this schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('flashsale-migrate:' || $1::text))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.flashsale_schema_version (
             version    int4        PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.flashsale_schema_version"),
            &[],
        )
        .await?;
    let current: i32 = row.try_get(0)?;
    if current > SCHEMA_VERSION {
        return Err(PersistenceError::Config(format!(
            "schema {schema} is at version {current}, newer than this build ({SCHEMA_VERSION}); \
             upgrade flashsale"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(&sql.replace("{s}", &s)).await?;
        tx.execute(
            &format!("INSERT INTO {s}.flashsale_schema_version (version) VALUES ($1)"),
            &[&version],
        )
        .await?;
        tracing::info!(schema, version, "applied schema migration");
    }
    tx.commit().await?;
    Ok(SCHEMA_VERSION)
}

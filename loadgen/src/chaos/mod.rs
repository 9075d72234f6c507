//! Chaos testing: a workload that records every request and its outcome in a history file
//! ([`workload`], [`history`]), a fault driver that runs `flashsale serve` under that workload
//! while killing, pausing and starving it ([`driver`]), and a checker that decides whether the
//! history is one the contract allows ([`check`]). The `flashsale-chaos` binary wires them
//! ([`cli`]); docs/reliability.md says how to run them and what is checked.
//!
//! Like the rest of loadgen it is a client: it speaks the HTTP contract and reads the Postgres
//! read model's documented tables, never engine internals.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod client;
pub mod driver;
pub mod finish;
pub mod history;
pub mod workload;

use std::time::Duration;

use catalog::Catalog;
use client::Client;

/// Connections used to create the SKUs.
const SETUP_CONNECTIONS: usize = 4;

/// Creates every SKU of `catalog` (each must be new: 201).
pub async fn create_skus(client: &Client, catalog: &Catalog) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..SETUP_CONNECTIONS {
        let client = client.clone();
        let skus: Vec<_> = catalog
            .skus
            .iter()
            .skip(c)
            .step_by(SETUP_CONNECTIONS)
            .cloned()
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = client.conn(Duration::from_secs(10));
            for s in &skus {
                client.put_sku(&mut conn, s).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

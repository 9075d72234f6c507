//! Creating the run's SKUs through the admin API and reading their counts, over a few
//! connections in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::StatusCode;

use crate::api::{self, Api, SkuCounts, SkuSpec};
use crate::cli::Config;
use crate::conn::Conn;

/// Connections used for setup and for reading counts.
pub const SETUP_CONNECTIONS: usize = 16;

/// What setup did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SetupInfo {
    /// SKUs created (201).
    pub created: usize,
    /// SKUs that already existed and were updated (200).
    pub updated: usize,
}

async fn for_each_sku<T, F, Fut>(cfg: &Config, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static + Clone + Default,
    F: Fn(Conn, String) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = (Conn, anyhow::Result<T>)> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let skus = Arc::new(cfg.skus.clone());
    let workers = SETUP_CONNECTIONS.min(skus.len());
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (next, skus, f) = (next.clone(), skus.clone(), f.clone());
        let mut conn = Conn::new(
            cfg.target.addr,
            None,
            cfg.timeout().max(Duration::from_secs(5)),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(sku) = skus.get(i) else { break };
                let (c, r) = f(conn, sku.clone()).await;
                conn = c;
                out.push((i, r?));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut results = vec![T::default(); skus.len()];
    for t in tasks {
        for (i, v) in t.await.context("setup task panicked")?? {
            results[i] = v;
        }
    }
    Ok(results)
}

/// Creates (or updates) every SKU of the run with `PUT /v1/skus/{sku}`.
pub async fn create_skus(cfg: &Config, api: &Api) -> anyhow::Result<SetupInfo> {
    let spec = SkuSpec {
        name: format!("loadgen {}", cfg.scenario.as_str()),
        price_cents: cfg.price_cents,
        stock: cfg.stock,
        reservation_ttl_s: cfg.reservation_ttl_s,
    };
    let api = api.clone();
    let statuses = for_each_sku(cfg, move |mut conn, sku| {
        let (api, spec) = (api.clone(), spec.clone());
        async move {
            let r = async {
                let req = api.put_sku(&sku, &spec)?;
                let a = conn
                    .send(req)
                    .await
                    .with_context(|| format!("PUT /v1/skus/{sku}"))?;
                if !a.status.is_success() {
                    bail!(
                        "PUT /v1/skus/{sku} answered {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    );
                }
                Ok(a.status.as_u16())
            }
            .await;
            (conn, r)
        }
    })
    .await?;
    let created = statuses
        .iter()
        .filter(|&&s| s == StatusCode::CREATED.as_u16())
        .count();
    Ok(SetupInfo {
        created,
        updated: statuses.len() - created,
    })
}

/// Reads every SKU's counts with `GET /v1/skus/{sku}`.
pub async fn read_counts(cfg: &Config, api: &Api) -> anyhow::Result<Vec<SkuCounts>> {
    let api = api.clone();
    let counts = for_each_sku(cfg, move |mut conn, sku| {
        let api = api.clone();
        async move {
            let r = async {
                let a = conn
                    .send(api.get_sku(&sku)?)
                    .await
                    .with_context(|| format!("GET /v1/skus/{sku}"))?;
                if a.status != StatusCode::OK {
                    bail!(
                        "GET /v1/skus/{sku} answered {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    );
                }
                let c = api::sku_counts(&a.body).with_context(|| {
                    format!(
                        "GET /v1/skus/{sku}: no total/available/reserved/sold in {}",
                        String::from_utf8_lossy(&a.body)
                    )
                })?;
                Ok(Some(c))
            }
            .await;
            (conn, r)
        }
    })
    .await?;
    counts
        .into_iter()
        .map(|c| c.context("SKU count missing"))
        .collect()
}

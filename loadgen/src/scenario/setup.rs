//! Creating the run's SKUs through the admin API and reading their counts, with
//! `flashsale-client` (a pooled client that follows the leader of an HA group), a few requests
//! in flight at a time.

use std::time::Duration;

use anyhow::Context;
use flashsale_client::{ApiClient, SkuSettings};
use flashsale_protocol::SkuId;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::check::SkuCounts;
use crate::cli::Config;

/// Requests in flight during setup and while reading counts.
pub const SETUP_CONNECTIONS: usize = 16;

/// What setup did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SetupInfo {
    /// SKUs created (201).
    pub created: usize,
    /// SKUs that already existed and were updated (200).
    pub updated: usize,
}

/// The clients of set-up and checks: storefront (reads) and admin (SKU creation).
#[derive(Debug, Clone)]
pub struct SetupClients {
    /// With `--token`: reads counts.
    pub storefront: ApiClient,
    /// With `--admin-token`, if given: creates the SKUs.
    pub admin: Option<ApiClient>,
}

impl SetupClients {
    /// Clients of every `--target` (the first tried first), sharing one pool and one view of
    /// the leader.
    pub fn new(cfg: &Config) -> anyhow::Result<SetupClients> {
        let timeout = cfg.timeout().max(Duration::from_secs(5));
        let storefront = ApiClient::with_servers(&cfg.target_urls, &cfg.token, timeout)
            .context("a client with --token")?;
        let admin = cfg
            .admin_token
            .as_deref()
            .map(|t| {
                storefront
                    .with_token(t)
                    .context("a client with --admin-token")
            })
            .transpose()?;
        Ok(SetupClients { storefront, admin })
    }
}

/// The run's SKU ids, validated.
fn sku_ids(cfg: &Config) -> anyhow::Result<Vec<SkuId>> {
    cfg.skus
        .iter()
        .map(|s| SkuId::new(s.as_str()).with_context(|| format!("SKU id {s:?}")))
        .collect()
}

/// Creates (or updates) every SKU of the run with `PUT /v1/skus/{sku}`.
pub async fn create_skus(cfg: &Config, clients: &SetupClients) -> anyhow::Result<SetupInfo> {
    let admin = clients
        .admin
        .as_ref()
        .context("creating SKUs needs --admin-token (or pass --use-existing)")?;
    let settings = SkuSettings {
        name: format!("loadgen {}", cfg.scenario.as_str()),
        price_cents: cfg.price_cents,
        stock: cfg.stock,
        reservation_ttl_s: Some(cfg.reservation_ttl_s),
        ..SkuSettings::default()
    };
    let statuses: Vec<u16> = futures::stream::iter(sku_ids(cfg)?)
        .map(|sku| {
            let settings = &settings;
            async move {
                admin
                    .put_sku(&sku, settings)
                    .await
                    .map(|r| r.status)
                    .with_context(|| format!("PUT /v1/skus/{sku}"))
            }
        })
        .buffered(SETUP_CONNECTIONS)
        .try_collect()
        .await?;
    let created = statuses.iter().filter(|&&s| s == 201).count();
    Ok(SetupInfo {
        created,
        updated: statuses.len() - created,
    })
}

/// Reads every SKU's counts with `GET /v1/skus/{sku}`, in the order of `cfg.skus`.
pub async fn read_counts(cfg: &Config, clients: &SetupClients) -> anyhow::Result<Vec<SkuCounts>> {
    let client = &clients.storefront;
    futures::stream::iter(sku_ids(cfg)?)
        .map(|sku| async move {
            client
                .sku(&sku)
                .await
                .map(|r| SkuCounts::from(&r.value))
                .with_context(|| format!("GET /v1/skus/{sku}"))
        })
        .buffered(SETUP_CONNECTIONS)
        .try_collect()
        .await
}

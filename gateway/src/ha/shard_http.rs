//! `--ha --http-runtime shards` (ADR 0045, sixth round): a leader serves HTTP on its engine's shard
//! executors for its term. The tokio server accepts on the node's one listener whatever its
//! role; while a term serves, it hands each connection to a shard executor
//! ([`Handoff`]); at the step-down the term's connections drain before the engine stops and
//! the tokio server serves new ones again (a standby has no engine).

use std::sync::Arc;

use anyhow::Context as _;

use super::switch::SwitchEngine;
use super::term::{BoxFuture, Slot, TermHook, TermServices};
use crate::http::on_shards::{Handoff, ShardTerm, TermStop};
use crate::http::{App, ServerConfig};

/// `inner` (the term's other services), then HTTP on the term engine's shard executors
/// through `handoff`; the API is taken from `app` (filled once it is built, before the node
/// runs). Stopping the term drains its connections first, then stops `inner`'s services.
pub fn with_http_on_shards(
    inner: TermHook,
    handoff: Arc<Handoff<SwitchEngine>>,
    app: Slot<Arc<App<SwitchEngine>>>,
    config: ServerConfig,
) -> TermHook {
    Arc::new(move |epoch, engine| {
        let (inner, handoff, app, config) =
            (inner.clone(), handoff.clone(), app.clone(), config.clone());
        Box::pin(async move {
            let services = inner(epoch, engine.clone()).await?;
            let started = app
                .get()
                .context("the HTTP API is not built yet")
                .and_then(|app| {
                    ShardTerm::start(&engine, handoff, app, &config)
                        .context("cannot serve HTTP on the shard executors")
                });
            let term = match started {
                Ok(term) => term,
                Err(e) => {
                    services.stop().await;
                    return Err(e);
                }
            };
            tracing::info!(
                epoch,
                shards = engine.shard_count(),
                "http served on the shard executors for this term"
            );
            Ok(TermServices::new(move || -> BoxFuture<()> {
                Box::pin(async move {
                    if term.stop().await == TermStop::ClosedAfterGrace {
                        tracing::warn!(
                            epoch,
                            "some connections were closed before finishing at the step-down"
                        );
                    }
                    services.stop().await;
                })
            }))
        })
    })
}

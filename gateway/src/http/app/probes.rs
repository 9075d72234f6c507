//! The unauthenticated operations endpoints: `/health` (alive), `/ready` (the log is
//! writable) and `/metrics` (Prometheus text, with other parts' metrics appended).

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::response::{full, json, ResBody};
use super::{Answer, App};
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::{process, stock_metrics};

/// Renders more Prometheus text into `/metrics`.
pub struct ExtraMetrics(pub Box<dyn Fn(&mut String) + Send + Sync>);

impl std::fmt::Debug for ExtraMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraMetrics(..)")
    }
}

/// `GET /health`: 200 while the process answers.
pub(super) fn health() -> Answer {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

impl<E: Inventory> App<E> {
    /// `GET /ready`: 200 when checkouts can be accepted, else 503 with `Retry-After`.
    pub(super) fn ready(&self) -> Answer {
        if self.inventory.ready() {
            json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
        } else {
            let mut p = Problem::new(
                ProblemKind::Unavailable,
                "the write-ahead log is not writable; checkouts are refused",
            );
            p.retry_after_s = Some(1);
            Err(p)
        }
    }

    /// `GET /metrics`: the gateway's and the engine's metrics, per-SKU stock (the busiest
    /// `metrics_top_skus`; rendered at most once a second), any extra ones, then the build and
    /// the process.
    pub(super) async fn render_metrics(&self) -> Response<ResBody> {
        let stats = self.inventory.stats();
        let mut text = self.metrics.render(stats.as_ref());
        let now = std::time::Instant::now();
        let stock = match self.stock_render.fresh(now) {
            Some(stock) => stock,
            None => {
                let mut levels = self.inventory.stock_levels().await;
                let mut stock = String::new();
                stock_metrics::render(&mut stock, &mut levels, self.config.metrics_top_skus);
                self.stock_render.store(now, &stock);
                stock
            }
        };
        text.push_str(&stock);
        if let Some(extra) = &self.extra_metrics {
            (extra.0)(&mut text);
        }
        process::render_build_info(&mut text);
        if let Some(p) = process::read_process_stats() {
            process::render_process(&mut text, &p);
        }
        if let Some(events) = self.events.as_ref().and_then(|slot| slot.get()) {
            events.render_metrics(&mut text);
        }
        let mut res = Response::new(full(text));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        res
    }
}

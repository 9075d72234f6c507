//! The dashboard's ticker: once per [`TICK`], while at least one event stream is open, it
//! reads the API's counters, the engine's stats and every SKU's stock, turns them into a
//! [`Sample`](super::sample::Sample) and publishes it on the feed. With no stream open it
//! still follows the counters (so the first rates a new viewer sees are over one tick) but
//! reads no stock and publishes nothing. It stops when the feed closes or the API is gone.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::feed::DashboardFeed;
use super::sample::{Inputs, Sampler, DASHBOARD_TOP_SKUS};
use crate::http::{App, Inventory};

/// Time between two samples.
pub const TICK: Duration = Duration::from_secs(1);

/// Counts the open stock-stream connections (the stream lives outside the HTTP API).
pub type SubscriberCount = Box<dyn Fn() -> u64 + Send + Sync>;

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads one tick's inputs from `app`; stock only when `with_stock`.
pub async fn read_inputs<E: Inventory>(
    app: &App<E>,
    feed: &DashboardFeed,
    subscribers: &SubscriberCount,
    with_stock: bool,
) -> Inputs {
    let levels = if with_stock {
        app.inventory().stock_levels().await
    } else {
        Vec::new()
    };
    let metrics = app.metrics();
    Inputs {
        now_ms: now_ms(),
        stats: app.inventory().stats(),
        latency_us: metrics.latency_all_routes(),
        levels,
        http_connections: metrics
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed),
        stream_subscribers: subscribers(),
        dashboard_streams: feed.streams(),
        problems: app.recent_problems().latest(),
        problems_total: app.recent_problems().total(),
    }
}

/// Runs the ticker until `feed` closes or `app` is dropped.
pub async fn run<E: Inventory>(
    app: Weak<App<E>>,
    feed: Arc<DashboardFeed>,
    subscribers: SubscriberCount,
) {
    let mut sampler = Sampler::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if feed.is_closed() {
            return;
        }
        let Some(app) = app.upgrade() else { return };
        let watched = feed.streams() > 0;
        let inputs = read_inputs(&app, &feed, &subscribers, watched).await;
        drop(app);
        let sample = sampler.sample(inputs, DASHBOARD_TOP_SKUS);
        if watched {
            feed.publish(&sample);
        }
    }
}

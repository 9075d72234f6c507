//! A destination (one webhook endpoint or the AMQP sink): its filter, positions, delivery log,
//! dead letters and counters, shared by its per-shard workers and the admin API.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::amqp::AmqpSink;
use crate::kind::EventFilter;
use crate::metrics::DestMetrics;
use crate::signature::Secret;
use crate::store::{DeadLetter, Store};

/// Most entries kept in an endpoint's delivery log (oldest dropped first).
pub const DELIVERY_LOG_LEN: usize = 1_000;

/// Where events of a destination go.
pub enum DestKind {
    /// A webhook endpoint.
    Webhook {
        /// Target URL.
        url: String,
        /// Signing secret.
        secret: Secret,
    },
    /// The AMQP sink (one connection shared by the shards' workers).
    Amqp(Box<tokio::sync::Mutex<AmqpSink>>),
}

/// One attempt as shown by `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// Event id.
    pub event_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempt number for this event (1 = first).
    pub attempt: u32,
    /// When, RFC 3339.
    pub at: String,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// `delivered`, `failed` or `dead_lettered`.
    pub outcome: &'static str,
    /// What went wrong, for failures.
    pub error: Option<String>,
    /// Request duration in ms.
    pub duration_ms: u64,
}

/// Locks a std mutex, ignoring poisoning (the data stays consistent: plain values).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A destination's shared state.
pub struct Dest {
    /// `wh_…` for endpoints, `amqp` for the sink.
    pub id: String,
    /// Where events go.
    pub kind: DestKind,
    /// Which types pass.
    pub filter: EventFilter,
    /// Last delivered seq per shard (durable copy in the store).
    pub positions: Mutex<Vec<u64>>,
    /// Last delivered seq per shard as stored on disk (behind or equal to `positions`): the
    /// log hold and the shard ledgers follow these, so a restart finds what it needs.
    pub stored: Mutex<Vec<u64>>,
    /// Held while the positions file is written, so the shards' workers write it one at a
    /// time and the newest positions are written last.
    pub save: tokio::sync::Mutex<()>,
    /// Recent attempts (bounded).
    pub deliveries: Mutex<VecDeque<DeliveryRecord>>,
    /// Dead letters (bounded, durable copy in the store).
    pub dead: Mutex<Vec<DeadLetter>>,
    /// Counters.
    pub metrics: DestMetrics,
    /// Set when the destination is removed or the server stops.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Dest {
    /// Appends to the delivery log, dropping the oldest entry when full.
    pub fn log(&self, rec: DeliveryRecord) {
        let mut d = lock(&self.deliveries);
        if d.len() >= DELIVERY_LOG_LEN {
            d.pop_front();
        }
        d.push_back(rec);
    }

    /// Adds a dead letter (dropping the oldest beyond the bound) and stores the list.
    pub async fn add_dead(&self, store: &Store, dl: DeadLetter) {
        let list = {
            let mut dead = lock(&self.dead);
            if dead.len() >= crate::store::MAX_DEAD_LETTERS {
                dead.remove(0);
            }
            dead.push(dl);
            dead.clone()
        };
        if let Err(e) = store.save_dead(&self.id, &list).await {
            tracing::error!(destination = %self.id, error = %e, "cannot store dead letters");
        }
    }

    /// Whether the destination was asked to stop.
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

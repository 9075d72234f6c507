//! The events service: loads the durable endpoints and positions, runs one worker per
//! destination and shard, and answers the admin API (create, list, delete, deliveries,
//! replay). Reservations never wait for it: it only reads the committed log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use serde::Serialize;

use crate::amqp::{AmqpConfig, AmqpSink};
use crate::backoff::RetryPolicy;
use crate::dest::{lock, DeliveryRecord, Dest, DestKind};
use crate::error::EventsError;
use crate::kind::{EventFilter, UnknownEventType};
use crate::ledger::Ledger;
use crate::metrics::DestMetrics;
use crate::outgoing::rfc3339_ms;
use crate::runtime::{DeliveryRuntime, DeliveryThread};
use crate::signature::Secret;
use crate::source::LogSource;
use crate::store::{EndpointRecord, Store};
use crate::target::{check_target, TargetError};
use crate::worker::now_ms;

/// Most webhook endpoints.
pub const MAX_ENDPOINTS: usize = 1_000;

/// How long [`EventService::stop`] waits for its workers before aborting them.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Settings of the events service.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Directory of the durable state (`<data dir>/events`).
    pub state_dir: PathBuf,
    /// Number of engine shards.
    pub shard_count: u16,
    /// Accept loopback and private webhook targets.
    pub allow_private: bool,
    /// Webhook retry schedule (the AMQP sink retries forever, capped at 5 s between tries).
    pub retry: RetryPolicy,
    /// The RabbitMQ sink, if any.
    pub amqp: Option<AmqpConfig>,
    /// Most log records read per batch (bounds memory per worker).
    pub batch: usize,
    /// Pause when caught up.
    pub poll_interval: Duration,
    /// Checked before every delivery: closed, workers wait (a high-availability node that
    /// is not, or no longer, sure it leads).
    pub gate: crate::gate::Gate,
    /// Where delivery runs (default: a thread of its own at [`DEFAULT_DELIVERY_NICE`]).
    pub runtime: DeliveryRuntime,
}

/// The default nice value of the delivery thread: below the shards and HTTP workers, so under
/// CPU contention delivery lags rather than taking the reservations' CPU (ADR 0037).
pub const DEFAULT_DELIVERY_NICE: i32 = 10;

impl EventsConfig {
    /// Defaults: 1024-record batches, 20 ms poll, default retry policy, no AMQP, delivery
    /// on a thread of its own.
    pub fn new(state_dir: PathBuf, shard_count: u16) -> EventsConfig {
        EventsConfig {
            state_dir,
            shard_count,
            allow_private: false,
            retry: RetryPolicy::default(),
            amqp: None,
            batch: 1024,
            poll_interval: Duration::from_millis(20),
            gate: crate::gate::Gate::open(),
            runtime: DeliveryRuntime::Dedicated {
                nice: DEFAULT_DELIVERY_NICE,
            },
        }
    }
}

/// Why an endpoint cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The URL is refused.
    #[error("url: {0}")]
    Target(#[from] TargetError),
    /// The event list is empty or names an unknown type.
    #[error("events: {0}")]
    Events(#[from] UnknownEventType),
    /// [`MAX_ENDPOINTS`] exist already.
    #[error("at most {MAX_ENDPOINTS} webhook endpoints")]
    TooMany,
    /// Storing it failed.
    #[error(transparent)]
    Store(#[from] EventsError),
}

/// An endpoint as the API shows it (the secret only at creation).
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// `wh_…`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// `["*"]` or type names.
    pub events: Vec<String>,
    /// `whsec_…`, only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When created.
    pub created_at: String,
    /// Dead letters waiting for a replay.
    pub dead_letters: usize,
}

/// State shared by the service and its workers.
pub struct Shared {
    /// Settings.
    pub config: EventsConfig,
    /// The committed log.
    pub source: LogSource,
    /// Durable state.
    pub store: Store,
    /// Webhook HTTP client.
    pub http: reqwest::Client,
    /// Endpoints by id, with their stored record.
    endpoints: Mutex<BTreeMap<String, (EndpointRecord, Arc<Dest>)>>,
    /// The AMQP sink.
    amqp: Option<Arc<Dest>>,
    /// Running workers.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Per shard: the ledger as last stored (`None` until [`EventService::start`] decided
    /// where it starts).
    ledgers: Mutex<Vec<Option<Arc<Ledger>>>>,
    /// Set when the service stops (ends the ledger keepers).
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Records that `dest` delivered everything of `shard` up to `seq`: stores the position,
    /// then (only once stored) takes it as the destination's position and moves the hold on
    /// the log. `Err` if it could not be stored: the worker delivers the batch again later
    /// (same ids), or stops on [`EventsError::Fenced`] (this node no longer leads).
    pub async fn advance(&self, dest: &Dest, shard: u16, seq: u64) -> Result<(), EventsError> {
        let _writing = dest.save.lock().await;
        if dest.stopped() {
            // Deleted (its files are gone) or stopping: nothing to store.
            return Ok(());
        }
        let mut positions = lock(&dest.positions).clone();
        if let Some(slot) = positions.get_mut(usize::from(shard)) {
            *slot = seq;
        }
        if let Err(e) = self.store.save_positions(&dest.id, &positions).await {
            tracing::error!(destination = %dest.id, error = %e, "cannot store the delivery position");
            return Err(e);
        }
        *lock(&dest.stored) = positions;
        if let Some(slot) = lock(&dest.positions).get_mut(usize::from(shard)) {
            *slot = seq;
        }
        self.update_hold(shard).await;
        Ok(())
    }

    /// The first seq of `shard` some destination (by its stored position) or the shard's
    /// stored ledger still needs.
    fn first_needed(&self, shard: u16) -> u64 {
        let slot = usize::from(shard);
        let mut low = match lock(&self.ledgers).get(slot) {
            Some(Some(l)) => l.seq.saturating_add(1),
            // Not decided yet (before start): keep the whole log.
            _ => 1,
        };
        let eps = lock(&self.endpoints);
        for d in eps.values().map(|(_, d)| d).chain(self.amqp.iter()) {
            if let Some(p) = lock(&d.stored).get(slot) {
                low = low.min(p.saturating_add(1));
            }
        }
        low
    }

    /// The lowest stored position of any destination on `shard` (`None` without destinations):
    /// how far the shard's ledger keeper may fold.
    pub fn slowest(&self, shard: u16) -> Option<u64> {
        let slot = usize::from(shard);
        let eps = lock(&self.endpoints);
        eps.values()
            .map(|(_, d)| d)
            .chain(self.amqp.iter())
            .filter_map(|d| lock(&d.stored).get(slot).copied())
            .min()
    }

    /// A copy of the stored ledger of `shard` (`None` before [`EventService::start`]).
    pub fn stored_ledger(&self, shard: u16) -> Option<Arc<Ledger>> {
        lock(&self.ledgers)
            .get(usize::from(shard))
            .cloned()
            .flatten()
    }

    /// Records that the ledger of `shard` is stored as `ledger`, and moves the log hold.
    pub async fn ledger_stored(&self, shard: u16, ledger: Arc<Ledger>) {
        if let Some(slot) = lock(&self.ledgers).get_mut(usize::from(shard)) {
            *slot = Some(ledger);
        }
        self.update_hold(shard).await;
    }

    /// Moves the hold on log compaction of `shard` to what the destinations still need.
    async fn update_hold(&self, shard: u16) {
        let low = self.first_needed(shard);
        if let Err(e) = self.source.hold(shard, low).await {
            tracing::warn!(shard, error = %e, "events: cannot store the log hold; retried at the next batch");
        }
    }
}

/// The running events service (cheap to clone).
#[derive(Clone)]
pub struct EventService {
    shared: Arc<Shared>,
    /// Where workers, keepers and replays run; a dedicated thread ends with the last clone.
    delivery: Arc<DeliveryThread>,
}

impl std::fmt::Debug for EventService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventService").finish_non_exhaustive()
    }
}

fn new_dest(
    id: String,
    kind: DestKind,
    filter: EventFilter,
    positions: Vec<u64>,
    shards: usize,
) -> Dest {
    let (stop, _) = tokio::sync::watch::channel(false);
    Dest {
        id,
        kind,
        filter,
        positions: Mutex::new(positions.clone()),
        stored: Mutex::new(positions),
        save: tokio::sync::Mutex::new(()),
        deliveries: Mutex::new(Default::default()),
        dead: Mutex::new(Vec::new()),
        metrics: DestMetrics::new(shards),
        stop,
    }
}

impl EventService {
    /// Loads the endpoints and positions stored in `<state dir>` and holds the log segments
    /// they still need. Call before the engine starts (so no needed segment is removed); then
    /// [`Self::start`].
    pub async fn prepare(
        config: EventsConfig,
        source: LogSource,
    ) -> Result<EventService, EventsError> {
        let store = Store::open(&config.state_dir)?;
        Self::prepare_with(config, source, store).await
    }

    /// Like [`Self::prepare`] with the state in `store` (a high-availability leader: the
    /// shared Postgres schema, written fenced at its epoch).
    pub async fn prepare_with(
        config: EventsConfig,
        source: LogSource,
        store: Store,
    ) -> Result<EventService, EventsError> {
        let shards = usize::from(config.shard_count);
        let delivery = Arc::new(DeliveryThread::start(config.runtime)?);
        let http = crate::webhook::client().map_err(|e| EventsError::Config(e.to_string()))?;
        let mut endpoints = BTreeMap::new();
        for rec in store.load_endpoints().await? {
            let secret = Secret::parse(&rec.secret).map_err(|e| EventsError::Corrupt {
                path: config.state_dir.join("endpoints.json"),
                reason: e.to_string(),
            })?;
            let filter = EventFilter::parse(&rec.events).map_err(|e| EventsError::Corrupt {
                path: config.state_dir.join("endpoints.json"),
                reason: e.to_string(),
            })?;
            let positions = store.load_positions(&rec.id).await?.unwrap_or_default();
            let d = new_dest(
                rec.id.clone(),
                DestKind::Webhook {
                    url: rec.url.clone(),
                    secret,
                },
                filter,
                positions,
                shards,
            );
            let dead = store.load_dead(&rec.id).await?;
            *lock(&d.dead) = dead;
            endpoints.insert(rec.id.clone(), (rec, Arc::new(d)));
        }
        let amqp = match &config.amqp {
            Some(cfg) => {
                let positions = store.load_positions("amqp").await?.unwrap_or_default();
                Some(Arc::new(new_dest(
                    "amqp".into(),
                    DestKind::Amqp(Box::new(tokio::sync::Mutex::new(AmqpSink::new(
                        cfg.clone(),
                    )))),
                    EventFilter::All,
                    positions,
                    shards,
                )))
            }
            None => None,
        };
        let mut ledgers = Vec::with_capacity(shards);
        for shard in 0..config.shard_count {
            ledgers.push(
                store
                    .load_ledger(shard)
                    .await?
                    .map(|l| Arc::new(Ledger::from_stored(l))),
            );
        }
        let (stop, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            source,
            store,
            http,
            endpoints: Mutex::new(endpoints),
            amqp,
            tasks: Mutex::new(Vec::new()),
            ledgers: Mutex::new(ledgers),
            stop,
        });
        for shard in 0..shared.config.shard_count {
            shared.source.hold_now(shard, shared.first_needed(shard));
        }
        Ok(EventService { shared, delivery })
    }

    /// Starts delivery (call after the engine recovered its log, within a tokio runtime).
    /// Destinations without stored positions start at the current end of the log.
    pub async fn start(&self) -> Result<(), EventsError> {
        let dests: Vec<Arc<Dest>> = {
            let eps = lock(&self.shared.endpoints);
            eps.values()
                .map(|(_, d)| d.clone())
                .chain(self.shared.amqp.clone())
                .collect()
        };
        for shard in 0..self.shared.config.shard_count {
            self.init_ledger(shard).await?;
        }
        for d in &dests {
            self.init_positions(d).await?;
        }
        for shard in 0..self.shared.config.shard_count {
            self.shared.update_hold(shard).await;
            let task = self
                .delivery
                .spawn(crate::keeper::run(self.shared.clone(), shard));
            lock(&self.shared.tasks).push(task);
        }
        for d in dests {
            self.spawn(d);
        }
        Ok(())
    }

    /// Decides where the ledger of `shard` starts if none is stored: before the first record
    /// still in the log (complete if that is seq 1 or the log is empty), and stores it.
    async fn init_ledger(&self, shard: u16) -> Result<(), EventsError> {
        if self.shared.stored_ledger(shard).is_some() {
            return Ok(());
        }
        let first = self.shared.source.read(shard, 0, 1).await?;
        let ledger = match first.first() {
            Some(&(seq, _)) => Ledger::starting_after(seq.saturating_sub(1), seq == 1),
            None => {
                let head = self.shared.source.head(shard).await?;
                Ledger::starting_after(head, head == 0)
            }
        };
        if !ledger.complete {
            tracing::warn!(
                shard,
                from_seq = ledger.seq + 1,
                "events: the log before this seq was compacted before events kept a ledger; \
                 sku.sold_out and order lines cover only SKUs and holds logged from here on"
            );
        }
        self.shared
            .store
            .save_ledger(shard, ledger.to_stored())
            .await?;
        self.shared.ledger_stored(shard, Arc::new(ledger)).await;
        Ok(())
    }

    /// Fills missing shard positions with the current end of the log and stores them.
    async fn init_positions(&self, d: &Dest) -> Result<(), EventsError> {
        let n = usize::from(self.shared.config.shard_count);
        let have = lock(&d.positions).len();
        if have >= n {
            return Ok(());
        }
        let mut heads = Vec::with_capacity(n);
        for shard in 0..self.shared.config.shard_count {
            heads.push(self.shared.source.head(shard).await?);
        }
        let positions = {
            let mut p = lock(&d.positions);
            let have = p.len();
            p.extend_from_slice(&heads[have..]);
            p.clone()
        };
        self.shared.store.save_positions(&d.id, &positions).await?;
        *lock(&d.stored) = positions;
        Ok(())
    }

    fn spawn(&self, d: Arc<Dest>) {
        let mut tasks = lock(&self.shared.tasks);
        tasks.retain(|t| !t.is_finished());
        for shard in 0..self.shared.config.shard_count {
            tasks.push(self.delivery.spawn(crate::worker::run(
                self.shared.clone(),
                d.clone(),
                shard,
            )));
        }
    }

    /// Creates a webhook endpoint receiving events committed from now on.
    pub async fn create(&self, url: &str, events: &[String]) -> Result<EndpointView, CreateError> {
        let filter = EventFilter::parse(events)?;
        let url = check_target(url, self.shared.config.allow_private).await?;
        if lock(&self.shared.endpoints).len() >= MAX_ENDPOINTS {
            return Err(CreateError::TooMany);
        }
        let mut idb = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut idb);
        let id = format!(
            "wh_{}",
            idb.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let secret = Secret::generate();
        let rec = EndpointRecord {
            id: id.clone(),
            url: url.to_string(),
            events: filter.names(),
            secret: secret.encoded(),
            created_at: rfc3339_ms(now_ms()),
        };
        let d = Arc::new(new_dest(
            id.clone(),
            DestKind::Webhook {
                url: rec.url.clone(),
                secret,
            },
            filter,
            Vec::new(),
            usize::from(self.shared.config.shard_count),
        ));
        self.init_positions(&d).await?;
        let all = {
            let mut eps = lock(&self.shared.endpoints);
            eps.insert(id.clone(), (rec.clone(), d.clone()));
            eps.values().map(|(r, _)| r.clone()).collect::<Vec<_>>()
        };
        if let Err(e) = self.shared.store.save_endpoints(&all).await {
            lock(&self.shared.endpoints).remove(&id);
            self.shared.store.remove(&id).await;
            return Err(e.into());
        }
        for shard in 0..self.shared.config.shard_count {
            self.shared.update_hold(shard).await;
        }
        self.spawn(d);
        Ok(EndpointView {
            id,
            url: rec.url,
            events: rec.events,
            secret: Some(rec.secret),
            created_at: rec.created_at,
            dead_letters: 0,
        })
    }

    /// Every endpoint (without secrets), by id.
    pub fn list(&self) -> Vec<EndpointView> {
        lock(&self.shared.endpoints)
            .values()
            .map(|(r, d)| view(r, d))
            .collect()
    }

    /// One endpoint (without secret).
    pub fn get(&self, id: &str) -> Option<EndpointView> {
        lock(&self.shared.endpoints)
            .get(id)
            .map(|(r, d)| view(r, d))
    }

    /// Deletes an endpoint and stops its delivery; false if unknown.
    pub async fn delete(&self, id: &str) -> Result<bool, EventsError> {
        let (removed, all) = {
            let mut eps = lock(&self.shared.endpoints);
            let removed = eps.remove(id);
            (
                removed,
                eps.values().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
            )
        };
        let Some((_, d)) = removed else {
            return Ok(false);
        };
        let _ = d.stop.send(true);
        self.shared.store.save_endpoints(&all).await?;
        self.shared.store.remove(id).await;
        // Release what only this endpoint held (in the background: never urgent).
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for shard in 0..shared.config.shard_count {
                shared.update_hold(shard).await;
            }
        });
        Ok(true)
    }

    /// The recent attempts of an endpoint, newest first.
    pub fn deliveries(&self, id: &str) -> Option<Vec<DeliveryRecord>> {
        let eps = lock(&self.shared.endpoints);
        let (_, d) = eps.get(id)?;
        let list = lock(&d.deliveries).iter().rev().cloned().collect();
        Some(list)
    }

    /// Re-delivers the endpoint's dead letters in order (in the background); returns how many
    /// were queued, or `None` for an unknown endpoint. Letters that fail again are dead again.
    pub fn replay(&self, id: &str) -> Option<usize> {
        let d = lock(&self.shared.endpoints)
            .get(id)
            .map(|(_, d)| d.clone())?;
        let letters = std::mem::take(&mut *lock(&d.dead));
        let n = letters.len();
        if n == 0 {
            return Some(0);
        }
        let shared = self.shared.clone();
        let task = self.delivery.spawn(async move {
            if let Err(e) = shared.store.save_dead(&d.id, &[]).await {
                tracing::error!(destination = %d.id, error = %e, "cannot store dead letters");
            }
            for (i, dl) in letters.iter().enumerate() {
                let body = bytes::Bytes::copy_from_slice(dl.body.as_bytes());
                if !crate::worker::deliver_one(&shared, &d, &dl.id, &dl.kind, &body).await {
                    // Stopped: keep what was not replayed.
                    let rest = letters[i..].to_vec();
                    let list = {
                        let mut dead = lock(&d.dead);
                        dead.extend(rest);
                        dead.clone()
                    };
                    let _ = shared.store.save_dead(&d.id, &list).await;
                    return;
                }
            }
        });
        lock(&self.shared.tasks).push(task);
        Some(n)
    }

    /// Appends the Prometheus metrics of every destination.
    pub fn render_metrics(&self, out: &mut String) {
        crate::metrics::render_help(out);
        let now = now_ms();
        let eps = lock(&self.shared.endpoints);
        for (_, d) in eps.values() {
            let p = lock(&d.positions).clone();
            crate::metrics::render(out, "webhook", &d.id, &d.metrics, &p, now);
        }
        if let Some(d) = &self.shared.amqp {
            let p = lock(&d.positions).clone();
            crate::metrics::render(out, "amqp", &d.id, &d.metrics, &p, now);
        }
    }

    /// Stops every worker and waits for them, at most 5 s (positions already stored stay).
    pub async fn stop(&self) {
        let _ = self.shared.stop.send(true);
        {
            let eps = lock(&self.shared.endpoints);
            for (_, d) in eps.values() {
                let _ = d.stop.send(true);
            }
        }
        if let Some(d) = &self.shared.amqp {
            let _ = d.stop.send(true);
        }
        // Workers stop at their next step; one stuck in a send or a connect is aborted after
        // the wait (safe: positions are stored only after delivery, so a restart resends).
        let tasks = std::mem::take(&mut *lock(&self.shared.tasks));
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
                tracing::warn!("events: a delivery worker did not stop in time; aborted");
            }
        }
    }
}

fn view(r: &EndpointRecord, d: &Dest) -> EndpointView {
    EndpointView {
        id: r.id.clone(),
        url: r.url.clone(),
        events: r.events.clone(),
        secret: None,
        created_at: r.created_at.clone(),
        dead_letters: lock(&d.dead).len(),
    }
}

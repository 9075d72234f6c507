//! The services a high-availability leader runs for one term besides its engine (ADR 0027):
//!
//! - **event delivery** (webhooks, the AMQP sink) from the committed Postgres log, with the
//!   endpoint registry, delivery positions and dead letters in the shared schema
//!   (`events_state`), every write fenced by the term's epoch; delivery is gated by the
//!   node's local lease deadline, so a leader resumed after a pause stops at once;
//! - **the waiting room**, rebuilt from its journal (schema `<schema>_queues`, fenced by the
//!   group's lease) and signing passes with a key every node derives from one secret kept in
//!   the shared schema, so a pass stays valid on the next leader.
//!
//! Started by the controller's term hook after the engine caught up, before the node serves;
//! stopped right after it stops serving.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use flashsale_engine::{Engine, SystemClock};
use flashsale_events::{EventService, EventsConfig, Gate, LogSource, PgStore, Store};
use flashsale_persistence::PostgresBackend;
use flashsale_waiting_room::PassKey;

use super::state::ClusterState;
use super::term::{BoxFuture, Slot, TermHook, TermServices};
use crate::waiting_room::QueueService;

/// Name of the group secret the waiting room's pass key is derived from.
pub const PASS_SECRET: &str = "waiting-room-pass-key";

/// What every term of this node needs to start its services.
pub struct LeaderServices {
    /// The group's log (unfenced handle; each term fences it with its epoch).
    pub group: PostgresBackend,
    /// Event delivery settings (state dir unused: the state is in Postgres).
    pub events: EventsConfig,
    /// Where the API finds the term's event service.
    pub events_slot: Slot<EventService>,
    /// The waiting room's journal (schema `<schema>_queues`, unfenced handle), if enabled.
    pub queues: Option<PostgresBackend>,
    /// The pass key, the same on every node of the group.
    pub pass_key: PassKey,
    /// Where the API finds the term's waiting room.
    pub queue_slot: Slot<Arc<QueueService>>,
    /// How the room spreads waiting tickets' poll intervals (`--queue-poll-spread`).
    pub poll_spread: flashsale_waiting_room::PollSpread,
    /// This node's view of the group: the delivery gate follows its leadership.
    pub state: Arc<ClusterState>,
}

impl std::fmt::Debug for LeaderServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderServices")
            .field("group", &self.group.schema())
            .field("queues", &self.queues.is_some())
            .finish_non_exhaustive()
    }
}

/// The pass key of a group: derived from the secret kept in the shared schema (created by the
/// first node that asks), so every node signs and checks the same passes.
pub async fn group_pass_key(group: &PostgresBackend) -> anyhow::Result<PassKey> {
    let store = flashsale_persistence::postgres::lease::GroupStore::connect(group)
        .await
        .context("--ha: cannot reach Postgres")?;
    let candidate: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let secret = store
        .shared_secret(PASS_SECRET, &candidate)
        .await
        .context("--ha: reading the group's pass secret")?;
    Ok(crate::waiting_room::pass_key_from(secret.as_bytes()))
}

impl LeaderServices {
    /// The controller's hook: starts both services for a term, or fails the term.
    pub fn hook(self: Arc<Self>) -> TermHook {
        Arc::new(move |epoch, engine| {
            let this = self.clone();
            Box::pin(async move { this.start(epoch, engine).await })
        })
    }

    /// Starts the waiting room for the term at `epoch` (before the node serves: reservations
    /// need it for their pass check), and event delivery in the background (nothing waits for
    /// it: its admin endpoints answer `503 unavailable` until it runs).
    async fn start(self: Arc<Self>, epoch: u64, engine: Engine) -> anyhow::Result<TermServices> {
        let room = self
            .start_room(epoch, engine)
            .await
            .context("cannot open the waiting room")?;
        if let Some((service, _)) = &room {
            self.queue_slot.set(Some(service.clone()));
        }
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        let events = tokio::spawn(self.clone().run_events_start(epoch, cancelled));
        let this = self.clone();
        Ok(TermServices::new(move || -> BoxFuture<()> {
            Box::pin(async move {
                this.queue_slot.set(None);
                let _ = cancel.send(true);
                // Awaited before the slot is emptied, so a start finishing late is undone too.
                let started = events.await.ok().flatten();
                this.events_slot.set(None);
                if let Some(events) = started {
                    events.stop().await;
                }
                if let Some((service, ticker)) = room {
                    ticker.abort();
                    let _ = ticker.await;
                    // The journal's thread is joined when the last handle drops: off the
                    // async threads. Its unflushed records were fenced anyway.
                    let _ = tokio::task::spawn_blocking(move || drop(service)).await;
                }
            })
        }))
    }

    /// Starts event delivery for the term, retrying (200 ms doubling to 5 s) until it runs or
    /// the term ends; puts it in the API's slot.
    async fn run_events_start(
        self: Arc<Self>,
        epoch: u64,
        mut cancelled: tokio::sync::watch::Receiver<bool>,
    ) -> Option<EventService> {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.start_events(epoch).await {
                Ok(service) => {
                    self.events_slot.set(Some(service.clone()));
                    return Some(service);
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    epoch,
                    "cannot start event delivery; retrying"
                ),
            }
            if *cancelled.borrow() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancelled.changed() => return None,
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Event delivery of this term: state and hold written fenced at `epoch`.
    async fn start_events(&self, epoch: u64) -> anyhow::Result<EventService> {
        let fenced = self.group.fenced(epoch);
        let mut config = self.events.clone();
        let state = self.state.clone();
        config.gate = Gate::checked(move || state.is_leader());
        let service = EventService::prepare_with(
            config,
            LogSource::postgres(&fenced),
            Store::Postgres(PgStore::new(&fenced)),
        )
        .await?;
        service.start().await?;
        Ok(service)
    }

    /// The waiting room of this term, replayed from its journal (fenced at `epoch` by the
    /// group's lease), with its ticker on the term's engine.
    async fn start_room(
        &self,
        epoch: u64,
        engine: Engine,
    ) -> anyhow::Result<Option<(Arc<QueueService>, tokio::task::JoinHandle<()>)>> {
        let Some(queues) = &self.queues else {
            return Ok(None);
        };
        let backend: Arc<dyn flashsale_engine::LogBackend> =
            Arc::new(queues.fenced_by(epoch, &self.group));
        let key = self.pass_key.clone();
        let service = tokio::task::spawn_blocking(move || {
            crate::waiting_room::open(backend, key, Arc::new(SystemClock))
        })
        .await
        .context("waiting room open task")??;
        service.set_poll_spread(self.poll_spread);
        let ticker = service.clone().spawn_ticker(Arc::new(engine));
        Ok(Some((service, ticker)))
    }
}

//! Helpers shared by the engine's integration tests: building SKUs and requests, and driving a
//! simulation [`World`] the way callers drive the runtime.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use flashsale_engine::node::caller::{
    prepare_reserve, KeyInFlight, KeysInFlight, Prepared, Probe, ReserveReply,
};
use flashsale_engine::node::commit::SnapshotPolicy;
use flashsale_engine::node::message::Request;
use flashsale_engine::node::world::{Ticket, World};
use flashsale_engine::node::NodeConfig;
use flashsale_engine::shard::shard_of;
use flashsale_engine::{CommandError, ReservationView, ReserveRequest};
use flashsale_protocol::{BuyerId, IdempotencyKey, KeyOwner, ScopedKey, SkuId, SkuSpec};

/// A SKU id.
pub fn sku(s: &str) -> SkuId {
    SkuId::new(s).expect("sku")
}

/// A buyer id.
pub fn buyer(s: &str) -> BuyerId {
    BuyerId::new(s).expect("buyer")
}

/// A key of credential `owner`.
pub fn key(owner: u64, k: &str) -> ScopedKey {
    ScopedKey::new(
        KeyOwner::Credential(owner),
        IdempotencyKey::new(k).expect("key"),
    )
}

/// A SKU with `stock` units, no limit, open, 10 s TTL.
pub fn spec(id: &str, stock: u64) -> SkuSpec {
    SkuSpec {
        sku: sku(id),
        name: id.into(),
        price_cents: 100,
        stock,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 10_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(10_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

/// A world whose nodes never snapshot on their own and expire everything due per tick.
pub fn world(shards: usize) -> World {
    world_with_snapshots(shards, 0)
}

/// A world whose nodes snapshot every `every_events` logged events (0 = never), so crashes
/// restore from a snapshot plus the log after it.
pub fn world_with_snapshots(shards: usize, every_events: u64) -> World {
    World::new(
        shards,
        NodeConfig {
            expiry_batch: 1_024,
            snapshots: SnapshotPolicy {
                every_events,
                state_factor: 0,
            },
        },
    )
}

/// Creates a SKU on its shard and settles.
pub fn upsert(w: &mut World, now: u64, s: SkuSpec) {
    let to = shard_of(&s.sku, w.shard_count());
    let t = w.submit(to, Request::Upsert(s));
    w.settle(now);
    assert!(matches!(w.take_reply(t), Some(Ok(_))));
}

/// What a submitted reservation is waiting for.
#[derive(Debug)]
pub enum Submitted {
    /// A reply under this ticket.
    Ticket(Ticket),
    /// A probe of the key's home (refused at the gates), then this error if the key is free.
    Probe(Ticket, CommandError),
    /// Refused at the gates, no key.
    Refused(CommandError),
}

/// Claims and submits a reservation as the runtime's caller side does (nothing delivered yet),
/// without the callers' keys-in-flight map (so duplicates reach the home shard).
pub fn submit_reserve(w: &mut World, now: u64, req: ReserveRequest) -> Submitted {
    submit_keyed(w, now, req, None).0
}

/// [`submit_reserve`] through the callers' keys-in-flight map, as `Engine::reserve` does: the
/// returned guard must live until the answer is taken.
pub fn submit_keyed(
    w: &mut World,
    now: u64,
    req: ReserveRequest,
    keys: Option<&Arc<KeysInFlight>>,
) -> (Submitted, Option<KeyInFlight>) {
    let guard = match (keys, &req.idempotency_key) {
        (Some(keys), Some(k)) => match keys.enter(k) {
            Ok(g) => Some(g),
            Err(e) => return (Submitted::Refused(e), None),
        },
        _ => None,
    };
    (submit_unguarded(w, now, req), guard)
}

fn submit_unguarded(w: &mut World, now: u64, req: ReserveRequest) -> Submitted {
    let n = w.shard_count();
    match prepare_reserve(req, n, now, |s| w.gate_info(s)) {
        Err(e) => Submitted::Refused(e),
        Ok(Prepared::Send { home, request }) => Submitted::Ticket(w.submit(home, request)),
        Ok(Prepared::Refused { error, probe: None }) => Submitted::Refused(error),
        Ok(Prepared::Refused {
            error,
            probe:
                Some(Probe {
                    home,
                    key,
                    request_hash,
                }),
        }) => Submitted::Probe(w.submit(home, Request::Probe(key, request_hash)), error),
    }
}

/// The outcome of a submitted reservation, once its reply is there (`None` while pending).
pub fn outcome(w: &mut World, s: &Submitted) -> Option<Result<ReservationView, CommandError>> {
    match s {
        Submitted::Refused(e) => Some(Err(e.clone())),
        Submitted::Ticket(t) => Some(match w.take_reply(*t)? {
            Ok(a) => match ReserveReply::of(a) {
                Ok(ReserveReply::Whole(v)) => Ok(v),
                Ok(ReserveReply::Complete(p)) => Ok(w.assemble(p)),
                Ok(ReserveReply::NoReservation) => Err(CommandError::Internal("nothing".into())),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }),
        Submitted::Probe(t, gate_error) => Some(match w.take_reply(*t)? {
            Ok(a) => match ReserveReply::of(a) {
                Ok(ReserveReply::Whole(v)) => Ok(v),
                Ok(ReserveReply::Complete(p)) => Ok(w.assemble(p)),
                Ok(ReserveReply::NoReservation) => Err(gate_error.clone()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }),
    }
}

/// Whether a submitted request still waits for its reply (without taking it).
pub fn pending(w: &World, s: &Submitted) -> bool {
    match s {
        Submitted::Ticket(t) | Submitted::Probe(t, _) => !w.has_reply(*t),
        Submitted::Refused(_) => false,
    }
}

/// Creates SKUs `{prefix}0..8` (each with `stock` units at `price_cents`) and returns the names
/// of two that live on different shards.
pub fn skus_on_two_shards(
    w: &mut World,
    prefix: &str,
    stock: u64,
    price_cents: u64,
) -> (String, String) {
    let names: Vec<String> = (0..8).map(|i| format!("{prefix}{i}")).collect();
    for n in &names {
        let mut s = spec(n, stock);
        s.price_cents = price_cents;
        upsert(w, 0, s);
    }
    let shards = w.shard_count();
    let x = names[0].clone();
    let y = names
        .iter()
        .find(|n| shard_of(&sku(n), shards) != shard_of(&sku(&x), shards))
        .expect("two shards")
        .clone();
    (x, y)
}

/// Every shard's invariants and gates hold (only with no claim in flight).
pub fn check_all(w: &World) {
    for n in w.nodes() {
        n.shard().check_invariants().unwrap();
        n.shard().check_gates().unwrap();
    }
}

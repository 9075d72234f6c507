//! What flows into and out of a [`super::ShardNode`]: requests from callers, messages between
//! shards, answers, and the outputs a driver (the glommio runtime or the simulation) carries out.

use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::{OrderId, PaymentRef, ReservationId, ScopedKey, ShardId, SkuId, SkuSpec};

use crate::command::CommandError;
use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::shard::{
    ExtendCommand, FollowAction, GroupState, OrderPart, OrderQuery, PartView, ReservationQuery,
    ReserveCommand, ShardPage,
};
use crate::view::{OrderView, ReservationView, SkuView};

/// A cross-shard reservation handed to its home shard: `(shard, command)`, home first; every
/// command carries its lines' claims.
#[derive(Debug)]
pub struct GroupRequest {
    /// The parts, home first.
    pub parts: Vec<(ShardId, ReserveCommand)>,
}

/// A caller's request to one shard.
#[derive(Debug)]
pub enum Request {
    /// Create or replace a SKU.
    Upsert(SkuSpec),
    /// Add stock.
    Restock(SkuId, u64, Option<ScopedKey>),
    /// A SKU's view.
    Sku(SkuId),
    /// SKUs after a cursor.
    List {
        /// Strictly after this SKU.
        after: Option<SkuId>,
        /// At most this many.
        limit: usize,
    },
    /// A reservation whose lines all live on this shard (and whose key, if any, too).
    Reserve(Box<ReserveCommand>),
    /// A cross-shard reservation this shard coordinates as its home.
    ReserveGroup(Box<GroupRequest>),
    /// Whether a key has a reservation (a keyed request refused at the gates asks).
    Probe(ScopedKey, u64),
    /// This shard's part of a reservation.
    Part(ReservationId),
    /// Confirm on the home shard.
    Confirm(ReservationId, PaymentRef),
    /// Cancel on the home shard.
    Cancel(ReservationId),
    /// Extend the hold on the home shard (the parts follow).
    Extend(Box<ExtendCommand>),
    /// An order of this shard.
    Order(OrderId),
    /// A page of a buyer's home reservations on this shard.
    BuyerReservations(Box<ReservationQuery>),
    /// A page of a buyer's home orders on this shard.
    BuyerOrders(Box<OrderQuery>),
    /// Every cross-shard part known here (recovery).
    GroupStates,
    /// Apply a decision to this shard's part (recovery).
    Follow(ReservationId, FollowAction),
    /// Expire everything due (recovery).
    ExpireAll,
}

impl Request {
    /// Whether the request changes state (refused while the log is not writable).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Request::Upsert(..)
                | Request::Restock(..)
                | Request::Reserve(..)
                | Request::ReserveGroup(..)
                | Request::Confirm(..)
                | Request::Cancel(..)
                | Request::Extend(..)
        )
    }
}

/// A successful answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A SKU view and whether it was created.
    Upserted(SkuView, bool),
    /// A SKU view.
    Sku(SkuView),
    /// A page of SKUs.
    Skus(Vec<SkuView>),
    /// A whole reservation.
    Reservation(ReservationView),
    /// The home part of a reservation; the caller completes it with the other parts.
    Part(PartView),
    /// A part, if this shard knows it.
    MaybePart(Option<PartView>),
    /// An order with its group (the caller completes the lines).
    Order(OrderView, Option<Group>),
    /// Cross-shard parts.
    GroupStates(Vec<GroupState>),
    /// A shard's page of a buyer's reservations (home parts; the caller completes them).
    BuyerReservations(ShardPage<PartView>),
    /// A shard's page of a buyer's orders (home lines; the caller completes them).
    BuyerOrders(ShardPage<OrderPart>),
    /// Done, with a count.
    Count(usize),
}

/// A message between shards of one engine.
#[derive(Debug)]
pub enum PeerMsg {
    /// Home → part: hold this part (the command carries the reservation id and claims).
    ReservePart(Box<ReserveCommand>),
    /// Part → home: the part is durably held, or why not.
    PartReserved {
        /// The reservation.
        id: ReservationId,
        /// The part's shard.
        from: ShardId,
        /// The part's view, or why it was refused.
        result: Result<PartView, CommandError>,
    },
    /// Home → part: follow a decision (confirm, release, roll back).
    Follow {
        /// The reservation.
        id: ReservationId,
        /// What to do.
        action: FollowAction,
        /// Answer with [`PeerMsg::Followed`] once applied and durable (or given up).
        ack: AckWanted,
    },
    /// Part → home: a followed decision is applied.
    Followed {
        /// The reservation.
        id: ReservationId,
        /// The part's shard.
        from: ShardId,
    },
    /// Part → home: my part outlived its expiry; what became of the reservation?
    Resolve {
        /// The reservation.
        id: ReservationId,
        /// The part's shard.
        from: ShardId,
    },
}

/// Whether a [`PeerMsg::Follow`] wants an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckWanted {
    /// The home waits for [`PeerMsg::Followed`] (a rollback, or a decision it answers its
    /// caller about once the parts follow).
    Yes,
    /// Fire and forget (decisions already durable at the home).
    No,
}

/// A SKU whose gate, TTL or counts caller threads must see.
#[derive(Debug, Clone)]
pub struct Published {
    /// The SKU.
    pub sku: SkuId,
    /// Its gate.
    pub gate: Arc<StockGate>,
    /// Its reservation TTL in ms.
    pub ttl_ms: u64,
    /// Its counts.
    pub level: Option<StockLevel>,
}

/// What a node asks its driver to do.
#[derive(Debug)]
pub enum Output<R> {
    /// Answer a caller.
    Reply {
        /// The caller's reply handle.
        to: R,
        /// The answer.
        result: Result<Answer, CommandError>,
    },
    /// Send a message to another shard (or this one).
    Send {
        /// The destination shard.
        to: ShardId,
        /// The message.
        msg: PeerMsg,
    },
    /// Make a SKU visible to caller threads (created, or its TTL changed).
    Publish(Published),
}

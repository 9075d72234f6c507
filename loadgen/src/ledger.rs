//! What the load generator was told, per SKU, in units: held (201 on reserve), confirmed (200 on
//! confirm), cancelled (200 on cancel), plus the units whose fate is unknown because the request
//! may have reached the server but no answer came back (timeout or broken connection).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Per-SKU unit counters, updated lock-free by all buyers.
#[derive(Debug)]
pub struct Ledger {
    skus: Vec<SkuLedger>,
}

#[derive(Debug, Default)]
struct SkuLedger {
    held: AtomicU64,
    confirmed: AtomicU64,
    cancelled: AtomicU64,
    unknown_reserve: AtomicU64,
    unknown_confirm: AtomicU64,
    unknown_cancel: AtomicU64,
}

/// Which event to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A reservation was acknowledged (201).
    Held,
    /// A confirm was acknowledged (200).
    Confirmed,
    /// A cancel was acknowledged (200).
    Cancelled,
    /// A reserve got no answer (it may or may not hold stock).
    UnknownReserve,
    /// A confirm got no answer (it may or may not have sold).
    UnknownConfirm,
    /// A cancel got no answer (it may or may not have released).
    UnknownCancel,
}

/// The tallies of one SKU, in units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Units in acknowledged reservations.
    pub held: u64,
    /// Units in acknowledged confirms.
    pub confirmed: u64,
    /// Units in acknowledged cancels.
    pub cancelled: u64,
    /// Units in reserves without an answer.
    pub unknown_reserve: u64,
    /// Units in confirms without an answer.
    pub unknown_confirm: u64,
    /// Units in cancels without an answer.
    pub unknown_cancel: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        self.held += o.held;
        self.confirmed += o.confirmed;
        self.cancelled += o.cancelled;
        self.unknown_reserve += o.unknown_reserve;
        self.unknown_confirm += o.unknown_confirm;
        self.unknown_cancel += o.unknown_cancel;
    }
}

impl Ledger {
    /// A ledger for `skus` SKUs.
    pub fn new(skus: usize) -> Ledger {
        Ledger {
            skus: (0..skus).map(|_| SkuLedger::default()).collect(),
        }
    }

    /// Counts `units` for `event` on SKU index `sku`.
    pub fn add(&self, sku: usize, event: Event, units: u64) {
        let Some(l) = self.skus.get(sku) else {
            debug_assert!(false, "SKU index {sku} out of range");
            return;
        };
        let c = match event {
            Event::Held => &l.held,
            Event::Confirmed => &l.confirmed,
            Event::Cancelled => &l.cancelled,
            Event::UnknownReserve => &l.unknown_reserve,
            Event::UnknownConfirm => &l.unknown_confirm,
            Event::UnknownCancel => &l.unknown_cancel,
        };
        c.fetch_add(units, Ordering::Relaxed);
    }

    /// The tally of SKU index `sku`.
    pub fn tally(&self, sku: usize) -> Tally {
        let Some(l) = self.skus.get(sku) else {
            return Tally::default();
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Tally {
            held: r(&l.held),
            confirmed: r(&l.confirmed),
            cancelled: r(&l.cancelled),
            unknown_reserve: r(&l.unknown_reserve),
            unknown_confirm: r(&l.unknown_confirm),
            unknown_cancel: r(&l.unknown_cancel),
        }
    }

    /// Number of SKUs.
    pub fn len(&self) -> usize {
        self.skus.len()
    }

    /// True if the ledger tracks no SKU.
    pub fn is_empty(&self) -> bool {
        self.skus.is_empty()
    }
}

//! Scenarios: what each simulated buyer does per arrival. All scenarios share one buyer loop
//! ([`buyer`]) and differ in their [`Plan`]; `stream` adds QUIC subscribers ([`stream`]).

pub mod buyer;
pub mod catalog;
pub mod checkout;
pub mod hot_item;
pub mod setup;
pub mod stream;

use rand::Rng;

use crate::cli::{Config, ScenarioName};
use crate::zipf::Zipf;

/// How a buyer picks the SKU of its next reservation.
#[derive(Debug, Clone)]
pub enum Picker {
    /// Always SKU index 0.
    One,
    /// Zipf over all SKUs (index 0 the most popular).
    Zipf(Zipf),
}

impl Picker {
    /// The SKU index for the next reservation.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        match self {
            Picker::One => 0,
            Picker::Zipf(z) => z.sample(rng),
        }
    }
}

/// What happens to a held reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Confirm it (a sale).
    Confirm,
    /// Cancel it (stock released now).
    Cancel,
    /// Leave it to expire (stock released after the TTL).
    Abandon,
}

/// A scenario's behaviour per arrival.
#[derive(Debug, Clone)]
pub struct Plan {
    /// SKU choice.
    pub picker: Picker,
    /// Share of holds confirmed.
    pub confirm_share: f64,
    /// Share of holds cancelled.
    pub cancel_share: f64,
}

impl Plan {
    /// The buyers' plan for the configured scenario.
    pub fn for_config(cfg: &Config) -> Result<Plan, crate::zipf::ZipfError> {
        match cfg.scenario {
            ScenarioName::HotItem => Ok(hot_item::plan()),
            ScenarioName::Catalog => catalog::plan(cfg.skus.len(), cfg.zipf_exponent),
            // The queue scenario's buyers follow up their one hold like checkout's.
            ScenarioName::Checkout | ScenarioName::Queue => checkout::plan(cfg),
            ScenarioName::Stream => stream::plan(cfg),
        }
    }

    /// Decides the fate of a hold from a uniform `u` in `[0, 1)`.
    pub fn follow_up(&self, u: f64) -> FollowUp {
        if u < self.confirm_share {
            FollowUp::Confirm
        } else if u < self.confirm_share + self.cancel_share {
            FollowUp::Cancel
        } else {
            FollowUp::Abandon
        }
    }

    /// True if holds are ever confirmed or cancelled (the reservation id is needed).
    pub fn has_follow_ups(&self) -> bool {
        self.confirm_share > 0.0 || self.cancel_share > 0.0
    }
}

//! Validation of a queue's configuration: every error names the field (as the HTTP API spells
//! it) so the admin sees what to fix.

use std::collections::BTreeSet;

use flashsale_protocol::queue::QueueSpec;

use crate::limits::{
    MAX_ACTIVE, MAX_ADMIT_PER_S, MAX_OVERBOOKING_PCT, MAX_PASS_TTL_S, MAX_QUEUE_SKUS,
};

/// A queue configuration was refused: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The field, as the HTTP API names it (`skus`, `starts_at`, …).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks one configuration on its own (the room checks it against other queues).
pub fn validate(spec: &QueueSpec) -> Result<(), ConfigError> {
    if spec.skus.is_empty() {
        return Err(ConfigError::new("skus", "must name at least one SKU"));
    }
    if spec.skus.len() > MAX_QUEUE_SKUS {
        return Err(ConfigError::new(
            "skus",
            format!("at most {MAX_QUEUE_SKUS} SKUs per queue"),
        ));
    }
    let distinct: BTreeSet<_> = spec.skus.iter().collect();
    if distinct.len() != spec.skus.len() {
        return Err(ConfigError::new("skus", "names a SKU twice"));
    }
    if let Some(opens) = spec.prequeue_opens_at_ms {
        if opens > spec.starts_at_ms {
            return Err(ConfigError::new(
                "prequeue_opens_at",
                "must not be after starts_at",
            ));
        }
    }
    if spec.admit_per_s == 0 || spec.admit_per_s > MAX_ADMIT_PER_S {
        return Err(ConfigError::new(
            "admit_per_s",
            format!("must be 1..={MAX_ADMIT_PER_S}"),
        ));
    }
    if spec.max_active == 0 || spec.max_active > MAX_ACTIVE {
        return Err(ConfigError::new(
            "max_active",
            format!("must be 1..={MAX_ACTIVE}"),
        ));
    }
    if spec.pass_ttl_s == 0 || spec.pass_ttl_s > MAX_PASS_TTL_S {
        return Err(ConfigError::new(
            "pass_ttl_s",
            format!("must be 1..={MAX_PASS_TTL_S}"),
        ));
    }
    if spec.overbooking_pct < 100 || spec.overbooking_pct > MAX_OVERBOOKING_PCT {
        return Err(ConfigError::new(
            "overbooking_pct",
            format!("must be 100..={MAX_OVERBOOKING_PCT}"),
        ));
    }
    Ok(())
}

/// Checks a change of an existing queue: after the start, its SKUs, times and method stay.
pub fn validate_change(old: &QueueSpec, new: &QueueSpec, started: bool) -> Result<(), ConfigError> {
    if !started {
        return Ok(());
    }
    const FIXED: &str = "cannot change after the queue started";
    if old.skus != new.skus {
        return Err(ConfigError::new("skus", FIXED));
    }
    if old.starts_at_ms != new.starts_at_ms {
        return Err(ConfigError::new("starts_at", FIXED));
    }
    if old.prequeue_opens_at_ms != new.prequeue_opens_at_ms {
        return Err(ConfigError::new("prequeue_opens_at", FIXED));
    }
    if old.method != new.method {
        return Err(ConfigError::new("method", FIXED));
    }
    Ok(())
}

//! The waiting room's JSON: the `PUT /v1/queues/{queue}` body and the queue view, the join
//! body, and the ticket a join or a poll returns.

use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::{BuyerId, SkuId};
use flashsale_waiting_room::limits::{
    DEFAULT_MAX_ACTIVE, DEFAULT_OVERBOOKING_PCT, DEFAULT_PASS_TTL_S,
};
use flashsale_waiting_room::{QueueView, TicketView};
use serde::{Deserialize, Serialize};

use super::json::JsonInt;
use super::problem::Problem;
use super::wire::{format_ms, parse_time};

/// How a ticket is named in paths and bodies: `tkt_` and its number.
pub const TICKET_PREFIX: &str = "tkt_";

/// `PUT /v1/queues/{queue}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQueueBody {
    /// The SKUs that need a pass of this queue.
    pub skus: Vec<String>,
    /// Joins open (RFC 3339); absent = at `starts_at`.
    #[serde(default)]
    pub prequeue_opens_at: Option<String>,
    /// Admission starts (RFC 3339); the pre-queue is shuffled then.
    pub starts_at: String,
    /// Buyers admitted per second.
    pub admit_per_s: JsonInt,
    /// Most admitted buyers with a live pass.
    #[serde(default)]
    pub max_active: Option<JsonInt>,
    /// Pass lifetime in seconds.
    #[serde(default)]
    pub pass_ttl_s: Option<JsonInt>,
    /// `fifo` or `random`.
    pub method: String,
    /// Idle passes per unclaimed unit, in percent (100..=1000).
    #[serde(default)]
    pub overbooking_pct: Option<JsonInt>,
}

/// A non-negative integer field that fits in `u32`, else 422 naming it.
fn small(field: &'static str, v: JsonInt) -> Result<u32, Problem> {
    u32::try_from(v.0)
        .map_err(|_| Problem::invalid(format!("{field}: {v} is out of range")).with("field", field))
}

impl PutQueueBody {
    /// The queue's configuration (the room checks the ranges and names the field).
    pub fn into_spec(self) -> Result<QueueSpec, Problem> {
        let skus = self
            .skus
            .iter()
            .map(|s| {
                SkuId::new(s.as_str())
                    .map_err(|e| Problem::invalid(format!("skus: {e}")).with("field", "skus"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time =
            |field: &'static str, s: &str| parse_time(field, s).map_err(|p| p.with("field", field));
        let prequeue_opens_at_ms = match &self.prequeue_opens_at {
            Some(s) => Some(time("prequeue_opens_at", s)?),
            None => None,
        };
        let method = match self.method.as_str() {
            "fifo" => AdmissionMethod::Fifo,
            "random" => AdmissionMethod::Random,
            other => {
                return Err(Problem::invalid(format!(
                    "method: {other:?} is neither \"fifo\" nor \"random\""
                ))
                .with("field", "method"))
            }
        };
        Ok(QueueSpec {
            skus,
            prequeue_opens_at_ms,
            starts_at_ms: time("starts_at", &self.starts_at)?,
            admit_per_s: small("admit_per_s", self.admit_per_s)?,
            max_active: match self.max_active {
                Some(v) => small("max_active", v)?,
                None => DEFAULT_MAX_ACTIVE,
            },
            pass_ttl_s: match self.pass_ttl_s {
                Some(v) => small("pass_ttl_s", v)?,
                None => DEFAULT_PASS_TTL_S,
            },
            method,
            overbooking_pct: match self.overbooking_pct {
                Some(v) => small("overbooking_pct", v)?,
                None => DEFAULT_OVERBOOKING_PCT,
            },
        })
    }
}

/// A queue as the admin sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueJson {
    /// The queue.
    pub queue: String,
    /// Its SKUs.
    pub skus: Vec<String>,
    /// Joins open (RFC 3339), if a pre-queue is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prequeue_opens_at: Option<String>,
    /// Admission starts (RFC 3339).
    pub starts_at: String,
    /// Buyers admitted per second.
    pub admit_per_s: u32,
    /// Most admitted buyers with a live pass.
    pub max_active: u32,
    /// Pass lifetime in seconds.
    pub pass_ttl_s: u32,
    /// `fifo` or `random`.
    pub method: &'static str,
    /// Idle passes per unclaimed unit, in percent.
    pub overbooking_pct: u32,
    /// `scheduled` (before the start), `open` or `sold_out`.
    pub status: &'static str,
    /// Unclaimed units of its SKUs (absent until the engine's counts are known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclaimed: Option<u64>,
    /// Tickets ever issued.
    pub joined: u64,
    /// Tickets waiting.
    pub waiting: u64,
    /// Passes neither spent nor expired.
    pub admitted: u64,
    /// Of those, passes holding a reservation.
    pub holding: u64,
    /// Passes spent by a confirmed reservation.
    pub spent: u64,
    /// Passes expired.
    pub expired: u64,
}

impl From<&QueueView> for QueueJson {
    fn from(v: &QueueView) -> Self {
        QueueJson {
            queue: v.queue.to_string(),
            skus: v.spec.skus.iter().map(ToString::to_string).collect(),
            prequeue_opens_at: v.spec.prequeue_opens_at_ms.map(format_ms),
            starts_at: format_ms(v.spec.starts_at_ms),
            admit_per_s: v.spec.admit_per_s,
            max_active: v.spec.max_active,
            pass_ttl_s: v.spec.pass_ttl_s,
            method: match v.spec.method {
                AdmissionMethod::Fifo => "fifo",
                AdmissionMethod::Random => "random",
            },
            overbooking_pct: v.spec.overbooking_pct,
            status: if !v.started {
                "scheduled"
            } else if v.sold_out {
                "sold_out"
            } else {
                "open"
            },
            unclaimed: v.unclaimed,
            joined: v.counts.joined,
            waiting: v.waiting,
            admitted: v.counts.active,
            holding: v.counts.holding,
            spent: v.counts.spent,
            expired: v.counts.expired,
        }
    }
}

/// `POST /v1/queues/{queue}/join` body: `buyer` (storefront), nothing (buyer JWT).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The buyer joining.
    #[serde(default)]
    pub buyer: Option<String>,
}

impl JoinBody {
    /// The validated buyer, if given.
    pub fn buyer(&self) -> Result<Option<BuyerId>, Problem> {
        self.buyer
            .as_deref()
            .map(|b| BuyerId::new(b).map_err(|e| Problem::invalid(e.to_string())))
            .transpose()
    }
}

/// A ticket, as a join or a poll returns it.
#[derive(Debug, Clone, Serialize)]
pub struct TicketJson {
    /// `tkt_` + the ticket number.
    pub ticket: String,
    /// The queue.
    pub queue: String,
    /// The buyer.
    pub buyer: String,
    /// `waiting`, `admitted`, `sold_out`, `spent` or `expired`.
    pub status: &'static str,
    /// Place in line (1 = next), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Estimated wait in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
    /// When to poll again, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_after_ms: Option<u64>,
    /// The pass for `Flashsale-Pass` (admitted tickets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// When the pass expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_expires_at: Option<String>,
    /// When the ticket was admitted (RFC 3339, admitted tickets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<String>,
    /// Place in the queue's admission order, 1 = first admitted (admitted tickets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<u64>,
}

impl TicketJson {
    /// The JSON of `view` in `queue`.
    pub fn new(queue: &QueueId, view: &TicketView) -> Self {
        TicketJson {
            ticket: format!("{TICKET_PREFIX}{}", view.ticket),
            queue: queue.to_string(),
            buyer: view.buyer.to_string(),
            status: view.status.as_str(),
            position: view.position,
            eta_s: view.eta_s,
            poll_after_ms: view.poll_after_ms,
            pass: view.pass.clone(),
            pass_expires_at: view.pass_expires_at_ms.map(format_ms),
            admitted_at: view.admitted_at_ms.map(format_ms),
            admission: view.admission,
        }
    }
}

/// The ticket number in a path (`tkt_12`); anything else is unknown.
pub fn parse_ticket(s: &str) -> Option<u64> {
    let n = s.strip_prefix(TICKET_PREFIX)?;
    if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|&n| n > 0)
}

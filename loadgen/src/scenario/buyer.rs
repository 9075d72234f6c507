//! One simulated buyer: its own keep-alive connection, opened during ramp-up, then a closed or
//! open loop of arrivals until the end of the run (or the request cap, or Ctrl-C).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Semaphore};

use super::{FollowUp, Plan};
use crate::api::{self, Api, Outcome};
use crate::cli::{BuyerIds, Config};
use crate::conn::{Answer, Conn, TransportError};
use crate::ledger::{Event, Ledger};
use crate::metrics::{Kind, Metrics};
use crate::schedule::OpenSchedule;

/// Pause after a failed connect before the same buyer tries again (closed loop), so a dead
/// server is not hammered in a tight loop.
pub const CONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// State shared by all buyers of a run.
#[derive(Debug)]
pub struct Shared {
    /// Run configuration.
    pub cfg: Arc<Config>,
    /// Request builder.
    pub api: Api,
    /// Scenario behaviour.
    pub plan: Plan,
    /// Latency / outcome recorder.
    pub metrics: Arc<Metrics>,
    /// What the server acknowledged.
    pub ledger: Arc<Ledger>,
    /// Open-loop arrivals (`None` = closed loop).
    pub schedule: Option<OpenSchedule>,
    /// First requests claimed so far (closed-loop cap).
    pub claimed: AtomicU64,
    /// Limits concurrent connects during ramp-up.
    pub connect_permits: Semaphore,
    /// Buyers done with ramp-up.
    pub ready: AtomicUsize,
    /// Buyers whose ramp-up connect succeeded.
    pub opened: AtomicUsize,
    /// Buyers still running.
    pub running: AtomicUsize,
}

/// Start (`Some(start instant)`) and stop (`true`) signals for buyers.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Set once, when the load starts.
    pub go: watch::Receiver<Option<Instant>>,
    /// Set to true to stop early (Ctrl-C).
    pub stop: watch::Receiver<bool>,
}

struct Buyer {
    shared: Arc<Shared>,
    who: usize,
    conn: Conn,
    rng: StdRng,
    buyer_id: String,
    seq: u64,
}

/// Runs buyer `who` to completion.
pub async fn run(shared: Arc<Shared>, who: usize, source: Option<IpAddr>, mut sig: Signals) {
    let cfg = shared.cfg.clone();
    let mut b = Buyer {
        conn: Conn::new(cfg.target.addr, source, cfg.timeout()),
        rng: StdRng::seed_from_u64(cfg.seed ^ (who as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        buyer_id: format!("lg-{who}"),
        seq: 0,
        who,
        shared: shared.clone(),
    };
    shared.running.fetch_add(1, Ordering::Relaxed);
    b.ramp_up().await;
    let start = loop {
        if let Some(s) = *sig.go.borrow() {
            break Some(s);
        }
        if *sig.stop.borrow() || sig.go.changed().await.is_err() {
            break None;
        }
    };
    if let Some(start) = start {
        let end = start + Duration::from_secs(cfg.warmup_s + cfg.duration_s);
        if shared.schedule.is_some() {
            b.open_loop(start, end, &mut sig.stop).await;
        } else {
            b.closed_loop(end, &sig.stop).await;
        }
    }
    shared.running.fetch_sub(1, Ordering::Relaxed);
}

impl Buyer {
    async fn ramp_up(&mut self) {
        let sh = self.shared.clone();
        if let Ok(_permit) = sh.connect_permits.acquire().await {
            match self.conn.ensure_open().await {
                Ok(()) => {
                    sh.opened.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => sh
                    .metrics
                    .sample_error(self.who, "connect_ramp_up", &e.to_string()),
            }
        }
        sh.ready.fetch_add(1, Ordering::Relaxed);
    }

    async fn closed_loop(&mut self, end: Instant, stop: &watch::Receiver<bool>) {
        let cap = self.shared.cfg.max_requests;
        while Instant::now() < end && !*stop.borrow() {
            if self.shared.claimed.fetch_add(1, Ordering::Relaxed) >= cap {
                break;
            }
            let due = Instant::now();
            if self.arrival(due).await {
                tokio::time::sleep(
                    CONNECT_BACKOFF.min(end.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
    }

    async fn open_loop(&mut self, start: Instant, end: Instant, stop: &mut watch::Receiver<bool>) {
        let sh = self.shared.clone();
        let Some(schedule) = sh.schedule.as_ref() else {
            return;
        };
        // No arrival is claimed once the run is over: the ones never claimed are accounted for
        // by the run as `not_sent` (see `schedule::unsent`).
        while Instant::now() < end && !*stop.borrow() {
            let Some((_, offset)) = schedule.claim() else {
                break;
            };
            let due = start + offset;
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.changed() => break,
            }
            // Latency counts from `due`, so a connect backoff would only add honest delay to
            // later arrivals; none is taken here.
            let _ = self.arrival(due).await;
        }
    }

    /// One arrival: reserve, then the scenario's follow-up. Returns true after a connect error.
    async fn arrival(&mut self, due: Instant) -> bool {
        let sh = self.shared.clone();
        let cfg = &sh.cfg;
        self.seq += 1;
        let sku_idx = sh.plan.picker.pick(&mut self.rng);
        let Some(sku) = cfg.skus.get(sku_idx) else {
            return false;
        };
        let key = cfg
            .idempotency_keys
            .then(|| format!("{}-{}-{}", cfg.sku_first, self.who, self.seq));
        let per_arrival;
        let buyer = match cfg.buyer_ids {
            BuyerIds::PerConnection => self.buyer_id.as_str(),
            BuyerIds::PerArrival => {
                per_arrival = format!("{}-{}", self.buyer_id, self.seq);
                per_arrival.as_str()
            }
        };
        let req = sh.api.reserve(buyer, sku, cfg.qty, key.as_deref());
        let (outcome, answer) = self.exchange(Kind::Reserve, req, due).await;
        match &outcome {
            Outcome::Ok => sh.ledger.add(sku_idx, Event::Held, cfg.qty),
            Outcome::Error(e) if is_unknown(e) => {
                sh.ledger.add(sku_idx, Event::UnknownReserve, cfg.qty)
            }
            Outcome::Error(e) if e == "connect" => return true,
            _ => {}
        }
        if outcome != Outcome::Ok || !sh.plan.has_follow_ups() {
            return false;
        }
        let follow = sh.plan.follow_up(self.rng.gen::<f64>());
        if follow == FollowUp::Abandon {
            return false;
        }
        let kind = if follow == FollowUp::Confirm {
            Kind::Confirm
        } else {
            Kind::Cancel
        };
        let Some(id) = answer.as_ref().and_then(|a| api::reservation_id(&a.body)) else {
            let e = Outcome::Error("no_reservation_id".into());
            sh.metrics.record(self.who, kind, &e, Duration::ZERO);
            return false;
        };
        let req = if follow == FollowUp::Confirm {
            sh.api
                .confirm(&id, &format!("lg-pay-{}-{}", self.who, self.seq))
        } else {
            sh.api.cancel(&id)
        };
        let (outcome, _) = self.exchange(kind, req, Instant::now()).await;
        let (done, unknown) = match follow {
            FollowUp::Confirm => (Event::Confirmed, Event::UnknownConfirm),
            _ => (Event::Cancelled, Event::UnknownCancel),
        };
        match &outcome {
            Outcome::Ok => sh.ledger.add(sku_idx, done, cfg.qty),
            Outcome::Error(e) if is_unknown(e) => sh.ledger.add(sku_idx, unknown, cfg.qty),
            _ => {}
        }
        false
    }

    /// Sends one request, records its latency from `due` and its outcome.
    async fn exchange(
        &mut self,
        kind: Kind,
        req: Result<hyper::Request<http_body_util::Full<bytes::Bytes>>, api::ApiError>,
        due: Instant,
    ) -> (Outcome, Option<Answer>) {
        let metrics = self.shared.metrics.clone();
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                metrics.sample_error(self.who, "request", &e.to_string());
                let o = Outcome::Error("request".into());
                metrics.record(self.who, kind, &o, Duration::ZERO);
                return (o, None);
            }
        };
        let result = self.conn.send(req).await;
        let latency = due.elapsed();
        let (outcome, answer) = match result {
            Ok(answer) => (api::classify(answer.status, &answer.body), Some(answer)),
            Err(e) => {
                metrics.sample_error(self.who, e.kind(), &e.to_string());
                (Outcome::Error(e.kind().to_string()), None)
            }
        };
        if let (Outcome::Error(kind_name), Some(a)) = (&outcome, &answer) {
            metrics.sample_error(self.who, kind_name, &String::from_utf8_lossy(&a.body));
        }
        metrics.record(self.who, kind, &outcome, latency);
        (outcome, answer)
    }
}

/// True for error kinds after which the server may or may not have acted (the request may have
/// been received): `timeout` and `io`.
pub fn is_unknown(kind: &str) -> bool {
    kind == TransportError::Timeout.kind() || kind == "io"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unanswered_requests_are_unknown() {
        assert!(is_unknown("timeout"));
        assert!(is_unknown("io"));
        assert!(!is_unknown("connect"));
        assert!(!is_unknown("http_503_unavailable"));
    }
}

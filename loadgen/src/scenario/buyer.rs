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
use crate::conn::{Answer, TransportError};
use crate::follow::{self, Leader, Seat, MAX_FOLLOW_ATTEMPTS};
use crate::ledger::{Event, Ledger};
use crate::metrics::{Kind, Metrics};
use crate::schedule::OpenSchedule;

/// Pause after a failed connect before the same buyer tries again (closed loop), so a dead
/// server is not hammered in a tight loop.
pub const CONNECT_BACKOFF: Duration = Duration::from_millis(100);

pub use crate::follow::NOT_LEADER;

/// Whether a request may be sent again, to the new leader, after a failure that may be a
/// takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A repeat returns the original result: a reservation with its Idempotency-Key, a confirm
    /// with its payment ref, a cancel.
    Safe,
    /// A reservation without an Idempotency-Key: never sent twice (it could buy twice).
    Never,
}

/// Builds one request for a target's [`Api`] (called again for each attempt).
type MakeRequest<'a> = dyn Fn(&Api) -> Result<hyper::Request<http_body_util::Full<bytes::Bytes>>, api::ApiError>
    + Sync
    + 'a;

/// One request's result after any moves to a new leader.
#[derive(Debug)]
struct Exchanged {
    /// The last attempt's outcome.
    outcome: Outcome,
    /// The last attempt's answer, if any.
    answer: Option<Answer>,
    /// Some attempt got no answer (timeout, broken connection): the server may have acted.
    unknown_attempt: bool,
}

/// State shared by all buyers of a run.
#[derive(Debug)]
pub struct Shared {
    /// Run configuration.
    pub cfg: Arc<Config>,
    /// Request builders, one per `--target` (each with its own `Host`).
    pub apis: Vec<Api>,
    /// Which target leads: the buyers follow it during the run.
    pub leader: Arc<Leader>,
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
    /// The connection, following the leader.
    seat: Seat,
    /// End of the load window (no move is looked for after it).
    end: Instant,
    rng: StdRng,
    buyer_id: String,
    seq: u64,
}

/// Runs buyer `who` to completion.
pub async fn run(shared: Arc<Shared>, who: usize, source: Option<IpAddr>, mut sig: Signals) {
    let cfg = shared.cfg.clone();
    let mut b = Buyer {
        seat: Seat::new(&shared.leader, source, cfg.timeout()),
        end: Instant::now(),
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
        b.end = end;
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
            match self.seat.conn.ensure_open().await {
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
        let buyer = match cfg.buyer_ids {
            BuyerIds::PerConnection => self.buyer_id.clone(),
            BuyerIds::PerArrival => format!("{}-{}", self.buyer_id, self.seq),
        };
        let resend = if key.is_some() {
            Resend::Safe
        } else {
            Resend::Never
        };
        let reserve = |api: &Api| api.reserve(&buyer, sku, cfg.qty, key.as_deref());
        let ex = self.exchange(Kind::Reserve, &reserve, due, resend).await;
        match &ex.outcome {
            Outcome::Ok => sh.ledger.add(sku_idx, Event::Held, cfg.qty),
            // A reservation whose fate is unknown at any attempt and not acknowledged in the
            // end may hold stock (a repeat with the key would have returned it, but the
            // check stays conservative).
            Outcome::Error(e) if is_unknown(e) || ex.unknown_attempt => {
                sh.ledger.add(sku_idx, Event::UnknownReserve, cfg.qty)
            }
            Outcome::SoldOut if ex.unknown_attempt => {
                sh.ledger.add(sku_idx, Event::UnknownReserve, cfg.qty)
            }
            Outcome::Error(e) if e == "connect" => return true,
            _ => {}
        }
        if ex.outcome != Outcome::Ok || !sh.plan.has_follow_ups() {
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
        let Some(id) = ex
            .answer
            .as_ref()
            .and_then(|a| api::reservation_id(&a.body))
        else {
            let e = Outcome::Error("no_reservation_id".into());
            sh.metrics.record(self.who, kind, &e, Duration::ZERO);
            return false;
        };
        let pay = format!("lg-pay-{}-{}", self.who, self.seq);
        let follow_up = |api: &Api| {
            if follow == FollowUp::Confirm {
                api.confirm(&id, &pay)
            } else {
                api.cancel(&id)
            }
        };
        // A confirm repeats with the same payment ref (same order), a cancel answers the
        // released reservation: both may follow the leader.
        let ex = self
            .exchange(kind, &follow_up, Instant::now(), Resend::Safe)
            .await;
        let (done, unknown) = match follow {
            FollowUp::Confirm => (Event::Confirmed, Event::UnknownConfirm),
            _ => (Event::Cancelled, Event::UnknownCancel),
        };
        match &ex.outcome {
            Outcome::Ok => sh.ledger.add(sku_idx, done, cfg.qty),
            Outcome::Error(e) if is_unknown(e) || ex.unknown_attempt => {
                sh.ledger.add(sku_idx, unknown, cfg.qty)
            }
            _ => {}
        }
        false
    }

    /// Sends one request built by `make` for the current leader, records its latency from
    /// `due` and its final outcome. After `503 not-leader` or a transport failure it finds the
    /// leader ([`Leader::follow`]) and, if the leader moved and `resend` allows, sends the
    /// same request there (bounded by [`MAX_FOLLOW_ATTEMPTS`] and the end of the run).
    async fn exchange(
        &mut self,
        kind: Kind,
        make: &MakeRequest<'_>,
        due: Instant,
        resend: Resend,
    ) -> Exchanged {
        let sh = self.shared.clone();
        let metrics = &sh.metrics;
        let leader = &sh.leader;
        let mut unknown_attempt = false;
        let mut extra_sends = 0u64;
        let mut transport_error: Option<TransportError> = None;
        let (outcome, answer) = loop {
            self.seat.sync(leader);
            let sent_at = self.seat.at();
            let req = match sh.apis.get(sent_at.index).map(make) {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    metrics.sample_error(self.who, "request", &e.to_string());
                    break (Outcome::Error("request".into()), None);
                }
                None => break (Outcome::Error("request".into()), None),
            };
            let sent = Instant::now();
            let result = self.seat.conn.send(req).await;
            let takeover = follow::takeover_hint(leader, &result);
            let (outcome, answer) = match result {
                Ok(answer) => {
                    transport_error = None;
                    (api::classify(answer.status, &answer.body), Some(answer))
                }
                Err(e) => {
                    let o = Outcome::Error(e.kind().to_string());
                    transport_error = Some(e);
                    (o, None)
                }
            };
            if let Outcome::Error(e) = &outcome {
                unknown_attempt |= is_unknown(e);
            }
            let Some(takeover) = takeover else {
                // An answer (of any kind) from the node the view names.
                leader.note_success(sent_at, Instant::now());
                break (outcome, answer);
            };
            if !leader.is_following()
                || resend == Resend::Never
                || extra_sends >= u64::from(MAX_FOLLOW_ATTEMPTS)
                || Instant::now() >= self.end
            {
                break (outcome, answer);
            }
            if !self
                .seat
                .follow(leader, sent_at, sent, takeover, self.end)
                .await
            {
                // Nobody else leads (or the run ended while another buyer looked): the
                // failure stands.
                break (outcome, answer);
            }
            extra_sends += 1;
        };
        if extra_sends > 0 {
            leader.note_retried(extra_sends);
        }
        if let Some(e) = &transport_error {
            metrics.sample_error(self.who, e.kind(), &e.to_string());
        }
        if let (Outcome::Error(kind_name), Some(a)) = (&outcome, &answer) {
            metrics.sample_error(self.who, kind_name, &String::from_utf8_lossy(&a.body));
        }
        metrics.record(self.who, kind, &outcome, due.elapsed());
        Exchanged {
            outcome,
            answer,
            unknown_attempt,
        }
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

//! Following the leader of an HA group during the load: one shared view of which `--target`
//! leads, moved once per takeover (not once per buyer), and the record of each move for the
//! report.
//!
//! A buyer whose request meets `503 not-leader`, a refused connect or a broken connection asks
//! [`Leader::follow`] where the leader is now. The first such buyer takes the move lock: it
//! trusts a `leader_url` that is one of the targets, else it probes `GET /ready` on every
//! target (bounded rounds with backoff, within the run's deadline). Buyers that come later find
//! the generation moved on and simply reconnect to the new leader.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::{self, Outcome};
use crate::conn::{Answer, Conn, TransportError};
use crate::request::Requests;
use crate::target::Target;

/// Extra attempts of one request after moves to another node (so at most this many + 1 sends).
pub const MAX_FOLLOW_ATTEMPTS: u32 = 4;
/// Rounds of `GET /ready` over all targets in one search for the leader.
pub const PROBE_ROUNDS: u32 = 16;
/// First pause between probe rounds; it doubles up to [`PROBE_BACKOFF_MAX`].
pub const PROBE_BACKOFF_FIRST: Duration = Duration::from_millis(25);
/// Longest pause between probe rounds.
pub const PROBE_BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Deadline of one `GET /ready` probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// After a search that ended without a move (the leader was where it was, or nobody leads),
/// later searches of the same generation within this time are answered without probing (a
/// storm of failures probes once).
pub const PROBE_QUIET: Duration = Duration::from_millis(200);
/// Error kind of a `503 not-leader` answer.
pub const NOT_LEADER: &str = "http_503_not-leader";
/// Bits of the packed position that hold the target index (the rest is the generation).
const INDEX_BITS: u32 = 16;

/// Which target leads, as seen at one moment: the target index and the generation of the
/// shared view (bumped at every move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index into the `--target` list.
    pub index: usize,
    /// Moves made before this position.
    pub generation: u64,
}

impl Position {
    fn pack(self) -> u64 {
        (self.generation << INDEX_BITS) | self.index as u64
    }

    fn unpack(v: u64) -> Position {
        Position {
            index: (v & ((1 << INDEX_BITS) - 1)) as usize,
            generation: v >> INDEX_BITS,
        }
    }
}

/// What a failed request said about the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// `503 not-leader` naming this target index.
    Named(usize),
    /// No name (a transport failure, or `leader_url: null`): search the targets.
    Unknown,
}

/// How the new leader was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveCause {
    /// A `503 not-leader` answer named it.
    NotLeader,
    /// Its `GET /ready` answered 200 (or a node's `not-leader` answer to the probe named it).
    Probe,
}

impl MoveCause {
    /// The name used in reports (`not_leader`, `probe`).
    pub fn as_str(self) -> &'static str {
        match self {
            MoveCause::NotLeader => "not_leader",
            MoveCause::Probe => "probe",
        }
    }
}

/// Why [`Leader::follow`] could not give a position to retry at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The run's deadline passed while waiting for the move lock.
    #[error("the run ended while looking for the leader")]
    Deadline,
}

/// How an attempt failed in a way that may mean a takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `503 not-leader`: the node did nothing with the request.
    NotLeader,
    /// No answer (refused connect, broken connection, timeout): it may or may not have acted.
    NoAnswer,
}

/// A failed attempt that may mean a takeover: how it failed and what it says about the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// Where the answer says the leader is.
    pub hint: Hint,
    /// How the attempt failed.
    pub failure: Failure,
}

/// What a failed attempt says about the leader, if it may mean a takeover: a `503 not-leader`
/// (naming one of the targets, or none) or a failure without an answer (refused connect,
/// broken connection, timeout). `None` for any other answer (a node that serves), and for a
/// `not-leader` naming a URL outside the targets (not followed: the answer stands).
pub fn takeover_hint(leader: &Leader, result: &Result<Answer, TransportError>) -> Option<Takeover> {
    match result {
        Err(_) => Some(Takeover {
            hint: Hint::Unknown,
            failure: Failure::NoAnswer,
        }),
        Ok(a) => match api::classify(a.status, &a.body) {
            Outcome::Error(kind) if kind == NOT_LEADER => {
                let hint = match leader_url(&a.body) {
                    Some(url) => Hint::Named(leader.index_of(&url)?),
                    None => Hint::Unknown,
                };
                Some(Takeover {
                    hint,
                    failure: Failure::NotLeader,
                })
            }
            _ => None,
        },
    }
}

/// One buyer's connection that follows the shared view of the leader: it points at the
/// position it last synced to and moves (reconnecting on the next send) when the view moved.
#[derive(Debug)]
pub struct Seat {
    /// The connection (to the target of [`Seat::at`]).
    pub conn: Conn,
    at: Position,
}

impl Seat {
    /// A seat at the current leader, bound to `source` if given.
    pub fn new(leader: &Leader, source: Option<std::net::IpAddr>, timeout: Duration) -> Seat {
        let at = leader.current();
        let addr = leader
            .target(at.index)
            .or_else(|| leader.target(0))
            .map(|t| t.addr)
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        Seat {
            conn: Conn::new(addr, source, timeout),
            at,
        }
    }

    /// The position the connection points at.
    pub fn at(&self) -> Position {
        self.at
    }

    /// Points the connection at the shared view's leader if it moved since.
    pub fn sync(&mut self, leader: &Leader) {
        let now = leader.current();
        if now != self.at {
            self.move_to(leader, now);
        }
    }

    fn move_to(&mut self, leader: &Leader, pos: Position) {
        if let Some(t) = leader.target(pos.index) {
            self.conn.retarget(t.addr);
            self.at = pos;
        }
    }

    /// A request sent at `sent` to `sent_at` failed as `takeover` says: notes the failure,
    /// finds the leader ([`Leader::follow`], bounded by `end`) and points the connection
    /// there. True when the request should be sent again: the leader moved, or the node
    /// refused with `not-leader` (so did nothing) and now answers `GET /ready` as the leader
    /// (a new leader still catching up refuses for a moment after it took the lease).
    pub async fn follow(
        &mut self,
        leader: &Leader,
        sent_at: Position,
        sent: Instant,
        takeover: Takeover,
        end: Instant,
    ) -> bool {
        leader.note_failure(sent_at, sent);
        match leader.follow(sent_at, takeover.hint, end).await {
            Ok(next) if next != sent_at => {
                self.move_to(leader, next);
                true
            }
            Ok(_) if takeover.failure == Failure::NotLeader => {
                let timeout = PROBE_TIMEOUT.min(end.saturating_duration_since(Instant::now()));
                match leader.target(sent_at.index) {
                    Some(t) => probe(t, timeout).await == Probe::Ready,
                    None => false,
                }
            }
            _ => false,
        }
    }
}

/// One recorded leader change.
#[derive(Debug, Clone)]
struct Change {
    at: Instant,
    from: usize,
    to: usize,
    cause: MoveCause,
    first_failure: Option<Instant>,
    first_success: Option<Instant>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Log {
    /// First failure at the current generation not yet followed by a success there.
    first_failure: Option<Instant>,
    changes: Vec<Change>,
    /// When a search last ended without a move (generation, time): the leader was where it
    /// was, or no node answered as leader.
    last_search: Option<(u64, Instant)>,
}

/// The shared view of the leader for all buyers of a run.
#[derive(Debug)]
pub struct Leader {
    targets: Vec<Target>,
    position: AtomicU64,
    moving: tokio::sync::Mutex<()>,
    incident_open: AtomicBool,
    log: Mutex<Log>,
    retried_requests: AtomicU64,
    retries: AtomicU64,
}

impl Leader {
    /// A view over `targets` (at most 2^16) with `leader` leading.
    pub fn new(targets: Vec<Target>, leader: usize) -> Leader {
        let start = Position {
            index: leader.min(targets.len().saturating_sub(1)),
            generation: 0,
        };
        Leader {
            targets,
            position: AtomicU64::new(start.pack()),
            moving: tokio::sync::Mutex::new(()),
            incident_open: AtomicBool::new(false),
            log: Mutex::new(Log::default()),
            retried_requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// True if there is anywhere to move to (more than one target).
    pub fn is_following(&self) -> bool {
        self.targets.len() > 1
    }

    /// The leader as currently known.
    pub fn current(&self) -> Position {
        Position::unpack(self.position.load(Ordering::Acquire))
    }

    /// The target at `index`, if there is one.
    pub fn target(&self, index: usize) -> Option<&Target> {
        self.targets.get(index)
    }

    /// The index of the target a `leader_url` names (matched by resolved address).
    pub fn index_of(&self, url: &str) -> Option<usize> {
        let t = Target::parse(url, true).ok()?;
        self.targets.iter().position(|x| x.addr == t.addr)
    }

    /// A request sent at `sent` to `pos` failed in a way that may mean a takeover: starts the
    /// gap clock at the earliest such send (a timed-out request had no answer since it was
    /// sent). Failures are rare next to answers: this takes a lock.
    pub fn note_failure(&self, pos: Position, sent: Instant) {
        if pos.generation != self.current().generation {
            return;
        }
        if let Ok(mut log) = self.log.lock() {
            let first = log.first_failure.map_or(sent, |f| f.min(sent));
            log.first_failure = Some(first);
            self.incident_open.store(true, Ordering::Release);
        }
    }

    /// A request at `pos` was answered: stops the gap clock of the last move.
    pub fn note_success(&self, pos: Position, at: Instant) {
        if !self.incident_open.load(Ordering::Acquire)
            || pos.generation != self.current().generation
        {
            return;
        }
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        self.incident_open.store(false, Ordering::Release);
        log.first_failure = None;
        if let Some(c) = log.changes.last_mut() {
            if c.generation == pos.generation && c.first_success.is_none() {
                c.first_success = Some(at);
            }
        }
    }

    /// Counts a request sent again after a move, with `extra` additional sends.
    pub fn note_retried(&self, extra: u64) {
        self.retried_requests.fetch_add(1, Ordering::Relaxed);
        self.retries.fetch_add(extra, Ordering::Relaxed);
    }

    /// Where to send a request that failed at `seen` (with what the answer said), moving the
    /// shared view if nobody did since. Waits for a move in progress; bounded by `deadline`.
    pub async fn follow(
        &self,
        seen: Position,
        hint: Hint,
        deadline: Instant,
    ) -> Result<Position, FollowError> {
        let _guard = tokio::time::timeout_at(deadline.into(), self.moving.lock())
            .await
            .map_err(|_| FollowError::Deadline)?;
        let now = self.current();
        if now.generation != seen.generation {
            return Ok(now);
        }
        if let Hint::Named(to) = hint {
            if to != now.index && to < self.targets.len() {
                return Ok(self.switch(now, to, MoveCause::NotLeader));
            }
        }
        if let Ok(log) = self.log.lock() {
            if let Some((generation, at)) = log.last_search {
                if generation == now.generation && at.elapsed() < PROBE_QUIET {
                    return Ok(now);
                }
            }
        }
        let n = self.targets.len();
        let mut pause = PROBE_BACKOFF_FIRST;
        for _ in 0..PROBE_ROUNDS {
            // The other targets first, the current one last.
            for k in 1..=n {
                let idx = (now.index + k) % n;
                let Some(t) = self.targets.get(idx) else {
                    continue;
                };
                let timeout = PROBE_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
                match probe(t, timeout).await {
                    Probe::Ready if idx == now.index => {
                        self.searched(now);
                        return Ok(now);
                    }
                    Probe::Ready => return Ok(self.switch(now, idx, MoveCause::Probe)),
                    Probe::Names(url) => match self.index_of(&url) {
                        Some(to) if to != now.index => {
                            return Ok(self.switch(now, to, MoveCause::Probe))
                        }
                        _ => {}
                    },
                    Probe::NotReady => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(PROBE_BACKOFF_MAX);
        }
        self.searched(now);
        Ok(now)
    }

    /// A search at `now` ended without a move: buyers waiting for the lock take that answer.
    fn searched(&self, now: Position) {
        if let Ok(mut log) = self.log.lock() {
            log.last_search = Some((now.generation, Instant::now()));
        }
    }

    fn switch(&self, from: Position, to: usize, cause: MoveCause) -> Position {
        let next = Position {
            index: to,
            generation: from.generation + 1,
        };
        let at = Instant::now();
        if let Ok(mut log) = self.log.lock() {
            let first_failure = log.first_failure.take();
            log.changes.push(Change {
                at,
                from: from.index,
                to,
                cause,
                first_failure,
                first_success: None,
                generation: next.generation,
            });
            // The gap of this move runs until the first success at the new position.
            self.incident_open.store(true, Ordering::Release);
            log.first_failure = first_failure.or(Some(at));
        }
        self.position.store(next.pack(), Ordering::Release);
        next
    }

    /// The report of the run's moves, times relative to `start` (the start of the load).
    pub fn report(&self, start: Instant) -> FollowReport {
        let url = |i: usize| self.targets.get(i).map(Target::url).unwrap_or_default();
        let secs = |t: Instant| {
            if t >= start {
                t.duration_since(start).as_secs_f64()
            } else {
                -start.duration_since(t).as_secs_f64()
            }
        };
        let changes: Vec<LeaderChange> = self
            .log
            .lock()
            .map(|log| {
                log.changes
                    .iter()
                    .map(|c| LeaderChange {
                        at_s: secs(c.at),
                        from: url(c.from),
                        to: url(c.to),
                        cause: c.cause,
                        first_failure_at_s: c.first_failure.map(secs),
                        first_success_at_s: c.first_success.map(secs),
                        gap_s: match (c.first_failure, c.first_success) {
                            (Some(f), Some(s)) => {
                                Some(s.saturating_duration_since(f).as_secs_f64())
                            }
                            _ => None,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        FollowReport {
            targets: self.targets.iter().map(Target::url).collect(),
            leader_at_end: url(self.current().index),
            changes,
            retried_requests: self.retried_requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// A leader change as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderChange {
    /// When the buyers moved, seconds since the start of the load.
    pub at_s: f64,
    /// The old leader's URL.
    pub from: String,
    /// The new leader's URL.
    pub to: String,
    /// How the new leader was found.
    pub cause: MoveCause,
    /// Send time of the first failed request at the old leader (no answer since), seconds
    /// since the start of the load.
    pub first_failure_at_s: Option<f64>,
    /// First answered request at the new leader, seconds since the start of the load.
    pub first_success_at_s: Option<f64>,
    /// `first_success_at_s - first_failure_at_s`: how long the load got no answer.
    pub gap_s: Option<f64>,
}

/// The `follow` section of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FollowReport {
    /// Every `--target`.
    pub targets: Vec<String>,
    /// The leader the buyers were on at the end.
    pub leader_at_end: String,
    /// Every move of the buyers to a new leader, in order.
    pub changes: Vec<LeaderChange>,
    /// Requests sent again (same Idempotency-Key, payment ref or reservation) after a move.
    pub retried_requests: u64,
    /// Extra sends of those requests.
    pub retries: u64,
}

/// The target that leads, for a run that starts on a group: asks every target's `GET /ready`
/// (a standby's answer may name the leader) in rounds with the search's backoff until one
/// answers as leader or `deadline`. `None` when none did.
pub async fn find_leader(targets: &[Target], deadline: Instant) -> Option<usize> {
    let index_of = |url: &str| {
        let t = Target::parse(url, true).ok()?;
        targets.iter().position(|x| x.addr == t.addr)
    };
    let mut pause = PROBE_BACKOFF_FIRST;
    for _ in 0..PROBE_ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            let timeout = PROBE_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
            match probe(t, timeout).await {
                Probe::Ready => return Some(i),
                Probe::Names(url) => {
                    if let Some(named) = index_of(&url) {
                        return Some(named);
                    }
                }
                Probe::NotReady => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(PROBE_BACKOFF_MAX);
    }
    None
}

/// What one `GET /ready` said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// 200: this node leads and serves.
    Ready,
    /// `503 not-leader` naming a leader.
    Names(String),
    /// Anything else (no answer, `unavailable`, no leader named).
    NotReady,
}

async fn probe(target: &Target, timeout: Duration) -> Probe {
    if timeout.is_zero() {
        return Probe::NotReady;
    }
    let Ok(req) = Requests::new(&target.authority).and_then(|r| r.ready()) else {
        return Probe::NotReady;
    };
    let mut conn = Conn::new(target.addr, None, timeout);
    match conn.send(req).await {
        Ok(a) if a.status == StatusCode::OK => Probe::Ready,
        Ok(a) if a.status == StatusCode::SERVICE_UNAVAILABLE => match leader_url(&a.body) {
            Some(u) => Probe::Names(u),
            None => Probe::NotReady,
        },
        _ => Probe::NotReady,
    }
}

/// The `leader_url` of a `not-leader` problem body, if it names one.
pub fn leader_url(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct NotLeader {
        leader_url: Option<String>,
    }
    serde_json::from_slice::<NotLeader>(body)
        .ok()?
        .leader_url
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<Target> {
        ["http://127.0.0.1:1", "http://127.0.0.1:2"]
            .iter()
            .map(|u| Target::parse(u, false).unwrap())
            .collect()
    }

    #[test]
    fn positions_pack_and_unpack() {
        let p = Position {
            index: 3,
            generation: 77,
        };
        assert_eq!(Position::unpack(p.pack()), p);
    }

    #[test]
    fn leader_urls_are_matched_by_address() {
        let l = Leader::new(targets(), 0);
        assert_eq!(l.index_of("http://localhost:2/"), Some(1));
        assert_eq!(l.index_of("http://127.0.0.1:3"), None);
        assert_eq!(l.index_of("not a url"), None);
        assert_eq!(
            leader_url(br#"{"type":"x/not-leader","leader_url":"http://a:1"}"#).as_deref(),
            Some("http://a:1")
        );
        assert_eq!(leader_url(br#"{"leader_url":null}"#), None);
    }

    #[test]
    fn failures_that_may_mean_a_takeover_are_classified() {
        let l = Leader::new(targets(), 0);
        let answer = |status: StatusCode, body: &'static str| {
            Ok(Answer {
                status,
                body: bytes::Bytes::from_static(body.as_bytes()),
                retry_after_s: None,
            })
        };
        let not_leader = |url: &str| {
            format!(r#"{{"type":"https://flashsale.dev/problems/not-leader","leader_url":{url}}}"#)
        };
        let named = not_leader(r#""http://127.0.0.1:2""#).leak();
        assert_eq!(
            takeover_hint(&l, &answer(StatusCode::SERVICE_UNAVAILABLE, named)),
            Some(Takeover {
                hint: Hint::Named(1),
                failure: Failure::NotLeader
            })
        );
        let nobody = not_leader("null").leak();
        assert_eq!(
            takeover_hint(&l, &answer(StatusCode::SERVICE_UNAVAILABLE, nobody)),
            Some(Takeover {
                hint: Hint::Unknown,
                failure: Failure::NotLeader
            })
        );
        let outside = not_leader(r#""http://127.0.0.1:9""#).leak();
        assert_eq!(
            takeover_hint(&l, &answer(StatusCode::SERVICE_UNAVAILABLE, outside)),
            None,
            "a leader outside the targets is not followed"
        );
        assert_eq!(
            takeover_hint(&l, &Err(TransportError::Timeout)),
            Some(Takeover {
                hint: Hint::Unknown,
                failure: Failure::NoAnswer
            })
        );
        assert_eq!(takeover_hint(&l, &answer(StatusCode::CREATED, "{}")), None);
        let unavailable = r#"{"type":"https://flashsale.dev/problems/unavailable"}"#;
        assert_eq!(
            takeover_hint(&l, &answer(StatusCode::SERVICE_UNAVAILABLE, unavailable)),
            None,
            "only not-leader among the 503s"
        );
    }

    #[tokio::test]
    async fn a_search_with_nobody_leading_ends_at_the_deadline_without_a_move() {
        // Two ports nobody listens on.
        let dead: Vec<Target> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let url = format!("http://{}", l.local_addr().unwrap());
                Target::parse(&url, false).unwrap()
            })
            .collect();
        let l = Leader::new(dead, 0);
        let seen = l.current();
        let deadline = Instant::now() + Duration::from_millis(300);
        let after = l.follow(seen, Hint::Unknown, deadline).await.unwrap();
        assert_eq!(after, seen, "no move without a leader");
        assert!(
            Instant::now() < deadline + PROBE_TIMEOUT,
            "bounded by the deadline"
        );
        // A buyer right behind takes the search's answer without probing again.
        let quick = l
            .follow(seen, Hint::Unknown, Instant::now() + Duration::from_secs(1))
            .await;
        assert_eq!(quick, Ok(seen));
        assert!(l.report(Instant::now()).changes.is_empty());
    }

    #[tokio::test]
    async fn one_move_per_takeover_and_its_gap() {
        let l = Leader::new(targets(), 0);
        let start = Instant::now();
        let seen = l.current();
        l.note_failure(seen, Instant::now());
        let deadline = Instant::now() + Duration::from_secs(1);
        let moved = l.follow(seen, Hint::Named(1), deadline).await.unwrap();
        assert_eq!(moved.index, 1);
        assert_eq!(moved.generation, 1);
        // A second buyer that saw the same failure does not move the view again.
        let again = l.follow(seen, Hint::Named(0), deadline).await.unwrap();
        assert_eq!(again, moved);
        // A stale failure does not restart the clock; the first success stops it.
        l.note_failure(seen, Instant::now());
        l.note_success(moved, Instant::now());
        let r = l.report(start);
        assert_eq!(r.changes.len(), 1);
        let c = &r.changes[0];
        assert_eq!(
            (c.from.as_str(), c.to.as_str()),
            ("http://127.0.0.1:1", "http://127.0.0.1:2")
        );
        assert_eq!(c.cause, MoveCause::NotLeader);
        let gap = c.gap_s.unwrap();
        let span = c.first_success_at_s.unwrap() - c.first_failure_at_s.unwrap();
        assert!(gap >= 0.0 && (gap - span).abs() < 1e-6, "{c:?}");
        assert_eq!(r.leader_at_end, "http://127.0.0.1:2");
    }
}

//! A subscription that reconnects on its own and resumes from the last applied sequence number,
//! following the leader of a high-availability group when given its nodes.
//!
//! Two positions: the resume point (the server's stream numbering, valid on that server
//! process only) and, per SKU, the `log_seq` of the counts last delivered (the group's log
//! position, valid on every node). After a move to another node the server sends a snapshot;
//! only SKUs whose counts are newer in the log than those delivered are passed on, and an update
//! not newer than what was delivered for its SKU is dropped (ADR 0033).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use flashsale_protocol::stream::{LevelEntry, ResumePoint, ServerFrame, UpdateFrame};
use flashsale_protocol::SkuId;

use crate::{ClientError, ClientOptions, Connector, Session, SessionStart, MAX_SERVERS};

/// Pause between two rounds of looking for a new leader while the current server stays late.
pub const SCOUT_INTERVAL: Duration = Duration::from_millis(200);

/// Longest handshake of one attempt to another node while looking for a new leader (and at
/// most `connect_timeout`): a node that is down does not hold up the next round for long.
pub const SCOUT_ATTEMPT_LIMIT: Duration = Duration::from_secs(1);

/// What a [`Subscriber`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A (re)connection succeeded.
    Connected {
        /// The server's sequence epoch.
        epoch: u64,
        /// Whether the session continued from the previous one without a snapshot.
        resumed: bool,
    },
    /// The state of the subscribed SKUs as of `seq`. On the first connection, every SKU; after
    /// a reconnection the server could not resume (resume point no longer retained, or another
    /// node of the group), only the SKUs whose counts are newer (`log_seq`) than those
    /// delivered before: apply them over what you had.
    Snapshot {
        /// Every change up to this sequence number is reflected.
        seq: u64,
        /// Counts per SKU, sorted by SKU.
        levels: Vec<LevelEntry>,
    },
    /// A SKU changed. Sequence numbers strictly increase across reconnects within an epoch;
    /// per SKU, `log_seq` strictly increases across reconnects and moves between nodes.
    Update(UpdateFrame),
    /// The server is alive and everything up to `seq` has been delivered.
    Heartbeat {
        /// The server's position for this subscription.
        seq: u64,
        /// Server clock, Unix µs.
        server_time_us: u64,
    },
    /// The connection was lost or refused; the subscriber reconnects after `retry_in`.
    Disconnected {
        /// Why.
        error: ClientError,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// A live subscription: call [`Subscriber::next_event`] in a loop.
#[derive(Debug)]
pub struct Subscriber {
    connector: Connector,
    options: ClientOptions,
    session: Option<Session>,
    /// Set once a snapshot or resume established state: (epoch, last applied seq).
    position: Option<ResumePoint>,
    queued: VecDeque<StreamEvent>,
    failures: u32,
    delay: Option<Duration>,
    /// Whether a session was ever established (later attempts are reconnects).
    was_connected: bool,
    /// `server` then `other_servers`, deduplicated.
    servers: Vec<String>,
    /// Index in `servers` of the next (or current) connection.
    current: usize,
    /// Per SKU, the counts last delivered and their `log_seq`.
    delivered: HashMap<SkuId, Delivered>,
}

/// What a subscriber last delivered for one SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delivered {
    /// The group's log position those counts stand at.
    log_seq: u64,
    /// (available, reserved, sold).
    counts: Counts,
}

/// A SKU's counts: available, reserved, sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Units anyone may reserve.
    available: u64,
    /// Units held by reservations.
    reserved: u64,
    /// Units sold.
    sold: u64,
}

impl Subscriber {
    /// A subscriber with its own [`Connector`]. Connects on the first [`Subscriber::next_event`].
    pub fn connect(options: ClientOptions) -> Result<Subscriber, ClientError> {
        let connector = Connector::new(&options.trust, options.receive_window)?;
        Ok(Subscriber::with_connector(connector, options))
    }

    /// A subscriber sharing `connector` (one UDP socket for many subscriptions).
    pub fn with_connector(connector: Connector, options: ClientOptions) -> Subscriber {
        let mut servers: Vec<String> = Vec::new();
        for s in std::iter::once(&options.server).chain(&options.other_servers) {
            if !servers.contains(s) && servers.len() < MAX_SERVERS {
                servers.push(s.clone());
            }
        }
        Subscriber {
            servers,
            current: 0,
            delivered: HashMap::new(),
            connector,
            options,
            session: None,
            position: None,
            queued: VecDeque::new(),
            failures: 0,
            delay: None,
            was_connected: false,
        }
    }

    /// Where this subscription would resume: the epoch and last applied sequence number.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.position
    }

    /// The address of the current session, or of the next attempt.
    pub fn current_server(&self) -> &str {
        self.servers
            .get(self.current)
            .map_or(self.options.server.as_str(), String::as_str)
    }

    /// Whether `counts` at `log_seq` are news for `sku`: newer than what was delivered and
    /// different from it (a new leader labels recovered counts with its own log position, so
    /// the same counts can come back under a higher `log_seq`: they are recorded, not
    /// delivered again).
    fn is_news(&mut self, sku: &SkuId, log_seq: u64, counts: Counts) -> bool {
        match self.delivered.get_mut(sku) {
            Some(seen) if seen.log_seq >= log_seq => false,
            Some(seen) => {
                let changed = seen.counts != counts;
                *seen = Delivered { log_seq, counts };
                changed
            }
            None => {
                self.delivered
                    .insert(sku.clone(), Delivered { log_seq, counts });
                true
            }
        }
    }

    /// Whether a session is currently open.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    /// Drops the current connection (as a network failure would); the next call to
    /// [`Subscriber::next_event`] reconnects and resumes.
    pub fn disconnect(&mut self) {
        if let Some(session) = self.session.take() {
            session.close();
        }
    }

    /// Takes `session` (just opened on `self.current`) as the current one: the event to yield
    /// (a snapshot's news are queued after it).
    fn adopt(&mut self, session: Session, start: SessionStart) -> StreamEvent {
        self.failures = 0;
        self.was_connected = true;
        let epoch = session.epoch();
        self.session = Some(session);
        match start {
            SessionStart::Resumed { seq } => {
                self.position = Some(ResumePoint { epoch, seq });
                StreamEvent::Connected {
                    epoch,
                    resumed: true,
                }
            }
            SessionStart::Snapshot { seq, levels } => {
                self.position = Some(ResumePoint { epoch, seq });
                let levels: Vec<LevelEntry> = levels
                    .into_iter()
                    .filter(|l| {
                        let counts = Counts {
                            available: l.available,
                            reserved: l.reserved,
                            sold: l.sold,
                        };
                        self.is_news(&l.sku, l.log_seq, counts)
                    })
                    .collect();
                self.queued.push_back(StreamEvent::Snapshot { seq, levels });
                StreamEvent::Connected {
                    epoch,
                    resumed: false,
                }
            }
        }
    }

    /// The current server stayed late and another node accepted as leader: closes the old
    /// session and continues on `found` (a `Disconnected` now; `Connected` and the snapshot's
    /// news next).
    fn move_to(&mut self, found: Found) -> StreamEvent {
        if let Some(old) = self.session.take() {
            old.close();
        }
        self.current = found.index;
        tracing::debug!(server = %self.current_server(), "moved to the node that leads");
        let connected = self.adopt(found.session, found.start);
        self.queued.push_front(connected);
        StreamEvent::Disconnected {
            error: ClientError::Timeout("a heartbeat (another node accepted as the leader)"),
            retry_in: Duration::ZERO,
        }
    }

    fn backoff(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(16);
        let base = self
            .options
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.options.backoff_max);
        // Up to 25 % jitter so many clients do not reconnect in lockstep.
        let jitter_range = u64::try_from(base.as_micros() / 4).unwrap_or(0).max(1);
        let jitter = Duration::from_micros(crate::unix_micros() % jitter_range);
        base + jitter
    }

    fn fail(&mut self, error: ClientError) -> Result<StreamEvent, ClientError> {
        if let Some(session) = self.session.take() {
            session.close();
        }
        if error.is_fatal() {
            return Err(error);
        }
        let node_count = self.servers.len().max(1);
        // A stateless reset means the server is back (it restarted): retry it at once, once.
        let retry_in = if error == ClientError::Reset && self.failures == 0 {
            self.failures = 1;
            Duration::ZERO
        } else if node_count > 1 {
            // A group: try the next node at once, and back off only after a whole round.
            self.current = (self.current + 1) % node_count;
            let round_done = self.current == 0;
            if round_done {
                self.backoff()
            } else {
                Duration::ZERO
            }
        } else {
            self.backoff()
        };
        self.delay = Some(retry_in);
        tracing::debug!(%error, ?retry_in, "stock stream disconnected");
        Ok(StreamEvent::Disconnected { error, retry_in })
    }

    /// The next event. Reconnects (with backoff) and resumes by itself; returns an error only
    /// when reconnecting cannot help ([`ClientError::is_fatal`]).
    pub async fn next_event(&mut self) -> Result<StreamEvent, ClientError> {
        // Each turn reads one frame; a turn ends the loop unless it read an update this
        // subscription already delivered (a frame at a time, so the loop is bounded by input).
        loop {
            if let Some(event) = self.next_frame_event().await? {
                return Ok(event);
            }
        }
    }

    /// One step of [`Subscriber::next_event`]: `None` when the frame read was dropped.
    async fn next_frame_event(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        if let Some(event) = self.queued.pop_front() {
            return Ok(Some(event));
        }
        let Some(session) = self.session.as_mut() else {
            if let Some(delay) = self.delay.take() {
                tokio::time::sleep(delay).await;
            }
            let resume = self.position;
            let handshake_timeout = match self.options.reconnect_handshake_timeout {
                Some(limit) if self.was_connected => limit.min(self.options.connect_timeout),
                _ => self.options.connect_timeout,
            };
            let mut options = self.options.clone();
            options.server = self.current_server().to_string();
            let opened =
                Session::open_within(&self.connector, &options, resume, handshake_timeout).await;
            return match opened {
                Ok((session, start)) => Ok(Some(self.adopt(session, start))),
                Err(e) => self.fail(e).map(Some),
            };
        };
        // Given other nodes, look for a new leader once the current one is late (the scout is
        // only built then: a streaming session pays for one timer per frame, nothing more).
        let frame = if self.servers.len() > 1 {
            let late_at = session.late_at();
            let raced = tokio::select! {
                frame = session.next_frame() => Raced::Frame(frame),
                _ = tokio::time::sleep_until(late_at.into()) => {
                    let scout = Scout {
                        connector: self.connector.clone(),
                        options: self.options.clone(),
                        others: others(&self.servers, self.current),
                        resume: self.position,
                    };
                    tokio::select! {
                        frame = session.next_frame() => Raced::Frame(frame),
                        found = scout.run() => Raced::Found(Box::new(found)),
                    }
                }
            };
            match raced {
                Raced::Frame(frame) => frame,
                // The current server answered since the search began: stay.
                Raced::Found(found) if session.late_at() > Instant::now() => {
                    found.session.close();
                    return Ok(None);
                }
                Raced::Found(found) => return Ok(Some(self.move_to(*found))),
            }
        } else {
            session.next_frame().await
        };
        let epoch = session.epoch();
        let last = self.position.map_or(0, |p| p.seq);
        match frame {
            Ok(ServerFrame::Update(update)) => {
                if update.seq <= last {
                    return self
                        .fail(ClientError::Protocol(format!(
                            "update seq {} does not follow {last}",
                            update.seq
                        )))
                        .map(Some);
                }
                self.position = Some(ResumePoint {
                    epoch,
                    seq: update.seq,
                });
                let counts = Counts {
                    available: update.available,
                    reserved: update.reserved,
                    sold: update.sold,
                };
                if !self.is_news(&update.sku, update.log_seq, counts) {
                    return Ok(None);
                }
                Ok(Some(StreamEvent::Update(update)))
            }
            Ok(ServerFrame::Heartbeat {
                seq,
                server_time_us,
            }) => {
                if seq < last {
                    return self
                        .fail(ClientError::Protocol(format!(
                            "heartbeat seq {seq} is behind {last}"
                        )))
                        .map(Some);
                }
                self.position = Some(ResumePoint { epoch, seq });
                Ok(Some(StreamEvent::Heartbeat {
                    seq,
                    server_time_us,
                }))
            }
            Ok(other) => self
                .fail(ClientError::Protocol(format!(
                    "unexpected frame while streaming: {other:?}"
                )))
                .map(Some),
            Err(e) => self.fail(e).map(Some),
        }
    }
}

/// The other servers of a subscription: index in `servers`, address.
fn others(servers: &[String], current: usize) -> Vec<(usize, String)> {
    servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != current)
        .map(|(i, s)| (i, s.clone()))
        .collect()
}

/// The search for a new leader while the current server is late: rounds of connection
/// attempts to every other node at once, [`SCOUT_INTERVAL`] apart, until one accepts. A standby refuses with `NotLeader` (its message names the leader by its HTTP URL,
/// which every node of the round is tried anyway); the node that leads accepts. Dropping it
/// (the current server answered after all) abandons the attempts in flight.
struct Scout {
    connector: Connector,
    options: ClientOptions,
    /// The other nodes: index in the subscriber's list, address.
    others: Vec<(usize, String)>,
    /// Where to resume (another node answers with a snapshot).
    resume: Option<ResumePoint>,
}

/// Which of the current session and a [`Scout`] finished first.
enum Raced {
    /// The current session read a frame (or failed).
    Frame(Result<ServerFrame, ClientError>),
    /// Another node accepted (boxed: a session is large).
    Found(Box<Found>),
}

/// A node that accepted during a [`Scout`].
struct Found {
    /// Its index in the subscriber's list.
    index: usize,
    /// The open session.
    session: Session,
    /// How it started.
    start: SessionStart,
}

impl Scout {
    /// Looks until a node accepts (never returns otherwise: the caller races it with the
    /// current session, whose silence limit ends the race).
    async fn run(self) -> Found {
        let limit = SCOUT_ATTEMPT_LIMIT.min(self.options.connect_timeout);
        loop {
            let mut attempts = tokio::task::JoinSet::new();
            for (index, server) in &self.others {
                let (index, connector, resume) = (*index, self.connector.clone(), self.resume);
                let mut options = self.options.clone();
                options.server = server.clone();
                options.connect_timeout = limit;
                attempts.spawn(async move {
                    let opened = Session::open_within(&connector, &options, resume, limit).await;
                    (index, opened)
                });
            }
            while let Some(joined) = attempts.join_next().await {
                match joined {
                    Ok((index, Ok((session, start)))) => {
                        return Found {
                            index,
                            session,
                            start,
                        }
                    }
                    Ok((index, Err(error))) => {
                        tracing::debug!(index, %error, "not the new leader");
                    }
                    Err(_) => {}
                }
            }
            tokio::time::sleep(SCOUT_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trust;
    use flashsale_protocol::stream::ErrorCode;

    fn subscriber(servers: &[&str]) -> Subscriber {
        let mut options = ClientOptions::new(servers[0], "t", Trust::Insecure);
        options.other_servers = servers[1..].iter().map(|s| s.to_string()).collect();
        Subscriber::connect(options).unwrap()
    }

    #[test]
    fn only_newer_log_positions_are_news() {
        let mut sub = subscriber(&["127.0.0.1:1"]);
        let tee = SkuId::new("tee").unwrap();
        let c = |available| Counts {
            available,
            reserved: 1,
            sold: 2,
        };
        assert!(sub.is_news(&tee, 5, c(7)));
        assert!(!sub.is_news(&tee, 5, c(6)), "a repeat");
        assert!(!sub.is_news(&tee, 3, c(8)), "a step back");
        assert!(sub.is_news(&tee, 9, c(6)));
        assert!(sub.is_news(&SkuId::new("mug").unwrap(), 1, c(7)));
    }

    #[test]
    fn the_same_counts_under_a_higher_log_position_are_recorded_not_delivered_again() {
        let mut sub = subscriber(&["127.0.0.1:1"]);
        let tee = SkuId::new("tee").unwrap();
        let c = Counts {
            available: 7,
            reserved: 1,
            sold: 2,
        };
        assert!(sub.is_news(&tee, 5, c));
        assert!(
            !sub.is_news(&tee, 8, c),
            "a new leader's relabelled snapshot"
        );
        assert!(
            !sub.is_news(&tee, 7, Counts { available: 6, ..c }),
            "behind the relabel"
        );
        assert!(sub.is_news(&tee, 9, Counts { available: 6, ..c }));
    }

    #[test]
    fn a_refusal_moves_to_the_next_node_at_once_and_backs_off_after_a_round() {
        let mut sub = subscriber(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:3"]);
        assert_eq!(sub.servers.len(), 3, "duplicates dropped");
        let refused = || ClientError::closed(u64::from(ErrorCode::NotLeader.as_u32()), "standby");
        let mut delays = Vec::new();
        let mut visited = vec![sub.current_server().to_string()];
        for _ in 0..3 {
            match sub.fail(refused()) {
                Ok(StreamEvent::Disconnected { retry_in, .. }) => delays.push(retry_in),
                other => panic!("unexpected {other:?}"),
            }
            visited.push(sub.current_server().to_string());
        }
        assert_eq!(
            visited,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"]
        );
        assert_eq!(delays[..2], [Duration::ZERO, Duration::ZERO]);
        assert!(delays[2] >= sub.options.backoff_min, "{delays:?}");
    }
}

//! A subscription that reconnects on its own and resumes from the last applied sequence number.

use std::collections::VecDeque;
use std::time::Duration;

use flashsale_protocol::stream::{LevelEntry, ResumePoint, ServerFrame, UpdateFrame};

use crate::{ClientError, ClientOptions, Connector, Session, SessionStart};

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
    /// The full state of the subscribed SKUs as of `seq`: replace what you had. Sent on the
    /// first connection and whenever a resume point was no longer retained by the server.
    Snapshot {
        /// Every change up to this sequence number is reflected.
        seq: u64,
        /// Counts per SKU, sorted by SKU.
        levels: Vec<LevelEntry>,
    },
    /// A SKU changed. Sequence numbers strictly increase across reconnects within an epoch.
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
}

impl Subscriber {
    /// A subscriber with its own [`Connector`]. Connects on the first [`Subscriber::next_event`].
    pub fn connect(options: ClientOptions) -> Result<Subscriber, ClientError> {
        let connector = Connector::new(&options.trust, options.receive_window)?;
        Ok(Subscriber::with_connector(connector, options))
    }

    /// A subscriber sharing `connector` (one UDP socket for many subscriptions).
    pub fn with_connector(connector: Connector, options: ClientOptions) -> Subscriber {
        Subscriber {
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
        // A stateless reset means the server is back (it restarted): retry at once, once.
        let retry_in = if error == ClientError::Reset && self.failures == 0 {
            self.failures = 1;
            Duration::ZERO
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
        if let Some(event) = self.queued.pop_front() {
            return Ok(event);
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
            let opened =
                Session::open_within(&self.connector, &self.options, resume, handshake_timeout)
                    .await;
            match opened {
                Ok((session, start)) => {
                    self.failures = 0;
                    self.was_connected = true;
                    let epoch = session.epoch();
                    self.session = Some(session);
                    match start {
                        SessionStart::Resumed { seq } => {
                            self.position = Some(ResumePoint { epoch, seq });
                            return Ok(StreamEvent::Connected {
                                epoch,
                                resumed: true,
                            });
                        }
                        SessionStart::Snapshot { seq, levels } => {
                            self.position = Some(ResumePoint { epoch, seq });
                            self.queued.push_back(StreamEvent::Snapshot { seq, levels });
                            return Ok(StreamEvent::Connected {
                                epoch,
                                resumed: false,
                            });
                        }
                    }
                }
                Err(e) => return self.fail(e),
            }
        };
        let frame = session.next_frame().await;
        let epoch = session.epoch();
        let last = self.position.map_or(0, |p| p.seq);
        match frame {
            Ok(ServerFrame::Update(update)) => {
                if update.seq <= last {
                    return self.fail(ClientError::Protocol(format!(
                        "update seq {} does not follow {last}",
                        update.seq
                    )));
                }
                self.position = Some(ResumePoint {
                    epoch,
                    seq: update.seq,
                });
                Ok(StreamEvent::Update(update))
            }
            Ok(ServerFrame::Heartbeat {
                seq,
                server_time_us,
            }) => {
                if seq < last {
                    return self.fail(ClientError::Protocol(format!(
                        "heartbeat seq {seq} is behind {last}"
                    )));
                }
                self.position = Some(ResumePoint { epoch, seq });
                Ok(StreamEvent::Heartbeat {
                    seq,
                    server_time_us,
                })
            }
            Ok(other) => self.fail(ClientError::Protocol(format!(
                "unexpected frame while streaming: {other:?}"
            ))),
            Err(e) => self.fail(e),
        }
    }
}

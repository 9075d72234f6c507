//! The dashboard's live feed: the sampler publishes one server-sent event per tick; each open
//! event stream sends the latest one. Bounded everywhere: at most [`MAX_STREAMS`] streams at
//! once (more are refused), one event kept (a slow browser skips to the latest, it never
//! queues), and a stream ends after [`MAX_STREAM_EVENTS`] events (the browser's
//! `EventSource` reconnects by itself, which re-checks its session).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::sample::Sample;
use crate::http::app::ResBody;

/// Most dashboard event streams open at once.
pub const MAX_STREAMS: usize = 16;
/// Events a stream sends before it ends (an hour at one per second).
pub const MAX_STREAM_EVENTS: u64 = 3600;
/// How long a browser waits before reconnecting a stream that ended, in ms.
pub const RECONNECT_MS: u64 = 2000;

/// The latest state of the feed.
#[derive(Debug, Clone)]
enum Latest {
    /// Nothing published yet.
    Nothing,
    /// The latest event, encoded (`data: …\n\n`).
    Event(Bytes),
    /// The server is stopping: streams end.
    Closed,
}

/// The feed: the latest event and the stream slots.
#[derive(Debug)]
pub struct DashboardFeed {
    latest: watch::Sender<Latest>,
    slots: Arc<Semaphore>,
}

impl Default for DashboardFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// One open stream's state.
struct Stream {
    latest: watch::Receiver<Latest>,
    /// Its slot under [`MAX_STREAMS`], given back when the stream (the response body) is
    /// dropped: the browser left, or the stream ended.
    _slot: OwnedSemaphorePermit,
    sent: u64,
    started: bool,
}

/// `sample` as one server-sent event (a single `data:` line: the JSON has no newline).
pub fn encode_event(sample: &Sample) -> Bytes {
    let json = serde_json::to_string(sample).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("data: {json}\n\n"))
}

impl DashboardFeed {
    /// A feed with nothing published and every slot free.
    pub fn new() -> Self {
        DashboardFeed {
            latest: watch::Sender::new(Latest::Nothing),
            slots: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }

    /// Sends `sample` to every open stream (replacing an event a slow one has not sent yet).
    pub fn publish(&self, sample: &Sample) {
        if !self.is_closed() {
            self.latest
                .send_replace(Latest::Event(encode_event(sample)));
        }
    }

    /// Ends every stream (the server is stopping); later streams end at once.
    pub fn close(&self) {
        self.latest.send_replace(Latest::Closed);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        matches!(*self.latest.borrow(), Latest::Closed)
    }

    /// Event streams open now.
    pub fn streams(&self) -> u64 {
        MAX_STREAMS.saturating_sub(self.slots.available_permits()) as u64
    }

    /// A new event stream's body: a `retry:` line and the latest event at once, then each new
    /// one; `None` when [`MAX_STREAMS`] are open.
    pub fn open_stream(&self) -> Option<ResBody> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        let stream = Stream {
            latest: self.latest.subscribe(),
            _slot: slot,
            sent: 0,
            started: false,
        };
        let frames = futures::stream::unfold(stream, |mut s| async move {
            if !s.started {
                s.started = true;
                let mut first = format!("retry: {RECONNECT_MS}\n\n").into_bytes();
                match &*s.latest.borrow_and_update() {
                    Latest::Event(e) => first.extend_from_slice(e),
                    Latest::Closed => return None,
                    Latest::Nothing => {}
                }
                return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(first))), s));
            }
            while s.sent < MAX_STREAM_EVENTS {
                s.latest.changed().await.ok()?;
                let latest = s.latest.borrow_and_update().clone();
                match latest {
                    Latest::Event(e) => {
                        s.sent += 1;
                        return Some((Ok(Frame::data(e)), s));
                    }
                    Latest::Closed => return None,
                    Latest::Nothing => {}
                }
            }
            None
        });
        Some(ResBody::stream(StreamBody::new(frames)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::sample::{Inputs, Sampler};
    use http_body_util::BodyExt as _;

    fn sample(n: u64) -> Sample {
        let inputs = Inputs {
            now_ms: n,
            stats: None,
            latency_us: hdrhistogram::Histogram::new(2).unwrap(),
            levels: Vec::new(),
            http_connections: n,
            stream_subscribers: 0,
            dashboard_streams: 0,
            problems: Vec::new(),
            problems_total: 0,
        };
        Sampler::new().sample(inputs, 1)
    }

    async fn next_text(body: &mut ResBody) -> String {
        let frame = body.frame().await.unwrap().unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn streams_get_the_latest_event_and_are_bounded() {
        let feed = DashboardFeed::new();
        feed.publish(&sample(1));
        let mut a = feed.open_stream().unwrap();
        let first = next_text(&mut a).await;
        assert!(first.starts_with("retry: 2000\n\ndata: {"), "{first}");
        assert!(first.contains("\"http_connections\":1"), "{first}");
        // Two events published before the stream reads: it gets the latest only.
        feed.publish(&sample(2));
        feed.publish(&sample(3));
        let next = next_text(&mut a).await;
        assert!(
            next.contains("\"http_connections\":3") && next.ends_with("\n\n"),
            "{next}"
        );
        assert_eq!(feed.streams(), 1);
        let mut others: Vec<ResBody> = (1..MAX_STREAMS)
            .map(|_| feed.open_stream().unwrap())
            .collect();
        assert!(feed.open_stream().is_none(), "more than MAX_STREAMS");
        others.pop();
        assert!(
            feed.open_stream().is_some(),
            "a dropped stream gives its slot back"
        );
        feed.close();
        assert!(a.frame().await.is_none(), "closing ends the streams");
        drop(a);
        drop(others);
        assert_eq!(feed.streams(), 0);
    }
}

//! Reading a request body: whole, within the size limit (413, checked against
//! `Content-Length` before reading) and the time limit (408); a failed read closes the
//! connection, since the rest of the body is left unread.

use std::error::Error as StdError;
use std::future::{poll_fn, Future as _};
use std::pin::pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_LENGTH};

use super::App;
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};

/// A request body the API can read: hyper's `Incoming`, or any body of bytes in tests.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<Box<dyn StdError + Send + Sync>>> + Send
{
}

impl<B> RequestBody for B
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
}

impl<E: Inventory> App<E> {
    /// Reads the whole body within the size and time limits.
    pub(super) async fn read_body<B: RequestBody>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Bytes, Problem> {
        let limit = self.config.body_limit_bytes;
        if let Some(len) = headers.get(CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Problem::malformed("Content-Length is not a number"))?;
            if len > limit as u64 {
                return Err(too_large(limit));
            }
        }
        let mut collect = pin!(read_all(Limited::new(body, limit)));
        // A small body has usually arrived with the head: then the first poll has it and no
        // timer is made (ADR 0043); otherwise the time limit runs from here.
        let first = poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
        let read = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout(self.config.body_timeout, collect).await,
        };
        match read {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
            Ok(Err(e)) => {
                let mut p = Problem::malformed(format!("cannot read the request body: {e}"));
                p.close = true;
                Err(p)
            }
            Err(_) => {
                let mut p = Problem::new(
                    ProblemKind::Timeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        self.config.body_timeout.as_millis()
                    ),
                );
                p.close = true;
                Err(p)
            }
        }
    }
}

/// A body read so far.
enum Read {
    /// No data yet.
    Nothing,
    /// One chunk, kept as it came (no copy).
    One(Bytes),
    /// Several chunks, joined.
    Joined(BytesMut),
}

/// Reads every data frame of `body` (trailers are ignored). A body that comes in one chunk
/// (a small request, usually) is returned as that chunk, with no list of chunks and no
/// copy; several chunks are joined into one buffer.
async fn read_all<B: Body<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
    let mut body = pin!(body);
    let mut read = Read::Nothing;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        read = match read {
            Read::Nothing => Read::One(data),
            Read::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Read::Joined(joined)
            }
            Read::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                Read::Joined(joined)
            }
        };
    }
    Ok(match read {
        Read::Nothing => Bytes::new(),
        Read::One(bytes) => bytes,
        Read::Joined(joined) => joined.freeze(),
    })
}

/// 413: the body is larger than `limit` bytes; the connection is closed after the answer.
fn too_large(limit: usize) -> Problem {
    let mut p = Problem::new(
        ProblemKind::TooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
    .with("limit_bytes", limit as u64);
    p.close = true;
    p
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    use super::*;

    #[tokio::test]
    async fn a_body_in_one_chunk_is_kept_as_it_came_and_chunks_are_joined() {
        let whole = Bytes::from_static(br#"{"a":1}"#);
        let read = read_all(Full::new(whole.clone())).await.unwrap();
        assert_eq!(read, whole);
        assert_eq!(read.as_ptr(), whole.as_ptr(), "one chunk is not copied");
        let chunks = [&br#"{"a""#[..], b"", b":1", b"}"]
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c))));
        let read = read_all(StreamBody::new(futures::stream::iter(chunks)))
            .await
            .unwrap();
        assert_eq!(read, whole);
        let only_trailers = [Ok::<_, Infallible>(Frame::<Bytes>::trailers(
            HeaderMap::new(),
        ))];
        let read = read_all(StreamBody::new(futures::stream::iter(only_trailers)))
            .await
            .unwrap();
        assert!(read.is_empty());
    }
}

//! The cheapest poll a waiting buyer can make: HTTP/1.1 keep-alive over a plain socket, the
//! request's bytes built once per ticket, the answer read into one reused buffer and only the
//! two fields a waiting buyer needs (`status`, `poll_after_ms`) picked out of it. No hyper
//! connection task, no channel hop, no allocation per poll. The bench's 10,000 waiting buyers
//! poll through it so that the load generator, which shares the server's cores, spends as
//! little CPU per poll as it can (docs/benchmarks.md, "Waiting room").

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::Status;
use crate::conn::TransportError;

/// Largest poll answer (head and body) read; a ticket is a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024;

/// Why a poll request cannot be sent raw.
#[derive(Debug, thiserror::Error)]
pub enum RawRequestError {
    /// Only a body-less request can be pre-built.
    #[error("a raw poll has no body")]
    HasBody,
    /// A header value that is not visible ASCII.
    #[error("header {0} is not visible ASCII")]
    Header(String),
}

/// What a poll answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollAnswer {
    /// The HTTP status code.
    pub http_status: u16,
    /// The ticket's status (a 200 answer's `status`), if present and known.
    pub status: Option<Status>,
    /// The ticket's `poll_after_ms`, if present.
    pub poll_after_ms: Option<u64>,
}

/// The bytes of `req` (a body-less request) as HTTP/1.1 sends them.
pub fn request_bytes(req: &Request<Full<Bytes>>) -> Result<Bytes, RawRequestError> {
    if req.body().size_hint().exact() != Some(0) {
        return Err(RawRequestError::HasBody);
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if value.as_bytes().iter().any(|b| *b < 0x20 && *b != b'\t') {
            return Err(RawRequestError::Header(name.to_string()));
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Bytes::from(out))
}

/// One waiting buyer's poll connection: a pre-built request, sent again and again.
#[derive(Debug)]
pub struct RawPoller {
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    request: Bytes,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl RawPoller {
    /// A poller sending `request` (see [`request_bytes`]) to `target`, bound to `source` if
    /// given, each exchange (and connect) within `timeout`. Nothing is opened yet.
    pub fn new(
        target: SocketAddr,
        source: Option<IpAddr>,
        timeout: Duration,
        request: Bytes,
    ) -> RawPoller {
        RawPoller {
            target,
            source,
            timeout,
            request,
            stream: None,
            buf: Vec::with_capacity(MAX_ANSWER_BYTES),
        }
    }

    /// Sends the poll and reads its answer, (re)connecting first if needed. After an error
    /// or a timeout the connection is dropped (its state is unknown). A kept-alive
    /// connection that fails before a byte of the answer came back was closed by the server
    /// while idle (its idle timeout, 15 s by default, can be shorter than the interval it asks
    /// a ticket far back in line to wait): the poll, a GET, is sent again once on a fresh
    /// connection, as HTTP clients do.
    pub async fn poll(&mut self) -> Result<PollAnswer, TransportError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let reused = self.stream.is_some();
        match self.exchange_until(deadline).await {
            Err(_) if reused && self.buf.is_empty() => self.exchange_until(deadline).await,
            other => other,
        }
    }

    /// One exchange within `deadline`; the connection is dropped after an error.
    async fn exchange_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<PollAnswer, TransportError> {
        match tokio::time::timeout_at(deadline, self.exchange()).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(TransportError::Timeout)
            }
        }
    }

    async fn exchange(&mut self) -> Result<PollAnswer, TransportError> {
        if self.stream.is_none() {
            self.stream = Some(self.connect().await?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(TransportError::Connect("no connection".into()));
        };
        let io = |e: std::io::Error| TransportError::Io(e.to_string());
        self.buf.clear();
        stream.write_all(&self.request).await.map_err(io)?;
        loop {
            if self.buf.len() >= MAX_ANSWER_BYTES {
                return Err(TransportError::Io("poll answer too large".into()));
            }
            let n = read_some(stream, &mut self.buf).await.map_err(io)?;
            if n == 0 {
                return Err(TransportError::Io("connection closed".into()));
            }
            match parse_answer(&self.buf) {
                Parsed::Incomplete => continue,
                Parsed::Invalid(why) => return Err(TransportError::Io(why.into())),
                Parsed::Complete { answer, len, close } => {
                    if len != self.buf.len() {
                        return Err(TransportError::Io("bytes after the poll answer".into()));
                    }
                    if close {
                        self.stream = None;
                    }
                    return Ok(answer);
                }
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, TransportError> {
        crate::conn::connect_tcp(self.target, self.source).await
    }
}

/// Reads what is there into the spare capacity of `buf` (reserved up to
/// [`MAX_ANSWER_BYTES`] once, never zeroed); the number of bytes read.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(MAX_ANSWER_BYTES.saturating_sub(buf.len()));
    stream.read_buf(buf).await
}

/// How far an answer in a buffer is.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// Not an answer this poller understands.
    Invalid(&'static str),
    /// A whole answer of `len` bytes; `close`: the server closes the connection after it.
    Complete {
        answer: PollAnswer,
        len: usize,
        close: bool,
    },
}

/// Parses an HTTP/1.1 answer with a `Content-Length` body (what the server sends for a poll).
fn parse_answer(buf: &[u8]) -> Parsed {
    let Some(head_len) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        return Parsed::Incomplete;
    };
    let head = &buf[..head_len];
    let mut lines = head.split(|b| *b == b'\n');
    let Some(status_line) = lines.next() else {
        return Parsed::Invalid("no status line");
    };
    let http_status = match status_line.get(..12) {
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', a, b, c]) => {
            match parse_u64(&[*a, *b, *c]) {
                Some(s) => s as u16,
                None => return Parsed::Invalid("bad status code"),
            }
        }
        _ => return Parsed::Invalid("not an HTTP/1.x status line"),
    };
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = parse_u64(value);
            if content_length.is_none() {
                return Parsed::Invalid("bad content-length");
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Invalid("chunked answers are not read by the raw poller");
        } else if name.eq_ignore_ascii_case(b"connection") && value.eq_ignore_ascii_case(b"close") {
            close = true;
        }
    }
    let Some(body_len) = content_length.and_then(|n| usize::try_from(n).ok()) else {
        return Parsed::Invalid("no content-length");
    };
    let len = head_len.saturating_add(body_len);
    if len > MAX_ANSWER_BYTES {
        return Parsed::Invalid("poll answer too large");
    }
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    let body = &buf[head_len..len];
    let (status, poll_after_ms) = if http_status == 200 {
        (
            json_field(body, b"status").and_then(status_of),
            json_field(body, b"poll_after_ms").and_then(parse_u64),
        )
    } else {
        (None, None)
    };
    Parsed::Complete {
        answer: PollAnswer {
            http_status,
            status,
            poll_after_ms,
        },
        len,
        close,
    }
}

/// A ticket status as the API spells it.
fn status_of(s: &[u8]) -> Option<Status> {
    Some(match s {
        b"waiting" => Status::Waiting,
        b"admitted" => Status::Admitted,
        b"sold_out" => Status::SoldOut,
        b"spent" => Status::Spent,
        b"expired" => Status::Expired,
        _ => return None,
    })
}

/// The raw value of the top-level `"key": value` of a flat JSON object: a string's content
/// (without quotes; the poll's fields have no escapes) or a number's digits. A key inside a
/// string value cannot match: JSON escapes the quotes that would surround it.
fn json_field<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(at) = find(&body[from..], key).map(|i| i + from) {
        from = at + key.len();
        let quoted = at > 0 && body[at - 1] == b'"' && body.get(at + key.len()) == Some(&b'"');
        if !quoted {
            continue;
        }
        let rest = trim_start(&body[at + key.len() + 1..]);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let rest = trim_start(rest);
        return if let Some(s) = rest.strip_prefix(b"\"") {
            let end = s.iter().position(|b| *b == b'"' || *b == b'\\')?;
            (s[end] == b'"').then_some(&s[..end])
        } else {
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            (end > 0).then_some(&rest[..end])
        };
    }
    None
}

/// The first place `needle` occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A decimal without sign (at most 19 digits).
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    &s[start..]
}

fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::wire::{QueueApi, TicketAnswer};

    const TICKET: &[u8] = br#"{"ticket":"tkt_7","queue":"q","buyer":"status","status":"waiting","position":3,"eta_s":1,"poll_after_ms":2000}"#;

    fn answer(body: &[u8], extra: &str) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: {}\r\n{extra}date: x\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn request_bytes_are_the_poll_of_the_api() {
        let api = QueueApi::new("127.0.0.1:9", "shop", "adm", "drop").unwrap();
        let raw = request_bytes(&api.poll("tkt_3").unwrap()).unwrap();
        let text = std::str::from_utf8(&raw).unwrap();
        assert!(text.starts_with("GET /v1/queues/drop/tickets/tkt_3 HTTP/1.1\r\n"));
        assert!(text.contains("\r\nhost: 127.0.0.1:9\r\n"));
        assert!(text.contains("\r\nauthorization: Bearer shop\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let join = api.join("b").unwrap();
        assert!(matches!(
            request_bytes(&join),
            Err(RawRequestError::HasBody)
        ));
    }

    #[test]
    fn picks_the_fields_a_waiting_buyer_needs_as_serde_does() {
        let buf = answer(TICKET, "");
        let Parsed::Complete { answer, len, close } = parse_answer(&buf) else {
            panic!("not complete");
        };
        let full = TicketAnswer::parse(TICKET).unwrap();
        assert_eq!(len, buf.len());
        assert!(!close);
        assert_eq!(answer.http_status, 200);
        assert_eq!(answer.status, Some(full.status));
        assert_eq!(answer.poll_after_ms, full.poll_after_ms);
        assert_eq!(answer.poll_after_ms, Some(2_000));
        // The buyer is named "status": the key, not the value, is read.
        assert_eq!(answer.status, Some(Status::Waiting));
    }

    #[test]
    fn waits_for_the_whole_answer_and_sees_close() {
        let buf = answer(
            br#"{"status":"sold_out","poll_after_ms":5000}"#,
            "connection: close\r\n",
        );
        for cut in [0, 10, buf.len() / 2, buf.len() - 1] {
            assert_eq!(
                parse_answer(&buf[..cut]),
                Parsed::Incomplete,
                "cut at {cut}"
            );
        }
        let Parsed::Complete { answer, close, .. } = parse_answer(&buf) else {
            panic!("not complete");
        };
        assert!(close);
        assert_eq!(answer.status, Some(Status::SoldOut));
        assert_eq!(answer.poll_after_ms, Some(5_000));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert!(matches!(parse_answer(chunked), Parsed::Invalid(_)));
        assert!(matches!(
            parse_answer(b"HTTP/1.1 200 OK\r\n\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse_answer(b"SSH-2.0\r\n\r\n"),
            Parsed::Invalid(_)
        ));
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_ANSWER_BYTES
        );
        assert!(matches!(parse_answer(huge.as_bytes()), Parsed::Invalid(_)));
        // A problem answer: its status, no ticket fields.
        let body = br#"{"type":"x","status":404}"#;
        let mut nf = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        nf.extend_from_slice(body);
        let Parsed::Complete { answer, .. } = parse_answer(&nf) else {
            panic!("not complete");
        };
        assert_eq!((answer.http_status, answer.status), (404, None));
    }

    #[tokio::test]
    async fn polls_a_real_socket_twice_on_one_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                // The answer in two writes: the poller reads until it is whole.
                let a = answer(TICKET, "");
                s.write_all(&a[..20]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(&a[20..]).await.unwrap();
            }
            seen
        });
        let api = QueueApi::new(&addr.to_string(), "shop", "adm", "q").unwrap();
        let req = request_bytes(&api.poll("tkt_7").unwrap()).unwrap();
        let mut p = RawPoller::new(addr, None, Duration::from_secs(5), req);
        for _ in 0..2 {
            let a = p.poll().await.unwrap();
            assert_eq!((a.http_status, a.status), (200, Some(Status::Waiting)));
        }
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen
            .iter()
            .all(|r| r.starts_with("GET /v1/queues/q/tickets/tkt_7 HTTP/1.1\r\n")));
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut connections = 0;
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                connections += 1;
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                s.write_all(&answer(TICKET, "")).await.unwrap();
                // No `connection: close`: the server closes it later, as its idle timeout
                // does, before the next poll comes.
                s.shutdown().await.unwrap();
            }
            connections
        });
        let api = QueueApi::new(&addr.to_string(), "shop", "adm", "q").unwrap();
        let req = request_bytes(&api.poll("tkt_7").unwrap()).unwrap();
        let mut p = RawPoller::new(addr, None, Duration::from_secs(5), req);
        for _ in 0..2 {
            let a = p.poll().await.unwrap();
            assert_eq!((a.http_status, a.status), (200, Some(Status::Waiting)));
            // Let the server's close arrive before the next poll.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            server.await.unwrap(),
            2,
            "the second poll took a new connection"
        );
    }

    #[tokio::test]
    async fn a_fresh_connection_that_fails_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // Closes every connection without an answer: no retry loop on fresh ones.
            let mut accepted = 0;
            while let Ok(Ok((s, _))) =
                tokio::time::timeout(Duration::from_millis(500), listener.accept()).await
            {
                accepted += 1;
                drop(s);
            }
            accepted
        });
        let api = QueueApi::new(&addr.to_string(), "shop", "adm", "q").unwrap();
        let req = request_bytes(&api.poll("tkt_7").unwrap()).unwrap();
        let mut p = RawPoller::new(addr, None, Duration::from_secs(5), req);
        assert!(p.poll().await.is_err());
        assert_eq!(server.await.unwrap(), 1, "one connection, not retried");
    }
}

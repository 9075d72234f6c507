//! Leader following against small fake nodes: a standby answers `503 not-leader` naming the
//! leader, the leader answers; reads and keyed writes follow, unkeyed writes do not, and the
//! number of attempts is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_client::{ApiClient, ApiError, NewReservation, ProblemKind, MAX_REDIRECTS};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request a fake node received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    key: Option<String>,
}

/// How a fake node answers every request.
#[derive(Debug, Clone)]
enum Role {
    /// `503 not-leader` naming this leader URL (or null).
    Standby(Option<String>),
    /// 200 with this JSON body.
    Leader(String),
}

/// A fake node on an ephemeral loopback port.
struct Node {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    role: Arc<Mutex<Role>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Node {
    async fn start(role: Role) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let role = Arc::new(Mutex::new(role));
        let (s, r) = (seen.clone(), role.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Head, then the body by Content-Length; bounded at 64 KiB.
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 || buf.len() > 65_536 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let mut first = head.lines().next().unwrap_or("").split(' ');
                    s.lock().unwrap().push(Seen {
                        method: first.next().unwrap_or("").into(),
                        path: first.next().unwrap_or("").into(),
                        key: header("idempotency-key"),
                    });
                    let role = r.lock().unwrap().clone();
                    let (status, body) = match role {
                        Role::Standby(leader) => (
                            "503 Service Unavailable",
                            serde_json::json!({
                                "type": "https://flashsale.dev/problems/not-leader",
                                "title": "Not the leader", "status": 503,
                                "detail": "this node is a standby", "leader_url": leader,
                            })
                            .to_string(),
                        ),
                        Role::Leader(body) => ("200 OK", body),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Node {
            url,
            seen,
            role,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn reservation_json() -> String {
    serde_json::json!({
        "id": "res_0000000000000001", "status": "held", "buyer": "bob",
        "lines": [{"sku": "tee", "qty": 1, "unit_price_cents": 100}], "total_cents": 100,
        "created_at": "2026-11-21T10:00:00.000Z", "expires_at": "2026-11-21T10:10:00.000Z",
        "order_id": null, "release_reason": null, "extensions": 0
    })
    .to_string()
}

fn client(urls: &[&str]) -> ApiClient {
    ApiClient::with_servers(urls, "t", Duration::from_secs(5)).unwrap()
}

/// An unkeyed write (`extend` without `Idempotency-Key`, sent raw: the typed call is keyed).
async fn unkeyed_extend(c: &ApiClient) -> Result<flashsale_client::Answer, ApiError> {
    let body = serde_json::json!({ "ttl_s": 60 });
    c.send(
        hyper::Method::POST,
        &format!("/v1/reservations/{}/extend", res_id()),
        Some(&body),
    )
    .await
}

fn res_id() -> ReservationId {
    ReservationId::parse("res_0000000000000001").unwrap()
}

#[tokio::test]
async fn reads_and_keyed_writes_follow_the_named_leader() {
    let leader = Node::start(Role::Leader(reservation_json())).await;
    let standby = Node::start(Role::Standby(Some(leader.url.clone()))).await;
    let c = client(&[&standby.url, &leader.url]);

    let r = c.reservation(res_id()).await.unwrap();
    assert_eq!(r.id, res_id());
    assert_eq!(
        c.server(),
        leader.url,
        "the leader is preferred from now on"
    );
    assert_eq!(standby.seen().len(), 1);

    // The next call goes straight to the leader.
    let mut new = NewReservation::new(
        BuyerId::new("bob").unwrap(),
        vec![(SkuId::new("tee").unwrap(), 1)],
    );
    new.idempotency_key = Some("k-1".into());
    c.reserve(&new).await.unwrap();
    assert_eq!(standby.seen().len(), 1);
    let at_leader = leader.seen();
    assert_eq!(at_leader.len(), 2);
    assert_eq!(at_leader[1].method, "POST");
    assert_eq!(at_leader[1].key.as_deref(), Some("k-1"));

    // Leadership moves back: a keyed write sent to the old leader follows with the same key.
    *leader.role.lock().unwrap() = Role::Standby(Some(standby.url.clone()));
    *standby.role.lock().unwrap() = Role::Leader(reservation_json());
    c.reserve(&new).await.unwrap();
    let last = standby.seen().pop().unwrap();
    assert_eq!(
        (last.path.as_str(), last.key.as_deref()),
        ("/v1/reservations", Some("k-1"))
    );
    assert_eq!(c.server(), standby.url);
}

#[tokio::test]
async fn a_reserve_without_a_given_key_gets_one_and_keeps_it_across_nodes() {
    let leader = Node::start(Role::Leader(reservation_json())).await;
    let standby = Node::start(Role::Standby(Some(leader.url.clone()))).await;
    let c = client(&[&standby.url]);
    let new = NewReservation::new(
        BuyerId::new("bob").unwrap(),
        vec![(SkuId::new("tee").unwrap(), 1)],
    );
    c.reserve(&new).await.unwrap();
    let key = standby.seen()[0].key.clone().expect("a key was generated");
    assert_eq!(leader.seen()[0].key.as_deref(), Some(key.as_str()));
    assert_eq!(
        c.known_servers(),
        vec![standby.url.clone(), leader.url.clone()],
        "a leader outside the list is learnt"
    );
}

#[tokio::test]
async fn unkeyed_writes_are_not_sent_again() {
    let leader = Node::start(Role::Leader(reservation_json())).await;
    let standby = Node::start(Role::Standby(Some(leader.url.clone()))).await;
    let c = client(&[&standby.url, &leader.url]);
    let e = unkeyed_extend(&c).await.unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::NotLeader), "{e}");
    let p = e.problem().unwrap();
    assert_eq!(p.status, 503);
    assert_eq!(p.leader_url.as_deref(), Some(leader.url.as_str()));
    assert!(leader.seen().is_empty(), "{:?}", leader.seen());
    // ...but the next call starts at the leader.
    assert_eq!(c.server(), leader.url);
    c.cancel(res_id()).await.unwrap();
    assert_eq!(leader.seen().len(), 1);
    assert_eq!(standby.seen().len(), 1);
    // The typed extend is keyed: from the standby, it is sent again to the leader.
    let c = client(&[&standby.url, &leader.url]);
    c.extend(res_id(), 60).await.unwrap();
    assert_eq!(standby.seen().len(), 2);
    assert_eq!(leader.seen().len(), 2);
    assert!(leader.seen()[1].key.is_some());
    assert_eq!(leader.seen()[1].key, standby.seen()[1].key);
}

#[tokio::test]
async fn no_named_leader_and_dead_nodes_move_to_the_next_target() {
    let leader = Node::start(Role::Leader(reservation_json())).await;
    let electing = Node::start(Role::Standby(None)).await;
    // A port nothing listens on: bind, note, close.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = client(&[&dead, &electing.url, &leader.url]);
    // Unkeyed writes may skip a refused connection too: nothing was sent.
    unkeyed_extend(&c).await.unwrap_err();
    assert_eq!(electing.seen().len(), 1);
    c.reservation(res_id()).await.unwrap();
    assert_eq!(c.server(), leader.url);
}

#[tokio::test]
async fn redirects_are_bounded() {
    let a = Node::start(Role::Standby(None)).await;
    let b = Node::start(Role::Standby(Some(a.url.clone()))).await;
    *a.role.lock().unwrap() = Role::Standby(Some(b.url.clone()));
    let c = client(&[&a.url, &b.url]);
    let e = tokio::time::timeout(Duration::from_secs(20), c.reservation(res_id()))
        .await
        .expect("bounded in time")
        .unwrap_err();
    assert!(matches!(e, ApiError::Problem(_)), "{e}");
    assert_eq!(e.kind(), Some(&ProblemKind::NotLeader));
    let tries = a.seen().len() + b.seen().len();
    assert_eq!(tries as u32, MAX_REDIRECTS + 1);
}

//! The per-address connection cap: how many connections one client address may hold open at
//! once, so that one client cannot take every slot of the server's connection cap.
//!
//! IPv4 peers (and IPv4-mapped IPv6 ones) count per address; IPv6 peers count per /64, the
//! block one subscriber usually holds. Loopback peers (a local proxy, health checks, load
//! tests on the same machine) are not counted unless asked. Memory is bounded: one entry per
//! counted address with a connection open, so at most the server's connection cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per client address, against a cap.
#[derive(Debug)]
pub struct PerIpLimit {
    /// Most connections per address; 0 = no cap.
    max: usize,
    /// Whether loopback peers are counted too.
    limit_loopback: bool,
    /// Open connections per address (entries at 0 are removed).
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct IpSlot {
    /// The limit it counts against, and the address key; `None` if not counted.
    counted: Option<(Arc<PerIpLimit>, IpAddr)>,
}

impl PerIpLimit {
    /// A cap of `max` connections per address (0 = none), counting loopback peers if
    /// `limit_loopback`.
    pub fn new(max: usize, limit_loopback: bool) -> Arc<Self> {
        Arc::new(PerIpLimit {
            max,
            limit_loopback,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The most connections one address may hold (0 = no cap).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Counts a new connection from `peer`, or `None` if its address is at the cap.
    pub fn try_acquire(self: &Arc<Self>, peer: IpAddr) -> Option<IpSlot> {
        let peer = peer.to_canonical();
        if self.max == 0 || (peer.is_loopback() && !self.limit_loopback) {
            return Some(IpSlot { counted: None });
        }
        let key = address_key(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counted: Some((self.clone(), key)),
        })
    }

    /// Connections counted for `peer`'s address now.
    pub fn open_for(&self, peer: IpAddr) -> usize {
        let key = address_key(peer.to_canonical());
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&key).copied().unwrap_or(0)
    }
}

/// The key an address counts under: itself for IPv4, its /64 for IPv6.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some((limit, key)) = self.counted.take() else {
            return;
        };
        let mut open = limit.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&key) {
            debug_assert!(*n > 0, "a connection slot was freed twice");
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_max_slots_and_frees_them_on_drop() {
        let limit = PerIpLimit::new(2, false);
        let a1 = limit.try_acquire(ip("10.0.0.1")).unwrap();
        let _a2 = limit.try_acquire(ip("10.0.0.1")).unwrap();
        assert!(limit.try_acquire(ip("10.0.0.1")).is_none());
        assert!(
            limit.try_acquire(ip("::ffff:10.0.0.1")).is_none(),
            "mapped IPv4"
        );
        let _b = limit.try_acquire(ip("10.0.0.2")).unwrap();
        drop(a1);
        assert_eq!(limit.open_for(ip("10.0.0.1")), 1);
        let _a3 = limit.try_acquire(ip("10.0.0.1")).unwrap();
        drop(_b);
        assert_eq!(
            limit.open.lock().unwrap().len(),
            1,
            "empty entries are removed"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_loopback_only_when_asked() {
        let limit = PerIpLimit::new(1, false);
        let _x = limit.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(limit.try_acquire(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(limit.try_acquire(ip("2001:db8:1:3::1")).is_some());
        let held: Vec<_> = (0..5).map(|_| limit.try_acquire(ip("127.0.0.1"))).collect();
        assert!(held.iter().all(Option::is_some));
        assert_eq!(limit.open_for(ip("127.0.0.1")), 0);
        let strict = PerIpLimit::new(1, true);
        let _l = strict.try_acquire(ip("127.0.0.1")).unwrap();
        assert!(strict.try_acquire(ip("127.0.0.1")).is_none());
        assert!(strict.try_acquire(ip("127.0.0.2")).is_some());
        let off = PerIpLimit::new(0, true);
        let all: Vec<_> = (0..5).map(|_| off.try_acquire(ip("10.0.0.1"))).collect();
        assert!(all.iter().all(Option::is_some));
    }
}

//! Loopback source addresses for client sockets: 127.0.0.1, 127.0.0.2, … so that more than one
//! ephemeral-port range (about 28k ports per source address) is available.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The source address list for a run: `count` addresses for an IPv4 loopback target (none means
/// "let the kernel choose").
pub fn source_addrs(target: SocketAddr, count: usize) -> Vec<IpAddr> {
    if count <= 1 || !target.is_ipv4() {
        return Vec::new();
    }
    (0..count.min(250))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
        .collect()
}

/// The source address for buyer `index` (round robin), if any.
pub fn for_index(addrs: &[IpAddr], index: usize) -> Option<IpAddr> {
    if addrs.is_empty() {
        None
    } else {
        Some(addrs[index % addrs.len()])
    }
}

/// Size of the kernel's ephemeral port range, if it can be read.
pub fn ephemeral_ports() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|p| p.parse::<u32>());
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    Some(hi.saturating_sub(lo) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_spread_round_robin() {
        let t: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(source_addrs(t, 1).is_empty());
        let a = source_addrs(t, 3);
        assert_eq!(a.len(), 3);
        assert_eq!(a[2], "127.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(for_index(&a, 4), Some(a[1]));
        assert_eq!(for_index(&[], 4), None);
        assert!(source_addrs("[::1]:1".parse().unwrap(), 4).is_empty());
    }
}

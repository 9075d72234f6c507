//! The loop's UDP socket: batched receives (`recvmmsg`, GRO) through `quinn-udp`; sends
//! gathered across connections and written with one `sendmmsg` per batch (each transmit may
//! itself be a GSO batch of one connection's datagrams), with a bounded backlog for the
//! moments the kernel's send buffer is full.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use quinn_proto::EcnCodepoint;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;

/// Most datagrams (or GSO batches) kept while the socket cannot take more; later ones are
/// dropped, which QUIC treats as loss.
const MAX_BACKLOG: usize = 4096;

/// Most transmits one `sendmmsg` carries: a publication to 1 000 subscribers is 16 system
/// calls instead of 1 000 (ADR 0046).
const SEND_BATCH: usize = 64;

/// Most bytes waiting in the send batch (a transmit that would pass it sends the batch first).
const SEND_BATCH_BYTES: usize = 256 << 10;

/// Room for one datagram's control messages: `IP_TOS` or `IPV6_TCLASS` (24 bytes),
/// `UDP_SEGMENT` (24) and `IP_PKTINFO` / `IPV6_PKTINFO` (32 / 40).
const CONTROL_LEN: usize = 128;

/// One received datagram, as `quinn_proto::Endpoint::handle` takes it.
#[derive(Debug)]
pub(super) struct Datagram {
    /// Who sent it.
    pub(super) remote: SocketAddr,
    /// The local address it was sent to, when the platform tells.
    pub(super) local_ip: Option<IpAddr>,
    /// Its ECN bits.
    pub(super) ecn: Option<EcnCodepoint>,
    /// Its bytes.
    pub(super) data: BytesMut,
}

/// Where and how one transmit goes, apart from its bytes (as `quinn-udp` takes it).
#[derive(Debug, Clone, Copy)]
struct Header {
    destination: SocketAddr,
    ecn: Option<quinn_udp::EcnCodepoint>,
    segment_size: Option<usize>,
    src_ip: Option<IpAddr>,
}

impl Header {
    /// The header of quinn-proto's `transmit`.
    fn of(transmit: &quinn_proto::Transmit) -> Header {
        Header {
            destination: transmit.destination,
            ecn: transmit.ecn.map(udp_ecn),
            segment_size: transmit.segment_size,
            src_ip: transmit.src_ip,
        }
    }

    /// `contents` sent as this header says, for `quinn-udp`'s `sendmsg`.
    fn transmit<'a>(&self, contents: &'a [u8]) -> Transmit<'a> {
        Transmit {
            destination: self.destination,
            ecn: self.ecn,
            contents,
            segment_size: self.segment_size,
            src_ip: self.src_ip,
        }
    }
}

/// A transmit that found the socket full, with its own copy of the bytes.
#[derive(Debug)]
struct Queued {
    header: Header,
    contents: Vec<u8>,
}

/// A transmit waiting in the send batch; its bytes are `out_bytes[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    header: Header,
    start: usize,
    len: usize,
}

/// One datagram's control messages, aligned as `cmsghdr` needs.
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

impl Control {
    /// Appends one control message carrying `value` at `*used`, or returns false (nothing
    /// written) when it does not fit.
    fn push<T: Copy>(
        &mut self,
        used: &mut usize,
        level: libc::c_int,
        kind: libc::c_int,
        value: T,
    ) -> bool {
        let data_len = mem::size_of::<T>();
        let Ok(data_len_c) = libc::c_uint::try_from(data_len) else {
            return false;
        };
        // SAFETY: `CMSG_SPACE` and `CMSG_LEN` are arithmetic on their argument; no memory is
        // touched.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(data_len_c) as usize,
                libc::CMSG_LEN(data_len_c) as usize,
            )
        };
        let Some(room) = self.0.get_mut(*used..*used + space) else {
            return false;
        };
        debug_assert!(len <= space && len >= data_len + mem::size_of::<libc::cmsghdr>());
        room.fill(0);
        // SAFETY: an all-zero `cmsghdr` is a valid value (integers only).
        let mut header: libc::cmsghdr = unsafe { mem::zeroed() };
        header.cmsg_len = len as _;
        header.cmsg_level = level;
        header.cmsg_type = kind;
        let data_at = len - data_len;
        // SAFETY: `room` is `space` ≥ `len` bytes long; the header (`len - data_len` bytes,
        // at least `size_of::<cmsghdr>()`) is written at its start and the value (`data_len`
        // bytes) at `len - data_len`, both inside `room`; unaligned writes need no alignment.
        unsafe {
            std::ptr::write_unaligned(room.as_mut_ptr().cast::<libc::cmsghdr>(), header);
            std::ptr::write_unaligned(room.as_mut_ptr().add(data_at).cast::<T>(), value);
        }
        *used += space;
        true
    }
}

/// A destination address as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// `addr` as a `sockaddr`, with its length.
fn raw_addr(addr: SocketAddr) -> (RawAddr, libc::socklen_t) {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: an all-zero `sockaddr_in` is a valid value (integers only).
            let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            (
                RawAddr { v4: sa },
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            // SAFETY: an all-zero `sockaddr_in6` is a valid value (integers only).
            let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_flowinfo = a.flowinfo();
            sa.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sa.sin6_scope_id = a.scope_id();
            (
                RawAddr { v6: sa },
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// Writes `o`'s control messages (ECN, GSO segment size, source address) as `quinn-udp`
/// does for one `sendmsg`; returns the bytes used.
fn encode_control(ctrl: &mut Control, o: &Outgoing) -> usize {
    let mut used = 0;
    let ecn = o.header.ecn.map_or(0, |e| e as libc::c_int);
    let is_ipv4 = match o.header.destination.ip() {
        IpAddr::V4(_) => true,
        IpAddr::V6(a) => a.to_ipv4_mapped().is_some(),
    };
    let fits = if is_ipv4 {
        ctrl.push(&mut used, libc::IPPROTO_IP, libc::IP_TOS, ecn)
    } else {
        ctrl.push(&mut used, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, ecn)
    };
    debug_assert!(fits, "CONTROL_LEN holds every control message");
    if let Some(segment) = o.header.segment_size.filter(|s| *s < o.len) {
        if let Ok(segment) = u16::try_from(segment) {
            let fits = ctrl.push(&mut used, libc::SOL_UDP, libc::UDP_SEGMENT, segment);
            debug_assert!(fits, "CONTROL_LEN holds every control message");
        }
    }
    match o.header.src_ip {
        Some(IpAddr::V4(v4)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let fits = ctrl.push(&mut used, libc::IPPROTO_IP, libc::IP_PKTINFO, info);
            debug_assert!(fits, "CONTROL_LEN holds every control message");
        }
        Some(IpAddr::V6(v6)) => {
            let info = libc::in6_pktinfo {
                ipi6_ifindex: 0,
                ipi6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
            };
            let fits = ctrl.push(&mut used, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info);
            debug_assert!(fits, "CONTROL_LEN holds every control message");
        }
        None => {}
    }
    used
}

/// What a receive call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// This many buffers (each one or more datagrams) were read, a full batch: there may be more.
    Some(usize),
    /// Fewer buffers than a batch holds were read: nothing more was waiting then, so the loop
    /// need not ask again (saves the `recvmmsg` that would return `EAGAIN`, ADR 0058).
    Short(usize),
    /// Nothing is waiting.
    Empty,
}

/// The socket and its buffers.
#[derive(Debug)]
pub(super) struct UdpIo {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    recv_buf: Box<[u8]>,
    buf_len: usize,
    metas: [RecvMeta; BATCH_SIZE],
    backlog: VecDeque<Queued>,
    /// Transmits gathered for the next `sendmmsg` (at most `SEND_BATCH`; empty while the
    /// backlog is not).
    out: Vec<Outgoing>,
    /// Their bytes (at most `SEND_BATCH_BYTES` but for one oversized transmit).
    out_bytes: Vec<u8>,
    /// False once `sendmmsg` was refused with `EINVAL` (some control message unsupported):
    /// every transmit then goes through `quinn-udp`'s `sendmsg`, which adapts.
    batching: bool,
    /// Transmits dropped because the backlog was full.
    pub(super) dropped: u64,
    /// System calls that sent transmits (`sendmmsg` or `sendmsg`), for tests and profiles.
    pub(super) send_calls: u64,
}

fn udp_ecn(ecn: EcnCodepoint) -> quinn_udp::EcnCodepoint {
    match ecn {
        EcnCodepoint::Ect0 => quinn_udp::EcnCodepoint::Ect0,
        EcnCodepoint::Ect1 => quinn_udp::EcnCodepoint::Ect1,
        EcnCodepoint::Ce => quinn_udp::EcnCodepoint::Ce,
    }
}

fn proto_ecn(ecn: quinn_udp::EcnCodepoint) -> EcnCodepoint {
    match ecn {
        quinn_udp::EcnCodepoint::Ect0 => EcnCodepoint::Ect0,
        quinn_udp::EcnCodepoint::Ect1 => EcnCodepoint::Ect1,
        quinn_udp::EcnCodepoint::Ce => EcnCodepoint::Ce,
    }
}

impl UdpIo {
    /// Wraps a bound socket (must run inside a tokio runtime); `max_udp_payload` sizes the
    /// receive buffers.
    pub(super) fn new(socket: std::net::UdpSocket, max_udp_payload: usize) -> io::Result<UdpIo> {
        let state = UdpSocketState::new((&socket).into())?;
        socket.set_nonblocking(true)?;
        let io = tokio::net::UdpSocket::from_std(socket)?;
        let buf_len = max_udp_payload.clamp(1200, 64 << 10) * state.gro_segments().max(1);
        Ok(UdpIo {
            io,
            state,
            recv_buf: vec![0u8; buf_len * BATCH_SIZE].into_boxed_slice(),
            buf_len,
            metas: [RecvMeta::default(); BATCH_SIZE],
            backlog: VecDeque::new(),
            out: Vec::with_capacity(SEND_BATCH),
            out_bytes: Vec::with_capacity(SEND_BATCH_BYTES),
            batching: true,
            dropped: 0,
            send_calls: 0,
        })
    }

    /// The bound address.
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Whether the kernel may fragment our datagrams (then path MTU discovery stays off).
    pub(super) fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    /// Most datagrams one GSO send may carry (1 without GSO).
    pub(super) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// Waits until a datagram may be waiting.
    pub(super) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Waits until the socket may take datagrams again (callers wait on it only while there is
    /// a backlog).
    pub(super) async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Whether transmits are waiting for room in the socket.
    pub(super) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Reads one batch of datagrams (one `recvmmsg`) and hands each to `each`.
    pub(super) fn recv_batch(&mut self, mut each: impl FnMut(Datagram)) -> io::Result<Received> {
        let UdpIo {
            io,
            state,
            recv_buf,
            buf_len,
            metas,
            ..
        } = self;
        let sock: &tokio::net::UdpSocket = io;
        let mut iovs: Vec<IoSliceMut<'_>> =
            recv_buf.chunks_mut(*buf_len).map(IoSliceMut::new).collect();
        let result = sock.try_io(Interest::READABLE, || {
            state.recv(sock.into(), &mut iovs, &mut metas[..])
        });
        let msgs = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Received::Empty),
            // Undefined in QUIC and injectable by an attacker (as quinn does, ignore it).
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Received::Some(0)),
            Err(e) => return Err(e),
        };
        // One allocation for the whole batch, split into the datagrams (they share it), instead
        // of one per datagram: most are ACKs, read 1–32 at a time (ADR 0046, ninth session).
        let total = metas.iter().take(msgs).map(|m| m.len).sum();
        let mut batch = BytesMut::with_capacity(total);
        for (meta, buf) in metas.iter().zip(iovs.iter()).take(msgs) {
            let Some(bytes) = buf.get(..meta.len) else {
                continue;
            };
            batch.extend_from_slice(bytes);
            let mut data = batch.split();
            let stride = meta.stride.max(1);
            while !data.is_empty() {
                let one = data.split_to(stride.min(data.len()));
                each(Datagram {
                    remote: meta.addr,
                    local_ip: meta.dst_ip,
                    ecn: meta.ecn.map(proto_ecn),
                    data: one,
                });
            }
        }
        if msgs < metas.len() {
            Ok(Received::Short(msgs))
        } else {
            Ok(Received::Some(msgs))
        }
    }

    /// Queues `contents` to be sent as `transmit` says: it joins the send batch, which goes
    /// out when full or at [`flush`](UdpIo::flush); while the socket is full it joins the
    /// backlog instead (dropped when that is full too).
    pub(super) fn send(&mut self, transmit: &quinn_proto::Transmit, contents: &[u8]) {
        let header = Header::of(transmit);
        if !self.backlog.is_empty() {
            debug_assert!(self.out.is_empty(), "the batch is empty while backlogged");
            self.enqueue(Queued {
                header,
                contents: contents.to_vec(),
            });
            return;
        }
        if self.out.len() >= SEND_BATCH
            || (!self.out.is_empty() && self.out_bytes.len() + contents.len() > SEND_BATCH_BYTES)
        {
            self.flush();
            if !self.backlog.is_empty() {
                self.send(transmit, contents);
                return;
            }
        }
        let start = self.out_bytes.len();
        self.out_bytes.extend_from_slice(contents);
        self.out.push(Outgoing {
            header,
            start,
            len: contents.len(),
        });
    }

    /// Sends the batch: `sendmmsg` calls of up to `SEND_BATCH` transmits; when the socket is
    /// full the rest joins the backlog. A transmit the kernel refuses goes once more through
    /// `quinn-udp`'s `sendmsg`, which handles and logs that error as the quinn driver does
    /// (GSO turned off on `EIO`, `EMSGSIZE` of path MTU probes ignored).
    pub(super) fn flush(&mut self) {
        let mut sent = 0;
        while sent < self.out.len() {
            let result = if self.batching {
                self.send_mmsg(sent)
            } else {
                self.send_plain(sent).map(|()| 1)
            };
            match result {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        self.batching = false;
                    }
                    match self.send_plain(sent) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        _ => sent += 1,
                    }
                }
            }
        }
        for i in sent..self.out.len() {
            let o = self.out[i];
            let contents = self.out_bytes[o.start..o.start + o.len].to_vec();
            self.enqueue(Queued {
                header: o.header,
                contents,
            });
        }
        self.out.clear();
        self.out_bytes.clear();
    }

    /// One `sendmmsg` of the batch from `from` on; how many transmits the kernel took (≥ 1).
    fn send_mmsg(&mut self, from: usize) -> io::Result<usize> {
        let batch = &self.out[from..];
        let n = batch.len().min(SEND_BATCH);
        // SAFETY: all-zero `mmsghdr`s and `iovec`s (null pointers, zero lengths) and zeroed
        // address unions are valid values; every entry used below is filled in first.
        let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut addrs: [RawAddr; SEND_BATCH] = unsafe { mem::zeroed() };
        let mut ctrls: [Control; SEND_BATCH] = std::array::from_fn(|_| Control([0; CONTROL_LEN]));
        let mut lens = [(libc::socklen_t::default(), 0usize); SEND_BATCH];
        for (i, o) in batch.iter().take(n).enumerate() {
            let contents = &self.out_bytes[o.start..o.start + o.len];
            iovs[i].iov_base = contents.as_ptr().cast_mut().cast();
            iovs[i].iov_len = contents.len();
            let (addr, addr_len) = raw_addr(o.header.destination);
            addrs[i] = addr;
            lens[i] = (addr_len, encode_control(&mut ctrls[i], o));
        }
        // Pointers are taken once the arrays are filled, and the arrays are not touched again
        // until `sendmmsg` returns.
        let addrs_at = addrs.as_mut_ptr();
        let iovs_at = iovs.as_mut_ptr();
        let ctrls_at = ctrls.as_mut_ptr();
        for (i, (hdr, (addr_len, used))) in hdrs.iter_mut().zip(lens).take(n).enumerate() {
            let hdr = &mut hdr.msg_hdr;
            hdr.msg_name = addrs_at.wrapping_add(i).cast();
            hdr.msg_namelen = addr_len;
            hdr.msg_iov = iovs_at.wrapping_add(i);
            hdr.msg_iovlen = 1;
            if used > 0 {
                hdr.msg_control = ctrls_at.wrapping_add(i).cast();
                hdr.msg_controllen = used as _;
            }
        }
        let sock: &tokio::net::UdpSocket = &self.io;
        let fd = sock.as_raw_fd();
        let Ok(vlen) = libc::c_uint::try_from(n) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let result = sock.try_io(Interest::WRITABLE, || {
            // SAFETY: `hdrs[..n]` point at `addrs`, `iovs` and `ctrls` entries and at bytes of
            // `out_bytes`, all alive and unmoved until this call returns; the kernel only
            // reads them (and writes each `msg_len`); `fd` is the socket, open for `self`'s life.
            let sent = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), vlen, 0) };
            match usize::try_from(sent) {
                Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(sent) => Ok(sent),
                Err(_) => Err(io::Error::last_os_error()),
            }
        });
        self.send_calls += 1;
        result
    }

    /// The batch's transmit `i` through `quinn-udp` (one `sendmsg`); only a full socket is an
    /// error.
    fn send_plain(&mut self, i: usize) -> io::Result<()> {
        let o = self.out[i];
        let udp = o.header.transmit(&self.out_bytes[o.start..o.start + o.len]);
        let sock: &tokio::net::UdpSocket = &self.io;
        let state = &self.state;
        self.send_calls += 1;
        // `send` logs and swallows every error but a full socket.
        sock.try_io(Interest::WRITABLE, || state.send(sock.into(), &udp))
    }

    fn enqueue(&mut self, q: Queued) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.dropped += 1;
            return;
        }
        self.backlog.push_back(q);
    }

    /// Sends what the backlog holds, oldest first, until the socket is full again.
    pub(super) fn flush_backlog(&mut self) {
        let UdpIo {
            io, state, backlog, ..
        } = self;
        let sock: &tokio::net::UdpSocket = io;
        while let Some(q) = backlog.front() {
            let udp = q.header.transmit(&q.contents);
            match sock.try_io(Interest::WRITABLE, || state.send(sock.into(), &udp)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                _ => {
                    backlog.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn transmit(
        destination: SocketAddr,
        size: usize,
        segment_size: Option<usize>,
    ) -> quinn_proto::Transmit {
        quinn_proto::Transmit {
            destination,
            ecn: Some(EcnCodepoint::Ect0),
            size,
            segment_size,
            src_ip: None,
        }
    }

    fn receiver() -> std::net::UdpSocket {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    }

    #[tokio::test]
    async fn sends_many_destinations_in_few_sendmmsg_calls_in_order() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut io = UdpIo::new(sender, 1452).unwrap();
        let receivers: Vec<_> = (0..3).map(|_| receiver()).collect();
        let addrs: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
        // tokio learns the socket is writable from its first readiness event.
        io.writable().await.unwrap();
        // 150 one-datagram transmits, round robin over three destinations.
        for i in 0..150u32 {
            let contents = i.to_be_bytes();
            let to = addrs[i as usize % addrs.len()];
            io.send(&transmit(to, contents.len(), None), &contents);
        }
        // One GSO transmit of three 100-byte datagrams (one datagram each without GSO).
        let segments = io.max_gso_segments().min(3);
        let gso: Vec<u8> = (0..segments * 100).map(|b| (b / 100) as u8).collect();
        io.send(&transmit(addrs[0], gso.len(), Some(100)), &gso);
        io.flush();
        assert_eq!(
            io.send_calls, 3,
            "151 transmits in ceil(151 / 64) sendmmsg calls"
        );
        assert!(!io.has_backlog());
        assert_eq!(io.dropped, 0);

        let mut buf = [0u8; 2048];
        for (r, socket) in receivers.iter().enumerate() {
            for i in (0..150u32).filter(|i| *i as usize % 3 == r) {
                let (n, from) = socket.recv_from(&mut buf).unwrap();
                assert_eq!(from, io.local_addr().unwrap());
                assert_eq!(&buf[..n], &i.to_be_bytes()[..], "in order, intact");
            }
        }
        for segment in 0..segments {
            let n = receivers[0].recv(&mut buf).unwrap();
            assert_eq!(n, 100, "GSO split into segment-sized datagrams");
            assert!(buf[..n].iter().all(|b| usize::from(*b) == segment));
        }
    }

    #[test]
    fn control_messages_are_laid_out_as_the_kernel_reads_them() {
        let o = Outgoing {
            header: Header {
                destination: "127.0.0.1:9".parse().unwrap(),
                ecn: Some(quinn_udp::EcnCodepoint::Ce),
                segment_size: Some(100),
                src_ip: Some("127.0.0.1".parse().unwrap()),
            },
            start: 0,
            len: 300,
        };
        let mut ctrl = Control([0; CONTROL_LEN]);
        let used = encode_control(&mut ctrl, &o);
        // SAFETY: arithmetic only.
        let (tos, seg, info) = unsafe {
            (
                libc::CMSG_SPACE(4) as usize,
                libc::CMSG_SPACE(2) as usize,
                libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) as usize,
            )
        };
        assert_eq!(used, tos + seg + info);
        let header = |at: usize| {
            // SAFETY: `at` is a header written by `encode_control`, inside the buffer.
            unsafe { std::ptr::read_unaligned(ctrl.0.as_ptr().add(at).cast::<libc::cmsghdr>()) }
        };
        let h = header(0);
        assert_eq!(
            (h.cmsg_level, h.cmsg_type),
            (libc::IPPROTO_IP, libc::IP_TOS)
        );
        let data = mem::size_of::<libc::cmsghdr>();
        assert_eq!(ctrl.0[data..data + 4], 3i32.to_ne_bytes());
        let h = header(tos);
        assert_eq!(
            (h.cmsg_level, h.cmsg_type),
            (libc::SOL_UDP, libc::UDP_SEGMENT)
        );
        assert_eq!(ctrl.0[tos + data..tos + data + 2], 100u16.to_ne_bytes());
        let h = header(tos + seg);
        assert_eq!(
            (h.cmsg_level, h.cmsg_type),
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        );
    }
}

//! The loop's UDP socket: batched receives (`recvmmsg`, GRO) and sends (GSO) through
//! `quinn-udp`, with a bounded backlog for the moments the kernel's send buffer is full.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use quinn_proto::EcnCodepoint;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;

/// Most datagrams (or GSO batches) kept while the socket cannot take more; later ones are
/// dropped, which QUIC treats as loss.
const MAX_BACKLOG: usize = 4096;

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

/// A transmit that found the socket full, with its own copy of the bytes.
#[derive(Debug)]
struct Queued {
    destination: SocketAddr,
    ecn: Option<quinn_udp::EcnCodepoint>,
    segment_size: Option<usize>,
    src_ip: Option<IpAddr>,
    contents: Vec<u8>,
}

/// What a receive call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// This many buffers (each one or more datagrams) were read; there may be more.
    Some(usize),
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
    /// Transmits dropped because the backlog was full.
    pub(super) dropped: u64,
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
            dropped: 0,
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
        for (meta, buf) in metas.iter().zip(iovs.iter()).take(msgs) {
            let Some(bytes) = buf.get(..meta.len) else {
                continue;
            };
            let mut data = BytesMut::from(bytes);
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
        Ok(Received::Some(msgs))
    }

    /// Sends `contents` as `transmit` says, or keeps a copy for later if the socket is full
    /// (dropping it when the backlog is full too).
    pub(super) fn send(&mut self, transmit: &quinn_proto::Transmit, contents: &[u8]) {
        let queued = |contents: &[u8]| Queued {
            destination: transmit.destination,
            ecn: transmit.ecn.map(udp_ecn),
            segment_size: transmit.segment_size,
            src_ip: transmit.src_ip,
            contents: contents.to_vec(),
        };
        if !self.backlog.is_empty() {
            self.enqueue(queued(contents));
            return;
        }
        let udp = Transmit {
            destination: transmit.destination,
            ecn: transmit.ecn.map(udp_ecn),
            contents,
            segment_size: transmit.segment_size,
            src_ip: transmit.src_ip,
        };
        let sock: &tokio::net::UdpSocket = &self.io;
        let state = &self.state;
        // `send` logs and swallows every error but a full socket.
        if let Err(e) = sock.try_io(Interest::WRITABLE, || state.send(sock.into(), &udp)) {
            if e.kind() == io::ErrorKind::WouldBlock {
                self.enqueue(queued(contents));
            }
        }
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
            let udp = Transmit {
                destination: q.destination,
                ecn: q.ecn,
                contents: &q.contents,
                segment_size: q.segment_size,
                src_ip: q.src_ip,
            };
            match sock.try_io(Interest::WRITABLE, || state.send(sock.into(), &udp)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                _ => {
                    backlog.pop_front();
                }
            }
        }
    }
}

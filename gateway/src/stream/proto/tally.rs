//! What the loop's connections sent and received, summed over their lifetimes (quinn-proto's
//! per-connection statistics): logged once when the loop ends, so a benchmark can tell which
//! frames the datagrams per delivered update are made of (ADR 0058).

use quinn_proto::ConnectionStats;

/// Sums of the quinn-proto statistics of every connection the loop has driven.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    /// Connections summed.
    pub(super) connections: u64,
    /// UDP datagrams sent.
    pub(super) datagrams_out: u64,
    /// UDP datagrams received.
    pub(super) datagrams_in: u64,
    /// Packets sent (a datagram may carry several during the handshake).
    pub(super) packets_out: u64,
    /// STREAM frames sent.
    pub(super) stream_frames: u64,
    /// ACK frames sent.
    pub(super) acks_out: u64,
    /// ACK frames received.
    pub(super) acks_in: u64,
    /// ACK_FREQUENCY frames sent.
    pub(super) ack_frequency: u64,
    /// IMMEDIATE_ACK frames sent (loss probes to a peer with the ACK-frequency extension).
    pub(super) immediate_ack: u64,
    /// PING frames sent (keep-alives and loss probes).
    pub(super) pings: u64,
    /// Packets declared lost.
    pub(super) lost_packets: u64,
    /// Path MTU probes sent.
    pub(super) mtu_probes: u64,
    /// MAX_DATA and MAX_STREAM_DATA frames sent.
    pub(super) flow_credit: u64,
}

impl Tally {
    /// Adds one connection's statistics.
    pub(super) fn add(&mut self, s: &ConnectionStats) {
        self.connections += 1;
        self.datagrams_out += s.udp_tx.datagrams;
        self.datagrams_in += s.udp_rx.datagrams;
        self.packets_out += s.path.sent_packets;
        self.stream_frames += s.frame_tx.stream;
        self.acks_out += s.frame_tx.acks;
        self.acks_in += s.frame_rx.acks;
        self.ack_frequency += s.frame_tx.ack_frequency;
        self.immediate_ack += s.frame_tx.immediate_ack;
        self.pings += s.frame_tx.ping;
        self.lost_packets += s.path.lost_packets;
        self.mtu_probes += s.path.sent_plpmtud_probes;
        self.flow_credit += s.frame_tx.max_data + s.frame_tx.max_stream_data;
    }

    /// Logs the sums, with `updates` (update frames queued over the same time) for ratios.
    pub(super) fn log(&self, updates: u64) {
        tracing::info!(
            updates,
            connections = self.connections,
            datagrams_out = self.datagrams_out,
            datagrams_in = self.datagrams_in,
            packets_out = self.packets_out,
            stream_frames = self.stream_frames,
            acks_out = self.acks_out,
            acks_in = self.acks_in,
            ack_frequency = self.ack_frequency,
            immediate_ack = self.immediate_ack,
            pings = self.pings,
            lost_packets = self.lost_packets,
            mtu_probes = self.mtu_probes,
            flow_credit = self.flow_credit,
            "stream transport totals"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_connections() {
        let mut s = ConnectionStats::default();
        s.udp_tx.datagrams = 5;
        s.frame_tx.ack_frequency = 2;
        s.frame_tx.ping = 1;
        s.path.lost_packets = 1;
        let mut t = Tally::default();
        t.add(&s);
        t.add(&s);
        assert_eq!(
            (
                t.connections,
                t.datagrams_out,
                t.ack_frequency,
                t.pings,
                t.lost_packets
            ),
            (2, 10, 4, 2, 2)
        );
    }
}

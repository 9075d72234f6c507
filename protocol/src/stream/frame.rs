//! The frames of the stock stream, client → server and server → client.

use crate::ids::SkuId;

/// Longest token accepted in `Hello`, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Most SKUs one `Subscribe` may list.
pub const MAX_SUBSCRIBED_SKUS: usize = 4096;

/// Longest error message in an `Error` frame, in bytes.
const MAX_MESSAGE_LEN: usize = 4096;

/// Where a reconnecting client left off: the stream epoch (from `Welcome`) and the last sequence
/// number it has fully applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ResumePoint {
    /// Identifies one run of the server's sequence numbering; sequence numbers from another epoch
    /// (another process, e.g. the new leader after a takeover) mean nothing here, and the server
    /// answers with a snapshot, whose per-SKU `log_seq` tells the client what is new.
    pub epoch: u64,
    /// The last sequence number the client applied (an `Update` seq, a `Snapshot` seq or a
    /// `Heartbeat` seq, whichever is highest).
    pub seq: u64,
}

/// Which SKUs a client wants.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum Subscription {
    /// Every SKU, including SKUs created later.
    All,
    /// Only these SKUs (1..=[`MAX_SUBSCRIBED_SKUS`]); SKUs not yet created appear when they are.
    Skus(Vec<SkuId>),
}

impl Subscription {
    /// Whether `sku` is part of this subscription.
    pub fn contains(&self, sku: &SkuId) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Skus(list) => list.contains(sku),
        }
    }
}

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum ClientFrame {
    /// First frame: who the client is and where it left off.
    Hello {
        /// The conversation revision the client speaks ([`super::PROTOCOL_VERSION`]).
        version: u16,
        /// A storefront, admin or partner token.
        token: String,
        /// Resume after this point instead of starting with a snapshot, if still retained.
        resume_from: Option<ResumePoint>,
    },
    /// Second frame: what to stream.
    Subscribe {
        /// SKU list or all.
        subscription: Subscription,
    },
}

/// One SKU's counts in a snapshot, with the sequence number of the update that produced them.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct LevelEntry {
    /// The SKU.
    pub sku: SkuId,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// Stream sequence number of the last change of this SKU (this server's numbering).
    pub seq: u64,
    /// Position in the SKU's shard log that these counts stand at: the sequence number of the
    /// last log record that changed the SKU, or a later position of that shard's log (a
    /// server that recovered or took over labels the counts with its position). The same on
    /// every node of a group; a client that follows several nodes keeps, per SKU, only counts
    /// with a higher `log_seq` than those it has (protocol revision 2, ADR 0033).
    pub log_seq: u64,
}

/// One SKU's new counts.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct UpdateFrame {
    /// Global sequence number of this change (strictly increasing on a connection; a filtered
    /// subscription sees a subsequence).
    pub seq: u64,
    /// The SKU.
    pub sku: SkuId,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// When the server published this update (assigned its `seq`), Unix time in microseconds;
    /// lets a client measure delivery delay. Changes conflated into it happened at most one
    /// publication interval earlier.
    pub server_time_us: u64,
    /// Position in the SKU's shard log of the last record reflected (see
    /// [`LevelEntry::log_seq`]); strictly increases per SKU, on every node of a group.
    pub log_seq: u64,
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum ServerFrame {
    /// The handshake succeeded.
    Welcome {
        /// The conversation revision the server will speak.
        version: u16,
        /// The server's sequence epoch (see [`ResumePoint::epoch`]).
        epoch: u64,
        /// The newest sequence number at handshake time.
        head_seq: u64,
        /// How often the server sends a heartbeat when idle, in ms.
        heartbeat_ms: u32,
    },
    /// The server refuses or ends the conversation; a connection close with the same code follows.
    Error {
        /// An [`super::ErrorCode`] value (unknown values must be tolerated).
        code: u32,
        /// Human-readable detail.
        message: String,
    },
    /// A part of the snapshot of the subscribed SKUs, consistent as of `seq`.
    Snapshot {
        /// Every change with a sequence number up to `seq` is reflected.
        seq: u64,
        /// Counts per SKU (part of them when the snapshot is split).
        levels: Vec<LevelEntry>,
        /// Whether this is the last part.
        last: bool,
    },
    /// The resume point is retained: updates after `seq` follow, no snapshot.
    Resumed {
        /// The client's resume point, echoed.
        seq: u64,
    },
    /// A SKU changed.
    Update(UpdateFrame),
    /// Sent when idle: the connection is alive and the client is up to date through `seq`.
    Heartbeat {
        /// Every change of the subscribed SKUs up to `seq` has been sent.
        seq: u64,
        /// Server clock, Unix time in microseconds.
        server_time_us: u64,
    },
}

fn check_sku(sku: &SkuId) -> Result<(), String> {
    // rkyv restores the string without running `SkuId::new`; re-check the alphabet and length.
    SkuId::new(sku.as_str())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl ClientFrame {
    /// Checks the invariants that the archive format cannot express.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ClientFrame::Hello { token, .. } => {
                if token.len() > MAX_TOKEN_LEN {
                    return Err(format!("token longer than {MAX_TOKEN_LEN} bytes"));
                }
                Ok(())
            }
            ClientFrame::Subscribe { subscription } => match subscription {
                Subscription::All => Ok(()),
                Subscription::Skus(list) => {
                    if list.is_empty() {
                        return Err("subscription lists no SKU".into());
                    }
                    if list.len() > MAX_SUBSCRIBED_SKUS {
                        return Err(format!(
                            "subscription lists more than {MAX_SUBSCRIBED_SKUS} SKUs"
                        ));
                    }
                    list.iter().try_for_each(check_sku)
                }
            },
        }
    }
}

impl ServerFrame {
    /// Checks the invariants that the archive format cannot express.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ServerFrame::Error { message, .. } if message.len() > MAX_MESSAGE_LEN => {
                Err(format!("error message longer than {MAX_MESSAGE_LEN} bytes"))
            }
            ServerFrame::Snapshot { seq, levels, .. } => levels.iter().try_for_each(|l| {
                check_sku(&l.sku)?;
                if l.seq > *seq {
                    return Err(format!(
                        "snapshot level seq {} after snapshot seq {seq}",
                        l.seq
                    ));
                }
                Ok(())
            }),
            ServerFrame::Update(u) => check_sku(&u.sku),
            _ => Ok(()),
        }
    }
}

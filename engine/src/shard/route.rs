//! Routing of SKUs to shards and the pure parts of the cross-shard protocol: splitting a request
//! into per-shard parts, reassembling views in request order, and reconciling parts after a
//! crash. Shared by every driver of the shard nodes ([`crate::node`]).

use std::collections::BTreeMap;

use flashsale_protocol::event::Group;
use flashsale_protocol::PaymentRef;
use flashsale_protocol::{
    BuyerId, KeyOwner, Line, OrderId, ReleaseReason, ReservationId, ScopedKey, ShardId, SkuId,
    MAX_LINES,
};

use smallvec::SmallVec;

use super::{total_cents, CommandLines, PartView};
use crate::view::{OrderView, ReservationStatus, ReservationView};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The shard owning `sku` among `shards` (stable across runs and builds: FNV-1a of the id).
pub fn shard_of(sku: &SkuId, shards: usize) -> ShardId {
    let h = fnv(FNV_OFFSET, sku.as_str().as_bytes());
    // Fold the high bits in so small shard counts use the whole hash.
    let h = h ^ (h >> 32);
    (h % shards.max(1) as u64) as ShardId
}

/// The shard that owns an idempotency key among `shards`: the home of every reservation made
/// with that key, whatever its lines (FNV-1a of the key with its own salt, stable across builds).
pub fn shard_of_key(key: &ScopedKey, shards: usize) -> ShardId {
    let mut h = fnv(FNV_OFFSET, b"idempotency-key\xff");
    h = match &key.owner {
        KeyOwner::Credential(c) => fnv(fnv(h, b"c"), &c.to_le_bytes()),
        KeyOwner::Buyer(b) => fnv(fnv(h, b"b"), b.as_str().as_bytes()),
    };
    let h = fnv(fnv(h, b"\xff"), key.key.as_str().as_bytes());
    let h = h ^ (h >> 32);
    (h % shards.max(1) as u64) as ShardId
}

/// A stable hash of a reservation request (buyer and lines in order), stored with the
/// idempotency key to detect a key reused with another body.
pub fn request_hash(buyer: &BuyerId, lines: &[(SkuId, u32)]) -> u64 {
    let mut h = fnv(FNV_OFFSET, buyer.as_str().as_bytes());
    for (sku, qty) in lines {
        h = fnv(h, &[0xff]);
        h = fnv(h, sku.as_str().as_bytes());
        h = fnv(h, &qty.to_le_bytes());
    }
    h
}

/// One shard's share of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPart {
    /// The shard.
    pub shard: ShardId,
    /// Its lines, in request order (one line inline).
    pub lines: CommandLines,
    /// Bit `i` set = request line `i` is in this part.
    pub line_positions: u64,
}

/// A request split by shard. `parts[0]` is the home part: the idempotency key's shard for a
/// keyed request (possibly holding no line), else the shard of the first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The home shard.
    pub home: ShardId,
    /// Bit `i` set = shard `i` holds a part.
    pub shards_mask: u64,
    /// The parts, home first, then in order of first appearance (one, the common case, held
    /// inline: planning a single-shard request allocates nothing).
    pub parts: SmallVec<[PlanPart; 1]>,
}

impl Plan {
    /// Whether the request spans several shards.
    pub fn is_group(&self) -> bool {
        self.parts.len() > 1
    }

    /// The group marker for part `i` (`None` for single-shard requests).
    pub fn group(&self, i: usize) -> Option<Group> {
        if !self.is_group() {
            return None;
        }
        self.parts.get(i).map(|p| Group {
            shards_mask: self.shards_mask,
            line_positions: p.line_positions,
        })
    }
}

/// Splits `lines` (at most [`MAX_LINES`], at most 64 shards) by owning shard. `home` forces the
/// home shard (a keyed request's [`shard_of_key`]); if it owns no line, its part is empty and
/// the request becomes a cross-shard group.
pub fn plan(lines: Vec<(SkuId, u32)>, shards: usize, home: Option<ShardId>) -> Plan {
    debug_assert!(lines.len() <= MAX_LINES && shards <= 64);
    if let Some(one) = single_shard(&lines, shards, home) {
        // The common case: every line (and the key) on one shard. The request's lines become
        // the part as they are, with no copy and no allocation.
        let line_positions = match lines.len() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        };
        return Plan {
            home: one,
            shards_mask: 1u64 << (one % 64),
            parts: smallvec::smallvec![PlanPart {
                shard: one,
                // One line moves inline (its vector is freed here, on the caller's thread, not
                // by the shard); longer ones keep their vector.
                lines: if lines.len() <= 1 {
                    lines.into_iter().collect()
                } else {
                    CommandLines::from_vec(lines)
                },
                line_positions,
            }],
        };
    }
    let mut parts: SmallVec<[PlanPart; 1]> = SmallVec::new();
    let mut mask = 0u64;
    if let Some(h) = home {
        mask |= 1u64 << (h % 64);
        parts.push(PlanPart {
            shard: h,
            lines: CommandLines::new(),
            line_positions: 0,
        });
    }
    for (i, (sku, qty)) in lines.into_iter().enumerate() {
        let shard = shard_of(&sku, shards);
        mask |= 1u64 << (shard % 64);
        let bit = 1u64 << (i % 64);
        match parts.iter_mut().find(|p| p.shard == shard) {
            Some(p) => {
                p.lines.push((sku, qty));
                p.line_positions |= bit;
            }
            None => parts.push(PlanPart {
                shard,
                lines: smallvec::smallvec![(sku, qty)],
                line_positions: bit,
            }),
        }
    }
    Plan {
        home: parts.first().map_or(0, |p| p.shard),
        shards_mask: mask,
        parts,
    }
}

/// The shard that owns every line of `lines` and is also `home` (when given), if there is one.
fn single_shard(lines: &[(SkuId, u32)], shards: usize, home: Option<ShardId>) -> Option<ShardId> {
    let (first, rest) = lines.split_first()?;
    let shard = shard_of(&first.0, shards);
    let same = home.is_none_or(|h| h == shard)
        && rest.iter().all(|(sku, _)| shard_of(sku, shards) == shard);
    same.then_some(shard)
}

fn merge_lines(home: &PartView, parts: &[PartView]) -> Vec<Line> {
    let mut slots: Vec<Option<Line>> = vec![None; 64];
    let mut extra = Vec::new();
    for pv in std::iter::once(home).chain(parts) {
        let Some(group) = pv.group else {
            extra.extend(pv.view.lines.iter().cloned());
            continue;
        };
        let mut bits = group.line_positions;
        for line in &pv.view.lines {
            if bits == 0 {
                extra.push(line.clone());
                continue;
            }
            let pos = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            slots[pos] = Some(line.clone());
        }
    }
    slots.into_iter().flatten().chain(extra).collect()
}

/// The whole reservation from its home part and the other parts; status is the home's.
pub fn assemble_reservation(home: PartView, parts: &[PartView]) -> ReservationView {
    if home.group.is_none() {
        return home.view;
    }
    let lines = merge_lines(&home, parts);
    ReservationView { lines, ..home.view }
}

/// The whole order from the home shard's order view and the other parts.
pub fn assemble_order(home: OrderView, home_group: Option<Group>, parts: &[PartView]) -> OrderView {
    let Some(group) = home_group else {
        return home;
    };
    let home_part = PartView {
        view: ReservationView {
            id: home.reservation,
            status: ReservationStatus::Confirmed,
            buyer: home.buyer.clone(),
            lines: home.lines.clone(),
            created_at_ms: 0,
            expires_at_ms: 0,
            order: Some(home.id),
            release_reason: None,
            extensions: 0,
        },
        group: Some(group),
    };
    let lines = merge_lines(&home_part, parts);
    OrderView {
        total_cents: total_cents(&lines),
        lines,
        ..home
    }
}

/// What a part shard does to follow its home shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowAction {
    /// The home confirmed: the part is sold under the same order.
    Confirm {
        /// The order allocated by the home shard.
        order: OrderId,
        /// The storefront's payment reference.
        payment_ref: PaymentRef,
        /// When the home confirmed, Unix ms.
        at_ms: u64,
    },
    /// The home released (or the group was rolled back).
    Release(ReleaseReason),
    /// The home extended the hold: the part's expiry follows.
    Extend {
        /// The new expiry, Unix ms.
        expires_at_ms: u64,
        /// The home's extension count, this one included.
        extensions: u32,
    },
}

/// A cross-shard reservation part as one shard sees it (input of [`reconcile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The shard holding this part.
    pub shard: ShardId,
    /// The reservation.
    pub id: ReservationId,
    /// Its group.
    pub group: Group,
    /// The part's status.
    pub status: ReservationStatus,
    /// Why it was released, if it was.
    pub release_reason: Option<ReleaseReason>,
    /// Its order, once confirmed.
    pub order: Option<OrderId>,
    /// Payment reference, once confirmed.
    pub payment_ref: PaymentRef,
    /// When confirmed, Unix ms.
    pub confirmed_at_ms: u64,
}

/// After a crash, decides what each held part must do so that every group agrees with its home:
/// parts follow a home that confirmed or released; a group whose home is missing, or whose home
/// is held while a part is missing or not held (an interrupted reservation), is aborted entirely.
pub fn reconcile(states: &[GroupState]) -> Vec<(ShardId, ReservationId, FollowAction)> {
    let mut by_id: BTreeMap<ReservationId, Vec<&GroupState>> = BTreeMap::new();
    for s in states {
        by_id.entry(s.id).or_default().push(s);
    }
    let mut out = Vec::new();
    for (id, parts) in by_id {
        let home = parts.iter().find(|p| p.shard == id.shard());
        let held = parts
            .iter()
            .filter(|p| p.status == ReservationStatus::Held)
            .map(|p| p.shard);
        let action = match home {
            None => Some(FollowAction::Release(ReleaseReason::Aborted)),
            Some(h) => match h.status {
                ReservationStatus::Held => {
                    let complete = (0..64u16)
                        .filter(|s| h.group.shards_mask & (1u64 << s) != 0)
                        .all(|s| {
                            parts
                                .iter()
                                .any(|p| p.shard == s && p.status == ReservationStatus::Held)
                        });
                    (!complete).then_some(FollowAction::Release(ReleaseReason::Aborted))
                }
                ReservationStatus::Confirmed => h.order.map(|order| FollowAction::Confirm {
                    order,
                    payment_ref: h.payment_ref.clone(),
                    at_ms: h.confirmed_at_ms,
                }),
                ReservationStatus::Released | ReservationStatus::Expired => Some(
                    FollowAction::Release(h.release_reason.unwrap_or(ReleaseReason::Aborted)),
                ),
            },
        };
        if let Some(action) = action {
            for shard in held {
                out.push((shard, id, action.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap()
    }

    #[test]
    fn shard_of_is_stable_and_in_range() {
        for n in 1..8 {
            for i in 0..100 {
                let s = sku(&format!("sku-{i}"));
                assert!((shard_of(&s, n) as usize) < n);
                assert_eq!(shard_of(&s, n), shard_of(&s, n));
            }
        }
        assert_eq!(shard_of(&sku("a"), 1), 0);
    }

    #[test]
    fn plan_puts_home_first_and_marks_positions() {
        let lines: Vec<_> = (0..10).map(|i| (sku(&format!("s{i}")), 1)).collect();
        let p = plan(lines.clone(), 3, None);
        assert_eq!(p.home, shard_of(&lines[0].0, 3));
        // A forced home that owns no line gets an empty part first.
        let one = vec![(sku("s0"), 1)];
        let owner = shard_of(&one[0].0, 3);
        let other = (owner + 1) % 3;
        let p = plan(one.clone(), 3, Some(other));
        assert_eq!(p.home, other);
        assert!(p.is_group() && p.parts[0].lines.is_empty());
        assert_eq!(p.shards_mask, (1 << owner) | (1 << other));
        let p1 = plan(one, 3, Some(owner));
        assert!(!p1.is_group());
        let p = plan(lines.clone(), 3, None);
        let all: u64 = p.parts.iter().map(|x| x.line_positions).sum();
        assert_eq!(all, (1 << 10) - 1);
        assert_eq!(request_hash(&BuyerId::new("b").unwrap(), &lines), {
            request_hash(&BuyerId::new("b").unwrap(), &lines)
        });
    }

    #[test]
    fn single_shard_plans_keep_the_request_lines_as_they_are() {
        // Carts of 1..=5 lines that all live on one shard of 4, with and without a home.
        let same: Vec<_> = (0..400)
            .map(|i| sku(&format!("one-{i}")))
            .filter(|s| shard_of(s, 4) == 2)
            .take(5)
            .collect();
        assert_eq!(same.len(), 5, "five SKUs of shard 2 among 400");
        for n in 1..=5 {
            let lines: Vec<_> = same[..n].iter().map(|s| (s.clone(), 3)).collect();
            for home in [None, Some(2)] {
                let p = plan(lines.clone(), 4, home);
                assert_eq!((p.home, p.shards_mask, p.parts.len()), (2, 1 << 2, 1));
                assert_eq!(p.parts[0].shard, 2);
                assert_eq!(p.parts[0].lines.as_slice(), lines.as_slice());
                assert_eq!(p.parts[0].line_positions, (1 << n) - 1);
                assert!(!p.is_group() && p.group(0).is_none());
            }
            // A home elsewhere makes it a group with an empty home part first.
            let p = plan(lines.clone(), 4, Some(0));
            assert_eq!(p.parts.len(), 2);
            assert!(p.parts[0].lines.is_empty() && p.parts[1].lines.as_slice() == lines.as_slice());
        }
    }

    fn state(shard: ShardId, id: ReservationId, status: ReservationStatus) -> GroupState {
        GroupState {
            shard,
            id,
            group: Group {
                shards_mask: 0b111,
                line_positions: 1 << shard,
            },
            status,
            release_reason: (status == ReservationStatus::Released)
                .then_some(ReleaseReason::Cancelled),
            order: (status == ReservationStatus::Confirmed).then(|| OrderId::compose(0, 7)),
            payment_ref: "p".into(),
            confirmed_at_ms: 3,
        }
    }

    #[test]
    fn reconcile_makes_parts_follow_their_home() {
        use ReservationStatus::*;
        let id = ReservationId::compose(0, 1);
        // Complete and held: nothing to do.
        let all_held = [state(0, id, Held), state(1, id, Held), state(2, id, Held)];
        assert!(reconcile(&all_held).is_empty());
        // Home confirmed, a part missed it.
        let out = reconcile(&[
            state(0, id, Confirmed),
            state(1, id, Held),
            state(2, id, Confirmed),
        ]);
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], (1, _, FollowAction::Confirm { payment_ref, .. }) if payment_ref == "p")
        );
        // Home cancelled.
        let out = reconcile(&[state(0, id, Released), state(1, id, Held)]);
        assert_eq!(
            out,
            vec![(1, id, FollowAction::Release(ReleaseReason::Cancelled))]
        );
        // Interrupted reservation: part 2 missing -> abort home and part 1.
        let out = reconcile(&[state(0, id, Held), state(1, id, Held)]);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|(_, _, a)| *a == FollowAction::Release(ReleaseReason::Aborted)));
        // Home missing entirely (its record was lost): parts are aborted.
        let out = reconcile(&[state(1, id, Held)]);
        assert_eq!(
            out,
            vec![(1, id, FollowAction::Release(ReleaseReason::Aborted))]
        );
    }
}

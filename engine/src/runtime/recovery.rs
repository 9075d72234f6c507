//! Bringing one shard back at start: snapshot, then replay of the log after it; or, from a
//! follower's state (a standby taking over), replay of the log after its position only.

use std::sync::Arc;

use flashsale_protocol::{RecordView, ShardId};

use crate::log::{logged_at, LogBackend, LogError, ShardLog};
use crate::shard::{shard_of, Resolved, Shard};

/// Opens the log, recovers the shard and returns it with the log. With `from` (a follower's
/// shard), only the log after its position is replayed, unless the stored snapshot is
/// further (the records after the position may have been compacted under it) or that replay
/// fails: then the shard recovers from the snapshot.
pub(crate) async fn recover(
    id: ShardId,
    shard_count: usize,
    backend: &Arc<dyn LogBackend>,
    from: Option<Shard>,
) -> Result<(Shard, Box<dyn ShardLog>), LogError> {
    let mut log = backend.open(id, shard_count as u16).await?;
    let snapshot = log.load_snapshot().await?;
    // A snapshot past the follower's position means the records after it may be gone.
    let usable =
        |s: &Shard| s.id() == id && snapshot.as_ref().is_none_or(|(seq, _)| *seq <= s.seq());
    if let Some(mut shard) = from.filter(usable) {
        let after = shard.seq();
        match replay_into(&mut shard, log.as_mut(), after).await {
            Ok(()) => {
                check_owner(&shard, id, shard_count)?;
                return Ok((shard, log));
            }
            Err(e) => tracing::warn!(
                shard = id,
                after,
                error = %e,
                "catching up from the followed state failed; recovering from the snapshot"
            ),
        }
    }
    let (after, mut shard) = match snapshot {
        Some((seq, bytes)) => {
            let shard = Shard::restore(&bytes)
                .map_err(|e| LogError::Corrupt(format!("snapshot at seq {seq}: {e}")))?;
            if shard.seq() != seq || shard.id() != id {
                return Err(LogError::Corrupt(format!(
                    "snapshot claims seq {seq} of shard {id} but holds seq {} of shard {}",
                    shard.seq(),
                    shard.id()
                )));
            }
            (seq, shard)
        }
        None => (0, Shard::new(id)),
    };
    replay_into(&mut shard, log.as_mut(), after).await?;
    check_owner(&shard, id, shard_count)?;
    Ok((shard, log))
}

/// Applies every record of `log` after `after` to `shard`: from its validated archive with
/// the shard's own id handles ([`Shard::apply_archived`]; the log may
/// validate on its reader thread, [`ShardLog::replay_archived`]), or decoded by the log on its
/// reader thread when it does that ([`ShardLog::decodes_while_reading`], ADR 0036).
async fn replay_into(
    shard: &mut Shard,
    log: &mut dyn ShardLog,
    after: u64,
) -> Result<(), LogError> {
    // Room for the records to come, if the log can tell how many (a hint, no I/O here).
    if let Some(records) = log.replay_size_hint(after) {
        shard.reserve_for_replay(records);
    }
    if log.decodes_while_reading() {
        let mut apply = |seq: u64, record| -> Result<(), LogError> {
            shard.apply_record(record).map_err(|e| LogError::Replay {
                seq,
                reason: e.to_string(),
            })
        };
        log.replay_records(after, &mut apply).await?;
        return Ok(());
    }
    // The SKU indexes and buyer handle of the record being applied (reused: no allocation
    // per record).
    let mut resolved = Resolved::new();
    let mut apply = |seq: u64, view: RecordView<'_>| -> Result<(), LogError> {
        let record = match view {
            // Built and applied in one step (a `Reserved` without an owned event; ADR 0036,
            // ninth round).
            RecordView::Current(archived) => {
                return shard
                    .apply_archived(seq, archived, &mut resolved)
                    .map_err(|e| LogError::Replay {
                        seq,
                        reason: e.to_string(),
                    });
            }
            RecordView::Older(record) => {
                resolved.clear();
                record
            }
        };
        let record = logged_at(seq, record)?;
        shard
            .apply_record_at(record, &resolved)
            .map_err(|e| LogError::Replay {
                seq,
                reason: e.to_string(),
            })
    };
    log.replay_archived(after, &mut apply).await?;
    Ok(())
}

/// Refuses a shard holding SKUs of another shard (the shard count changed).
fn check_owner(shard: &Shard, id: ShardId, shard_count: usize) -> Result<(), LogError> {
    for (sku, _, _) in shard.gates() {
        let owner = shard_of(&sku, shard_count);
        if owner != id {
            return Err(LogError::Corrupt(format!(
                "SKU {sku} belongs to shard {owner} of {shard_count}, found in shard {id}: \
                 the shard count changed since the data was written"
            )));
        }
    }
    Ok(())
}

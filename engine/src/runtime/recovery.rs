//! Bringing one shard back at start: snapshot, then replay of the log after it.

use std::sync::Arc;

use flashsale_protocol::{decode_record, ShardId};

use crate::log::{LogBackend, LogError, ShardLog};
use crate::shard::{shard_of, Shard};

/// Opens the log, recovers the shard and returns it with the log.
pub(crate) async fn recover(
    id: ShardId,
    shard_count: usize,
    backend: &Arc<dyn LogBackend>,
) -> Result<(Shard, Box<dyn ShardLog>), LogError> {
    let mut log = backend.open(id, shard_count as u16).await?;
    let (after, mut shard) = match log.load_snapshot().await? {
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
    let mut apply = |seq: u64, bytes: &[u8]| -> Result<(), LogError> {
        let record = decode_record(bytes).map_err(|e| LogError::Replay {
            seq,
            reason: e.to_string(),
        })?;
        if record.seq != seq {
            return Err(LogError::Replay {
                seq,
                reason: format!("record says seq {}", record.seq),
            });
        }
        shard.apply_record(record).map_err(|e| LogError::Replay {
            seq,
            reason: e.to_string(),
        })
    };
    log.replay(after, &mut apply).await?;
    for (sku, _, _) in shard.gates() {
        let owner = shard_of(&sku, shard_count);
        if owner != id {
            return Err(LogError::Corrupt(format!(
                "SKU {sku} belongs to shard {owner} of {shard_count}, found in shard {id}: \
                 the shard count changed since the data was written"
            )));
        }
    }
    Ok((shard, log))
}

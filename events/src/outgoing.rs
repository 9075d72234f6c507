//! An outgoing event: what a webhook receives as its body and the broker as its message.

use serde::Serialize;

use crate::kind::EventType;

/// One event derived from one committed log record.
#[derive(Debug, Clone, PartialEq)]
pub struct OutEvent {
    /// Stable id from the log position: `evt_<shard>_<seq>`; the same across retries and
    /// restarts, so receivers deduplicate on it.
    pub id: String,
    /// The type.
    pub kind: EventType,
    /// When the fact happened (the logged time), Unix ms.
    pub at_ms: u64,
    /// Events with the same key are delivered in log order (the reservation id or the SKU).
    pub key: String,
    /// The type-specific body.
    pub data: serde_json::Value,
}

/// The JSON envelope `{id, type, timestamp, data}`.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: &'a serde_json::Value,
}

/// `ms` as RFC 3339 UTC with milliseconds, e.g. `2026-11-28T10:00:00.123Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

impl OutEvent {
    /// The stable id of the event of log record `seq` of `shard`.
    pub fn id_for(shard: u16, seq: u64) -> String {
        format!("evt_{shard}_{seq}")
    }

    /// The JSON body `{id, type, timestamp, data}`.
    pub fn body(&self) -> Vec<u8> {
        let env = Envelope {
            id: &self.id,
            kind: self.kind.as_str(),
            timestamp: rfc3339_ms(self.at_ms),
            data: &self.data,
        };
        // Serializing plain strings and an already-built Value cannot fail.
        serde_json::to_vec(&env).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_documented_envelope() {
        let e = OutEvent {
            id: OutEvent::id_for(3, 42),
            kind: EventType::SkuUpdated,
            at_ms: 1_790_000_000_123,
            key: "sku-1".into(),
            data: serde_json::json!({"sku": "sku-1"}),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap_or_default();
        assert_eq!(v["id"], "evt_3_42");
        assert_eq!(v["type"], "sku.updated");
        assert_eq!(v["timestamp"], "2026-09-21T14:13:20.123Z");
        assert_eq!(v["data"]["sku"], "sku-1");
    }
}

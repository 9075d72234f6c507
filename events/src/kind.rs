//! The event types a subscriber can ask for.

use std::fmt;
use std::str::FromStr;

/// One type of outgoing event (the `type` field and the AMQP routing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// Stock was held for a buyer.
    ReservationHeld,
    /// A held reservation became an order.
    ReservationConfirmed,
    /// A held reservation was cancelled (or rolled back) and its stock returned.
    ReservationReleased,
    /// A held reservation's TTL passed and its stock returned.
    ReservationExpired,
    /// A SKU was created, its settings replaced, or it was restocked.
    SkuUpdated,
    /// A SKU's available stock reached zero.
    SkuSoldOut,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 6] = [
        EventType::ReservationHeld,
        EventType::ReservationConfirmed,
        EventType::ReservationReleased,
        EventType::ReservationExpired,
        EventType::SkuUpdated,
        EventType::SkuSoldOut,
    ];

    /// The wire name, e.g. `reservation.held`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ReservationHeld => "reservation.held",
            EventType::ReservationConfirmed => "reservation.confirmed",
            EventType::ReservationReleased => "reservation.released",
            EventType::ReservationExpired => "reservation.expired",
            EventType::SkuUpdated => "sku.updated",
            EventType::SkuSoldOut => "sku.sold_out",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

/// Which types a destination receives: all (`["*"]`) or a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every type, including types added later.
    All,
    /// Only these (non-empty, sorted, no duplicates).
    Only(Vec<EventType>),
}

impl EventFilter {
    /// Parses a subscription list: `["*"]` or type names (`*` among names still means all).
    /// Empty lists and unknown names are refused.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<EventFilter, UnknownEventType> {
        if names.is_empty() {
            return Err(UnknownEventType(String::new()));
        }
        let mut types = names
            .iter()
            .filter(|n| n.as_ref() != "*")
            .map(|n| n.as_ref().parse::<EventType>())
            .collect::<Result<Vec<_>, _>>()?;
        if names.iter().any(|n| n.as_ref() == "*") {
            return Ok(EventFilter::All);
        }
        types.sort();
        types.dedup();
        Ok(EventFilter::Only(types))
    }

    /// Whether events of type `t` pass.
    pub fn accepts(&self, t: EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(types) => types.contains(&t),
        }
    }

    /// The list as given back to users: `["*"]` or the type names.
    pub fn names(&self) -> Vec<String> {
        match self {
            EventFilter::All => vec!["*".to_string()],
            EventFilter::Only(types) => types.iter().map(|t| t.as_str().to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_filters_parse() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert_eq!(EventFilter::parse(&["*"]), Ok(EventFilter::All));
        let f = EventFilter::parse(&["sku.updated", "reservation.held", "sku.updated"]);
        assert_eq!(
            f,
            Ok(EventFilter::Only(vec![
                EventType::ReservationHeld,
                EventType::SkuUpdated
            ]))
        );
        assert!(EventFilter::parse(&["order.paid"]).is_err());
        assert!(EventFilter::parse::<&str>(&[]).is_err());
        assert_eq!(
            EventFilter::parse(&["*", "sku.updated"]),
            Ok(EventFilter::All)
        );
        assert!(EventFilter::parse(&["*", "nope"]).is_err());
    }
}

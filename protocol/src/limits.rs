//! Every bound of the contract in one place: the gateway validates requests against these, the
//! engine re-checks commands and replayed events against the same constants.

/// Most lines in one reservation.
pub const MAX_LINES: usize = 32;

/// Largest total stock of one SKU (`PUT` and restock alike): 10^12 units, far from overflow in
/// every count and sum the engine keeps.
pub const MAX_STOCK: u64 = 1_000_000_000_000;

/// Largest money value in any request or response, in cents: 2^53 − 1, exact as a JavaScript
/// number. Unit prices and reservation and order totals are refused above it.
pub const MAX_MONEY_CENTS: u64 = (1 << 53) - 1;

/// Longest SKU display name, in characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them; at most 4 bytes each in UTF-8).
pub const MAX_NAME_LEN: usize = 200;

/// Longest payment reference, in bytes.
pub const MAX_PAYMENT_REF_LEN: usize = 256;

/// Longest reservation TTL a SKU may set, in seconds (one day).
pub const MAX_RESERVATION_TTL_S: u64 = 86_400;

/// Reservation TTL of a SKU that sets none, in seconds.
pub const DEFAULT_RESERVATION_TTL_S: u64 = 600;

/// `qty × unit price` summed over `lines`, or `None` if it exceeds [`MAX_MONEY_CENTS`].
pub fn checked_total_cents(lines: impl IntoIterator<Item = (u32, u64)>) -> Option<u64> {
    let mut total = 0u64;
    for (qty, unit_price_cents) in lines {
        total = total.checked_add(u64::from(qty).checked_mul(unit_price_cents)?)?;
    }
    (total <= MAX_MONEY_CENTS).then_some(total)
}

/// Most extensions a SKU may allow per reservation (`max_extensions`).
pub const MAX_EXTENSIONS: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_stay_exact_or_are_refused() {
        assert_eq!(checked_total_cents([(2, 5), (1, 7)]), Some(17));
        assert_eq!(
            checked_total_cents([(1, MAX_MONEY_CENTS)]),
            Some(MAX_MONEY_CENTS)
        );
        assert_eq!(checked_total_cents([(1, MAX_MONEY_CENTS), (1, 1)]), None);
        assert_eq!(checked_total_cents([(3, (1 << 63) - 1)]), None);
        assert_eq!(checked_total_cents([]), Some(0));
    }
}

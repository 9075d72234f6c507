//! Human-readable formatting of latencies and rates for the terminal and the HTML report.

/// Formats microseconds as `850µs`, `1.23ms`, `4.50s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

/// Formats a rate with thousands separators and no decimals (`12,345`).
pub fn fmt_count(n: f64) -> String {
    let n = n.max(0.0).round() as u64;
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        let left = s.len() - i;
        if i > 0 && left / 3 * 3 == left {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(1_234), "1.23ms");
        assert_eq!(fmt_us(4_500_000), "4.50s");
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.6), "1,000");
        assert_eq!(fmt_count(1_234_567.0), "1,234,567");
    }
}

//! Per-SKU stock in `/metrics` with bounded cardinality: the `top` busiest SKUs (most units
//! reserved plus sold, ties by id) get their own `flashsale_sku_stock_units{sku,state}` series;
//! the rest are summed into `flashsale_sku_stock_other_units{state}`; all SKUs together are
//! `flashsale_stock_units{state}`, and `flashsale_skus` counts them. So a catalogue of a
//! million SKUs costs at most `3 × top + 7` series.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flashsale_engine::StockLevel;

use super::metrics::{gauge, header};

/// Default of `--metrics-top-skus`.
pub const DEFAULT_TOP_SKUS: usize = 20;
/// Most SKUs `--metrics-top-skus` may ask for.
pub const MAX_TOP_SKUS: usize = 1_000;

/// How long a rendering of the stock series is reused: `/metrics` takes no credential, so
/// however often it is scraped, the walk over every SKU happens at most once per this period.
pub const STOCK_RENDER_TTL: Duration = Duration::from_secs(1);

/// The latest rendering of the stock series and when it was made.
#[derive(Debug, Default)]
pub struct StockRenderCache {
    latest: Mutex<Option<(Instant, String)>>,
}

impl StockRenderCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rendering made at most [`STOCK_RENDER_TTL`] before `now`, if any.
    pub fn fresh(&self, now: Instant) -> Option<String> {
        let latest = self.latest.lock().ok()?;
        latest
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < STOCK_RENDER_TTL)
            .map(|(_, text)| text.clone())
    }

    /// Keeps `text`, rendered at `at`.
    pub fn store(&self, at: Instant, text: &str) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some((at, text.to_owned()));
        }
    }
}

/// Units of each state, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockSum {
    /// Units that can be reserved.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
}

impl StockSum {
    /// Adds one SKU's level.
    pub fn add(&mut self, l: &StockLevel) {
        self.available = self.available.saturating_add(l.available);
        self.reserved = self.reserved.saturating_add(l.reserved);
        self.sold = self.sold.saturating_add(l.sold);
    }

    /// `available + reserved + sold`.
    pub fn total(&self) -> u64 {
        self.available
            .saturating_add(self.reserved)
            .saturating_add(self.sold)
    }
}

/// The busiest `top` SKUs first (in order), then the rest (in no order); `levels` is
/// reordered in place. Returns the split point.
pub fn busiest_first(levels: &mut [StockLevel], top: usize) -> usize {
    let busy = |l: &StockLevel| l.reserved.saturating_add(l.sold);
    let order = |a: &StockLevel, b: &StockLevel| busy(b).cmp(&busy(a)).then(a.sku.cmp(&b.sku));
    let top = top.min(levels.len());
    if top == 0 {
        return 0;
    }
    if top < levels.len() {
        levels.select_nth_unstable_by(top - 1, order);
    }
    levels[..top].sort_unstable_by(order);
    top
}

/// Renders the stock series for `levels` (reordered in place), with `top` SKUs named.
pub fn render(out: &mut String, levels: &mut [StockLevel], top: usize) {
    let split = busiest_first(levels, top);
    let (named, rest) = levels.split_at(split);
    let mut all = StockSum::default();
    let mut other = StockSum::default();
    named.iter().for_each(|l| all.add(l));
    rest.iter().for_each(|l| {
        all.add(l);
        other.add(l);
    });
    gauge(
        out,
        "flashsale_skus",
        "SKUs known to the engine.",
        levels.len() as u64,
    );
    header(
        out,
        "flashsale_stock_units",
        "gauge",
        "Units of all SKUs together, by state (available, reserved, sold).",
    );
    sum_lines(out, "flashsale_stock_units", &all);
    header(
        out,
        "flashsale_sku_stock_units",
        "gauge",
        "Units of each of the busiest SKUs (most reserved plus sold; --metrics-top-skus of \
         them), by state.",
    );
    for l in named {
        for (state, n) in [
            ("available", l.available),
            ("reserved", l.reserved),
            ("sold", l.sold),
        ] {
            let _ = writeln!(
                out,
                "flashsale_sku_stock_units{{sku=\"{}\",state=\"{state}\"}} {n}",
                l.sku
            );
        }
    }
    header(
        out,
        "flashsale_sku_stock_other_units",
        "gauge",
        "Units of the SKUs beyond the busiest ones, summed, by state.",
    );
    sum_lines(out, "flashsale_sku_stock_other_units", &other);
}

/// One line per state of `sum`.
fn sum_lines(out: &mut String, name: &str, sum: &StockSum) {
    for (state, n) in [
        ("available", sum.available),
        ("reserved", sum.reserved),
        ("sold", sum.sold),
    ] {
        let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_protocol::SkuId;

    fn level(sku: &str, available: u64, reserved: u64, sold: u64) -> StockLevel {
        StockLevel {
            sku: SkuId::new(sku).unwrap(),
            available,
            reserved,
            sold,
            log_seq: 0,
        }
    }

    #[test]
    fn the_busiest_skus_are_named_and_the_rest_summed() {
        let mut levels = vec![
            level("quiet", 100, 0, 0),
            level("hot", 0, 5, 95),
            level("warm", 50, 10, 40),
            level("tie-b", 90, 0, 10),
            level("tie-a", 90, 5, 5),
        ];
        let mut out = String::new();
        render(&mut out, &mut levels, 3);
        let names: Vec<&str> = levels[..3].iter().map(|l| l.sku.as_str()).collect();
        assert_eq!(names, ["hot", "warm", "tie-a"]);
        for line in [
            "flashsale_skus 5",
            "flashsale_sku_stock_units{sku=\"hot\",state=\"sold\"} 95",
            "flashsale_sku_stock_units{sku=\"tie-a\",state=\"reserved\"} 5",
            "flashsale_sku_stock_other_units{state=\"available\"} 190",
            "flashsale_sku_stock_other_units{state=\"sold\"} 10",
            "flashsale_stock_units{state=\"available\"} 330",
            "flashsale_stock_units{state=\"sold\"} 150",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
        assert!(!out.contains("sku=\"quiet\""));
        let series = out
            .lines()
            .filter(|l| l.starts_with("flashsale_sku_stock_units{"))
            .count();
        assert_eq!(series, 9);
    }

    #[test]
    fn a_rendering_is_reused_for_one_second() {
        let cache = StockRenderCache::new();
        let t0 = Instant::now();
        assert_eq!(cache.fresh(t0), None);
        cache.store(t0, "x 1\n");
        assert_eq!(
            cache.fresh(t0 + Duration::from_millis(999)).as_deref(),
            Some("x 1\n")
        );
        assert_eq!(cache.fresh(t0 + STOCK_RENDER_TTL), None);
    }

    #[test]
    fn zero_or_more_than_all_is_fine() {
        let mut levels = vec![level("a", 1, 0, 0), level("b", 0, 0, 1)];
        assert_eq!(busiest_first(&mut levels, 0), 0);
        assert_eq!(busiest_first(&mut levels, 10), 2);
        assert_eq!(levels[0].sku.as_str(), "b");
        let mut none: Vec<StockLevel> = Vec::new();
        let mut out = String::new();
        render(&mut out, &mut none, 5);
        assert!(out.contains("flashsale_skus 0"));
    }
}

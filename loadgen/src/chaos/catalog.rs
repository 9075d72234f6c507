//! What the chaos workload sells and to whom: SKUs of three kinds (scarce ones that sell out and
//! are restocked, limited ones with a per-buyer limit, plentiful ones that always have stock),
//! short TTLs (1–2 s) so that abandoned holds expire during the run, and a rotating crowd of
//! buyers so that per-buyer limits are reached again and again.

use rand::Rng;

use super::history::SkuSetup;

/// Most SKUs a chaos run creates (carts pick distinct SKUs among them).
pub const MAX_SKUS: usize = 512;
/// Most buyers active at one time.
pub const MAX_BUYERS: usize = 10_000;

/// How a SKU behaves in the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkuKind {
    /// Small stock (sells out; restocked now and then), per-buyer limit 2, TTL 1 s.
    Scarce,
    /// Ample stock, per-buyer limit 2–3, TTL 2 s: buyers hit the limit.
    Limited,
    /// Stock that never runs out, no limit, TTL 2 s: carts of these succeed when the server is
    /// healthy (what the recovery-time check relies on).
    Plenty,
}

/// The run's SKUs and buyers.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// SKUs as created, index-aligned with `kinds`.
    pub skus: Vec<SkuSetup>,
    /// Kind of each SKU.
    pub kinds: Vec<SkuKind>,
    /// Prefix of every id of this run (unique per run, so runs never share SKUs or keys).
    pub prefix: String,
    /// Buyers active at one time.
    pub buyers: usize,
    /// Seconds a generation of buyers is active before a fresh one takes over.
    pub buyer_generation_s: u64,
}

impl Catalog {
    /// `sku_count` SKUs (kinds in turn: scarce, limited, plenty) named `<prefix>-s<i>`.
    pub fn new(prefix: &str, sku_count: usize, buyers: usize, buyer_generation_s: u64) -> Self {
        assert!(
            (3..=MAX_SKUS).contains(&sku_count),
            "sku_count out of range"
        );
        assert!((1..=MAX_BUYERS).contains(&buyers), "buyers out of range");
        let mut skus = Vec::with_capacity(sku_count);
        let mut kinds = Vec::with_capacity(sku_count);
        for i in 0..sku_count {
            let kind = match i % 3 {
                0 => SkuKind::Scarce,
                1 => SkuKind::Limited,
                _ => SkuKind::Plenty,
            };
            let (stock, per_buyer_limit, ttl_s) = match kind {
                SkuKind::Scarce => (8 + (i as u64 % 5), Some(2), 1),
                SkuKind::Limited => (5_000, Some(2 + (i as u32 / 3) % 2), 2),
                SkuKind::Plenty => (1_000_000, None, 2),
            };
            skus.push(SkuSetup {
                sku: format!("{prefix}-s{i}"),
                price_cents: 100 + i as u64,
                stock,
                per_buyer_limit,
                ttl_s,
                // Hold bounds extensions reach: a short maximum hold on the scarce SKUs, few
                // extensions on the limited ones (the server's defaults on the plenty ones).
                max_hold_s: (kind == SkuKind::Scarce).then_some(4),
                max_extensions: (kind == SkuKind::Limited).then_some(2),
            });
            kinds.push(kind);
        }
        Catalog {
            skus,
            kinds,
            prefix: prefix.to_string(),
            buyers,
            buyer_generation_s: buyer_generation_s.max(1),
        }
    }

    /// A buyer of the generation active `elapsed_s` into the run.
    pub fn pick_buyer<R: Rng + ?Sized>(&self, rng: &mut R, elapsed_s: u64) -> String {
        let generation = elapsed_s / self.buyer_generation_s;
        let j = rng.gen_range(0..self.buyers);
        format!("{}-g{generation}-b{j}", self.prefix)
    }

    /// Indices of the SKUs of `kind`.
    pub fn of_kind(&self, kind: SkuKind) -> Vec<usize> {
        (0..self.kinds.len())
            .filter(|&i| self.kinds[i] == kind)
            .collect()
    }

    /// `n` distinct SKU indices. With `mixed`, the first is scarce or limited and the others
    /// from anywhere (a cart likely to span shards with one line likely to be refused).
    pub fn pick_cart<R: Rng + ?Sized>(&self, rng: &mut R, n: usize, mixed: bool) -> Vec<usize> {
        let n = n.clamp(1, self.skus.len());
        let mut out: Vec<usize> = Vec::with_capacity(n);
        if mixed {
            let first = loop {
                let i = rng.gen_range(0..self.skus.len());
                if self.kinds[i] != SkuKind::Plenty {
                    break i;
                }
            };
            out.push(first);
        }
        while out.len() < n {
            let i = rng.gen_range(0..self.skus.len());
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    /// `n` distinct plentiful SKU indices (a cart that succeeds on a healthy server).
    pub fn pick_plenty_cart<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<usize> {
        let plenty = self.of_kind(SkuKind::Plenty);
        let n = n.clamp(1, plenty.len());
        let mut out: Vec<usize> = Vec::with_capacity(n);
        while out.len() < n {
            let i = plenty[rng.gen_range(0..plenty.len())];
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn kinds_rotate_and_carts_are_distinct() {
        let c = Catalog::new("t", 12, 10, 20);
        assert_eq!(c.skus.len(), 12);
        assert_eq!(c.of_kind(SkuKind::Scarce).len(), 4);
        assert!(c.skus.iter().all(|s| (1..=2).contains(&s.ttl_s)));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let cart = c.pick_cart(&mut rng, 4, true);
            assert_eq!(cart.len(), 4);
            assert_ne!(c.kinds[cart[0]], SkuKind::Plenty);
            let mut d = cart.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 4);
            let p = c.pick_plenty_cart(&mut rng, 2);
            assert!(p.iter().all(|&i| c.kinds[i] == SkuKind::Plenty));
        }
        let b = c.pick_buyer(&mut rng, 45);
        assert!(b.starts_with("t-g2-b"), "{b}");
    }
}

//! The statistics of the queue report: Kendall's τ between join order and admission order
//! (with its z-score under independence) and percentiles of small samples.

use serde::Serialize;

/// Most pairs the O(n²) τ counts (n ≈ 20,000); larger samples are thinned evenly first.
pub const MAX_TAU_PAIRS: u64 = 200_000_000;

/// Kendall's rank correlation of a sample of (x, y) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tau {
    /// Pairs in the sample.
    pub n: usize,
    /// τ-b in [-1, 1] (τ-a when nothing ties): 1 = same order, 0 = unrelated, -1 = reversed.
    pub tau: f64,
    /// z-score of τ under independence (normal approximation, tie-corrected variance):
    /// |z| < 3.29 is consistent with independence at the 0.1 % level, |z| < 4.89 at 10⁻⁶
    /// (two-sided).
    pub z: f64,
    /// Pairs in opposite order (0 for a perfect fifo).
    pub discordant_pairs: u64,
    /// Pairs tied in x or y (excluded from concordant and discordant).
    pub tied_pairs: u64,
}

/// τ of `pairs` (x = join order, y = admission order, say). `None` below 2 pairs.
pub fn kendall_tau(pairs: &[(u64, u64)]) -> Option<Tau> {
    let n_all = pairs.len();
    if n_all < 2 {
        return None;
    }
    // Thin evenly (by x order) if the pair count would exceed the bound.
    let mut sorted: Vec<(u64, u64)> = pairs.to_vec();
    sorted.sort_unstable();
    let max_n = ((2 * MAX_TAU_PAIRS) as f64).sqrt() as usize;
    let sample: Vec<(u64, u64)> = if n_all > max_n {
        (0..max_n).map(|i| sorted[i * n_all / max_n]).collect()
    } else {
        sorted
    };
    let n = sample.len();
    let (mut concordant, mut discordant, mut tied) = (0u64, 0u64, 0u64);
    for i in 0..n {
        let (xi, yi) = sample[i];
        for &(xj, yj) in &sample[i + 1..] {
            let dx = xj.cmp(&xi);
            let dy = yj.cmp(&yi);
            use std::cmp::Ordering::Equal;
            if dx == Equal || dy == Equal {
                tied += 1;
            } else if dx == dy {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let n0 = (n as f64) * (n as f64 - 1.0) / 2.0;
    let ties_x = tie_groups(sample.iter().map(|p| p.0));
    let ties_y = tie_groups(sample.iter().map(|p| p.1));
    let t1: f64 = ties_x.iter().map(|&t| t * (t - 1.0) / 2.0).sum();
    let t2: f64 = ties_y.iter().map(|&t| t * (t - 1.0) / 2.0).sum();
    let s = concordant as f64 - discordant as f64;
    let denom = ((n0 - t1) * (n0 - t2)).sqrt();
    let tau = if denom > 0.0 { s / denom } else { 0.0 };
    let v = |g: &[f64]| {
        g.iter()
            .map(|&t| t * (t - 1.0) * (2.0 * t + 5.0))
            .sum::<f64>()
    };
    let nf = n as f64;
    let var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - v(&ties_x) - v(&ties_y)) / 18.0;
    let z = if var_s > 0.0 { s / var_s.sqrt() } else { 0.0 };
    Some(Tau {
        n,
        tau,
        z,
        discordant_pairs: discordant,
        tied_pairs: tied,
    })
}

/// Sizes (> 1) of the groups of equal values.
fn tie_groups(values: impl Iterator<Item = u64>) -> Vec<f64> {
    let mut v: Vec<u64> = values.collect();
    v.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len() && v[j] == v[i] {
            j += 1;
        }
        if j - i > 1 {
            out.push((j - i) as f64);
        }
        i = j;
    }
    out
}

/// Percentiles of a sample of milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Millis {
    /// Values.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// Nearest-rank percentiles of `values`.
pub fn millis(mut values: Vec<u64>) -> Millis {
    if values.is_empty() {
        return Millis::default();
    }
    values.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    };
    Millis {
        count: values.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: values[values.len() - 1],
    }
}

/// Median of per-second counts.
pub fn median(mut values: Vec<u64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let m = values.len() / 2;
    if values.len() % 2 == 1 {
        values[m] as f64
    } else {
        (values[m - 1] + values[m]) as f64 / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    #[test]
    fn tau_of_known_orders() {
        let same: Vec<(u64, u64)> = (0..100).map(|i| (i, i)).collect();
        let t = kendall_tau(&same).unwrap();
        assert_eq!((t.tau, t.discordant_pairs, t.tied_pairs), (1.0, 0, 0));
        assert!(t.z > 10.0);
        let rev: Vec<(u64, u64)> = (0..100).map(|i| (i, 100 - i)).collect();
        assert_eq!(kendall_tau(&rev).unwrap().tau, -1.0);
        // One swap of neighbours in 100: one discordant pair of 4950.
        let mut one = same.clone();
        one.swap(10, 11);
        let one: Vec<(u64, u64)> = one
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64, p.1))
            .collect();
        let t = kendall_tau(&one).unwrap();
        assert_eq!(t.discordant_pairs, 1);
        assert!((t.tau - (4948.0 / 4950.0)).abs() < 1e-12);
        // A uniform shuffle: τ near 0, |z| small (seeded: a fixed draw).
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ys: Vec<u64> = (0..2_000).collect();
        ys.shuffle(&mut rng);
        let shuffled: Vec<(u64, u64)> =
            ys.iter().enumerate().map(|(i, &y)| (i as u64, y)).collect();
        let t = kendall_tau(&shuffled).unwrap();
        assert!(t.tau.abs() < 0.05 && t.z.abs() < 3.29, "{t:?}");
        // Ties in y lower τ-b below 1 without any discordant pair.
        let tied: Vec<(u64, u64)> = (0..10).map(|i| (i, i / 2)).collect();
        let t = kendall_tau(&tied).unwrap();
        assert_eq!((t.discordant_pairs, t.tied_pairs), (0, 5));
        assert!(t.tau < 1.0 && t.tau > 0.9);
        assert!(kendall_tau(&[(1, 1)]).is_none());
    }

    #[test]
    fn percentiles() {
        let m = millis((1..=100).collect());
        assert_eq!((m.count, m.p50, m.p99, m.max), (100, 50, 99, 100));
        assert_eq!(millis(vec![]), Millis::default());
        assert_eq!(median(vec![3, 1, 2]), 2.0);
        assert_eq!(median(vec![4, 1, 2, 3]), 2.5);
    }
}

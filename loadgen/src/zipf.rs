//! A Zipf sampler over ranks `0..n`: rank `k` is drawn with probability proportional to
//! `1 / (k + 1)^s`. Exact (inverse CDF by binary search), O(n) memory, O(log n) per draw.

use rand::Rng;

/// Why a Zipf distribution could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZipfError {
    /// `n` was zero.
    #[error("a Zipf distribution needs at least one rank")]
    Empty,
    /// The exponent is negative or not finite.
    #[error("Zipf exponent must be finite and >= 0, got {0}")]
    Exponent(f64),
}

/// Inverse-CDF Zipf sampler.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A sampler over `n` ranks with exponent `s` (0 = uniform).
    pub fn new(n: usize, s: f64) -> Result<Zipf, ZipfError> {
        if n == 0 {
            return Err(ZipfError::Empty);
        }
        if !s.is_finite() || s < 0.0 {
            return Err(ZipfError::Exponent(s));
        }
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 0..n {
            acc += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Zipf { cdf })
    }

    /// Number of ranks.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Always false (a sampler has at least one rank); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// Probability of rank `k`.
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf[0],
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// The rank for a uniform `u` in `[0, 1)`.
    pub fn rank_for(&self, u: f64) -> usize {
        let k = self.cdf.partition_point(|&c| c <= u);
        k.min(self.cdf.len() - 1)
    }

    /// Draws a rank.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        self.rank_for(rng.gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn invalid_parameters_are_refused() {
        assert_eq!(Zipf::new(0, 1.0).unwrap_err(), ZipfError::Empty);
        assert!(Zipf::new(3, -1.0).is_err());
        assert!(Zipf::new(3, f64::NAN).is_err());
    }

    #[test]
    fn probabilities_follow_the_power_law() {
        let z = Zipf::new(4, 1.0).unwrap();
        let h = 1.0 + 0.5 + 1.0 / 3.0 + 0.25;
        for k in 0..4 {
            assert!((z.probability(k) - 1.0 / (k as f64 + 1.0) / h).abs() < 1e-12);
        }
        assert_eq!(z.probability(4), 0.0);
        let u = Zipf::new(5, 0.0).unwrap();
        for k in 0..5 {
            assert!((u.probability(k) - 0.2).abs() < 1e-12);
        }
    }

    #[test]
    fn ranks_cover_the_unit_interval() {
        let z = Zipf::new(3, 2.0).unwrap();
        assert_eq!(z.rank_for(0.0), 0);
        assert_eq!(z.rank_for(0.999_999_9), 2);
        assert_eq!(z.rank_for(1.0), 2);
    }

    #[test]
    fn samples_match_frequencies() {
        let z = Zipf::new(100, 1.2).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = vec![0u32; 100];
        let draws = 200_000;
        for _ in 0..draws {
            counts[z.sample(&mut rng)] += 1;
        }
        for k in [0, 1, 9, 99] {
            let expected = z.probability(k) * draws as f64;
            let tolerance = 5.0 * expected.sqrt() + 5.0;
            assert!(
                (counts[k] as f64 - expected).abs() < tolerance,
                "rank {k}: {} vs {expected}",
                counts[k]
            );
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9]);
    }
}

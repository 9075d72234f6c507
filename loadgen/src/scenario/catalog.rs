//! `catalog`: buyers pick SKUs from a Zipf distribution over the catalog (a few hot items, a
//! long tail), holds are kept.

use super::{Picker, Plan};
use crate::zipf::{Zipf, ZipfError};

/// The catalog plan over `skus` SKUs with Zipf exponent `exponent`.
pub fn plan(skus: usize, exponent: f64) -> Result<Plan, ZipfError> {
    Ok(Plan {
        picker: Picker::Zipf(Zipf::new(skus, exponent)?),
        confirm_share: 0.0,
        cancel_share: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn picks_stay_in_the_catalog_and_favour_the_head() {
        let p = plan(50, 1.0).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..10_000).map(|_| p.picker.pick(&mut rng)).collect();
        assert!(picks.iter().all(|&k| k < 50));
        let head = picks.iter().filter(|&&k| k == 0).count();
        let tail = picks.iter().filter(|&&k| k == 49).count();
        assert!(head > 10 * tail, "head {head} tail {tail}");
        assert!(plan(0, 1.0).is_err());
    }
}

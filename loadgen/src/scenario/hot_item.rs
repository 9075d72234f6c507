//! `hot-item`: every buyer reserves one unit of the same SKU, again and again; once it is sold
//! out, the run measures how fast the server refuses.

use super::{Picker, Plan};

/// The hot-item plan: one SKU, holds are kept (never confirmed nor cancelled).
pub fn plan() -> Plan {
    Plan {
        picker: Picker::One,
        confirm_share: 0.0,
        cancel_share: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_picks_the_one_sku_and_keeps_it() {
        let p = plan();
        let mut rng = rand::thread_rng();
        assert!((0..100).all(|_| p.picker.pick(&mut rng) == 0));
        assert!(!p.has_follow_ups());
        assert_eq!(p.follow_up(0.0), super::super::FollowUp::Abandon);
    }
}

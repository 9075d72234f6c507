//! `checkout`: reserve (SKU by Zipf), then confirm, cancel or abandon the hold by the configured
//! shares; abandoned holds exercise expiry (`--reservation-ttl-s`, 5 s by default).

use super::{Picker, Plan};
use crate::cli::Config;
use crate::zipf::{Zipf, ZipfError};

/// The checkout plan for `cfg`.
pub fn plan(cfg: &Config) -> Result<Plan, ZipfError> {
    let picker = if cfg.skus.len() == 1 {
        Picker::One
    } else {
        Picker::Zipf(Zipf::new(cfg.skus.len(), cfg.zipf_exponent)?)
    };
    Ok(Plan {
        picker,
        confirm_share: cfg.confirm_share,
        cancel_share: cfg.cancel_share,
    })
}

#[cfg(test)]
mod tests {
    use super::super::FollowUp;
    use super::*;
    use clap::Parser;

    #[test]
    fn shares_split_the_unit_interval() {
        let argv = [
            "x",
            "--token",
            "t",
            "--admin-token",
            "a",
            "--scenario",
            "checkout",
            "--confirm-share",
            "0.5",
            "--cancel-share",
            "0.3",
        ];
        let cfg = Config::from_args(crate::cli::Args::try_parse_from(argv).unwrap(), 0).unwrap();
        let p = plan(&cfg).unwrap();
        assert!(p.has_follow_ups());
        assert_eq!(p.follow_up(0.0), FollowUp::Confirm);
        assert_eq!(p.follow_up(0.49), FollowUp::Confirm);
        assert_eq!(p.follow_up(0.5), FollowUp::Cancel);
        assert_eq!(p.follow_up(0.79), FollowUp::Cancel);
        assert_eq!(p.follow_up(0.8), FollowUp::Abandon);
        assert_eq!(p.follow_up(0.999), FollowUp::Abandon);
    }
}

//! The fault schedule: a seeded sequence of (quiet gap, fault) pairs, so that a seed replays the
//! same faults at the same offsets (request interleavings still vary from run to run).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// One fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, down for this long, restart.
    Kill {
        /// Time between the kill and the restart.
        down: Duration,
    },
    /// SIGSTOP for this long, then SIGCONT (or, with `then_kill`, SIGKILL and restart: a hung
    /// process killed by its supervisor).
    Pause {
        /// Length of the pause.
        pause: Duration,
        /// Kill instead of resuming.
        then_kill: bool,
    },
    /// Postgres stopped (immediate) for this long, then started again.
    PgOutage {
        /// Time Postgres stays down.
        down: Duration,
    },
    /// The log's filesystem full for this long (optionally with a kill and restart meanwhile).
    DiskFull {
        /// Time the disk stays full.
        hold: Duration,
        /// Kill and restart the server while the disk is full.
        kill_during: bool,
    },
}

impl Fault {
    /// Whether the server gets SIGKILL.
    pub fn kills(&self) -> bool {
        matches!(
            self,
            Fault::Kill { .. }
                | Fault::Pause {
                    then_kill: true,
                    ..
                }
                | Fault::DiskFull {
                    kill_during: true,
                    ..
                }
        )
    }
}

/// Which faults may be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSet {
    /// SIGKILL + restart.
    pub kill: bool,
    /// SIGSTOP / SIGCONT.
    pub pause: bool,
    /// Postgres outages.
    pub pg: bool,
    /// Full disk.
    pub disk: bool,
}

impl FaultSet {
    /// The names of the enabled kinds.
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.kill, "kill"),
            (self.pause, "pause"),
            (self.pg, "pg-outage"),
            (self.disk, "disk-full"),
        ] {
            if on {
                v.push(name.to_string());
            }
        }
        v
    }
}

/// Draws faults: first every enabled kind once (in a seeded order, so that even a short run
/// injects each of them), then kinds at random by weight.
#[derive(Debug)]
pub struct FaultPlan {
    rng: StdRng,
    set: FaultSet,
    gap_ms: (u64, u64),
    first_round: Vec<usize>,
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

impl FaultPlan {
    /// A plan from `seed` over `set`, with quiet gaps of `gap_ms` (min, max) between faults.
    pub fn new(seed: u64, set: FaultSet, gap_ms: (u64, u64)) -> FaultPlan {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xFA17_5EED);
        let enabled = [set.kill, set.pause, set.pg, set.disk];
        let mut first_round: Vec<usize> = (0..4).filter(|&i| enabled[i]).collect();
        first_round.shuffle(&mut rng);
        FaultPlan {
            rng,
            set,
            gap_ms: (gap_ms.0, gap_ms.1.max(gap_ms.0)),
            first_round,
        }
    }

    /// The next quiet gap and fault, or `None` when no fault kind is enabled.
    pub fn draw(&mut self) -> Option<(Duration, Fault)> {
        let weights = [
            (self.set.kill, 40u32),
            (self.set.pause, 25),
            (self.set.pg, 35),
            (self.set.disk, 25),
        ];
        let total: u32 = weights.iter().filter(|(on, _)| *on).map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let gap = ms(&mut self.rng, self.gap_ms.0, self.gap_ms.1);
        let kind = match self.first_round.pop() {
            Some(k) => k,
            None => {
                let mut pick = self.rng.gen_range(0..total);
                let mut kind = 0;
                for (i, (on, w)) in weights.iter().enumerate() {
                    if !on {
                        continue;
                    }
                    if pick < *w {
                        kind = i;
                        break;
                    }
                    pick -= w;
                }
                kind
            }
        };
        let r = &mut self.rng;
        let fault = match kind {
            0 => Fault::Kill {
                down: ms(r, 0, 1_500),
            },
            1 => Fault::Pause {
                pause: ms(r, 300, 3_000),
                then_kill: self.set.kill && r.gen_bool(0.2),
            },
            2 => Fault::PgOutage {
                down: ms(r, 1_000, 4_000),
            },
            _ => Fault::DiskFull {
                hold: ms(r, 1_500, 4_000),
                kill_during: self.set.kill && r.gen_bool(0.3),
            },
        };
        Some((gap, fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_faults() {
        let set = FaultSet {
            kill: true,
            pause: true,
            pg: true,
            disk: false,
        };
        let a: Vec<_> = {
            let mut p = FaultPlan::new(9, set, (2_000, 5_000));
            (0..50).filter_map(|_| p.draw()).collect()
        };
        let mut p = FaultPlan::new(9, set, (2_000, 5_000));
        let b: Vec<_> = (0..50).filter_map(|_| p.draw()).collect();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|(g, f)| (2..=5).contains(&g.as_secs()) && !matches!(f, Fault::DiskFull { .. })));
        // The first round injects every enabled kind once.
        let first: Vec<u8> = a[..3]
            .iter()
            .map(|(_, f)| match f {
                Fault::Kill { .. } => 0,
                Fault::Pause { .. } => 1,
                Fault::PgOutage { .. } => 2,
                Fault::DiskFull { .. } => 3,
            })
            .collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2], "{first:?}");
        let none = FaultSet {
            kill: false,
            pause: false,
            pg: false,
            disk: false,
        };
        assert!(FaultPlan::new(1, none, (1, 2)).draw().is_none());
    }
}

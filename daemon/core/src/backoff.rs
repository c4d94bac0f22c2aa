//! The room's one backoff: how long to wait before trying again, growing while attempts keep
//! failing, with jitter drawn from a seed.
//!
//! Deterministic: the same [`BackoffPolicy`] and seed give the same sequence of delays, so the
//! controller stays pure and its tests exact. The seed should differ between rooms (see
//! [`seed_from`]): rooms of a building restarted together (a power cut, a fleet update) must not
//! retry a Visio or calendar server in lockstep. Used by the controller (join attempts), the
//! meeting session (resuming and rejoining a LiveKit room) and the daemon's calendar polls.

use std::time::Duration;

/// How delays grow: `base × factor^n` after `n` failures since the last [`Backoff::reset`],
/// never above `max`, then scaled by a jitter factor drawn in `[1 − j, 1 + j]`
/// (`j = jitter_percent / 100`, at most 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackoffPolicy {
    /// The first delay.
    pub base: Duration,
    /// How much each further delay grows (1: a constant delay).
    pub factor: u32,
    /// The longest delay before jitter.
    pub max: Duration,
    /// Jitter, in percent of the delay, either way (0: none; values above 100 count as 100).
    pub jitter_percent: u8,
}

impl BackoffPolicy {
    /// The delay before jitter after `failures` failures: `base × factor^failures`, capped at
    /// `max`. Never decreases as `failures` grows.
    pub fn nominal(&self, failures: u32) -> Duration {
        let mut delay = self.base.min(self.max);
        for _ in 0..failures {
            if delay >= self.max {
                break;
            }
            let grown = delay.saturating_mul(self.factor.max(1));
            if grown == delay {
                break; // factor 1 or a zero base: constant from here on.
            }
            delay = grown.min(self.max);
        }
        delay
    }

    /// The jitter as a fraction in `[0, 1]`.
    fn jitter(&self) -> f64 {
        f64::from(self.jitter_percent.min(100)) / 100.0
    }
}

/// A running backoff: the policy, how many delays were handed out since the last reset, and the
/// jitter's draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    policy: BackoffPolicy,
    seed: u64,
    /// Delays handed out by [`Backoff::next_delay`] since the last reset.
    failures: u32,
    /// Jitter draws so far (never reset, so a reset does not replay the same jitter).
    draws: u64,
}

impl Backoff {
    /// A backoff following `policy`, its jitter drawn from `seed`.
    pub fn new(policy: BackoffPolicy, seed: u64) -> Backoff {
        Backoff {
            policy,
            seed,
            failures: 0,
            draws: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// The wait before the next attempt, after one more failure: `base` (jittered) the first
    /// time after a reset, then growing by `factor` up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.policy.nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.jittered(nominal)
    }

    /// `base` with jitter, without growing: the steady pace between attempts that succeed
    /// (a calendar poll).
    pub fn pace(&mut self) -> Duration {
        let base = self.policy.nominal(0);
        self.jittered(base)
    }

    /// Back to `base`: the last attempt succeeded.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// How many delays [`Backoff::next_delay`] handed out since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn jittered(&mut self, delay: Duration) -> Duration {
        let jitter = self.policy.jitter();
        let unit = unit_interval(self.seed.wrapping_add(self.draws));
        self.draws = self.draws.wrapping_add(1);
        if jitter == 0.0 {
            return delay;
        }
        delay.mul_f64(1.0 + jitter * (2.0 * unit - 1.0))
    }
}

/// A uniform value in `[0, 1)` from any 64-bit input (splitmix64's finaliser: consecutive
/// inputs give unrelated outputs).
fn unit_interval(input: u64) -> f64 {
    let mut z = input.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A seed from something that differs between rooms (the room's name, a machine id), so that
/// their jitter differs (64-bit FNV-1a: stable across builds and platforms).
pub fn seed_from(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policies() -> impl Strategy<Value = BackoffPolicy> {
        (0u64..100_000, 1u32..5, 0u64..1_000_000, 0u8..=120).prop_map(
            |(base, factor, max, jitter_percent)| BackoffPolicy {
                base: ms(base),
                factor,
                max: ms(max),
                jitter_percent,
            },
        )
    }

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let policy = BackoffPolicy {
            base: ms(300),
            factor: 2,
            max: ms(7_000),
            jitter_percent: 0,
        };
        let mut backoff = Backoff::new(policy, 1);
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [300, 600, 1200, 2400, 4800, 7000, 7000, 7000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(300));
        assert_eq!(backoff.pace(), ms(300));
        assert_eq!(backoff.next_delay(), ms(600), "pace does not grow");
        assert_eq!(policy.nominal(u32::MAX), ms(7_000));
    }

    #[test]
    fn jitter_spreads_over_its_whole_range() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(60),
            factor: 2,
            max: Duration::from_secs(600),
            jitter_percent: 10,
        };
        let delays: Vec<f64> = (0..10_000)
            .map(|seed| Backoff::new(policy, seed).pace().as_secs_f64())
            .collect();
        let min = delays.iter().cloned().fold(f64::MAX, f64::min);
        let max = delays.iter().cloned().fold(f64::MIN, f64::max);
        assert!(
            min >= 54.0 && max <= 66.0 && min < 54.2 && max > 65.8,
            "{min}..{max}"
        );
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 60.0).abs() < 0.2, "mean {mean}");
    }

    #[test]
    fn rooms_with_different_names_do_not_retry_in_lockstep() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(60),
            jitter_percent: 10,
        };
        let mut a = Backoff::new(policy, seed_from("Salle Gutenberg"));
        let mut b = Backoff::new(policy, seed_from("Salle Lovelace"));
        let same = (0..10).filter(|_| a.next_delay() == b.next_delay()).count();
        assert_eq!(same, 0);
    }

    proptest! {
        #[test]
        fn delays_stay_within_the_jitter_of_the_capped_nominal(
            policy in policies(),
            seed: u64,
            steps in proptest::collection::vec(0u8..3, 1..60),
        ) {
            let mut backoff = Backoff::new(policy, seed);
            let j = f64::from(policy.jitter_percent.min(100)) / 100.0;
            for step in steps {
                let (nominal, delay) = match step {
                    0 => (policy.nominal(backoff.failures()), backoff.next_delay()),
                    1 => (policy.nominal(0), backoff.pace()),
                    _ => { backoff.reset(); continue; }
                };
                prop_assert!(nominal <= policy.max);
                let (low, high) = (nominal.mul_f64(1.0 - j), nominal.mul_f64(1.0 + j));
                prop_assert!(delay + ms(1) > low && delay < high + ms(1),
                    "{delay:?} outside {low:?}..{high:?}");
            }
        }

        #[test]
        fn the_nominal_delay_never_decreases_and_reaches_the_cap(policy in policies(), n in 0u32..200) {
            prop_assert!(policy.nominal(n) <= policy.nominal(n + 1));
            prop_assert!(policy.nominal(n) <= policy.max);
            if policy.factor >= 2 && !policy.base.is_zero() {
                prop_assert_eq!(policy.nominal(80), policy.max);
            }
        }

        #[test]
        fn the_same_seed_gives_the_same_sequence(policy in policies(), seed: u64, resets in proptest::collection::vec(any::<bool>(), 1..40)) {
            let mut a = Backoff::new(policy, seed);
            let mut b = Backoff::new(policy, seed);
            for reset in resets {
                if reset {
                    a.reset();
                    b.reset();
                }
                prop_assert_eq!(a.next_delay(), b.next_delay());
            }
        }
    }
}

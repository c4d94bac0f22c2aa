//! When to ask a source again: a fixed interval with jitter, so that a building full of rooms
//! restarted together does not poll the calendar server in lockstep.

use std::time::Duration;

/// Default polling interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Default jitter: ±10 % of the interval.
pub const DEFAULT_JITTER: f64 = 0.1;

/// The delay before the next poll: `interval` scaled by a factor drawn uniformly in
/// `[1 − jitter, 1 + jitter]` from `seed` (deterministic: pass a counter mixed with something
/// that differs between rooms, such as the room name's hash). `jitter_fraction` is clamped to
/// `[0, 1]`.
pub fn next_poll_delay(interval: Duration, jitter_fraction: f64, seed: u64) -> Duration {
    let jitter = if jitter_fraction.is_finite() {
        jitter_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // splitmix64: a well-mixed 64-bit value from any seed, so consecutive seeds spread.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let factor = 1.0 + jitter * (2.0 * unit - 1.0);
    interval.mul_f64(factor)
}

/// Longest wait between attempts while a source keeps failing, in intervals.
const MAX_BACKOFF_INTERVALS: u32 = 10;

/// The delay before retrying a source that failed `consecutive_failures` times in a row
/// (≥ 1): the interval doubled at each failure, up to ten intervals, with the same jitter as
/// [`next_poll_delay`]. A room whose server is down polls it every 10 min, not every minute.
pub fn retry_delay(
    interval: Duration,
    consecutive_failures: u32,
    jitter_fraction: f64,
    seed: u64,
) -> Duration {
    let factor = 1u32
        .checked_shl(consecutive_failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(MAX_BACKOFF_INTERVALS);
    next_poll_delay(interval * factor, jitter_fraction, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_jitter_and_spread_over_it() {
        let interval = DEFAULT_POLL_INTERVAL;
        let delays: Vec<f64> = (0..10_000)
            .map(|seed| next_poll_delay(interval, DEFAULT_JITTER, seed).as_secs_f64())
            .collect();
        assert!(delays.iter().all(|d| (54.0..=66.0).contains(d)));
        let min = delays.iter().cloned().fold(f64::MAX, f64::min);
        let max = delays.iter().cloned().fold(f64::MIN, f64::max);
        assert!(min < 54.2 && max > 65.8, "spread {min}..{max}");
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 60.0).abs() < 0.2, "mean {mean}");
    }

    #[test]
    fn same_seed_same_delay_and_no_jitter_means_the_interval() {
        let i = Duration::from_secs(300);
        assert_eq!(next_poll_delay(i, 0.1, 42), next_poll_delay(i, 0.1, 42));
        assert_eq!(next_poll_delay(i, 0.0, 42), i);
        assert_eq!(next_poll_delay(i, f64::NAN, 42), i);
        assert!(next_poll_delay(i, 5.0, 7) <= Duration::from_secs(600));
    }

    #[test]
    fn failures_back_off_to_ten_intervals() {
        let i = Duration::from_secs(60);
        let secs = |n| retry_delay(i, n, 0.0, 1).as_secs();
        assert_eq!(
            [secs(0), secs(1), secs(2), secs(3), secs(4), secs(5)],
            [60, 60, 120, 240, 480, 600]
        );
        assert_eq!(secs(40), 600);
        assert_eq!(secs(u32::MAX), 600);
        let jittered = retry_delay(i, 3, 0.1, 9).as_secs_f64();
        assert!((216.0..=264.0).contains(&jittered), "{jittered}");
    }
}

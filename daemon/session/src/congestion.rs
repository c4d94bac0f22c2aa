//! The video bitrate controller: follows the congestion the SFU reports about our video and
//! returns the bitrate the encoder should aim at, between a minimum and a maximum.
//!
//! webrtc-rs 0.17 has no bandwidth estimator (no GCC), so this is a small loss- and
//! delay-based controller in the spirit of GCC's loss-based part (RFC draft
//! `draft-ietf-rmcat-gcc-02`, §6), fed by what every SFU sends back:
//! - **transport-wide congestion control feedback** (TWCC, RTCP transport-layer feedback):
//!   which of our packets arrived; the loss rate over each second. This is the loss *on the
//!   wire*: the SFU's receiver reports count a packet repaired by a NACK retransmission as
//!   received, so they hide most of it;
//! - RTCP **receiver reports** about our video: the round-trip time (from LSR/DLSR against our
//!   sender reports), and the fraction lost when no TWCC feedback comes;
//! - **REMB**, when the SFU sends one: a ceiling.
//!
//! Rules, applied once per second of TWCC feedback (or per receiver report without TWCC):
//! - loss above 10 %: decrease to `rate × (1 − loss / 2)`;
//! - else queueing delay (RTT above the smallest RTT seen) above 150 ms: decrease by 15 %;
//! - else loss below 2 % and queueing below 50 ms: increase by 8 % per second since the last
//!   increase (multiplicative, as GCC);
//! - otherwise hold. Then cap at REMB, clamp to `[min, max]`.
//!
//! Sans-IO: time is an input (milliseconds), nothing here touches sockets or the encoder. The
//! session applies the result with `VideoSender::set_target_bitrate`.

/// Loss above which the rate decreases.
const LOSS_DECREASE: f64 = 0.10;
/// Loss below which the rate may increase.
const LOSS_INCREASE: f64 = 0.02;
/// Queueing delay above which the rate decreases.
const QUEUE_DECREASE_MS: u32 = 150;
/// Queueing delay below which the rate may increase.
const QUEUE_INCREASE_MS: u32 = 50;
/// Increase per second when the path is clear.
const INCREASE_PER_SECOND: f64 = 1.08;
/// Changes smaller than this fraction are not applied (the encoder is not reconfigured for
/// nothing).
const MIN_CHANGE: f64 = 0.02;

/// The video bitrate controller of one session.
#[derive(Debug, Clone)]
pub struct BitrateController {
    min: f64,
    max: f64,
    /// The rate computed (kept unrounded).
    rate: f64,
    /// The rate last returned to the caller.
    applied: u32,
    last_increase_ms: Option<u64>,
    min_rtt_ms: Option<u32>,
    rtt_ms: Option<u32>,
    remb: Option<f64>,
    /// TWCC feedback has been seen: losses come from it, not from receiver reports.
    twcc: bool,
    /// Current TWCC window: start, packets reported, packets lost.
    window: Option<(u64, u32, u32)>,
    last_loss: f64,
}

impl BitrateController {
    /// A controller starting at `max` (the configured bitrate), never going below `min`.
    pub fn new(min_bps: u32, max_bps: u32) -> Self {
        let max = f64::from(max_bps.max(1));
        let min = f64::from(min_bps).min(max);
        BitrateController {
            min,
            max,
            rate: max,
            applied: max_bps.max(1),
            last_increase_ms: None,
            min_rtt_ms: None,
            rtt_ms: None,
            remb: None,
            twcc: false,
            window: None,
            last_loss: 0.0,
        }
    }

    /// The current target, bit/s.
    pub fn target_bps(&self) -> u32 {
        self.applied
    }

    /// The loss rate (0–1) the last decision was based on.
    pub fn last_loss(&self) -> f64 {
        self.last_loss
    }

    /// A receiver report about our video at `now_ms`: `fraction_lost` as in RTCP (0–255 for
    /// 0–100 %), the round-trip time when known. Returns the new target when it changed.
    pub fn on_receiver_report(
        &mut self,
        now_ms: u64,
        fraction_lost: u8,
        rtt_ms: Option<u32>,
    ) -> Option<u32> {
        if let Some(rtt) = rtt_ms {
            self.min_rtt_ms = Some(self.min_rtt_ms.map_or(rtt, |m| m.min(rtt)));
            self.rtt_ms = Some(rtt);
        }
        if self.twcc {
            return None;
        }
        self.evaluate(now_ms, f64::from(fraction_lost) / 256.0)
    }

    /// TWCC feedback at `now_ms`: of `reported` packets, `received` arrived. Returns the new
    /// target when it changed (at most once per second).
    pub fn on_transport_feedback(
        &mut self,
        now_ms: u64,
        reported: u32,
        received: u32,
    ) -> Option<u32> {
        self.twcc = true;
        let (start, total, lost) = self.window.get_or_insert((now_ms, 0, 0));
        *total += reported;
        *lost += reported.saturating_sub(received);
        if now_ms.saturating_sub(*start) < 1000 || *total == 0 {
            return None;
        }
        let loss = f64::from(*lost) / f64::from(*total);
        self.window = None;
        self.evaluate(now_ms, loss)
    }

    fn evaluate(&mut self, now_ms: u64, loss: f64) -> Option<u32> {
        self.last_loss = loss;
        let queueing = match (self.rtt_ms, self.min_rtt_ms) {
            (Some(rtt), Some(min)) => rtt.saturating_sub(min),
            _ => 0,
        };
        if loss > LOSS_DECREASE {
            self.rate *= 1.0 - loss / 2.0;
            self.last_increase_ms = Some(now_ms);
        } else if queueing > QUEUE_DECREASE_MS {
            self.rate *= 0.85;
            self.last_increase_ms = Some(now_ms);
        } else if loss < LOSS_INCREASE && queueing < QUEUE_INCREASE_MS {
            let since = self
                .last_increase_ms
                .map_or(1000, |t| now_ms.saturating_sub(t))
                .min(2000);
            self.rate *= INCREASE_PER_SECOND.powf(since as f64 / 1000.0);
            self.last_increase_ms = Some(now_ms);
        }
        self.settle()
    }

    /// A REMB from the SFU: the most it wants us to send, bit/s.
    pub fn on_remb(&mut self, bps: f64) -> Option<u32> {
        self.remb = (bps.is_finite() && bps > 0.0).then_some(bps);
        self.settle()
    }

    fn settle(&mut self) -> Option<u32> {
        if let Some(remb) = self.remb {
            self.rate = self.rate.min(remb);
        }
        self.rate = self.rate.clamp(self.min, self.max);
        let old = f64::from(self.applied);
        let at_bound = (self.rate - self.min).abs() < 1.0 || (self.rate - self.max).abs() < 1.0;
        if (self.rate - old).abs() / old < MIN_CHANGE && !(at_bound && self.rate != old) {
            return None;
        }
        self.applied = self.rate.round() as u32;
        Some(self.applied)
    }
}

/// The round-trip time from a reception report's LSR/DLSR (both in 1/65536 s, the middle 32
/// bits of an NTP time) at `now` (Unix time); `None` without a sender report yet.
pub fn rtt_from_report(now: std::time::SystemTime, lsr: u32, dlsr: u32) -> Option<u32> {
    if lsr == 0 {
        return None;
    }
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    // NTP epoch is 1900; the middle 32 bits: 16 bits of seconds, 16 bits of fraction.
    let secs = since_epoch.as_secs() + 2_208_988_800;
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    let now_mid = (((secs & 0xFFFF) << 16) | (frac >> 16)) as u32;
    let rtt = now_mid.wrapping_sub(lsr).wrapping_sub(dlsr);
    // Above a minute it is a wrapped or bogus value.
    (rtt < 60 << 16).then(|| ((u64::from(rtt) * 1000) >> 16) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(percent: u32) -> u8 {
        (percent * 256 / 100).min(255) as u8
    }

    #[test]
    fn heavy_loss_halves_towards_the_minimum_and_a_clear_path_recovers() {
        let mut c = BitrateController::new(150_000, 1_500_000);
        assert_eq!(c.target_bps(), 1_500_000);
        let mut t = 0;
        for _ in 0..5 {
            t += 1000;
            c.on_receiver_report(t, lost(25), Some(20));
        }
        // 0.875^5 of 1.5 Mbit/s.
        assert!(c.target_bps() < 800_000, "{}", c.target_bps());
        let low = c.target_bps();
        for _ in 0..5 {
            t += 1000;
            c.on_receiver_report(t, 0, Some(20));
        }
        // 1.08^5 ≈ 1.47
        assert!(
            c.target_bps() > low * 14 / 10,
            "{} after {low}",
            c.target_bps()
        );
        for _ in 0..60 {
            t += 1000;
            c.on_receiver_report(t, 0, Some(20));
        }
        assert_eq!(c.target_bps(), 1_500_000, "never above the maximum");
    }

    #[test]
    fn the_rate_never_goes_below_the_minimum() {
        let mut c = BitrateController::new(150_000, 1_500_000);
        for t in 0..100 {
            c.on_receiver_report(t * 1000, 255, None);
        }
        assert_eq!(c.target_bps(), 150_000);
    }

    #[test]
    fn moderate_loss_holds_the_rate() {
        let mut c = BitrateController::new(150_000, 1_000_000);
        c.on_receiver_report(0, lost(50), None);
        let held = c.target_bps();
        assert_eq!(c.on_receiver_report(1000, lost(5), None), None);
        assert_eq!(c.target_bps(), held);
    }

    #[test]
    fn growing_queueing_delay_decreases_before_any_loss() {
        let mut c = BitrateController::new(100_000, 1_000_000);
        c.on_receiver_report(0, 0, Some(30));
        assert_eq!(
            c.on_receiver_report(1000, 0, Some(400)),
            Some(850_000),
            "RTT 370 ms above its minimum is a queue building up"
        );
    }

    #[test]
    fn transport_feedback_losses_count_once_per_second_and_replace_receiver_reports() {
        let mut c = BitrateController::new(100_000, 1_000_000);
        // 30 % lost over a second, in several feedback packets.
        assert_eq!(c.on_transport_feedback(0, 50, 35), None);
        assert_eq!(c.on_transport_feedback(500, 50, 35), None);
        assert_eq!(c.on_transport_feedback(1000, 50, 35), Some(850_000));
        // Receiver reports (which count NACK-repaired packets as received) no longer decide.
        assert_eq!(c.on_receiver_report(1500, 0, Some(10)), None);
        assert_eq!(c.target_bps(), 850_000);
    }

    #[test]
    fn remb_is_a_ceiling() {
        let mut c = BitrateController::new(100_000, 2_000_000);
        assert_eq!(c.on_remb(500_000.0), Some(500_000));
        c.on_receiver_report(1000, 0, None);
        assert_eq!(c.target_bps(), 500_000);
    }

    #[test]
    fn small_changes_do_not_reconfigure_the_encoder() {
        let mut c = BitrateController::new(100_000, 2_000_000);
        c.on_receiver_report(0, lost(50), None);
        // 8 %/s for 100 ms is under 1 %.
        assert_eq!(c.on_receiver_report(100, 0, None), None);
    }

    #[test]
    fn round_trip_time_comes_from_lsr_and_dlsr() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let secs = 1_700_000_000u64 + 2_208_988_800;
        let now_mid = ((secs & 0xFFFF) << 16) as u32;
        // Our SR left 300 ms ago; the SFU held it 100 ms: RTT 200 ms.
        let lsr = now_mid.wrapping_sub(300 * 65536 / 1000);
        let dlsr = 100 * 65536 / 1000;
        let rtt = rtt_from_report(now, lsr, dlsr).unwrap();
        assert!((199..=201).contains(&rtt), "{rtt}");
        assert_eq!(rtt_from_report(now, 0, 0), None);
    }
}

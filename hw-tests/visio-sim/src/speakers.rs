//! Active speakers as a LiveKit server announces them: every update interval, the speakers
//! whose level changed since the last update (levels quantised to eighths, so that small
//! changes are not announced) and those who stopped speaking (`active: false`, level 0) —
//! deltas, not the full list. Sans-IO: the caller supplies the current speakers and sends
//! what comes out.
//!
//! Upstream: livekit/livekit `pkg/rtc/room.go` (`audioUpdateWorker`, `GetActiveSpeakers`,
//! `AudioLevelQuantization = 8`; `onSubscribeStatusChanged` tells a new subscriber whether its
//! publisher is speaking), `pkg/sfu/audio/audiolevel.go` (update interval 400 ms).

use std::collections::HashMap;
use std::time::Duration;

use livekit_protocol as proto;

/// How often speakers are recomputed (LiveKit's audio `update_interval` default).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(400);
/// Levels are rounded up to multiples of 1/`QUANTIZATION` before being compared or sent.
const QUANTIZATION: f32 = 8.0;

/// A level rounded up to LiveKit's steps.
pub fn quantize(level: f32) -> f32 {
    (level * QUANTIZATION).ceil() / QUANTIZATION
}

/// What one room last announced: the active speakers and their (quantised) levels.
#[derive(Debug, Default)]
pub struct SpeakerChanges {
    last: HashMap<String, f32>,
}

impl SpeakerChanges {
    /// The delta to announce, given the current active speakers (levels already quantised);
    /// empty when nothing changed.
    pub fn update(&mut self, now: &[proto::SpeakerInfo]) -> Vec<proto::SpeakerInfo> {
        let mut changed: Vec<proto::SpeakerInfo> = now
            .iter()
            .filter(|s| self.last.get(&s.sid) != Some(&s.level))
            .cloned()
            .collect();
        let mut stopped: Vec<&String> = self
            .last
            .keys()
            .filter(|sid| !now.iter().any(|s| &s.sid == *sid))
            .collect();
        stopped.sort();
        changed.extend(stopped.into_iter().map(|sid| proto::SpeakerInfo {
            sid: sid.clone(),
            level: 0.0,
            active: false,
        }));
        self.last = now.iter().map(|s| (s.sid.clone(), s.level)).collect();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speaker(sid: &str, level: f32) -> proto::SpeakerInfo {
        proto::SpeakerInfo {
            sid: sid.into(),
            level,
            active: true,
        }
    }

    #[test]
    fn only_speakers_whose_level_changed_are_announced() {
        let mut changes = SpeakerChanges::default();
        assert_eq!(
            changes.update(&[speaker("PA_a", 0.5)]),
            vec![speaker("PA_a", 0.5)]
        );
        // Same level: nothing to say.
        assert!(changes.update(&[speaker("PA_a", 0.5)]).is_empty());
        // A second speaker starts: only they are announced.
        assert_eq!(
            changes.update(&[speaker("PA_a", 0.5), speaker("PA_b", 0.25)]),
            vec![speaker("PA_b", 0.25)]
        );
        // The first gets louder: only they are announced.
        assert_eq!(
            changes.update(&[speaker("PA_a", 0.75), speaker("PA_b", 0.25)]),
            vec![speaker("PA_a", 0.75)]
        );
    }

    #[test]
    fn a_speaker_who_stopped_is_announced_inactive_at_level_zero_once() {
        let mut changes = SpeakerChanges::default();
        changes.update(&[speaker("PA_a", 0.5), speaker("PA_b", 0.25)]);
        let stopped = proto::SpeakerInfo {
            sid: "PA_a".into(),
            level: 0.0,
            active: false,
        };
        assert_eq!(changes.update(&[speaker("PA_b", 0.25)]), vec![stopped]);
        assert!(changes.update(&[speaker("PA_b", 0.25)]).is_empty());
    }

    #[test]
    fn levels_are_rounded_up_to_eighths() {
        assert_eq!(quantize(0.01), 0.125);
        assert_eq!(quantize(0.125), 0.125);
        assert_eq!(quantize(0.13), 0.25);
        assert_eq!(quantize(1.0), 1.0);
    }
}

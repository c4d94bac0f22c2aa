//! Simulcast layers and their choice per subscriber (livekit/livekit
//! `pkg/sfu/videolayerselector/simulcast.go`, `pkg/sfu/forwarder.go`): each subscriber has a
//! target spatial layer (from its `UpdateTrackSettings` and the published layers, as
//! `pkg/sfu/buffer/videolayerutils.go` maps qualities to layers); it gets the best layer
//! flowing at or below its target (a lower one if nothing at or below flows, as LiveKit lets
//! simulcast overshoot). A switch waits for a keyframe of the new layer (recognised in VP8, VP9
//! and H.264 payloads), or `KEYFRAME_WAIT` at most, and asks for one with a PLI.

use std::time::{Duration, Instant};

use livekit_protocol as proto;

use super::forward::Forwarder;

pub(super) struct Layer {
    pub(super) rid: String,
    pub(super) ssrc: u32,
    pub(super) last_packet: Option<Instant>,
}

/// A layer that sent nothing for this long is considered paused by the publisher (its
/// bandwidth estimate dropped it), and forwarding moves to the best layer still flowing.
pub(super) const LAYER_STALE: Duration = Duration::from_millis(1500);

/// A pending layer that gave no recognisable keyframe within this time is switched to anyway:
/// the subscribers' decoders then ask for one themselves.
const KEYFRAME_WAIT: Duration = Duration::from_secs(1);

fn quality_rank(rid: &str) -> u8 {
    match rid {
        "f" => 3,
        "h" => 2,
        "q" => 1,
        "" => 4,
        _ => 0,
    }
}

/// The spatial layer a quality stands for, given the qualities published
/// (`VideoQualityToSpatialLayer` in livekit `pkg/sfu/buffer/videolayerutils.go`): the highest
/// published layer whose quality is at most the one asked for, else the lowest.
pub(super) fn spatial_for_quality(
    quality: proto::VideoQuality,
    layers: &[proto::VideoLayer],
) -> u8 {
    if layers.is_empty() {
        return match quality {
            proto::VideoQuality::Low => 0,
            proto::VideoQuality::Medium => 1,
            _ => 2,
        };
    }
    let mut qualities: Vec<i32> = layers.iter().map(|l| l.quality).collect();
    qualities.sort_unstable();
    qualities.dedup();
    qualities
        .iter()
        .rposition(|&q| q <= quality as i32)
        .unwrap_or(0) as u8
}

/// Whether an RTP payload starts a keyframe (VP8, VP9, H.264); other codecs count as always.
pub(super) fn starts_keyframe(mime: &str, payload: &[u8]) -> bool {
    let mime = mime.to_ascii_lowercase();
    if mime == "video/vp8" {
        // RFC 7741 payload descriptor, then the VP8 frame header (P bit = 0 on keyframes).
        let Some(&b0) = payload.first() else {
            return false;
        };
        let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
        let mut i = 1;
        if b0 & 0x80 != 0 {
            let Some(&x) = payload.get(1) else {
                return false;
            };
            i = 2;
            if x & 0x80 != 0 {
                i += if payload.get(i).is_some_and(|b| b & 0x80 != 0) {
                    2
                } else {
                    1
                };
            }
            if x & 0x40 != 0 {
                i += 1;
            }
            if x & 0x30 != 0 {
                i += 1;
            }
        }
        return start && payload.get(i).is_some_and(|b| b & 0x01 == 0);
    }
    if mime == "video/vp9" {
        // RFC 9628: P (inter-picture predicted) = 0 and B (start of frame) = 1.
        return payload
            .first()
            .is_some_and(|b| b & 0x40 == 0 && b & 0x08 != 0);
    }
    if mime == "video/h264" {
        let Some(&b0) = payload.first() else {
            return false;
        };
        return match b0 & 0x1f {
            5 | 7 => true,
            // STAP-A: look at the first aggregated NAL.
            24 => payload.get(3).is_some_and(|b| matches!(b & 0x1f, 5 | 7)),
            // FU-A start of an IDR.
            28 => payload
                .get(1)
                .is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
            _ => false,
        };
    }
    true
}

/// One subscriber's simulcast layer choice.
#[derive(Default)]
pub(super) struct SimulcastSelector {
    /// The SSRC forwarded now.
    pub(super) current: Option<u32>,
    /// Another layer we switch to at its next keyframe.
    pub(super) pending: Option<u32>,
    /// When `pending` was chosen.
    pending_since: Option<Instant>,
}

/// What a selector decided for one packet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Decision {
    /// The packet goes to this subscriber.
    pub(super) forward: bool,
    /// The RTP marker to send (SVC: end of the last forwarded spatial layer).
    pub(super) marker: bool,
    /// A keyframe is wanted on this SSRC (a switch waits for it).
    pub(super) keyframe_on: Option<u32>,
}

impl SimulcastSelector {
    /// Decides for a packet of layer `ssrc`. `flowing` lists the layers that sent recently,
    /// lowest first, as (spatial layer, ssrc); `target` is the subscriber's target layer.
    pub(super) fn select(
        &mut self,
        ssrc: u32,
        keyframe: bool,
        marker: bool,
        flowing: &[(u8, u32)],
        target: u8,
        now: Instant,
    ) -> Decision {
        let best = flowing
            .iter()
            .rev()
            .find(|(s, _)| *s <= target)
            .or(flowing.first())
            .map(|(_, ssrc)| *ssrc);
        if best == self.current && self.pending.is_some() {
            // The forwarded layer is the right one again: forget the switch.
            self.pending = None;
            self.pending_since = None;
        }
        if best != self.current && best != self.pending {
            self.pending = best;
            self.pending_since = Some(now);
        }
        if self.pending == Some(ssrc)
            && (self.current.is_none()
                || keyframe
                || self
                    .pending_since
                    .is_some_and(|t| now.duration_since(t) > KEYFRAME_WAIT))
        {
            self.current = Some(ssrc);
            self.pending = None;
            self.pending_since = None;
        }
        Decision {
            // Until the pending layer gives a keyframe, the old one keeps being forwarded.
            forward: self.current == Some(ssrc),
            marker,
            // While a switch waits, keep asking for the keyframe (requests are paced).
            keyframe_on: self.pending,
        }
    }
}

impl Forwarder {
    pub(super) fn add_layer(&self, rid: &str, ssrc: u32) {
        self.layers.lock().unwrap().push(Layer {
            rid: rid.to_owned(),
            ssrc,
            last_packet: None,
        });
    }

    /// Records a packet of layer `ssrc`; returns the layers flowing now, lowest first, as
    /// (spatial layer, ssrc), and how many layers are known.
    pub(super) fn note_layer_packet(&self, ssrc: u32, now: Instant) -> (Vec<(u8, u32)>, usize) {
        let mut layers = self.layers.lock().unwrap();
        if let Some(l) = layers.iter_mut().find(|l| l.ssrc == ssrc) {
            l.last_packet = Some(now);
        }
        let mut all: Vec<(u8, &Layer)> = layers.iter().map(|l| (quality_rank(&l.rid), l)).collect();
        all.sort_by_key(|(rank, _)| *rank);
        let flowing = all
            .iter()
            .enumerate()
            .filter(|(_, (_, l))| {
                l.last_packet
                    .is_some_and(|t| now.duration_since(t) < LAYER_STALE)
            })
            .map(|(i, (_, l))| (i as u8, l.ssrc))
            .collect();
        (flowing, layers.len())
    }

    /// The rid of layer `ssrc` (empty for a single-layer track).
    pub(super) fn rid_of(&self, ssrc: u32) -> String {
        self.layers
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.ssrc == ssrc)
            .map(|l| l.rid.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(qualities: &[i32]) -> Vec<proto::VideoLayer> {
        qualities
            .iter()
            .map(|&quality| proto::VideoLayer {
                quality,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn qualities_map_to_spatial_layers_as_livekit_maps_them() {
        use proto::VideoQuality::*;
        let three = layers(&[0, 1, 2]);
        assert_eq!(spatial_for_quality(Low, &three), 0);
        assert_eq!(spatial_for_quality(Medium, &three), 1);
        assert_eq!(spatial_for_quality(High, &three), 2);
        // Low and medium published: high is the medium layer (1).
        let low_medium = layers(&[0, 1]);
        assert_eq!(spatial_for_quality(High, &low_medium), 1);
        // Medium and high published: low and medium are layer 0, high layer 1.
        let medium_high = layers(&[1, 2]);
        assert_eq!(spatial_for_quality(Low, &medium_high), 0);
        assert_eq!(spatial_for_quality(Medium, &medium_high), 0);
        assert_eq!(spatial_for_quality(High, &medium_high), 1);
        assert_eq!(spatial_for_quality(Medium, &[]), 1);
    }

    #[test]
    fn each_subscriber_gets_the_best_flowing_layer_up_to_its_target_switching_at_a_keyframe() {
        let now = Instant::now();
        let flowing = [(0, 10), (1, 11), (2, 12)];
        let mut small = SimulcastSelector::default();
        let mut large = SimulcastSelector::default();
        // First packets: each takes its layer at once.
        assert!(small.select(10, false, false, &flowing, 0, now).forward);
        assert!(!small.select(12, false, false, &flowing, 0, now).forward);
        assert!(large.select(12, false, false, &flowing, 2, now).forward);
        assert!(!large.select(10, false, false, &flowing, 2, now).forward);
        // The small one now wants the top layer: the low layer goes on until a keyframe of
        // the top one, which is asked for.
        let d = small.select(12, false, false, &flowing, 2, now);
        assert_eq!((d.forward, d.keyframe_on), (false, Some(12)));
        assert!(small.select(10, false, false, &flowing, 2, now).forward);
        let d = small.select(12, true, false, &flowing, 2, now);
        assert_eq!((d.forward, d.keyframe_on), (true, None));
        assert!(!small.select(10, false, false, &flowing, 2, now).forward);
        // Nothing at or below the target flows: the lowest flowing layer.
        let mut s = SimulcastSelector::default();
        assert!(s.select(12, false, false, &[(2, 12)], 0, now).forward);
    }
}

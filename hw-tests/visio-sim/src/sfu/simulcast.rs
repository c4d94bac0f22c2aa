//! Simulcast layer choice: the best layer (`f` > `h` > `q`) that sent a packet recently is the
//! one forwarded; a switch waits for a keyframe of the new layer (recognised in VP8, VP9 and
//! H.264 payloads), or `KEYFRAME_WAIT` at most.

use std::time::{Duration, Instant};

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::forward::Forwarder;

pub(super) struct Layer {
    pub(super) rid: String,
    pub(super) ssrc: u32,
    pub(super) last_packet: Option<Instant>,
}

/// A layer that sent nothing for this long is considered paused by the publisher (its
/// bandwidth estimate dropped it), and forwarding moves to the best layer still flowing.
const LAYER_STALE: Duration = Duration::from_millis(1500);

/// Layer selection: which simulcast layer (by SSRC) goes to subscribers.
#[derive(Default)]
pub(super) struct Selection {
    /// The SSRC forwarded now.
    pub(super) current: Option<u32>,
    /// A better layer we switch to at its next keyframe.
    pub(super) pending: Option<u32>,
    /// When `pending` was chosen.
    pub(super) pending_since: Option<Instant>,
}

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

/// Whether an RTP payload starts a keyframe (VP8, VP9, H.264); other codecs count as always.
fn starts_keyframe(mime: &str, payload: &[u8]) -> bool {
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

impl Forwarder {
    pub(super) fn add_layer(&self, rid: &str, ssrc: u32) {
        self.layers.lock().unwrap().push(Layer {
            rid: rid.to_owned(),
            ssrc,
            last_packet: None,
        });
    }

    /// Records a packet of layer `ssrc` and decides whether it is forwarded. Returns
    /// `(forward, wanted_keyframe)`.
    pub(super) fn admit(&self, ssrc: u32, payload: &[u8]) -> (bool, bool) {
        let now = Instant::now();
        let best = {
            let mut layers = self.layers.lock().unwrap();
            if let Some(l) = layers.iter_mut().find(|l| l.ssrc == ssrc) {
                l.last_packet = Some(now);
            }
            layers
                .iter()
                .filter(|l| {
                    l.last_packet
                        .is_some_and(|t| now.duration_since(t) < LAYER_STALE)
                })
                .max_by_key(|l| quality_rank(&l.rid))
                .map(|l| l.ssrc)
        };
        let mut sel = self.selection.lock().unwrap();
        if best == sel.current && sel.pending.is_some() {
            // The forwarded layer is flowing again: forget the switch.
            sel.pending = None;
            sel.pending_since = None;
        }
        if best != sel.current && best != sel.pending {
            tracing::debug!(track = %self.track_sid, from = ?sel.current, to = ?best, "simulcast layer change requested");
            sel.pending = best;
            sel.pending_since = Some(now);
        }
        if sel.pending == Some(ssrc)
            && (sel.current.is_none()
                || self.kind == RTPCodecType::Audio
                || starts_keyframe(&self.codec.mime_type, payload)
                || sel
                    .pending_since
                    .is_some_and(|t| now.duration_since(t) > KEYFRAME_WAIT))
        {
            tracing::debug!(track = %self.track_sid, ssrc, "simulcast layer switched");
            sel.current = Some(ssrc);
            sel.pending = None;
            sel.pending_since = None;
        }
        // While a switch waits, keep asking for the keyframe (request_keyframe paces it).
        let want_keyframe = sel.pending.is_some();
        // Until the pending layer gives a keyframe, the old one keeps being forwarded.
        (sel.current == Some(ssrc), want_keyframe)
    }
}

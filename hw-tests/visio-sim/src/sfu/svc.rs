//! VP9 SVC layer choice per subscriber, as livekit/livekit `pkg/sfu/videolayerselector/vp9.go`
//! does it: one RTP stream carries every spatial layer (livekit-client's default `L3T3_KEY`),
//! each packet naming its layer in the VP9 payload descriptor (RFC 9628). A subscriber gets
//! the spatial layers up to its current one; packets of higher layers are dropped (the
//! sequence numbers closed up by the munger), and the marker bit is set on the end of the
//! last forwarded layer's frame, so that the decoder sees a complete picture. Moving up waits
//! for a frame of the higher layer that does not depend on an earlier picture (`P = 0`,
//! beginning of frame: a keyframe in `L3T3_KEY`); moving down happens at the end of a frame.
//! Temporal layers are all forwarded (the subscriber's `fps` is not acted on).

use super::simulcast::Decision;

/// The fields of a VP9 payload descriptor (RFC 9628 §4.2) a selector needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Vp9Descriptor {
    /// Inter-picture predicted.
    pub(super) p: bool,
    /// Start of a frame (of one spatial layer).
    pub(super) b: bool,
    /// End of a frame (of one spatial layer).
    pub(super) e: bool,
    /// Spatial layer id (0 without layer indices).
    pub(super) sid: u8,
    /// Temporal layer id.
    pub(super) tid: u8,
}

impl Vp9Descriptor {
    /// Parses the descriptor at the start of a VP9 RTP payload.
    pub(super) fn parse(payload: &[u8]) -> Option<Self> {
        let &b0 = payload.first()?;
        let (i, p, l) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0);
        let mut at = 1;
        if i {
            // Picture id: 7 bits, or 15 with M set.
            let &pid = payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        let (mut sid, mut tid) = (0, 0);
        if l {
            let &layers = payload.get(at)?;
            tid = layers >> 5;
            sid = (layers >> 1) & 0x07;
        }
        Some(Self {
            p,
            b: b0 & 0x08 != 0,
            e: b0 & 0x04 != 0,
            sid,
            tid,
        })
    }
}

/// One subscriber's VP9 spatial layer (vp9.go `Select`).
#[derive(Default)]
pub(super) struct Vp9Selector {
    /// The highest spatial layer forwarded now (`None`: waiting for a keyframe).
    pub(super) current: Option<u8>,
}

impl Vp9Selector {
    /// Decides for a packet with descriptor `d` on stream `ssrc`; `target` is the subscriber's
    /// target spatial layer, already capped at the highest layer the publisher sends.
    pub(super) fn select(
        &mut self,
        d: &Vp9Descriptor,
        marker: bool,
        target: u8,
        ssrc: u32,
    ) -> Decision {
        let Some(before) = self.current else {
            // Start on a keyframe (its first spatial layer).
            if !d.p && d.b && d.sid == 0 {
                self.current = Some(0);
                return self.select(d, marker, target, ssrc);
            }
            return Decision {
                forward: false,
                marker,
                keyframe_on: Some(ssrc),
            };
        };
        let mut for_packet = before;
        let mut after = before;
        if before < target {
            // Up: at the beginning of a frame of a higher layer that needs no earlier picture.
            if d.sid > before && d.sid <= target && !d.p && d.b {
                for_packet = d.sid;
                after = d.sid;
            }
        } else if before > target && d.e {
            // Down: once a frame ends.
            after = target;
        }
        self.current = Some(after);
        // The end of the last layer forwarded ends the picture. vp9.go compares with the
        // layer before a downward switch, leaving the switching picture unmarked; the sim
        // marks it.
        let last = if after < before { after } else { for_packet };
        let marker = marker || (d.e && d.sid == last && (d.p || target <= after));
        Decision {
            forward: d.sid <= for_packet,
            marker,
            // Moving up needs a keyframe.
            keyframe_on: (after < target).then_some(ssrc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload with picture id (15 bits) and layer indices, non-flexible mode.
    fn payload(p: bool, b: bool, e: bool, sid: u8, tid: u8) -> Vec<u8> {
        let mut b0 = 0x80 | 0x20; // I, L
        if p {
            b0 |= 0x40;
        }
        if b {
            b0 |= 0x08;
        }
        if e {
            b0 |= 0x04;
        }
        vec![b0, 0x81, 0x23, (tid << 5) | (sid << 1), 7, 0xAA]
    }

    fn desc(p: bool, b: bool, e: bool, sid: u8) -> Vp9Descriptor {
        Vp9Descriptor::parse(&payload(p, b, e, sid, 0)).unwrap()
    }

    #[test]
    fn the_descriptor_gives_the_layer_and_frame_bits() {
        let d = Vp9Descriptor::parse(&payload(true, false, true, 2, 1)).unwrap();
        assert_eq!(
            d,
            Vp9Descriptor {
                p: true,
                b: false,
                e: true,
                sid: 2,
                tid: 1
            }
        );
        // No layer indices: layer 0.
        assert_eq!(Vp9Descriptor::parse(&[0x0c, 0xAA]).unwrap().sid, 0);
        assert_eq!(Vp9Descriptor::parse(&[]), None);
    }

    /// One superframe of three spatial layers, one packet each; returns what is forwarded
    /// as (sid, marker).
    fn superframe(s: &mut Vp9Selector, key: bool, target: u8) -> Vec<(u8, bool)> {
        (0..3)
            .filter_map(|sid| {
                let d = desc(!key, true, true, sid);
                let out = s.select(&d, sid == 2, target, 1);
                out.forward.then_some((sid, out.marker))
            })
            .collect()
    }

    #[test]
    fn a_small_subscriber_gets_the_lower_layers_with_the_marker_on_its_last_one() {
        let mut s = Vp9Selector::default();
        // Nothing before a keyframe.
        assert_eq!(superframe(&mut s, false, 0), vec![]);
        assert_eq!(superframe(&mut s, true, 0), vec![(0, true)]);
        assert_eq!(superframe(&mut s, false, 0), vec![(0, true)]);
        let mut m = Vp9Selector::default();
        assert_eq!(superframe(&mut m, true, 1), vec![(0, false), (1, true)]);
        assert_eq!(superframe(&mut m, false, 1), vec![(0, false), (1, true)]);
    }

    #[test]
    fn moving_up_waits_for_a_keyframe_and_moving_down_does_not() {
        let mut s = Vp9Selector::default();
        assert_eq!(superframe(&mut s, true, 0), vec![(0, true)]);
        // The target rises: still layer 0 (with its marker) until a keyframe, which is asked for.
        let d = s.select(&desc(true, true, true, 0), false, 2, 1);
        assert_eq!(d.keyframe_on, Some(1));
        assert_eq!(superframe(&mut s, false, 2), vec![(0, true)]);
        assert_eq!(
            superframe(&mut s, true, 2),
            vec![(0, false), (1, false), (2, true)]
        );
        assert_eq!(
            superframe(&mut s, false, 2),
            vec![(0, false), (1, false), (2, true)]
        );
        // Down: from the next frame end.
        assert_eq!(superframe(&mut s, false, 0), vec![(0, true)]);
        assert_eq!(superframe(&mut s, false, 0), vec![(0, true)]);
    }
}

//! Forwarding: one `Forwarder` per published track writes what its publisher sends to each
//! subscriber's `TrackLocalStaticRTP`, header extensions stripped and sequence numbers and
//! timestamps rewritten (`Rewriter`) so that a subscriber sees one continuous stream across
//! simulcast layer switches and retransmissions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use livekit_protocol as proto;

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use super::participant::Participant;
use super::simulcast::{Layer, Selection};

/// Media counters of one published track.
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// RTP packets received from the publisher.
    pub packets_in: AtomicU64,
    /// RTP payload+header bytes received.
    pub bytes_in: AtomicU64,
    /// RTP packets written to subscribers (sum over subscribers).
    pub packets_out: AtomicU64,
    /// Keyframe requests sent to the publisher.
    pub keyframe_requests: AtomicU64,
}

pub(super) struct Downstream {
    pub(super) subscriber: Weak<Participant>,
    pub(super) local: Arc<TrackLocalStaticRTP>,
    pub(super) sender: Arc<RTCRtpSender>,
    /// The subscriber disabled this track (`UpdateTrackSettings.disabled`): not forwarded.
    pub(super) disabled: Arc<AtomicBool>,
}

/// Rewrites sequence numbers and timestamps so that a subscriber sees one continuous stream
/// when the forwarded simulcast layer changes.
#[derive(Default)]
pub(super) struct Rewriter {
    pub(super) current: Option<u32>,
    pub(super) seq_offset: u16,
    pub(super) ts_offset: u32,
    pub(super) last_seq: u16,
    pub(super) last_ts: u32,
    pub(super) started: bool,
}

impl Rewriter {
    /// A packet of `ssrc` is dropped: later ones move up by one.
    fn skip(&mut self, ssrc: u32) {
        if self.current == Some(ssrc) {
            self.seq_offset = self.seq_offset.wrapping_sub(1);
        }
    }

    fn rewrite(&mut self, ssrc: u32, pkt: &mut webrtc::rtp::packet::Packet) {
        if self.current != Some(ssrc) {
            if self.started {
                self.seq_offset = self
                    .last_seq
                    .wrapping_add(1)
                    .wrapping_sub(pkt.header.sequence_number);
                self.ts_offset = self
                    .last_ts
                    .wrapping_add(3000)
                    .wrapping_sub(pkt.header.timestamp);
            }
            self.current = Some(ssrc);
        }
        pkt.header.sequence_number = pkt.header.sequence_number.wrapping_add(self.seq_offset);
        pkt.header.timestamp = pkt.header.timestamp.wrapping_add(self.ts_offset);
        // A retransmission (NACK answered by the publisher) is older than what was already
        // forwarded: it must not move the continuation point back.
        let newer = pkt.header.sequence_number.wrapping_sub(self.last_seq) < 0x8000;
        if newer || !self.started {
            self.last_seq = pkt.header.sequence_number;
            self.last_ts = pkt.header.timestamp;
        }
        self.started = true;
    }
}

/// One published track being forwarded.
pub struct Forwarder {
    pub(super) track_sid: String,
    pub(super) publisher: Weak<Participant>,
    pub(super) kind: RTPCodecType,
    pub(super) codec: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability,
    pub(super) layers: Mutex<Vec<Layer>>,
    pub(super) selection: Mutex<Selection>,
    pub(super) rewriter: Mutex<Rewriter>,
    pub(super) downstream: tokio::sync::Mutex<Vec<Downstream>>,
    pub(super) last_keyframe_request: Mutex<Option<Instant>>,
    pub(super) audio_level_ext: Option<u8>,
    /// The highest quality last announced to the publisher (`SubscribedQualityUpdate`);
    /// `Some(High)` at first, as a publisher starts with every layer.
    pub(super) dynacast_sent: Mutex<Option<proto::VideoQuality>>,
    /// Counters.
    pub counters: MediaCounters,
}

impl Forwarder {
    pub(super) async fn forward(&self, ssrc: u32, mut pkt: webrtc::rtp::packet::Packet) {
        let (forward, want_keyframe) = self.admit(ssrc, &pkt.payload);
        if want_keyframe && self.kind == RTPCodecType::Video {
            self.request_keyframe().await;
        }
        if !forward {
            tracing::trace!(track = %self.track_sid, ssrc, "layer not forwarded");
            return;
        }
        if pkt.payload.is_empty() {
            // Padding-only packets are the publisher's bandwidth probes, meant for us: drop
            // them and close the sequence-number gap they would leave.
            self.rewriter.lock().unwrap().skip(ssrc);
            return;
        }
        pkt.header.padding = false;
        // Header extension ids are negotiated per peer connection: never pass them through.
        pkt.header.extension = false;
        pkt.header.extension_profile = 0xBEDE;
        pkt.header.extensions.clear();
        pkt.header.extensions_padding = 0;
        self.rewriter.lock().unwrap().rewrite(ssrc, &mut pkt);
        let downstream = self.downstream.lock().await;
        for d in downstream.iter() {
            if d.disabled.load(Ordering::Relaxed) {
                continue;
            }
            match d.local.write_rtp(&pkt).await {
                Ok(_) => {
                    self.counters.packets_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::trace!(track = %self.track_sid, error = %e, "forwarding write failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32) -> webrtc::rtp::packet::Packet {
        webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                sequence_number: seq,
                timestamp: ts,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_retransmission_keeps_its_place_and_a_layer_switch_continues_after_the_newest() {
        let mut r = Rewriter::default();
        let mut out = |ssrc, seq, ts| {
            let mut p = packet(seq, ts);
            r.rewrite(ssrc, &mut p);
            (p.header.sequence_number, p.header.timestamp)
        };
        assert_eq!(out(1, 100, 9000), (100, 9000));
        assert_eq!(out(1, 101, 12000), (101, 12000));
        assert_eq!(out(1, 102, 15000), (102, 15000));
        // Packet 101 again (NACKed, resent by the publisher): same place.
        assert_eq!(out(1, 101, 12000), (101, 12000));
        // Another layer: continues right after 102, one frame later.
        assert_eq!(out(2, 5000, 700), (103, 18000));
    }
}

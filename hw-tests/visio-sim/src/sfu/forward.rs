//! Forwarding (livekit/livekit `pkg/sfu/forwarder.go`, `downtrack.go`): one `Forwarder` per
//! published track writes what its publisher sends to each subscriber's
//! `TrackLocalStaticRTP`, with the layers that subscriber selected (simulcast: `simulcast.rs`,
//! VP9 SVC: `svc.rs`), header extensions stripped and sequence numbers and timestamps
//! rewritten per subscriber (`Munger`) so that each sees one continuous stream across layer
//! switches, dropped layers and retransmissions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use livekit_protocol as proto;

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

use super::participant::Participant;
use super::red::{is_red, RedDownTrack};
use super::simulcast::{starts_keyframe, Decision, Layer, SimulcastSelector, LAYER_STALE};
use super::svc::{Vp9Descriptor, Vp9Selector};

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
    pub(super) local: DownTrack,
    pub(super) sender: Arc<RTCRtpSender>,
    /// The subscriber disabled this track (`UpdateTrackSettings.disabled`): not forwarded.
    pub(super) disabled: Arc<AtomicBool>,
    /// The spatial layer this subscriber should get (from its track settings).
    pub(super) target: AtomicU8,
    /// Its layer choice and sequence numbers.
    pub(super) lane: Mutex<Lane>,
    /// RTP packets written to this subscriber.
    pub(super) packets_out: AtomicU64,
    /// Their bytes (header and payload).
    pub(super) bytes_out: AtomicU64,
}

impl Downstream {
    pub(super) fn new(
        subscriber: Weak<Participant>,
        local: DownTrack,
        sender: Arc<RTCRtpSender>,
        disabled: bool,
        target: u8,
    ) -> Self {
        Self {
            subscriber,
            local,
            sender,
            disabled: Arc::new(AtomicBool::new(disabled)),
            target: AtomicU8::new(target),
            lane: Mutex::new(Lane::default()),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// The layer forwarded now, for the admin listing: a simulcast rid, or `S<n>` for a VP9
    /// spatial layer.
    pub(super) fn layer(&self, f: &Forwarder) -> Option<String> {
        let lane = self.lane.lock().unwrap();
        if let Some(s) = lane.svc.current {
            return Some(format!("S{s}"));
        }
        lane.simulcast.current.map(|ssrc| f.rid_of(ssrc))
    }
}

/// The track a subscriber's connection sends: the publisher's codec as it is, or for RED a
/// track that becomes plain Opus for a subscriber without RED (`red.rs`).
pub(super) enum DownTrack {
    Plain(Arc<TrackLocalStaticRTP>),
    Red(Arc<RedDownTrack>),
}

impl DownTrack {
    pub(super) fn new(
        codec: &webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability,
        id: String,
        stream_id: String,
    ) -> Self {
        if is_red(&codec.mime_type) {
            Self::Red(Arc::new(RedDownTrack::new(codec.clone(), id, stream_id)))
        } else {
            Self::Plain(Arc::new(TrackLocalStaticRTP::new(
                codec.clone(),
                id,
                stream_id,
            )))
        }
    }

    pub(super) fn track_local(&self) -> Arc<dyn TrackLocal + Send + Sync> {
        match self {
            Self::Plain(t) => t.clone(),
            Self::Red(t) => t.clone(),
        }
    }

    async fn write_rtp(&self, pkt: &webrtc::rtp::packet::Packet) -> Result<usize, webrtc::Error> {
        match self {
            Self::Plain(t) => t.write_rtp(pkt).await,
            Self::Red(t) => t.write_rtp(pkt).await,
        }
    }

    /// The codec sent, for the admin listing (`audio/opus` for a RED track stripped).
    pub(super) fn sent_codec(&self, published: &str) -> String {
        match self {
            Self::Red(t) if t.primary_only() => webrtc::api::media_engine::MIME_TYPE_OPUS.into(),
            _ => published.to_owned(),
        }
    }
}

/// One subscriber's view of a track: which layers it gets and the sequence numbers and
/// timestamps it sees.
#[derive(Default)]
pub(super) struct Lane {
    pub(super) simulcast: SimulcastSelector,
    pub(super) svc: Vp9Selector,
    pub(super) munger: Munger,
}

/// Rewrites sequence numbers and timestamps so that a subscriber sees one continuous stream
/// when its simulcast layer changes or packets it does not get (higher SVC layers, padding)
/// are dropped (livekit/livekit `pkg/sfu/rtpmunger.go`). A retransmission gets the number
/// its packet had, from the offsets in force when that packet was first seen.
#[derive(Default)]
pub(super) struct Munger {
    current: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// The newest incoming sequence number of `current`.
    last_in: u16,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    /// (first incoming sequence number, offset from it on), newest last.
    history: VecDeque<(u16, u16)>,
}

/// Offsets kept for retransmissions (each a switch or a dropped packet).
const MUNGER_HISTORY: usize = 256;

fn newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Munger {
    /// A packet of `ssrc` numbered `seq` is not forwarded: later ones move up by one.
    pub(super) fn drop_packet(&mut self, ssrc: u32, seq: u16) {
        if self.current != Some(ssrc) || !self.started || !newer(seq, self.last_in) {
            return;
        }
        self.seq_offset = self.seq_offset.wrapping_sub(1);
        self.last_in = seq;
        self.remember(seq.wrapping_add(1));
    }

    fn remember(&mut self, from: u16) {
        self.history.push_back((from, self.seq_offset));
        if self.history.len() > MUNGER_HISTORY {
            self.history.pop_front();
        }
    }

    /// Rewrites `pkt` of layer `ssrc`; false when it cannot be placed (a retransmission from
    /// before a switch): it is then not sent.
    pub(super) fn rewrite(&mut self, ssrc: u32, pkt: &mut webrtc::rtp::packet::Packet) -> bool {
        let seq = pkt.header.sequence_number;
        if self.current != Some(ssrc) {
            if self.started {
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = self
                    .last_ts
                    .wrapping_add(3000)
                    .wrapping_sub(pkt.header.timestamp);
            }
            self.current = Some(ssrc);
            self.history.clear();
            self.remember(seq);
            self.last_in = seq;
        } else if self.started && !newer(seq, self.last_in) && seq != self.last_in {
            // Older than the newest: a retransmission (NACK answered by the publisher) keeps
            // its place, and does not move the continuation point back.
            let Some(&(_, offset)) = self
                .history
                .iter()
                .rev()
                .find(|(from, _)| !newer(*from, seq))
            else {
                return false;
            };
            pkt.header.sequence_number = seq.wrapping_add(offset);
            pkt.header.timestamp = pkt.header.timestamp.wrapping_add(self.ts_offset);
            return true;
        }
        self.last_in = seq;
        pkt.header.sequence_number = seq.wrapping_add(self.seq_offset);
        pkt.header.timestamp = pkt.header.timestamp.wrapping_add(self.ts_offset);
        self.last_seq = pkt.header.sequence_number;
        self.last_ts = pkt.header.timestamp;
        self.started = true;
        true
    }
}

/// One published track being forwarded.
pub struct Forwarder {
    pub(super) track_sid: String,
    pub(super) publisher: Weak<Participant>,
    pub(super) kind: RTPCodecType,
    pub(super) codec: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability,
    pub(super) layers: Mutex<Vec<Layer>>,
    /// When each VP9 spatial layer last sent a packet (SVC).
    pub(super) svc_layers: Mutex<[Option<Instant>; 8]>,
    pub(super) downstream: tokio::sync::Mutex<Vec<Downstream>>,
    /// When a keyframe was last asked for, per SSRC.
    pub(super) last_keyframe_request: Mutex<HashMap<u32, Instant>>,
    pub(super) audio_level_ext: Option<u8>,
    /// The highest quality last announced to the publisher (`SubscribedQualityUpdate`);
    /// `Some(High)` at first, as a publisher starts with every layer.
    pub(super) dynacast_sent: Mutex<Option<proto::VideoQuality>>,
    /// Counters.
    pub counters: MediaCounters,
}

impl Forwarder {
    /// Whether this track's layers are VP9 spatial layers in one stream (SVC) rather than
    /// simulcast streams (livekit `IsSvcCodec`: VP9; AV1's dependency descriptor is not read).
    fn is_svc(&self, layer_count: usize) -> bool {
        layer_count <= 1 && self.codec.mime_type.eq_ignore_ascii_case("video/vp9")
    }

    /// The highest VP9 spatial layer that sent a packet recently.
    fn top_svc_layer(&self, now: Instant) -> u8 {
        let seen = self.svc_layers.lock().unwrap();
        seen.iter()
            .rposition(|t| t.is_some_and(|t| now.duration_since(t) < LAYER_STALE))
            .unwrap_or(0) as u8
    }

    pub(super) async fn forward(&self, ssrc: u32, mut pkt: webrtc::rtp::packet::Packet) {
        let now = Instant::now();
        let (flowing, layer_count) = self.note_layer_packet(ssrc, now);
        let video = self.kind == RTPCodecType::Video;
        let svc = (video && self.is_svc(layer_count))
            .then(|| Vp9Descriptor::parse(&pkt.payload))
            .flatten();
        if let Some(d) = &svc {
            self.svc_layers.lock().unwrap()[usize::from(d.sid & 7)] = Some(now);
        }
        let top_svc = self.top_svc_layer(now);
        let keyframe = video && starts_keyframe(&self.codec.mime_type, &pkt.payload);
        // Padding-only packets are the publisher's bandwidth probes, meant for us: dropped
        // (and the sequence-number gap they would leave closed).
        let padding = pkt.payload.is_empty();
        pkt.header.padding = false;
        // Header extension ids are negotiated per peer connection: never pass them through.
        pkt.header.extension = false;
        pkt.header.extension_profile = 0xBEDE;
        pkt.header.extensions.clear();
        pkt.header.extensions_padding = 0;
        let marker = pkt.header.marker;
        let mut keyframe_on = None;
        let downstream = self.downstream.lock().await;
        for d in downstream.iter() {
            if d.disabled.load(Ordering::Relaxed) {
                continue;
            }
            let target = d.target.load(Ordering::Relaxed);
            let out = {
                let mut lane = d.lane.lock().unwrap();
                let decision = if !video {
                    Decision {
                        forward: true,
                        marker,
                        keyframe_on: None,
                    }
                } else if let Some(desc) = &svc {
                    lane.svc.select(desc, marker, target.min(top_svc), ssrc)
                } else {
                    lane.simulcast
                        .select(ssrc, keyframe, marker, &flowing, target, now)
                };
                keyframe_on = keyframe_on.or(decision.keyframe_on);
                if !decision.forward || padding {
                    lane.munger.drop_packet(ssrc, pkt.header.sequence_number);
                    None
                } else {
                    let mut out = pkt.clone();
                    out.header.marker = decision.marker;
                    lane.munger.rewrite(ssrc, &mut out).then_some(out)
                }
            };
            let Some(out) = out else { continue };
            match d.local.write_rtp(&out).await {
                Ok(_) => {
                    self.counters.packets_out.fetch_add(1, Ordering::Relaxed);
                    d.packets_out.fetch_add(1, Ordering::Relaxed);
                    d.bytes_out
                        .fetch_add((out.payload.len() + 12) as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::trace!(track = %self.track_sid, error = %e, "forwarding write failed")
                }
            }
        }
        drop(downstream);
        if let Some(ssrc) = keyframe_on {
            self.request_keyframe_on(ssrc).await;
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
        let mut r = Munger::default();
        let mut out = |ssrc, seq, ts| {
            let mut p = packet(seq, ts);
            assert!(r.rewrite(ssrc, &mut p));
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

    #[test]
    fn dropped_packets_close_up_and_a_retransmission_keeps_the_number_it_had() {
        let mut r = Munger::default();
        let out = |r: &mut Munger, seq| {
            let mut p = packet(seq, 0);
            r.rewrite(1, &mut p).then_some(p.header.sequence_number)
        };
        assert_eq!(out(&mut r, 10), Some(10));
        assert_eq!(out(&mut r, 11), Some(11));
        r.drop_packet(1, 12);
        r.drop_packet(1, 13);
        assert_eq!(out(&mut r, 14), Some(12));
        // 11 again: its old number; 15 continues.
        assert_eq!(out(&mut r, 11), Some(11));
        assert_eq!(out(&mut r, 15), Some(13));
        // A packet lost before the drops, resent: placed with the offsets of its time.
        let mut r2 = Munger::default();
        assert_eq!(out(&mut r2, 100), Some(100));
        assert_eq!(out(&mut r2, 102), Some(102));
        r2.drop_packet(1, 103);
        assert_eq!(out(&mut r2, 104), Some(103));
        assert_eq!(out(&mut r2, 101), Some(101));
        // Older than the layer switch: not placed.
        assert_eq!(out(&mut r2, 50), None);
    }
}

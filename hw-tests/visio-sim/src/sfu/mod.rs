//! The selective forwarding unit: rooms, participants, their two peer connections each
//! (publisher: the client offers; subscriber: the SFU offers), RTP forwarding from every
//! published track to every other participant (auto-subscribe), RTCP keyframe requests back to
//! the publisher, and data packet relay. Signalling (the WebSocket) lives in `signal.rs`; this
//! module only sends `SignalResponse`s into each participant's outbound queue.

// Protocol fields marked deprecated (TrackInfo.layers/simulcast/stereo, DataPacket.kind,
// UserPacket identities) are still what current clients read: a faithful server fills them.
#![allow(deprecated)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use livekit_protocol as proto;
use prost::Message;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

/// Signalling protocol version this SFU speaks (v0 path, no packet trailers).
pub const PROTOCOL_VERSION: i32 = 16;
/// Version string reported in `ServerInfo`.
pub const SERVER_VERSION: &str = "1.9.0";

/// What the SFU wants a participant's signalling connection to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this message.
    Signal(Box<proto::SignalResponse>),
    /// Send this `LeaveRequest` and close the connection; the participant is removed unless
    /// the action is `RESUME`.
    Close(proto::LeaveRequest),
    /// Close the connection without a word, as a network failure would: the participant is
    /// kept for a resume.
    Drop,
}

/// A WebRTC operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// webrtc-rs refused an operation.
    #[error("WebRTC: {0}")]
    WebRtc(#[from] webrtc::Error),
    /// A trickled candidate was not valid JSON.
    #[error(
        "trickle candidate is not the expected JSON {{candidate, sdpMid, sdpMLineIndex}}: {0}"
    )]
    Candidate(#[from] serde_json::Error),
}

/// How ICE candidates are restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceScope {
    /// Gather, announce and accept only loopback candidates (tests and single-machine demos).
    Loopback,
    /// Any interface (a person's browser on another machine).
    Any,
}

fn rand_id(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 12)
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The SFU: a WebRTC API configured for forwarding, and the rooms.
pub struct Sfu {
    api: API,
    ice_scope: IceScope,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    departure_timeout: Duration,
}

/// How long an empty room is kept (LiveKit's `departure_timeout` default).
pub const DEFAULT_DEPARTURE_TIMEOUT: Duration = Duration::from_secs(20);

/// Who may do what, from the token's video grant.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// May publish media.
    pub can_publish: bool,
    /// May subscribe.
    pub can_subscribe: bool,
    /// May send data.
    pub can_publish_data: bool,
    /// Allowed sources (`TrackSource` values); empty = all.
    pub can_publish_sources: Vec<i32>,
    /// Room admin.
    pub room_admin: bool,
    /// Hidden participant.
    pub hidden: bool,
}

/// A joining participant's identity, from its token.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Identity (`sub`).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Metadata.
    pub metadata: String,
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// Permissions.
    pub grants: Grants,
    /// `auto_subscribe` query parameter.
    pub auto_subscribe: bool,
    /// Client protocol version.
    pub protocol: i32,
}

/// A room.
pub struct Room {
    /// LiveKit room name.
    pub name: String,
    sid: String,
    created_ms: i64,
    participants: Mutex<Vec<Arc<Participant>>>,
    /// The departure timeout announced to clients, in seconds.
    departure_timeout_s: u32,
    /// Since when the room is empty (created, or its last participant left); `None` while
    /// someone is in it.
    empty_since: Mutex<Option<Instant>>,
}

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

struct Downstream {
    subscriber: Weak<Participant>,
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<RTCRtpSender>,
    /// The subscriber disabled this track (`UpdateTrackSettings.disabled`): not forwarded.
    disabled: Arc<AtomicBool>,
}

/// A downgrade of the qualities a publisher is asked to send (fewer subscribers, smaller
/// windows) waits this long, so that a subscriber coming right back does not make it stop and
/// restart its encoders; an upgrade is sent at once. LiveKit debounces downgrades the same way.
const DYNACAST_DOWNGRADE_DELAY: Duration = Duration::from_secs(3);

/// The simulcast qualities, lowest first.
const QUALITIES: [proto::VideoQuality; 3] = [
    proto::VideoQuality::Low,
    proto::VideoQuality::Medium,
    proto::VideoQuality::High,
];

/// The quality a subscriber's `UpdateTrackSettings` asks for, given the published layers:
/// with dimensions, the smallest layer covering them (else the largest); without, the
/// requested quality. `None` when the subscriber disabled the track.
fn wanted_quality(
    settings: Option<&proto::UpdateTrackSettings>,
    layers: &[proto::VideoLayer],
) -> Option<proto::VideoQuality> {
    let Some(s) = settings else {
        // No settings yet: LiveKit subscribes at the highest quality.
        return Some(proto::VideoQuality::High);
    };
    if s.disabled {
        return None;
    }
    if s.width == 0 && s.height == 0 {
        return Some(match proto::VideoQuality::try_from(s.quality) {
            Ok(proto::VideoQuality::Off) => return None,
            Ok(q) => q,
            Err(_) => proto::VideoQuality::High,
        });
    }
    let mut sorted: Vec<&proto::VideoLayer> = layers.iter().collect();
    sorted.sort_by_key(|l| l.quality);
    let covering = sorted
        .iter()
        .find(|l| l.width >= s.width && l.height >= s.height)
        .or(sorted.last());
    Some(
        covering
            .and_then(|l| proto::VideoQuality::try_from(l.quality).ok())
            .unwrap_or(proto::VideoQuality::High),
    )
}

/// The `SubscribedQuality` list telling a publisher to send the qualities up to `max` (none
/// when `max` is `None`).
fn subscribed_qualities(max: Option<proto::VideoQuality>) -> Vec<proto::SubscribedQuality> {
    QUALITIES
        .iter()
        .map(|q| proto::SubscribedQuality {
            quality: *q as i32,
            enabled: max.is_some_and(|m| (*q as i32) <= (m as i32)),
        })
        .collect()
}

/// Rewrites sequence numbers and timestamps so that a subscriber sees one continuous stream
/// when the forwarded simulcast layer changes.
#[derive(Default)]
struct Rewriter {
    current: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
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

struct Layer {
    rid: String,
    ssrc: u32,
    last_packet: Option<Instant>,
}

/// A layer that sent nothing for this long is considered paused by the publisher (its
/// bandwidth estimate dropped it), and forwarding moves to the best layer still flowing.
const LAYER_STALE: Duration = Duration::from_millis(1500);

/// Layer selection: which simulcast layer (by SSRC) goes to subscribers.
#[derive(Default)]
struct Selection {
    /// The SSRC forwarded now.
    current: Option<u32>,
    /// A better layer we switch to at its next keyframe.
    pending: Option<u32>,
    /// When `pending` was chosen.
    pending_since: Option<Instant>,
}

/// How long a publisher track whose receiver stopped may take to come back (renegotiation)
/// before it counts as unpublished.
const REPUBLISH_GRACE: Duration = Duration::from_secs(2);

/// A pending layer that gave no recognisable keyframe within this time is switched to anyway:
/// the subscribers' decoders then ask for one themselves.
const KEYFRAME_WAIT: Duration = Duration::from_secs(1);

/// One published track being forwarded.
pub struct Forwarder {
    track_sid: String,
    publisher: Weak<Participant>,
    kind: RTPCodecType,
    codec: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability,
    layers: Mutex<Vec<Layer>>,
    selection: Mutex<Selection>,
    rewriter: Mutex<Rewriter>,
    downstream: tokio::sync::Mutex<Vec<Downstream>>,
    last_keyframe_request: Mutex<Option<Instant>>,
    audio_level_ext: Option<u8>,
    /// The highest quality last announced to the publisher (`SubscribedQualityUpdate`);
    /// `Some(High)` at first, as a publisher starts with every layer.
    dynacast_sent: Mutex<Option<proto::VideoQuality>>,
    /// Counters.
    pub counters: MediaCounters,
}

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
    fn add_layer(&self, rid: &str, ssrc: u32) {
        self.layers.lock().unwrap().push(Layer {
            rid: rid.to_owned(),
            ssrc,
            last_packet: None,
        });
    }

    /// Records a packet of layer `ssrc` and decides whether it is forwarded. Returns
    /// `(forward, wanted_keyframe)`.
    fn admit(&self, ssrc: u32, payload: &[u8]) -> (bool, bool) {
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

    /// Asks the publisher for a keyframe of the layer being forwarded or switched to (at most
    /// every 300 ms).
    async fn request_keyframe(&self) {
        {
            let mut last = self.last_keyframe_request.lock().unwrap();
            if last.is_some_and(|t| t.elapsed() < Duration::from_millis(300)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let ssrc = {
            let sel = self.selection.lock().unwrap();
            sel.pending.or(sel.current)
        };
        let Some(ssrc) = ssrc else { return };
        let Some(publisher) = self.publisher.upgrade() else {
            return;
        };
        self.counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if let Err(e) = publisher.publisher.write_rtcp(&[Box::new(pli)]).await {
            tracing::debug!(error = %e, "keyframe request not sent");
        }
    }

    /// The highest quality any enabled subscriber wants now (`None`: nobody wants video).
    async fn wanted_by_subscribers(&self) -> Option<proto::VideoQuality> {
        let layers = self
            .publisher
            .upgrade()
            .and_then(|p| {
                let st = p.state.lock().unwrap();
                st.tracks
                    .iter()
                    .find(|(_, t)| t.sid == self.track_sid)
                    .map(|(_, t)| t.layers.clone())
            })
            .unwrap_or_default();
        let subscribers: Vec<Arc<Participant>> = self
            .downstream
            .lock()
            .await
            .iter()
            .filter_map(|d| d.subscriber.upgrade())
            .collect();
        subscribers
            .iter()
            .filter_map(|sub| {
                let st = sub.state.lock().unwrap();
                wanted_quality(st.track_settings.get(&self.track_sid), &layers)
            })
            .max_by_key(|q| *q as i32)
    }

    /// Dynacast: tells the publisher which simulcast qualities its subscribers want
    /// (`SubscribedQualityUpdate`), when that changed; downgrades are debounced.
    fn update_dynacast(self: &Arc<Self>) {
        if self.kind != RTPCodecType::Video {
            return;
        }
        let f = self.clone();
        tokio::spawn(async move {
            let wanted = f.wanted_by_subscribers().await;
            let sent = *f.dynacast_sent.lock().unwrap();
            let rank = |q: Option<proto::VideoQuality>| q.map_or(-1, |q| q as i32);
            if wanted == sent {
                return;
            }
            if rank(wanted) < rank(sent) {
                tokio::time::sleep(DYNACAST_DOWNGRADE_DELAY).await;
                let again = f.wanted_by_subscribers().await;
                if again != wanted {
                    // Changed meanwhile: that change scheduled its own update.
                    return;
                }
            }
            let Some(publisher) = f.publisher.upgrade() else {
                return;
            };
            {
                let mut sent = f.dynacast_sent.lock().unwrap();
                if *sent == wanted {
                    return;
                }
                *sent = wanted;
            }
            tracing::debug!(track = %f.track_sid, up_to = ?wanted, "dynacast: subscribed qualities sent to the publisher");
            // livekit-client reads the per-codec list (codec named like its `videoCodec`
            // option, e.g. "vp8"); other SDKs read the plain list.
            let codec = f
                .codec
                .mime_type
                .split_once('/')
                .map_or(f.codec.mime_type.as_str(), |(_, c)| c)
                .to_ascii_lowercase();
            publisher.send(Resp::SubscribedQualityUpdate(
                proto::SubscribedQualityUpdate {
                    track_sid: f.track_sid.clone(),
                    subscribed_qualities: subscribed_qualities(wanted),
                    subscribed_codecs: vec![proto::SubscribedCodec {
                        codec,
                        qualities: subscribed_qualities(wanted),
                    }],
                },
            ));
            if wanted.is_some() {
                f.request_keyframe().await;
            }
        });
    }

    async fn forward(&self, ssrc: u32, mut pkt: webrtc::rtp::packet::Packet) {
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

/// The mutable part of a participant.
struct ParticipantState {
    info: proto::ParticipantInfo,
    /// Published tracks by sid, with the client's cid.
    tracks: Vec<(String, proto::TrackInfo)>,
    forwarders: HashMap<String, Arc<Forwarder>>,
    subscriber_offer_in_flight: bool,
    subscriber_offer_again: bool,
    pending_candidates: [Vec<RTCIceCandidateInit>; 2],
    mid_to_track: HashMap<String, String>,
    audio_level: f32,
    /// This participant's last `UpdateTrackSettings` per subscribed track sid.
    track_settings: HashMap<String, proto::UpdateTrackSettings>,
}

/// A participant in a room.
pub struct Participant {
    /// `PA_...` sid.
    pub sid: String,
    /// Identity.
    pub identity: String,
    room: Weak<Room>,
    outbound: Mutex<mpsc::UnboundedSender<Outbound>>,
    publisher: Arc<RTCPeerConnection>,
    subscriber: Arc<RTCPeerConnection>,
    subscriber_channels: Mutex<HashMap<String, Arc<RTCDataChannel>>>,
    state: Mutex<ParticipantState>,
    offer_id: AtomicU32,
    /// The next subscriber offer restarts ICE (after a resume, like LiveKit).
    restart_subscriber_ice: AtomicBool,
    /// One of the two peer connections has been connected at least once: the participant then
    /// outlives its signalling connection (LiveKit's `HasICEConnected`).
    ice_ever_connected: AtomicBool,
    auto_subscribe: bool,
    ice_scope: IceScope,
}

/// ICE timeouts of a LiveKit server (livekit/livekit `pkg/rtc/transport.go`): no traffic for
/// 10 s makes a connection disconnected, 5 s more failed; keepalives every 2 s.
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(10);
const ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(5);
const ICE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// After a peer connection failed, how long the client has to bring one back (by resuming)
/// before the participant is removed (LiveKit `disconnectCleanupDuration`, participant.go).
const DISCONNECT_CLEANUP: Duration = Duration::from_secs(5);

/// Trickle targets.
const PUBLISHER: i32 = 0;
const SUBSCRIBER: i32 = 1;

impl Sfu {
    /// An SFU restricted to `ice_scope` candidates.
    pub fn new(ice_scope: IceScope) -> Result<Self, SfuError> {
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        for uri in [
            webrtc::sdp::extmap::SDES_MID_URI,
            webrtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
            webrtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
        ] {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RTPCodecType::Video,
                None,
            )?;
        }
        for uri in [
            webrtc::sdp::extmap::SDES_MID_URI,
            webrtc::sdp::extmap::AUDIO_LEVEL_URI,
        ] {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RTPCodecType::Audio,
                None,
            )?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let mut settings = SettingEngine::default();
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        settings.set_network_types(vec![NetworkType::Udp4]);
        // ICE-lite, like a LiveKit server: the SFU only answers connectivity checks and the
        // client (controlling on both connections) nominates at once, instead of the SFU's
        // full agent running its own checks on the subscriber connection it offers.
        settings.set_lite(true);
        settings.set_ice_timeouts(
            Some(ICE_DISCONNECTED_TIMEOUT),
            Some(ICE_FAILED_TIMEOUT),
            Some(ICE_KEEPALIVE_INTERVAL),
        );
        if ice_scope == IceScope::Loopback {
            settings.set_include_loopback_candidate(true);
            settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
        }
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        Ok(Self {
            api,
            ice_scope,
            rooms: Mutex::new(HashMap::new()),
            departure_timeout: DEFAULT_DEPARTURE_TIMEOUT,
        })
    }

    /// Sets how long a room is kept once empty (LiveKit's `departure_timeout`).
    pub fn with_departure_timeout(mut self, timeout: Duration) -> Self {
        self.departure_timeout = timeout;
        self
    }

    /// The room of that name, created on first use. An empty room's departure timeout starts
    /// again (the caller is about to join it).
    pub fn room(&self, name: &str) -> Arc<Room> {
        let mut rooms = self.rooms.lock().unwrap();
        let room = rooms
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Room {
                    name: name.to_owned(),
                    sid: rand_id("RM_"),
                    created_ms: now_ms(),
                    participants: Mutex::new(Vec::new()),
                    empty_since: Mutex::new(None),
                    departure_timeout_s: self.departure_timeout.as_secs() as u32,
                })
            })
            .clone();
        // Lock order everywhere: participants, then empty_since.
        let participants = room.participants.lock().unwrap();
        if participants.is_empty() {
            *room.empty_since.lock().unwrap() = Some(Instant::now());
        }
        drop(participants);
        room
    }

    /// Frees the rooms that have been empty for longer than the departure timeout, and with
    /// them their state (the next participant gets a new room, with a new sid). Returns the
    /// names of the rooms freed.
    pub fn free_empty_rooms(&self) -> Vec<String> {
        let mut rooms = self.rooms.lock().unwrap();
        let expired: Vec<String> = rooms
            .values()
            .filter(|r| {
                r.participants.lock().unwrap().is_empty()
                    && r.empty_since
                        .lock()
                        .unwrap()
                        .is_some_and(|t| t.elapsed() >= self.departure_timeout)
            })
            .map(|r| r.name.clone())
            .collect();
        for name in &expired {
            rooms.remove(name);
            tracing::info!(room = %name, "empty room freed after the departure timeout");
        }
        expired
    }

    /// An existing room.
    pub fn existing_room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().unwrap().get(name).cloned()
    }

    /// Joins `req` to `room`: evicts a participant with the same identity, creates the two
    /// peer connections, sends the `JoinResponse` into `outbound`, and tells the others.
    pub async fn join(
        &self,
        room: &Arc<Room>,
        req: JoinRequest,
        outbound: mpsc::UnboundedSender<Outbound>,
    ) -> Result<Arc<Participant>, SfuError> {
        if let Some(old) = room.find_identity(&req.identity) {
            tracing::info!(room = %room.name, identity = %req.identity, "duplicate identity: evicting the older connection");
            old.close_with(proto::DisconnectReason::DuplicateIdentity);
            room.remove(&old).await;
        }
        let config = RTCConfiguration::default();
        let publisher = Arc::new(self.api.new_peer_connection(config.clone()).await?);
        let subscriber = Arc::new(self.api.new_peer_connection(config).await?);
        let sid = rand_id("PA_");
        let info = proto::ParticipantInfo {
            sid: sid.clone(),
            identity: req.identity.clone(),
            state: proto::participant_info::State::Joined as i32,
            metadata: req.metadata.clone(),
            joined_at: now_ms() / 1000,
            joined_at_ms: now_ms(),
            name: req.name.clone(),
            version: 1,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: req.grants.can_subscribe,
                can_publish: req.grants.can_publish,
                can_publish_data: req.grants.can_publish_data,
                can_publish_sources: req.grants.can_publish_sources.clone(),
                hidden: req.grants.hidden,
                ..Default::default()
            }),
            attributes: req.attributes.clone(),
            client_protocol: req.protocol,
            ..Default::default()
        };
        let participant = Arc::new(Participant {
            sid: sid.clone(),
            identity: req.identity.clone(),
            room: Arc::downgrade(room),
            outbound: Mutex::new(outbound),
            publisher,
            subscriber,
            subscriber_channels: Mutex::new(HashMap::new()),
            state: Mutex::new(ParticipantState {
                info,
                tracks: Vec::new(),
                forwarders: HashMap::new(),
                subscriber_offer_in_flight: false,
                subscriber_offer_again: false,
                pending_candidates: [Vec::new(), Vec::new()],
                mid_to_track: HashMap::new(),
                audio_level: 0.0,
                track_settings: HashMap::new(),
            }),
            offer_id: AtomicU32::new(0),
            restart_subscriber_ice: AtomicBool::new(false),
            ice_ever_connected: AtomicBool::new(false),
            auto_subscribe: req.auto_subscribe,
            ice_scope: self.ice_scope,
        });
        participant.wire_callbacks();
        // The subscriber PC carries the SFU's own data channels, as LiveKit's does.
        for (label, init) in [
            (
                "_reliable",
                RTCDataChannelInit {
                    ordered: Some(true),
                    ..Default::default()
                },
            ),
            (
                "_lossy",
                RTCDataChannelInit {
                    ordered: Some(false),
                    max_retransmits: Some(0),
                    ..Default::default()
                },
            ),
        ] {
            let dc = participant
                .subscriber
                .create_data_channel(label, Some(init))
                .await?;
            participant
                .subscriber_channels
                .lock()
                .unwrap()
                .insert(label.to_owned(), dc);
        }

        let others: Vec<Arc<Participant>> = {
            let mut list = room.participants.lock().unwrap();
            let others = list.clone();
            list.push(participant.clone());
            *room.empty_since.lock().unwrap() = None;
            others
        };
        let join = proto::JoinResponse {
            room: Some(room.info()),
            participant: Some(participant.info()),
            other_participants: others.iter().map(|p| p.info()).collect(),
            server_version: SERVER_VERSION.into(),
            subscriber_primary: true,
            ping_timeout: 15,
            ping_interval: 5,
            server_info: Some(server_info()),
            enabled_publish_codecs: ["audio/opus", "video/VP8", "video/VP9", "video/H264"]
                .iter()
                .map(|m| proto::Codec {
                    mime: (*m).into(),
                    fmtp_line: String::new(),
                })
                .collect(),
            ..Default::default()
        };
        participant.send(Resp::Join(join));
        tracing::info!(room = %room.name, identity = %participant.identity, sid = %participant.sid, "participant joined");
        room.broadcast_update(&participant);
        // Auto-subscribe to what is already published, then offer.
        if participant.auto_subscribe {
            for other in &others {
                let forwarders: Vec<_> = other
                    .state
                    .lock()
                    .unwrap()
                    .forwarders
                    .values()
                    .cloned()
                    .collect();
                for f in forwarders {
                    participant.subscribe(&f).await;
                }
            }
        }
        participant.negotiate_subscriber();
        Ok(participant)
    }

    /// Every room with its participants, for the admin API.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.rooms.lock().unwrap().values().cloned().collect()
    }
}

/// The video codecs of the m-section `mid` of an offer, in the offer's order (RTX, RED and
/// FEC left out), with the feedback this SFU answers for video.
fn offered_video_codecs(
    sdp: &str,
    mid: &str,
) -> Vec<webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters> {
    use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters};
    use webrtc::rtp_transceiver::RTCPFeedback;
    let mid_line = format!("a=mid:{mid}");
    let Some(section) = sdp
        .split("\r\nm=")
        .find(|s| s.lines().any(|l| l.trim() == mid_line))
    else {
        return Vec::new();
    };
    let order: Vec<u8> = section
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(3)
        .filter_map(|pt| pt.parse().ok())
        .collect();
    let attr = |prefix: &str, pt: u8| {
        section.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{prefix}{pt} "))
                .map(str::to_owned)
        })
    };
    let feedback: Vec<RTCPFeedback> = [
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ]
    .iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: (*typ).into(),
        parameter: (*parameter).into(),
    })
    .collect();
    order
        .into_iter()
        .filter_map(|pt| {
            let rtpmap = attr("a=rtpmap:", pt)?;
            let (name, rate) = rtpmap.split_once('/')?;
            if !["VP8", "VP9", "H264", "AV1"].contains(&name.to_ascii_uppercase().as_str()) {
                return None;
            }
            Some(RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: format!("video/{name}"),
                    clock_rate: rate.parse().unwrap_or(90000),
                    channels: 0,
                    sdp_fmtp_line: attr("a=fmtp:", pt).unwrap_or_default(),
                    rtcp_feedback: feedback.clone(),
                },
                payload_type: pt,
                ..Default::default()
            })
        })
        .collect()
}

/// Whether reading a remote track failed because it is gone (receiver stopped, connection
/// closed) rather than because of one bad packet.
fn is_fatal_read_error(e: &webrtc::Error) -> bool {
    if matches!(
        e,
        webrtc::Error::ErrClosedPipe | webrtc::Error::ErrConnectionClosed
    ) {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("closed") || text.contains("eof")
}

/// The mid of the first m-section of an SDP.
fn first_mid(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(str::trim)
}

fn server_info() -> proto::ServerInfo {
    proto::ServerInfo {
        edition: proto::server_info::Edition::Standard as i32,
        version: SERVER_VERSION.into(),
        protocol: PROTOCOL_VERSION,
        node_id: "visio-sim".into(),
        ..Default::default()
    }
}

/// The `ReconnectResponse` a resumed participant receives.
pub fn reconnect_response() -> proto::ReconnectResponse {
    proto::ReconnectResponse {
        server_info: Some(server_info()),
        ..Default::default()
    }
}

impl Room {
    fn info(&self) -> proto::Room {
        let participants = self.participants.lock().unwrap();
        proto::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            empty_timeout: 300,
            departure_timeout: self.departure_timeout_s,
            creation_time: self.created_ms / 1000,
            creation_time_ms: self.created_ms,
            num_participants: participants.len() as u32,
            num_publishers: participants
                .iter()
                .filter(|p| !p.state.lock().unwrap().tracks.is_empty())
                .count() as u32,
            ..Default::default()
        }
    }

    /// The participants now in the room.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        self.participants.lock().unwrap().clone()
    }

    /// The participant with that identity.
    pub fn find_identity(&self, identity: &str) -> Option<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.identity == identity)
            .cloned()
    }

    /// The participant with that sid.
    pub fn find_sid(&self, sid: &str) -> Option<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.sid == sid)
            .cloned()
    }

    /// The forwarder of a published track.
    fn forwarder(&self, track_sid: &str) -> Option<Arc<Forwarder>> {
        self.participants()
            .iter()
            .find_map(|p| p.state.lock().unwrap().forwarders.get(track_sid).cloned())
    }

    fn others(&self, me: &Participant) -> Vec<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.sid != me.sid)
            .cloned()
            .collect()
    }

    /// Tells everyone else about `who` (joined, published, muted, left).
    fn broadcast_update(&self, who: &Participant) {
        let info = who.info();
        if info.permission.as_ref().is_some_and(|p| p.hidden) {
            return;
        }
        for other in self.others(who) {
            other.send(Resp::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
        }
    }

    /// Removes a participant: closes its peer connections, stops forwarding its tracks to
    /// others, removes its subscriptions, and tells everyone.
    pub async fn remove(&self, who: &Arc<Participant>) {
        let was_here = {
            let mut list = self.participants.lock().unwrap();
            let before = list.len();
            list.retain(|p| p.sid != who.sid);
            if list.is_empty() {
                *self.empty_since.lock().unwrap() = Some(Instant::now());
            }
            before != list.len()
        };
        if !was_here {
            return;
        }
        {
            let mut st = who.state.lock().unwrap();
            st.info.state = proto::participant_info::State::Disconnected as i32;
            st.info.version += 1;
        }
        let forwarders: Vec<_> = who
            .state
            .lock()
            .unwrap()
            .forwarders
            .values()
            .cloned()
            .collect();
        for f in forwarders {
            unpublish_forwarder(&f).await;
        }
        for other in self.participants() {
            other.drop_subscriptions_to(who).await;
            // And what the leaver subscribed to: no longer forwarded, no longer wanted.
            let forwarders: Vec<_> = other
                .state
                .lock()
                .unwrap()
                .forwarders
                .values()
                .cloned()
                .collect();
            for f in forwarders {
                who.unsubscribe(&f).await;
            }
        }
        let info = who.info();
        for other in self.participants() {
            other.send(Resp::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
        }
        let _ = who.publisher.close().await;
        let _ = who.subscriber.close().await;
        tracing::info!(room = %self.name, identity = %who.identity, "participant left");
    }

    /// Relays a data packet from `from` to the others (or to its destinations).
    async fn relay_data(&self, from: &Participant, label: &str, mut packet: proto::DataPacket) {
        packet.participant_identity = from.identity.clone();
        packet.participant_sid = from.sid.clone();
        let mut destinations = packet.destination_identities.clone();
        if let Some(proto::data_packet::Value::User(user)) = packet.value.as_mut() {
            user.participant_identity = from.identity.clone();
            user.participant_sid = from.sid.clone();
            destinations.extend(user.destination_identities.iter().cloned());
        }
        let bytes = Bytes::from(packet.encode_to_vec());
        for other in self.others(from) {
            if !destinations.is_empty() && !destinations.contains(&other.identity) {
                continue;
            }
            other.send_data(label, bytes.clone()).await;
        }
    }

    /// Sends a server data packet (e.g. Meet's `{"type":"participantWaiting"}`) to everyone.
    pub async fn send_server_data(&self, payload: Vec<u8>) {
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload,
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = Bytes::from(packet.encode_to_vec());
        for p in self.participants() {
            p.send_data("_reliable", bytes.clone()).await;
        }
    }

    /// The active speakers, loudest first, levels quantised as LiveKit does.
    pub fn speakers(&self) -> Vec<proto::SpeakerInfo> {
        let mut speakers: Vec<proto::SpeakerInfo> = self
            .participants()
            .iter()
            .filter_map(|p| p.speaking())
            .collect();
        speakers.sort_by(|a, b| b.level.total_cmp(&a.level));
        speakers
    }

    /// Sends `SpeakersChanged` (a delta) to everyone.
    pub fn announce_speakers(&self, speakers: Vec<proto::SpeakerInfo>) {
        for p in self.participants() {
            p.send(Resp::SpeakersChanged(proto::SpeakersChanged {
                speakers: speakers.clone(),
            }));
        }
    }
}

async fn unpublish_forwarder(f: &Arc<Forwarder>) {
    let downstream: Vec<Downstream> = std::mem::take(&mut *f.downstream.lock().await);
    for d in downstream {
        if let Some(sub) = d.subscriber.upgrade() {
            let _ = sub.subscriber.remove_track(&d.sender).await;
            sub.negotiate_subscriber();
        }
    }
}

/// A summary of one participant for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct ParticipantSummary {
    /// Sid.
    pub sid: String,
    /// Identity.
    pub identity: String,
    /// Name.
    pub name: String,
    /// Published tracks.
    pub tracks: Vec<TrackSummary>,
}

/// A summary of one published track for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct TrackSummary {
    /// Sid.
    pub sid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Source name.
    pub source: String,
    /// Codec mime type.
    pub mime_type: String,
    /// Muted.
    pub muted: bool,
    /// Packets received from the publisher.
    pub packets_in: u64,
    /// Bytes received from the publisher.
    pub bytes_in: u64,
    /// Packets forwarded (all subscribers).
    pub packets_out: u64,
    /// Keyframe requests sent to the publisher.
    pub keyframe_requests: u64,
    /// Number of subscribers.
    pub subscribers: usize,
    /// Each subscription, with what its subscriber asked for (`UpdateTrackSettings`).
    pub subscriptions: Vec<SubscriptionSummary>,
}

/// One subscriber of a track, for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct SubscriptionSummary {
    /// The subscriber's identity.
    pub identity: String,
    /// The subscriber disabled the track: it is not forwarded to it.
    pub disabled: bool,
    /// Width the subscriber asked for (0: not said).
    pub width: u32,
    /// Height the subscriber asked for (0: not said).
    pub height: u32,
    /// Frame rate the subscriber asked for (0: not said).
    pub fps: u32,
    /// Quality asked for without dimensions (`low`, `medium`, `high`, `off`).
    pub quality: String,
}

impl Participant {
    /// The current `ParticipantInfo`.
    pub fn info(&self) -> proto::ParticipantInfo {
        let st = self.state.lock().unwrap();
        let mut info = st.info.clone();
        info.tracks = st.tracks.iter().map(|(_, t)| t.clone()).collect();
        info.is_publisher = !info.tracks.is_empty();
        info
    }

    /// A summary with media counters.
    pub async fn summary(&self) -> ParticipantSummary {
        let (info, forwarders) = {
            let st = self.state.lock().unwrap();
            (st.info.clone(), st.forwarders.clone())
        };
        let tracks_info: Vec<proto::TrackInfo> = self.info().tracks;
        let mut tracks = Vec::new();
        for t in tracks_info {
            let f = forwarders.get(&t.sid);
            let mut subscriptions = Vec::new();
            if let Some(f) = f {
                let subscribers: Vec<Arc<Participant>> = f
                    .downstream
                    .lock()
                    .await
                    .iter()
                    .filter_map(|d| d.subscriber.upgrade())
                    .collect();
                for sub in subscribers {
                    let settings = sub
                        .state
                        .lock()
                        .unwrap()
                        .track_settings
                        .get(&t.sid)
                        .cloned();
                    let s = settings.unwrap_or(proto::UpdateTrackSettings {
                        quality: proto::VideoQuality::High as i32,
                        ..Default::default()
                    });
                    subscriptions.push(SubscriptionSummary {
                        identity: sub.identity.clone(),
                        disabled: s.disabled,
                        width: s.width,
                        height: s.height,
                        fps: s.fps,
                        quality: proto::VideoQuality::try_from(s.quality)
                            .map(|q| q.as_str_name().to_lowercase())
                            .unwrap_or_default(),
                    });
                }
            }
            let subscribers = subscriptions.len();
            let c = |get: fn(&MediaCounters) -> &AtomicU64| {
                f.map(|f| get(&f.counters).load(Ordering::Relaxed))
                    .unwrap_or(0)
            };
            tracks.push(TrackSummary {
                kind: if t.r#type == proto::TrackType::Audio as i32 {
                    "audio"
                } else {
                    "video"
                },
                source: proto::TrackSource::try_from(t.source)
                    .map(|s| s.as_str_name().to_lowercase())
                    .unwrap_or_default(),
                mime_type: t.mime_type.clone(),
                muted: t.muted,
                packets_in: c(|c| &c.packets_in),
                bytes_in: c(|c| &c.bytes_in),
                packets_out: c(|c| &c.packets_out),
                keyframe_requests: c(|c| &c.keyframe_requests),
                subscribers,
                subscriptions,
                sid: t.sid,
            });
        }
        ParticipantSummary {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: info.name,
            tracks,
        }
    }

    fn send(&self, msg: Resp) {
        let _ = self
            .outbound
            .lock()
            .unwrap()
            .send(Outbound::Signal(Box::new(proto::SignalResponse {
                message: Some(msg),
            })));
    }

    /// Attaches a new signalling connection (resume).
    pub fn replace_outbound(&self, outbound: mpsc::UnboundedSender<Outbound>) {
        *self.outbound.lock().unwrap() = outbound;
    }

    /// Whether `outbound` is this participant's current signalling connection.
    pub fn is_current_outbound(&self, outbound: &mpsc::UnboundedSender<Outbound>) -> bool {
        self.outbound.lock().unwrap().same_channel(outbound)
    }

    /// Asks the signalling connection to send a server `LeaveRequest` and close.
    pub fn close_with(&self, reason: proto::DisconnectReason) {
        let _ = self
            .outbound
            .lock()
            .unwrap()
            .send(Outbound::Close(proto::LeaveRequest {
                can_reconnect: false,
                reason: reason as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                regions: None,
            }));
    }

    /// Whether one of its peer connections has ever been connected (then it is kept when its
    /// signalling connection drops).
    pub fn has_ice_connected(&self) -> bool {
        self.ice_ever_connected.load(Ordering::Relaxed)
    }

    /// Whether one of its peer connections is connected now.
    fn is_transport_connected(&self) -> bool {
        [&self.publisher, &self.subscriber]
            .iter()
            .any(|pc| pc.connection_state() == RTCPeerConnectionState::Connected)
    }

    /// A peer connection failed (ICE found no more traffic for `ICE_DISCONNECTED_TIMEOUT` +
    /// `ICE_FAILED_TIMEOUT`): as LiveKit's `onAnyTransportFailed`, ask the client to resume
    /// (`Leave{action: RESUME}`, signalling closed), and remove the participant if no peer
    /// connection is connected again `DISCONNECT_CLEANUP` later.
    fn transport_failed(self: &Arc<Self>) {
        tracing::info!(identity = %self.identity, "peer connection failed: asking the client to resume");
        let _ = self
            .outbound
            .lock()
            .unwrap()
            .send(Outbound::Close(proto::LeaveRequest {
                can_reconnect: true,
                reason: proto::DisconnectReason::ConnectionTimeout as i32,
                action: proto::leave_request::Action::Resume as i32,
                regions: None,
            }));
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(DISCONNECT_CLEANUP).await;
            let Some(me) = me.upgrade() else { return };
            if me.is_transport_connected() {
                return;
            }
            if let Some(room) = me.room() {
                if room.find_sid(&me.sid).is_some() {
                    tracing::info!(identity = %me.identity, "peer connection still down after a failure: participant removed");
                    me.close_with(proto::DisconnectReason::ConnectionTimeout);
                    room.remove(&me).await;
                }
            }
        });
    }

    /// Reads a resumed client's `SyncState` (LiveKit `pkg/rtc/room.go`, `onSyncState`): every
    /// track it says it publishes must be one of ours, else only a full reconnect can bring
    /// the two views together. Returns the unknown track sid, if any.
    pub fn unknown_synced_track(&self, sync: &proto::SyncState) -> Option<String> {
        let st = self.state.lock().unwrap();
        sync.publish_tracks.iter().find_map(|published| {
            let Some(track) = published.track.as_ref() else {
                // The client did not say which track: LiveKit reconnects too.
                return Some(format!("(no TrackInfo for cid {})", published.cid));
            };
            (!st.tracks.iter().any(|(_, t)| t.sid == track.sid)).then(|| track.sid.clone())
        })
    }

    /// Asks the client for a full reconnect (`Leave{action: RECONNECT}`) and closes its
    /// signalling connection; the participant is removed.
    pub fn ask_full_reconnect(&self) {
        let _ = self
            .outbound
            .lock()
            .unwrap()
            .send(Outbound::Close(proto::LeaveRequest {
                can_reconnect: true,
                reason: proto::DisconnectReason::StateMismatch as i32,
                action: proto::leave_request::Action::Reconnect as i32,
                regions: None,
            }));
    }

    /// Closes the signalling connection without `LeaveRequest` (admin "force a resume"): the
    /// client sees its connection lost and resumes with `reconnect=1`; its participant is kept
    /// as long as its peer connections are up.
    pub fn drop_signalling(&self) {
        let _ = self.outbound.lock().unwrap().send(Outbound::Drop);
    }

    /// The room.
    pub fn room(&self) -> Option<Arc<Room>> {
        self.room.upgrade()
    }

    async fn send_data(&self, label: &str, bytes: Bytes) {
        let dc = self.subscriber_channels.lock().unwrap().get(label).cloned();
        if let Some(dc) = dc {
            if let Err(e) = dc.send(&bytes).await {
                tracing::debug!(identity = %self.identity, label, error = %e, "data packet not delivered");
            }
        }
    }

    fn accepts_candidate(&self, candidate: &str) -> bool {
        if self.ice_scope == IceScope::Any {
            return true;
        }
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
        let address = candidate.split_whitespace().nth(4).unwrap_or("");
        address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn wire_callbacks(self: &Arc<Self>) {
        for (pc, target) in [(&self.publisher, PUBLISHER), (&self.subscriber, SUBSCRIBER)] {
            let me = Arc::downgrade(self);
            pc.on_ice_candidate(Box::new(move |c| {
                let me = me.clone();
                Box::pin(async move {
                    let (Some(me), Some(c)) = (me.upgrade(), c) else { return };
                    let Ok(mut init) = c.to_json() else { return };
                    // Bundled: the candidate belongs to the first m-section, whatever its mid.
                    let pc = if target == PUBLISHER { &me.publisher } else { &me.subscriber };
                    let sdp = pc.local_description().await.map(|d| d.sdp).unwrap_or_default();
                    init.sdp_mid = Some(first_mid(&sdp).unwrap_or("0").to_owned());
                    let json = serde_json::to_string(&init).unwrap_or_default();
                    tracing::trace!(identity = %me.identity, target, candidate = %json, "local candidate");
                    me.send(Resp::Trickle(proto::TrickleRequest { candidate_init: json, target, r#final: false }));
                })
            }));
            let me = Arc::downgrade(self);
            pc.on_peer_connection_state_change(Box::new(move |s| {
                let me = me.clone();
                Box::pin(async move {
                    if let Some(me) = me.upgrade() {
                        tracing::debug!(identity = %me.identity, target, state = %s, "peer connection state");
                        if s == RTCPeerConnectionState::Connected {
                            me.ice_ever_connected.store(true, Ordering::Relaxed);
                        }
                        if s == RTCPeerConnectionState::Failed {
                            me.transport_failed();
                        }
                        if s == RTCPeerConnectionState::Connected && target == SUBSCRIBER {
                            let mut st = me.state.lock().unwrap();
                            if st.info.state != proto::participant_info::State::Active as i32 {
                                st.info.state = proto::participant_info::State::Active as i32;
                                st.info.version += 1;
                            }
                        }
                    }
                })
            }));
        }
        let me = Arc::downgrade(self);
        self.publisher
            .on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
                let me = me.clone();
                Box::pin(async move {
                    let label = dc.label().to_owned();
                    tracing::debug!(label, "publisher data channel opened");
                    dc.on_message(Box::new(move |msg| {
                        let me = me.clone();
                        let label = label.clone();
                        Box::pin(async move {
                            let Some(me) = me.upgrade() else { return };
                            if !me
                                .state
                                .lock()
                                .unwrap()
                                .info
                                .permission
                                .as_ref()
                                .is_some_and(|p| p.can_publish_data)
                            {
                                return;
                            }
                            match proto::DataPacket::decode(msg.data) {
                                Ok(packet) => {
                                    if let Some(room) = me.room() {
                                        room.relay_data(&me, &label, packet).await;
                                    }
                                }
                                Err(e) => {
                                    tracing::debug!(error = %e, "undecodable data packet dropped")
                                }
                            }
                        })
                    }));
                })
            }));
        let me = Arc::downgrade(self);
        self.publisher
            .on_track(Box::new(move |track, receiver, _transceiver| {
                let me = me.clone();
                Box::pin(async move {
                    if let Some(me) = me.upgrade() {
                        me.on_published_track(track, receiver).await;
                    }
                })
            }));
    }

    /// Handles `AddTrackRequest`: assigns a sid and answers `TrackPublishedResponse`.
    pub fn add_track(&self, req: proto::AddTrackRequest) {
        let allowed = {
            let st = self.state.lock().unwrap();
            st.info.permission.as_ref().is_some_and(|p| {
                p.can_publish
                    && (p.can_publish_sources.is_empty()
                        || p.can_publish_sources.contains(&req.source))
            })
        };
        // Refused as LiveKit refuses it (pkg/rtc/participant.go, `AddTrack`): a
        // `RequestResponse` carrying the request, so that the client fails that publication
        // instead of waiting for a `TrackPublished` that never comes.
        let refusal = if !allowed {
            Some(proto::request_response::Reason::NotAllowed)
        } else if req.r#type != proto::TrackType::Audio as i32
            && req.r#type != proto::TrackType::Video as i32
        {
            Some(proto::request_response::Reason::UnsupportedType)
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::info!(identity = %self.identity, cid = %req.cid, reason = reason.as_str_name(), "AddTrack refused");
            self.send(Resp::RequestResponse(proto::RequestResponse {
                reason: reason as i32,
                request: Some(proto::request_response::Request::AddTrack(req)),
                ..Default::default()
            }));
            return;
        }
        let sid = if req.sid.is_empty() {
            rand_id("TR_")
        } else {
            req.sid.clone()
        };
        let track = proto::TrackInfo {
            sid: sid.clone(),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: req.layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: req.layers.clone(),
            stereo: req.stereo,
            disable_red: req.disable_red,
            stream: req.stream.clone(),
            ..Default::default()
        };
        {
            let mut st = self.state.lock().unwrap();
            st.tracks.push((req.cid.clone(), track.clone()));
            st.info.version += 1;
        }
        self.send(Resp::TrackPublished(proto::TrackPublishedResponse {
            cid: req.cid,
            track: Some(track),
        }));
        if let Some(room) = self.room() {
            room.broadcast_update(self);
        }
    }

    /// Finds the track sid a remote track belongs to: by msid track id (the AddTrack cid), by
    /// mid mapping, else the first unbound track of the same kind.
    fn match_track(&self, track: &TrackRemote, mid: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        let kind = if track.kind() == RTPCodecType::Audio {
            proto::TrackType::Audio
        } else {
            proto::TrackType::Video
        } as i32;
        let id = track.id();
        if let Some((_, t)) = st.tracks.iter().find(|(cid, t)| *cid == id || t.sid == id) {
            return Some(t.sid.clone());
        }
        if let Some(cid) = st.mid_to_track.get(mid) {
            if let Some((_, t)) = st.tracks.iter().find(|(c, _)| c == cid) {
                return Some(t.sid.clone());
            }
        }
        st.tracks
            .iter()
            .find(|(_, t)| t.r#type == kind && !st.forwarders.contains_key(&t.sid))
            .map(|(_, t)| t.sid.clone())
    }

    async fn on_published_track(
        self: &Arc<Self>,
        track: Arc<TrackRemote>,
        receiver: Arc<webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver>,
    ) {
        let mid = String::new();
        let Some(track_sid) = self.match_track(&track, &mid) else {
            tracing::warn!(identity = %self.identity, track = %track.id(), "media for a track that was never announced with AddTrack: ignored");
            return;
        };
        let codec = track.codec();
        let audio_level_ext = track
            .params()
            .header_extensions
            .iter()
            .find(|e| e.uri == webrtc::sdp::extmap::AUDIO_LEVEL_URI)
            .map(|e| e.id as u8);
        let (forwarder, is_new) = {
            let mut st = self.state.lock().unwrap();
            match st.forwarders.get(&track_sid) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Forwarder {
                        track_sid: track_sid.clone(),
                        publisher: Arc::downgrade(self),
                        kind: track.kind(),
                        codec: codec.capability.clone(),
                        layers: Mutex::new(Vec::new()),
                        selection: Mutex::new(Selection::default()),
                        rewriter: Mutex::new(Rewriter::default()),
                        downstream: tokio::sync::Mutex::new(Vec::new()),
                        last_keyframe_request: Mutex::new(None),
                        audio_level_ext,
                        dynacast_sent: Mutex::new(Some(proto::VideoQuality::High)),
                        counters: MediaCounters::default(),
                    });
                    st.forwarders.insert(track_sid.clone(), f.clone());
                    if let Some((_, t)) = st.tracks.iter_mut().find(|(_, t)| t.sid == track_sid) {
                        t.mime_type = codec.capability.mime_type.clone();
                    }
                    st.info.version += 1;
                    (f, true)
                }
            }
        };
        let ssrc = track.ssrc();
        forwarder.add_layer(track.rid(), ssrc);
        tracing::info!(identity = %self.identity, track = %track_sid, rid = track.rid(), ssrc, mime = %codec.capability.mime_type, "publisher track flowing");
        if is_new {
            if let Some(room) = self.room() {
                room.broadcast_update(self);
                for other in room.others(self) {
                    if other.auto_subscribe {
                        other.subscribe(&forwarder).await;
                        other.negotiate_subscriber();
                    }
                }
            }
        }
        // Drain RTCP from the receiver so its interceptors run.
        tokio::spawn(async move { while receiver.read_rtcp().await.is_ok() {} });
        let f = forwarder.clone();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let pkt = match track.read_rtp().await {
                    Ok((pkt, _)) => {
                        failures = 0;
                        pkt
                    }
                    Err(e) if is_fatal_read_error(&e) => {
                        tracing::debug!(track = %f.track_sid, ssrc, error = %e, "publisher track closed");
                        break;
                    }
                    Err(e) => {
                        // A malformed or unexpected packet must not end the track.
                        failures += 1;
                        tracing::debug!(track = %f.track_sid, ssrc, error = %e, "publisher packet dropped");
                        if failures > 1000 {
                            break;
                        }
                        continue;
                    }
                };
                f.counters.packets_in.fetch_add(1, Ordering::Relaxed);
                f.counters
                    .bytes_in
                    .fetch_add((pkt.payload.len() + 12) as u64, Ordering::Relaxed);
                if let Some(id) = f.audio_level_ext {
                    if let Some(ext) = pkt.header.get_extension(id) {
                        if let Some(&b) = ext.first() {
                            // RFC 6464: -dBov in the low 7 bits; 127 is silence.
                            let dbov = f32::from(b & 0x7f);
                            let level = 10f32.powf(-dbov / 20.0);
                            if let Some(me) = me.upgrade() {
                                let mut st = me.state.lock().unwrap();
                                st.audio_level = st.audio_level * 0.9 + level * 0.1;
                            }
                        }
                    }
                }
                f.forward(ssrc, pkt).await;
            }
            tracing::debug!(track = %f.track_sid, ssrc, "publisher track ended");
            let all_ended = {
                let mut layers = f.layers.lock().unwrap();
                layers.retain(|l| l.ssrc != ssrc);
                layers.is_empty()
            };
            if all_ended {
                // webrtc-rs replaces a receiver when a renegotiation no longer matches its
                // SSRC; the track then comes back through a new on_track. Only a track that
                // stays gone was unpublished.
                tokio::time::sleep(REPUBLISH_GRACE).await;
                if f.layers.lock().unwrap().is_empty() {
                    if let Some(me) = me.upgrade() {
                        me.unpublish(&f.track_sid).await;
                    }
                }
            }
        });
    }

    /// The publisher stopped sending a track (renegotiated it away): tell it
    /// (`TrackUnpublishedResponse`), drop the subscriptions, and tell the room.
    async fn unpublish(&self, track_sid: &str) {
        let Some(room) = self.room() else { return };
        if room.find_sid(&self.sid).is_none() {
            return; // leaving: Room::remove does the rest
        }
        let forwarder = {
            let mut st = self.state.lock().unwrap();
            st.tracks.retain(|(_, t)| t.sid != track_sid);
            st.info.version += 1;
            st.forwarders.remove(track_sid)
        };
        if let Some(f) = forwarder {
            unpublish_forwarder(&f).await;
        }
        tracing::info!(identity = %self.identity, track = %track_sid, "track unpublished");
        self.send(Resp::TrackUnpublished(proto::TrackUnpublishedResponse {
            track_sid: track_sid.to_owned(),
        }));
        room.broadcast_update(self);
    }

    /// Adds a forwarded track to this participant's subscriber connection (no offer yet).
    async fn subscribe(self: &Arc<Self>, f: &Arc<Forwarder>) {
        let Some(publisher) = f.publisher.upgrade() else {
            return;
        };
        if publisher.sid == self.sid {
            return;
        }
        let local = Arc::new(TrackLocalStaticRTP::new(
            f.codec.clone(),
            f.track_sid.clone(),
            format!("{}|{}", publisher.sid, f.track_sid),
        ));
        let added = match self.subscriber.add_track(local.clone()).await {
            // webrtc-rs tries to reuse the transceiver of an earlier subscription to the same
            // track (same track id), whose sender lost its encodings when the track was
            // removed: give a re-subscription a transceiver of its own.
            Err(webrtc::Error::ErrRTPSenderNewTrackHasIncorrectEnvelope) => {
                match self
                    .subscriber
                    .add_transceiver_from_track(
                        local.clone(),
                        Some(webrtc::rtp_transceiver::RTCRtpTransceiverInit {
                            direction: webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection::Sendonly,
                            send_encodings: Vec::new(),
                        }),
                    )
                    .await
                {
                    Ok(t) => Ok(t.sender().await),
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        let sender = match added {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(identity = %self.identity, track = %f.track_sid, error = %e, "cannot add forwarded track");
                return;
            }
        };
        let weak_f = Arc::downgrade(f);
        let s = sender.clone();
        tokio::spawn(async move {
            while let Ok((packets, _)) = s.read_rtcp().await {
                let wants_keyframe = packets.iter().any(|p| {
                    let any = p.as_any();
                    any.downcast_ref::<PictureLossIndication>().is_some()
                        || any.downcast_ref::<FullIntraRequest>().is_some()
                });
                if wants_keyframe {
                    let Some(f) = weak_f.upgrade() else { break };
                    f.request_keyframe().await;
                }
            }
        });
        let disabled = self
            .state
            .lock()
            .unwrap()
            .track_settings
            .get(&f.track_sid)
            .is_some_and(|s| s.disabled);
        f.downstream.lock().await.push(Downstream {
            subscriber: Arc::downgrade(self),
            local,
            sender,
            disabled: Arc::new(AtomicBool::new(disabled)),
        });
        if f.kind == RTPCodecType::Video {
            f.request_keyframe().await;
        }
        f.update_dynacast();
        // SpeakersChanged carries only changes: a new subscriber is told at once whether its
        // publisher is speaking (LiveKit's `onSubscribeStatusChanged`).
        if let Some(speaking) = publisher.speaking() {
            self.send(Resp::SpeakersChanged(proto::SpeakersChanged {
                speakers: vec![speaking],
            }));
        }
    }

    /// This participant as an active speaker, if its audio level says it speaks.
    fn speaking(&self) -> Option<proto::SpeakerInfo> {
        let level = self.state.lock().unwrap().audio_level;
        (level > 0.05).then(|| proto::SpeakerInfo {
            sid: self.sid.clone(),
            level: crate::speakers::quantize(level),
            active: true,
        })
    }

    /// Removes this participant's subscription to `f` (if any); true when there was one.
    async fn unsubscribe(&self, f: &Arc<Forwarder>) -> bool {
        let mine: Vec<Downstream> = {
            let mut ds = f.downstream.lock().await;
            let (mine, others) = std::mem::take(&mut *ds).into_iter().partition(|d| {
                d.subscriber
                    .upgrade()
                    .is_none_or(|s: Arc<Participant>| s.sid == self.sid)
            });
            *ds = others;
            mine
        };
        for d in &mine {
            let _ = self.subscriber.remove_track(&d.sender).await;
        }
        if !mine.is_empty() {
            f.update_dynacast();
        }
        !mine.is_empty()
    }

    /// Handles `UpdateTrackSettings`: records what the subscriber wants of each track (shown
    /// by the admin API), stops or resumes forwarding a disabled track to it, and updates the
    /// publisher's dynacast qualities.
    pub async fn update_track_settings(&self, settings: proto::UpdateTrackSettings) {
        let Some(room) = self.room() else { return };
        for sid in &settings.track_sids {
            let one = proto::UpdateTrackSettings {
                track_sids: vec![sid.clone()],
                ..settings.clone()
            };
            tracing::debug!(identity = %self.identity, track = %sid, disabled = settings.disabled, width = settings.width, height = settings.height, "track settings");
            self.state
                .lock()
                .unwrap()
                .track_settings
                .insert(sid.clone(), one);
            let Some(f) = room.forwarder(sid) else {
                continue;
            };
            let mut resumed = false;
            for d in f.downstream.lock().await.iter() {
                if d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid) {
                    let was = d.disabled.swap(settings.disabled, Ordering::Relaxed);
                    resumed |= was && !settings.disabled;
                }
            }
            if resumed && f.kind == RTPCodecType::Video {
                // The subscriber's decoder needs a keyframe to start again.
                f.request_keyframe().await;
            }
            f.update_dynacast();
        }
    }

    /// Handles `UpdateSubscription`: subscribes to or unsubscribes from tracks (the track is
    /// added to or removed from the subscriber connection, which is renegotiated).
    pub async fn update_subscription(self: &Arc<Self>, update: proto::UpdateSubscription) {
        let Some(room) = self.room() else { return };
        let sids = update.track_sids.iter().chain(
            update
                .participant_tracks
                .iter()
                .flat_map(|p| p.track_sids.iter()),
        );
        let mut changed = false;
        for sid in sids {
            let Some(f) = room.forwarder(sid) else {
                tracing::debug!(identity = %self.identity, track = %sid, "subscription update for an unknown track");
                continue;
            };
            let subscribed = {
                let ds = f.downstream.lock().await;
                ds.iter()
                    .any(|d| d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid))
            };
            tracing::debug!(identity = %self.identity, track = %sid, subscribe = update.subscribe, "subscription update");
            if update.subscribe && !subscribed {
                self.subscribe(&f).await;
                changed = true;
            } else if !update.subscribe && subscribed {
                changed |= self.unsubscribe(&f).await;
            }
        }
        if changed {
            self.negotiate_subscriber();
        }
    }

    async fn drop_subscriptions_to(self: &Arc<Self>, publisher: &Participant) {
        let forwarders: Vec<_> = publisher
            .state
            .lock()
            .unwrap()
            .forwarders
            .values()
            .cloned()
            .collect();
        let mut changed = false;
        for f in forwarders {
            let mut ds = f.downstream.lock().await;
            let mine: Vec<usize> = ds
                .iter()
                .enumerate()
                .filter(|(_, d)| d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid))
                .map(|(i, _)| i)
                .collect();
            let dropped = !mine.is_empty();
            for i in mine.into_iter().rev() {
                let d = ds.remove(i);
                let _ = self.subscriber.remove_track(&d.sender).await;
                changed = true;
            }
            drop(ds);
            if dropped {
                f.update_dynacast();
            }
        }
        if changed {
            self.negotiate_subscriber();
        }
    }

    /// Starts (or queues) an SFU offer on the subscriber connection.
    pub fn negotiate_subscriber(self: &Arc<Self>) {
        {
            let mut st = self.state.lock().unwrap();
            if st.subscriber_offer_in_flight {
                st.subscriber_offer_again = true;
                return;
            }
            st.subscriber_offer_in_flight = true;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                let ice_restart = me.restart_subscriber_ice.swap(false, Ordering::Relaxed);
                let options = ice_restart.then(|| RTCOfferOptions {
                    ice_restart,
                    ..Default::default()
                });
                let offer = me.subscriber.create_offer(options).await?;
                me.subscriber.set_local_description(offer.clone()).await?;
                Ok::<_, webrtc::Error>(offer)
            }
            .await;
            match result {
                Ok(offer) => {
                    let id = me.offer_id.fetch_add(1, Ordering::Relaxed) + 1;
                    me.send(Resp::Offer(proto::SessionDescription {
                        r#type: "offer".into(),
                        sdp: offer.sdp,
                        id,
                        ..Default::default()
                    }));
                }
                Err(e) => {
                    tracing::warn!(identity = %me.identity, error = %e, "subscriber offer failed");
                    me.state.lock().unwrap().subscriber_offer_in_flight = false;
                }
            }
        });
    }

    /// Handles the client's answer to our subscriber offer.
    pub async fn subscriber_answer(self: &Arc<Self>, sdp: String) -> Result<(), SfuError> {
        let result = self
            .subscriber
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await;
        let again = {
            let mut st = self.state.lock().unwrap();
            st.subscriber_offer_in_flight = false;
            std::mem::take(&mut st.subscriber_offer_again)
        };
        result?;
        self.flush_candidates(SUBSCRIBER).await;
        if again {
            self.negotiate_subscriber();
        }
        Ok(())
    }

    /// Handles the client's publisher offer and answers it.
    pub async fn publisher_offer(
        self: &Arc<Self>,
        desc: proto::SessionDescription,
    ) -> Result<(), SfuError> {
        if !desc.mid_to_track_id.is_empty() {
            self.state.lock().unwrap().mid_to_track = desc.mid_to_track_id.clone();
        }
        let sdp = desc.sdp.clone();
        self.publisher
            .set_remote_description(RTCSessionDescription::offer(desc.sdp)?)
            .await?;
        self.prefer_offered_video_codecs(&sdp).await;
        self.flush_candidates(PUBLISHER).await;
        let answer = self.publisher.create_answer(None).await?;
        self.publisher.set_local_description(answer.clone()).await?;
        self.send(Resp::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.sdp,
            id: desc.id,
            ..Default::default()
        }));
        Ok(())
    }

    /// Answers each video section with the publisher's own codec order (webrtc-rs would
    /// otherwise answer in its registration order, VP8 first), so that a client asking for
    /// H.264 or VP9 gets it.
    async fn prefer_offered_video_codecs(&self, offer: &str) {
        for t in self.publisher.get_transceivers().await {
            if t.kind() != RTPCodecType::Video {
                continue;
            }
            let Some(mid) = t.mid() else { continue };
            let mut supported = Vec::new();
            for codec in offered_video_codecs(offer, &mid) {
                if t.set_codec_preferences(vec![codec.clone()]).await.is_ok() {
                    supported.push(codec);
                }
            }
            if let Err(e) = t.set_codec_preferences(supported).await {
                tracing::debug!(error = %e, "codec preferences not applied");
            }
        }
    }

    async fn flush_candidates(&self, target: i32) {
        let pending =
            std::mem::take(&mut self.state.lock().unwrap().pending_candidates[target as usize]);
        let pc = if target == PUBLISHER {
            &self.publisher
        } else {
            &self.subscriber
        };
        for c in pending {
            if let Err(e) = pc.add_ice_candidate(c).await {
                tracing::debug!(error = %e, "queued candidate refused");
            }
        }
    }

    /// Handles a trickled candidate from the client.
    pub async fn trickle(&self, req: proto::TrickleRequest) -> Result<(), SfuError> {
        if req.candidate_init.is_empty() {
            return Ok(());
        }
        let init: RTCIceCandidateInit = serde_json::from_str(&req.candidate_init)?;
        if init.candidate.is_empty() {
            return Ok(());
        }
        if !self.accepts_candidate(&init.candidate) {
            tracing::trace!(candidate = %init.candidate, "non-loopback candidate ignored");
            return Ok(());
        }
        let target = if req.target == SUBSCRIBER {
            SUBSCRIBER
        } else {
            PUBLISHER
        };
        let pc = if target == PUBLISHER {
            &self.publisher
        } else {
            &self.subscriber
        };
        if pc.remote_description().await.is_none() {
            self.state.lock().unwrap().pending_candidates[target as usize].push(init);
            return Ok(());
        }
        pc.add_ice_candidate(init).await?;
        Ok(())
    }

    /// Mutes or unmutes one of this participant's tracks. `by_server` also tells the client
    /// (server-initiated mute, which the client must obey).
    pub fn set_muted(&self, track_sid: &str, muted: bool, by_server: bool) -> bool {
        let found = {
            let mut st = self.state.lock().unwrap();
            let found = st
                .tracks
                .iter_mut()
                .find(|(_, t)| t.sid == track_sid)
                .map(|(_, t)| t.muted = muted)
                .is_some();
            if found {
                st.info.version += 1;
            }
            found
        };
        if found {
            if by_server {
                self.send(Resp::Mute(proto::MuteTrackRequest {
                    sid: track_sid.to_owned(),
                    muted,
                }));
            }
            if let Some(room) = self.room() {
                room.broadcast_update(self);
            }
        }
        found
    }

    /// Sets (or, with an empty value, clears) an attribute and tells the room, as the LiveKit
    /// server API `UpdateParticipant` does for Meet's backend.
    pub fn set_attribute(&self, key: &str, value: &str) {
        {
            let mut st = self.state.lock().unwrap();
            if value.is_empty() {
                st.info.attributes.remove(key);
            } else {
                st.info.attributes.insert(key.to_owned(), value.to_owned());
            }
            st.info.version += 1;
        }
        self.announce_self();
    }

    /// Renames the participant and tells the room.
    pub fn set_name(&self, name: &str) {
        {
            let mut st = self.state.lock().unwrap();
            st.info.name = name.to_owned();
            st.info.version += 1;
        }
        self.announce_self();
    }

    /// Sends this participant's info to everyone, itself included.
    fn announce_self(&self) {
        let info = self.info();
        self.send(Resp::Update(proto::ParticipantUpdate {
            participants: vec![info],
        }));
        if let Some(room) = self.room() {
            room.broadcast_update(self);
        }
    }

    /// Handles `UpdateMetadata` when the token allows it.
    pub fn sync_info_to_room(&self) {
        if let Some(room) = self.room() {
            room.broadcast_update(self);
        }
    }

    /// Answers a resumed connection: `ReconnectResponse`, then a fresh subscriber offer.
    pub fn resumed(self: &Arc<Self>) {
        self.send(Resp::Reconnect(reconnect_response()));
        self.state.lock().unwrap().subscriber_offer_in_flight = false;
        self.restart_subscriber_ice.store(true, Ordering::Relaxed);
        self.negotiate_subscriber();
    }

    /// Sends a signal response (pong, refresh token...).
    pub fn reply(&self, msg: Resp) {
        self.send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<proto::VideoLayer> {
        [(0, 320, 180), (1, 640, 360), (2, 1280, 720)]
            .iter()
            .map(|&(quality, width, height)| proto::VideoLayer {
                quality,
                width,
                height,
                ..Default::default()
            })
            .collect()
    }

    fn settings(
        disabled: bool,
        width: u32,
        height: u32,
        quality: i32,
    ) -> proto::UpdateTrackSettings {
        proto::UpdateTrackSettings {
            disabled,
            width,
            height,
            quality,
            ..Default::default()
        }
    }

    #[test]
    fn a_subscriber_gets_the_smallest_layer_covering_its_window() {
        use proto::VideoQuality::*;
        let l = layers();
        assert_eq!(wanted_quality(None, &l), Some(High));
        assert_eq!(
            wanted_quality(Some(&settings(false, 378, 213, 0)), &l),
            Some(Medium)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 320, 180, 0)), &l),
            Some(Low)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 1920, 1080, 0)), &l),
            Some(High)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 0, 0, 1)), &l),
            Some(Medium)
        );
        assert_eq!(wanted_quality(Some(&settings(false, 0, 0, 3)), &l), None);
        assert_eq!(
            wanted_quality(Some(&settings(true, 1280, 720, 2)), &l),
            None
        );
    }

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

    #[test]
    fn the_publisher_is_asked_for_every_quality_up_to_the_best_wanted() {
        let enabled = |max| -> Vec<bool> {
            subscribed_qualities(max)
                .iter()
                .map(|q| q.enabled)
                .collect()
        };
        assert_eq!(
            enabled(Some(proto::VideoQuality::Medium)),
            [true, true, false]
        );
        assert_eq!(enabled(Some(proto::VideoQuality::High)), [true, true, true]);
        assert_eq!(enabled(None), [false, false, false]);
    }
}

//! The two WebRTC peer connections of a LiveKit participant (webrtc-rs 0.17):
//! the publisher (we offer; our H.264 and Opus tracks and the `_reliable`/`_lossy` data
//! channels) and the subscriber (the SFU offers; remote tracks and the SFU's data channels).
//!
//! Callbacks never touch session state: they post [`RtcEvent`]s to the session loop.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use livekit_protocol as proto;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::{
    configure_twcc_sender_only, register_default_interceptors,
};
use webrtc::api::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

/// `SignalTarget::PUBLISHER`.
pub const PUBLISHER: i32 = proto::SignalTarget::Publisher as i32;
/// `SignalTarget::SUBSCRIBER`.
pub const SUBSCRIBER: i32 = proto::SignalTarget::Subscriber as i32;

/// The H.264 we send: constrained baseline, packetization-mode 1 (what every browser decodes).
pub fn h264_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// The Opus we send: 48 kHz, in-band FEC.
pub fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [
        ("goog-remb", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
        ("transport-cc", ""),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    })
    .collect()
}

/// The codecs the subscriber connection accepts: only what the receiver decodes
/// ([`visio_room_media::RemoteCodec::from_mime_type`]). LiveKit enables AV1 and H.265 by default; a receiver that
/// advertised them (webrtc-rs's default list does) could be sent a codec it cannot decode,
/// where advertising only these makes the SFU fall back to the publisher's backup codec
/// (Meet: VP9 with a VP8 backup). GStreamer 1.22 on Debian 12 has an AV1 decoder but no AV1
/// depayloader; H.265 is not received. Audio is Opus, plain or inside RED (RFC 2198, what
/// livekit-client sends by default; the receiver depacketizes it to the primary Opus).
/// No G.711/G.722 and no ULPFEC: nothing in a LiveKit room sends them.
pub fn subscriber_codecs() -> Vec<(RTCRtpCodecParameters, RTPCodecType)> {
    let video = |mime: &str, fmtp: &str, payload_type: u8| {
        (
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: mime.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.to_owned(),
                    rtcp_feedback: video_feedback(),
                },
                payload_type,
                ..Default::default()
            },
            RTPCodecType::Video,
        )
    };
    let h264 = |profile: &str, mode: u8| {
        format!("level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={profile}")
    };
    vec![
        (
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        ),
        (
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_RED.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    // The primary and the redundant blocks are Opus.
                    sdp_fmtp_line: format!("{OPUS_PAYLOAD_TYPE}/{OPUS_PAYLOAD_TYPE}"),
                    rtcp_feedback: vec![],
                },
                payload_type: 63,
                ..Default::default()
            },
            RTPCodecType::Audio,
        ),
        video(MIME_TYPE_VP8, "", 96),
        // Profile 0 is what browsers send, and all a hardware VP9 decoder is sure to do.
        video(MIME_TYPE_VP9, "profile-id=0", 98),
        video(MIME_TYPE_H264, &h264("42001f", 1), 102),
        video(MIME_TYPE_H264, &h264("42001f", 0), 127),
        video(MIME_TYPE_H264, &h264("42e01f", 1), 125),
        video(MIME_TYPE_H264, &h264("42e01f", 0), 108),
        video(MIME_TYPE_H264, &h264("4d001f", 1), 104),
        video(MIME_TYPE_H264, &h264("640032", 1), 123),
    ]
}

/// Opus's payload type on both connections.
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// RFC 2198 redundant audio.
const MIME_TYPE_RED: &str = "audio/red";

/// The WebRTC stacks: one for publishing (H.264 + Opus only, so the SFU cannot pick another
/// codec for our tracks), one for subscribing ([`subscriber_codecs`]).
pub struct Apis {
    publisher: API,
    subscriber: API,
    loopback_only: bool,
}

fn settings(loopback_only: bool) -> SettingEngine {
    let mut settings = SettingEngine::default();
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    if loopback_only {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    }
    settings
}

impl Apis {
    /// Builds both stacks; `loopback_only` keeps ICE on 127.0.0.0/8.
    pub fn new(loopback_only: bool) -> Result<Self, webrtc::Error> {
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                capability: h264_capability(),
                payload_type: 102,
                ..Default::default()
            },
            RTPCodecType::Video,
        )?;
        media.register_codec(
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        // Number our packets transport-wide so the SFU's TWCC feedback tells which were lost
        // (the bitrate controller's loss signal, see `congestion`).
        let registry = configure_twcc_sender_only(registry, &mut media)?;
        let publisher = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings(loopback_only))
            .build();

        let mut media = MediaEngine::default();
        for (codec, kind) in subscriber_codecs() {
            media.register_codec(codec, kind)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let subscriber = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings(loopback_only))
            .build();
        Ok(Apis {
            publisher,
            subscriber,
            loopback_only,
        })
    }

    /// Whether ICE is restricted to loopback.
    pub fn loopback_only(&self) -> bool {
        self.loopback_only
    }
}

/// What the peer connections report to the session loop.
pub enum RtcEvent {
    /// A local ICE candidate to trickle (`target` PUBLISHER or SUBSCRIBER; JSON init).
    Candidate {
        /// Which connection.
        target: i32,
        /// `{"candidate","sdpMid","sdpMLineIndex"}`.
        json: String,
    },
    /// A peer connection changed state.
    State {
        /// Which connection.
        target: i32,
        /// The new state.
        state: RTCPeerConnectionState,
    },
    /// The SFU added a remote track to the subscriber connection.
    Track(Arc<TrackRemote>),
    /// A data packet arrived on one of the SFU's data channels.
    Data(Bytes),
    /// A viewer asked for a keyframe of our video (PLI/FIR forwarded by the SFU).
    KeyframeRequested,
    /// The SFU's RTCP receiver report about our video.
    VideoReport {
        /// Fraction lost since the previous report (RTCP scale: 256 = 100 %).
        fraction_lost: u8,
        /// Round-trip time, when our sender reports make it computable.
        rtt_ms: Option<u32>,
    },
    /// The SFU's REMB: the most it wants us to send, bit/s.
    Remb(f32),
    /// The SFU's transport-wide congestion control feedback: of `reported` packets,
    /// `received` arrived.
    TransportFeedback {
        /// Packets the feedback covers.
        reported: u32,
        /// Of which arrived.
        received: u32,
    },
}

/// One participant connection's peer connections.
pub struct Transport {
    /// Uplink.
    pub publisher: Arc<RTCPeerConnection>,
    /// Downlink.
    pub subscriber: Arc<RTCPeerConnection>,
    /// Our `_reliable` channel (kept open for the life of the connection).
    pub reliable: Arc<RTCDataChannel>,
    /// Our `_lossy` channel.
    pub lossy: Arc<RTCDataChannel>,
}

fn to_ice_servers(servers: &[proto::IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect()
}

/// Whether a trickled candidate may be used (in loopback mode only loopback addresses).
pub fn candidate_allowed(loopback_only: bool, candidate: &str) -> bool {
    if !loopback_only {
        return true;
    }
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    let address = candidate
        .trim_start_matches("a=")
        .split_whitespace()
        .nth(4)
        .unwrap_or("");
    address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Transport {
    /// Creates both connections with their callbacks, our data channels, and our local
    /// tracks (`(track, is_video)`) on the publisher.
    pub async fn new(
        apis: &Apis,
        ice_servers: &[proto::IceServer],
        tracks: &[(Arc<TrackLocalStaticRTP>, bool)],
        events: mpsc::UnboundedSender<RtcEvent>,
    ) -> Result<Self, webrtc::Error> {
        let config = RTCConfiguration {
            ice_servers: if apis.loopback_only {
                Vec::new()
            } else {
                to_ice_servers(ice_servers)
            },
            ..Default::default()
        };
        let publisher = Arc::new(apis.publisher.new_peer_connection(config.clone()).await?);
        let subscriber = Arc::new(apis.subscriber.new_peer_connection(config).await?);
        for (pc, target) in [(&publisher, PUBLISHER), (&subscriber, SUBSCRIBER)] {
            let tx = events.clone();
            pc.on_ice_candidate(Box::new(move |c| {
                let tx = tx.clone();
                Box::pin(async move {
                    let Some(c) = c else { return };
                    let Ok(mut init) = c.to_json() else { return };
                    // Bundled: every candidate belongs to the first m-section.
                    init.sdp_mid = Some("0".to_owned());
                    init.sdp_mline_index = Some(0);
                    if let Ok(json) = serde_json::to_string(&init) {
                        let _ = tx.send(RtcEvent::Candidate { target, json });
                    }
                })
            }));
            let tx = events.clone();
            pc.on_peer_connection_state_change(Box::new(move |state| {
                let _ = tx.send(RtcEvent::State { target, state });
                Box::pin(async {})
            }));
        }
        let tx = events.clone();
        subscriber.on_track(Box::new(move |track, receiver, _| {
            let _ = tx.send(RtcEvent::Track(track));
            // Drain RTCP so the receiver's interceptors (reports, NACK) run.
            tokio::spawn(async move { while receiver.read_rtcp().await.is_ok() {} });
            Box::pin(async {})
        }));
        let tx = events.clone();
        subscriber.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let tx = tx.clone();
            Box::pin(async move {
                tracing::debug!(label = dc.label(), "SFU data channel open");
                dc.on_message(Box::new(move |msg| {
                    let _ = tx.send(RtcEvent::Data(msg.data));
                    Box::pin(async {})
                }));
            })
        }));

        for (track, is_video) in tracks {
            let sender = publisher.add_track(track.clone() as _).await?;
            let tx = events.clone();
            let is_video = *is_video;
            tokio::spawn(async move {
                let ssrc = sender
                    .get_parameters()
                    .await
                    .encodings
                    .first()
                    .map(|e| e.ssrc);
                while let Ok((packets, _)) = sender.read_rtcp().await {
                    let mut wants_keyframe = false;
                    for p in &packets {
                        let any = p.as_any();
                        // Transport-wide: it may come through the audio sender too.
                        if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
                            let _ = tx.send(RtcEvent::TransportFeedback {
                                reported: u32::from(cc.packet_status_count),
                                received: cc.recv_deltas.len() as u32,
                            });
                            continue;
                        }
                        if !is_video {
                            continue;
                        }
                        if any.downcast_ref::<PictureLossIndication>().is_some()
                            || any.downcast_ref::<FullIntraRequest>().is_some()
                        {
                            wants_keyframe = true;
                        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                            for r in rr
                                .reports
                                .iter()
                                .filter(|r| ssrc.is_none_or(|s| s == r.ssrc))
                            {
                                let _ = tx.send(RtcEvent::VideoReport {
                                    fraction_lost: r.fraction_lost,
                                    rtt_ms: crate::congestion::rtt_from_report(
                                        std::time::SystemTime::now(),
                                        r.last_sender_report,
                                        r.delay,
                                    ),
                                });
                            }
                        } else if let Some(remb) =
                            any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
                        {
                            let _ = tx.send(RtcEvent::Remb(remb.bitrate));
                        }
                    }
                    if wants_keyframe && tx.send(RtcEvent::KeyframeRequested).is_err() {
                        break;
                    }
                }
            });
        }
        let reliable = publisher
            .create_data_channel(
                "_reliable",
                Some(RTCDataChannelInit {
                    ordered: Some(true),
                    ..Default::default()
                }),
            )
            .await?;
        let lossy = publisher
            .create_data_channel(
                "_lossy",
                Some(RTCDataChannelInit {
                    ordered: Some(false),
                    max_retransmits: Some(0),
                    ..Default::default()
                }),
            )
            .await?;
        Ok(Transport {
            publisher,
            subscriber,
            reliable,
            lossy,
        })
    }

    /// The connection for `target`.
    pub fn pc(&self, target: i32) -> &Arc<RTCPeerConnection> {
        if target == SUBSCRIBER {
            &self.subscriber
        } else {
            &self.publisher
        }
    }

    /// Adds a trickled remote candidate.
    pub async fn add_candidate(&self, target: i32, json: &str) -> Result<(), webrtc::Error> {
        let init: RTCIceCandidateInit = match serde_json::from_str(json) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable trickled candidate ignored");
                return Ok(());
            }
        };
        if init.candidate.is_empty() {
            return Ok(());
        }
        self.pc(target).add_ice_candidate(init).await
    }

    /// Asks the sender of a remote video for a keyframe.
    pub async fn request_keyframe(&self, media_ssrc: u32) {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = self.subscriber.write_rtcp(&[Box::new(pli)]).await {
            tracing::debug!(error = %e, "PLI not sent");
        }
    }

    /// Closes both connections.
    pub async fn close(&self) {
        let _ = self.publisher.close().await;
        let _ = self.subscriber.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_candidates_are_used_in_loopback_mode() {
        let lo = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host";
        let lan = "candidate:1 1 udp 2130706431 192.168.1.4 50000 typ host";
        assert!(candidate_allowed(true, lo));
        assert!(!candidate_allowed(true, lan));
        assert!(candidate_allowed(false, lan));
    }

    #[test]
    fn the_subscriber_advertises_only_codecs_the_receiver_decodes() {
        let codecs = subscriber_codecs();
        for (codec, kind) in &codecs {
            let mime = &codec.capability.mime_type;
            let decoded = visio_room_media::RemoteCodec::from_mime_type(mime)
                .unwrap_or_else(|| panic!("{mime} is advertised but not decoded"));
            assert_eq!(decoded.is_video(), *kind == RTPCodecType::Video, "{mime}");
        }
        let mimes: Vec<String> = codecs
            .iter()
            .map(|(c, _)| c.capability.mime_type.to_ascii_lowercase())
            .collect();
        for needed in [
            "video/vp8",
            "video/vp9",
            "video/h264",
            "audio/opus",
            "audio/red",
        ] {
            assert!(mimes.iter().any(|m| m == needed), "{needed} missing");
        }
        let mut payload_types: Vec<u8> = codecs.iter().map(|(c, _)| c.payload_type).collect();
        payload_types.sort_unstable();
        payload_types.dedup();
        assert_eq!(
            payload_types.len(),
            codecs.len(),
            "payload types are unique"
        );
    }

    /// The rtpmap encodings of an SDP's m-section of `kind` ("audio", "video").
    fn encodings(sdp: &str, kind: &str) -> Vec<String> {
        let mut in_section = false;
        let mut out = Vec::new();
        for line in sdp.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                in_section = m.starts_with(kind);
            } else if in_section {
                if let Some(map) = line.strip_prefix("a=rtpmap:") {
                    if let Some((_, encoding)) = map.split_once(' ') {
                        out.push(encoding.split('/').next().unwrap_or("").to_owned());
                    }
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn the_answer_to_an_sfu_offering_av1_and_h265_keeps_only_what_the_room_decodes() {
        use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
        use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
        // An SFU offering webrtc-rs's full list (AV1, H.265, VP9, VP8, H.264, G.711, ULPFEC)
        // and RED, like a LiveKit server with its default codecs.
        let mut media = MediaEngine::default();
        media.register_default_codecs().unwrap();
        let red = subscriber_codecs()
            .into_iter()
            .find(|(c, _)| c.capability.mime_type == MIME_TYPE_RED)
            .unwrap();
        media.register_codec(red.0, red.1).unwrap();
        let sfu = APIBuilder::new()
            .with_media_engine(media)
            .build()
            .new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap();
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            sfu.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: vec![],
                }),
            )
            .await
            .unwrap();
        }
        let offer = sfu.create_offer(None).await.unwrap();
        let offered = encodings(&offer.sdp, "video");
        assert!(offered.iter().any(|e| e == "AV1"), "{offered:?}");

        let apis = Apis::new(true).unwrap();
        let room = apis
            .subscriber
            .new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap();
        room.set_remote_description(offer).await.unwrap();
        let answer = room.create_answer(None).await.unwrap();
        let mut video = encodings(&answer.sdp, "video");
        video.sort();
        video.dedup();
        assert_eq!(video, ["H264", "VP8", "VP9"], "{}", answer.sdp);
        let mut audio = encodings(&answer.sdp, "audio");
        audio.sort();
        audio.dedup();
        assert_eq!(audio, ["opus", "red"], "{}", answer.sdp);
        room.close().await.unwrap();
        sfu.close().await.unwrap();
    }
}

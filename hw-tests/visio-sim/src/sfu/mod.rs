//! The selective forwarding unit: rooms, participants, their two peer connections each
//! (publisher: the client offers; subscriber: the SFU offers), RTP forwarding from every
//! published track to every other participant (auto-subscribe), RTCP keyframe requests back to
//! the publisher, and data packet relay. Signalling (the WebSocket) lives in `signal.rs`; this
//! module only sends `SignalResponse`s into each participant's outbound queue.
//!
//! Here: the `Sfu` (the WebRTC API and the rooms) and a participant's join. One concept per
//! submodule:
//! - `room`: a room's participants, updates to them, a participant's removal;
//! - `participant`: one participant (info, mutes, attributes, resume, transport failure);
//! - `ice`: candidates both ways, ICE timeouts, peer connection states;
//! - `ice_tcp`: the ICE/TCP front (passive TCP candidates relayed to the UDP ones);
//! - `negotiation`: SDP offer/answer on the publisher and subscriber connections;
//! - `publish`: `AddTrack`, incoming media matched to its track, unpublishing;
//! - `forward`: one `Forwarder` per published track, RTP rewritten for each subscriber;
//! - `simulcast`: which layer is forwarded, switched at keyframes;
//! - `keyframes`: PLI/FIR from subscribers and the SFU's own keyframe requests;
//! - `subscription`: subscribing, `UpdateSubscription`, `UpdateTrackSettings`;
//! - `dynacast`: `SubscribedQualityUpdate` to publishers;
//! - `data`: data packet relay;
//! - `summary`: what the admin API shows.

// Protocol fields marked deprecated (TrackInfo.layers/simulcast/stereo, DataPacket.kind,
// UserPacket identities) are still what current clients read: a faithful server fills them.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};

mod data;
mod dynacast;
mod forward;
mod ice;
mod ice_tcp;
mod keyframes;
mod negotiation;
mod participant;
mod publish;
mod red;
mod room;
mod simulcast;
mod subscription;
mod summary;
mod svc;

use participant::ParticipantState;

pub use forward::{Forwarder, MediaCounters};
pub use ice::{IceAgent, IceScope};
pub use ice_tcp::{binding_request_username, read_frame, write_frame, IceTcpError, IceTcpFront};
pub use participant::Participant;
pub use room::Room;
pub use summary::{ParticipantSummary, SubscriptionSummary, TrackSummary};

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
    /// The ICE servers (TURN) every participant is told about, in `JoinResponse` and
    /// `ReconnectResponse`, as LiveKit announces its TURN servers (pkg/service/rtcservice.go,
    /// pkg/rtc/transportmanager.go).
    ice_servers: Vec<proto::IceServer>,
    /// The ICE/TCP front, if ICE over TCP is offered (`--ice-tcp-port`).
    ice_tcp: Option<Arc<IceTcpFront>>,
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

impl Sfu {
    /// An SFU restricted to `ice_scope` candidates, running `ice_agent`.
    pub fn new(ice_scope: IceScope, ice_agent: IceAgent) -> Result<Self, SfuError> {
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        // RED after Opus, as LiveKit registers it (livekit/livekit `pkg/rtc/mediaengine.go`,
        // `registerCodecs`; RED is in the default `room.enabled_codecs`, `pkg/config/config.go`).
        media.register_codec(red::red_codec(), RTPCodecType::Audio)?;
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
        let settings = ice::settings(ice_scope, ice_agent);
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
            ice_servers: Vec::new(),
            ice_tcp: None,
        })
    }

    /// The same, announcing `servers` to every participant.
    pub fn with_ice_servers(mut self, servers: Vec<proto::IceServer>) -> Self {
        self.ice_servers = servers;
        self
    }

    /// The same, offering ICE over TCP through `front`: every peer connection announces a
    /// passive TCP candidate on its port.
    pub fn with_ice_tcp(mut self, front: Arc<IceTcpFront>) -> Self {
        self.ice_tcp = Some(front);
        self
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
            ice_servers: self.ice_servers.clone(),
            ice_tcp: self.ice_tcp.clone(),
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
            ice_servers: self.ice_servers.clone(),
            enabled_publish_codecs: [
                "audio/opus",
                "audio/red",
                "video/VP8",
                "video/VP9",
                "video/H264",
            ]
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
                let forwarders = other.forwarders();
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

fn server_info() -> proto::ServerInfo {
    proto::ServerInfo {
        edition: proto::server_info::Edition::Standard as i32,
        version: SERVER_VERSION.into(),
        protocol: PROTOCOL_VERSION,
        node_id: "visio-sim".into(),
        ..Default::default()
    }
}

/// The `ReconnectResponse` a resumed participant receives, with the ICE servers again.
pub fn reconnect_response(ice_servers: &[proto::IceServer]) -> proto::ReconnectResponse {
    proto::ReconnectResponse {
        server_info: Some(server_info()),
        ice_servers: ice_servers.to_vec(),
        ..Default::default()
    }
}

//! A participant: its two peer connections, its signalling queue, and what it is (info,
//! attributes, mutes) and may do (resume, full reconnect, removal after a transport failure).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;

use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;

use super::forward::Forwarder;
use super::room::Room;
use super::{reconnect_response, IceScope, Outbound};

/// The mutable part of a participant.
pub(super) struct ParticipantState {
    pub(super) info: proto::ParticipantInfo,
    /// Published tracks by sid, with the client's cid.
    pub(super) tracks: Vec<(String, proto::TrackInfo)>,
    pub(super) forwarders: HashMap<String, Arc<Forwarder>>,
    pub(super) subscriber_offer_in_flight: bool,
    pub(super) subscriber_offer_again: bool,
    pub(super) pending_candidates: [Vec<RTCIceCandidateInit>; 2],
    pub(super) mid_to_track: HashMap<String, String>,
    pub(super) audio_level: f32,
    /// This participant's last `UpdateTrackSettings` per subscribed track sid.
    pub(super) track_settings: HashMap<String, proto::UpdateTrackSettings>,
}

/// A participant in a room.
pub struct Participant {
    /// `PA_...` sid.
    pub sid: String,
    /// Identity.
    pub identity: String,
    pub(super) room: Weak<Room>,
    pub(super) outbound: Mutex<mpsc::UnboundedSender<Outbound>>,
    pub(super) publisher: Arc<RTCPeerConnection>,
    pub(super) subscriber: Arc<RTCPeerConnection>,
    pub(super) subscriber_channels: Mutex<HashMap<String, Arc<RTCDataChannel>>>,
    pub(super) state: Mutex<ParticipantState>,
    pub(super) offer_id: AtomicU32,
    /// The next subscriber offer restarts ICE (after a resume, like LiveKit).
    pub(super) restart_subscriber_ice: AtomicBool,
    /// One of the two peer connections has been connected at least once: the participant then
    /// outlives its signalling connection (LiveKit's `HasICEConnected`).
    pub(super) ice_ever_connected: AtomicBool,
    pub(super) auto_subscribe: bool,
    pub(super) ice_scope: IceScope,
    /// The ICE servers announced to it (again on resume).
    pub(super) ice_servers: Vec<proto::IceServer>,
    /// The ICE/TCP front its peer connections register with, if ICE over TCP is offered.
    pub(super) ice_tcp: Option<Arc<super::IceTcpFront>>,
}

/// After a peer connection failed, how long the client has to bring one back (by resuming)
/// before the participant is removed (LiveKit `disconnectCleanupDuration`, participant.go).
const DISCONNECT_CLEANUP: Duration = Duration::from_secs(5);

impl Participant {
    /// The forwarders of what it publishes, now (a copy: the lock is not held).
    pub(super) fn forwarders(&self) -> Vec<Arc<Forwarder>> {
        self.state
            .lock()
            .unwrap()
            .forwarders
            .values()
            .cloned()
            .collect()
    }

    /// The current `ParticipantInfo`.
    pub fn info(&self) -> proto::ParticipantInfo {
        let st = self.state.lock().unwrap();
        let mut info = st.info.clone();
        info.tracks = st.tracks.iter().map(|(_, t)| t.clone()).collect();
        info.is_publisher = !info.tracks.is_empty();
        info
    }

    pub(super) fn send(&self, msg: Resp) {
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
    pub(super) fn transport_failed(self: &Arc<Self>) {
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

    /// Wires the peer connections' callbacks: ICE, data channels, published tracks.
    pub(super) fn wire_callbacks(self: &Arc<Self>) {
        self.wire_ice();
        self.wire_data_channels();
        self.wire_published_tracks();
    }

    /// This participant as an active speaker, if its audio level says it speaks.
    pub(super) fn speaking(&self) -> Option<proto::SpeakerInfo> {
        let level = self.state.lock().unwrap().audio_level;
        (level > 0.05).then(|| proto::SpeakerInfo {
            sid: self.sid.clone(),
            level: crate::speakers::quantize(level),
            active: true,
        })
    }

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
        self.send(Resp::Reconnect(reconnect_response(&self.ice_servers)));
        self.state.lock().unwrap().subscriber_offer_in_flight = false;
        self.restart_subscriber_ice.store(true, Ordering::Relaxed);
        self.negotiate_subscriber();
    }

    /// Sends a signal response (pong, refresh token...).
    pub fn reply(&self, msg: Resp) {
        self.send(msg);
    }
}

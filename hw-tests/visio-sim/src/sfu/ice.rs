//! ICE: the SFU's candidates trickled to the client (with a passive TCP one per UDP host
//! candidate when the ICE/TCP front runs), the client's trickled candidates (kept
//! to loopback unless `IceScope::Any`, queued until the remote description is set), LiveKit's
//! ICE timeouts, and the peer connection states (connected once: the participant outlives its
//! signalling; failed: the client is asked to resume).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::ice_transport::ice_protocol::RTCIceProtocol;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

use super::ice_tcp;
use super::participant::Participant;
use super::SfuError;

/// How ICE candidates are restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceScope {
    /// Gather, announce and accept only loopback candidates (tests and single-machine demos).
    Loopback,
    /// Any interface (a person's browser on another machine).
    Any,
}

/// Which ICE agent the SFU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceAgent {
    /// A full agent, as a LiveKit server by default (`rtc.use_ice_lite` is false in
    /// livekit/mediatransportutil `pkg/rtcconfig/config.go`): the SFU runs its own
    /// connectivity checks, and is the controlling agent (the one that nominates) on the
    /// subscriber connection it offers; the client controls the publisher connection.
    Full,
    /// ICE-lite (`a=ice-lite`, LiveKit's `use_ice_lite: true`): the SFU only answers
    /// connectivity checks, and the client is the controlling agent on both connections.
    Lite,
}

/// The ICE part of the WebRTC settings: UDP over IPv4 without mDNS, LiveKit's ICE timeouts,
/// the agent, and the candidates `scope` allows.
pub(super) fn settings(scope: IceScope, agent: IceAgent) -> SettingEngine {
    let mut settings = SettingEngine::default();
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    // As livekit/mediatransportutil `pkg/rtcconfig/webrtc_config.go`: `SetLite(true)` only
    // when `use_ice_lite` is set.
    settings.set_lite(agent == IceAgent::Lite);
    settings.set_ice_timeouts(
        Some(ICE_DISCONNECTED_TIMEOUT),
        Some(ICE_FAILED_TIMEOUT),
        Some(ICE_KEEPALIVE_INTERVAL),
    );
    if scope == IceScope::Loopback {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    }
    settings
}

/// ICE timeouts of a LiveKit server (livekit/livekit `pkg/rtc/transport.go`): no traffic for
/// 10 s makes a connection disconnected, 5 s more failed; keepalives every 2 s.
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(10);
const ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(5);
const ICE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// Trickle targets.
pub(super) const PUBLISHER: i32 = 0;
pub(super) const SUBSCRIBER: i32 = 1;

/// The mid of the first m-section of an SDP.
fn first_mid(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(str::trim)
}

impl Participant {
    fn accepts_candidate(&self, candidate: &str) -> bool {
        if self.ice_scope == IceScope::Any {
            return true;
        }
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
        let address = candidate.split_whitespace().nth(4).unwrap_or("");
        address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Trickles the SFU's candidates to the client and follows the peer connection states.
    pub(super) fn wire_ice(self: &Arc<Self>) {
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
                    me.announce_tcp_candidate(target, &c, &sdp, &init);
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
    }

    /// With an ICE/TCP front, registers a UDP host candidate `c` of the `target` peer
    /// connection (local description `sdp`) under its local ufrag, and trickles a passive TCP
    /// candidate on the same address and the front's port, once per address and ufrag (LiveKit
    /// announces its `rtc.tcp_port` candidates beside the UDP ones).
    fn announce_tcp_candidate(
        &self,
        target: i32,
        c: &RTCIceCandidate,
        sdp: &str,
        udp_init: &RTCIceCandidateInit,
    ) {
        let Some(front) = &self.ice_tcp else { return };
        if c.typ != RTCIceCandidateType::Host || c.protocol != RTCIceProtocol::Udp {
            return;
        }
        let (Some(ufrag), Ok(ip)) = (ice_tcp::sdp_ufrag(sdp), c.address.parse::<IpAddr>()) else {
            return;
        };
        if !front.register(
            ufrag,
            (self.sid.clone(), target),
            SocketAddr::new(ip, c.port),
        ) {
            return;
        }
        let init = RTCIceCandidateInit {
            candidate: ice_tcp::passive_candidate(ip, front.port()),
            ..udp_init.clone()
        };
        let json = serde_json::to_string(&init).unwrap_or_default();
        tracing::trace!(identity = %self.identity, target, candidate = %json, "local ICE/TCP candidate");
        self.send(Resp::Trickle(proto::TrickleRequest {
            candidate_init: json,
            target,
            r#final: false,
        }));
    }

    pub(super) async fn flush_candidates(&self, target: i32) {
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
}

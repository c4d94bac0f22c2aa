//! What arrives from the peer connections and the media engine: remote tracks, RTCP, data,
//! and the track settings the receiver's layout asks for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use visio_room_media::{ReceiverEvent, RemoteCodec, RemoteTrack};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::track::track_remote::TrackRemote;
use webrtc::util::Marshal;

use crate::participant::Input;
use crate::rtc::{RtcEvent, SUBSCRIBER};

use super::{Connection, RemoteInfo};
use crate::session::local_media::Media;
use crate::session::Outcome;

impl<'a> Connection<'a> {
    pub(super) async fn on_rtc(&mut self, event: RtcEvent, media: &mut Media) -> Option<Outcome> {
        match event {
            RtcEvent::Candidate { target, json } => {
                self.send(Req::Trickle(proto::TrickleRequest {
                    candidate_init: json,
                    target,
                    r#final: false,
                }))
            }
            RtcEvent::State { target, state } => {
                tracing::debug!(target, %state, "peer connection state");
                if state == RTCPeerConnectionState::Connected {
                    self.note_media_path(target).await;
                }
                let up = self.ice_connected();
                let now = self.elapsed_ms();
                self.watch.peer_connected(up, now);
                if state == RTCPeerConnectionState::Failed {
                    let which = if target == SUBSCRIBER {
                        "subscriber"
                    } else {
                        "publisher"
                    };
                    return Some(Outcome::Lost(format!(
                        "the {which} peer connection failed (ICE/DTLS)"
                    )));
                }
            }
            RtcEvent::Track(track) => self.on_remote_track(track, media).await,
            RtcEvent::Data(data) => self.on_data(&data, media),
            RtcEvent::VideoReport {
                fraction_lost,
                rtt_ms,
            } => {
                let now = media.started.elapsed().as_millis() as u64;
                if let Some(c) = media.bitrate.as_mut() {
                    if let Some(bps) = c.on_receiver_report(now, fraction_lost, rtt_ms) {
                        let loss = c.last_loss();
                        Self::apply_bitrate(media, bps, loss);
                    }
                }
            }
            RtcEvent::TransportFeedback { reported, received } => {
                let now = media.started.elapsed().as_millis() as u64;
                if let Some(c) = media.bitrate.as_mut() {
                    if let Some(bps) = c.on_transport_feedback(now, reported, received) {
                        let loss = c.last_loss();
                        Self::apply_bitrate(media, bps, loss);
                    }
                }
            }
            RtcEvent::Remb(bps) => {
                if let Some(c) = media.bitrate.as_mut() {
                    if let Some(target) = c.on_remb(f64::from(bps)) {
                        let loss = c.last_loss();
                        Self::apply_bitrate(media, target, loss);
                    }
                }
            }
            RtcEvent::KeyframeRequested => {
                self.shared
                    .keyframe_requests
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(v) = &media.video {
                    v.request_keyframe();
                }
            }
        }
        None
    }

    pub(super) fn apply_bitrate(media: &Media, bps: u32, loss: f64) {
        tracing::info!(
            bps,
            loss_percent = (loss * 100.0).round() as u32,
            "video bitrate follows the congestion estimate"
        );
        if let Some(v) = &media.video {
            v.set_target_bitrate(bps);
        }
    }

    pub(super) fn on_data(&mut self, data: &[u8], media: &Media) {
        let packet = match proto::DataPacket::decode(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable data packet ignored");
                return;
            }
        };
        let Some(proto::data_packet::Value::User(user)) = packet.value else {
            return;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&user.payload) else {
            tracing::debug!(topic = ?user.topic, "non-JSON user data ignored");
            return;
        };
        let kind = json.get("type").and_then(|t| t.as_str()).unwrap_or("");
        self.feed(
            Input::MeetMessage {
                kind: kind.to_owned(),
                from: packet.participant_identity,
            },
            media,
        );
    }

    pub(super) async fn on_remote_track(&mut self, track: Arc<TrackRemote>, media: &mut Media) {
        let stream = track.stream_id();
        let (participant_sid, track_sid) = match stream.split_once('|') {
            Some((p, _)) if track.id().starts_with("TR_") => (p.to_owned(), track.id()),
            Some((p, t)) => (p.to_owned(), t.to_owned()),
            None => (stream.clone(), track.id()),
        };
        let mime = track.codec().capability.mime_type.clone();
        let ssrc = track.ssrc();
        let Some(codec) = RemoteCodec::from_mime_type(&mime) else {
            tracing::warn!(%mime, track = %track_sid, "remote track with an unsupported codec ignored");
            return;
        };
        let screen_share = self
            .me
            .participant(&participant_sid)
            .and_then(|p| p.tracks.iter().find(|t| t.sid == track_sid))
            .is_some_and(|t| t.source == proto::TrackSource::ScreenShare as i32);
        tracing::info!(track = %track_sid, participant = %participant_sid, %mime, ssrc, "remote track");
        let shared = self.shared.clone();
        let receiver = media.receiver.clone();
        if let Some(r) = &receiver {
            if let Err(e) = r.add_track(RemoteTrack {
                id: track_sid.clone(),
                codec,
                payload_type: track.payload_type(),
                screen_share,
            }) {
                tracing::warn!(track = %track_sid, error = %e, "remote track cannot be played");
            }
        }
        let id = track_sid.clone();
        let reader = tokio::spawn(async move {
            while let Ok((packet, _)) = track.read_rtp().await {
                shared.rtp_packets_received.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = &receiver {
                    if let Ok(bytes) = packet.marshal() {
                        let _ = r.push_rtp(&id, bytes);
                    }
                }
            }
            if let Some(r) = &receiver {
                let _ = r.remove_track(&id);
            }
            tracing::debug!(track = %id, "remote track ended");
        });
        self.remote.insert(
            track_sid,
            RemoteInfo {
                ssrc,
                is_video: codec.is_video(),
                participant_sid,
                reader,
            },
        );
        if codec.is_video() {
            self.send_track_settings().await;
            // Like browsers, ask for a keyframe as soon as a video arrives (the decoder cannot
            // start on a delta frame; the publisher's next periodic keyframe may be seconds
            // away), and again shortly after in case the first request raced the SFU's setup.
            if let Some(t) = &self.transport {
                let pc = t.subscriber.clone();
                tokio::spawn(async move {
                    for delay in [0u64, 300, 1000] {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        let pli = webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                            sender_ssrc: 0,
                            media_ssrc: ssrc,
                        };
                        if pc.write_rtcp(&[Box::new(pli)]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }

    /// Tells the SFU the size each remote video is actually drawn at, and to stop sending the
    /// videos that are not shown (`UpdateTrackSettings`), for the tracks whose setting
    /// changed since last said. A video shown again gets a keyframe request.
    pub(super) async fn send_track_settings(&mut self) {
        let mut wanted = Vec::new();
        for (id, rect) in &self.tiles {
            if !self.remote.contains_key(id) {
                continue;
            }
            let setting = rect.map(|r| (r.width.max(1) as u32, r.height.max(1) as u32));
            if self.track_settings.get(id) != Some(&setting) {
                wanted.push((id.clone(), setting));
            }
        }
        for (id, setting) in wanted {
            let was_disabled = self.track_settings.get(&id) == Some(&None);
            let (width, height) = setting.unwrap_or((0, 0));
            tracing::debug!(track = %id, ?setting, "track settings");
            self.send(Req::TrackSetting(proto::UpdateTrackSettings {
                track_sids: vec![id.clone()],
                disabled: setting.is_none(),
                width,
                height,
                ..Default::default()
            }));
            if was_disabled && setting.is_some() {
                if let (Some(info), Some(t)) = (self.remote.get(&id), &self.transport) {
                    t.request_keyframe(info.ssrc).await;
                }
            }
            self.track_settings.insert(id, setting);
        }
    }

    pub(super) async fn on_receiver(&mut self, event: Option<ReceiverEvent>) {
        match event {
            Some(ReceiverEvent::KeyframeNeeded { track_id }) => {
                if let (Some(info), Some(t)) = (self.remote.get(&track_id), &self.transport) {
                    t.request_keyframe(info.ssrc).await;
                }
            }
            Some(ReceiverEvent::TrackFailed { track_id, reason }) => {
                tracing::warn!(track = %track_id, %reason, "a remote track failed to play");
            }
            Some(ReceiverEvent::Failed { reason }) => {
                tracing::error!(%reason, "remote media playback failed");
            }
            Some(ReceiverEvent::LayoutChanged { tiles }) => {
                self.tiles = tiles;
                self.send_track_settings().await;
            }
            None => {}
        }
    }
}

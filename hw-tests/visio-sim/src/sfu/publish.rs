//! Publishing: `AddTrack` (granted or refused as LiveKit does), the incoming media matched to
//! its announced track, a `Forwarder` per track fed by the publisher's RTP (audio levels read
//! on the way), and unpublishing when a track stays gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use super::forward::{Downstream, Forwarder, MediaCounters};
use super::participant::Participant;
use super::rand_id;

/// How long a publisher track whose receiver stopped may take to come back (renegotiation)
/// before it counts as unpublished.
const REPUBLISH_GRACE: Duration = Duration::from_secs(2);

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

pub(super) async fn unpublish_forwarder(f: &Arc<Forwarder>) {
    let downstream: Vec<Downstream> = std::mem::take(&mut *f.downstream.lock().await);
    for d in downstream {
        if let Some(sub) = d.subscriber.upgrade() {
            let _ = sub.subscriber.remove_track(&d.sender).await;
            sub.negotiate_subscriber();
        }
    }
}

impl Participant {
    /// Feeds each track the client publishes to its forwarder.
    pub(super) fn wire_published_tracks(self: &Arc<Self>) {
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
            // The codecs the client will publish, with the transceiver (cid) of each, as
            // LiveKit records them (livekit/livekit `pkg/rtc/participant.go`,
            // `addPendingTrackLocked`): what the publisher answer puts first.
            codecs: req
                .simulcast_codecs
                .iter()
                .filter(|c| !c.codec.is_empty())
                .map(|c| proto::SimulcastCodecInfo {
                    mime_type: if c.codec.contains('/') {
                        c.codec.clone()
                    } else if req.r#type == proto::TrackType::Audio as i32 {
                        format!("audio/{}", c.codec)
                    } else {
                        format!("video/{}", c.codec)
                    },
                    cid: c.cid.clone(),
                    layers: c.layers.clone(),
                    video_layer_mode: c.video_layer_mode,
                    ..Default::default()
                })
                .collect(),
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
                        svc_layers: Mutex::new([None; 8]),
                        downstream: tokio::sync::Mutex::new(Vec::new()),
                        last_keyframe_request: Mutex::new(Default::default()),
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
}

//! One LiveKit connection: signalling and the two peer connections, resumed in place when
//! the signalling drops (`resume.rs`), with the remote tracks and RTCP (`remote.rs`).

mod remote;
mod resume;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
use visio_room_core::controller::{EndReason, Failure, FailureKind, Track};
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

use crate::media_watch::MediaWatch;
use crate::meet::Credentials;
use crate::netwatch::{self, NetWatch};
use crate::participant::{Effect, Input, LocalParticipant};
use crate::rtc::{candidate_allowed, Apis, Transport, PUBLISHER, SUBSCRIBER};
use crate::signal::{self, Inbound, Signal};
use crate::stats::Shared;
use crate::stream_bridge::{self, StreamBridge};
use crate::Command;

use super::local_media::{set_pipelines, Media};
use super::{on_command, Outcome, Reporter, CAMERA_CID, MICROPHONE_CID, PUBLISH_TIMEOUT};

pub(super) struct RemoteInfo {
    ssrc: u32,
    is_video: bool,
    participant_sid: String,
    reader: tokio::task::JoinHandle<()>,
}

/// How to reach the LiveKit server again: the newest credentials (the token is replaced by
/// each `refresh_token`), TLS, and how long to try resuming.
pub(super) struct Link<'a> {
    pub(super) creds: &'a mut Credentials,
    pub(super) tls: Arc<rustls::ClientConfig>,
    pub(super) resume_budget: Duration,
    /// The most a resume may take while the media path is still up.
    pub(super) reconnect_budget: Duration,
}

/// One LiveKit connection (signalling + two peer connections). Its signalling may be
/// replaced by a resume while the peer connections stay.
pub(super) struct Connection<'a> {
    signal: Option<Signal>,
    join: proto::JoinResponse,
    link: Link<'a>,
    reporter: &'a Reporter,
    shared: &'a Arc<Shared>,
    apis: &'a Apis,
    /// The room as a participant: what it sends, its tracks, the others (sans-IO).
    me: &'a mut LocalParticipant,
    transport: Option<Transport>,
    awaiting_publish: Vec<String>,
    publisher_negotiated: bool,
    pending_candidates: [Vec<String>; 2],
    remote_description: [bool; 2],
    pub(super) remote: HashMap<String, RemoteInfo>,
    /// The receiver's latest layout: each remote video with where it is drawn (`None`: not
    /// shown).
    tiles: Vec<(String, Option<visio_room_media::layout::Rect>)>,
    /// What the SFU was last told per video track: `None` disabled, else the size.
    track_settings: HashMap<String, Option<(u32, u32)>>,
    /// Bridges to the TURN servers reached over TCP or TLS (webrtc-rs relays over UDP only).
    /// Bridges to TURN servers over TCP/TLS and to ICE-over-TCP candidates (webrtc-rs relays
    /// over UDP only and has no TCP candidates).
    bridges: Vec<StreamBridge>,
    /// Whether media gets through on this connection.
    watch: MediaWatch,
    /// The time base of `watch`.
    born: std::time::Instant,
}

impl<'a> Connection<'a> {
    pub(super) fn new(
        signal: Signal,
        join: proto::JoinResponse,
        link: Link<'a>,
        reporter: &'a Reporter,
        shared: &'a Arc<Shared>,
        apis: &'a Apis,
        me: &'a mut LocalParticipant,
    ) -> Self {
        Connection {
            signal: Some(signal),
            join,
            link,
            reporter,
            shared,
            apis,
            me,
            transport: None,
            awaiting_publish: Vec::new(),
            publisher_negotiated: false,
            pending_candidates: [Vec::new(), Vec::new()],
            remote_description: [false, false],
            remote: HashMap::new(),
            tiles: Vec::new(),
            track_settings: HashMap::new(),
            bridges: Vec::new(),
            watch: MediaWatch::new(0),
            born: std::time::Instant::now(),
        }
    }

    fn send(&self, message: Req) {
        if let Some(s) = &self.signal {
            s.send(message);
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Publisher dynacast, as livekit-client does it: when no quality of our camera is wanted
    /// (nobody watches it), stop encoding and sending it; when one is wanted again, resume
    /// (keyframe first). Only the server's view counts: the camera state is separate.
    fn on_subscribed_quality(&self, update: &proto::SubscribedQualityUpdate, media: &Media) {
        let camera = self
            .me
            .published()
            .into_iter()
            .find(|(track, _, _)| *track == Track::Camera);
        let Some((_, sid, _)) = camera else { return };
        if update.track_sid != sid {
            return;
        }
        // The plain list is deprecated (livekit-client reads the per-codec one), but servers
        // and SDKs still fill it in: either says "wanted".
        #[allow(deprecated)]
        let plain = &update.subscribed_qualities;
        let wanted = plain.iter().any(|q| q.enabled)
            || update
                .subscribed_codecs
                .iter()
                .any(|c| c.qualities.iter().any(|q| q.enabled));
        if let Some(video) = &media.video {
            video.set_paused(!wanted);
        }
    }

    /// Tells the daemon whether media gets through (`media_watch`).
    fn check_media_flow(&mut self) {
        let received = self
            .shared
            .rtp_packets_received
            .load(std::sync::atomic::Ordering::Relaxed);
        // Only tracks that should be flowing count: not muted by their publisher (a meeting
        // where everyone else is muted with the camera off sends nothing, rightly), and for
        // videos, not switched off by our own track settings.
        let others_publish = self.remote.iter().any(|(track_sid, info)| {
            let muted = self
                .me
                .participant(&info.participant_sid)
                .and_then(|p| p.tracks.iter().find(|t| t.sid == *track_sid))
                .is_none_or(|t| t.muted);
            let hidden = info.is_video && self.track_settings.get(track_sid) == Some(&None);
            !muted && !hidden
        });
        let now = self.elapsed_ms();
        let flow = self.watch.check(now, received, others_publish);
        self.reporter.media_flow(flow);
    }

    /// Feeds the participant one input and carries out its effects.
    fn feed(&mut self, input: Input, media: &Media) {
        let effects = self.me.handle(input);
        self.carry_out(effects, media);
    }

    fn carry_out(&self, effects: Vec<Effect>, media: &Media) {
        for effect in effects {
            if set_pipelines(media, &effect) {
                continue;
            }
            match effect {
                Effect::Signal(request) => self.send(*request),
                Effect::Report(event) => self.reporter.send(event),
                Effect::ActiveSpeaker(sid) => {
                    let track = self
                        .remote
                        .iter()
                        .find(|(_, r)| r.is_video && r.participant_sid == sid)
                        .map(|(id, _)| id.clone());
                    if let (Some(receiver), Some(track)) = (&media.receiver, track) {
                        receiver.set_active_speaker(Some(&track));
                    }
                }
                Effect::Microphone { .. } | Effect::Camera { .. } => {}
            }
        }
    }

    pub(super) async fn close(&mut self, leave: bool) {
        if let Some(signal) = self.signal.take() {
            if leave {
                signal.leave(Duration::from_secs(1)).await;
            }
        }
        for info in self.remote.values() {
            info.reader.abort();
        }
        if let Some(t) = self.transport.take() {
            t.close().await;
        }
    }

    pub(super) async fn run(
        &mut self,
        mut inbound: signal::InboundRx,
        media: &mut Media,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Outcome {
        let my_sid = self
            .join
            .participant
            .as_ref()
            .map(|p| p.sid.clone())
            .unwrap_or_default();
        tracing::info!(
            sid = %my_sid,
            room = self.join.room.as_ref().map(|r| r.name.as_str()).unwrap_or(""),
            others = self.join.other_participants.len(),
            server = self.join.server_info.as_ref().map(|s| s.version.as_str()).unwrap_or(""),
            "joined the LiveKit room"
        );
        // A new participant: the server's dynacast starts afresh for our new track.
        if let Some(video) = &media.video {
            video.set_paused(false);
        }
        let others = std::mem::take(&mut self.join.other_participants);
        self.feed(Input::Joined { my_sid, others }, media);
        let sending = self.me.sending();

        let (rtc_tx, rtc_rx) = mpsc::unbounded_channel();
        let mut tracks = Vec::new();
        if let Some(t) = &media.camera_track {
            tracks.push((t.clone(), true));
        }
        if let Some(t) = &media.mic_track {
            tracks.push((t.clone(), false));
        }
        let ice_servers = stream_bridge::bridge_ice_servers(
            &self.join.ice_servers,
            &self.link.tls,
            &mut self.bridges,
        )
        .await;
        match Transport::new(self.apis, &ice_servers, &tracks, rtc_tx).await {
            Ok(t) => self.transport = Some(t),
            Err(e) => {
                return Outcome::Failed(Failure::new(
                    FailureKind::Media,
                    format!("cannot create the WebRTC connections: {e}"),
                ))
            }
        }
        let mut rtc_rx = rtc_rx;

        // Publish: announce our tracks, negotiate when the SFU has acknowledged them.
        if media.camera_track.is_some() {
            let (w, h) = media
                .video
                .as_ref()
                .map(|v| {
                    let s = v.stats();
                    (s.width, s.height)
                })
                .unwrap_or((0, 0));
            self.send(Req::AddTrack(proto::AddTrackRequest {
                cid: CAMERA_CID.into(),
                name: "camera".into(),
                r#type: proto::TrackType::Video as i32,
                source: proto::TrackSource::Camera as i32,
                width: w,
                height: h,
                muted: !sending.camera_enabled,
                layers: vec![proto::VideoLayer {
                    quality: proto::VideoQuality::High as i32,
                    width: w,
                    height: h,
                    ..Default::default()
                }],
                ..Default::default()
            }));
            self.awaiting_publish.push(CAMERA_CID.into());
        }
        if media.mic_track.is_some() {
            self.send(Req::AddTrack(proto::AddTrackRequest {
                cid: MICROPHONE_CID.into(),
                name: "microphone".into(),
                r#type: proto::TrackType::Audio as i32,
                source: proto::TrackSource::Microphone as i32,
                muted: sending.mic_muted,
                ..Default::default()
            }));
            self.awaiting_publish.push(MICROPHONE_CID.into());
        }
        if self.awaiting_publish.is_empty() {
            if let Err(e) = self.negotiate_publisher().await {
                return Outcome::Lost(e);
            }
        }
        let publish_deadline = tokio::time::sleep(PUBLISH_TIMEOUT);
        tokio::pin!(publish_deadline);
        let mut media_check = tokio::time::interval(Duration::from_secs(1));

        // Address and route changes: resume at once and restart ICE from the new addresses
        // (ICE alone would take seconds to call its pair dead). Not in loopback mode, where
        // nothing but loopback is used.
        let mut net = if self.apis.loopback_only() {
            None
        } else {
            match NetWatch::start().await {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch address changes (rtnetlink); ICE will notice them later by itself");
                    None
                }
            }
        };
        let mut receiver_events = media.receiver_events.take();
        let outcome = loop {
            let outcome = loop {
                tokio::select! {
                    message = inbound.recv() => match message {
                        Some(Inbound::Response(m)) => {
                            if let Some(outcome) = self.on_signal(*m, media).await {
                                break outcome;
                            }
                        }
                        Some(Inbound::Closed(reason)) => {
                            break Outcome::Resume(format!("signalling connection lost: {reason}"));
                        }
                        None => break Outcome::Resume("signalling connection lost".into()),
                    },
                    event = rtc_rx.recv() => {
                        if let Some(event) = event {
                            if let Some(outcome) = self.on_rtc(event, media).await {
                                break outcome;
                            }
                        }
                    },
                    event = recv_opt(&mut receiver_events) => {
                        self.on_receiver(event).await;
                    },
                    command = commands.recv() => match on_command(command, self.me) {
                        Some(effects) => self.carry_out(effects, media),
                        None => break Outcome::Stopped,
                    },
                    _ = media_check.tick() => self.check_media_flow(),
                    change = netwatch::changed(&mut net) => {
                        break Outcome::Resume(format!("the network changed ({})", change.description));
                    }
                    _ = &mut publish_deadline, if !self.publisher_negotiated && !self.awaiting_publish.is_empty() => {
                        tracing::warn!(pending = ?self.awaiting_publish, "the SFU did not acknowledge our tracks; negotiating anyway");
                        self.awaiting_publish.clear();
                        if let Err(e) = self.negotiate_publisher().await {
                            break Outcome::Lost(e);
                        }
                    }
                }
            };
            match outcome {
                Outcome::Resume(reason) => {
                    match self.resume(reason, media, commands, &mut net).await {
                        Ok(resumed) => inbound = resumed,
                        Err(outcome) => break outcome,
                    }
                }
                other => break other,
            }
        };
        media.receiver_events = receiver_events;
        outcome
    }

    async fn negotiate_publisher(&mut self) -> Result<(), String> {
        let Some(t) = &self.transport else {
            return Ok(());
        };
        let offer = t
            .publisher
            .create_offer(None)
            .await
            .map_err(|e| format!("cannot create the publisher offer: {e}"))?;
        t.publisher
            .set_local_description(offer.clone())
            .await
            .map_err(|e| format!("cannot apply the publisher offer: {e}"))?;
        self.send(Req::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.sdp,
            ..Default::default()
        }));
        self.publisher_negotiated = true;
        Ok(())
    }

    async fn flush_candidates(&mut self, target: i32) {
        let pending = std::mem::take(&mut self.pending_candidates[target as usize]);
        if let Some(t) = &self.transport {
            for json in pending {
                if let Err(e) = t.add_candidate(target, &json).await {
                    tracing::debug!(error = %e, "queued candidate refused");
                }
            }
        }
    }

    async fn on_signal(&mut self, message: Resp, media: &Media) -> Option<Outcome> {
        match message {
            Resp::Answer(answer) => {
                let t = self.transport.as_ref()?;
                let desc = match RTCSessionDescription::answer(answer.sdp) {
                    Ok(d) => d,
                    Err(e) => return Some(Outcome::Lost(format!("bad publisher answer: {e}"))),
                };
                if let Err(e) = t.publisher.set_remote_description(desc).await {
                    return Some(Outcome::Lost(format!(
                        "cannot apply the publisher answer: {e}"
                    )));
                }
                self.remote_description[PUBLISHER as usize] = true;
                self.flush_candidates(PUBLISHER).await;
            }
            Resp::Offer(offer) => {
                let t = self.transport.as_ref()?;
                let result = async {
                    t.subscriber
                        .set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
                        .await?;
                    let answer = t.subscriber.create_answer(None).await?;
                    t.subscriber.set_local_description(answer.clone()).await?;
                    Ok::<_, webrtc::Error>(answer)
                }
                .await;
                match result {
                    Ok(answer) => {
                        self.send(Req::Answer(proto::SessionDescription {
                            r#type: "answer".into(),
                            sdp: answer.sdp,
                            id: offer.id,
                            ..Default::default()
                        }));
                        self.remote_description[SUBSCRIBER as usize] = true;
                        self.flush_candidates(SUBSCRIBER).await;
                    }
                    Err(e) => {
                        return Some(Outcome::Lost(format!(
                            "cannot answer the subscriber offer: {e}"
                        )))
                    }
                }
            }
            Resp::Trickle(trickle) => {
                let target = if trickle.target == SUBSCRIBER {
                    SUBSCRIBER
                } else {
                    PUBLISHER
                };
                let candidate = serde_json::from_str::<serde_json::Value>(&trickle.candidate_init)
                    .ok()
                    .and_then(|v| {
                        v.get("candidate")
                            .and_then(|c| c.as_str())
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                let mut candidate_init = trickle.candidate_init;
                if !candidate_allowed(self.apis.loopback_only(), &candidate) {
                    tracing::trace!(%candidate, "non-loopback candidate ignored");
                    return None;
                }
                // ICE over TCP: through a local bridge (webrtc-rs has no TCP candidates).
                if let Some(bridged) = stream_bridge::bridge_tcp_candidate(
                    &candidate_init,
                    &self.link.tls,
                    &mut self.bridges,
                )
                .await
                {
                    candidate_init = bridged;
                }
                if self.remote_description[target as usize] {
                    if let Some(t) = &self.transport {
                        if let Err(e) = t.add_candidate(target, &candidate_init).await {
                            tracing::debug!(error = %e, "remote candidate refused");
                        }
                    }
                } else {
                    self.pending_candidates[target as usize].push(candidate_init);
                }
            }
            Resp::TrackPublished(published) => {
                let sid = published
                    .track
                    .as_ref()
                    .map(|t| t.sid.clone())
                    .unwrap_or_default();
                let muted = published.track.as_ref().is_some_and(|t| t.muted);
                tracing::info!(cid = %published.cid, %sid, "track published");
                let track = match published.cid.as_str() {
                    CAMERA_CID => Some(Track::Camera),
                    MICROPHONE_CID => Some(Track::Microphone),
                    _ => None,
                };
                if let Some(track) = track {
                    self.feed(Input::TrackPublished { track, sid, muted }, media);
                }
                self.awaiting_publish.retain(|c| *c != published.cid);
                if self.awaiting_publish.is_empty() && !self.publisher_negotiated {
                    if let Err(e) = self.negotiate_publisher().await {
                        return Some(Outcome::Lost(e));
                    }
                }
            }
            Resp::Update(update) => {
                self.feed(Input::ParticipantUpdate(update.participants), media);
            }
            Resp::Mute(mute) => self.feed(
                Input::ServerMute {
                    sid: mute.sid,
                    muted: mute.muted,
                },
                media,
            ),
            Resp::SpeakersChanged(changed) => {
                self.feed(Input::SpeakersChanged(changed.speakers), media)
            }
            Resp::RefreshToken(token) => {
                tracing::debug!("access token refreshed");
                self.link.creds.token = token;
            }
            Resp::Leave(leave) => {
                use proto::leave_request::Action;
                let action = Action::try_from(leave.action).unwrap_or(Action::Disconnect);
                let reason = proto::DisconnectReason::try_from(leave.reason)
                    .unwrap_or(proto::DisconnectReason::UnknownReason);
                tracing::info!(
                    action = action.as_str_name(),
                    reason = reason.as_str_name(),
                    "the server asked us to leave"
                );
                return Some(match (action, reason) {
                    (Action::Resume, _) => Outcome::Resume(format!(
                        "server asked to resume ({})",
                        reason.as_str_name()
                    )),
                    (Action::Reconnect, _) => Outcome::Lost(format!(
                        "server asked to reconnect ({})",
                        reason.as_str_name()
                    )),
                    (_, proto::DisconnectReason::DuplicateIdentity) => {
                        Outcome::Ended(EndReason::DuplicateIdentity)
                    }
                    (_, proto::DisconnectReason::ParticipantRemoved) => {
                        Outcome::Ended(EndReason::Removed)
                    }
                    (
                        _,
                        proto::DisconnectReason::RoomDeleted | proto::DisconnectReason::RoomClosed,
                    ) => Outcome::Ended(EndReason::RoomDeleted),
                    (_, proto::DisconnectReason::ServerShutdown) if leave.can_reconnect => {
                        Outcome::Lost("the server is shutting down".into())
                    }
                    _ => Outcome::Ended(EndReason::Other),
                });
            }
            Resp::TrackUnpublished(t) => tracing::debug!(sid = %t.track_sid, "track unpublished"),
            Resp::RequestResponse(response) => {
                if let Some(outcome) = self.on_request_response(response).await {
                    return Some(outcome);
                }
            }
            Resp::SubscribedQualityUpdate(update) => self.on_subscribed_quality(&update, media),
            Resp::RoomUpdate(_) | Resp::ConnectionQuality(_) => {}
            other => tracing::trace!(?other, "signalling message ignored"),
        }
        None
    }

    /// The server's answer to one of our requests. A refused `AddTrack` (the room may not
    /// publish that source in this meeting, LiveKit's `NOT_ALLOWED`) is not waited for: the
    /// meeting goes on without that track.
    async fn on_request_response(&mut self, response: proto::RequestResponse) -> Option<Outcome> {
        use proto::request_response::{Reason, Request};
        let reason = Reason::try_from(response.reason).unwrap_or(Reason::UnclassifiedError);
        if reason == Reason::Ok {
            return None;
        }
        match response.request {
            Some(Request::AddTrack(add)) => {
                tracing::warn!(
                    cid = %add.cid,
                    reason = reason.as_str_name(),
                    message = %response.message,
                    "the server refused to publish one of our tracks; the meeting goes on without it"
                );
                self.awaiting_publish.retain(|c| *c != add.cid);
                if self.awaiting_publish.is_empty() && !self.publisher_negotiated {
                    if let Err(e) = self.negotiate_publisher().await {
                        return Some(Outcome::Lost(e));
                    }
                }
            }
            _ => tracing::info!(
                reason = reason.as_str_name(),
                message = %response.message,
                "the server refused a request"
            ),
        }
        None
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(r) => match r.recv().await {
            Some(v) => Some(v),
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

//! The session task: Meet API → media → LiveKit connection loop (with rejoin) → leave.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
use visio_room_core::controller::{EndReason, Failure, FailureKind, SessionEvent, Track};
use visio_room_media::{
    AudioSender, Receiver, ReceiverEvent, RemoteCodec, RemoteTrack, VideoSender,
};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;
use webrtc::util::Marshal;

use crate::config::SessionConfig;
use crate::congestion::BitrateController;
use crate::meet::{Credentials, MeetClient, MeetingTarget};
use crate::participant::{Effect, Input, LocalParticipant, Sending};
use crate::rtc::{candidate_allowed, Apis, RtcEvent, Transport, PUBLISHER, SUBSCRIBER};
use crate::signal::{self, Inbound, Mode, Opened, Signal};
use crate::stats::Shared;
use crate::turn_stream::{self, StreamTurn};
use crate::{Command, SessionEvents, SessionRequest};

const CAMERA_CID: &str = "visio-room-camera";
const MICROPHONE_CID: &str = "visio-room-microphone";
const STREAM_ID: &str = "visio-room";
/// How long to wait for the SFU to acknowledge our tracks before negotiating anyway.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

struct Reporter {
    id: visio_room_core::controller::SessionId,
    events: SessionEvents,
}

impl Reporter {
    fn send(&self, event: SessionEvent) {
        tracing::debug!(session = self.id.0, ?event, "session event");
        let _ = self.events.send((self.id, event));
    }
}

/// The running media engine objects and our WebRTC tracks (kept across reconnects).
struct Media {
    video: Option<Arc<VideoSender>>,
    audio: Option<Arc<AudioSender>>,
    receiver: Option<Arc<Receiver>>,
    receiver_events: Option<mpsc::UnboundedReceiver<ReceiverEvent>>,
    camera_track: Option<Arc<TrackLocalStaticRTP>>,
    mic_track: Option<Arc<TrackLocalStaticRTP>>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    /// Sets the video encoder's bitrate from the SFU's reports (kept across reconnects).
    bitrate: Option<BitrateController>,
    /// Time base of the controller.
    started: std::time::Instant,
}

impl Media {
    fn none() -> Self {
        Media {
            video: None,
            audio: None,
            receiver: None,
            receiver_events: None,
            camera_track: None,
            mic_track: None,
            pumps: Vec::new(),
            bitrate: None,
            started: std::time::Instant::now(),
        }
    }
}

enum Outcome {
    Stopped,
    Ended(EndReason),
    Failed(Failure),
    /// The connection is gone and could not be resumed: rejoin from scratch.
    Lost(String),
    /// The signalling connection is gone (or the server asked for a resume): try to resume
    /// the same participant first. Never leaves [`Connection::run`].
    Resume(String),
}

pub(crate) async fn run(
    request: SessionRequest,
    config: SessionConfig,
    events: SessionEvents,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
) {
    let reporter = Reporter {
        id: request.id,
        events,
    };
    let mut me = LocalParticipant::new(Sending {
        mic_muted: request.mic_muted,
        camera_enabled: request.camera_enabled,
    });
    let outcome = run_inner(
        &request,
        &config,
        &reporter,
        &mut commands,
        &shared,
        &mut me,
    )
    .await;
    // Tear the media down off the runtime: stopping pipelines waits for their threads.
    let refs = std::mem::take(&mut *shared.refs.lock().unwrap_or_else(|e| e.into_inner()));
    let _ = tokio::task::spawn_blocking(move || drop(refs)).await;
    match outcome {
        Outcome::Stopped => reporter.send(SessionEvent::Stopped),
        Outcome::Ended(reason) => reporter.send(SessionEvent::Ended(reason)),
        Outcome::Failed(failure) => {
            tracing::warn!(kind = failure.kind.as_str(), message = %failure.message, "meeting session failed");
            reporter.send(SessionEvent::Failed(failure))
        }
        Outcome::Lost(reason) | Outcome::Resume(reason) => {
            reporter.send(SessionEvent::Failed(Failure::new(
                FailureKind::Unreachable,
                format!("lost the meeting and could not get back in: {reason}"),
            )))
        }
    }
    // Late commands are answered by nobody; a Stop after the end needs no answer.
    commands.close();
}

/// The one handler of the daemon's commands, in every phase of the session: `None` means
/// stop; otherwise the effects to carry out.
fn on_command(command: Option<Command>, me: &mut LocalParticipant) -> Option<Vec<Effect>> {
    match command? {
        Command::Stop => None,
        Command::MicMuted(m) => Some(me.handle(Input::SetMicMuted(m))),
        Command::CameraEnabled(c) => Some(me.handle(Input::SetCameraEnabled(c))),
    }
}

/// Sets the pipelines as `effect` says: the only place their mute state is set. `false` when
/// the effect is not about the pipelines.
fn set_pipelines(media: &Media, effect: &Effect) -> bool {
    match effect {
        Effect::Microphone { muted } => {
            if let Some(a) = &media.audio {
                a.set_mic_muted(*muted);
            }
        }
        Effect::Camera { enabled } => {
            if let Some(v) = &media.video {
                v.set_camera_enabled(*enabled);
            }
        }
        _ => return false,
    }
    true
}

/// Carries out effects while there is no LiveKit connection (lobby, waiting to rejoin): the
/// pipelines follow; what is for the server is said again by the next connection (the
/// `AddTrack` muted flags).
fn carry_out_offline(effects: Vec<Effect>, media: &Media, reporter: &Reporter) {
    for effect in effects {
        if set_pipelines(media, &effect) {
            continue;
        }
        if let Effect::Report(event) = effect {
            reporter.send(event);
        }
    }
}

async fn run_inner(
    request: &SessionRequest,
    config: &SessionConfig,
    reporter: &Reporter,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    shared: &Arc<Shared>,
    me: &mut LocalParticipant,
) -> Outcome {
    let tls = match crate::tls::client_config(&config.tls_roots) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(Failure::new(FailureKind::NotAvailable, e.to_string())),
    };
    let target = match MeetingTarget::parse(&request.url, &config.allowed_hosts) {
        Ok(t) => t.with_media_hosts(config.media_hosts.clone()),
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };
    let client = match MeetClient::new(target, tls.clone()) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };

    // 1. Meet API and lobby, interruptible by Stop.
    let creds = {
        let waiting = || async { reporter.send(SessionEvent::WaitingInLobby) };
        let joining = client.join_credentials(
            &request.display_name,
            config.lobby_poll_interval,
            config.lobby_timeout,
            &config.lobby_cookies,
            waiting,
        );
        tokio::pin!(joining);
        loop {
            tokio::select! {
                result = &mut joining => break result,
                command = commands.recv() => match on_command(command, me) {
                    // No media yet: it starts with what `me` says.
                    Some(effects) => carry_out_offline(effects, &Media::none(), reporter),
                    None => return Outcome::Stopped,
                },
            }
        }
    };
    let mut creds = match creds {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };
    tracing::info!(room = %creds.room, livekit = %creds.ws_url, "joining the LiveKit room");
    shared.set_media_server(&creds.ws_url);

    // 2. Media.
    let mut media = match &config.media {
        Some(settings) => {
            match start_media(settings, config.min_video_bitrate_bps, me.sending(), shared).await {
                Ok(m) => m,
                Err(message) => return Outcome::Failed(Failure::new(FailureKind::Media, message)),
            }
        }
        None => Media::none(),
    };
    let apis = match Apis::new(config.ice_loopback_only) {
        Ok(a) => a,
        Err(e) => {
            return Outcome::Failed(Failure::new(
                FailureKind::Media,
                format!("cannot set up WebRTC: {e}"),
            ))
        }
    };

    // 3. The connection loop: join, run, rejoin on loss.
    let mut connected_once = false;
    let mut attempt: u32 = 0;
    let mut lost_since: Option<tokio::time::Instant> = None;
    let mut last_loss = String::new();
    let outcome = loop {
        if let Some(since) = lost_since {
            if since.elapsed() > config.reconnect_budget {
                break Outcome::Lost(last_loss);
            }
            let delay = backoff(attempt);
            tracing::info!(
                attempt,
                ?delay,
                "rejoining the meeting after a connection loss"
            );
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            let stop = loop {
                tokio::select! {
                    _ = &mut sleep => break false,
                    command = commands.recv() => match on_command(command, me) {
                        Some(effects) => carry_out_offline(effects, &media, reporter),
                        None => break true,
                    },
                }
            };
            if stop {
                break Outcome::Stopped;
            }
            attempt += 1;
        }
        let connecting = signal::connect(&creds.ws_url, &creds.token, Mode::Join, tls.clone());
        let (signal, inbound, opened) = match connecting.await {
            Ok(ok) => ok,
            Err(e) => {
                let kind = e.kind();
                if !connected_once || !kind.is_retryable() {
                    break Outcome::Failed(Failure::new(kind, e.to_string()));
                }
                last_loss = e.to_string();
                continue;
            }
        };
        let Opened::Join(join) = opened else {
            break Outcome::Failed(Failure::new(
                FailureKind::Protocol,
                "the LiveKit server answered a join with a reconnect response",
            ));
        };
        if !connected_once {
            reporter.send(SessionEvent::Connected);
            connected_once = true;
        } else {
            shared.rejoins.fetch_add(1, Ordering::Relaxed);
        }
        attempt = 0;
        let mut conn = Connection::new(
            signal,
            *join,
            Link {
                creds: &mut creds,
                tls: tls.clone(),
                resume_budget: config.resume_budget,
                reconnect_budget: config.reconnect_budget,
            },
            reporter,
            shared,
            &apis,
            me,
        );
        let outcome = conn.run(inbound, &mut media, commands).await;
        conn.close(matches!(outcome, Outcome::Stopped)).await;
        if let Some(receiver) = &media.receiver {
            for id in conn.remote.keys() {
                let _ = receiver.remove_track(id);
            }
        }
        match outcome {
            Outcome::Lost(reason) => {
                tracing::warn!(%reason, "lost the meeting connection");
                last_loss = reason;
                lost_since = Some(tokio::time::Instant::now());
            }
            other => break other,
        }
    };
    for pump in media.pumps.drain(..) {
        pump.abort();
    }
    outcome
}

/// Rust SDK style: 300 ms × 2^n, capped at 7 s, with up to 30 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 300u64.saturating_mul(1u64 << attempt.min(5)).min(7_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    Duration::from_millis(base + (base * 3 / 10) * (nanos % 1000) / 1000)
}

async fn start_media(
    settings: &crate::config::MediaSettings,
    min_video_bitrate_bps: u32,
    sending: Sending,
    shared: &Arc<Shared>,
) -> Result<Media, String> {
    let settings = settings.clone();
    let bitrate = BitrateController::new(min_video_bitrate_bps, settings.video.encoder.bitrate_bps);
    let camera_enabled = sending.camera_enabled;
    let mic_muted = sending.mic_muted;
    // Probing and pipeline start-up block: keep them off the async runtime.
    let started = tokio::task::spawn_blocking(move || {
        // The probe does not initialise GStreamer itself.
        visio_room_media::init().map_err(|e| format!("GStreamer is not usable: {e}"))?;
        let encoder = match settings.encoder.clone() {
            Some(e) => e,
            None => visio_room_media::probe::probe_h264_encoder(
                &visio_room_media::EncoderCandidate::default_order(),
                &settings.video.camera,
            )
            .map_err(|e| format!("no usable H.264 encoder: {e}"))?,
        };
        let (receiver, receiver_events) = Receiver::start(settings.receiver.clone())
            .map_err(|e| format!("cannot start playing remote media: {e}"))?;
        let mut audio_config = settings.audio.clone();
        if audio_config.voice_processing && audio_config.echo_probe.is_none() {
            audio_config.echo_probe = Some(receiver.echo_probe_name().to_owned());
        }
        let (audio, audio_rx) = AudioSender::start(audio_config)
            .map_err(|e| format!("cannot start the microphone: {e}"))?;
        audio.set_mic_muted(mic_muted);
        let (video, video_rx) = VideoSender::start(settings.video.clone(), &encoder)
            .map_err(|e| format!("cannot start the camera: {e}"))?;
        video.set_camera_enabled(camera_enabled);
        Ok::<_, String>((
            encoder,
            receiver,
            receiver_events,
            audio,
            audio_rx,
            video,
            video_rx,
        ))
    })
    .await
    .map_err(|e| format!("media start-up panicked: {e}"))??;
    let (encoder, receiver, receiver_events, audio, audio_rx, video, video_rx) = started;
    tracing::info!(report = %encoder.report(), "media started");
    let video = Arc::new(video);
    let audio = Arc::new(audio);
    let receiver = Arc::new(receiver);
    {
        let mut refs = shared.refs.lock().unwrap_or_else(|e| e.into_inner());
        refs.video = Some(video.clone());
        refs.audio = Some(audio.clone());
        refs.receiver = Some(receiver.clone());
        refs.encoder_report = Some(encoder.report());
    }
    let camera_track = Arc::new(TrackLocalStaticRTP::new(
        crate::rtc::h264_capability(),
        CAMERA_CID.to_owned(),
        STREAM_ID.to_owned(),
    ));
    let mic_track = Arc::new(TrackLocalStaticRTP::new(
        crate::rtc::opus_capability(),
        MICROPHONE_CID.to_owned(),
        STREAM_ID.to_owned(),
    ));
    let pumps = vec![
        tokio::spawn(pump(video_rx, camera_track.clone())),
        tokio::spawn(pump(audio_rx, mic_track.clone())),
    ];
    Ok(Media {
        video: Some(video),
        audio: Some(audio),
        receiver: Some(receiver),
        receiver_events: Some(receiver_events),
        camera_track: Some(camera_track),
        mic_track: Some(mic_track),
        pumps,
        bitrate: Some(bitrate),
        started: std::time::Instant::now(),
    })
}

/// Forwards the media engine's RTP to the WebRTC track (which rewrites SSRC and payload type
/// for each peer connection it is bound to; with none bound, packets are dropped).
async fn pump(mut rx: mpsc::Receiver<Bytes>, track: Arc<TrackLocalStaticRTP>) {
    while let Some(packet) = rx.recv().await {
        if let Err(e) = track.write(&packet).await {
            tracing::trace!(error = %e, "RTP packet not sent");
        }
    }
}

struct RemoteInfo {
    ssrc: u32,
    is_video: bool,
    participant_sid: String,
    reader: tokio::task::JoinHandle<()>,
}

/// How to reach the LiveKit server again: the newest credentials (the token is replaced by
/// each `refresh_token`), TLS, and how long to try resuming.
struct Link<'a> {
    creds: &'a mut Credentials,
    tls: Arc<rustls::ClientConfig>,
    resume_budget: Duration,
    /// The most a resume may take while the media path is still up.
    reconnect_budget: Duration,
}

/// One LiveKit connection (signalling + two peer connections). Its signalling may be
/// replaced by a resume while the peer connections stay.
struct Connection<'a> {
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
    remote: HashMap<String, RemoteInfo>,
    /// The receiver's latest layout: each remote video with where it is drawn (`None`: not
    /// shown).
    tiles: Vec<(String, Option<visio_room_media::layout::Rect>)>,
    /// What the SFU was last told per video track: `None` disabled, else the size.
    track_settings: HashMap<String, Option<(u32, u32)>>,
    /// Bridges to the TURN servers reached over TCP or TLS (webrtc-rs relays over UDP only).
    turn_bridges: Vec<StreamTurn>,
}

impl<'a> Connection<'a> {
    fn new(
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
            turn_bridges: Vec::new(),
        }
    }

    fn send(&self, message: Req) {
        if let Some(s) = &self.signal {
            s.send(message);
        }
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

    async fn close(&mut self, leave: bool) {
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

    async fn run(
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
        let ice_servers = turn_stream::bridge_ice_servers(
            &self.join.ice_servers,
            &self.link.tls,
            &mut self.turn_bridges,
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
                Outcome::Resume(reason) => match self.resume(reason, media, commands).await {
                    Ok(resumed) => inbound = resumed,
                    Err(outcome) => break outcome,
                },
                other => break other,
            }
        };
        media.receiver_events = receiver_events;
        outcome
    }

    /// Resumes this participant on a new signalling connection (`reconnect=1&sid=`, with the
    /// newest token), retrying with backoff; the peer connections stay up and restart ICE once
    /// the server answers. Like livekit-client, it keeps trying while a peer connection is
    /// still connected (media flows, and LiveKit keeps a participant whose ICE is connected),
    /// up to `reconnect_budget`; once none is, `resume_budget` after the loss. `Err` when
    /// resuming is not possible: `Lost` (rejoin from scratch) or `Stopped`.
    async fn resume(
        &mut self,
        reason: String,
        media: &Media,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Result<signal::InboundRx, Outcome> {
        tracing::warn!(%reason, "lost the signalling connection; resuming the same participant");
        self.signal = None;
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        let mut last = reason.clone();
        loop {
            let budget = if self.ice_connected() {
                self.link.reconnect_budget
            } else {
                self.link.resume_budget
            };
            let remaining = budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(Outcome::Lost(format!(
                    "{reason}; resuming failed for {:?} (last: {last})",
                    started.elapsed()
                )));
            }
            let delay = if attempt == 0 {
                Duration::ZERO
            } else {
                backoff(attempt - 1).min(remaining)
            };
            attempt += 1;
            let url = self.link.creds.ws_url.clone();
            let token = self.link.creds.token.clone();
            let tls = self.link.tls.clone();
            let mode = Mode::Resume {
                sid: self.me.sid().to_owned(),
            };
            let step = async move {
                tokio::time::sleep(delay).await;
                let limit = remaining
                    .saturating_sub(delay)
                    .max(Duration::from_millis(500));
                tokio::time::timeout(limit, signal::connect(&url, &token, mode, tls)).await
            };
            tokio::pin!(step);
            let result = loop {
                tokio::select! {
                    result = &mut step => break result,
                    // No signalling now: the pipelines follow at once, the server is told by
                    // the resume's restatement.
                    command = commands.recv() => match on_command(command, self.me) {
                        Some(effects) => self.carry_out(effects, media),
                        None => return Err(Outcome::Stopped),
                    },
                }
            };
            match result {
                Err(_) => last = "the server did not answer in time".into(),
                Ok(Ok((signal, inbound, Opened::Reconnect(reconnect)))) => {
                    tracing::info!(attempt, elapsed = ?started.elapsed(), "resumed the meeting connection");
                    self.signal = Some(signal);
                    self.shared.resumes.fetch_add(1, Ordering::Relaxed);
                    self.after_resume(*reconnect, media).await?;
                    return Ok(inbound);
                }
                Ok(Ok((signal, _, Opened::Join(_)))) => {
                    // The server made a new participant of us: leave it, rejoin properly.
                    signal.leave(Duration::from_millis(500)).await;
                    return Err(Outcome::Lost(format!(
                        "{reason}; the server answered the resume with a new join"
                    )));
                }
                Ok(Err(
                    e @ (signal::SignalError::Refused { .. } | signal::SignalError::Protocol(_)),
                )) => {
                    // The server does not know us any more (or refuses the token): rejoin.
                    return Err(Outcome::Lost(format!("{reason}; resume refused: {e}")));
                }
                Ok(Err(e)) => {
                    tracing::debug!(attempt, error = %e, "resume attempt failed");
                    last = e.to_string();
                }
            }
        }
    }

    /// Finds out how the media of peer connection `target` travels (`udp`, `tcp`, `turn/udp`,
    /// `turn/tcp`, `turn/tls`: the selected candidate pair) and records it for `Health`.
    async fn note_media_path(&self, target: i32) {
        let Some(t) = &self.transport else { return };
        let pc = if target == SUBSCRIBER {
            &t.subscriber
        } else {
            &t.publisher
        };
        let Some(pair) = pc
            .dtls_transport()
            .ice_transport()
            .get_selected_candidate_pair()
            .await
        else {
            return;
        };
        use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
        use webrtc::ice_transport::ice_protocol::RTCIceProtocol;
        let path = match pair.local.typ {
            // The relay's base is the TURN client's socket: a bridge knows it by its port.
            RTCIceCandidateType::Relay => self
                .turn_bridges
                .iter()
                .find(|b| b.serves_port(pair.local.related_port))
                .map_or("turn/udp", |b| b.server().transport.path_name()),
            _ if pair.local.protocol == RTCIceProtocol::Tcp => "tcp",
            _ => "udp",
        };
        tracing::info!(path, pair = %pair, "media path");
        self.shared.set_media_path(path);
    }

    /// Whether a peer connection is still connected (the media path works).
    fn ice_connected(&self) -> bool {
        self.transport.as_ref().is_some_and(|t| {
            [&t.publisher, &t.subscriber]
                .iter()
                .any(|pc| pc.connection_state() == RTCPeerConnectionState::Connected)
        })
    }

    /// After a `ReconnectResponse`: tell the server what we publish and receive
    /// (`SyncState`), then restart ICE on the publisher (the server restarts it on the
    /// subscriber with its next offer), and restate our mute state.
    async fn after_resume(
        &mut self,
        _reconnect: proto::ReconnectResponse,
        media: &Media,
    ) -> Result<(), Outcome> {
        // Candidates of the old ICE session are useless; new ones wait for the new
        // descriptions.
        self.remote_description = [false, false];
        self.pending_candidates = [Vec::new(), Vec::new()];
        let Some(t) = &self.transport else {
            return Ok(());
        };
        let subscriber_offer = t.subscriber.remote_description().await;
        let subscriber_answer = t.subscriber.local_description().await;
        if subscriber_offer.is_some() {
            // Until the server's ICE-restart offer arrives, the current one is in force.
            self.remote_description[SUBSCRIBER as usize] = true;
        }
        let description = |d: RTCSessionDescription, kind: &str| proto::SessionDescription {
            r#type: kind.to_owned(),
            sdp: d.sdp,
            ..Default::default()
        };
        let publish_tracks = self
            .me
            .published()
            .into_iter()
            .map(|(track, sid, muted)| {
                let (cid, kind) = match track {
                    Track::Camera => (CAMERA_CID, proto::TrackType::Video),
                    Track::Microphone => (MICROPHONE_CID, proto::TrackType::Audio),
                };
                proto::TrackPublishedResponse {
                    cid: cid.to_owned(),
                    track: Some(proto::TrackInfo {
                        sid,
                        r#type: kind as i32,
                        muted,
                        ..Default::default()
                    }),
                }
            })
            .collect();
        let data_channels = [&t.reliable, &t.lossy]
            .iter()
            .map(|dc| proto::DataChannelInfo {
                label: dc.label().to_owned(),
                id: u32::from(dc.id()),
                target: PUBLISHER,
            })
            .collect();
        let sync = proto::SyncState {
            answer: subscriber_answer.map(|d| description(d, "answer")),
            offer: subscriber_offer.map(|d| description(d, "offer")),
            // Like livekit-client with auto-subscribe: the tracks we do *not* want, with
            // `subscribe: false` (the room wants every track: none).
            subscription: Some(proto::UpdateSubscription {
                track_sids: Vec::new(),
                subscribe: false,
                ..Default::default()
            }),
            publish_tracks,
            data_channels,
            ..Default::default()
        };
        // SyncState before the ICE restart, as livekit-client does: the server checks our
        // tracks first (an unknown one means a full reconnect).
        self.send(Req::SyncState(sync));
        if self.publisher_negotiated {
            let options = webrtc::peer_connection::offer_answer_options::RTCOfferOptions {
                ice_restart: true,
                ..Default::default()
            };
            let t = self.transport.as_ref().expect("checked above");
            let restart = async {
                let offer = t.publisher.create_offer(Some(options)).await?;
                t.publisher.set_local_description(offer.clone()).await?;
                Ok::<_, webrtc::Error>(offer)
            }
            .await;
            match restart {
                Ok(offer) => self.send(Req::Offer(proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.sdp,
                    ..Default::default()
                })),
                Err(e) => {
                    return Err(Outcome::Lost(format!(
                        "cannot restart ICE on the publisher after a resume: {e}"
                    )))
                }
            }
        }
        self.feed(Input::Resumed, media);
        // Say every track's setting again on the new connection.
        self.track_settings.clear();
        self.send_track_settings().await;
        Ok(())
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
                if !candidate_allowed(self.apis.loopback_only(), &candidate) {
                    tracing::trace!(%candidate, "non-loopback candidate ignored");
                } else if self.remote_description[target as usize] {
                    if let Some(t) = &self.transport {
                        if let Err(e) = t.add_candidate(target, &trickle.candidate_init).await {
                            tracing::debug!(error = %e, "remote candidate refused");
                        }
                    }
                } else {
                    self.pending_candidates[target as usize].push(trickle.candidate_init);
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
            Resp::RoomUpdate(_) | Resp::ConnectionQuality(_) | Resp::SubscribedQualityUpdate(_) => {
            }
            other => tracing::trace!(?other, "signalling message ignored"),
        }
        None
    }

    async fn on_rtc(&mut self, event: RtcEvent, media: &mut Media) -> Option<Outcome> {
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

    fn apply_bitrate(media: &Media, bps: u32, loss: f64) {
        tracing::info!(
            bps,
            loss_percent = (loss * 100.0).round() as u32,
            "video bitrate follows the congestion estimate"
        );
        if let Some(v) = &media.video {
            v.set_target_bitrate(bps);
        }
    }

    fn on_data(&mut self, data: &[u8], media: &Media) {
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

    async fn on_remote_track(&mut self, track: Arc<TrackRemote>, media: &mut Media) {
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
    async fn send_track_settings(&mut self) {
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

    async fn on_receiver(&mut self, event: Option<ReceiverEvent>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejoin_backoff_doubles_from_300_ms_and_stays_under_7_s_plus_jitter() {
        assert!(
            backoff(0) >= Duration::from_millis(300) && backoff(0) <= Duration::from_millis(390)
        );
        assert!(backoff(1) >= Duration::from_millis(600));
        assert!(
            backoff(10) >= Duration::from_millis(7_000)
                && backoff(10) <= Duration::from_millis(9_100)
        );
    }
}

//! The `org.visioroom.Room1` service: D-Bus methods become controller inputs, the shared
//! snapshot becomes properties, controller actions become `PropertiesChanged` and signals.
//!
//! Who may call what is decided by the D-Bus policy (`systemd/org.visioroom.Room1.conf`), not
//! here: every caller that reaches a method is a local, authorised party (`Source::DBus`).

use tokio::sync::{mpsc, oneshot};
use visio_room_bus::{dict, Dict, NextMeeting, ParticipantInfo};
use visio_room_core::controller::{Failure, Input, Refusal, Source, StatusField};
use visio_room_core::meeting_url::{AllowedHosts, MeetingUrl, MeetingUrlError};
use zbus::object_server::{InterfaceRef, SignalEmitter};
use zbus::zvariant::Value;

use crate::room::{Command, Publisher, Shared};

/// Errors returned to D-Bus callers, named `org.visioroom.Error.<Variant>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.visioroom.Error")]
pub enum RoomError {
    /// A transport error.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The meeting URL is not a meeting URL.
    InvalidUrl(String),
    /// The meeting URL's host is not in `visio.allowed_hosts`.
    HostNotAllowed(String),
    /// The room is in another meeting.
    Busy(String),
    /// The request is not allowed.
    NotPermitted(String),
    /// An argument is out of range.
    InvalidArgument(String),
    /// The daemon is shutting down or failed internally.
    Failed(String),
    /// The member is part of the API but not implemented yet.
    NotSupported(String),
}

impl From<Refusal> for RoomError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::Busy { .. } => RoomError::Busy(message),
            Refusal::NotPermitted { .. } => RoomError::NotPermitted(message),
            Refusal::InvalidArgument { .. } => RoomError::InvalidArgument(message),
        }
    }
}

impl From<MeetingUrlError> for RoomError {
    fn from(e: MeetingUrlError) -> Self {
        match e {
            MeetingUrlError::HostNotAllowed { .. } => RoomError::HostNotAllowed(e.to_string()),
            _ => RoomError::InvalidUrl(e.to_string()),
        }
    }
}

/// The object at `/org/visioroom/Room1`.
pub struct RoomInterface {
    commands: mpsc::Sender<Command>,
    shared: Shared,
    allowed_hosts: AllowedHosts,
}

impl RoomInterface {
    /// An interface sending inputs to the room loop on `commands` and reading `shared`.
    pub fn new(
        commands: mpsc::Sender<Command>,
        shared: Shared,
        allowed_hosts: AllowedHosts,
    ) -> Self {
        RoomInterface {
            commands,
            shared,
            allowed_hosts,
        }
    }

    async fn send(&self, input: Input) -> Result<(), RoomError> {
        let (reply, outcome) = oneshot::channel();
        let gone = || RoomError::Failed("the room loop has stopped; the daemon is exiting".into());
        self.commands
            .send(Command { input, reply })
            .await
            .map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?.map_err(RoomError::from)
    }
}

#[zbus::interface(name = "org.visioroom.Room1")]
impl RoomInterface {
    /// Join the meeting at `url`. Returns once the join has started; follow `State`.
    async fn join(&self, url: &str) -> Result<(), RoomError> {
        let meeting = MeetingUrl::parse(url, &self.allowed_hosts)?;
        self.send(Input::Join {
            url: meeting.as_str().to_owned(),
            source: Source::DBus,
        })
        .await
    }

    /// Leave the current meeting, or stop trying to join one.
    async fn leave(&self) -> Result<(), RoomError> {
        self.send(Input::Leave {
            source: Source::DBus,
        })
        .await
    }

    /// Mute (`true`) or unmute the microphone.
    async fn set_mic_muted(&self, muted: bool) -> Result<(), RoomError> {
        self.send(Input::SetMicMuted {
            muted,
            source: Source::DBus,
        })
        .await
    }

    /// Turn the camera on (`true`) or off.
    async fn set_camera_enabled(&self, enabled: bool) -> Result<(), RoomError> {
        self.send(Input::SetCameraEnabled {
            enabled,
            source: Source::DBus,
        })
        .await
    }

    /// Set the speaker volume, 0 to 100 percent. Not implemented yet: nothing sets the
    /// physical volume, so it answers `NotSupported` rather than pretend.
    async fn set_volume(&self, percent: u32) -> Result<(), RoomError> {
        Err(RoomError::NotSupported(format!(
            "SetVolume({percent}): setting the speaker volume is not supported yet"
        )))
    }

    /// `idle`, `joining`, `lobby`, `in-call`, `leaving` or `error`.
    #[zbus(property)]
    fn state(&self) -> String {
        self.shared.read().status.state.as_str().to_owned()
    }

    /// `{url, source}` of the current meeting; empty when idle.
    #[zbus(property)]
    fn meeting(&self) -> Dict {
        let snapshot = self.shared.read();
        match &snapshot.status.meeting {
            Some(m) => dict([
                ("url", Value::from(m.url.as_str())),
                ("source", Value::from(m.source.as_str())),
            ]),
            None => Dict::new(),
        }
    }

    /// Whether the microphone is muted.
    #[zbus(property)]
    fn mic_muted(&self) -> bool {
        self.shared.read().status.mic_muted
    }

    /// Whether the camera is on.
    #[zbus(property)]
    fn camera_enabled(&self) -> bool {
        self.shared.read().status.camera_enabled
    }

    /// Speaker volume in percent.
    #[zbus(property)]
    fn volume(&self) -> u32 {
        self.shared.read().status.volume.into()
    }

    /// Remote participants of the current meeting.
    #[zbus(property)]
    fn participants(&self) -> Vec<ParticipantInfo> {
        self.shared
            .read()
            .status
            .participants
            .iter()
            .map(|p| ParticipantInfo {
                identity: p.identity.clone(),
                name: p.name.clone(),
                audio: p.audio,
                video: p.video,
            })
            .collect()
    }

    /// Upcoming meetings from the room's calendar.
    #[zbus(property)]
    fn next_meetings(&self) -> Vec<NextMeeting> {
        self.shared.read().facts.next_meetings.clone()
    }

    /// Health of the appliance; see docs/dbus-api.md for the keys.
    #[zbus(property)]
    fn health(&self) -> Dict {
        let s = self.shared.read();
        let status = &s.status;
        let calendar_stale = s.calendar.as_ref().is_some_and(|c| c.stale);
        let overall = if status.state.as_str() == "error" {
            "error"
        } else if status.last_error.is_some()
            || status.media_problem.is_some()
            || calendar_stale
            || matches!(s.facts.recovery, Some(Err(_)))
        {
            "degraded"
        } else {
            "ok"
        };
        let mut entries: Vec<(&str, Value)> = vec![
            ("status", Value::from(overall)),
            ("started_at", Value::from(s.facts.started_at)),
            (
                "config_file",
                Value::from(s.facts.config_file.as_deref().unwrap_or("")),
            ),
        ];
        if let Some(e) = &status.last_error {
            entries.push(("last_error_kind", Value::from(e.kind.as_str())));
            entries.push(("last_error", Value::from(e.message.as_str())));
        }
        if let Some(end) = status.last_end {
            entries.push(("last_end", Value::from(end.as_str())));
        }
        if let Some(problem) = &status.media_problem {
            entries.push(("media_problem", Value::from(problem.as_str())));
        }
        match &s.facts.recovery {
            Some(Ok((at, meeting))) => {
                entries.push(("recovered_at", Value::from(*at)));
                entries.push(("recovered_meeting", Value::from(meeting.as_str())));
            }
            Some(Err(reason)) => entries.push(("recovery_refused", Value::from(reason.as_str()))),
            None => {}
        }
        if let Some(server) = s
            .media_live
            .as_ref()
            .and_then(|m| m.media_server.as_deref())
        {
            entries.push(("media_server", Value::from(server)));
        }
        if let Some(path) = s.media_live.as_ref().and_then(|m| m.media_path) {
            entries.push(("media_path", Value::from(path)));
        }
        if let (Some(retry), Some(at)) = (status.retry, s.retry_at_unix_ms) {
            entries.push(("retry_attempt", Value::from(retry.next_attempt)));
            entries.push(("retry_max_attempts", Value::from(retry.max_attempts)));
            entries.push(("retry_at_unix_ms", Value::from(at)));
        }
        if let Some(c) = &s.calendar {
            entries.push(("calendar_sources", Value::from(c.sources)));
            entries.push(("calendar_synced_at", Value::from(c.synced_at)));
            entries.push(("calendar_stale", Value::from(c.stale)));
            if let Some(e) = &c.error {
                entries.push(("calendar_error", Value::from(e.as_str())));
            }
            entries.push((
                "calendar_skipped_components",
                Value::from(c.skipped_components),
            ));
        }
        dict(entries)
    }

    /// What media the room is configured for, and live figures while in a meeting.
    #[zbus(property)]
    fn media(&self) -> Dict {
        let s = self.shared.read();
        let mut entries: Vec<(&str, Value)> = s
            .facts
            .media
            .iter()
            .map(|(k, v)| (*k, Value::from(v.as_str())))
            .collect();
        if let Some(live) = &s.media_live {
            entries.push((
                "received_video_frames",
                Value::from(live.received_video_frames),
            ));
            entries.push((
                "rtp_packets_received",
                Value::from(live.rtp_packets_received),
            ));
            entries.push(("keyframe_requests", Value::from(live.keyframe_requests)));
            entries.push(("resumes", Value::from(live.resumes)));
            entries.push(("rejoins", Value::from(live.rejoins)));
            if let Some(report) = &live.encoder_report {
                entries.push(("encoder_report", Value::from(report.as_str())));
            }
            if let Some(v) = &live.video {
                entries.push(("sending_video_codec", Value::from(v.codec)));
                entries.push(("sending_video_encoder", Value::from(v.encoder.as_str())));
                entries.push((
                    "sending_video_size",
                    Value::from(format!("{}x{}", v.width, v.height)),
                ));
                entries.push(("sending_video_frames", Value::from(v.frames_sent)));
                entries.push(("sending_video_paused", Value::from(v.paused)));
            }
            if let Some(a) = &live.audio {
                entries.push(("sending_audio_codec", Value::from(a.codec)));
                entries.push(("sending_audio_packets", Value::from(a.packets_sent)));
            }
            if let Some(r) = &live.receiver {
                entries.push(("remote_tracks", Value::from(r.tracks.len() as u32)));
                let audio = r.tracks.iter().filter(|t| !t.codec.is_video());
                let packets: u64 = audio.clone().map(|t| t.packets_received).sum();
                entries.push(("received_audio_packets", Value::from(packets)));
                // The loudest remote voice over the last 100 ms: proof that sound arrives.
                if let Some(level) = audio.filter_map(|t| t.audio_level_dbfs).reduce(f64::max) {
                    entries.push(("received_audio_level_dbfs", Value::from(level)));
                }
            }
        }
        dict(entries)
    }

    /// Version of `visio-roomd`.
    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// A failure: `kind` (see Health `last_error_kind`) and a message for people.
    #[zbus(signal)]
    async fn error(emitter: &SignalEmitter<'_>, kind: &str, message: &str) -> zbus::Result<()>;

    /// A physical button was pressed: `join`, `leave`, `mute`, `camera`, `volume-up`, ...
    #[zbus(signal)]
    async fn button_pressed(emitter: &SignalEmitter<'_>, button: &str) -> zbus::Result<()>;

    /// A booked meeting started while the room is in a call started by hand.
    #[zbus(signal)]
    async fn meeting_offered(
        emitter: &SignalEmitter<'_>,
        url: &str,
        summary: &str,
        start: i64,
    ) -> zbus::Result<()>;
}

/// Publishes controller changes as D-Bus `PropertiesChanged` and signals.
pub struct BusPublisher {
    iface: InterfaceRef<RoomInterface>,
}

impl BusPublisher {
    /// A publisher for the registered interface.
    pub fn new(iface: InterfaceRef<RoomInterface>) -> Self {
        BusPublisher { iface }
    }
}

impl Publisher for BusPublisher {
    async fn changed(&self, fields: &[StatusField]) {
        let iface = self.iface.get().await;
        let emitter = self.iface.signal_emitter();
        for field in fields {
            let sent = match field {
                StatusField::State => iface.state_changed(emitter).await,
                StatusField::Meeting => iface.meeting_changed(emitter).await,
                StatusField::MicMuted => iface.mic_muted_changed(emitter).await,
                StatusField::CameraEnabled => iface.camera_enabled_changed(emitter).await,
                StatusField::Volume => iface.volume_changed(emitter).await,
                StatusField::Participants => iface.participants_changed(emitter).await,
                StatusField::Health => iface.health_changed(emitter).await,
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, ?field, "could not emit PropertiesChanged");
            }
        }
    }

    async fn media_changed(&self) {
        let iface = self.iface.get().await;
        if let Err(e) = iface.media_changed(self.iface.signal_emitter()).await {
            tracing::warn!(error = %e, "could not emit PropertiesChanged for Media");
        }
    }

    async fn next_meetings_changed(&self) {
        let iface = self.iface.get().await;
        if let Err(e) = iface
            .next_meetings_changed(self.iface.signal_emitter())
            .await
        {
            tracing::warn!(error = %e, "could not emit PropertiesChanged for NextMeetings");
        }
    }

    async fn meeting_offered(&self, url: &str, summary: &str, start: i64) {
        let emitter = self.iface.signal_emitter();
        if let Err(e) = RoomInterface::meeting_offered(emitter, url, summary, start).await {
            tracing::warn!(error = %e, "could not emit the MeetingOffered signal");
        }
    }

    async fn error(&self, failure: &Failure) {
        let emitter = self.iface.signal_emitter();
        if let Err(e) = RoomInterface::error(emitter, failure.kind.as_str(), &failure.message).await
        {
            tracing::warn!(error = %e, "could not emit the Error signal");
        }
    }
}

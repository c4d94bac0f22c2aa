//! The configuration turned into what each part of the daemon takes: the controller's
//! [`Policy`], the session's [`SessionConfig`] and [`MediaSettings`], the planner's
//! [`PlannerPolicy`] and [`ExpandOptions`], the calendar's [`SourceSpec`]s, and the `Media`
//! property's facts.
//!
//! This is the one module where `visio_room_core::config` meets the other crates' settings
//! types (which must not know the file): a key added to the file is wired here, and nowhere
//! else reads `Config` to build another crate's settings.

use std::time::Duration;

use visio_room_calendar::{Auth, SourceSpec};
use visio_room_core::config::{
    AudioSink, AudioSource, CalendarAuth, CalendarConfig, CalendarSource, Config, ManualCall,
    MediaConfig, VideoSink, VideoSource,
};
use visio_room_core::controller::Policy;
use visio_room_media::{
    AudioSenderConfig, AudioSinkSetting, CameraSetting, CameraSource, MicrophoneSetting,
    MicrophoneSource, ReceiverConfig, VideoSenderConfig, VideoSinkSetting,
};
use visio_room_schedule::planner::{ManualCallPolicy, PlannerPolicy};
use visio_room_schedule::ExpandOptions;
use visio_room_session::{MediaSettings, SessionConfig};

/// The controller's policy: `[room]` and `[join]`.
pub fn controller_policy(config: &Config) -> Policy {
    let join = &config.join;
    Policy {
        max_attempts: join.max_attempts,
        initial_backoff: Duration::from_millis(join.initial_backoff_ms),
        max_backoff: Duration::from_millis(join.max_backoff_ms),
        lobby_timeout: Duration::from_secs(join.lobby_timeout_s),
        leave_timeout: Duration::from_millis(join.leave_timeout_ms),
        join_muted: config.room.join_muted,
        // Rooms restarted together retry a Visio outage at different times.
        retry_seed: visio_room_core::backoff::seed_from(&config.room.name),
        ..Policy::default()
    }
}

/// What every meeting session shares: `[visio]` (the lobby's patience is the controller's). The
/// TLS configuration and the media are added by the backend.
pub fn session_config(config: &Config) -> SessionConfig {
    SessionConfig {
        allowed_hosts: config.visio.allow_list(),
        media_hosts: config.visio.media_host_list(),
        ..SessionConfig::default()
    }
}

/// The media of one session, from `[media]`. The camera is looked up here, at each join, so
/// that a camera plugged in after start-up is used by the next meeting; the error says why it
/// could not be opened.
pub fn media_settings(media: &MediaConfig) -> Result<MediaSettings, String> {
    let camera = match &media.video_source {
        VideoSource::Auto => CameraSetting::Auto,
        VideoSource::Test => CameraSetting::Test,
        VideoSource::Device(p) => CameraSetting::Device(p.clone()),
    };
    let camera = CameraSource::resolve(&camera).map_err(|e| e.to_string())?;
    let microphone = MicrophoneSource::resolve(&match &media.audio_source {
        AudioSource::Auto => MicrophoneSetting::Auto,
        AudioSource::Test => MicrophoneSetting::Test,
        AudioSource::Alsa(d) => MicrophoneSetting::Alsa(d.clone()),
    });
    let video_sink = match media.video_sink {
        VideoSink::Auto => VideoSinkSetting::Auto,
        VideoSink::Kms => VideoSinkSetting::Kms,
        VideoSink::Window => VideoSinkSetting::Window,
        VideoSink::None => VideoSinkSetting::None,
    };
    let audio_sink = match &media.audio_sink {
        AudioSink::Auto => AudioSinkSetting::Auto,
        AudioSink::None => AudioSinkSetting::None,
        AudioSink::Alsa(d) => AudioSinkSetting::Alsa(d.clone()),
    };
    Ok(MediaSettings {
        video: VideoSenderConfig {
            camera,
            width: media.resolution.width,
            height: media.resolution.height,
            fps: media.framerate,
            ..VideoSenderConfig::default()
        },
        audio: AudioSenderConfig {
            microphone,
            ..AudioSenderConfig::default()
        },
        receiver: ReceiverConfig {
            video_sink,
            audio_sink,
            ..ReceiverConfig::default()
        },
        encoder: None,
    })
}

/// The configured media as the `Media` property shows it: every `[media]` key and its value
/// as the file spells it.
pub fn media_facts(media: &MediaConfig) -> Vec<(&'static str, String)> {
    media.values()
}

/// The planner's policy: `[calendar]`.
pub fn planner_policy(calendar: &CalendarConfig) -> PlannerPolicy {
    PlannerPolicy {
        join_lead_s: calendar.join_lead_s,
        leave_grace_s: calendar.leave_grace_s,
        join_tentative: calendar.join_tentative,
        manual_call: match calendar.manual_call {
            ManualCall::Offer => ManualCallPolicy::Offer,
            ManualCall::Switch => ManualCallPolicy::Switch,
        },
        next_count: calendar.show_next as usize,
    }
}

/// How meetings are expanded from the calendar: its zone (the system's when the file names
/// none), the room's address, and the hosts a meeting link may point to.
pub fn expand_options(config: &Config) -> ExpandOptions {
    let calendar = &config.calendar;
    ExpandOptions {
        // Loading checked the name; the system's zone is only for a hand-built value.
        local_zone: calendar
            .time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or_else(visio_room_schedule::zone::system_zone),
        room_address: calendar.room_address.clone(),
        allowed_hosts: config.visio.allow_list(),
    }
}

/// How often each source is fetched (before jitter).
pub fn poll_interval(calendar: &CalendarConfig) -> Duration {
    Duration::from_secs(calendar.poll_interval_s.into())
}

/// One `[[calendar.sources]]` entry as the calendar crate fetches it.
pub fn source_spec(source: &CalendarSource) -> SourceSpec {
    let auth = |auth: &CalendarAuth| match auth {
        CalendarAuth::None => Auth::None,
        CalendarAuth::Basic {
            username,
            password_file,
        } => Auth::Basic {
            username: username.clone(),
            password_file: password_file.clone(),
        },
        CalendarAuth::Bearer { token_file } => Auth::Bearer {
            token_file: token_file.clone(),
        },
    };
    match source {
        CalendarSource::File { path } => SourceSpec::File { path: path.clone() },
        CalendarSource::Ics { url, auth: a } => SourceSpec::Ics {
            url: url.clone(),
            auth: auth(a),
        },
        CalendarSource::CalDav { url, auth: a } => SourceSpec::CalDav {
            url: url.clone(),
            auth: auth(a),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_controller_and_the_session_get_the_join_keys() {
        let c = config(
            "[room]\njoin_muted = true\n[join]\nmax_attempts = 3\ninitial_backoff_ms = 250\n\
             max_backoff_ms = 4000\nlobby_timeout_s = 90\nleave_timeout_ms = 700\n",
        );
        let p = controller_policy(&c);
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.initial_backoff, Duration::from_millis(250));
        assert_eq!(p.max_backoff, Duration::from_secs(4));
        assert_eq!(p.lobby_timeout, Duration::from_secs(90));
        assert_eq!(p.leave_timeout, Duration::from_millis(700));
        assert!(p.join_muted);
    }

    #[test]
    fn the_media_property_shows_every_media_key_as_written() {
        let c = config("[media]\nvideo_source = \"test\"\naudio_sink = \"hw:1,0\"\nresolution = \"640x360\"\nframerate = 15\n");
        let facts = media_facts(&c.media);
        let keys: Vec<_> = facts.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, MediaConfig::KEYS);
        assert_eq!(
            facts,
            [
                ("video_source", "test".to_owned()),
                ("audio_source", "auto".to_owned()),
                ("video_sink", "auto".to_owned()),
                ("audio_sink", "hw:1,0".to_owned()),
                ("resolution", "640x360".to_owned()),
                ("framerate", "15".to_owned()),
            ]
        );
    }

    #[test]
    fn the_media_settings_follow_the_media_keys() {
        let c = config(
            "[media]\nvideo_source = \"test\"\naudio_source = \"test\"\nvideo_sink = \"none\"\n\
             audio_sink = \"none\"\nresolution = \"640x360\"\nframerate = 15\n",
        );
        let m = media_settings(&c.media).unwrap();
        assert_eq!((m.video.width, m.video.height, m.video.fps), (640, 360, 15));
        assert_eq!(m.receiver.video_sink, VideoSinkSetting::None);
        assert_eq!(m.receiver.audio_sink, AudioSinkSetting::None);
    }

    #[test]
    fn the_calendar_keys_reach_the_planner_and_the_sources() {
        let c = config(
            "[calendar]\ntime_zone = \"Europe/Paris\"\njoin_lead_s = 30\nleave_grace_s = 60\n\
             join_tentative = false\nmanual_call = \"switch\"\nshow_next = 2\npoll_interval_s = 45\n\
             [[calendar.sources]]\ntype = \"caldav\"\nurl = \"https://cal.example.org/dav/\"\n\
             username = \"salle\"\npassword_file = \"/etc/visio-room/secrets/caldav\"\n",
        );
        let p = planner_policy(&c.calendar);
        assert_eq!((p.join_lead_s, p.leave_grace_s, p.next_count), (30, 60, 2));
        assert!(!p.join_tentative);
        assert_eq!(p.manual_call, ManualCallPolicy::Switch);
        assert_eq!(poll_interval(&c.calendar), Duration::from_secs(45));
        assert_eq!(expand_options(&c).local_zone.to_string(), "Europe/Paris");
        assert_eq!(
            source_spec(&c.calendar.sources[0]),
            SourceSpec::CalDav {
                url: "https://cal.example.org/dav/".parse().unwrap(),
                auth: Auth::Basic {
                    username: "salle".into(),
                    password_file: "/etc/visio-room/secrets/caldav".into()
                }
            }
        );
    }
}

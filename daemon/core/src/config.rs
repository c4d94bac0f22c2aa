//! The configuration file: `/etc/visio-room/config.toml` (TOML).
//!
//! Every key is optional: with no file at all the room runs on built-in defaults. What is in the
//! file is checked strictly, because an appliance is set up once and then left alone: an unknown
//! key is refused (a typo must not silently fall back to a default), and every error names the
//! file, the line and column, the dotted key, and what is expected. `docs/configuration.md` is the
//! reference of every key; `docs/examples/config.toml` is a commented example that is accepted as
//! is (a test checks it).
//!
//! The file is read with `toml`'s spanned document model rather than serde derive, so that the
//! position of each key and value is known for every message, including semantic checks (a
//! resolution that is not `WIDTHxHEIGHT`, a meeting URL on a host not allowed).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::meeting_url::{AllowedHosts, MeetingUrl};

mod calendar;

pub use calendar::{CalendarAuth, CalendarConfig, CalendarSource, ManualCall};

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/visio-room/config.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `[room]`
    pub room: RoomConfig,
    /// `[visio]`
    pub visio: VisioConfig,
    /// `[media]`
    pub media: MediaConfig,
    /// `[join]`
    pub join: JoinConfig,
    /// `[calendar]`
    pub calendar: CalendarConfig,
}

/// `[room]`: the room itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// The name shown to other participants.
    pub name: String,
    /// Whether each meeting starts with the microphone muted.
    pub join_muted: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            name: "Visio Room".into(),
            join_muted: false,
        }
    }
}

/// `[visio]`: which service the room may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisioConfig {
    /// Hosts (with optional port) whose meetings may be joined, in canonical form
    /// (`visio.numerique.gouv.fr`, `127.0.0.1:7880`, `[::1]:7880`). Never empty once loaded.
    pub allowed_hosts: Vec<String>,
    /// What the Join button joins when no meeting is planned, validated against
    /// `allowed_hosts`.
    pub default_meeting: Option<MeetingUrl>,
    /// Hosts the meetings' media server (LiveKit) may be on, in canonical form. `None` (the
    /// default): the media server that an allowed meeting host announces (over verified TLS)
    /// is used. See `docs/meeting-urls.md`.
    pub media_hosts: Option<Vec<String>>,
}

impl VisioConfig {
    /// The allow-list that meeting URLs are checked against ([`MeetingUrl::parse`]).
    pub fn allow_list(&self) -> AllowedHosts {
        // Loading validated every entry; a hand-built value falls back to allowing nothing.
        AllowedHosts::parse(&self.allowed_hosts).unwrap_or_default()
    }

    /// The media-server restriction, if the configuration sets one.
    pub fn media_host_list(&self) -> Option<AllowedHosts> {
        self.media_hosts
            .as_ref()
            .map(|h| AllowedHosts::parse(h).unwrap_or_default())
    }
}

impl Default for VisioConfig {
    fn default() -> Self {
        VisioConfig {
            allowed_hosts: vec!["visio.numerique.gouv.fr".into()],
            default_meeting: None,
            media_hosts: None,
        }
    }
}

/// `[media]`: camera, microphone, display and speakers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// The camera.
    pub video_source: VideoSource,
    /// The microphone.
    pub audio_source: AudioSource,
    /// Where remote video is shown.
    pub video_sink: VideoSink,
    /// Where remote audio is played.
    pub audio_sink: AudioSink,
    /// The size of the video the room sends.
    pub resolution: Resolution,
    /// Frames per second the room sends.
    pub framerate: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            video_source: VideoSource::Auto,
            audio_source: AudioSource::Auto,
            video_sink: VideoSink::Auto,
            audio_sink: AudioSink::Auto,
            resolution: Resolution::default(),
            framerate: 30,
        }
    }
}

/// `[join]`: retries and time-outs of joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinConfig {
    /// Attempts to join one meeting, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled each time.
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts.
    pub max_backoff_ms: u64,
    /// Give up waiting in a lobby after this long.
    pub lobby_timeout_s: u64,
    /// How long leaving may take before the session is dropped.
    pub leave_timeout_ms: u64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            max_attempts: 6,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            lobby_timeout_s: 600,
            leave_timeout_ms: 5_000,
        }
    }
}

/// `media.video_source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoSource {
    /// The first camera found, else a test pattern.
    #[default]
    Auto,
    /// A moving test pattern.
    Test,
    /// A V4L2 device such as `/dev/video0`.
    Device(PathBuf),
}

/// `media.audio_source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSource {
    /// The default ALSA capture device if there is a sound card, else a test tone.
    #[default]
    Auto,
    /// A test tone.
    Test,
    /// An ALSA device name such as `hw:1,0` or `plughw:CARD=Speaker`.
    Alsa(String),
}

/// `media.video_sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoSink {
    /// KMS when a display is connected, else a window when a desktop runs, else none.
    #[default]
    Auto,
    /// Full screen on the display through KMS (no desktop).
    Kms,
    /// A window on the desktop.
    Window,
    /// Decode but show nothing (measurements, headless rooms).
    None,
}

/// `media.audio_sink`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSink {
    /// The default ALSA playback device if there is a sound card, else none.
    #[default]
    Auto,
    /// Decode but play nothing.
    None,
    /// An ALSA device name.
    Alsa(String),
}

/// `media.resolution`: `WIDTHxHEIGHT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for Resolution {
    fn default() -> Self {
        Resolution {
            width: 1280,
            height: 720,
        }
    }
}

impl fmt::Display for VideoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoSource::Auto => f.write_str("auto"),
            VideoSource::Test => f.write_str("test"),
            VideoSource::Device(p) => write!(f, "{}", p.display()),
        }
    }
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSource::Auto => f.write_str("auto"),
            AudioSource::Test => f.write_str("test"),
            AudioSource::Alsa(d) => f.write_str(d),
        }
    }
}

impl fmt::Display for VideoSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VideoSink::Auto => "auto",
            VideoSink::Kms => "kms",
            VideoSink::Window => "window",
            VideoSink::None => "none",
        })
    }
}

impl fmt::Display for AudioSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSink::Auto => f.write_str("auto"),
            AudioSink::None => f.write_str("none"),
            AudioSink::Alsa(d) => f.write_str(d),
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for Resolution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || format!("expected \"WIDTHxHEIGHT\" such as \"1280x720\", got {s:?}");
        let (w, h) = s.split_once('x').ok_or_else(expected)?;
        let width: u32 = w.parse().map_err(|_| expected())?;
        let height: u32 = h.parse().map_err(|_| expected())?;
        if !(160..=3840).contains(&width) || !(120..=2160).contains(&height) {
            return Err(format!(
                "{s:?} is out of range: from 160x120 to 3840x2160, such as \"1280x720\""
            ));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "{s:?}: width and height must be even (video encoders need it), such as \"1280x720\""
            ));
        }
        Ok(Resolution { width, height })
    }
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// This file.
    File(PathBuf),
    /// No file: built-in defaults.
    Defaults,
}

/// A configuration error: file, position, key and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Line and column (1-based), when the error has a position.
    pub position: Option<(usize, usize)>,
    /// The dotted key (`media.framerate`), when the error is about one.
    pub key: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// Loads `path`. Errors name the file, and for content errors the line, column and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let unreadable = |message: String| ConfigError {
            file: path.to_owned(),
            position: None,
            key: None,
            message,
        };
        let bytes = std::fs::read(path)
            .map_err(|e| unreadable(format!("cannot read the configuration file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, column) = {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                line_column(valid, valid.len())
            };
            ConfigError {
                position: Some((line, column)),
                ..unreadable("the file is not UTF-8 text; save it as UTF-8".into())
            }
        })?;
        // Editors on Windows may start the file with a byte-order mark, which TOML refuses.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        Config::from_toml_str(text, path)
    }

    /// Parses configuration text; `origin` is the file named in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let reader = Reader { text, origin };
        let doc = DeTable::parse(text).map_err(|e| {
            let key = e.span().and_then(|span| key_at(text, span.start));
            reader.error(e.span(), key.as_deref(), e.message())
        })?;
        reader.config(doc.get_ref())
    }

    /// `explicit` (from `--config`) must exist; without it, [`DEFAULT_CONFIG_PATH`] is read if
    /// it exists, else the built-in defaults are used.
    pub fn load_or_default(explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                if !default.exists() {
                    return Ok((Config::default(), ConfigSource::Defaults));
                }
                default
            }
        };
        let config = Config::load(&path)?;
        Ok((config, ConfigSource::File(path)))
    }
}

/// Every section and its keys, in the order of `docs/configuration.md`.
const SCHEMA: &[(&str, &[&str])] = &[
    ("room", &["name", "join_muted"]),
    (
        "visio",
        &["allowed_hosts", "media_hosts", "default_meeting"],
    ),
    (
        "media",
        &[
            "video_source",
            "audio_source",
            "video_sink",
            "audio_sink",
            "resolution",
            "framerate",
        ],
    ),
    (
        "join",
        &[
            "max_attempts",
            "initial_backoff_ms",
            "max_backoff_ms",
            "lobby_timeout_s",
            "leave_timeout_ms",
        ],
    ),
    ("calendar", calendar::KEYS),
];

/// The keys of `section` in [`SCHEMA`].
fn keys_of(section: &str) -> &'static [&'static str] {
    SCHEMA
        .iter()
        .find(|(s, _)| *s == section)
        .map_or(&[], |(_, keys)| keys)
}

/// Levenshtein distance, to suggest the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Walks the spanned document, checking each section against what it may contain.
struct Reader<'a> {
    text: &'a str,
    origin: &'a Path,
}

type Item<'i> = Spanned<DeValue<'i>>;

/// A value read from the file, with where it was (a byte range of the text).
type At<T> = (T, Range<usize>);

/// A value read from the file if the key is there.
type Located<T> = Option<At<T>>;

impl Reader<'_> {
    fn error(&self, span: Option<Range<usize>>, key: Option<&str>, message: &str) -> ConfigError {
        ConfigError {
            file: self.origin.to_owned(),
            position: span.map(|s| line_column(self.text, s.start)),
            key: key.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    fn config(&self, doc: &DeTable<'_>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let sections: Vec<&str> = SCHEMA.iter().map(|(s, _)| *s).collect();
        self.check_keys(doc, None, &sections)?;
        if let Some(t) = self.section(doc, "room")? {
            self.check_keys(t, Some("room"), keys_of("room"))?;
            if let Some((name, span)) = self.string(t, "room", "name")? {
                let name = name.trim().to_owned();
                if name.is_empty()
                    || name.chars().count() > 64
                    || name.chars().any(char::is_control)
                {
                    return Err(self.error(
                        Some(span),
                        Some("room.name"),
                        "expected the room's name, 1 to 64 printable characters",
                    ));
                }
                config.room.name = name;
            }
            if let Some(v) = self.boolean(t, "room", "join_muted")? {
                config.room.join_muted = v;
            }
        }
        if let Some(t) = self.section(doc, "visio")? {
            self.check_keys(t, Some("visio"), keys_of("visio"))?;
            if let Some(hosts) = self.host_list(t, "allowed_hosts", "no meeting could be joined")? {
                config.visio.allowed_hosts = hosts;
            }
            if let Some(hosts) = self.host_list(
                t,
                "media_hosts",
                "no meeting's media server would be allowed",
            )? {
                config.visio.media_hosts = Some(hosts);
            }
            if let Some((url, span)) = self.string(t, "visio", "default_meeting")? {
                let url = MeetingUrl::parse(&url, &config.visio.allow_list()).map_err(|e| {
                    self.error(Some(span), Some("visio.default_meeting"), &e.to_string())
                })?;
                config.visio.default_meeting = Some(url);
            }
        }
        if let Some(t) = self.section(doc, "media")? {
            self.media(t, &mut config.media)?;
        }
        if let Some(t) = self.section(doc, "join")? {
            self.join(t, &mut config.join)?;
        }
        if let Some(t) = self.section(doc, "calendar")? {
            self.calendar(t, &mut config.calendar)?;
        }
        Ok(config)
    }

    /// `visio.<key>`: a non-empty list of hosts, each checked on its own (so that the error
    /// points at the wrong one), in canonical form.
    fn host_list(
        &self,
        t: &DeTable<'_>,
        key: &str,
        if_empty: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let name = format!("visio.{key}");
        let Some((hosts, span)) = self.strings(t, "visio", key)? else {
            return Ok(None);
        };
        if hosts.is_empty() {
            return Err(self.error(
                Some(span),
                Some(name.as_str()),
                &format!("the list is empty, so {if_empty}; expected hosts such as [\"visio.numerique.gouv.fr\"]"),
            ));
        }
        let mut canonical = Vec::with_capacity(hosts.len());
        for (host, span) in &hosts {
            let parsed = AllowedHosts::parse(&[host])
                .map_err(|e| self.error(Some(span.clone()), Some(name.as_str()), &e.to_string()))?;
            canonical.extend(parsed.entries());
        }
        Ok(Some(canonical))
    }

    fn media(&self, t: &DeTable<'_>, m: &mut MediaConfig) -> Result<(), ConfigError> {
        self.check_keys(t, Some("media"), keys_of("media"))?;
        if let Some((v, span)) = self.string(t, "media", "video_source")? {
            m.video_source = match v.as_str() {
                "auto" => VideoSource::Auto,
                "test" => VideoSource::Test,
                p if is_device_path(p) => VideoSource::Device(p.into()),
                _ => {
                    return Err(self.error(
                        Some(span),
                        Some("media.video_source"),
                        &format!("expected \"auto\", \"test\" or a V4L2 device path such as \"/dev/video0\", got {v:?}"),
                    ))
                }
            };
        }
        if let Some((v, span)) = self.string(t, "media", "audio_source")? {
            m.audio_source = match v.as_str() {
                "auto" => AudioSource::Auto,
                "test" => AudioSource::Test,
                d => AudioSource::Alsa(self.alsa_name(d, span, "media.audio_source")?),
            };
        }
        if let Some((v, span)) = self.string(t, "media", "video_sink")? {
            m.video_sink = match v.as_str() {
                "auto" => VideoSink::Auto,
                "kms" => VideoSink::Kms,
                "window" => VideoSink::Window,
                "none" => VideoSink::None,
                _ => {
                    return Err(self.error(
                        Some(span),
                        Some("media.video_sink"),
                        &format!("expected \"auto\", \"kms\", \"window\" or \"none\", got {v:?}"),
                    ))
                }
            };
        }
        if let Some((v, span)) = self.string(t, "media", "audio_sink")? {
            m.audio_sink = match v.as_str() {
                "auto" => AudioSink::Auto,
                "none" => AudioSink::None,
                d => AudioSink::Alsa(self.alsa_name(d, span, "media.audio_sink")?),
            };
        }
        if let Some((v, span)) = self.string(t, "media", "resolution")? {
            m.resolution = v
                .parse()
                .map_err(|e: String| self.error(Some(span), Some("media.resolution"), &e))?;
        }
        if let Some(v) = self.integer(t, "media", "framerate", 1, 60)? {
            m.framerate = v as u32;
        }
        Ok(())
    }

    fn alsa_name(&self, d: &str, span: Range<usize>, key: &str) -> Result<String, ConfigError> {
        let valid = !d.is_empty()
            && d.len() <= 128
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || ",:=_-.".contains(c));
        if valid {
            Ok(d.to_owned())
        } else {
            Err(self.error(
                Some(span),
                Some(key),
                &format!(
                    "expected \"auto\", \"test\" or \"none\" as documented, or an ALSA device name such as \"hw:1,0\" or \"plughw:CARD=Speaker\", got {d:?}"
                ),
            ))
        }
    }

    fn join(&self, t: &DeTable<'_>, j: &mut JoinConfig) -> Result<(), ConfigError> {
        self.check_keys(t, Some("join"), keys_of("join"))?;
        if let Some(v) = self.integer(t, "join", "max_attempts", 1, 100)? {
            j.max_attempts = v as u32;
        }
        if let Some(v) = self.integer(t, "join", "initial_backoff_ms", 10, 600_000)? {
            j.initial_backoff_ms = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "max_backoff_ms", 10, 3_600_000)? {
            j.max_backoff_ms = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "lobby_timeout_s", 10, 86_400)? {
            j.lobby_timeout_s = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "leave_timeout_ms", 100, 60_000)? {
            j.leave_timeout_ms = v as u64;
        }
        if j.max_backoff_ms < j.initial_backoff_ms {
            // Point at whichever of the two the file sets (the other one is the default).
            return Err(match t.get("max_backoff_ms") {
                Some(max) => self.error(
                    Some(max.span()),
                    Some("join.max_backoff_ms"),
                    &format!(
                        "must be at least join.initial_backoff_ms ({})",
                        j.initial_backoff_ms
                    ),
                ),
                None => self.error(
                    t.get("initial_backoff_ms").map(|v| v.span()),
                    Some("join.initial_backoff_ms"),
                    &format!(
                        "must be at most join.max_backoff_ms ({}, the default); raise that too",
                        j.max_backoff_ms
                    ),
                ),
            });
        }
        Ok(())
    }

    /// Refuses keys of `t` not in `known`, naming the unknown one and the valid ones.
    fn check_keys(
        &self,
        t: &DeTable<'_>,
        section: Option<&str>,
        known: &[&str],
    ) -> Result<(), ConfigError> {
        for key in t.keys() {
            let name: &str = key.get_ref().as_ref();
            if !known.contains(&name) {
                let dotted = dotted(section, name);
                let what = if section.is_some() { "key" } else { "section" };
                let mut message = format!("unknown {what}; expected one of {}", known.join(", "));
                if let Some((home, _)) = SCHEMA
                    .iter()
                    .find(|(s, keys)| Some(*s) != section && keys.contains(&name))
                {
                    message.push_str(&format!(" ({name} belongs in [{home}])"));
                } else if let Some(near) = known.iter().find(|k| edit_distance(k, name) <= 2) {
                    message.push_str(&format!(" (did you mean {near}?)"));
                }
                return Err(self.error(Some(key.span()), Some(&dotted), &message));
            }
        }
        Ok(())
    }

    fn section<'t, 'i>(
        &self,
        doc: &'t DeTable<'i>,
        name: &str,
    ) -> Result<Option<&'t DeTable<'i>>, ConfigError> {
        match doc.get(name) {
            None => Ok(None),
            Some(item) => item.get_ref().as_table().map(Some).ok_or_else(|| {
                self.error(
                    Some(item.span()),
                    Some(name),
                    &format!(
                        "expected a section [{name}], got {}",
                        a_type(item.get_ref().type_str())
                    ),
                )
            }),
        }
    }

    fn item<'t, 'i>(&self, t: &'t DeTable<'i>, key: &str) -> Option<&'t Item<'i>> {
        t.get(key)
    }

    fn type_error(&self, item: &Item<'_>, section: &str, key: &str, expected: &str) -> ConfigError {
        self.error(
            Some(item.span()),
            Some(&format!("{section}.{key}")),
            &format!(
                "expected {expected}, got {}",
                a_type(item.get_ref().type_str())
            ),
        )
    }

    fn string(
        &self,
        t: &DeTable<'_>,
        section: &str,
        key: &str,
    ) -> Result<Located<String>, ConfigError> {
        let Some(item) = self.item(t, key) else {
            return Ok(None);
        };
        match item.get_ref().as_str() {
            Some(s) => Ok(Some((s.to_owned(), item.span()))),
            None => Err(self.type_error(item, section, key, "a string")),
        }
    }

    fn strings(
        &self,
        t: &DeTable<'_>,
        section: &str,
        key: &str,
    ) -> Result<Located<Vec<At<String>>>, ConfigError> {
        let Some(item) = self.item(t, key) else {
            return Ok(None);
        };
        let array = item
            .get_ref()
            .as_array()
            .ok_or_else(|| self.type_error(item, section, key, "a list of strings"))?;
        let mut out = Vec::new();
        for element in array.iter() {
            match element.get_ref().as_str() {
                Some(s) => out.push((s.to_owned(), element.span())),
                None => {
                    return Err(self.type_error(element, section, key, "a list of strings"));
                }
            }
        }
        Ok(Some((out, item.span())))
    }

    fn boolean(
        &self,
        t: &DeTable<'_>,
        section: &str,
        key: &str,
    ) -> Result<Option<bool>, ConfigError> {
        let Some(item) = self.item(t, key) else {
            return Ok(None);
        };
        item.get_ref()
            .as_bool()
            .map(Some)
            .ok_or_else(|| self.type_error(item, section, key, "true or false"))
    }

    fn integer(
        &self,
        t: &DeTable<'_>,
        section: &str,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(item) = self.item(t, key) else {
            return Ok(None);
        };
        let expected = format!("a whole number from {min} to {max}");
        let integer = item
            .get_ref()
            .as_integer()
            .ok_or_else(|| self.type_error(item, section, key, &expected))?;
        let value = i64::from_str_radix(&integer.as_str().replace('_', ""), integer.radix())
            .map_err(|_| {
                self.error(
                    Some(item.span()),
                    Some(&format!("{section}.{key}")),
                    &format!("expected {expected}, got {}", integer.as_str()),
                )
            })?;
        if !(min..=max).contains(&value) {
            return Err(self.error(
                Some(item.span()),
                Some(&format!("{section}.{key}")),
                &format!("expected {expected}, got {value}"),
            ));
        }
        Ok(Some(value))
    }
}

/// The dotted key a syntax error at byte `offset` is about, read from the text around it: the
/// key of a `key = value` line (when the error is in its value) and the table header above.
/// `None` when the line is not an assignment (the error is then in a header or a key).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    if !text.is_char_boundary(offset) {
        return None;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let (key, _) = line.split_once('=')?;
    if line_start + key.len() >= offset {
        return None;
    }
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.split('.').all(|part| {
                let part = part.trim();
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
    };
    if !bare(key) {
        return None;
    }
    let header = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim_matches(['[', ' ']);
        bare(inner).then(|| inner.to_owned())
    });
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_owned(),
    })
}

/// "a string", "an integer": the TOML type of a value, for messages.
fn a_type(type_str: &str) -> String {
    let article = if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_str}")
}

/// A path under `/dev/` without `..`, empty components or control characters: the
/// configuration may come from the fleet, and must not name a file elsewhere.
fn is_device_path(p: &str) -> bool {
    p.strip_prefix("/dev/").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && !rest.chars().any(char::is_control)
    })
}

fn dotted(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_owned(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `/etc/visio-room/config.toml` (also used by the section modules' tests).
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("/etc/visio-room/config.toml"))
    }

    /// The error message of `text`, which must be refused.
    pub(super) fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.media.resolution.to_string(), "1280x720");
        assert_eq!(c.media.framerate, 30);
        assert_eq!(c.visio.allowed_hosts, vec!["visio.numerique.gouv.fr"]);
    }

    #[test]
    fn the_documented_core_keys_are_read() {
        let c = parse(
            r#"
[room]
name = "Salle Jean Moulin"
join_muted = true
[visio]
allowed_hosts = ["visio.numerique.gouv.fr", "127.0.0.1:7880"]
default_meeting = "https://visio.numerique.gouv.fr/ABCDEFGHIJ"
[media]
video_source = "/dev/video2"
audio_source = "plughw:CARD=Speaker"
video_sink = "kms"
audio_sink = "none"
resolution = "1920x1080"
framerate = 25
[join]
max_attempts = 3
"#,
        )
        .unwrap();
        assert_eq!(c.room.name, "Salle Jean Moulin");
        assert!(c.room.join_muted);
        assert_eq!(
            c.visio.default_meeting.as_ref().map(MeetingUrl::as_str),
            Some("https://visio.numerique.gouv.fr/abc-defg-hij")
        );
        assert_eq!(
            c.media.video_source,
            VideoSource::Device("/dev/video2".into())
        );
        assert_eq!(
            c.media.audio_source,
            AudioSource::Alsa("plughw:CARD=Speaker".into())
        );
        assert_eq!(c.media.video_sink, VideoSink::Kms);
        assert_eq!(c.media.audio_sink, AudioSink::None);
        assert_eq!(
            c.media.resolution,
            Resolution {
                width: 1920,
                height: 1080
            }
        );
        assert_eq!(c.media.framerate, 25);
        assert_eq!(c.join.max_attempts, 3);
        assert_eq!(c.join.lobby_timeout_s, 600);
    }

    #[test]
    fn unknown_keys_are_refused_with_file_line_and_key() {
        let e = err("[room]\nname = \"A\"\n\n[media]\ncolour = \"blue\"\n");
        assert!(
            e.starts_with("/etc/visio-room/config.toml:5:1: media.colour: unknown key; expected one of video_source"),
            "{e}"
        );
        let e = err("[media]\nframrate = 25\n");
        assert!(
            e.ends_with(":2:1: media.framrate: unknown key; expected one of video_source, audio_source, video_sink, audio_sink, resolution, framerate (did you mean framerate?)"),
            "{e}"
        );
        let e = err("[room]\nframerate = 25\n");
        assert!(e.ends_with("(framerate belongs in [media])"), "{e}");
        let e = err("name = \"Salle\"\n");
        assert!(
            e.contains(":1:1: name: unknown section; expected one of room, visio, media, join, calendar (name belongs in [room])"),
            "{e}"
        );
        let e = err("[roomz]\n");
        assert!(
            e.ends_with(":1:2: roomz: unknown section; expected one of room, visio, media, join, calendar (did you mean room?)"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_and_values_name_the_key_and_what_is_expected() {
        let e = err("[media]\nresolution = \"720p\"\n");
        assert!(e.contains(":2:14: media.resolution: expected \"WIDTHxHEIGHT\" such as \"1280x720\", got \"720p\""), "{e}");
        let e = err("[media]\nframerate = \"30\"\n");
        assert!(
            e.contains("media.framerate: expected a whole number from 1 to 60, got a string"),
            "{e}"
        );
        let e = err("[media]\nframerate = 120\n");
        assert!(
            e.contains("media.framerate: expected a whole number from 1 to 60, got 120"),
            "{e}"
        );
        let e = err("[media]\nresolution = \"1281x720\"\n");
        assert!(e.contains("even"), "{e}");
        let e = err("[media]\nvideo_sink = \"hdmi\"\n");
        assert!(
            e.contains("media.video_sink: expected \"auto\", \"kms\", \"window\" or \"none\""),
            "{e}"
        );
        for bad in [
            "webcam",
            "/dev/",
            "/dev/../etc/shadow",
            "/dev//video0",
            "video0",
        ] {
            let e = err(&format!("[media]\nvideo_source = {bad:?}\n"));
            assert!(
                e.contains("media.video_source: expected") && e.contains("/dev/video0"),
                "{e}"
            );
        }
        let c = parse(
            "[media]\nvideo_source = \"/dev/v4l/by-path/platform-xhci-usb-0:1:1.0-video-index0\"\n",
        )
        .unwrap();
        assert!(matches!(c.media.video_source, VideoSource::Device(_)));
        let e = err("[room]\njoin_muted = \"yes\"\n");
        assert!(
            e.contains("room.join_muted: expected true or false, got a string"),
            "{e}"
        );
        let e = err("media = 3\n");
        assert!(
            e.contains(":1:9: media: expected a section [media], got an integer"),
            "{e}"
        );
        let e = err("[room]\nname = \"\"\n");
        assert!(e.contains("room.name"), "{e}");
        let e = err("[join]\ninitial_backoff_ms = 5000\nmax_backoff_ms = 1000\n");
        assert!(
            e.contains(
                ":3:18: join.max_backoff_ms: must be at least join.initial_backoff_ms (5000)"
            ),
            "{e}"
        );
        let e = err("[join]\ninitial_backoff_ms = 100000\n");
        assert!(
            e.contains(":2:22: join.initial_backoff_ms: must be at most join.max_backoff_ms (60000, the default)"),
            "{e}"
        );
    }

    #[test]
    fn media_hosts_are_optional_and_checked_like_allowed_hosts() {
        assert_eq!(parse("").unwrap().visio.media_hosts, None);
        let c = parse("[visio]\nmedia_hosts = [\"LiveKit.Visio.example:443\", \"[::1]:7880\"]\n")
            .unwrap();
        assert_eq!(
            c.visio.media_hosts.as_deref(),
            Some(
                &[
                    "livekit.visio.example:443".to_owned(),
                    "[::1]:7880".to_owned()
                ][..]
            )
        );
        let e = err("[visio]\nmedia_hosts = []\n");
        assert!(e.contains("visio.media_hosts: the list is empty"), "{e}");
        let e = err("[visio]\nmedia_hosts = [\"wss://livekit.example\"]\n");
        assert!(e.contains(":2:16: visio.media_hosts:"), "{e}");
    }

    #[test]
    fn allowed_hosts_and_default_meeting_are_checked() {
        let e = err("[visio]\nallowed_hosts = []\n");
        assert!(e.contains("visio.allowed_hosts: the list is empty"), "{e}");
        let e = err("[visio]\nallowed_hosts = [\"https://visio.numerique.gouv.fr\"]\n");
        assert!(
            e.contains(":2:18: visio.allowed_hosts:") && e.contains("without scheme"),
            "{e}"
        );
        // The error points at the wrong entry, not at the list.
        let e = err(
            "[visio]\nallowed_hosts = [\n  \"visio.numerique.gouv.fr\",\n  \"*.gouv.fr\",\n]\n",
        );
        assert!(
            e.starts_with("/etc/visio-room/config.toml:4:3: visio.allowed_hosts: \"*.gouv.fr\""),
            "{e}"
        );
        let c = parse("[visio]\nallowed_hosts = [\"Visio.Numerique.Gouv.FR\", \"127.1:7880\"]\n")
            .unwrap();
        assert_eq!(
            c.visio.allowed_hosts,
            ["visio.numerique.gouv.fr", "127.0.0.1:7880"]
        );
        assert_eq!(c.visio.allow_list().entries(), c.visio.allowed_hosts);
        let e = err("[visio]\nallowed_hosts = [3]\n");
        assert!(
            e.contains("visio.allowed_hosts: expected a list of strings"),
            "{e}"
        );
        let e = err("[visio]\ndefault_meeting = \"https://meet.example.com/abc-defg-hij\"\n");
        assert!(
            e.contains("visio.default_meeting: meetings on meet.example.com are not allowed"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_name_the_key_when_there_is_one() {
        for (text, expected) in [
            (
                "[room]\nname = Salle\n",
                ":2:8: room.name: string values must be quoted",
            ),
            (
                "[room]\nname = \"a\"\nname = \"b\"\n",
                ":3:1: duplicate key",
            ),
            (
                "[media]\nframerate = 99999999999999999999\n",
                ":2:13: media.framerate: expected a whole number from 1 to 60, got 99999999999999999999",
            ),
            (
                "[ visio ]\nallowed_hosts = [\"a\"\n",
                ": visio.allowed_hosts: ",
            ),
            ("framerate = 3 3\n", ":1:13: framerate: "),
            ("[room\nname = 1\n", ":1:6: unclosed table"),
        ] {
            let e = err(text);
            assert!(e.contains(expected), "{text:?}: {e}");
        }
        assert_eq!(key_at("[a]\nb = c", 8), Some("a.b".into()));
        assert_eq!(key_at("[a]\nb = c", 4), None);
        assert_eq!(key_at("x = \"=\"", 5), Some("x".into()));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("[room\nname = 1\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");
        let e = parse("[room]\nname = \"unterminated\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error_naming_it() {
        let e = Config::load_or_default(Some(Path::new("/nonexistent/x.toml"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_example_is_accepted_as_is() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/examples/config.toml"
        ));
        let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.room.name, "Salle Jean Moulin");
    }

    #[test]
    fn suggestions_measure_the_edit_distance() {
        assert_eq!(edit_distance("framerate", "framerate"), 0);
        assert_eq!(edit_distance("framrate", "framerate"), 1);
        assert_eq!(edit_distance("frame_rate", "framerate"), 1);
        assert_eq!(edit_distance("colour", "framerate"), 8);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_either_a_config_or_a_located_error(text in "(\\[(room|media|visio|join)\\]\n|[a-z_]{1,14} = |\"[^\"\n]{0,12}\"|[0-9]{1,6}|\\[|\\]|\n|é|=|#|\\PC){0,40}") {
            if let Err(e) = parse(&text) {
                let (line, column) = e.position.expect("every content error has a position");
                proptest::prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
                proptest::prop_assert!(column >= 1);
                proptest::prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("a\nbé c", 6), (2, 4));
        assert_eq!(line_column("abc", 0), (1, 1));
    }
}

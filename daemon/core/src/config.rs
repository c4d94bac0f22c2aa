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
use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::de::DeTable;

mod calendar;
mod join;
mod keys;
mod media;
mod reader;
mod room;
mod visio;

pub use calendar::{CalendarAuth, CalendarConfig, CalendarSource, ManualCall};
pub use join::JoinConfig;
pub use keys::KeySchema;
pub use media::{AudioSink, AudioSource, MediaConfig, Resolution, VideoSink, VideoSource};
pub use room::RoomConfig;
pub use visio::VisioConfig;

use calendar::SourceKeys;
use reader::{key_at, line_column, Reader};

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
const SECTIONS: &[(&str, &[&str])] = &[
    (RoomConfig::SECTION, RoomConfig::KEYS),
    (VisioConfig::SECTION, VisioConfig::KEYS),
    (MediaConfig::SECTION, MediaConfig::KEYS),
    (JoinConfig::SECTION, JoinConfig::KEYS),
    (CalendarConfig::SECTION, CalendarConfig::KEYS),
];

impl Config {
    /// Every key of the file — section, name, TOML type, what it must be, default and
    /// documentation — in the order of `docs/configuration.md`, the keys of each
    /// `[[calendar.sources]]` table last (section `calendar.sources`).
    pub fn schema() -> Vec<KeySchema> {
        [
            RoomConfig::schema(),
            VisioConfig::schema(),
            MediaConfig::schema(),
            JoinConfig::schema(),
            CalendarConfig::schema(),
            SourceKeys::schema(),
        ]
        .concat()
    }
}

impl Reader<'_> {
    fn config(&self, doc: &DeTable<'_>) -> Result<Config, ConfigError> {
        let sections: Vec<&str> = SECTIONS.iter().map(|(s, _)| *s).collect();
        self.check_keys(doc, None, &sections)?;
        let mut config = Config::default();
        if let Some(t) = self.section(doc, RoomConfig::SECTION)? {
            config.room = RoomConfig::read(self, t)?;
        }
        if let Some(t) = self.section(doc, VisioConfig::SECTION)? {
            config.visio = VisioConfig::read(self, t)?;
        }
        if let Some(t) = self.section(doc, MediaConfig::SECTION)? {
            config.media = MediaConfig::read(self, t)?;
        }
        if let Some(t) = self.section(doc, JoinConfig::SECTION)? {
            config.join = JoinConfig::read(self, t)?;
            config.join.check(self, t)?;
        }
        if let Some(t) = self.section(doc, CalendarConfig::SECTION)? {
            config.calendar = CalendarConfig::read(self, t)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::reader::edit_distance;
    use super::*;
    use crate::meeting_url::MeetingUrl;

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
    fn the_schema_lists_every_key_once_and_its_defaults_are_the_defaults() {
        let schema = Config::schema();
        let mut seen = std::collections::BTreeSet::new();
        for row in &schema {
            assert!(seen.insert(row.dotted()), "{} declared twice", row.dotted());
            assert!(!row.doc.is_empty() && !row.expected.is_empty(), "{row:?}");
        }
        for (section, keys) in SECTIONS {
            for key in *keys {
                assert!(
                    seen.contains(&format!("{section}.{key}")),
                    "{section}.{key}"
                );
            }
        }
        // Writing out every default of the schema gives the built-in defaults.
        let mut file = toml::Table::new();
        for row in schema.iter().filter(|r| r.section != "calendar.sources") {
            if let Some(default) = &row.default {
                let section = file
                    .entry(row.section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                section
                    .as_table_mut()
                    .unwrap()
                    .insert(row.key.into(), default.clone());
            }
        }
        let text = toml::to_string(&file).unwrap();
        assert_eq!(parse(&text).unwrap(), Config::default(), "{text}");
        let framerate = schema.iter().find(|r| r.dotted() == "media.framerate");
        assert_eq!(
            framerate.map(|r| (r.toml_type, r.expected.as_str())),
            Some(("integer", "a whole number from 1 to 60"))
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("a\nbé c", 6), (2, 4));
        assert_eq!(line_column("abc", 0), (1, 1));
    }
}

//! `[media]`: camera, microphone, display and speakers.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeTable;

use super::reader::Reader;
use super::{keys_of, ConfigError};

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
impl Reader<'_> {
    pub(super) fn media(&self, t: &DeTable<'_>, m: &mut MediaConfig) -> Result<(), ConfigError> {
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

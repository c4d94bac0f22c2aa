//! `[media]`: camera, microphone, display and speakers.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::keys::{parsed, section, whole};

section! {
    /// `[media]`: camera, microphone, display and speakers.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MediaConfig in "media" {
        /// The camera.
        video_source: VideoSource = VideoSource::Auto
            => parsed("\"auto\", \"test\" or a V4L2 device path such as \"/dev/video0\""),
        /// The microphone.
        audio_source: AudioSource = AudioSource::Auto
            => parsed("\"auto\", \"test\" or an ALSA device name such as \"plughw:CARD=Speaker\""),
        /// Where remote video is shown.
        video_sink: VideoSink = VideoSink::Auto
            => parsed("\"auto\", \"kms\", \"window\" or \"none\""),
        /// Where remote audio is played.
        audio_sink: AudioSink = AudioSink::Auto
            => parsed("\"auto\", \"none\" or an ALSA device name such as \"plughw:CARD=Speaker\""),
        /// The size of the video the room sends.
        resolution: Resolution = Resolution::default()
            => parsed("\"WIDTHxHEIGHT\" such as \"1280x720\", even numbers, from 160x120 to 3840x2160"),
        /// Frames per second the room sends.
        framerate: u32 = 30 => whole(1, 60),
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

impl FromStr for Resolution {
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
impl FromStr for VideoSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VideoSource::Auto),
            "test" => Ok(VideoSource::Test),
            p if is_device_path(p) => Ok(VideoSource::Device(p.into())),
            _ => Err(format!(
                "expected \"auto\", \"test\" or a V4L2 device path such as \"/dev/video0\", got {s:?}"
            )),
        }
    }
}

impl FromStr for AudioSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AudioSource::Auto),
            "test" => Ok(AudioSource::Test),
            d => alsa_name(d).map(AudioSource::Alsa),
        }
    }
}

impl FromStr for VideoSink {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VideoSink::Auto),
            "kms" => Ok(VideoSink::Kms),
            "window" => Ok(VideoSink::Window),
            "none" => Ok(VideoSink::None),
            _ => Err(format!(
                "expected \"auto\", \"kms\", \"window\" or \"none\", got {s:?}"
            )),
        }
    }
}

impl FromStr for AudioSink {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AudioSink::Auto),
            "none" => Ok(AudioSink::None),
            d => alsa_name(d).map(AudioSink::Alsa),
        }
    }
}

/// An ALSA device name (`hw:1,0`, `plughw:CARD=Speaker`): a short name of letters, digits and
/// `,:=_-.`, so that nothing else can reach the pipeline's description.
fn alsa_name(d: &str) -> Result<String, String> {
    let valid = !d.is_empty()
        && d.len() <= 128
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || ",:=_-.".contains(c));
    if valid {
        Ok(d.to_owned())
    } else {
        Err(format!(
            "expected \"auto\", \"test\" or \"none\" as documented, or an ALSA device name such as \"hw:1,0\" or \"plughw:CARD=Speaker\", got {d:?}"
        ))
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

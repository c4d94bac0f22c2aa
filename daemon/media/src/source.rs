//! What the room captures and where it plays: the camera, microphone and sink settings as the
//! configuration spells them (`"auto"`, `"test"`, a device, `"none"`, ...), and their
//! resolution into concrete sources on this machine.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::elements;
use crate::MediaError;

/// The `media.video_source` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSetting {
    /// The first V4L2 capture device, else the test pattern.
    Auto,
    /// A moving test pattern with a timestamp overlay.
    Test,
    /// A V4L2 device path such as `/dev/video0`.
    Device(PathBuf),
}

impl CameraSetting {
    /// Parses `"auto"`, `"test"` or a `/dev/...` path.
    pub fn parse(value: &str) -> Result<Self, MediaError> {
        match value {
            "auto" => Ok(CameraSetting::Auto),
            "test" => Ok(CameraSetting::Test),
            path if path.starts_with('/') => Ok(CameraSetting::Device(PathBuf::from(path))),
            other => Err(MediaError::Config {
                setting: "media.video_source",
                value: other.to_owned(),
                expected: "\"auto\", \"test\" or a V4L2 device path such as /dev/video0",
            }),
        }
    }
}

/// The formats a V4L2 camera offers, as far as the engine cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraFormats {
    /// The camera encodes H.264 itself (UVC cameras that do are used as-is).
    pub h264: bool,
    /// The camera offers Motion-JPEG (decoded with `jpegdec`).
    pub mjpeg: bool,
    /// The camera offers raw frames.
    pub raw: bool,
}

/// A camera resolved to something that can be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSource {
    /// The moving test pattern.
    Test,
    /// A V4L2 capture device and the formats it offers.
    V4l2 {
        /// Device path.
        device: PathBuf,
        /// Its formats.
        formats: CameraFormats,
    },
}

impl CameraSource {
    /// Resolves the setting: `Auto` scans `/dev/video*` for a capture device and falls back
    /// to the test pattern; a device path must be an openable capture device.
    pub fn resolve(setting: &CameraSetting) -> Result<Self, MediaError> {
        Self::resolve_in(setting, Path::new("/dev"))
    }

    /// [`CameraSource::resolve`], scanning `dev_dir` instead of `/dev` for `Auto`.
    pub fn resolve_in(setting: &CameraSetting, dev_dir: &Path) -> Result<Self, MediaError> {
        match setting {
            CameraSetting::Test => Ok(CameraSource::Test),
            CameraSetting::Device(device) => {
                let formats = query_v4l2_formats(device)?;
                Ok(CameraSource::V4l2 {
                    device: device.clone(),
                    formats,
                })
            }
            CameraSetting::Auto => {
                let mut devices: Vec<PathBuf> = std::fs::read_dir(dev_dir)
                    .map(|dir| {
                        dir.filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| n.starts_with("video"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // /dev/video2 before /dev/video10.
                devices.sort_by_key(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    name.trim_start_matches("video")
                        .parse::<u32>()
                        .unwrap_or(u32::MAX)
                });
                for device in devices {
                    match query_v4l2_formats(&device) {
                        Ok(formats) if formats.h264 || formats.mjpeg || formats.raw => {
                            tracing::info!(device = %device.display(), ?formats, "camera found");
                            return Ok(CameraSource::V4l2 { device, formats });
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::debug!(device = %device.display(), %err, "not a usable camera")
                        }
                    }
                }
                tracing::info!("no camera found, sending the test pattern");
                Ok(CameraSource::Test)
            }
        }
    }
}

/// Opens a V4L2 device with `v4l2src` (READY state only: no streaming) and reads the formats
/// its source pad offers.
pub fn query_v4l2_formats(device: &Path) -> Result<CameraFormats, MediaError> {
    // Called while resolving the configuration, before any pipeline has initialised GStreamer
    // (found by hw-tests/qemu/run camera-call: visio-roomd panicked on joining with a camera).
    crate::init()?;
    let camera_error = |reason: String| MediaError::Camera {
        device: device.display().to_string(),
        reason,
    };
    let src = elements::make("v4l2src")?;
    src.set_property("device", device.to_string_lossy().as_ref());
    if src.set_state(gst::State::Ready).is_err() {
        let _ = src.set_state(gst::State::Null);
        return Err(camera_error(
            "it cannot be opened as a video capture device".to_owned(),
        ));
    }
    let caps = src
        .static_pad("src")
        .map(|pad| pad.query_caps(None))
        .unwrap_or_else(gst::Caps::new_empty);
    let _ = src.set_state(gst::State::Null);
    let mut formats = CameraFormats::default();
    for s in caps.iter() {
        match s.name().as_str() {
            "video/x-h264" => formats.h264 = true,
            "image/jpeg" => formats.mjpeg = true,
            "video/x-raw" => formats.raw = true,
            _ => {}
        }
    }
    if caps.is_empty() {
        return Err(camera_error("it offers no video format".to_owned()));
    }
    Ok(formats)
}

/// The `media.audio_source` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicrophoneSetting {
    /// The default ALSA device if the machine has a sound card, else the test tone.
    Auto,
    /// A 440 Hz test tone.
    Test,
    /// An ALSA device name such as `default`, `hw:1` or `plughw:CARD=Speakerphone`.
    Alsa(String),
}

impl MicrophoneSetting {
    /// Parses `"auto"`, `"test"` or an ALSA device name.
    pub fn parse(value: &str) -> Result<Self, MediaError> {
        match value {
            "auto" => Ok(MicrophoneSetting::Auto),
            "test" => Ok(MicrophoneSetting::Test),
            "" => Err(MediaError::Config {
                setting: "media.audio_source",
                value: String::new(),
                expected: "\"auto\", \"test\" or an ALSA device name such as default or hw:1",
            }),
            name => Ok(MicrophoneSetting::Alsa(name.to_owned())),
        }
    }
}

/// A microphone resolved to something that can be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicrophoneSource {
    /// The test tone.
    Test,
    /// An ALSA capture device.
    Alsa(String),
}

impl MicrophoneSource {
    /// Resolves the setting: `Auto` uses ALSA's `default` when `/proc/asound/cards` lists a
    /// card, else the test tone.
    pub fn resolve(setting: &MicrophoneSetting) -> Self {
        match setting {
            MicrophoneSetting::Test => MicrophoneSource::Test,
            MicrophoneSetting::Alsa(name) => MicrophoneSource::Alsa(name.clone()),
            MicrophoneSetting::Auto => {
                if sound_card_present() {
                    MicrophoneSource::Alsa("default".to_owned())
                } else {
                    tracing::info!("no sound card found, sending the test tone");
                    MicrophoneSource::Test
                }
            }
        }
    }
}

/// Whether ALSA knows a sound card (`/proc/asound/cards` lists one).
pub fn sound_card_present() -> bool {
    std::fs::read_to_string("/proc/asound/cards")
        .map(|cards| {
            cards
                .lines()
                .any(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or(false)
}

/// The `media.video_sink` setting: where remote video is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoSinkSetting {
    /// `kms` when a display is connected to a DRM card, else `window` when a desktop session
    /// exists, else `none`.
    Auto,
    /// Decode and compose but show nothing (`fakesink`); frame counters still rise.
    None,
    /// A desktop window (`autovideosink`).
    Window,
    /// Full screen on the console through KMS (`kmssink`).
    Kms,
}

impl VideoSinkSetting {
    /// Parses `"auto"`, `"none"`, `"window"` or `"kms"`.
    pub fn parse(value: &str) -> Result<Self, MediaError> {
        match value {
            "auto" => Ok(VideoSinkSetting::Auto),
            "none" => Ok(VideoSinkSetting::None),
            "window" => Ok(VideoSinkSetting::Window),
            "kms" => Ok(VideoSinkSetting::Kms),
            other => Err(MediaError::Config {
                setting: "media.video_sink",
                value: other.to_owned(),
                expected: "\"auto\", \"none\", \"window\" or \"kms\"",
            }),
        }
    }

    /// Resolves `Auto` on this machine; other values are returned unchanged.
    pub fn resolve(&self) -> VideoSinkSetting {
        if *self != VideoSinkSetting::Auto {
            return self.clone();
        }
        if drm_connector_connected(Path::new("/sys/class/drm")) {
            VideoSinkSetting::Kms
        } else if std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some()
        {
            VideoSinkSetting::Window
        } else {
            VideoSinkSetting::None
        }
    }
}

/// Whether a DRM card under `sysfs_drm` (normally `/sys/class/drm`) has a connected connector
/// (`card0-HDMI-A-1/status` reads `connected`).
pub fn drm_connector_connected(sysfs_drm: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir(sysfs_drm) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("card")
            && name.contains('-')
            && std::fs::read_to_string(entry.path().join("status"))
                .is_ok_and(|s| s.trim() == "connected")
    })
}

/// The `media.audio_sink` setting: where remote audio is played.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioSinkSetting {
    /// ALSA `default` when a sound card exists, else `none`.
    Auto,
    /// Decode and mix but play nothing (`fakesink`, clocked); levels are still measured.
    None,
    /// An ALSA device name.
    Alsa(String),
}

impl AudioSinkSetting {
    /// Parses `"auto"`, `"none"` or an ALSA device name.
    pub fn parse(value: &str) -> Result<Self, MediaError> {
        match value {
            "auto" => Ok(AudioSinkSetting::Auto),
            "none" => Ok(AudioSinkSetting::None),
            "" => Err(MediaError::Config {
                setting: "media.audio_sink",
                value: String::new(),
                expected: "\"auto\", \"none\" or an ALSA device name such as default",
            }),
            name => Ok(AudioSinkSetting::Alsa(name.to_owned())),
        }
    }

    /// Resolves `Auto` on this machine.
    pub fn resolve(&self) -> AudioSinkSetting {
        match self {
            AudioSinkSetting::Auto if sound_card_present() => {
                AudioSinkSetting::Alsa("default".to_owned())
            }
            AudioSinkSetting::Auto => AudioSinkSetting::None,
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_the_config_spellings() {
        assert_eq!(CameraSetting::parse("auto").unwrap(), CameraSetting::Auto);
        assert_eq!(
            CameraSetting::parse("/dev/video2").unwrap(),
            CameraSetting::Device("/dev/video2".into())
        );
        assert!(CameraSetting::parse("webcam").is_err());
        assert_eq!(
            MicrophoneSetting::parse("hw:1").unwrap(),
            MicrophoneSetting::Alsa("hw:1".into())
        );
        assert_eq!(
            VideoSinkSetting::parse("kms").unwrap(),
            VideoSinkSetting::Kms
        );
        let err = VideoSinkSetting::parse("hdmi").unwrap_err().to_string();
        assert!(err.contains("media.video_sink"), "{err}");
        assert_eq!(
            AudioSinkSetting::parse("none").unwrap(),
            AudioSinkSetting::None
        );
    }

    #[test]
    fn auto_camera_without_any_video_device_is_the_test_pattern() {
        gst::init().unwrap();
        let empty = std::env::temp_dir().join(format!("visio-media-nodev-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("video0"), b"not a device").unwrap();
        let source = CameraSource::resolve_in(&CameraSetting::Auto, &empty).unwrap();
        assert_eq!(source, CameraSource::Test);
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn a_configured_camera_that_does_not_exist_is_a_clear_error() {
        gst::init().unwrap();
        let err = CameraSource::resolve(&CameraSetting::Device("/dev/video-missing".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/video-missing") && err.contains("media.video_source"),
            "{err}"
        );
    }

    #[test]
    fn kms_is_chosen_only_with_a_connected_connector() {
        let dir = std::env::temp_dir().join(format!("visio-media-drm-{}", std::process::id()));
        let connector = dir.join("card0-HDMI-A-1");
        std::fs::create_dir_all(&connector).unwrap();
        std::fs::write(connector.join("status"), "disconnected\n").unwrap();
        assert!(!drm_connector_connected(&dir));
        std::fs::write(connector.join("status"), "connected\n").unwrap();
        assert!(drm_connector_connected(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

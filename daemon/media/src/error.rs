//! The media engine's errors. Each message names the element, device or setting involved and
//! what the user (or operator) can do about it.

/// Everything that can go wrong while building or running a media pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// GStreamer itself could not be initialised.
    #[error("GStreamer could not be initialised: {0}; install the packages listed in scripts/deps.d/media.sh")]
    Init(String),

    /// A GStreamer element needed by a pipeline is not installed.
    #[error("the GStreamer element `{element}` is missing; install the package that provides it (see scripts/deps.d/media.sh)")]
    MissingElement {
        /// The element factory name, e.g. `opusenc`.
        element: String,
    },

    /// Elements could not be assembled into a pipeline (linking, adding, pads).
    #[error("could not build the {pipeline} pipeline: {reason}")]
    Build {
        /// Which pipeline: `video sender`, `audio sender`, `receiver`, ...
        pipeline: &'static str,
        /// What failed.
        reason: String,
    },

    /// A pipeline refused to start (for instance a device that cannot be opened).
    #[error("the {pipeline} pipeline did not start: {reason}")]
    Start {
        /// Which pipeline.
        pipeline: &'static str,
        /// The GStreamer error text.
        reason: String,
    },

    /// No H.264 encoder candidate could encode a test frame.
    #[error("no usable H.264 encoder: {report}; install gstreamer1.0-plugins-ugly (x264enc) or gstreamer1.0-plugins-bad (openh264enc)")]
    NoEncoder {
        /// What was tried and why each candidate was rejected.
        report: String,
    },

    /// No decoder candidate for a remote video codec could decode test frames.
    #[error("no usable video decoder: {report}; install gstreamer1.0-libav (avdec_h264) and gstreamer1.0-plugins-good (vp8dec, vp9dec)")]
    NoDecoder {
        /// What was tried and why each candidate was rejected.
        report: String,
    },

    /// The configured camera cannot be used.
    #[error("camera `{device}` cannot be used: {reason}; check `media.video_source` in /etc/visio-room/config.toml (a /dev/video* path, \"auto\" or \"test\")")]
    Camera {
        /// The configured device.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A configuration value is not understood.
    #[error("invalid media setting `{setting}` = {value:?}: {expected}")]
    Config {
        /// The setting name, e.g. `media.video_sink`.
        setting: &'static str,
        /// The offending value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },

    /// A remote track id is not known to the receiver.
    #[error("remote track `{0}` is not being received; call add_track first")]
    UnknownTrack(String),

    /// A remote track with this id is already being received.
    #[error("remote track `{0}` is already being received")]
    DuplicateTrack(String),

    /// The pipeline has stopped (after shutdown or a fatal error).
    #[error("the {0} pipeline is not running")]
    NotRunning(&'static str),
}

impl MediaError {
    pub(crate) fn build(pipeline: &'static str, reason: impl std::fmt::Display) -> Self {
        MediaError::Build {
            pipeline,
            reason: reason.to_string(),
        }
    }
}

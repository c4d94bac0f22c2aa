//! The room's physical controls and devices: GPIO buttons and LEDs, Linux input devices, USB
//! speakerphones (HID Telephony over hidraw), the ALSA mixer volume, and cameras (V4L2).
//!
//! Shape: like the calendar, this crate sits behind the room loop. [`Controls::start`] takes
//! the validated `[controls]` configuration ([`ControlsConfig::validate`]) and runs one task
//! per control; what people do comes out as [`ControlEvent`]s ([`Controls::next_event`]: a
//! button press with its [`Action`] and source, a volume change, a device appearing or going);
//! what the room is doing goes in as [`Indicators`] ([`Controls::set_indicators`]), which every
//! LED, every speakerphone's Mute/Off-Hook LEDs and every evdev `LED_MUTE` follow.
//!
//! A control that cannot be used (a GPIO line that does not exist or is busy, a device that is
//! missing, unplugged or not permitted) never stops the others: its [`ControlStatus`] says why
//! ([`Controls::statuses`], for `Health`) and it is retried until it comes to life.
//!
//! Decisions are sans-IO and tested without hardware: [`press`] (contact bounce → presses),
//! [`hid`] (report descriptors, the speakerphone's inputs and LED output reports),
//! [`indicators`] (room state → LED lines), [`camera::choose_format`], [`config`]. The I/O
//! backends are thin: `gpio` (gpiocdev, uAPI v2), `input` (evdev), `hidraw`, [`mixer`] (alsa),
//! [`audio`] (the cards' microphones and speakers), [`camera`] (v4l), `watch` (inotify on /dev), and `rpi` (rppal, feature `rpi`).
//! Tests on real kernel drivers (gpio-sim, uinput, uhid, snd-dummy, vivid) are
//! `tests/hw_*.rs`, run in QEMU with `VISIO_HW_TESTS=1` (see `tests/HW.md`).
//!
//! This crate must not know about the room controller's rules (what `join_leave` does when
//! idle is the controller's decision), D-Bus, the meeting session or GStreamer.

pub mod audio;
pub mod camera;
pub mod config;
mod gpio;
pub mod hid;
mod hidraw;
pub mod indicators;
mod input;
pub mod mixer;
pub mod press;
#[cfg(feature = "rpi")]
pub mod rpi;
mod runtime;
mod watch;

use std::fmt;

use serde::Deserialize;

pub use config::{ConfigError, ControlsConfig, ValidConfig};
pub use indicators::Indicators;
pub use runtime::{Controls, Device, Devices, VolumeError};

/// What a button press asks the room to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Join when idle (the calendar's meeting or the default one), leave when in a call.
    JoinLeave,
    /// Join.
    Join,
    /// Leave.
    Leave,
    /// Mute when unmuted, unmute when muted.
    MuteToggle,
    /// Mute (a speakerphone's absolute Phone Mute reporting "muted"); not configurable.
    #[serde(skip)]
    Mute,
    /// Unmute (a speakerphone's absolute Phone Mute reporting "unmuted"); not configurable.
    #[serde(skip)]
    Unmute,
    /// Camera off when on, on when off.
    CameraToggle,
    /// Volume up one step (the crate already changed the mixer).
    VolumeUp,
    /// Volume down one step (the crate already changed the mixer).
    VolumeDown,
}

impl Action {
    /// The name used in configuration and in the `ButtonPressed` signal.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::JoinLeave => "join_leave",
            Action::Join => "join",
            Action::Leave => "leave",
            Action::MuteToggle => "mute_toggle",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::CameraToggle => "camera_toggle",
            Action::VolumeUp => "volume_up",
            Action::VolumeDown => "volume_down",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a device that comes and goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A V4L2 video capture node.
    Camera,
    /// An evdev input node.
    Input,
    /// A hidraw node with a HID Telephony collection.
    Speakerphone,
}

impl DeviceKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Input => "input",
            DeviceKind::Speakerphone => "speakerphone",
        }
    }
}

/// What comes out of the controls for the room loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Someone pressed a button. `source` names it for `ButtonPressed(s action, s source)`:
    /// `gpio:gpiochip0:17`, `input:/dev/input/event3`, `speakerphone:/dev/hidraw0`.
    Button {
        /// What the press asks for.
        action: Action,
        /// Where it came from.
        source: String,
    },
    /// The mixer's playback volume is now `percent` (0–100), whoever changed it.
    Volume {
        /// 0–100.
        percent: u8,
    },
    /// A device appeared (plugged in, driver loaded, permission granted).
    DeviceAppeared {
        /// Which kind.
        kind: DeviceKind,
        /// Its node.
        path: String,
        /// Its name as the driver says it.
        name: String,
    },
    /// A device went away.
    DeviceGone {
        /// Which kind.
        kind: DeviceKind,
        /// Its node.
        path: String,
    },
    /// A control's status changed (see [`Controls::statuses`]).
    Status(ControlStatus),
}

/// Whether one control works, for `Health` and the `Devices` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlStatus {
    /// The control's name, e.g. `button[0] join_leave gpiochip0:17`, `speakerphone
    /// /dev/hidraw0`, `volume hw:Dummy Master`.
    pub name: String,
    /// Working, or why not.
    pub state: ControlState,
}

/// A control's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlState {
    /// In use.
    Ready,
    /// Waiting for a device (not present yet, or unplugged) or not usable; retried.
    Unavailable {
        /// What is wrong, in words an operator can act on.
        reason: String,
    },
}

impl ControlState {
    /// `true` when in use.
    pub fn is_ready(&self) -> bool {
        matches!(self, ControlState::Ready)
    }
}

impl fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            ControlState::Ready => write!(f, "{}: ready", self.name),
            ControlState::Unavailable { reason } => write!(f, "{}: {reason}", self.name),
        }
    }
}

/// Words for an I/O error opening a device, naming what to do.
pub(crate) fn describe_open_error(what: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            format!("{what} is not present (unplugged, or its driver is not loaded)")
        }
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "no permission to open {what} (the daemon's user needs the device's group, see systemd/ udev rules)"
        ),
        Some(libc::EBUSY) => format!("{what} is in use by another program"),
        _ => format!("{what}: {e}"),
    }
}

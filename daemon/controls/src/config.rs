//! The `[controls]` configuration: buttons, LEDs, the speakerphone and the mixer.
//!
//! These types deserialize the `[controls]` table of the daemon's configuration file (serde) and
//! [`ControlsConfig::validate`] checks what serde cannot: a malformed GPIO line, an unknown key
//! name, a button with both or neither of `gpio` and `key`, two controls on one line. Errors
//! name the key (`controls.buttons[1].gpio`) so the daemon's reader can add the file and line.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use crate::Action;

/// The `[controls]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlsConfig {
    /// `speakerphone = "auto" | "off" | "/dev/hidrawN"`: HID Telephony speakerphones.
    #[serde(default)]
    pub speakerphone: SpeakerphoneSetting,
    /// `[[controls.buttons]]`.
    #[serde(default)]
    pub buttons: Vec<ButtonConfig>,
    /// `[[controls.leds]]`.
    #[serde(default)]
    pub leds: Vec<LedConfig>,
    /// `[controls.volume]`: the ALSA mixer the room's volume drives.
    #[serde(default)]
    pub volume: VolumeConfig,
}

/// Where the speakerphone is found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SpeakerphoneSetting {
    /// Any hidraw device with a Telephony collection (Phone Mute, Hook Switch), hot-plugged.
    #[default]
    Auto,
    /// No speakerphone handling.
    Off,
    /// This hidraw node only (e.g. a udev symlink).
    Path(PathBuf),
}

impl<'de> Deserialize<'de> for SpeakerphoneSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            p if p.starts_with('/') => Ok(Self::Path(PathBuf::from(p))),
            other => Err(serde::de::Error::custom(format!(
                "speakerphone = {other:?}: expected \"auto\", \"off\" or a /dev/hidraw path"
            ))),
        }
    }
}

/// One `[[controls.buttons]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    /// What a press does.
    pub action: Action,
    /// A GPIO line: `"gpiochip0:17"` or a line name.
    #[serde(default)]
    pub gpio: Option<String>,
    /// An evdev key name such as `"KEY_MICMUTE"`.
    #[serde(default)]
    pub key: Option<String>,
    /// With `key`: only this input device (e.g. `/dev/input/by-id/…`); any device otherwise.
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// GPIO only: the button pulls the line low when pressed (the usual wiring with a pull-up).
    #[serde(default = "default_true")]
    pub active_low: bool,
    /// GPIO only: kernel debounce period in milliseconds.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u32,
    /// GPIO only: `"pull_up" | "pull_down" | "disabled"`; as the board left it when absent.
    #[serde(default)]
    pub bias: Option<BiasSetting>,
}

/// One `[[controls.leds]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedConfig {
    /// Which part of the room's state the LED shows.
    pub shows: Indicator,
    /// A GPIO line: `"gpiochip0:27"` or a line name.
    pub gpio: String,
    /// The LED is lit when the line is low.
    #[serde(default)]
    pub active_low: bool,
    /// `rpi` feature only: drive this LED with the Pi's hardware PWM channel (0 or 1) at this
    /// brightness instead of the GPIO line.
    #[serde(default)]
    pub pwm_channel: Option<u8>,
    /// Brightness in percent when lit (PWM only).
    #[serde(default = "default_brightness")]
    pub brightness: u8,
}

/// `[controls.volume]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    /// ALSA mixer device: `"default"`, `"hw:0"`, `"hw:Dummy"`; `"off"` for none.
    #[serde(default = "default_mixer")]
    pub mixer: String,
    /// The simple control whose playback volume is the room's volume; the first of
    /// `Master`, `PCM`, `Speaker`, `Headphone` when absent.
    #[serde(default)]
    pub control: Option<String>,
    /// Percent per `volume_up`/`volume_down` press.
    #[serde(default = "default_step")]
    pub step: u8,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        Self {
            mixer: default_mixer(),
            control: None,
            step: default_step(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_debounce_ms() -> u32 {
    20
}
fn default_brightness() -> u8 {
    100
}
fn default_mixer() -> String {
    "default".into()
}
fn default_step() -> u8 {
    5
}

/// A GPIO bias setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BiasSetting {
    /// Internal pull-up.
    PullUp,
    /// Internal pull-down.
    PullDown,
    /// No bias (externally pulled).
    Disabled,
}

/// What an LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// In a call (also while leaving).
    InCall,
    /// The microphone is muted.
    Muted,
    /// Joining (connecting, before the call).
    Joining,
    /// Waiting in the lobby.
    Lobby,
    /// Something is wrong (a failed join, a press with nothing to join).
    Error,
}

impl Indicator {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::InCall => "in_call",
            Indicator::Muted => "muted",
            Indicator::Joining => "joining",
            Indicator::Lobby => "lobby",
            Indicator::Error => "error",
        }
    }
}

/// A GPIO line as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GpioLine {
    /// `gpiochipN:offset`: the chip's name (under /dev) and the line offset.
    Offset {
        /// `gpiochip0`.
        chip: String,
        /// Line offset on the chip.
        offset: u32,
    },
    /// A line found by its name (from the device tree or gpio-sim), on any chip.
    Named(String),
}

impl fmt::Display for GpioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpioLine::Offset { chip, offset } => write!(f, "{chip}:{offset}"),
            GpioLine::Named(name) => f.write_str(name),
        }
    }
}

impl FromStr for GpioLine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty GPIO line: expected \"gpiochipN:offset\" or a line name".into());
        }
        if let Some((chip, offset)) = s.split_once(':') {
            let chip_ok = chip
                .strip_prefix("gpiochip")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !chip_ok {
                return Err(format!(
                    "{s:?}: the chip must be written gpiochipN (e.g. \"gpiochip0:17\")"
                ));
            }
            let offset = offset.parse::<u32>().map_err(|_| {
                format!("{s:?}: the line offset after ':' must be a number (e.g. \"gpiochip0:17\")")
            })?;
            return Ok(GpioLine::Offset {
                chip: chip.to_string(),
                offset,
            });
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!(
                "{s:?}: a line name has no spaces or '/'; write \"gpiochipN:offset\" or the line's name"
            ));
        }
        Ok(GpioLine::Named(s.to_string()))
    }
}

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted path of the key, e.g. `controls.buttons[1].gpio` (0-based index).
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// A validated button: exactly one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// Stable name used in status and `Health`, e.g. `button[0] join_leave gpiochip0:17`.
    pub name: String,
    /// What a press does.
    pub action: Action,
    /// Where presses come from.
    pub source: ButtonSource,
}

/// Where a button's presses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonSource {
    /// A GPIO line.
    Gpio {
        /// The line.
        line: GpioLine,
        /// Pressed = low.
        active_low: bool,
        /// Kernel debounce period.
        debounce_ms: u32,
        /// Bias, or as is.
        bias: Option<BiasSetting>,
    },
    /// An evdev key.
    Key {
        /// The key code (`evdev::KeyCode` value).
        code: u16,
        /// The key's name as configured.
        key_name: String,
        /// Only this device, when given.
        device: Option<PathBuf>,
    },
}

/// A validated LED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Led {
    /// Stable name used in status and `Health`.
    pub name: String,
    /// What it shows.
    pub shows: Indicator,
    /// Its line.
    pub line: GpioLine,
    /// Lit when low.
    pub active_low: bool,
    /// Raspberry Pi hardware PWM channel, if any.
    pub pwm_channel: Option<u8>,
    /// Brightness when lit, percent.
    pub brightness: u8,
}

/// The configuration after validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidConfig {
    /// Speakerphone setting.
    pub speakerphone: SpeakerphoneSetting,
    /// Buttons.
    pub buttons: Vec<Button>,
    /// LEDs.
    pub leds: Vec<Led>,
    /// Mixer, `None` when `mixer = "off"`.
    pub volume: Option<VolumeConfig>,
}

impl ControlsConfig {
    /// Checks everything serde cannot; the first problem found is returned.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let err = |key: String, message: String| ConfigError { key, message };
        let mut lines: HashMap<GpioLine, String> = HashMap::new();
        let mut claim = |line: &GpioLine, key: String| -> Result<(), ConfigError> {
            if let Some(first) = lines.get(line) {
                return Err(ConfigError {
                    key,
                    message: format!(
                        "GPIO line {line} is already used by {first}; one line serves one button or LED"
                    ),
                });
            }
            lines.insert(line.clone(), key);
            Ok(())
        };
        let mut buttons = Vec::new();
        for (i, b) in self.buttons.iter().enumerate() {
            let key = |k: &str| format!("controls.buttons[{i}].{k}");
            let source = match (&b.gpio, &b.key) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        key("gpio"),
                        "a button has either gpio or key, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(err(
                        format!("controls.buttons[{i}]"),
                        "a button needs gpio = \"gpiochipN:offset\" (or a line name) or key = \"KEY_…\"".into(),
                    ))
                }
                (Some(gpio), None) => {
                    let line: GpioLine = gpio.parse().map_err(|m| err(key("gpio"), m))?;
                    if b.device.is_some() {
                        return Err(err(
                            key("device"),
                            "device goes with key (an input device), not with gpio".into(),
                        ));
                    }
                    if b.debounce_ms > 1000 {
                        return Err(err(
                            key("debounce_ms"),
                            format!("{} ms is too long; 0 to 1000 (20 is usual)", b.debounce_ms),
                        ));
                    }
                    claim(&line, key("gpio"))?;
                    ButtonSource::Gpio {
                        line,
                        active_low: b.active_low,
                        debounce_ms: b.debounce_ms,
                        bias: b.bias,
                    }
                }
                (None, Some(k)) => {
                    let code = key_code(k).ok_or_else(|| {
                        err(
                            key("key"),
                            format!("{k:?} is not a Linux input key name (e.g. \"KEY_MICMUTE\", \"KEY_VOLUMEUP\", \"BTN_0\")"),
                        )
                    })?;
                    if let Some(d) = &b.device {
                        if !d.is_absolute() {
                            return Err(err(
                                key("device"),
                                format!("{}: an absolute path such as /dev/input/by-id/…", d.display()),
                            ));
                        }
                    }
                    ButtonSource::Key {
                        code,
                        key_name: k.clone(),
                        device: b.device.clone(),
                    }
                }
            };
            let what = match &source {
                ButtonSource::Gpio { line, .. } => line.to_string(),
                ButtonSource::Key {
                    key_name, device, ..
                } => match device {
                    Some(d) => format!("{key_name} on {}", d.display()),
                    None => key_name.clone(),
                },
            };
            buttons.push(Button {
                name: format!("button[{i}] {} {what}", b.action.as_str()),
                action: b.action,
                source,
            });
        }
        let mut leds = Vec::new();
        for (i, l) in self.leds.iter().enumerate() {
            let key = |k: &str| format!("controls.leds[{i}].{k}");
            let line: GpioLine = l.gpio.parse().map_err(|m| err(key("gpio"), m))?;
            claim(&line, key("gpio"))?;
            if l.brightness == 0 || l.brightness > 100 {
                return Err(err(
                    key("brightness"),
                    format!("{}: a percentage from 1 to 100", l.brightness),
                ));
            }
            if let Some(ch) = l.pwm_channel {
                if ch > 1 {
                    return Err(err(
                        key("pwm_channel"),
                        format!("{ch}: the Raspberry Pi has PWM channels 0 and 1"),
                    ));
                }
            }
            leds.push(Led {
                name: format!("led[{i}] {} {line}", l.shows.as_str()),
                shows: l.shows,
                line,
                active_low: l.active_low,
                pwm_channel: l.pwm_channel,
                brightness: l.brightness,
            });
        }
        if let SpeakerphoneSetting::Path(p) = &self.speakerphone {
            if p.to_string_lossy().contains(char::is_whitespace) {
                return Err(err(
                    "controls.speakerphone".into(),
                    format!("{}: expected a /dev/hidrawN path", p.display()),
                ));
            }
        }
        let volume = if self.volume.mixer == "off" {
            None
        } else {
            if self.volume.mixer.trim().is_empty() {
                return Err(err(
                    "controls.volume.mixer".into(),
                    "empty: \"default\", \"hw:0\", \"hw:CARDNAME\" or \"off\"".into(),
                ));
            }
            if self.volume.step == 0 || self.volume.step > 50 {
                return Err(err(
                    "controls.volume.step".into(),
                    format!("{}: a percentage from 1 to 50", self.volume.step),
                ));
            }
            Some(self.volume.clone())
        };
        Ok(ValidConfig {
            speakerphone: self.speakerphone.clone(),
            buttons,
            leds,
            volume,
        })
    }
}

/// The code of an evdev key name (`KEY_*`, `BTN_*`).
pub fn key_code(name: &str) -> Option<u16> {
    if !(name.starts_with("KEY_") || name.starts_with("BTN_")) {
        return None;
    }
    evdev::KeyCode::from_str(name).ok().map(|k| k.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ControlsConfig {
        #[derive(Deserialize)]
        struct File {
            controls: ControlsConfig,
        }
        toml::from_str::<File>(text).expect("parses").controls
    }

    #[test]
    fn the_issue_example_is_valid() {
        let c = parse(
            r#"
            [controls]
            speakerphone = "auto"
            [[controls.buttons]]
            action = "join_leave"
            gpio = "gpiochip0:17"
            [[controls.buttons]]
            action = "mute_toggle"
            key = "KEY_MICMUTE"
            [[controls.leds]]
            shows = "in_call"
            gpio = "gpiochip0:27"
            "#,
        );
        let v = c.validate().expect("valid");
        assert_eq!(v.buttons.len(), 2);
        assert_eq!(
            v.buttons[0].source,
            ButtonSource::Gpio {
                line: GpioLine::Offset {
                    chip: "gpiochip0".into(),
                    offset: 17
                },
                active_low: true,
                debounce_ms: 20,
                bias: None
            }
        );
        assert_eq!(
            v.buttons[1].source,
            ButtonSource::Key {
                code: 248,
                key_name: "KEY_MICMUTE".into(),
                device: None
            }
        );
        assert_eq!(v.leds[0].shows, Indicator::InCall);
        assert!(!v.leds[0].active_low);
        assert_eq!(v.speakerphone, SpeakerphoneSetting::Auto);
        assert_eq!(v.volume.unwrap().mixer, "default");
    }

    #[test]
    fn an_unknown_action_is_refused_by_serde() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            controls: ControlsConfig,
        }
        let e = toml::from_str::<File>(
            "[[controls.buttons]]\naction = \"explode\"\ngpio = \"gpiochip0:1\"\n",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("explode") && msg.contains("join_leave"),
            "{msg}"
        );
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            controls: ControlsConfig,
        }
        let e = toml::from_str::<File>(
            "[[controls.buttons]]\naction = \"join\"\ngpio = \"gpiochip0:1\"\npin = 3\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pin"), "{e}");
    }

    #[test]
    fn malformed_lines_name_the_key() {
        for bad in [
            "gpiochip0:",
            "gpiochip0:x",
            "chip0:3",
            "gpiochip:3",
            "",
            "two words",
            "/dev/gpiochip0:3",
        ] {
            let c = ControlsConfig {
                leds: vec![LedConfig {
                    shows: Indicator::Muted,
                    gpio: bad.into(),
                    active_low: false,
                    pwm_channel: None,
                    brightness: 100,
                }],
                ..Default::default()
            };
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, "controls.leds[0].gpio", "{bad:?}: {e}");
        }
        assert_eq!(
            "JOIN_BUTTON".parse::<GpioLine>(),
            Ok(GpioLine::Named("JOIN_BUTTON".into()))
        );
    }

    #[test]
    fn two_buttons_on_one_line_are_refused() {
        let c = parse(
            r#"
            [[controls.buttons]]
            action = "join"
            gpio = "gpiochip0:17"
            [[controls.buttons]]
            action = "leave"
            gpio = "gpiochip0:17"
            "#,
        );
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "controls.buttons[1].gpio");
        assert!(e.message.contains("controls.buttons[0].gpio"), "{e}");
        let c = parse(
            r#"
            [[controls.buttons]]
            action = "join"
            gpio = "JOIN"
            [[controls.leds]]
            shows = "muted"
            gpio = "JOIN"
            "#,
        );
        assert_eq!(c.validate().unwrap_err().key, "controls.leds[0].gpio");
    }

    #[test]
    fn a_button_needs_exactly_one_source() {
        let c = parse("[[controls.buttons]]\naction = \"join\"\n");
        assert_eq!(c.validate().unwrap_err().key, "controls.buttons[0]");
        let c = parse(
            "[[controls.buttons]]\naction = \"join\"\ngpio = \"gpiochip0:1\"\nkey = \"KEY_A\"\n",
        );
        assert_eq!(c.validate().unwrap_err().key, "controls.buttons[0].gpio");
        let c = parse("[[controls.buttons]]\naction = \"join\"\nkey = \"KEY_NOPE\"\n");
        assert_eq!(c.validate().unwrap_err().key, "controls.buttons[0].key");
        let c = parse(
            "[[controls.buttons]]\naction = \"join\"\ngpio = \"gpiochip0:1\"\ndevice = \"/dev/input/event0\"\n",
        );
        assert_eq!(c.validate().unwrap_err().key, "controls.buttons[0].device");
    }

    #[test]
    fn speakerphone_settings() {
        assert_eq!(
            parse("[controls]\nspeakerphone = \"off\"\n").speakerphone,
            SpeakerphoneSetting::Off
        );
        assert_eq!(
            parse("[controls]\nspeakerphone = \"/dev/hidraw3\"\n").speakerphone,
            SpeakerphoneSetting::Path("/dev/hidraw3".into())
        );
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            controls: ControlsConfig,
        }
        let e = toml::from_str::<File>("[controls]\nspeakerphone = \"yes\"\n").unwrap_err();
        assert!(e.to_string().contains("auto"), "{e}");
    }

    #[test]
    fn volume_settings() {
        let c = parse("[controls.volume]\nmixer = \"off\"\n");
        assert_eq!(c.validate().unwrap().volume, None);
        let c = parse("[controls.volume]\nmixer = \"hw:Dummy\"\ncontrol = \"Master\"\nstep = 0\n");
        assert_eq!(c.validate().unwrap_err().key, "controls.volume.step");
    }
}

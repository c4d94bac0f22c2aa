//! The room's volume on an ALSA mixer: percent ↔ the control's raw range (sans-IO), and
//! [`Mixer`], a playback volume control that can be set, read, and waited on for changes made
//! elsewhere (`alsamixer`, another program, the card's own buttons) through the mixer's poll
//! descriptors.

use std::ffi::CString;

use alsa::mixer::{Selem, SelemChannelId, SelemId};

/// The controls tried, in order, when the configuration names none.
pub const DEFAULT_CONTROLS: [&str; 5] = ["Master", "PCM", "Speaker", "Headphone", "Playback"];

/// A raw volume in `min..=max` as a percentage (rounded).
pub fn percent_from_raw(raw: i64, min: i64, max: i64) -> u8 {
    if max <= min {
        return 0;
    }
    let raw = raw.clamp(min, max);
    let p = ((raw - min) as f64 * 100.0 / (max - min) as f64).round();
    p.clamp(0.0, 100.0) as u8
}

/// A percentage as a raw volume in `min..=max` (rounded).
pub fn raw_from_percent(percent: u8, min: i64, max: i64) -> i64 {
    if max <= min {
        return min;
    }
    let p = f64::from(percent.min(100));
    min + (p * (max - min) as f64 / 100.0).round() as i64
}

/// One step up or down, kept in 0–100.
pub fn stepped(current: u8, step: u8, up: bool) -> u8 {
    if up {
        current.saturating_add(step).min(100)
    } else {
        current.saturating_sub(step)
    }
}

/// A mixer error: the device and control, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mixer {device}: {message}")]
pub struct MixerError {
    /// `default`, `hw:0`, `hw:Dummy`.
    pub device: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// An open mixer with the room's playback volume control.
pub struct Mixer {
    device: String,
    mixer: alsa::Mixer,
    id: SelemId,
    control: String,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("device", &self.device)
            .field("control", &self.control)
            .finish()
    }
}

impl Mixer {
    /// Opens `device` (`default`, `hw:0`, `hw:Dummy`) and finds `control`, or the first of
    /// [`DEFAULT_CONTROLS`] with a playback volume.
    pub fn open(device: &str, control: Option<&str>) -> Result<Self, MixerError> {
        let err = |message: String| MixerError {
            device: device.to_string(),
            message,
        };
        let mixer = alsa::Mixer::new(device, true).map_err(|e| {
            err(format!(
                "cannot open ({e}); is the sound card present? (`aplay -l` lists them)"
            ))
        })?;
        let mut with_volume = Vec::new();
        for elem in mixer.iter() {
            if let Some(s) = Selem::new(elem) {
                if s.has_playback_volume() {
                    if let Ok(n) = s.get_id().get_name() {
                        with_volume.push((n.to_string(), s.get_id().get_index()));
                    }
                }
            }
        }
        let wanted: Vec<&str> = match control {
            Some(c) => vec![c],
            None => DEFAULT_CONTROLS.to_vec(),
        };
        let found = wanted
            .iter()
            .find_map(|w| with_volume.iter().find(|(n, _)| n == w))
            .cloned();
        let Some((name, index)) = found else {
            let have: Vec<&str> = with_volume.iter().map(|(n, _)| n.as_str()).collect();
            return Err(err(format!(
                "no playback volume control {}; this card has: {}",
                wanted.join(" or "),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )));
        };
        let mut id = SelemId::empty();
        let cname = CString::new(name.clone()).map_err(|_| err("bad control name".into()))?;
        id.set_name(&cname);
        id.set_index(index);
        Ok(Mixer {
            device: device.to_string(),
            mixer,
            id,
            control: name,
        })
    }

    /// `device control`, e.g. `hw:Dummy Master`.
    pub fn name(&self) -> String {
        format!("{} {}", self.device, self.control)
    }

    fn selem(&self) -> Result<Selem<'_>, MixerError> {
        self.mixer.find_selem(&self.id).ok_or_else(|| MixerError {
            device: self.device.clone(),
            message: format!("control {} is gone (card unplugged?)", self.control),
        })
    }

    fn alsa_err(&self, what: &str, e: alsa::Error) -> MixerError {
        MixerError {
            device: self.device.clone(),
            message: format!("{what} {}: {e}", self.control),
        }
    }

    /// The playback volume in percent (the first channel's).
    pub fn volume(&self) -> Result<u8, MixerError> {
        let s = self.selem()?;
        let (min, max) = s.get_playback_volume_range();
        let raw = s
            .get_playback_volume(SelemChannelId::mono())
            .map_err(|e| self.alsa_err("reading", e))?;
        Ok(percent_from_raw(raw, min, max))
    }

    /// Sets every channel's playback volume; answers the volume read back.
    pub fn set_volume(&self, percent: u8) -> Result<u8, MixerError> {
        let s = self.selem()?;
        let (min, max) = s.get_playback_volume_range();
        s.set_playback_volume_all(raw_from_percent(percent, min, max))
            .map_err(|e| self.alsa_err("setting", e))?;
        self.volume()
    }

    /// Waits up to `timeout_ms` for a change on the mixer (ours or anyone's) and takes it in;
    /// an error when the card went away.
    pub fn wait(&self, timeout_ms: u32) -> Result<(), MixerError> {
        self.mixer
            .wait(Some(timeout_ms))
            .map_err(|e| self.alsa_err("waiting on", e))?;
        self.mixer
            .handle_events()
            .map_err(|e| self.alsa_err("reading events of", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn snd_dummy_master_range() {
        // snd-dummy's Master Volume is -50..=100.
        assert_eq!(percent_from_raw(-50, -50, 100), 0);
        assert_eq!(percent_from_raw(100, -50, 100), 100);
        assert_eq!(raw_from_percent(50, -50, 100), 25);
        assert_eq!(percent_from_raw(0, 0, 0), 0);
        assert_eq!(stepped(98, 5, true), 100);
        assert_eq!(stepped(3, 5, false), 0);
    }

    proptest! {
        #[test]
        fn percent_round_trips_on_fine_ranges(p in 0u8..=100, min in -10_000i64..10_000, span in 100i64..100_000) {
            let max = min + span;
            prop_assert_eq!(percent_from_raw(raw_from_percent(p, min, max), min, max), p);
        }

        #[test]
        fn raw_stays_in_range(p in any::<u8>(), min in -100_000i64..100_000, span in 0i64..100_000) {
            let max = min + span;
            let r = raw_from_percent(p, min, max);
            prop_assert!((min..=max).contains(&r));
            prop_assert!(percent_from_raw(r, min, max) <= 100);
        }
    }
}

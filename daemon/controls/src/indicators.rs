//! The room's state as the controls show it: which LEDs are lit.

use crate::config::Indicator;

/// What the room is doing, as the LEDs and speakerphones show it. The room loop sets it from
/// the controller's snapshot after each input ([`crate::Controls::set_indicators`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Indicators {
    /// In a call (also while leaving): the speakerphone's Off-Hook LED.
    pub in_call: bool,
    /// The microphone is muted: the speakerphone's Mute LED, evdev `LED_MUTE`.
    pub muted: bool,
    /// Joining.
    pub joining: bool,
    /// Waiting in the lobby.
    pub lobby: bool,
    /// Something is wrong (a failed join, a press with nothing to join).
    pub error: bool,
}

impl Indicators {
    /// Whether an LED showing `what` is lit.
    pub fn shows(&self, what: Indicator) -> bool {
        match what {
            Indicator::InCall => self.in_call,
            Indicator::Muted => self.muted,
            Indicator::Joining => self.joining,
            Indicator::Lobby => self.lobby,
            Indicator::Error => self.error,
        }
    }

    /// The telephony "off hook" state: a call is being made or held (joining, lobby, in call).
    pub fn off_hook(&self) -> bool {
        self.in_call || self.joining || self.lobby
    }
}

/// The physical level of an LED line: `true` is high. `active_low` LEDs are lit when low.
pub fn led_line_level(indicators: &Indicators, shows: Indicator, active_low: bool) -> bool {
    indicators.shows(shows) != active_low
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all() -> [Indicator; 5] {
        [
            Indicator::InCall,
            Indicator::Muted,
            Indicator::Joining,
            Indicator::Lobby,
            Indicator::Error,
        ]
    }

    #[test]
    fn each_led_shows_its_own_part() {
        let i = Indicators {
            muted: true,
            ..Default::default()
        };
        let lit: Vec<_> = all().into_iter().filter(|w| i.shows(*w)).collect();
        assert_eq!(lit, vec![Indicator::Muted]);
        assert!(led_line_level(&i, Indicator::Muted, false));
        assert!(!led_line_level(&i, Indicator::Muted, true));
        assert!(led_line_level(&i, Indicator::InCall, true));
    }

    proptest! {
        #[test]
        fn active_low_inverts_the_line(in_call: bool, muted: bool, joining: bool, lobby: bool, error: bool, k in 0usize..5) {
            let i = Indicators { in_call, muted, joining, lobby, error };
            let w = all()[k];
            prop_assert_eq!(led_line_level(&i, w, false), !led_line_level(&i, w, true));
            prop_assert_eq!(led_line_level(&i, w, false), i.shows(w));
        }
    }
}

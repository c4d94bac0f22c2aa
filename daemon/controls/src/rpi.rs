//! The Raspberry Pi backend (cargo feature `rpi`, `rppal`): what only the Pi offers, here the
//! hardware PWM channels to dim an LED (`pwm_channel`, `brightness` in `[[controls.leds]]`).
//! rppal checks the Pi model and uses the kernel's PWM sysfs interface (the `pwm-2chan`
//! overlay), so it cannot run on gpio-sim or x86; it is compile-checked for
//! `aarch64-unknown-linux-gnu` and tested on a Pi (hw-tests/hil).

use rppal::pwm::{Channel, Polarity, Pwm};
use tokio::sync::watch;

use crate::config::Led;
use crate::indicators::Indicators;
use crate::runtime::{Link, RETRY};
use crate::ControlState;

/// PWM frequency for LEDs: far above flicker.
const FREQUENCY_HZ: f64 = 1000.0;

/// The duty cycle for an LED at `brightness` percent, lit or not.
pub fn duty_cycle(lit: bool, brightness: u8, active_low: bool) -> f64 {
    let d = if lit {
        f64::from(brightness.min(100)) / 100.0
    } else {
        0.0
    };
    if active_low {
        1.0 - d
    } else {
        d
    }
}

/// Runs one PWM-dimmed LED until the controls stop.
pub(crate) async fn run_pwm_led(led: Led, link: Link, mut indicators: watch::Receiver<Indicators>) {
    let channel = if led.pwm_channel == Some(1) {
        Channel::Pwm1
    } else {
        Channel::Pwm0
    };
    loop {
        let lit = indicators.borrow_and_update().shows(led.shows);
        let pwm = Pwm::with_frequency(
            channel,
            FREQUENCY_HZ,
            duty_cycle(lit, led.brightness, led.active_low),
            Polarity::Normal,
            true,
        );
        let pwm = match pwm {
            Ok(p) => p,
            Err(e) => {
                link.status(
                    &led.name,
                    ControlState::Unavailable {
                        reason: format!(
                            "PWM channel {channel:?}: {e} (is the pwm-2chan overlay enabled?)"
                        ),
                    },
                );
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        link.status(&led.name, ControlState::Ready);
        loop {
            if indicators.changed().await.is_err() {
                return;
            }
            let lit = indicators.borrow_and_update().shows(led.shows);
            if let Err(e) = pwm.set_duty_cycle(duty_cycle(lit, led.brightness, led.active_low)) {
                link.status(
                    &led.name,
                    ControlState::Unavailable {
                        reason: format!("PWM channel {channel:?}: {e}"),
                    },
                );
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_and_polarity() {
        assert_eq!(duty_cycle(true, 40, false), 0.4);
        assert_eq!(duty_cycle(false, 40, false), 0.0);
        assert_eq!(duty_cycle(true, 100, true), 0.0);
        assert_eq!(duty_cycle(false, 100, true), 1.0);
    }
}

//! GPIO buttons and LEDs through the kernel's GPIO character device (uAPI v2 via `gpiocdev`):
//! edge events with kernel debounce and bias for buttons, output lines for LEDs. Works on
//! every board with a GPIO chip and on gpio-sim. Each control is its own task that retries
//! (on a device change under /dev, or every few seconds) while its line cannot be had.

use std::path::PathBuf;
use std::time::Duration;

use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};
use gpiocdev::tokio::AsyncRequest;
use gpiocdev::Request;
use tokio::sync::watch;

use crate::config::{BiasSetting, Button, ButtonSource, GpioLine, Led};
use crate::indicators::{led_line_level, Indicators};
use crate::press::{Edge, PressDetector};
use crate::runtime::{Link, RETRY};
use crate::{ControlEvent, ControlState};

/// The consumer label other programs see on our lines (`gpioinfo`).
const CONSUMER: &str = "visio-roomd";

/// A line's chip and offset, or why it cannot be found.
fn resolve(line: &GpioLine) -> Result<(PathBuf, u32), String> {
    match line {
        GpioLine::Offset { chip, offset } => {
            let path = PathBuf::from("/dev").join(chip);
            if !path.exists() {
                return Err(format!("GPIO chip /dev/{chip} is not present"));
            }
            Ok((path, *offset))
        }
        GpioLine::Named(name) => match gpiocdev::find_named_line(name) {
            Some(found) => Ok((found.chip, found.info.offset)),
            None => Err(format!(
                "no GPIO line is named {name:?} (`gpioinfo` lists the lines)"
            )),
        },
    }
}

fn errno_of(e: &gpiocdev::Error) -> Option<i32> {
    match e {
        gpiocdev::Error::Os(errno) => Some(errno.0),
        gpiocdev::Error::Uapi(_, gpiocdev_uapi::Error::Os(errno)) => Some(errno.0),
        _ => None,
    }
}

/// Words for a failed line request.
fn describe(line: &GpioLine, e: &gpiocdev::Error) -> String {
    match errno_of(e) {
        Some(libc::EBUSY) => format!("GPIO line {line} is in use by another program"),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "no permission on the GPIO chip of {line} (the daemon's user needs the gpio group)"
        ),
        Some(libc::EINVAL) => format!(
            "GPIO line {line} does not exist on its chip, or the chip refused the settings ({e})"
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            format!("GPIO chip of {line} is not present")
        }
        _ => format!("GPIO line {line}: {e}"),
    }
}

fn request_button(
    line: &GpioLine,
    active_low: bool,
    debounce_ms: u32,
    bias: Option<BiasSetting>,
) -> Result<Request, String> {
    let (chip, offset) = resolve(line)?;
    let mut b = Request::builder();
    b.on_chip(chip)
        .with_consumer(CONSUMER)
        .with_line(offset)
        .as_input()
        .with_edge_detection(EdgeDetection::BothEdges);
    if debounce_ms > 0 {
        b.with_debounce_period(Duration::from_millis(u64::from(debounce_ms)));
    }
    if active_low {
        b.as_active_low();
    }
    if let Some(bias) = bias {
        b.with_bias(match bias {
            BiasSetting::PullUp => Bias::PullUp,
            BiasSetting::PullDown => Bias::PullDown,
            BiasSetting::Disabled => Bias::Disabled,
        });
    }
    b.request().map_err(|e| describe(line, &e))
}

/// Runs one GPIO button until the controls stop.
pub(crate) async fn run_button(button: Button, link: Link) {
    let ButtonSource::Gpio {
        line,
        active_low,
        debounce_ms,
        bias,
    } = &button.source
    else {
        return;
    };
    let source = format!("gpio:{line}");
    let mut devices = link.device_changes();
    loop {
        match request_button(line, *active_low, *debounce_ms, *bias) {
            Err(reason) => {
                link.status(&button.name, ControlState::Unavailable { reason });
                link.wait_for_devices(&mut devices, RETRY).await;
                continue;
            }
            Ok(req) => {
                link.status(&button.name, ControlState::Ready);
                let req = AsyncRequest::new(req);
                let mut presses = PressDetector::new(*debounce_ms);
                loop {
                    match req.read_edge_event().await {
                        Ok(ev) => {
                            let edge = Edge {
                                at_ns: ev.timestamp_ns,
                                active: ev.kind == EdgeKind::Rising,
                            };
                            if presses.edge(edge) {
                                tracing::info!(button = %button.name, "pressed");
                                link.send(ControlEvent::Button {
                                    action: button.action,
                                    source: source.clone(),
                                });
                            }
                        }
                        Err(e) => {
                            link.status(
                                &button.name,
                                ControlState::Unavailable {
                                    reason: describe(line, &e),
                                },
                            );
                            break;
                        }
                    }
                }
                tokio::time::sleep(RETRY / 5).await;
            }
        }
    }
}

fn request_led(led: &Led, lit: bool) -> Result<Request, String> {
    let (chip, offset) = resolve(&led.line)?;
    let mut b = Request::builder();
    b.on_chip(chip)
        .with_consumer(CONSUMER)
        .with_line(offset)
        .as_output(if lit { Value::Active } else { Value::Inactive });
    if led.active_low {
        b.as_active_low();
    }
    b.request().map_err(|e| describe(&led.line, &e))
}

/// Runs one GPIO LED: the line follows `indicators` until the controls stop.
pub(crate) async fn run_led(led: Led, link: Link, mut indicators: watch::Receiver<Indicators>) {
    let mut devices = link.device_changes();
    loop {
        let lit = |i: &Indicators| led_line_level(i, led.shows, false);
        let now = *indicators.borrow_and_update();
        let req = match request_led(&led, lit(&now)) {
            Err(reason) => {
                link.status(&led.name, ControlState::Unavailable { reason });
                link.wait_for_devices(&mut devices, RETRY).await;
                continue;
            }
            Ok(r) => r,
        };
        link.status(&led.name, ControlState::Ready);
        let mut shown = lit(&now);
        loop {
            // Re-check the line now and then: a chip that went away shows as an error here.
            let changed = tokio::time::timeout(RETRY, indicators.changed()).await;
            if let Ok(Err(_)) = changed {
                return; // controls dropped
            }
            let want = lit(&indicators.borrow_and_update());
            let res = if want != shown || changed.is_err() {
                req.set_lone_value(if want { Value::Active } else { Value::Inactive })
            } else {
                Ok(())
            };
            match res {
                Ok(()) => shown = want,
                Err(e) => {
                    link.status(
                        &led.name,
                        ControlState::Unavailable {
                            reason: describe(&led.line, &e),
                        },
                    );
                    break;
                }
            }
        }
        drop(req);
        tokio::time::sleep(RETRY / 5).await;
    }
}

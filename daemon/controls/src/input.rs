//! Linux input devices (evdev): keys from USB buttons, presenters, remotes, keyboards and
//! `gpio-keys` overlays, from any device or a named one; hot-plugged. Devices with an
//! `LED_MUTE` (keyboards with a mic-mute LED, speakerphones the kernel maps to evdev) show
//! the room's mute state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use evdev::{Device, EventSummary, EventType, InputEvent, KeyCode, LedCode};
use tokio::sync::{mpsc, watch};

use crate::config::{Button, ButtonSource};
use crate::indicators::Indicators;
use crate::runtime::{Link, RETRY};
use crate::{ControlEvent, ControlState, DeviceKind};

/// A key button: code, optional device (canonical path), action.
#[derive(Debug, Clone)]
struct KeyButton {
    button: Button,
    code: u16,
    device: Option<PathBuf>,
}

fn event_nodes() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/dev/input")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"))
        })
        .collect();
    v.sort();
    v
}

/// Runs every key button and the `LED_MUTE` fallback.
pub(crate) async fn run(buttons: Vec<Button>, link: Link, indicators: watch::Receiver<Indicators>) {
    let keys: Vec<KeyButton> = buttons
        .into_iter()
        .filter_map(|b| match &b.source {
            ButtonSource::Key { code, device, .. } => Some(KeyButton {
                code: *code,
                device: device.clone(),
                button: b.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut devices = link.device_changes();
    // Open devices: node → the keys it serves.
    let mut open: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    // Nodes looked at and not useful (no key we want, no LED_MUTE): skipped until they go.
    let mut useless: HashMap<PathBuf, ()> = HashMap::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<PathBuf>();
    loop {
        let nodes = event_nodes();
        useless.retain(|p, _| nodes.contains(p));
        // Why each key has no device, for its status.
        let mut problems: BTreeMap<usize, String> = BTreeMap::new();
        for node in &nodes {
            if open.contains_key(node) || useless.contains_key(node) {
                continue;
            }
            let dev = match Device::open(node) {
                Ok(d) => d,
                Err(e) => {
                    let reason = crate::describe_open_error(&node.display().to_string(), &e);
                    for (i, k) in keys.iter().enumerate() {
                        let wanted_here = match &k.device {
                            Some(d) => canonical(d).as_deref() == Some(node.as_path()),
                            None => true,
                        };
                        if wanted_here {
                            problems.entry(i).or_insert_with(|| reason.clone());
                        }
                    }
                    continue;
                }
            };
            let serves: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| {
                    let device_ok = match &k.device {
                        Some(d) => canonical(d).as_deref() == Some(node.as_path()),
                        None => true,
                    };
                    device_ok
                        && dev
                            .supported_keys()
                            .is_some_and(|s| s.contains(KeyCode::new(k.code)))
                })
                .map(|(i, _)| i)
                .collect();
            let has_mute_led = dev
                .supported_leds()
                .is_some_and(|l| l.contains(LedCode::LED_MUTE));
            if serves.is_empty() && !has_mute_led {
                useless.insert(node.clone(), ());
                continue;
            }
            let name = dev.name().unwrap_or("").to_string();
            tracing::info!(device = %node.display(), %name, keys = serves.len(), mute_led = has_mute_led, "input device in use");
            link.send(ControlEvent::DeviceAppeared {
                kind: DeviceKind::Input,
                path: node.display().to_string(),
                name,
            });
            open.insert(node.clone(), serves.clone());
            let served: Vec<KeyButton> = serves.iter().map(|i| keys[*i].clone()).collect();
            let node2 = node.clone();
            let ended = ended_tx.clone();
            let link2 = link.clone();
            let ind = indicators.clone();
            tokio::spawn(async move {
                run_device(dev, &node2, served, has_mute_led, link2, ind).await;
                let _ = ended.send(node2);
            });
        }
        for (i, k) in keys.iter().enumerate() {
            let served = open.values().any(|s| s.contains(&i));
            let state = if served {
                ControlState::Ready
            } else {
                let reason = problems.remove(&i).unwrap_or_else(|| match &k.device {
                    Some(d) if canonical(d).is_none() => {
                        format!("input device {} is not present", d.display())
                    }
                    Some(d) => format!("input device {} has no key {}", d.display(), key_name(k)),
                    None => format!(
                        "no input device has the key {} (waiting for one)",
                        key_name(k)
                    ),
                });
                ControlState::Unavailable { reason }
            };
            link.status(&k.button.name, state);
        }
        tokio::select! {
            _ = link.wait_for_devices(&mut devices, RETRY) => {}
            Some(gone) = ended_rx.recv() => {
                open.remove(&gone);
                link.send(ControlEvent::DeviceGone { kind: DeviceKind::Input, path: gone.display().to_string() });
                // Let a burst of removals settle before scanning again.
                tokio::time::sleep(RETRY / 50).await;
                while let Ok(g) = ended_rx.try_recv() {
                    open.remove(&g);
                    link.send(ControlEvent::DeviceGone { kind: DeviceKind::Input, path: g.display().to_string() });
                }
            }
        }
    }
}

fn key_name(k: &KeyButton) -> String {
    match &k.button.source {
        ButtonSource::Key { key_name, .. } => key_name.clone(),
        _ => format!("{}", k.code),
    }
}

fn canonical(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

async fn run_device(
    dev: Device,
    node: &Path,
    keys: Vec<KeyButton>,
    mute_led: bool,
    link: Link,
    mut indicators: watch::Receiver<Indicators>,
) {
    let source = format!("input:{}", node.display());
    let mut stream = match dev.into_event_stream() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(device = %node.display(), error = %e, "cannot read input device");
            return;
        }
    };
    let mut shown_mute: Option<bool> = None;
    loop {
        if mute_led {
            let muted = indicators.borrow_and_update().muted;
            if shown_mute != Some(muted) {
                let ev = InputEvent::new(EventType::LED.0, LedCode::LED_MUTE.0, i32::from(muted));
                match stream.device_mut().send_events(&[ev]) {
                    Ok(()) => shown_mute = Some(muted),
                    Err(e) => {
                        tracing::debug!(device = %node.display(), error = %e, "LED_MUTE not set");
                        shown_mute = Some(muted);
                    }
                }
            }
        }
        tokio::select! {
            ev = stream.next_event() => {
                match ev {
                    Ok(ev) => {
                        // value 1 is a press; 2 is auto-repeat, 0 a release.
                        if let EventSummary::Key(_, code, 1) = ev.destructure() {
                            for k in keys.iter().filter(|k| k.code == code.code()) {
                                tracing::info!(button = %k.button.name, "pressed");
                                link.send(ControlEvent::Button { action: k.button.action, source: source.clone() });
                            }
                        }
                    }
                    Err(e) => {
                        tracing::info!(device = %node.display(), error = %e, "input device gone");
                        return;
                    }
                }
            }
            changed = indicators.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

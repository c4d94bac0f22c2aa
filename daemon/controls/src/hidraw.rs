//! USB speakerphones through hidraw: the kernel maps Telephony-only collections to no evdev
//! node, so their buttons are read as raw input reports and their LEDs set with raw output
//! reports ([`crate::hid::Speakerphone`] decides). `speakerphone = "auto"` takes every hidraw
//! node whose report descriptor (read from sysfs, which needs no permission) has telephony
//! controls; a path takes that node only. Hot-plugged.

// The workspace denies unsafe code; this file needs it for
// registering the hidraw fd with tokio; each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use crate::config::SpeakerphoneSetting;
use crate::hid::{ReportDescriptor, Speakerphone, TelephonyMap};
use crate::indicators::Indicators;
use crate::runtime::{Link, RETRY};
use crate::{ControlEvent, ControlState, DeviceKind};

fn hidraw_nodes() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hidraw"))
        })
        .collect();
    v.sort();
    v
}

/// The telephony map of a hidraw node, from its sysfs report descriptor.
fn telephony_of(node: &Path) -> Result<Option<TelephonyMap>, String> {
    let real = std::fs::canonicalize(node)
        .map_err(|e| crate::describe_open_error(&node.display().to_string(), &e))?;
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} is not a hidraw node", node.display()))?;
    let sys = Path::new("/sys/class/hidraw")
        .join(name)
        .join("device/report_descriptor");
    let bytes = std::fs::read(&sys).map_err(|e| {
        format!(
            "{}: cannot read its report descriptor ({e})",
            node.display()
        )
    })?;
    let desc = ReportDescriptor::parse(&bytes).map_err(|e| format!("{}: {e}", node.display()))?;
    let map = TelephonyMap::from_descriptor(&desc);
    Ok(map.is_speakerphone().then_some(map))
}

fn device_name(node: &Path) -> String {
    let Some(name) = std::fs::canonicalize(node)
        .ok()
        .and_then(|r| r.file_name().map(|n| n.to_owned()))
    else {
        return String::new();
    };
    let uevent = Path::new("/sys/class/hidraw")
        .join(name)
        .join("device/uevent");
    std::fs::read_to_string(uevent)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("HID_NAME=").map(str::to_string))
        })
        .unwrap_or_default()
}

/// Runs the speakerphone setting until the controls stop.
pub(crate) async fn run(
    setting: SpeakerphoneSetting,
    link: Link,
    indicators: watch::Receiver<Indicators>,
) {
    if setting == SpeakerphoneSetting::Off {
        return;
    }
    let mut devices = link.device_changes();
    let mut open: HashSet<PathBuf> = HashSet::new();
    let mut not_phones: HashSet<PathBuf> = HashSet::new();
    let mut failing: HashMap<PathBuf, String> = HashMap::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<PathBuf>();
    loop {
        let candidates = match &setting {
            SpeakerphoneSetting::Path(p) => vec![p.clone()],
            _ => hidraw_nodes(),
        };
        not_phones.retain(|p| candidates.contains(p));
        for node in &candidates {
            if open.contains(node) || not_phones.contains(node) {
                continue;
            }
            let name = format!("speakerphone {}", node.display());
            let map = match telephony_of(node) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    tracing::debug!(device = %node.display(), "hidraw node without telephony controls");
                    if matches!(setting, SpeakerphoneSetting::Path(_)) {
                        link.status(
                            &name,
                            ControlState::Unavailable {
                                reason: format!(
                                    "{} has no HID Telephony controls (Phone Mute, Hook Switch, Mute LED)",
                                    node.display()
                                ),
                            },
                        );
                    }
                    not_phones.insert(node.clone());
                    continue;
                }
                Err(reason) => {
                    tracing::debug!(device = %node.display(), %reason, "hidraw node not readable");
                    if matches!(setting, SpeakerphoneSetting::Path(_)) {
                        link.status(&name, ControlState::Unavailable { reason });
                    }
                    continue;
                }
            };
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(node)
            {
                Ok(f) => f,
                Err(e) => {
                    let reason = crate::describe_open_error(&node.display().to_string(), &e);
                    if failing.get(node) != Some(&reason) {
                        failing.insert(node.clone(), reason.clone());
                    }
                    link.status(&name, ControlState::Unavailable { reason });
                    continue;
                }
            };
            failing.remove(node);
            // SAFETY: the AsyncFd owns the File, so the descriptor stays open and the same
            // for the AsyncFd's whole life.
            let fd = match unsafe { AsyncFd::register(file) } {
                Ok(fd) => fd,
                Err(e) => {
                    let (_, e) = e.into_parts();
                    link.status(
                        &name,
                        ControlState::Unavailable {
                            reason: format!("{}: {e}", node.display()),
                        },
                    );
                    continue;
                }
            };
            let dev_name = device_name(node);
            tracing::info!(device = %node.display(), name = %dev_name, ?map, "speakerphone in use");
            link.status(&name, ControlState::Ready);
            link.send(ControlEvent::DeviceAppeared {
                kind: DeviceKind::Speakerphone,
                path: node.display().to_string(),
                name: dev_name,
            });
            open.insert(node.clone());
            let (node2, link2, ind, ended) = (
                node.clone(),
                link.clone(),
                indicators.clone(),
                ended_tx.clone(),
            );
            tokio::spawn(async move {
                let reason = run_device(fd, &node2, map, &link2, ind).await;
                tracing::info!(device = %node2.display(), %reason, "speakerphone gone");
                let _ = ended.send(node2.clone());
                let name = format!("speakerphone {}", node2.display());
                link2.status(&name, ControlState::Unavailable { reason });
            });
        }
        if matches!(setting, SpeakerphoneSetting::Auto) && open.is_empty() {
            link.status(
                "speakerphone",
                ControlState::Unavailable {
                    reason: "no USB speakerphone found (waiting for one)".into(),
                },
            );
        } else if matches!(setting, SpeakerphoneSetting::Auto) {
            link.status("speakerphone", ControlState::Ready);
        }
        tokio::select! {
            _ = link.wait_for_devices(&mut devices, RETRY) => {}
            Some(gone) = ended_rx.recv() => {
                open.remove(&gone);
                link.send(ControlEvent::DeviceGone { kind: DeviceKind::Speakerphone, path: gone.display().to_string() });
                if matches!(setting, SpeakerphoneSetting::Auto) {
                    // An unplugged auto-found speakerphone is not a fault: forget its status.
                    link.forget(&format!("speakerphone {}", gone.display()));
                }
            }
        }
    }
}

fn write_report(fd: &AsyncFd<File>, bytes: &[u8]) -> io::Result<()> {
    let mut f = fd.get_ref();
    match f.write(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(n) => Err(io::Error::other(format!(
            "short write {n} of {}",
            bytes.len()
        ))),
        Err(e) => Err(e),
    }
}

/// Reads reports and writes LED reports until the device fails; answers why it stopped.
async fn run_device(
    fd: AsyncFd<File>,
    node: &Path,
    map: TelephonyMap,
    link: &Link,
    mut indicators: watch::Receiver<Indicators>,
) -> String {
    let source = format!("speakerphone:{}", node.display());
    let mut phone = Speakerphone::new(map);
    let mut buf = [0u8; 256];
    loop {
        let now = *indicators.borrow_and_update();
        for report in phone.indicators(&now) {
            if let Err(e) = write_report(&fd, &report.hidraw_bytes()) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    continue;
                }
                phone.resend();
                return format!("{}: writing the LED report failed ({e})", node.display());
            }
            tracing::debug!(device = %node.display(), report = ?report, "LED report written");
        }
        tokio::select! {
            ready = fd.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => return format!("{}: {e}", node.display()),
                };
                match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => return format!("{} closed", node.display()),
                    Ok(Ok(n)) => {
                        for action in phone.input_report(&buf[..n]) {
                            tracing::info!(device = %node.display(), %action, "speakerphone button");
                            link.send(ControlEvent::Button { action, source: source.clone() });
                        }
                    }
                    Ok(Err(e)) => {
                        return crate::describe_open_error(&node.display().to_string(), &e);
                    }
                    Err(_would_block) => {}
                }
            }
            changed = indicators.changed() => {
                if changed.is_err() {
                    return "controls stopped".into();
                }
            }
        }
    }
}

//! [`Controls`]: the running controls — one task per GPIO control, one for input devices, one
//! for speakerphones, one for cameras, a thread for the mixer and one watching `/dev` — and
//! the [`Link`] they report through.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::audio::PcmDevice;
use crate::config::{ButtonSource, ValidConfig, VolumeConfig};
use crate::indicators::Indicators;
use crate::mixer::{stepped, Mixer, MixerError};
use crate::{Action, ControlEvent, ControlState, ControlStatus, DeviceKind};

/// A device present now (a camera, an input device in use, a speakerphone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Which kind.
    pub kind: DeviceKind,
    /// Its node.
    pub path: String,
    /// Its name as the driver says it.
    pub name: String,
}

/// What the `Devices` property shows: the devices present, the sound cards' microphones and
/// speakers, and every configured control with its state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    /// Cameras, input devices in use and speakerphones, by kind then path.
    pub present: Vec<Device>,
    /// PCM devices of the sound cards (capture: microphones, playback: speakers).
    pub audio: Vec<PcmDevice>,
    /// Buttons, LEDs, speakerphones, the mixer: working or why not.
    pub controls: Vec<ControlStatus>,
}

/// How long a control waits before trying an unusable device again (sooner when something
/// changes under /dev).
pub(crate) const RETRY: Duration = Duration::from_secs(5);

enum MixerCommand {
    Set(u8, oneshot::Sender<Result<u8, MixerError>>),
    Step(bool),
}

/// Why the volume cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// `controls.volume.mixer = "off"`.
    #[error("no mixer is configured (controls.volume.mixer = \"off\")")]
    NotConfigured,
    /// The mixer cannot be used now.
    #[error(transparent)]
    Unavailable(#[from] MixerError),
}

/// What the control tasks share: the event channel, the statuses, device changes.
#[derive(Clone)]
pub(crate) struct Link {
    events: mpsc::UnboundedSender<ControlEvent>,
    statuses: Arc<Mutex<BTreeMap<String, ControlState>>>,
    devices: watch::Receiver<u64>,
    mixer: Option<std::sync::mpsc::Sender<MixerCommand>>,
    present: Arc<Mutex<BTreeMap<(u8, String), Device>>>,
}

fn kind_order(kind: DeviceKind) -> u8 {
    match kind {
        DeviceKind::Camera => 0,
        DeviceKind::Speakerphone => 1,
        DeviceKind::Input => 2,
    }
}

impl Link {
    /// Sends an event to the room loop; volume buttons also step the mixer.
    pub(crate) fn send(&self, event: ControlEvent) {
        match &event {
            ControlEvent::Button { action, .. } => {
                if let (Some(m), Action::VolumeUp | Action::VolumeDown) = (&self.mixer, action) {
                    let _ = m.send(MixerCommand::Step(*action == Action::VolumeUp));
                }
            }
            ControlEvent::DeviceAppeared { kind, path, name } => {
                let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
                p.insert(
                    (kind_order(*kind), path.clone()),
                    Device {
                        kind: *kind,
                        path: path.clone(),
                        name: name.clone(),
                    },
                );
            }
            ControlEvent::DeviceGone { kind, path } => {
                let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
                p.remove(&(kind_order(*kind), path.clone()));
            }
            _ => {}
        }
        let _ = self.events.send(event);
    }

    /// Records a control's state; a change is logged and sent as [`ControlEvent::Status`].
    pub(crate) fn status(&self, name: &str, state: ControlState) {
        let mut all = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if all.get(name) == Some(&state) {
            return;
        }
        match &state {
            ControlState::Ready => tracing::info!(control = name, "control ready"),
            ControlState::Unavailable { reason } => {
                tracing::warn!(control = name, %reason, "control unavailable")
            }
        }
        all.insert(name.to_string(), state.clone());
        drop(all);
        let _ = self.events.send(ControlEvent::Status(ControlStatus {
            name: name.to_string(),
            state,
        }));
    }

    /// Drops a control's status (a hot-plugged device that went away is no fault).
    pub(crate) fn forget(&self, name: &str) {
        let mut all = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(name);
    }

    /// A receiver of device-node changes.
    pub(crate) fn device_changes(&self) -> watch::Receiver<u64> {
        self.devices.clone()
    }

    /// Waits for a change under /dev, or `timeout`. A short settle delay follows a change so
    /// udev can set the node's permissions.
    pub(crate) async fn wait_for_devices(&self, rx: &mut watch::Receiver<u64>, timeout: Duration) {
        match tokio::time::timeout(timeout, rx.changed()).await {
            Ok(Ok(())) => {
                rx.borrow_and_update();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(_)) => tokio::time::sleep(timeout).await, // watcher gone: timer only
            Err(_) => {}
        }
    }
}

/// The running controls. Dropping it stops them.
pub struct Controls {
    events: mpsc::UnboundedReceiver<ControlEvent>,
    indicators: watch::Sender<Indicators>,
    statuses: Arc<Mutex<BTreeMap<String, ControlState>>>,
    mixer: Option<std::sync::mpsc::Sender<MixerCommand>>,
    volume: Arc<Mutex<Option<u8>>>,
    present: Arc<Mutex<BTreeMap<(u8, String), Device>>>,
    tasks: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("statuses", &self.statuses())
            .finish()
    }
}

impl Controls {
    /// Starts every configured control (inside a Tokio runtime). Never fails: a control that
    /// cannot be used now is reported in [`Self::statuses`] and retried.
    pub fn start(config: ValidConfig) -> Controls {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (indicators, ind_rx) = watch::channel(Indicators::default());
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let devices = crate::watch::start(stop.clone());
        let volume = Arc::new(Mutex::new(None));
        let mut mixer = None;
        let present = Arc::new(Mutex::new(BTreeMap::new()));
        let mut link = Link {
            events: events_tx,
            statuses: statuses.clone(),
            devices,
            mixer: None,
            present: present.clone(),
        };
        if let Some(cfg) = config.volume.clone() {
            let (tx, rx) = std::sync::mpsc::channel();
            mixer = Some(tx.clone());
            link.mixer = Some(tx);
            let (l, v, s) = (link.clone(), volume.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name("controls-mixer".into())
                .spawn(move || run_mixer(cfg, l, rx, v, s));
            if let Err(e) = spawned {
                link.status(
                    "volume",
                    ControlState::Unavailable {
                        reason: format!("cannot start the mixer thread: {e}"),
                    },
                );
            }
        }
        let mut tasks = Vec::new();
        let mut key_buttons = Vec::new();
        for b in &config.buttons {
            match b.source {
                ButtonSource::Gpio { .. } => tasks.push(tokio::spawn(crate::gpio::run_button(
                    b.clone(),
                    link.clone(),
                ))),
                ButtonSource::Key { .. } => key_buttons.push(b.clone()),
            }
        }
        for l in &config.leds {
            #[cfg(feature = "rpi")]
            if l.pwm_channel.is_some() {
                tasks.push(tokio::spawn(crate::rpi::run_pwm_led(
                    l.clone(),
                    link.clone(),
                    ind_rx.clone(),
                )));
                continue;
            }
            #[cfg(not(feature = "rpi"))]
            if l.pwm_channel.is_some() {
                link.status(
                    &l.name,
                    ControlState::Unavailable {
                        reason: "pwm_channel needs the Raspberry Pi build (cargo feature rpi); driving the line as GPIO".into(),
                    },
                );
            }
            tasks.push(tokio::spawn(crate::gpio::run_led(
                l.clone(),
                link.clone(),
                ind_rx.clone(),
            )));
        }
        // The input task also serves LED_MUTE on keyboards, so it runs even without key
        // buttons.
        tasks.push(tokio::spawn(crate::input::run(
            key_buttons,
            link.clone(),
            ind_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::hidraw::run(
            config.speakerphone.clone(),
            link.clone(),
            ind_rx.clone(),
        )));
        tasks.push(tokio::spawn(run_cameras(link.clone())));
        Controls {
            events,
            indicators,
            statuses,
            mixer,
            volume,
            present,
            tasks,
            stop,
        }
    }

    /// The devices present, the microphones and speakers, and the controls' states (for the
    /// `Devices` property).
    pub fn devices(&self) -> Devices {
        let present = self
            .present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        Devices {
            present,
            audio: crate::audio::list(),
            controls: self.statuses(),
        }
    }

    /// The next event; `None` only after the controls stopped.
    pub async fn next_event(&mut self) -> Option<ControlEvent> {
        self.events.recv().await
    }

    /// The room's state changed: LEDs, speakerphones and `LED_MUTE` follow.
    pub fn set_indicators(&self, indicators: Indicators) {
        self.indicators.send_if_modified(|i| {
            let changed = *i != indicators;
            *i = indicators;
            changed
        });
    }

    /// Every control's status, by name.
    pub fn statuses(&self) -> Vec<ControlStatus> {
        let all = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|(name, state)| ControlStatus {
                name: name.clone(),
                state: state.clone(),
            })
            .collect()
    }

    /// The mixer's volume as last read, when there is a usable mixer.
    pub fn volume(&self) -> Option<u8> {
        *self.volume.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the mixer's playback volume (0–100); answers the volume read back.
    pub async fn set_volume(&self, percent: u8) -> Result<u8, VolumeError> {
        let Some(m) = &self.mixer else {
            return Err(VolumeError::NotConfigured);
        };
        let (tx, rx) = oneshot::channel();
        let gone = || {
            VolumeError::Unavailable(MixerError {
                device: String::new(),
                message: "the mixer thread stopped".into(),
            })
        };
        m.send(MixerCommand::Set(percent.min(100), tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(VolumeError::from)
    }
}

impl Drop for Controls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn run_mixer(
    cfg: VolumeConfig,
    link: Link,
    commands: std::sync::mpsc::Receiver<MixerCommand>,
    volume: Arc<Mutex<Option<u8>>>,
    stop: Arc<AtomicBool>,
) {
    let name = format!("volume {}", cfg.mixer);
    let set_volume = |v: Option<u8>| *volume.lock().unwrap_or_else(|p| p.into_inner()) = v;
    while !stop.load(Ordering::Relaxed) {
        let mixer = match Mixer::open(&cfg.mixer, cfg.control.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                set_volume(None);
                link.status(
                    &name,
                    ControlState::Unavailable {
                        reason: e.message.clone(),
                    },
                );
                // Answer waiting callers, and wait for the card to come (polling: ALSA has
                // no "card added" event here without udev).
                let deadline = std::time::Instant::now() + RETRY;
                while std::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    match commands.recv_timeout(Duration::from_millis(200)) {
                        Ok(MixerCommand::Set(_, reply)) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Ok(MixerCommand::Step(_)) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                continue;
            }
        };
        link.status(&name, ControlState::Ready);
        tracing::info!(mixer = %mixer.name(), "mixer in use");
        let mut last: Option<u8> = None;
        let failure = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match mixer.volume() {
                Ok(v) => {
                    if last != Some(v) {
                        last = Some(v);
                        set_volume(Some(v));
                        link.send(ControlEvent::Volume { percent: v });
                    }
                }
                Err(e) => break e,
            }
            let mut failed = None;
            // Steps build on each other even when several come before the next read.
            let mut level = last.unwrap_or(0);
            loop {
                match commands.try_recv() {
                    Ok(MixerCommand::Set(p, reply)) => {
                        let r = mixer.set_volume(p);
                        match &r {
                            Ok(v) => level = *v,
                            Err(e) => failed = Some(e.clone()),
                        }
                        let _ = reply.send(r);
                    }
                    Ok(MixerCommand::Step(up)) => {
                        match mixer.set_volume(stepped(level, cfg.step, up)) {
                            Ok(v) => level = v,
                            Err(e) => failed = Some(e),
                        }
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
            }
            if let Some(e) = failed {
                break e;
            }
            // A command or a change elsewhere wakes this within 100 ms.
            if let Err(e) = mixer.wait(100) {
                break e;
            }
        };
        set_volume(None);
        link.status(
            &name,
            ControlState::Unavailable {
                reason: failure.message,
            },
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Watches cameras come and go.
async fn run_cameras(link: Link) {
    let mut devices = link.device_changes();
    let mut known: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let now: BTreeSet<(String, String)> =
            tokio::task::spawn_blocking(crate::camera::capture_nodes)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(path, name)| (path.display().to_string(), name))
                .collect();
        tracing::debug!(cameras = ?now, "cameras scanned");
        for (path, name) in now.difference(&known) {
            tracing::info!(camera = %path, %name, "camera appeared");
            link.send(ControlEvent::DeviceAppeared {
                kind: DeviceKind::Camera,
                path: path.clone(),
                name: name.clone(),
            });
        }
        for (path, _) in known.difference(&now) {
            tracing::info!(camera = %path, "camera gone");
            link.send(ControlEvent::DeviceGone {
                kind: DeviceKind::Camera,
                path: path.clone(),
            });
        }
        known = now;
        link.wait_for_devices(&mut devices, RETRY).await;
    }
}

//! Input devices through uinput: a remote with KEY_MICMUTE and volume keys (and a mic-mute
//! LED), created and removed by the test as a USB device would be plugged and unplugged.
//! Needs the uinput module (/dev/uinput) and root. The volume-key test also needs snd-dummy.
//! See tests/HW.md.

// The workspace denies unsafe code; this file needs it for
// uinput ioctls; each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

mod hw_support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hw_support::*;
use visio_room_controls::config::ControlsConfig;
use visio_room_controls::{Action, ControlEvent, Controls, DeviceKind, Indicators};

const EV_SYN: u16 = 0;
const EV_KEY: u16 = 1;
const EV_LED: u16 = 0x11;
const KEY_VOLUMEDOWN: u16 = 114;
const KEY_VOLUMEUP: u16 = 115;
const KEY_MICMUTE: u16 = 248;
const LED_MUTE: u16 = 0x07;

// uinput ioctls (linux/uinput.h), 'U' = 0x55.
const UI_DEV_CREATE: libc::c_ulong = 0x5501;
const UI_DEV_DESTROY: libc::c_ulong = 0x5502;
const UI_DEV_SETUP: libc::c_ulong = 0x405c_5503; // _IOW('U', 3, struct uinput_setup) (92 bytes)
const UI_SET_EVBIT: libc::c_ulong = 0x4004_5564;
const UI_SET_KEYBIT: libc::c_ulong = 0x4004_5565;
const UI_SET_LEDBIT: libc::c_ulong = 0x4004_5569;

/// A uinput device with keys and, optionally, LED_MUTE. Written with raw ioctls because the
/// `evdev` crate's builder cannot declare LEDs.
struct Remote {
    file: File,
    name: String,
}

impl Remote {
    fn new(name: &str, keys: &[u16], mute_led: bool) -> Remote {
        require("/dev/uinput", "the uinput module (`modprobe uinput`)");
        ensure_evdev();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/uinput")
            .expect("open /dev/uinput");
        let fd = file.as_raw_fd();
        let ioctl = |req: libc::c_ulong, arg: libc::c_ulong| {
            // SAFETY: uinput ioctls with an int argument on our own descriptor.
            let r = unsafe { libc::ioctl(fd, req as _, arg) };
            assert!(
                r >= 0,
                "uinput ioctl {req:#x}: {}",
                std::io::Error::last_os_error()
            );
        };
        ioctl(UI_SET_EVBIT, EV_KEY.into());
        for k in keys {
            ioctl(UI_SET_KEYBIT, (*k).into());
        }
        if mute_led {
            ioctl(UI_SET_EVBIT, EV_LED.into());
            ioctl(UI_SET_LEDBIT, LED_MUTE.into());
        }
        // struct uinput_setup { struct input_id { u16 bustype, vendor, product, version };
        // char name[80]; u32 ff_effects_max; }
        let mut setup = [0u8; 92];
        setup[0..2].copy_from_slice(&0x03u16.to_ne_bytes()); // BUS_USB
        setup[2..4].copy_from_slice(&0x1209u16.to_ne_bytes());
        setup[4..6].copy_from_slice(&0x0001u16.to_ne_bytes());
        setup[8..8 + name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: UI_DEV_SETUP reads a 92-byte struct uinput_setup we own.
        let r = unsafe { libc::ioctl(fd, UI_DEV_SETUP as _, setup.as_ptr()) };
        assert!(r >= 0, "UI_DEV_SETUP: {}", std::io::Error::last_os_error());
        // SAFETY: no argument.
        let r = unsafe { libc::ioctl(fd, UI_DEV_CREATE as _) };
        assert!(r >= 0, "UI_DEV_CREATE: {}", std::io::Error::last_os_error());
        Remote {
            file,
            name: name.to_string(),
        }
    }

    fn emit(&mut self, typ: u16, code: u16, value: i32) {
        // struct input_event on 64-bit: struct timeval (16 bytes), u16 type, u16 code, s32.
        let mut ev = [0u8; 24];
        ev[16..18].copy_from_slice(&typ.to_ne_bytes());
        ev[18..20].copy_from_slice(&code.to_ne_bytes());
        ev[20..24].copy_from_slice(&value.to_ne_bytes());
        self.file.write_all(&ev).expect("write uinput event");
    }

    fn tap(&mut self, key: u16) {
        self.emit(EV_KEY, key, 1);
        self.emit(EV_SYN, 0, 0);
        self.emit(EV_KEY, key, 0);
        self.emit(EV_SYN, 0, 0);
    }

    /// The event node the kernel made for it.
    async fn node(&self) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for e in std::fs::read_dir("/dev/input")
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = e.path();
                if !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("event"))
                {
                    continue;
                }
                if let Ok(d) = evdev::Device::open(&p) {
                    if d.name() == Some(self.name.as_str()) {
                        return p;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no /dev/input node for {}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// LED events the kernel passes back to the uinput device (set by a reader of the node).
    fn leds(&mut self, timeout: Duration) -> Vec<(u16, i32)> {
        // SAFETY: fcntl on our own descriptor.
        unsafe {
            let fl = libc::fcntl(self.file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(self.file.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 24];
        while Instant::now() < deadline {
            match self.file.read(&mut buf) {
                Ok(24) => {
                    let typ = u16::from_ne_bytes([buf[16], buf[17]]);
                    let code = u16::from_ne_bytes([buf[18], buf[19]]);
                    let value = i32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]);
                    if typ == EV_LED {
                        out.push((code, value));
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        out
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // SAFETY: no argument.
        unsafe { libc::ioctl(self.file.as_raw_fd(), UI_DEV_DESTROY as _) };
    }
}

fn config(toml_text: &str) -> visio_room_controls::ValidConfig {
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File = toml::from_str(toml_text).expect("test config parses");
    f.controls.validate().expect("test config is valid")
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uinput_micmute_key_mutes_from_any_device_and_survives_replug() {
    init_logs();
    let mut controls = Controls::start(config(
        "[controls]\nspeakerphone = \"off\"\n[controls.volume]\nmixer = \"off\"\n\
         [[controls.buttons]]\naction = \"mute_toggle\"\nkey = \"KEY_MICMUTE\"\n",
    ));
    let name = "button[0] mute_toggle KEY_MICMUTE";
    let state = wait_status(&mut controls, name, Duration::from_secs(5), |_| true).await;
    eprintln!("before the remote is plugged: {state:?}");
    let remote_name = format!("visio-hw-remote-{}", std::process::id());
    let mut remote = Remote::new(&remote_name, &[KEY_MICMUTE], false);
    let node = remote.node().await;
    wait_status(&mut controls, name, Duration::from_secs(10), |s| {
        s.is_ready()
    })
    .await;
    remote.tap(KEY_MICMUTE);
    let ev = wait_event(
        &mut controls,
        Duration::from_secs(2),
        "the KEY_MICMUTE press",
        |e| matches!(e, ControlEvent::Button { .. }),
    )
    .await;
    assert_eq!(
        ev,
        ControlEvent::Button {
            action: Action::MuteToggle,
            source: format!("input:{}", node.display())
        }
    );
    // Unplugged: the device goes, the button waits.
    drop(remote);
    wait_event(
        &mut controls,
        Duration::from_secs(5),
        "the remote gone",
        |e| {
            matches!(
                e,
                ControlEvent::DeviceGone {
                    kind: DeviceKind::Input,
                    ..
                }
            )
        },
    )
    .await;
    wait_status(&mut controls, name, Duration::from_secs(10), |s| {
        !s.is_ready()
    })
    .await;
    // Plugged back: works again.
    let mut remote = Remote::new(&remote_name, &[KEY_MICMUTE], false);
    let node = remote.node().await;
    wait_status(&mut controls, name, Duration::from_secs(10), |s| {
        s.is_ready()
    })
    .await;
    remote.tap(KEY_MICMUTE);
    let ev = wait_event(
        &mut controls,
        Duration::from_secs(2),
        "the press after replug",
        |e| matches!(e, ControlEvent::Button { .. }),
    )
    .await;
    assert_eq!(
        ev,
        ControlEvent::Button {
            action: Action::MuteToggle,
            source: format!("input:{}", node.display())
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uinput_key_on_a_named_device_only_and_led_mute_follows_the_room() {
    init_logs();
    let a_name = format!("visio-hw-a-{}", std::process::id());
    let b_name = format!("visio-hw-b-{}", std::process::id());
    let mut a = Remote::new(&a_name, &[KEY_MICMUTE], true);
    let mut b = Remote::new(&b_name, &[KEY_MICMUTE], false);
    let a_node = a.node().await;
    let _b_node = b.node().await;
    let mut controls = Controls::start(config(&format!(
        "[controls]\nspeakerphone = \"off\"\n[controls.volume]\nmixer = \"off\"\n\
         [[controls.buttons]]\naction = \"camera_toggle\"\nkey = \"KEY_MICMUTE\"\ndevice = \"{}\"\n",
        a_node.display()
    )));
    let name = format!(
        "button[0] camera_toggle KEY_MICMUTE on {}",
        a_node.display()
    );
    wait_status(&mut controls, &name, Duration::from_secs(10), |s| {
        s.is_ready()
    })
    .await;
    b.tap(KEY_MICMUTE);
    let from_b = count_events(&mut controls, Duration::from_millis(500), |e| {
        matches!(e, ControlEvent::Button { .. })
    })
    .await;
    assert_eq!(from_b, 0, "a key on another device must not count");
    a.tap(KEY_MICMUTE);
    wait_event(
        &mut controls,
        Duration::from_secs(2),
        "the press on the named device",
        |e| {
            matches!(
                e,
                ControlEvent::Button {
                    action: Action::CameraToggle,
                    ..
                }
            )
        },
    )
    .await;
    // LED_MUTE follows the room's mute state.
    controls.set_indicators(Indicators {
        in_call: true,
        muted: true,
        ..Default::default()
    });
    let leds = a.leds(Duration::from_secs(1));
    assert!(leds.contains(&(LED_MUTE, 1)), "LED events: {leds:?}");
    controls.set_indicators(Indicators {
        in_call: true,
        ..Default::default()
    });
    let leds = a.leds(Duration::from_secs(1));
    assert_eq!(leds.last(), Some(&(LED_MUTE, 0)), "LED events: {leds:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uinput_volume_keys_change_the_snd_dummy_mixer() {
    init_logs();
    require(
        "/proc/asound/Dummy",
        "the snd-dummy module (`modprobe snd-dummy`)",
    );
    let remote_name = format!("visio-hw-vol-{}", std::process::id());
    let mut remote = Remote::new(&remote_name, &[KEY_VOLUMEUP, KEY_VOLUMEDOWN], false);
    remote.node().await;
    let mut controls = Controls::start(config(
        "[controls]\nspeakerphone = \"off\"\n\
         [controls.volume]\nmixer = \"hw:Dummy\"\ncontrol = \"Master\"\nstep = 10\n\
         [[controls.buttons]]\naction = \"volume_up\"\nkey = \"KEY_VOLUMEUP\"\n\
         [[controls.buttons]]\naction = \"volume_down\"\nkey = \"KEY_VOLUMEDOWN\"\n",
    ));
    wait_status(
        &mut controls,
        "volume hw:Dummy",
        Duration::from_secs(5),
        |s| s.is_ready(),
    )
    .await;
    assert_eq!(controls.set_volume(50).await.expect("set volume"), 50);
    wait_status(
        &mut controls,
        "button[0] volume_up KEY_VOLUMEUP",
        Duration::from_secs(10),
        |s| s.is_ready(),
    )
    .await;
    remote.tap(KEY_VOLUMEUP);
    wait_event(&mut controls, Duration::from_secs(2), "volume 60", |e| {
        *e == ControlEvent::Volume { percent: 60 }
    })
    .await;
    remote.tap(KEY_VOLUMEDOWN);
    remote.tap(KEY_VOLUMEDOWN);
    wait_event(&mut controls, Duration::from_secs(2), "volume 40", |e| {
        *e == ControlEvent::Volume { percent: 40 }
    })
    .await;
    let mixer = visio_room_controls::mixer::Mixer::open("hw:Dummy", Some("Master")).unwrap();
    assert_eq!(mixer.volume().unwrap(), 40);
}

//! A USB speakerphone made with uhid: the kernel's hid-generic binds it and makes a real
//! hidraw node from our report descriptor (`hid::sample::speakerphone`, a typical one with
//! Hook Switch, Phone Mute and the Off-Hook/Mute/Ring LEDs), in its relative and absolute
//! Phone Mute variants. The test sends input reports (UHID_INPUT2) and reads the LED output
//! reports the room writes (UHID_OUTPUT). Needs the uhid module (/dev/uhid), hid-generic and
//! root. See tests/HW.md.

mod hw_support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hw_support::*;
use visio_room_controls::config::ControlsConfig;
use visio_room_controls::hid::sample;
use visio_room_controls::{Action, ControlEvent, Controls, DeviceKind, Indicators};

// linux/uhid.h
const UHID_DESTROY: u32 = 1;
const UHID_START: u32 = 2;
const UHID_OPEN: u32 = 4;
const UHID_OUTPUT: u32 = 6;
const UHID_CREATE2: u32 = 11;
const UHID_INPUT2: u32 = 12;
/// sizeof(struct uhid_event): u32 type + the largest member, uhid_create2_req
/// (128 + 64 + 64 + 2 + 2 + 4 × 4 + 4096).
const EVENT_SIZE: usize = 4 + 128 + 64 + 64 + 2 + 2 + 16 + 4096;

/// A speakerphone on /dev/uhid; destroyed (unplugged) on drop.
struct UhidPhone {
    file: File,
    outputs: mpsc::Receiver<Vec<u8>>,
    opened: mpsc::Receiver<()>,
}

impl UhidPhone {
    fn plug(name: &str, descriptor: &[u8]) -> UhidPhone {
        require(
            "/dev/uhid",
            "the uhid module (`modprobe uhid`) with hid-generic",
        );
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/uhid")
            .expect("open /dev/uhid");
        let mut ev = vec![0u8; EVENT_SIZE];
        ev[0..4].copy_from_slice(&UHID_CREATE2.to_ne_bytes());
        let req = &mut ev[4..];
        req[..name.len()].copy_from_slice(name.as_bytes()); // name[128]
        let phys = b"visio-hw-test";
        req[128..128 + phys.len()].copy_from_slice(phys); // phys[64]
                                                          // uniq[64] at 192
        req[256..258].copy_from_slice(&(descriptor.len() as u16).to_ne_bytes()); // rd_size
        req[258..260].copy_from_slice(&0x03u16.to_ne_bytes()); // bus: BUS_USB
                                                               // Not a real speakerphone maker's id: for Jabra's (0x0b0e) the kernel leaves the device
                                                               // to hid-jabra, which nothing loads without udev, and hid-generic does not bind.
        req[260..264].copy_from_slice(&0x1209u32.to_ne_bytes()); // vendor (pid.codes)
        req[264..268].copy_from_slice(&0x0001u32.to_ne_bytes()); // product (pid.codes test)
                                                                 // version at 268, country at 272; rd_data at 276
        req[276..276 + descriptor.len()].copy_from_slice(descriptor);
        file.write_all(&ev).expect("UHID_CREATE2");
        let mut reader = file.try_clone().expect("clone uhid fd");
        let (out_tx, outputs) = mpsc::channel();
        let (open_tx, opened) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; EVENT_SIZE];
            while let Ok(n) = reader.read(&mut buf) {
                if n < 4 {
                    break;
                }
                let typ = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                match typ {
                    UHID_OUTPUT => {
                        // struct uhid_output_req { u8 data[4096]; u16 size; u8 rtype; }
                        let size = u16::from_ne_bytes([buf[4 + 4096], buf[4 + 4097]]) as usize;
                        let data = buf[4..4 + size.min(4096)].to_vec();
                        if out_tx.send(data).is_err() {
                            break;
                        }
                    }
                    UHID_OPEN => {
                        let _ = open_tx.send(());
                    }
                    UHID_START => {}
                    _ => {}
                }
            }
        });
        UhidPhone {
            file,
            outputs,
            opened,
        }
    }

    fn input(&mut self, report: &[u8]) {
        let mut ev = vec![0u8; EVENT_SIZE];
        ev[0..4].copy_from_slice(&UHID_INPUT2.to_ne_bytes());
        ev[4..6].copy_from_slice(&(report.len() as u16).to_ne_bytes());
        ev[6..6 + report.len()].copy_from_slice(report);
        self.file.write_all(&ev).expect("UHID_INPUT2");
    }

    /// Output reports until one satisfies `pred` (reports are `[report id, data…]`).
    fn wait_output(&self, timeout: Duration, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.outputs.recv_timeout(left) {
                Ok(r) if pred(&r) => return r,
                Ok(r) => seen.push(r),
                Err(_) => panic!("no LED report {what} within {timeout:?}; reports seen: {seen:?}"),
            }
        }
    }

    fn drain(&self) {
        while self.outputs.try_recv().is_ok() {}
    }
}

impl Drop for UhidPhone {
    fn drop(&mut self) {
        let mut ev = vec![0u8; EVENT_SIZE];
        ev[0..4].copy_from_slice(&UHID_DESTROY.to_ne_bytes());
        let _ = self.file.write_all(&ev);
    }
}

/// LED report byte: Off-Hook bit 0, Mute bit 1 (report ID 2).
fn leds(off_hook: bool, muted: bool) -> Vec<u8> {
    vec![2, u8::from(off_hook) | (u8::from(muted) << 1)]
}

fn config() -> visio_room_controls::ValidConfig {
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File =
        toml::from_str("[controls]\nspeakerphone = \"auto\"\n[controls.volume]\nmixer = \"off\"\n")
            .expect("test config parses");
    f.controls.validate().expect("valid")
}

/// Waits for the kernel to make a hidraw node (hid-generic bound); shows why not otherwise.
async fn hidraw_appears() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nodes: Vec<_> = std::fs::read_dir("/sys/class/hidraw")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if !nodes.is_empty() {
            eprintln!("hidraw nodes: {nodes:?}");
            return;
        }
        if Instant::now() > deadline {
            kernel_diagnostics(&[
                "ls -l /sys/bus/hid/devices/ /sys/bus/hid/drivers/",
                "ls -l /sys/bus/hid/devices/*/driver",
                "ls /sys/class/hidraw /dev/hidraw* 2>&1",
                "grep -i hidraw /proc/devices; grep -i hid /proc/modules",
            ]);
            panic!("the uhid device got no hidraw node (see the kernel log above)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plugged(controls: &mut Controls) -> String {
    hidraw_appears().await;
    match wait_event(controls, Duration::from_secs(10), "the speakerphone", |e| {
        matches!(
            e,
            ControlEvent::DeviceAppeared {
                kind: DeviceKind::Speakerphone,
                ..
            }
        )
    })
    .await
    {
        ControlEvent::DeviceAppeared { path, .. } => path,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uhid_relative_mute_button_toggles_and_leds_follow_the_room() {
    init_logs();
    let mut controls = Controls::start(config());
    let mut phone = UhidPhone::plug(
        "Visio Test Speakerphone (relative)",
        &sample::speakerphone(true, false),
    );
    let path = plugged(&mut controls).await;
    phone
        .opened
        .recv_timeout(Duration::from_secs(5))
        .expect("the room opens the hidraw node");
    // On open the room writes the LEDs as the room is: idle, unmuted.
    phone.wait_output(Duration::from_secs(5), "for idle", |r| {
        r == leds(false, false)
    });
    let source = format!("speakerphone:{path}");
    let mut latencies = Vec::new();
    let mut muted = false;
    for _ in 0..20 {
        let t0 = Instant::now();
        phone.input(&[1, 0b10]);
        phone.input(&[1, 0b00]);
        let ev = wait_event(
            &mut controls,
            Duration::from_secs(2),
            "the mute press",
            |e| matches!(e, ControlEvent::Button { .. }),
        )
        .await;
        assert_eq!(
            ev,
            ControlEvent::Button {
                action: Action::MuteToggle,
                source: source.clone()
            }
        );
        // The room loop would toggle; here the test plays the room.
        muted = !muted;
        controls.set_indicators(Indicators {
            in_call: true,
            muted,
            ..Default::default()
        });
        phone.wait_output(Duration::from_secs(2), "after the press", |r| {
            r == leds(true, muted)
        });
        latencies.push(t0.elapsed());
    }
    let (p50, p95) = percentiles(latencies);
    measure(&format!("uhid mute press -> Mute LED report (room state set by the test): p50 {p50:.2} ms, p95 {p95:.2} ms"));
    // Muted from elsewhere (D-Bus, a remote participant): the LED follows, both ways. (The
    // room's state is a value, not a queue: two changes at once show only the last.)
    assert!(!muted, "20 toggles end unmuted");
    controls.set_indicators(Indicators {
        in_call: true,
        muted: true,
        ..Default::default()
    });
    phone.wait_output(Duration::from_secs(2), "muted from elsewhere", |r| {
        r == leds(true, true)
    });
    controls.set_indicators(Indicators {
        in_call: true,
        muted: false,
        ..Default::default()
    });
    phone.wait_output(Duration::from_secs(2), "unmuted in call", |r| {
        r == leds(true, false)
    });
    // The call ends: Off-Hook goes out.
    controls.set_indicators(Indicators::default());
    phone.wait_output(Duration::from_secs(2), "idle", |r| r == leds(false, false));
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uhid_absolute_mute_and_hook_switch_set_the_state() {
    init_logs();
    let mut controls = Controls::start(config());
    let mut phone = UhidPhone::plug(
        "Visio Test Speakerphone (absolute)",
        &sample::speakerphone(false, false),
    );
    plugged(&mut controls).await;
    phone.wait_output(Duration::from_secs(5), "for idle", |r| {
        r == leds(false, false)
    });
    // Hook switch lifted: join.
    phone.input(&[1, 0b01]);
    wait_event(&mut controls, Duration::from_secs(2), "join", |e| {
        matches!(
            e,
            ControlEvent::Button {
                action: Action::Join,
                ..
            }
        )
    })
    .await;
    controls.set_indicators(Indicators {
        in_call: true,
        ..Default::default()
    });
    phone.wait_output(Duration::from_secs(2), "off hook", |r| {
        r == leds(true, false)
    });
    // Mute on the device (absolute: the report is the state).
    phone.input(&[1, 0b11]);
    wait_event(&mut controls, Duration::from_secs(2), "mute", |e| {
        matches!(
            e,
            ControlEvent::Button {
                action: Action::Mute,
                ..
            }
        )
    })
    .await;
    controls.set_indicators(Indicators {
        in_call: true,
        muted: true,
        ..Default::default()
    });
    phone.wait_output(Duration::from_secs(2), "muted", |r| r == leds(true, true));
    // The device repeats its state (an echo): nothing happens.
    phone.input(&[1, 0b11]);
    let echoes = count_events(&mut controls, Duration::from_millis(500), |e| {
        matches!(e, ControlEvent::Button { .. })
    })
    .await;
    assert_eq!(echoes, 0);
    phone.input(&[1, 0b01]);
    wait_event(&mut controls, Duration::from_secs(2), "unmute", |e| {
        matches!(
            e,
            ControlEvent::Button {
                action: Action::Unmute,
                ..
            }
        )
    })
    .await;
    // Hook switch down: leave.
    phone.input(&[1, 0b00]);
    wait_event(&mut controls, Duration::from_secs(2), "leave", |e| {
        matches!(
            e,
            ControlEvent::Button {
                action: Action::Leave,
                ..
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn uhid_speakerphone_unplugged_and_plugged_back_gets_the_leds_again() {
    init_logs();
    let mut controls = Controls::start(config());
    controls.set_indicators(Indicators {
        in_call: true,
        muted: true,
        ..Default::default()
    });
    let phone = UhidPhone::plug(
        "Visio Test Speakerphone (replug)",
        &sample::speakerphone(true, false),
    );
    plugged(&mut controls).await;
    phone.wait_output(Duration::from_secs(5), "as the room is", |r| {
        r == leds(true, true)
    });
    drop(phone);
    wait_event(&mut controls, Duration::from_secs(5), "unplugged", |e| {
        matches!(
            e,
            ControlEvent::DeviceGone {
                kind: DeviceKind::Speakerphone,
                ..
            }
        )
    })
    .await;
    let phone = UhidPhone::plug(
        "Visio Test Speakerphone (replug)",
        &sample::speakerphone(true, false),
    );
    plugged(&mut controls).await;
    phone.wait_output(Duration::from_secs(5), "again after replug", |r| {
        r == leds(true, true)
    });
    phone.drain();
}

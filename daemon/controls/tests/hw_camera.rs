//! Cameras on vivid, the kernel's Virtual Video Test Driver: enumeration, formats and frame
//! sizes, the format choice, controls round-trip, and its "Disconnect" control as an unplug
//! (vivid reconnects when the last handle closes: the plug). Needs vivid loaded.
//! vivid has no pan/tilt/zoom. See tests/HW.md.

mod hw_support;

use std::time::Duration;

use hw_support::*;
use visio_room_controls::camera::{self, Camera, ControlKind};
use visio_room_controls::config::ControlsConfig;
use visio_room_controls::{ControlEvent, Controls, DeviceKind};

fn vivid() -> camera::CameraInfo {
    camera::list()
        .into_iter()
        .find(|c| c.driver == "vivid")
        .unwrap_or_else(|| panic!("no vivid capture node; cameras: {:?}", camera::list()))
}

#[test]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
fn vivid_formats_sizes_and_the_choice_for_720p() {
    require("/sys/module/vivid", "the vivid module (`modprobe vivid`)");
    let cam = vivid();
    eprintln!(
        "{} {} {}: {} formats",
        cam.path.display(),
        cam.name,
        cam.bus,
        cam.formats.len()
    );
    let yuyv = cam
        .formats
        .iter()
        .find(|f| f.fourcc == "YUYV")
        .expect("vivid offers YUYV");
    assert!(!yuyv.sizes.is_empty());
    assert!(
        yuyv.sizes.iter().any(|s| s.max_fps.is_some()),
        "frame rates known: {yuyv:?}"
    );
    let c = camera::choose_format(&cam.formats, 1280, 720, 30.0).expect("a choice");
    eprintln!("choice for 1280x720@30: {c:?}");
    assert!(c.width >= 1280 && c.height >= 720, "{c:?}");
}

#[test]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
fn vivid_controls_round_trip() {
    require("/sys/module/vivid", "the vivid module (`modprobe vivid`)");
    let cam = Camera::open(&vivid().path).expect("open vivid");
    let controls = cam.controls().expect("controls");
    let keys: Vec<&str> = controls.iter().map(|c| c.key.as_str()).collect();
    eprintln!("vivid controls: {keys:?}");
    let b = controls
        .iter()
        .find(|c| c.key == "brightness")
        .expect("brightness");
    assert_eq!(b.kind, ControlKind::Integer);
    let want = if b.value == Some(b.max) { b.min } else { b.max };
    cam.set("brightness", want).expect("set brightness");
    assert_eq!(cam.get("brightness").unwrap(), want);
    cam.set("brightness", b.default).unwrap();
    let e = cam.set("brightness", b.max + 1).unwrap_err();
    assert!(e.message.contains("out of range"), "{e}");
    // vivid has no zoom: the error lists what there is.
    let e = cam.set("zoom_absolute", 1).unwrap_err();
    assert!(e.message.contains("brightness"), "{e}");
    assert!(
        controls
            .iter()
            .any(|c| c.key == "disconnect" && c.kind == ControlKind::Button),
        "vivid's Disconnect button control"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn vivid_disconnect_is_seen_as_unplugged_and_its_reconnect_as_plugged_back() {
    init_logs();
    require("/sys/module/vivid", "the vivid module (`modprobe vivid`)");
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File =
        toml::from_str("[controls]\nspeakerphone = \"off\"\n[controls.volume]\nmixer = \"off\"\n")
            .unwrap();
    let mut controls = Controls::start(f.controls.validate().unwrap());
    let cam = vivid();
    let path = cam.path.display().to_string();
    wait_event(&mut controls, Duration::from_secs(5), "vivid listed", |e| {
        matches!(e, ControlEvent::DeviceAppeared { kind: DeviceKind::Camera, path: p, .. } if *p == path)
    })
    .await;
    // vivid's Disconnect unregisters the device while our handle stays open, like a USB camera
    // pulled out mid-call: nobody can open the node. When the last handle closes, vivid
    // reconnects ("vivid-000: reconnect"), like the camera plugged back in.
    let held = Camera::open(&cam.path).unwrap();
    held.set("disconnect", 1).expect("press vivid's Disconnect");
    let after = camera::probe(&cam.path);
    if after.is_ok() {
        kernel_diagnostics(&["ls -l /dev/video*"]);
    }
    assert!(
        after.is_err(),
        "vivid still opens after Disconnect (see the kernel log above)"
    );
    wait_event(&mut controls, Duration::from_secs(15), "vivid gone", |e| {
        matches!(e, ControlEvent::DeviceGone { kind: DeviceKind::Camera, path: p } if *p == path)
    })
    .await;
    assert!(
        !controls.devices().present.iter().any(|d| d.path == path),
        "a gone camera is not listed"
    );
    drop(held);
    wait_event(&mut controls, Duration::from_secs(15), "vivid back", |e| {
        matches!(e, ControlEvent::DeviceAppeared { kind: DeviceKind::Camera, path: p, .. } if *p == path)
    })
    .await;
    assert!(controls
        .devices()
        .present
        .iter()
        .any(|d| d.kind == DeviceKind::Camera && d.path == path && d.name == "vivid"));
    // And usable again.
    let back = Camera::open(&cam.path).expect("vivid opens again");
    assert!(back
        .controls()
        .unwrap()
        .iter()
        .any(|c| c.key == "brightness"));
}

//! The room's volume on snd-dummy's mixer ("Master Volume", -50..=100): set and read back,
//! a change made elsewhere seen as an event, a missing card reported. Needs snd-dummy
//! (/proc/asound/Dummy). See tests/HW.md.

mod hw_support;

use std::time::Duration;

use hw_support::*;
use visio_room_controls::config::ControlsConfig;
use visio_room_controls::mixer::Mixer;
use visio_room_controls::{ControlEvent, ControlState, Controls};

fn config(mixer: &str) -> visio_room_controls::ValidConfig {
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File = toml::from_str(&format!(
        "[controls]\nspeakerphone = \"off\"\n[controls.volume]\nmixer = \"{mixer}\"\n"
    ))
    .expect("test config parses");
    f.controls.validate().expect("valid")
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn snd_dummy_set_volume_reads_back_and_a_change_elsewhere_shows() {
    init_logs();
    require(
        "/proc/asound/Dummy",
        "the snd-dummy module (`modprobe snd-dummy`)",
    );
    let mut controls = Controls::start(config("hw:Dummy"));
    wait_status(
        &mut controls,
        "volume hw:Dummy",
        Duration::from_secs(5),
        |s| s.is_ready(),
    )
    .await;
    for p in [0u8, 37, 100, 50] {
        assert_eq!(controls.set_volume(p).await.expect("set volume"), p);
        let other = Mixer::open("hw:Dummy", None).expect("the test opens the mixer too");
        assert_eq!(other.name(), "hw:Dummy Master");
        assert_eq!(other.volume().unwrap(), p, "read back by another client");
    }
    // Another program changes the volume.
    let other = Mixer::open("hw:Dummy", Some("Master")).unwrap();
    other.set_volume(70).unwrap();
    wait_event(
        &mut controls,
        Duration::from_secs(2),
        "volume 70 from elsewhere",
        |e| *e == ControlEvent::Volume { percent: 70 },
    )
    .await;
    assert_eq!(controls.volume(), Some(70));
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(visio_hw_tests),
    ignore = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md"
)]
async fn snd_dummy_wrong_control_name_lists_the_cards_controls() {
    init_logs();
    require(
        "/proc/asound/Dummy",
        "the snd-dummy module (`modprobe snd-dummy`)",
    );
    let e = Mixer::open("hw:Dummy", Some("Nope")).unwrap_err();
    assert!(e.message.contains("Master"), "{e}");
    let mut controls = Controls::start(config("hw:NoSuchCard"));
    let s = wait_status(
        &mut controls,
        "volume hw:NoSuchCard",
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert!(matches!(s, ControlState::Unavailable { .. }), "{s:?}");
    assert!(controls.set_volume(10).await.is_err());
}

//! The controls on a machine with none of the configured devices (this one: no GPIO chip, no
//! sound card, no camera): nothing fails, every control says why it is not usable, and the
//! volume says it cannot be set. Runs everywhere, with no kernel module.

use std::time::{Duration, Instant};

use visio_room_controls::config::ControlsConfig;
use visio_room_controls::{ControlState, Controls, VolumeError};

#[tokio::test(flavor = "multi_thread")]
async fn every_missing_control_is_named_with_its_reason_and_nothing_fails() {
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File = toml::from_str(
        r#"
        [controls]
        speakerphone = "/dev/hidraw-visio-test-missing"
        [controls.volume]
        mixer = "hw:VisioNoSuchCard"
        [[controls.buttons]]
        action = "join_leave"
        gpio = "gpiochip97:17"
        [[controls.buttons]]
        action = "mute_toggle"
        key = "KEY_MICMUTE"
        device = "/dev/input/by-id/visio-test-missing-event-kbd"
        [[controls.leds]]
        shows = "in_call"
        gpio = "VISIO_TEST_NO_SUCH_LINE"
        "#,
    )
    .unwrap();
    let mut controls = Controls::start(f.controls.validate().unwrap());
    let wanted = [
        (
            "button[0] join_leave gpiochip97:17",
            "GPIO chip /dev/gpiochip97 is not present",
        ),
        (
            "button[1] mute_toggle KEY_MICMUTE on /dev/input/by-id/visio-test-missing-event-kbd",
            "is not present",
        ),
        (
            "led[0] in_call VISIO_TEST_NO_SUCH_LINE",
            "no GPIO line is named",
        ),
        ("speakerphone /dev/hidraw-visio-test-missing", "not present"),
        ("volume hw:VisioNoSuchCard", "cannot open"),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = controls.statuses();
        let all_there = wanted.iter().all(|(name, reason)| {
            statuses.iter().any(|s| {
                s.name == *name
                    && matches!(&s.state, ControlState::Unavailable { reason: r } if r.contains(reason))
            })
        });
        if all_there {
            break;
        }
        assert!(Instant::now() < deadline, "statuses: {statuses:#?}");
        let _ = tokio::time::timeout(Duration::from_millis(100), controls.next_event()).await;
    }
    for s in controls.statuses() {
        eprintln!("{s}");
    }
    let devices = controls.devices();
    assert_eq!(devices.controls.len(), controls.statuses().len());
    assert!(
        devices.controls.iter().all(|s| !s.state.is_ready()),
        "{devices:#?}"
    );
    let e = controls.set_volume(50).await.unwrap_err();
    assert!(matches!(e, VolumeError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("hw:VisioNoSuchCard"), "{e}");
    assert_eq!(controls.volume(), None);
    // The indicators can be set with nothing to show them.
    controls.set_indicators(visio_room_controls::Indicators {
        in_call: true,
        ..Default::default()
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn no_mixer_configured_says_so() {
    #[derive(serde::Deserialize)]
    struct File {
        controls: ControlsConfig,
    }
    let f: File =
        toml::from_str("[controls]\nspeakerphone = \"off\"\n[controls.volume]\nmixer = \"off\"\n")
            .unwrap();
    let controls = Controls::start(f.controls.validate().unwrap());
    assert_eq!(
        controls.set_volume(50).await,
        Err(VolumeError::NotConfigured)
    );
}

//! End to end: the real `visio-roomd` on a real private `dbus-daemon`, driven by the real
//! `visio-roomctl` and by a zbus client.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use visio_room_test_support::{json, Bus, Daemon, Result};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn status_json_answers_on_built_in_defaults() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let status = json(&bus.ctl(&["status", "--json"])?)?;
    assert_eq!(status["state"], "idle");
    assert!(status["meeting"].is_null());
    assert_eq!(status["participants"], serde_json::json!([]));
    assert_eq!(status["mic_muted"], false);
    assert_eq!(status["camera_enabled"], true);
    assert_eq!(status["media"]["video_source"], "auto");
    assert_eq!(status["media"]["resolution"], "1280x720");
    assert_eq!(status["health"]["config_file"], "");
    assert_eq!(status["health"]["status"], "ok");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    Ok(())
}

#[test]
fn status_text_is_readable() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let out = bus.ctl(&["status"])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("State:        idle"), "{text}");
    assert!(text.contains("Meeting:      none"), "{text}");
    Ok(())
}

#[test]
fn join_refuses_a_host_not_on_the_allow_list() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let out = bus.ctl(&["join", "https://meet.example.com/abc-defg-hij"])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("org.visioroom.Error.HostNotAllowed"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn join_refuses_a_malformed_url() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    for bad in [
        "not a url",
        "http://visio.numerique.gouv.fr/abc-defg-hij",
        "https://visio.numerique.gouv.fr/",
    ] {
        let out = bus.ctl(&["join", bad])?;
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            stderr(&out).contains("org.visioroom.Error.InvalidUrl"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    Ok(())
}

/// `SetVolume` is in the API but nothing sets the physical volume yet: it must say so
/// (`NotSupported`) rather than accept a value that changes nothing.
#[test]
fn set_volume_answers_not_supported_until_it_is_implemented() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let before = json(&bus.ctl(&["status", "--json"])?)?["volume"].clone();
    for percent in ["30", "150"] {
        let out = bus.ctl(&["volume", percent])?;
        assert!(!out.status.success(), "volume {percent} was accepted");
        assert!(
            stderr(&out).contains("org.visioroom.Error.NotSupported"),
            "volume {percent}: {}",
            stderr(&out)
        );
    }
    assert_eq!(json(&bus.ctl(&["status", "--json"])?)?["volume"], before);
    Ok(())
}

/// The same, seen by a D-Bus client: the error's name is the contract.
#[tokio::test]
async fn set_volume_error_name_is_not_supported() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let connection = bus.connect().await?;
    let room = visio_room_bus::RoomProxy::new(&connection).await.unwrap();
    match room.set_volume(30).await {
        Err(zbus::Error::MethodError(name, _, _)) => {
            assert_eq!(name.as_str(), "org.visioroom.Error.NotSupported")
        }
        other => panic!("SetVolume answered {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn mute_toggle_emits_properties_changed() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let connection = bus.connect().await?;
    let room = visio_room_bus::RoomProxy::new(&connection).await.unwrap();
    let mut changes = room.receive_mic_muted_changed().await;
    assert!(bus.ctl(&["mute", "toggle"])?.status.success());
    let change = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let c = changes.next().await.expect("stream open");
            let v = c.get().await.unwrap();
            if v {
                return v;
            }
        }
    })
    .await
    .expect("PropertiesChanged for MicMuted within 5 s");
    assert!(change);
    assert_eq!(json(&bus.ctl(&["status", "--json"])?)?["mic_muted"], true);
    assert!(bus.ctl(&["mute", "off"])?.status.success());
    assert_eq!(json(&bus.ctl(&["status", "--json"])?)?["mic_muted"], false);
    Ok(())
}

#[test]
fn watch_prints_the_snapshot_then_changes_as_they_happen() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let mut watch = bus
        .roomctl()?
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["snapshot"]["camera_enabled"], true);
    let camera_off = bus.ctl(&["camera", "off"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(5));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(camera_off?.status.success());
    let line = line.expect("a change printed within 5 s");
    let change: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(change["property"], "CameraEnabled");
    assert_eq!(change["value"], false);
    Ok(())
}

#[test]
fn roomctl_says_when_the_daemon_is_not_running() -> Result<()> {
    let bus = Bus::start()?;
    let out = bus.ctl(&["status"])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("visio-roomd is not running"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn daemon_exits_cleanly_on_sigterm() -> Result<()> {
    let bus = Bus::start()?;
    let daemon = Daemon::start(&bus, &[])?;
    assert!(daemon.terminate()?.success());
    Ok(())
}

/// Members as `kind name(signature)` from the introspection XML of the running daemon.
async fn introspected_members(bus: &Bus) -> Result<BTreeSet<String>> {
    let connection = bus.connect().await?;
    let proxy = zbus::fdo::IntrospectableProxy::builder(&connection)
        .destination(visio_room_bus::BUS_NAME)
        .unwrap()
        .path(visio_room_bus::OBJECT_PATH)
        .unwrap()
        .build()
        .await
        .unwrap();
    let xml = proxy.introspect().await.unwrap();
    let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
    let iface = node
        .interfaces()
        .iter()
        .find(|i| i.name() == visio_room_bus::INTERFACE)
        .expect("the Room1 interface is served");
    let args = |args: &[zbus_xml::Arg]| {
        args.iter()
            .filter(|a| a.direction() != Some(zbus_xml::ArgDirection::Out))
            .map(|a| format!("{} {}", a.ty().inner(), a.name().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut members = BTreeSet::new();
    for m in iface.methods() {
        members.insert(format!("method {}({})", m.name(), args(m.args())));
    }
    for s in iface.signals() {
        members.insert(format!("signal {}({})", s.name(), args(s.args())));
    }
    for p in iface.properties() {
        let access = match p.access() {
            zbus_xml::PropertyAccess::Read => "read",
            zbus_xml::PropertyAccess::Write => "write",
            zbus_xml::PropertyAccess::ReadWrite => "readwrite",
        };
        members.insert(format!(
            "property {}: {} ({access})",
            p.name(),
            p.ty().inner()
        ));
    }
    Ok(members)
}

/// Members from the `#### ` headings of docs/dbus-api.md.
fn documented_members() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/dbus-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/dbus-api.md exists");
    doc.lines()
        .filter_map(|l| l.strip_prefix("#### "))
        .map(|l| {
            l.trim()
                .trim_end_matches("[experimental]")
                .trim()
                .to_owned()
        })
        .collect()
}

/// Every method section of docs/dbus-api.md says which errors it can return (BlueZ's
/// "Possible errors" line), naming only errors of the documented error table.
#[test]
fn every_documented_method_lists_its_possible_errors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/dbus-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/dbus-api.md exists");
    let known: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `org.visioroom.Error."))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(known.contains("NotSupported"), "{known:?}");
    let mut methods = 0;
    for section in doc.split("\n#### ").skip(1) {
        if !section.starts_with("method ") {
            continue;
        }
        methods += 1;
        let body = section.split("\n#").next().unwrap();
        let line = body
            .split("Possible errors:")
            .nth(1)
            .unwrap_or_else(|| panic!("no 'Possible errors:' in\n{body}"));
        let names: Vec<&str> = line
            .split('`')
            .filter_map(|w| w.strip_prefix("org.visioroom.Error."))
            .collect();
        assert!(!names.is_empty(), "no error named in\n{body}");
        for name in names {
            assert!(known.contains(name), "{name} is not in the error table");
        }
    }
    assert!(methods >= 5, "{methods} method sections");
}

#[tokio::test]
async fn introspection_matches_the_documented_api() -> Result<()> {
    let bus = Bus::start()?;
    let _daemon = Daemon::start(&bus, &[])?;
    let served = introspected_members(&bus).await?;
    let documented = documented_members();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "docs/dbus-api.md and the daemon disagree.\nserved but not documented: {undocumented:#?}\ndocumented but not served: {missing:#?}"
    );
    assert!(served.len() >= 17, "{served:#?}");
    Ok(())
}

//! The D-Bus policy, enforced by a real dbus-daemon.

use std::fs;
use std::process::Command;

use crate::bus::{
    assert_allowed, assert_denied, client, policy_users, shared_scratch, Background, Identity,
    SystemLikeBus,
};
use crate::{repo_file, require_python_dbus, require_root, run, tool, BUS_NAME, SYSTEM_PYTHON};

#[test]
fn dbus_policy_is_well_formed_xml_of_the_busconfig_doctype() {
    let xmllint = tool("xmllint", "libxml2-utils");
    let policy = repo_file("systemd/org.visioroom.Room1.conf");
    let mut cmd = Command::new(xmllint);
    cmd.args(["--noout", "--nonet"]).arg(&policy);
    let checked = run(cmd, "xmllint");
    assert!(
        checked.status.success() && checked.stderr.trim().is_empty(),
        "org.visioroom.Room1.conf is not well-formed XML:\n{}",
        checked.stderr
    );
    // dbus-daemon ignores files whose document type is not busconfig.
    let text = fs::read_to_string(&policy).expect("read the policy");
    assert!(text.contains(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\""
    ));
    // dbus-daemon itself, the authority on what a policy may say, parses it in the tests below
    // and refuses to start on an unknown element or attribute.
}

#[test]
fn dbus_policy_lets_everyone_watch_the_room_and_only_operators_control_it() {
    require_root("it runs clients as other users");
    require_python_dbus();
    let dir = shared_scratch();
    let (db, daemon, operator, nobody) = policy_users(dir.path());
    let bus = SystemLikeBus::start(dir.path(), &db);
    let root = Identity::root();

    // Only visio-room may own the name: not nobody, not root (checked while free).
    assert_denied(
        &client(dir.path(), &bus, &nobody, &["own"]),
        "nobody owning the name",
    );
    assert_denied(
        &client(dir.path(), &bus, &root, &["own"]),
        "root owning the name",
    );
    let mut service_cmd = daemon.command(SYSTEM_PYTHON, dir.path());
    service_cmd
        .arg(dir.path().join("service.py"))
        .arg(&bus.address);
    let service = Background::spawn(
        service_cmd,
        "the stand-in service as visio-room",
        dir.path().join("service.stderr"),
    );
    let ready = service.next_line();
    assert_eq!(ready, "READY", "visio-room could not own {BUS_NAME}");

    // Everyone reads and introspects.
    let all = client(dir.path(), &bus, &nobody, &["get-all"]);
    assert_eq!(all, "OK MicMuted,State", "nobody's GetAll");
    assert_eq!(
        client(dir.path(), &bus, &nobody, &["get", "State"]),
        "OK State=idle"
    );
    assert_allowed(
        &client(dir.path(), &bus, &nobody, &["introspect"]),
        "nobody introspecting",
    );

    // Nobody may not command the room, set properties, or sneak a call past the policy by
    // leaving the interface out.
    assert_denied(
        &client(
            dir.path(),
            &bus,
            &nobody,
            &["call", "SetMicMuted", "b:true"],
        ),
        "nobody calling SetMicMuted",
    );
    assert_denied(
        &client(dir.path(), &bus, &nobody, &["set", "MicMuted", "b:true"]),
        "nobody setting MicMuted",
    );
    assert_denied(
        &client(
            dir.path(),
            &bus,
            &nobody,
            &["call-without-interface", "SetMicMuted", "b:true"],
        ),
        "nobody calling SetMicMuted without an interface",
    );
    assert_eq!(
        client(dir.path(), &bus, &nobody, &["get", "MicMuted"]),
        "OK MicMuted=0",
        "the refused calls changed nothing"
    );

    // Nobody watches; root mutes; nobody sees the change.
    let mut watch_cmd = nobody.command(SYSTEM_PYTHON, dir.path());
    watch_cmd
        .arg(dir.path().join("client.py"))
        .arg(&bus.address)
        .arg("watch");
    let watcher = Background::spawn(
        watch_cmd,
        "a PropertiesChanged watcher as nobody",
        dir.path().join("watch.stderr"),
    );
    assert_eq!(watcher.next_line(), "SUBSCRIBED");
    // Even root names the interface: an interface-less call matches no allow rule.
    assert_denied(
        &client(
            dir.path(),
            &bus,
            &root,
            &["call-without-interface", "SetMicMuted", "b:true"],
        ),
        "root calling SetMicMuted without an interface",
    );
    assert_allowed(
        &client(dir.path(), &bus, &root, &["call", "SetMicMuted", "b:true"]),
        "root calling SetMicMuted",
    );
    assert_eq!(
        watcher.next_line(),
        "OK MicMuted=True",
        "nobody receives the room's PropertiesChanged"
    );

    // An operator commands the room; Set reaches the service (which refuses it on its own).
    assert_allowed(
        &client(
            dir.path(),
            &bus,
            &operator,
            &["call", "SetMicMuted", "b:false"],
        ),
        "an operator calling SetMicMuted",
    );
    let set = client(dir.path(), &bus, &operator, &["set", "MicMuted", "b:true"]);
    assert!(
        set.starts_with("ERROR org.freedesktop.DBus.Error.PropertyReadOnly"),
        "an operator's Set must reach the service, got: {set}"
    );
    assert_eq!(
        client(dir.path(), &bus, &nobody, &["get", "MicMuted"]),
        "OK MicMuted=0"
    );
    drop(service);
}

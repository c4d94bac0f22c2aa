//! The unit under a real systemd, in a `systemd-nspawn` container.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::unit::overall_exposure;
use crate::users::UserDb;
use crate::{repo_file, require_root, run, run_within, tool, unit_file, DEPS_HINT, MAX_EXPOSURE};

/// How long the container may take to boot, run the probe and power off.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs inside the container once visio-room.service has started; writes `key=value` lines
/// (and, last, the daemon's journal) to /out/report, then the container powers off.
const PROBE: &str = r#"#!/bin/sh
exec > /out/report 2>&1
unit=visio-room.service
echo "active=$(systemctl is-active $unit)"
pid=$(systemctl show -p MainPID --value $unit)
echo "mainpid=$pid"
sed -n 's/^\(Uid\|Groups\|CapEff\|CapBnd\|NoNewPrivs\|Seccomp\):[[:space:]]*/\1=/p' /proc/$pid/status
echo "uid_map=$(tr -s ' ' < /proc/$pid/uid_map | tr '\n' ';')"
echo "root_mount=$(awk '$5 == "/" { print $6 }' /proc/$pid/mountinfo)"
room="org.visioroom.Room1 /org/visioroom/Room1 org.visioroom.Room1"
as_nobody="setpriv --reuid=nobody --regid=nogroup --clear-groups"
as_operator="setpriv --reuid=room-operator --regid=room-operator --init-groups"
echo "nobody_get=$($as_nobody busctl get-property $room State 2>&1)"
echo "nobody_call=$($as_nobody busctl call $room SetMicMuted b true 2>&1)"
echo "operator_call=$($as_operator busctl call $room SetMicMuted b true 2>&1 && echo ok)"
# WatchdogSec=3s in the test drop-in: more than a period without a restart proves the pings
# arrive (3 s rather than less so that a loaded CI machine cannot starve the pings).
sleep 4
echo "after_watchdog=$(systemctl show -p MainPID,NRestarts,ActiveState $unit | tr '\n' ' ')"
echo "security=$(systemd-analyze security $unit --no-pager | tail -n 1)"
systemctl stop $unit
echo "stopped=$(systemctl show -p Result,ExecMainStatus,ActiveState $unit | tr '\n' ' ')"
# A GStreamer pipeline whose videoconvert runs ORC-compiled code, under the same sandbox.
media=visio-room-media-check.service
systemctl start $media
echo "media_check=$(systemctl show -p Result --value $media)"
echo "orc_compiled=$(journalctl -u $media -b --no-pager | grep -c 'finished compiling (success)')"
echo "orc_failed=$(journalctl -u $media -b --no-pager | grep -ci 'failed to create write and exec')"
echo "--- journal"
journalctl -u $unit -b --no-pager -o short-monotonic | tail -n 40
echo "--- media check"
journalctl -u $media -b --no-pager -o short-monotonic | grep -v 'ORC: INFO' | tail -n 20
"#;

/// The unit's sandbox around a one-shot GStreamer pipeline instead of the daemon: everything
/// but what makes it a long-running notify service (type, bus name, watchdog, restarts, start
/// limit) is kept line for line.
fn media_check_unit(unit: &str) -> String {
    let dropped = [
        "Type=",
        "BusName=",
        "WatchdogSec=",
        "Restart=",
        "RestartSec=",
        "RestartPreventExitStatus=",
        "ExecStart=",
        "StartLimit",
    ];
    let mut out = String::new();
    for line in unit.lines() {
        if dropped.iter().any(|d| line.starts_with(d)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line == "[Service]" {
            out.push_str(
                "Type=oneshot\n\
                 ExecStart=/usr/bin/gst-launch-1.0 -q videotestsrc num-buffers=30 ! \
                 video/x-raw,format=I420,width=320,height=240 ! videoconvert ! \
                 video/x-raw,format=BGRx ! fakesink\n\
                 Environment=ORC_DEBUG=3 GST_PLUGIN_SYSTEM_PATH=/opt/visio-room/gst-plugins\n",
            );
        }
    }
    out
}

/// The GStreamer plugins the media check needs, from the host (their directory differs by
/// architecture), so the check scans three plugins rather than all of them.
fn media_check_plugins() -> Vec<PathBuf> {
    let wanted = [
        "libgstcoreelements.so",
        "libgstvideotestsrc.so",
        "libgstvideoconvertscale.so",
    ];
    let dirs: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .expect("read /usr/lib")
        .flatten()
        .map(|e| e.path().join("gstreamer-1.0"))
        .chain([PathBuf::from("/usr/lib/gstreamer-1.0")])
        .filter(|d| d.is_dir())
        .collect();
    wanted
        .iter()
        .map(|name| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| {
                    panic!(
                        "GStreamer plugin {name} not found (Debian packages libgstreamer1.0-0, \
                         gstreamer1.0-plugins-base): {DEPS_HINT}"
                    )
                })
        })
        .collect()
}

/// The first value of `key=` in the probe's report.
fn report_value<'r>(report: &'r str, key: &str) -> &'r str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("the probe reported no {key}=; report:\n{report}"))
}

/// Boots a systemd container (systemd-nspawn) whose /usr is the host's, read-only, and whose
/// /etc is a copy of the host's with our files installed as a package would (the unit unchanged,
/// plus a test drop-in that only points ExecStart= at the built daemon and shortens
/// WatchdogSec=). A probe checks the running service — identity, no capabilities, seccomp,
/// user namespace, read-only root, D-Bus access, watchdog, online security rating, clean
/// stop — and runs a GStreamer pipeline (ORC-compiled videoconvert) under the same sandbox,
/// then powers off.
#[test]
fn visio_room_service_runs_sandboxed_under_systemd_in_a_container() {
    require_root("it boots a container");
    let nspawn = tool("systemd-nspawn", "systemd-container");
    let unshare = tool("unshare", "util-linux");
    assert!(
        Path::new("/lib/systemd/system/dbus.service").exists(),
        "the container needs dbus.service (Debian package dbus): {DEPS_HINT}"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let os = dir.path().join("os");
    let out = dir.path().join("out");
    for d in [
        "usr",
        "var/lib",
        "var/log",
        "var/cache",
        "var/tmp",
        "tmp",
        "root",
        "run",
        "proc",
        "sys",
        "dev",
        "out",
        "opt/visio-room",
    ] {
        fs::create_dir_all(os.join(d)).expect("create the container tree");
    }
    fs::create_dir_all(&out).expect("create out");
    for link in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), os.join(link)).expect("symlink");
    }
    let mut copy = Command::new("cp");
    copy.args(["-a", "/etc"]).arg(os.join("etc"));
    assert!(run(copy, "cp -a /etc").status.success(), "cannot copy /etc");
    // A fresh machine ID, as on a new device (and nspawn refuses the host's).
    let _ = fs::remove_file(os.join("etc/machine-id"));

    let install = |from: &str, to: &str| {
        let target = os.join(to);
        fs::create_dir_all(target.parent().expect("parent")).expect("create directory");
        fs::copy(repo_file(from), &target).unwrap_or_else(|e| panic!("install {from}: {e}"));
    };
    install(
        "systemd/visio-room.sysusers",
        "etc/sysusers.d/visio-room.conf",
    );
    install(
        "systemd/visio-room.tmpfiles",
        "etc/tmpfiles.d/visio-room.conf",
    );
    install(
        "systemd/org.visioroom.Room1.conf",
        "etc/dbus-1/system.d/org.visioroom.Room1.conf",
    );
    install(
        "systemd/visio-room.service",
        "etc/systemd/system/visio-room.service",
    );
    let write = |to: &str, text: &str, mode: u32| {
        let target = os.join(to);
        fs::create_dir_all(target.parent().expect("parent")).expect("create directory");
        fs::write(&target, text).unwrap_or_else(|e| panic!("write {to}: {e}"));
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write(
        "etc/sysusers.d/operator.conf",
        "u room-operator - \"test operator\"\nm room-operator visio-room-admin\n",
        0o644,
    );
    write(
        "etc/systemd/system/visio-room.service.d/test.conf",
        "[Service]\nExecStart=\nExecStart=/opt/visio-room/visio-roomd\nWatchdogSec=3s\n",
        0o644,
    );
    write(
        "etc/systemd/system/probe.service",
        "[Unit]\nAfter=visio-room.service multi-user.target\n[Service]\nType=oneshot\n\
         ExecStart=/opt/visio-room/probe.sh\nExecStartPost=/usr/bin/systemctl poweroff --no-block\n",
        0o644,
    );
    write("opt/visio-room/probe.sh", PROBE, 0o755);
    let unit_text = fs::read_to_string(unit_file()).expect("read the unit");
    write(
        "etc/systemd/system/visio-room-media-check.service",
        &media_check_unit(&unit_text),
        0o644,
    );
    tool("gst-launch-1.0", "gstreamer1.0-tools");
    let plugins = os.join("opt/visio-room/gst-plugins");
    fs::create_dir_all(&plugins).expect("create the plugin directory");
    for plugin in media_check_plugins() {
        std::os::unix::fs::symlink(&plugin, plugins.join(plugin.file_name().expect("name")))
            .expect("link plugin");
    }
    fs::copy(
        env!("CARGO_BIN_EXE_visio-roomd"),
        os.join("opt/visio-room/visio-roomd"),
    )
    .expect("copy visio-roomd");
    let wants = os.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).expect("create multi-user.target.wants");
    for unit in ["visio-room.service", "probe.service"] {
        let _ = fs::remove_file(wants.join(unit));
        std::os::unix::fs::symlink(format!("/etc/systemd/system/{unit}"), wants.join(unit))
            .expect("enable unit");
    }
    // The users exist before boot, as after the package's postinst.
    let mut sysusers = Command::new(tool("systemd-sysusers", "systemd"));
    sysusers.arg(format!("--root={}", os.display()));
    let applied = run(sysusers, "systemd-sysusers in the container tree");
    assert!(applied.status.success(), "{}", applied.stderr);
    let db = UserDb::read(&os);

    // Unique per run: nspawn keeps per-machine state under /run/systemd/nspawn.
    let machine = format!("visio-room-test-{}", std::process::id());
    let script = format!(
        "set -e; mount --bind -o ro /usr '{os}/usr'; exec '{nspawn}' --quiet -D '{os}' \
         --machine={machine} --boot --register=no --keep-unit --private-network \
         --bind='{out}:/out'",
        os = os.display(),
        nspawn = nspawn.display(),
        out = out.display(),
    );
    let mut boot = Command::new(unshare);
    boot.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(script);
    let started = Instant::now();
    let console = run_within(boot, "the systemd container", CONTAINER_TIMEOUT);
    eprintln!(
        "container booted, probed and powered off in {} ms",
        started.elapsed().as_millis()
    );
    let report = fs::read_to_string(out.join("report")).unwrap_or_else(|e| {
        panic!(
            "the probe wrote no report ({e}); systemd-nspawn exited with {}; console:\n{}\n{}",
            console.status, console.stdout, console.stderr
        )
    });
    eprintln!("{report}");

    assert_eq!(report_value(&report, "active"), "active", "{report}");
    let (uid, _, _, _) = *db.user("visio-room");
    let uids: Vec<u32> = report_value(&report, "Uid")
        .split_whitespace()
        .map(|u| u.parse().expect("numeric uid"))
        .collect();
    assert_eq!(uids, [uid; 4], "runs as visio-room:\n{report}");
    let groups: Vec<u32> = report_value(&report, "Groups")
        .split_whitespace()
        .map(|g| g.parse().expect("numeric group"))
        .collect();
    for group in ["video", "audio", "input", "render", "gpio"] {
        assert!(
            groups.contains(&db.gid(group)),
            "not in group {group}:\n{report}"
        );
    }
    assert_eq!(
        report_value(&report, "CapEff"),
        "0000000000000000",
        "{report}"
    );
    assert_eq!(
        report_value(&report, "CapBnd"),
        "0000000000000000",
        "{report}"
    );
    assert_eq!(report_value(&report, "NoNewPrivs"), "1", "{report}");
    assert_eq!(
        report_value(&report, "Seccomp"),
        "2",
        "seccomp filter on:\n{report}"
    );
    let uid_map = report_value(&report, "uid_map");
    assert!(
        !uid_map.contains("4294967295"),
        "PrivateUsers=yes gives the daemon a user namespace, got uid_map {uid_map}"
    );
    assert!(
        report_value(&report, "root_mount")
            .split(',')
            .any(|o| o == "ro"),
        "ProtectSystem=strict makes / read-only:\n{report}"
    );
    assert_eq!(
        report_value(&report, "nobody_get"),
        "s \"idle\"",
        "{report}"
    );
    assert!(
        report_value(&report, "nobody_call").contains("Access denied"),
        "nobody may not command the room:\n{report}"
    );
    assert_eq!(report_value(&report, "operator_call"), "ok", "{report}");
    let after = report_value(&report, "after_watchdog");
    assert!(
        after.contains("NRestarts=0")
            && after.contains("ActiveState=active")
            && after.contains(&format!("MainPID={}", report_value(&report, "mainpid"))),
        "the watchdog must not fire while the daemon pings it: {after}\n{report}"
    );
    let exposure = overall_exposure(report_value(&report, "security"))
        .unwrap_or_else(|| panic!("no online security rating:\n{report}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "online rating {exposure}:\n{report}"
    );
    let stopped = report_value(&report, "stopped");
    assert!(
        stopped.contains("Result=success") && stopped.contains("ExecMainStatus=0"),
        "systemctl stop must end the daemon cleanly: {stopped}\n{report}"
    );

    // MemoryDenyWriteExecute=yes and the rest leave GStreamer working, with ORC's compiled
    // code (not just its slow C fallback).
    assert_eq!(
        report_value(&report, "media_check"),
        "success",
        "a GStreamer pipeline fails under the unit's sandbox:\n{report}"
    );
    let compiled: u32 = report_value(&report, "orc_compiled")
        .parse()
        .expect("a count");
    assert!(
        compiled > 0 && report_value(&report, "orc_failed") == "0",
        "ORC could not compile code under MemoryDenyWriteExecute=yes:\n{report}"
    );
}

//! The unit file: its security rating, `systemd-analyze verify`, its service contract with
//! `visio-roomd`, and the device classes it allows.

use std::fs;
use std::process::Command;

use crate::{repo_file, run, tool, unit_file, MAX_EXPOSURE};

/// Reads "→ Overall exposure level for visio-room.service: 1.3 OK 🙂".
pub(crate) fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level for"))?;
    let (_, after) = line.split_once("service: ")?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn unit_sandbox_is_rated_two_or_better_by_systemd_analyze_security() {
    let analyze = tool("systemd-analyze", "systemd");
    let mut cmd = Command::new(analyze);
    cmd.args(["security", "--offline=yes", "--no-pager"])
        .arg(unit_file())
        .env("SYSTEMD_COLORS", "0");
    let report = run(cmd, "systemd-analyze security");
    let exposure = overall_exposure(&report.stdout).unwrap_or_else(|| {
        panic!(
            "no overall exposure in the output of systemd-analyze security ({}):\n{}\n{}",
            report.status, report.stdout, report.stderr
        )
    });
    eprintln!("visio-room.service overall exposure: {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "visio-room.service is rated {exposure}, worse than {MAX_EXPOSURE}: tighten the sandbox \
         (details below)\n{}",
        report.stdout
    );
    // What systemd-analyze warned about in the unit itself (unknown or misspelt settings).
    assert!(
        !report.stderr.contains("visio-room.service:"),
        "systemd-analyze security complained about the unit:\n{}",
        report.stderr
    );
}

#[test]
fn exposure_is_read_from_the_summary_line() {
    let report = "  NAME  DESCRIPTION  EXPOSURE\n✗ PrivateNetwork=  Service has access  0.5\n\n\
                  → Overall exposure level for visio-room.service: 1.3 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.3));
    assert_eq!(
        overall_exposure("→ Overall exposure level for x.service: 9.6 UNSAFE"),
        Some(9.6)
    );
    assert_eq!(overall_exposure("nothing here"), None);
}

/// `systemd-analyze verify` checks that ExecStart= is executable, so it runs on a copy of the
/// unit whose ExecStart= points at the daemon cargo just built (the only line changed).
#[test]
fn unit_file_verifies_with_the_built_daemon() {
    let analyze = tool("systemd-analyze", "systemd");
    let text = fs::read_to_string(unit_file()).expect("read systemd/visio-room.service");
    let exec_lines = text.lines().filter(|l| l.starts_with("ExecStart=")).count();
    assert_eq!(
        exec_lines, 1,
        "the unit should have exactly one ExecStart= line"
    );
    assert!(
        text.contains("ExecStart=/usr/bin/visio-roomd\n"),
        "ExecStart= must run the installed binary /usr/bin/visio-roomd"
    );
    let copy = text.replace(
        "ExecStart=/usr/bin/visio-roomd\n",
        &format!("ExecStart={}\n", env!("CARGO_BIN_EXE_visio-roomd")),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("visio-room.service");
    fs::write(&path, copy).expect("write the unit copy");
    let mut cmd = Command::new(analyze);
    cmd.arg("verify").arg(&path).env("SYSTEMD_COLORS", "0");
    let verify = run(cmd, "systemd-analyze verify");
    // verify exits 0 on settings it ignores ("Unknown key name ..., ignoring"), so any line
    // about our unit counts as a failure.
    let complaints: Vec<&str> = verify
        .stderr
        .lines()
        .filter(|l| l.contains("visio-room"))
        .collect();
    assert!(
        verify.status.success() && complaints.is_empty(),
        "systemd-analyze verify rejects visio-room.service ({}):\n{}{}",
        verify.status,
        verify.stdout,
        verify.stderr
    );
}

#[test]
fn unit_declares_the_service_contract_of_visio_roomd() {
    let text = fs::read_to_string(unit_file()).expect("read systemd/visio-room.service");
    let settings: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for expected in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "Restart=always",
        "RestartSec=2s",
        "BusName=org.visioroom.Room1",
        "User=visio-room",
        "StateDirectory=visio-room",
        "DevicePolicy=closed",
    ] {
        assert!(
            settings.contains(&expected),
            "visio-room.service lacks `{expected}`"
        );
    }
}

/// The unit does not restart on exit status 2 (RestartPreventExitStatus=2) because that is how
/// visio-roomd says its configuration is invalid; any other failure, such as no system bus, must
/// exit with another status so that systemd restarts it.
#[test]
fn only_an_invalid_configuration_stops_the_unit_from_restarting_the_daemon() {
    let unit = fs::read_to_string(unit_file()).expect("read the unit");
    assert!(
        unit.lines().any(|l| l == "RestartPreventExitStatus=2"),
        "the unit should not restart on a configuration error (exit status 2)"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("config.toml");
    fs::write(&config, "no_such_setting = 1\n").expect("write config.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_visio-roomd"));
    cmd.arg("--config")
        .arg(&config)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let invalid = run(cmd, "visio-roomd with an invalid configuration");
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "an invalid configuration must exit with status 2:\n{}",
        invalid.stderr
    );
    fs::write(&config, "").expect("write config.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_visio-roomd"));
    cmd.arg("--config")
        .arg(&config)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let no_bus = run(cmd, "visio-roomd without a system bus");
    assert!(
        !no_bus.status.success() && no_bus.status.code() != Some(2),
        "without a bus visio-roomd must fail with a status other than 2 (got {}), so that \
         systemd restarts it:\n{}",
        no_bus.status,
        no_bus.stderr
    );
}

/// systemd resolves `DeviceAllow=char-NAME` through /proc/devices when the service starts and
/// skips names whose driver core is not loaded yet; the modules-load.d snippet must load the
/// core of every such class the unit allows, or a camera plugged in after boot stays refused.
#[test]
fn device_classes_the_unit_allows_have_their_driver_cores_loaded_at_boot() {
    let unit = fs::read_to_string(unit_file()).expect("read the unit");
    let modules_file = repo_file("systemd/visio-room.modules-load");
    let text = fs::read_to_string(&modules_file).expect("read visio-room.modules-load");
    let modules: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for module in &modules {
        assert!(
            module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "`{module}` in {} is not a module name",
            modules_file.display()
        );
    }
    // Device class (as in /proc/devices) → the module that registers it, where that is a
    // loadable module on Debian and Raspberry Pi OS kernels.
    for (class, module) in [
        ("video4linux", "videodev"),
        ("media", "mc"),
        ("alsa", "snd"),
        ("drm", "drm"),
    ] {
        if unit
            .lines()
            .any(|l| l.starts_with(&format!("DeviceAllow=char-{class} ")))
        {
            assert!(
                modules.contains(&module),
                "the unit allows char-{class}, but {} does not load {module}",
                modules_file.display()
            );
        }
    }
}

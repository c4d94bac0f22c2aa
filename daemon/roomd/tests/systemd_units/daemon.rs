//! The real `visio-roomd` as its user under the real policy, speaking the unit's `Type=notify`
//! protocol.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::bus::{
    assert_denied, client, policy_users, shared_scratch, Background, Identity, SystemLikeBus,
};
use crate::{require_python_dbus, require_root, run, tool, ACCESS_DENIED, STEP_TIMEOUT};

/// The real `visio-roomd`, started as a user the way the unit starts it: `NOTIFY_SOCKET` and
/// `WATCHDOG_USEC` set, the system bus given by `DBUS_SYSTEM_BUS_ADDRESS`.
pub(crate) struct RoomDaemon {
    pub(crate) process: Background,
    pub(crate) notify: UnixDatagram,
    pub(crate) log_file: PathBuf,
}

impl RoomDaemon {
    /// Starts the daemon as `who` on `bus`; under `strace -f -o <log>` when `strace_log` is given.
    pub(crate) fn start(
        dir: &Path,
        bus: &SystemLikeBus,
        who: &Identity,
        strace_log: Option<&Path>,
    ) -> RoomDaemon {
        // The binary may sit in a directory the daemon's user cannot reach (a home): copy it.
        let binary = dir.join("visio-roomd");
        fs::copy(env!("CARGO_BIN_EXE_visio-roomd"), &binary).expect("copy visio-roomd");
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod binary");
        // An empty configuration: built-in defaults, whatever /etc/visio-room holds here.
        let config = dir.join("config.toml");
        fs::write(&config, "").expect("write config.toml");
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod config");
        // systemd's notification socket, as the unit's Type=notify provides it.
        let notify_path = dir.join("notify");
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        fs::set_permissions(&notify_path, fs::Permissions::from_mode(0o777)).expect("chmod");
        notify
            .set_read_timeout(Some(STEP_TIMEOUT))
            .expect("socket timeout");

        let mut cmd = match strace_log {
            None => who.command(binary.to_str().expect("utf-8 path"), dir),
            Some(log) => {
                // strace runs as the daemon's user, so it must be able to write its log.
                fs::write(log, "").expect("create the strace log");
                fs::set_permissions(log, fs::Permissions::from_mode(0o666)).expect("chmod log");
                let strace = tool("strace", "strace");
                let mut cmd = who.command(strace.to_str().expect("utf-8 path"), dir);
                cmd.args(["-f", "-qq", "-o"])
                    .arg(log)
                    .arg("--")
                    .arg(&binary);
                cmd
            }
        };
        cmd.arg("--config")
            .arg(&config)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env("NOTIFY_SOCKET", &notify_path)
            // What systemd sets for WatchdogSec=: here 1 s, so pings come every 0.5 s.
            .env("WATCHDOG_USEC", "1000000")
            .env("RUST_LOG", "info");
        let log_file = dir.join("visio-roomd.stderr");
        let process = Background::spawn(cmd, "visio-roomd", log_file.clone());
        RoomDaemon {
            process,
            notify,
            log_file,
        }
    }

    /// Waits for a notification carrying `line` (`READY=1`, `WATCHDOG=1`, ...).
    pub(crate) fn wait_for_notification(&self, line: &str) {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.notify.recv(&mut buf).unwrap_or_else(|e| {
                let log = fs::read_to_string(&self.log_file).unwrap_or_default();
                panic!("visio-roomd sent no {line} to NOTIFY_SOCKET ({e}); its log:\n{log}")
            });
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == line)
            {
                return;
            }
        }
    }

    /// `systemctl stop`: SIGTERM to the daemon (`pid`), then STOPPING=1 and a clean exit well
    /// within the unit's TimeoutStopSec=20s. Returns how long it took.
    pub(crate) fn stop(&mut self, pid: u32) -> Duration {
        let mut term = Command::new(tool("kill", "procps"));
        term.args(["-TERM", &pid.to_string()]);
        assert!(run(term, "kill -TERM visio-roomd").status.success());
        let stopping = Instant::now();
        self.wait_for_notification("STOPPING=1");
        let status = loop {
            if let Some(status) = self.process.child.try_wait().expect("wait for visio-roomd") {
                break status;
            }
            assert!(
                stopping.elapsed() < STEP_TIMEOUT,
                "visio-roomd still runs {STEP_TIMEOUT:?} after SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let log = fs::read_to_string(&self.log_file).unwrap_or_default();
        assert!(
            status.success(),
            "visio-roomd exited with {status} on SIGTERM; its log:\n{log}"
        );
        stopping.elapsed()
    }
}

/// The real daemon, as its user under the real policy: it owns the name, tells systemd it is
/// ready only then, pings the watchdog, serves status to anyone and commands only to
/// operators, and stops cleanly.
#[test]
fn visio_roomd_as_its_user_serves_status_to_everyone_and_commands_to_operators() {
    require_root("it runs the daemon and clients as other users");
    require_python_dbus();
    let dir = shared_scratch();
    let (db, daemon, operator, nobody) = policy_users(dir.path());
    let bus = SystemLikeBus::start(dir.path(), &db);

    let started = Instant::now();
    let mut roomd = RoomDaemon::start(dir.path(), &bus, &daemon, None);
    roomd.wait_for_notification("READY=1");
    eprintln!(
        "visio-roomd sent READY=1 {} ms after it was started",
        started.elapsed().as_millis()
    );
    // The watchdog: WATCHDOG=1 keeps coming while the daemon idles.
    let watching = Instant::now();
    for _ in 0..3 {
        roomd.wait_for_notification("WATCHDOG=1");
    }
    let three_pings = watching.elapsed();
    eprintln!("three WATCHDOG=1 within {} ms", three_pings.as_millis());
    assert!(
        three_pings < Duration::from_millis(2500),
        "with WATCHDOG_USEC=1000000 pings must come every ~0.5 s; three took {three_pings:?}"
    );
    // READY=1 promises the name is owned: a client can read at once.
    let all = client(dir.path(), &bus, &nobody, &["get-all"]);
    assert!(
        all.starts_with("OK") && all.contains("State") && all.contains("MicMuted"),
        "nobody's GetAll on visio-roomd: {all}"
    );
    assert_denied(
        &client(
            dir.path(),
            &bus,
            &nobody,
            &["call", "SetMicMuted", "b:true"],
        ),
        "nobody calling visio-roomd's SetMicMuted",
    );
    let by_operator = client(
        dir.path(),
        &bus,
        &operator,
        &["call", "SetMicMuted", "b:true"],
    );
    assert!(
        !by_operator.contains(ACCESS_DENIED),
        "an operator's SetMicMuted must reach visio-roomd, got: {by_operator}"
    );
    let pid = roomd.process.child.id();
    let took = roomd.stop(pid);
    eprintln!("visio-roomd stopped {} ms after SIGTERM", took.as_millis());
}

//! A private D-Bus bus and a `visio-roomd` on it, for end-to-end tests with the real binaries.
//!
//! Each test gets its own `dbus-daemon` (a real one, on a socket in a temporary directory), so
//! tests run in parallel and never touch the machine's buses.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private session bus.
pub struct Bus {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// Starts `dbus-daemon --session` on a private socket.
    pub fn start() -> Bus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("bus");
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon must be installed (apt-get install dbus-daemon; scripts/setup-deps does it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        Bus {
            address: line.trim().to_owned(),
            child,
            _dir: dir,
        }
    }

    /// A `visio-roomctl --session-bus` command on this bus.
    pub fn roomctl(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_visio-roomctl"));
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .arg("--session-bus");
        c
    }

    /// Runs `visio-roomctl --session-bus ARGS` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.roomctl()
            .args(args)
            .output()
            .expect("visio-roomctl runs")
    }

    /// A zbus connection to this bus.
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .await
            .expect("connect to the private bus")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of the `visio-roomd` binary built next to `visio-roomctl`.
pub fn roomd_path() -> PathBuf {
    let ctl = Path::new(env!("CARGO_BIN_EXE_visio-roomctl"));
    let roomd = ctl.with_file_name("visio-roomd");
    assert!(
        roomd.exists(),
        "{} is missing: build the workspace (cargo build --workspace) before these tests",
        roomd.display()
    );
    roomd
}

/// A running `visio-roomd --session-bus`.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts the daemon on `bus` with `extra` arguments and waits until it owns its name.
    pub fn start(bus: &Bus, extra: &[&str]) -> Daemon {
        let child = Command::new(roomd_path())
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("RUST_LOG", "info")
            .arg("--session-bus")
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("visio-roomd starts");
        let daemon = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = bus.ctl(&["status", "--json"]);
            if out.status.success() {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "visio-roomd did not own its bus name within 10 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "visio-roomd ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses stdout as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A running `visio-sim` (the local Visio), stopped when dropped.
pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl Sim {
    /// Starts `visio-sim --listen 127.0.0.1:0 ARGS` (built next to `visio-roomctl`).
    pub fn start(args: &[&str]) -> Sim {
        let binary = Path::new(env!("CARGO_BIN_EXE_visio-roomctl")).with_file_name("visio-sim");
        assert!(
            binary.exists(),
            "{} is missing: build the workspace (cargo build --workspace --bins) first",
            binary.display()
        );
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("visio-sim starts");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line)
            .expect("visio-sim prints its address");
        // Keep draining its stdout so it never blocks.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let origin = line
            .trim()
            .strip_prefix("visio-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from visio-sim: {line:?}"))
            .to_owned();
        Sim { child, origin }
    }

    /// `127.0.0.1:PORT`, for `visio.allowed_hosts`.
    pub fn host(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

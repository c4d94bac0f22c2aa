//! Shared by the integration tests: start the real `visio-sim` binary, find the official
//! clients installed by `scripts/deps.d/sim.sh`, and isolate a test in its own network
//! namespace.

// The workspace denies unsafe code; this file needs it for
// unshare(2) and flock(2); each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `visio-sim`, killed on drop.
pub struct SimServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stderr_log: PathBuf,
}

impl SimServer {
    /// Starts `visio-sim --listen 127.0.0.1:0 <args>` and waits for its address line.
    pub fn start(args: &[&str]) -> SimServer {
        let log = std::env::temp_dir().join(format!(
            "visio-sim-{}-{}.log",
            std::process::id(),
            rand_suffix()
        ));
        let stderr = std::fs::File::create(&log).expect("create the server log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_visio-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "visio_sim=debug")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start visio-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the address line");
        let url = line
            .trim()
            .strip_prefix("visio-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from visio-sim: {line:?}"))
            .to_owned();
        SimServer {
            child,
            url,
            stderr_log: log,
        }
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        self.url.replacen("http", "ws", 1)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- visio-sim log ----\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Python of the venv holding the official `livekit` SDK.
pub fn venv_python() -> PathBuf {
    let python = repo().join("hw-tests/.work/venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import livekit.rtc, websockets, numpy"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Python venv with the official LiveKit SDK is missing ({}): run `sudo scripts/deps.d/sim.sh \"$PWD\"` from the repository root",
        python.display()
    );
    python
}

/// Checks that Debian's Chromium and the npm `livekit-client` are installed.
pub fn require_chromium_and_livekit_client() {
    assert!(
        Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success()),
        "Debian's chromium is missing: run `sudo scripts/deps.d/sim.sh \"$PWD\"` from the repository root"
    );
    let js =
        repo().join("hw-tests/.work/web/node_modules/livekit-client/dist/livekit-client.umd.js");
    assert!(
        js.exists(),
        "the npm livekit-client is missing ({}): run `sudo scripts/deps.d/sim.sh \"$PWD\"` from the repository root",
        js.display()
    );
}

/// A peer script under `tests/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Moves this test process into a fresh network namespace so that every peer it starts only
/// sees loopback traffic. libwebrtc ignores the loopback interface when gathering candidates,
/// so a veth end carrying 127.0.0.2/32 gives it a loopback-range address to use: all media
/// then flows between 127.0.0.1 and 127.0.0.2 inside the namespace. Needs root (CI runs as
/// root). Call it first in a test (nextest runs each test in its own process), from the
/// thread that then starts the children.
pub fn enter_loopback_only_netns() {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "cannot create a network namespace ({}): run the media tests as root (CI does)",
        std::io::Error::last_os_error()
    );
    for cmd in [
        "ip link set lo up",
        "ip link add lk0 type veth peer name lk1",
        "ip addr add 127.0.0.2/32 dev lk0",
        "ip link set lk0 up",
        "ip link set lk1 up",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let status = Command::new(args[0])
            .args(&args[1..])
            .status()
            .expect("run ip (package iproute2)");
        assert!(
            status.success(),
            "`{cmd}` failed in the test network namespace"
        );
    }
}

/// A peer process whose stdout is one JSON object per line.
pub struct Peer {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    stderr_log: PathBuf,
    /// Every line received so far.
    pub history: Vec<serde_json::Value>,
}

impl Peer {
    /// Starts `python <script> <args>`.
    pub fn start(python: &std::path::Path, script: &str, args: &[&str]) -> Peer {
        let log =
            std::env::temp_dir().join(format!("visio-sim-peer-{script}-{}.log", rand_suffix()));
        let mut child = Command::new(python)
            .arg(peer_script(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start a peer");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Peer {
            child,
            lines: rx,
            stderr_log: log,
            history: Vec::new(),
        }
    }

    /// Reads lines until `pred` holds for one (returned) or `timeout` passes (None).
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.history.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The peer's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The last line seen.
    pub fn last(&self) -> serde_json::Value {
        self.history
            .last()
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

/// Held while a test runs a browser: two browsers plus encoders at once would starve a 2-core
/// machine and the clients would adapt (drop layers) instead of showing what the SFU does.
pub fn media_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join("visio-sim-browser-tests.lock"))
        .expect("create the browser test lock file");
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "cannot lock the browser test lock file");
    file
}

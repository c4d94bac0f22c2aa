//! The official-client peers: headless Chromium running the meeting page (npm
//! `livekit-client`) and the PyPI `livekit` SDK (Google's libwebrtc), plus the network
//! namespace they need and the lock that keeps one browser test at a time.
//!
//! The Chromium and Python SDK scripts belong to visio-sim's tests
//! (`hw-tests/visio-sim/tests/peers/`); they are launched here by path. The picture-clock
//! reader (`hw-tests/test-support/peers/picture_clock_peer.py`) is this crate's own. Every
//! peer prints one JSON object per line on stdout. Their dependencies are installed by
//! `scripts/deps.d/sim.sh`.

// The workspace denies unsafe code; this file needs it for
// unshare(2) and flock(2); each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::binaries::repo_root;
use crate::{Error, Result};

fn install_hint() -> String {
    "run `sudo scripts/deps.d/sim.sh \"$PWD\"` from the repository root (CI does)".into()
}

/// The Python of the venv holding the official `livekit` SDK (`hw-tests/.work/venv`).
pub fn venv_python() -> Result<PathBuf> {
    let python = repo_root().join("hw-tests/.work/venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import livekit.rtc, websockets, numpy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        return Err(Error::MissingDependency {
            what: format!(
                "the Python venv with the official LiveKit SDK ({})",
                python.display()
            ),
            fix: install_hint(),
        });
    }
    Ok(python)
}

/// Checks that Debian's Chromium and the npm `livekit-client` the meeting page loads are
/// installed.
pub fn require_chromium() -> Result<()> {
    let chromium = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !chromium {
        return Err(Error::MissingDependency {
            what: "Debian's chromium".into(),
            fix: install_hint(),
        });
    }
    let js = repo_root()
        .join("hw-tests/.work/web/node_modules/livekit-client/dist/livekit-client.umd.js");
    if !js.exists() {
        return Err(Error::MissingDependency {
            what: format!("the npm livekit-client ({})", js.display()),
            fix: install_hint(),
        });
    }
    Ok(())
}

/// Moves the calling thread into a fresh network namespace holding only loopback: `lo` and
/// a veth end carrying `127.0.0.2/32`, because libwebrtc never gathers ICE candidates on the
/// loopback interface. Every process started from this thread afterwards shares it, so all
/// media stays on 127.0.0.0/8 (the simulator only accepts loopback candidates). Needs root
/// (CI runs as root). Call it first in a test, from the thread that then starts the
/// children; path-based Unix sockets (the private D-Bus) keep working across it.
pub fn enter_loopback_only_netns() -> Result<()> {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(Error::Io {
            what: "create a network namespace: run the media tests as root (CI does)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
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
            .map_err(|_| Error::MissingDependency {
                what: "ip (package iproute2)".into(),
                fix: install_hint(),
            })?;
        if !status.success() {
            return Err(Error::Unexpected {
                what: format!("`{cmd}` failed in the test network namespace"),
            });
        }
    }
    Ok(())
}

/// Held while a test runs a browser or a media benchmark: two browsers and encoders at once
/// starve a 2-core machine. The same lock file as visio-sim's browser tests, so those
/// serialise with these too. Released when dropped.
pub fn media_lock() -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("visio-sim-browser-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io(format!("open {}", path.display())))?;
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(Error::Io {
            what: format!("lock {}", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(file)
}

/// A peer script under visio-sim's `tests/peers/` (`chrome_peer.py`, `python_peer.py`).
pub fn sim_peer_script(name: &str) -> PathBuf {
    repo_root()
        .join("hw-tests/visio-sim/tests/peers")
        .join(name)
}

/// This crate's picture-clock reader, `peers/picture_clock_peer.py`.
pub fn picture_clock_script() -> PathBuf {
    repo_root().join("hw-tests/test-support/peers/picture_clock_peer.py")
}

/// A peer process printing one JSON object per line; killed when dropped.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Every line received so far.
    pub history: Vec<serde_json::Value>,
}

impl Peer {
    /// Starts `python SCRIPT ARGS`.
    pub fn start(python: &Path, script: &Path, args: &[&str]) -> Result<Peer> {
        if !script.exists() {
            return Err(Error::Unexpected {
                what: format!("peer script {} not found", script.display()),
            });
        }
        let dir = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        let log = dir.path().join("peer.log");
        let stderr =
            std::fs::File::create(&log).map_err(Error::io(format!("create {}", log.display())))?;
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(Error::spawn(format!("{}", script.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Peer {
            child,
            lines: rx,
            log,
            _dir: dir,
            history: Vec::new(),
        })
    }

    /// Headless Chromium joining room `slug` of the simulator at `origin` through the meeting
    /// page as `name`, for `seconds`, with extra `chrome_peer.py` arguments. Each line is
    /// `window.visioSim.stats()`: `remote` lists `{participant, kind, framesDecoded,
    /// frameWidth, frameHeight, audioLevel, totalAudioEnergy, …}`.
    pub fn chromium(
        origin: &str,
        slug: &str,
        name: &str,
        seconds: u32,
        extra: &[&str],
    ) -> Result<Peer> {
        require_chromium()?;
        let python = venv_python()?;
        let seconds = seconds.to_string();
        let mut args = vec![
            "--url",
            origin,
            "--room",
            slug,
            "--name",
            name,
            "--seconds",
            &seconds,
        ];
        args.extend_from_slice(extra);
        Peer::start(&python, &sim_peer_script("chrome_peer.py"), &args)
    }

    /// The official Python SDK joining room `slug` as `name`, for `seconds`, with extra
    /// `python_peer.py` arguments (`--no-media`, `--lobby`, …). Each line holds `remote`:
    /// `{"<identity>/<track>": {kind, frames, width, height | rms, peak_rms}}`.
    pub fn python_sdk(
        origin: &str,
        slug: &str,
        name: &str,
        seconds: u32,
        extra: &[&str],
    ) -> Result<Peer> {
        let python = venv_python()?;
        let seconds = seconds.to_string();
        let mut args = vec![
            "--url",
            origin,
            "--room",
            slug,
            "--name",
            name,
            "--seconds",
            &seconds,
        ];
        args.extend_from_slice(extra);
        Peer::start(&python, &sim_peer_script("python_peer.py"), &args)
    }

    /// The Python SDK, subscribing only, reading the picture clock of every decoded frame
    /// of the participant named `watch` (see `peers/picture_clock_peer.py` for its lines).
    pub fn picture_clock(origin: &str, slug: &str, watch: &str, seconds: u32) -> Result<Peer> {
        let python = venv_python()?;
        let seconds = seconds.to_string();
        Peer::start(
            &python,
            &picture_clock_script(),
            &[
                "--url",
                origin,
                "--room",
                slug,
                "--watch",
                watch,
                "--seconds",
                &seconds,
            ],
        )
    }

    /// Reads lines until `pred` holds for one (returned) or `timeout` passes (`None`).
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
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

    /// Like [`Peer::wait_for`], but a timeout is an error naming `what`, the last line and
    /// the peer's log.
    pub fn expect(
        &mut self,
        secs: u64,
        what: &str,
        pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        self.wait_for(Duration::from_secs(secs), pred)
            .ok_or_else(|| Error::Timeout {
                what: what.to_owned(),
                secs,
                last: format!("{}\npeer log:\n{}", self.last(), self.log_tail(40)),
            })
    }

    /// The peer's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(n).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The level (RMS, 0..1, decaying) of `identity`'s audio in one line of the Python SDK
    /// peer (`None`: not received yet).
    pub fn audio_level(line: &serde_json::Value, identity: &str) -> Option<f64> {
        line["remote"]
            .as_object()?
            .iter()
            .find(|(key, t)| key.starts_with(&format!("{identity}/")) && t["kind"] == "audio")
            .and_then(|(_, t)| t["rms"].as_f64())
    }

    /// The last line seen (`null` before the first).
    pub fn last(&self) -> serde_json::Value {
        self.history
            .last()
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

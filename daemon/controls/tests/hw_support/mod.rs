//! Shared helpers of the hardware tests (`tests/hw_*.rs`): waiting for control events and
//! statuses, and loud preconditions. Each test needs real kernel drivers; see `tests/HW.md`.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use visio_room_controls::{ControlEvent, ControlState, Controls};

/// Why a hardware test is skipped on a machine without the drivers (the `ignore` reason).
pub const SKIP: &str = "needs real kernel drivers (QEMU guest): build and run with VISIO_HW_TESTS=1, see daemon/controls/tests/HW.md";

/// Logs to stderr (shown by nextest for failures, and with --no-capture).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "visio_room_controls=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Fails loudly when a device node or sysfs path the test needs is missing: with
/// VISIO_HW_TESTS=1 the environment promised it.
pub fn require(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: {what} (VISIO_HW_TESTS=1 was set, so this machine must have it; see tests/HW.md)"
    );
}

/// Loads a kernel module the test needs when `present` (a sysfs or procfs check) says it is
/// not there: without udev (the QEMU guest) nothing autoloads `evdev` or `hid-generic`.
pub fn ensure_module(module: &str, present: impl Fn() -> bool) {
    if present() {
        return;
    }
    let status = std::process::Command::new("modprobe").arg(module).status();
    eprintln!("modprobe {module}: {status:?}");
    assert!(
        present(),
        "kernel module {module} is not loaded and `modprobe {module}` did not load it (see tests/HW.md)"
    );
}

/// Shows the end of the kernel log and the output of a few commands (when a test is about to
/// fail because a device did not appear).
pub fn kernel_diagnostics(commands: &[&str]) {
    for c in std::iter::once("dmesg | tail -n 25").chain(commands.iter().copied()) {
        let out = std::process::Command::new("sh").args(["-c", c]).output();
        match out {
            Ok(o) => eprintln!(
                "$ {c}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("$ {c}: {e}"),
        }
    }
}

/// The `evdev` input handler (makes /dev/input/event* nodes).
pub fn ensure_evdev() {
    ensure_module("evdev", || {
        std::fs::read_to_string("/proc/bus/input/handlers").is_ok_and(|h| h.contains("evdev"))
    });
}

/// The next event matching `pred` within `timeout`; other events are skipped (and logged).
pub async fn wait_event(
    controls: &mut Controls,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&ControlEvent) -> bool,
) -> ControlEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, controls.next_event()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(ev)) => eprintln!("  (event while waiting for {what}: {ev:?})"),
            Ok(None) => panic!("controls stopped while waiting for {what}"),
            Err(_) => panic!(
                "no {what} within {timeout:?}; statuses: {:#?}",
                controls.statuses()
            ),
        }
    }
}

/// Events within `window` matching `pred` (used to prove that nothing more came).
pub async fn count_events(
    controls: &mut Controls,
    window: Duration,
    mut pred: impl FnMut(&ControlEvent) -> bool,
) -> usize {
    let deadline = Instant::now() + window;
    let mut n = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, controls.next_event()).await {
            Ok(Some(ev)) => {
                if pred(&ev) {
                    n += 1;
                }
            }
            _ => return n,
        }
    }
}

/// Waits until the control named `name` is in a state for which `pred` holds.
pub async fn wait_status(
    controls: &mut Controls,
    name: &str,
    timeout: Duration,
    pred: impl Fn(&ControlState) -> bool,
) -> ControlState {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = controls.statuses().into_iter().find(|s| s.name == name) {
            if pred(&s.state) {
                return s.state;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "control {name:?} did not reach the wanted state within {timeout:?}; statuses: {:#?}",
                controls.statuses()
            );
        }
        // Drain events meanwhile so nothing blocks.
        let _ = tokio::time::timeout(Duration::from_millis(50), controls.next_event()).await;
    }
}

/// Reports a measurement on stderr, written to the descriptor directly so that libtest's
/// capture (which hides a passing test's `eprintln!`) does not hide it, and appended to the
/// file named by `VISIO_HW_MEASURE`, if set.
pub fn measure(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("MEASURE {line}\n").as_bytes());
    if let Ok(path) = std::env::var("VISIO_HW_MEASURE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "MEASURE {line}");
        }
    }
}

/// p50 and p95 of durations, in milliseconds.
pub fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.95))
}

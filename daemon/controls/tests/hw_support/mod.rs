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

/// p50 and p95 of durations, in milliseconds.
pub fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.95))
}

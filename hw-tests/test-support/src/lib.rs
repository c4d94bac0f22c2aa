//! Test harness shared by the end-to-end tests and benchmarks of the appliance: a private
//! D-Bus daemon ([`Bus`]), `visio-sim` with its host/admin API ([`Sim`]), `visio-roomd` with
//! a configuration written for the test ([`Daemon`], [`RoomConfig`]), a fake Meet API that
//! answers garbage ([`FakeMeet`]), free ports, process figures from `/proc`, and launchers
//! for the official-client peers (headless Chromium with npm `livekit-client`, the PyPI
//! `livekit` SDK, and a picture-clock reader for glass-to-glass latency) in a loopback-only
//! network namespace.
//!
//! Everything here drives the real binaries from the outside: `visio-roomd`, `visio-roomctl`
//! and `visio-sim` are found next to the running test in its target profile directory
//! (`cargo build --workspace --bins` builds them; benchmarks need release builds). This crate
//! must not know the appliance's internals: it depends on no crate of the workspace, speaks
//! to the daemon only through `visio-roomctl` and D-Bus, and to the simulator only over HTTP.
//! Dependencies outside Rust (Chromium, npm modules, the Python venv) come from
//! `scripts/deps.d/sim.sh`; a missing one is an [`Error::MissingDependency`] naming it.

#![warn(missing_docs)]

mod binaries;
mod bus;
mod daemon;
mod error;
mod http;
mod peers;
mod process;
mod sim;

pub use binaries::{bin_dir, binary, repo_root, ROOMCTL, ROOMD, SIM};
pub use bus::{json, Bus};
pub use daemon::{Daemon, RoomConfig};
pub use error::{Error, Result};
pub use http::{free_port, request, FakeMeet, Reply};
pub use peers::{
    enter_loopback_only_netns, media_lock, picture_clock_script, require_chromium, sim_peer_script,
    venv_python, Peer,
};
pub use process::{terminate, thread_cpu_seconds, usage, ProcessUsage};
pub use sim::{Sim, ADMIN_TOKEN};

/// Quantile `q` (0–1) of `samples` (sorted here), nearest rank; `None` when empty.
pub fn quantile<T: Copy + PartialOrd>(samples: &mut [T], q: f64) -> Option<T> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((samples.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(samples[rank])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let mut v = vec![5, 1, 4, 2, 3];
        assert_eq!(quantile(&mut v, 0.0), Some(1));
        assert_eq!(quantile(&mut v, 0.5), Some(3));
        assert_eq!(quantile(&mut v, 1.0), Some(5));
        assert_eq!(quantile::<u32>(&mut [], 0.5), None);
    }

    #[test]
    fn a_room_config_is_the_file_the_daemon_reads() {
        let text = RoomConfig::new("Salle \"Test\"", "127.0.0.1:9")
            .sending(1280, 720, 30)
            .with("[join]\nmax_attempts = 2\n")
            .to_toml();
        assert!(text.contains("name = \"Salle \\\"Test\\\"\""), "{text}");
        assert!(text.contains("allowed_hosts = [\"127.0.0.1:9\"]"), "{text}");
        assert!(
            text.contains("resolution = \"1280x720\"\nframerate = 30"),
            "{text}"
        );
        assert!(text.ends_with("[join]\nmax_attempts = 2\n"), "{text}");
    }

    #[test]
    fn the_fake_meet_answers_what_it_is_told_and_the_client_reads_it() {
        let meet = FakeMeet::start(|path| (502, format!("<html>{path}</html>"))).unwrap();
        let reply = request(&meet.origin, "GET", "/api/v1.0/config/", None, None).unwrap();
        assert_eq!(reply.status, 502);
        assert_eq!(reply.body, "<html>/api/v1.0/config/</html>");
        assert!(reply.json().is_err());
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let e = binary("no-such-visio-binary").unwrap_err();
        assert!(e.to_string().contains("cargo build"), "{e}");
    }
}

//! `[join]`: retries and time-outs of joining.

use toml::de::DeTable;

use super::keys::{section, whole};
use super::reader::Reader;
use super::ConfigError;

section! {
    /// `[join]`: retries and time-outs of joining.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct JoinConfig in "join" {
        /// Attempts to join one meeting, the first included.
        max_attempts: u32 = 6 => whole(1, 100),
        /// Wait before the first retry, doubled each time (milliseconds).
        initial_backoff_ms: u64 = 1_000 => whole(10, 600_000),
        /// Longest wait between attempts (milliseconds).
        max_backoff_ms: u64 = 60_000 => whole(10, 3_600_000),
        /// Give up waiting in a lobby after this long (seconds).
        lobby_timeout_s: u64 = 600 => whole(10, 86_400),
        /// How long leaving may take before the session is dropped (milliseconds).
        leave_timeout_ms: u64 = 5_000 => whole(100, 60_000),
    }
}

impl JoinConfig {
    /// The checks between keys: the backoff may only grow.
    pub(super) fn check(&self, r: &Reader<'_>, t: &DeTable<'_>) -> Result<(), ConfigError> {
        if self.max_backoff_ms >= self.initial_backoff_ms {
            return Ok(());
        }
        // Point at whichever of the two the file sets (the other one is the default).
        Err(match t.get("max_backoff_ms") {
            Some(max) => r.error(
                Some(max.span()),
                Some("join.max_backoff_ms"),
                &format!(
                    "must be at least join.initial_backoff_ms ({})",
                    self.initial_backoff_ms
                ),
            ),
            None => r.error(
                t.get("initial_backoff_ms").map(|v| v.span()),
                Some("join.initial_backoff_ms"),
                &format!(
                    "must be at most join.max_backoff_ms ({}, the default); raise that too",
                    self.max_backoff_ms
                ),
            ),
        })
    }
}

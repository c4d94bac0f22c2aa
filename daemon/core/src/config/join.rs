//! `[join]`: retries and time-outs of joining.

use toml::de::DeTable;

use super::reader::Reader;
use super::{keys_of, ConfigError};

/// `[join]`: retries and time-outs of joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinConfig {
    /// Attempts to join one meeting, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled each time.
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts.
    pub max_backoff_ms: u64,
    /// Give up waiting in a lobby after this long.
    pub lobby_timeout_s: u64,
    /// How long leaving may take before the session is dropped.
    pub leave_timeout_ms: u64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            max_attempts: 6,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            lobby_timeout_s: 600,
            leave_timeout_ms: 5_000,
        }
    }
}

impl Reader<'_> {
    pub(super) fn join(&self, t: &DeTable<'_>, j: &mut JoinConfig) -> Result<(), ConfigError> {
        self.check_keys(t, Some("join"), keys_of("join"))?;
        if let Some(v) = self.integer(t, "join", "max_attempts", 1, 100)? {
            j.max_attempts = v as u32;
        }
        if let Some(v) = self.integer(t, "join", "initial_backoff_ms", 10, 600_000)? {
            j.initial_backoff_ms = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "max_backoff_ms", 10, 3_600_000)? {
            j.max_backoff_ms = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "lobby_timeout_s", 10, 86_400)? {
            j.lobby_timeout_s = v as u64;
        }
        if let Some(v) = self.integer(t, "join", "leave_timeout_ms", 100, 60_000)? {
            j.leave_timeout_ms = v as u64;
        }
        if j.max_backoff_ms < j.initial_backoff_ms {
            // Point at whichever of the two the file sets (the other one is the default).
            return Err(match t.get("max_backoff_ms") {
                Some(max) => self.error(
                    Some(max.span()),
                    Some("join.max_backoff_ms"),
                    &format!(
                        "must be at least join.initial_backoff_ms ({})",
                        j.initial_backoff_ms
                    ),
                ),
                None => self.error(
                    t.get("initial_backoff_ms").map(|v| v.span()),
                    Some("join.initial_backoff_ms"),
                    &format!(
                        "must be at most join.max_backoff_ms ({}, the default); raise that too",
                        j.max_backoff_ms
                    ),
                ),
            });
        }
        Ok(())
    }
}

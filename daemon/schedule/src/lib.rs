//! Room calendars: what meetings a room has, when, and with which link.
//!
//! This crate turns a room's calendar (iCalendar text) into [`Occurrence`]s — one per meeting
//! instance in a time window, with RFC 5545 recurrence, time zones, overrides and cancellations
//! applied, and the meeting link found and validated — and plans what the room should do about
//! them ([`planner`]: join a little before the start, leave at the end, never interrupt a call
//! someone started by hand).
//!
//! It is sans-IO at its core: no clock (the current time is always an input), no sockets, no
//! files except the one-call helpers for `visio-roomctl` and the daemon ([`occurrences_in_file`],
//! [`zone::system_zone`]). It must not know
//! about D-Bus, the meeting session, media or hardware; the daemon feeds it calendar text and
//! the current call state and carries out the actions it returns through the room controller.
//!
//! Module map: [`ics`] (tolerant content-line reader), [`value`] (dates, durations), [`zone`]
//! (IANA/Windows/VTIMEZONE zones, DST gaps and folds), [`rrule`] (recurrence rules in local
//! time), [`expand`] (series → occurrences), [`links`] (meeting-link lookup and unwrapping),
//! [`planner`] (join/leave decisions).

#![warn(missing_docs)]

pub mod expand;
pub mod ics;
pub mod links;
pub mod planner;
pub mod rrule;
pub mod value;
pub mod zone;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use expand::{occurrences, parse_instant, ExpandOptions, Occurrence, OccurrenceSet, Status};
pub use ics::ParseProblem;

/// Errors of the one-call helpers (the parser itself never fails: it reports problems).
#[derive(Debug, Error)]
pub enum ScheduleError {
    /// The calendar file could not be read.
    #[error("cannot read the calendar file {path}: {source} (check the path given with --ics)")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A window bound is not a time.
    #[error("{value:?} given for {which} is not an RFC 3339 time (use e.g. 2024-03-01T00:00:00Z)")]
    BadTime {
        /// `--from` or `--to`.
        which: &'static str,
        /// What was given.
        value: String,
    },
    /// The window is empty or reversed.
    #[error("the window is empty: --from {from} is not before --to {to}")]
    EmptyWindow {
        /// Start given.
        from: String,
        /// End given.
        to: String,
    },
}

/// Reads an `.ics` file and returns the occurrences overlapping `[from, to)` (RFC 3339 bounds)
/// and the problems met while reading it. This is `visio-roomctl calendar occurrences`.
pub fn occurrences_in_file(
    path: &Path,
    from: &str,
    to: &str,
    opts: &ExpandOptions,
) -> Result<(Vec<Occurrence>, Vec<ParseProblem>), ScheduleError> {
    let from_t = parse_instant(from).ok_or_else(|| ScheduleError::BadTime {
        which: "--from",
        value: from.to_owned(),
    })?;
    let to_t = parse_instant(to).ok_or_else(|| ScheduleError::BadTime {
        which: "--to",
        value: to.to_owned(),
    })?;
    if from_t >= to_t {
        return Err(ScheduleError::EmptyWindow {
            from: from.to_owned(),
            to: to.to_owned(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ScheduleError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    // Calendars are UTF-8; a stray Latin-1 byte must not lose the file.
    let text = String::from_utf8_lossy(&bytes);
    let set = occurrences(&text, from_t, to_t, opts);
    if !set.errors.is_empty() {
        tracing::warn!(
            file = %path.display(),
            problems = set.errors.len(),
            "parts of the calendar were skipped"
        );
    }
    Ok((set.occurrences, set.errors))
}

//! `[room]`: the room itself.

use super::keys::{checked, section, Flag};

section! {
    /// `[room]`: the room itself.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RoomConfig in "room" {
        /// The name shown to other participants.
        name: String = "Visio Room".into()
            => checked("the room's name, 1 to 64 printable characters", room_name),
        /// Whether each meeting starts with the microphone muted.
        join_muted: bool = false => Flag,
        /// Which log lines `visio-roomd` writes, as `RUST_LOG` directives (`LEVEL` or
        /// `TARGET=LEVEL`, comma-separated); empty: our crates at `info`, the others at `warn`.
        /// `RUST_LOG`, when set, wins.
        log_filter: String = String::new()
            => checked("log directives such as \"info\" or \"warn,visio_roomd=debug\"", log_filter),
    }
}

/// `LEVEL` or `TARGET=LEVEL` directives, comma-separated (the `RUST_LOG` syntax without spans).
fn log_filter(filter: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let filter = filter.trim();
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None if LEVELS.contains(&directive.to_ascii_lowercase().as_str()) => (None, directive),
            None => (Some(directive), "trace"),
        };
        let target_ok = target.is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
        });
        if !target_ok || !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "expected log directives such as \"info\" or \"warn,visio_roomd=debug\" \
                 (LEVEL or TARGET=LEVEL, levels trace, debug, info, warn, error, off), got {directive:?}"
            ));
        }
    }
    Ok(filter.to_owned())
}

/// The name, without the spaces around it.
fn room_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("expected the room's name, 1 to 64 printable characters".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn log_filter_takes_rust_log_directives_and_names_a_bad_one() {
        for good in [
            "",
            "info",
            "warn,visio_roomd=debug",
            " webrtc_ice=off , info ",
        ] {
            assert!(log_filter(good).is_ok(), "{good:?}");
        }
        for bad in ["visio_roomd=loud", "=info", "web rtc=warn"] {
            let e = log_filter(bad).unwrap_err();
            assert!(e.contains("LEVEL or TARGET=LEVEL"), "{bad:?}: {e}");
        }
    }
}

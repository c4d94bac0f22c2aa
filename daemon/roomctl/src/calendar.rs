//! `visio-roomctl calendar`: the room's calendar as the daemon plans it (`next`), and what a
//! given `.ics` file would make the room do (`occurrences`, offline, without the daemon).

use std::path::Path;

use visio_room_bus::NextMeeting;
use visio_room_core::config::Config;
use visio_room_schedule::{occurrences_in_file, zone, ExpandOptions};

/// `calendar occurrences`: prints the occurrences of `ics` overlapping `[from, to)`.
pub fn occurrences(
    ics: &Path,
    from: &str,
    to: &str,
    json: bool,
    zone_name: Option<&str>,
    room_address: Option<String>,
    config: Option<&Path>,
) -> Result<(), String> {
    let (config, _) = Config::load_or_default(config).map_err(|e| e.to_string())?;
    let local_zone = match zone_name {
        Some(name) => zone::iana_or_windows(name).ok_or_else(|| {
            format!("--zone {name:?} is not a time zone (use an IANA name such as Europe/Paris)")
        })?,
        None => zone::system_zone(),
    };
    let options = ExpandOptions {
        local_zone,
        room_address,
        allowed_hosts: config.visio.allow_list(),
    };
    let (occurrences, problems) =
        occurrences_in_file(ics, from, to, &options).map_err(|e| e.to_string())?;
    for problem in &problems {
        eprintln!(
            "visio-roomctl: {}:{}: {}{}: {}",
            ics.display(),
            problem.line,
            problem.component,
            problem
                .uid
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default(),
            problem.message
        );
    }
    for o in &occurrences {
        if json {
            println!("{}", serde_json::to_string(o).map_err(|e| e.to_string())?);
        } else {
            println!(
                "{} – {}  {:<9}  {}  {}",
                o.start,
                o.end,
                serde_json::to_value(o.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                o.summary.as_deref().unwrap_or("(no title)"),
                o.meeting_url.as_deref().unwrap_or("(no meeting link)")
            );
        }
    }
    Ok(())
}

/// `calendar next`: prints the daemon's `NextMeetings`.
pub fn print_next(next: &[NextMeeting], json: bool) {
    if json {
        let list: Vec<_> = next
            .iter()
            .map(|m| {
                serde_json::json!({
                    "summary": m.summary, "start": m.start, "end": m.end,
                    "url": m.url, "auto_join": m.auto_join,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    if next.is_empty() {
        println!("No upcoming meetings.");
    }
    let zone = zone::system_zone();
    let local = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.with_timezone(&zone).format("%a %d %b %H:%M").to_string())
            .unwrap_or_else(|| t.to_string())
    };
    for m in next {
        println!(
            "{} – {}  {}  {}{}",
            local(m.start),
            local(m.end),
            if m.summary.is_empty() {
                "(private)"
            } else {
                &m.summary
            },
            if m.url.is_empty() {
                "(no meeting link)"
            } else {
                &m.url
            },
            if m.auto_join {
                "  [joins automatically]"
            } else {
                ""
            }
        );
    }
}

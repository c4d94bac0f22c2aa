//! `visio-roomctl calendar occurrences`: an operator checks what a calendar makes the room do,
//! offline, without the daemon.

use std::process::Command;

const ICS: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:weekly-standup\r
DTSTAMP:20261101T000000Z\r
DTSTART;TZID=Europe/Paris:20261102T093000\r
DTEND;TZID=Europe/Paris:20261102T100000\r
RRULE:FREQ=WEEKLY;COUNT=4\r
EXDATE;TZID=Europe/Paris:20261109T093000\r
SUMMARY:Point d'équipe\r
URL:https://visio.numerique.gouv.fr/ABC-DEFG-HIJ\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:weekly-standup\r
DTSTAMP:20261101T000000Z\r
RECURRENCE-ID;TZID=Europe/Paris:20261116T093000\r
DTSTART;TZID=Europe/Paris:20261116T093000\r
DTEND;TZID=Europe/Paris:20261116T100000\r
STATUS:CANCELLED\r
SUMMARY:Point d'équipe\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:broken\r
DTSTART:not-a-date\r
SUMMARY:Broken\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:elsewhere\r
DTSTAMP:20261101T000000Z\r
DTSTART:20261103T130000Z\r
DTEND:20261103T140000Z\r
SUMMARY:Other service\r
LOCATION:https://meet.example.com/abc-defg-hij\r
END:VEVENT\r
END:VCALENDAR\r
";

#[test]
fn occurrences_of_a_room_calendar_are_printed_as_json_lines_sorted_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("room.ics");
    std::fs::write(&ics, ICS).unwrap();
    // An empty configuration: the default allow-list (visio.numerique.gouv.fr).
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_visio-roomctl"))
        .args([
            "calendar",
            "occurrences",
            "--json",
            "--zone",
            "Europe/Paris",
        ])
        .arg("--ics")
        .arg(&ics)
        .arg("--config")
        .arg(&config)
        .args([
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-12-01T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String)> = lines
        .iter()
        .map(|o| {
            (
                o["start"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("2026-11-02T08:30:00Z".to_owned(), "confirmed".to_owned()),
            ("2026-11-03T13:00:00Z".to_owned(), "confirmed".to_owned()),
            // 2026-11-09 is removed by EXDATE: not printed.
            ("2026-11-16T08:30:00Z".to_owned(), "cancelled".to_owned()),
            ("2026-11-23T08:30:00Z".to_owned(), "confirmed".to_owned()),
        ]
    );
    let first = &lines[0];
    assert_eq!(first["uid"], "weekly-standup");
    assert_eq!(first["recurrence_id"], "2026-11-02T08:30:00Z");
    assert_eq!(first["end"], "2026-11-02T09:00:00Z");
    assert_eq!(first["all_day"], false);
    assert_eq!(first["summary"], "Point d'équipe");
    assert_eq!(
        first["meeting_url"],
        "https://visio.numerique.gouv.fr/abc-defg-hij"
    );
    // A link to a host that is not allowed is not a meeting link for this room.
    assert!(lines[1]["meeting_url"].is_null());
    // The broken event is reported on stderr, and costs only itself.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken"), "{stderr}");
}

#[test]
fn a_bad_window_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_visio-roomctl"))
        .args(["calendar", "occurrences", "--ics", "/nonexistent.ics"])
        .args(["--from", "yesterday", "--to", "2026-12-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--from"), "{stderr}");
}

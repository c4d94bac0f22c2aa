//! Meetings that start in a DST gap or fold keep the length of their series (issue 11).
//!
//! Paris springs forward on 2027-03-28 (02:00 → 03:00) and falls back on 2027-10-31
//! (03:00 → 02:00). Each scenario is checked with the zone named three ways: an IANA name, a
//! Windows name (Outlook without a VTIMEZONE), and a name the calendar defines itself.

use chrono::{DateTime, TimeDelta, Utc};
use visio_room_schedule::{occurrences, parse_instant, ExpandOptions, OccurrenceSet};

fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s).unwrap()
}

/// Paris (EU rules) as its own VTIMEZONE, under a name no database knows.
const LYON_OFFICE: &str = concat!(
    "BEGIN:VTIMEZONE\r\nTZID:Bureau Lyon\r\n",
    "BEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n",
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n",
    "BEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n",
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n",
    "END:VTIMEZONE\r\n",
);

/// (TZID, VTIMEZONE block the calendar needs for it).
const PARIS_NAMES: [(&str, &str); 3] = [
    ("Europe/Paris", ""),
    ("Romance Standard Time", ""),
    ("Bureau Lyon", LYON_OFFICE),
];

/// The occurrences of `events` (with `{TZID}` standing for the zone's name) in each naming of
/// the Paris zone, over 2027.
fn in_each_paris_name(events: &str) -> Vec<(&'static str, OccurrenceSet)> {
    PARIS_NAMES
        .iter()
        .map(|(tzid, vtimezone)| {
            let ics = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{vtimezone}{}END:VCALENDAR\r\n",
                events.replace("{TZID}", tzid)
            );
            let set = occurrences(
                &ics,
                t("2027-01-01T00:00:00Z"),
                t("2028-01-01T00:00:00Z"),
                &ExpandOptions {
                    local_zone: chrono_tz::Europe::Paris,
                    ..ExpandOptions::default()
                },
            );
            assert!(set.errors.is_empty(), "{tzid}: {:?}", set.errors);
            (*tzid, set)
        })
        .collect()
}

/// (start, end) of each occurrence, checking every one lasts `minutes` and never ends before it
/// starts.
fn spans(tzid: &str, set: &OccurrenceSet, minutes: i64) -> Vec<(String, String)> {
    set.occurrences
        .iter()
        .map(|o| {
            assert_eq!(
                o.end_utc - o.start_utc,
                TimeDelta::minutes(minutes),
                "{tzid}: {} → {} does not last {minutes} minutes",
                o.start,
                o.end
            );
            (o.start.clone(), o.end.clone())
        })
        .collect()
}

fn span(start: &str, end: &str) -> (String, String) {
    (start.to_owned(), end.to_owned())
}

#[test]
fn weekly_meeting_whose_instance_falls_in_the_spring_gap_keeps_its_45_minutes() {
    let events = "BEGIN:VEVENT\r\nUID:nightly-check\r\nDTSTART;TZID={TZID}:20270321T023000\r\n\
                  DTEND;TZID={TZID}:20270321T031500\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\n";
    for (tzid, set) in in_each_paris_name(events) {
        assert_eq!(
            spans(tzid, &set, 45),
            [
                span("2027-03-21T01:30:00Z", "2027-03-21T02:15:00Z"),
                // 02:30 does not exist: read with the offset before the gap (03:30 CEST).
                span("2027-03-28T01:30:00Z", "2027-03-28T02:15:00Z"),
                span("2027-04-04T00:30:00Z", "2027-04-04T01:15:00Z"),
            ],
            "{tzid}"
        );
    }
}

#[test]
fn weekly_meeting_whose_instance_falls_in_the_autumn_fold_keeps_its_45_minutes() {
    let events = "BEGIN:VEVENT\r\nUID:nightly-check\r\nDTSTART;TZID={TZID}:20271024T023000\r\n\
                  DTEND;TZID={TZID}:20271024T031500\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\n";
    for (tzid, set) in in_each_paris_name(events) {
        assert_eq!(
            spans(tzid, &set, 45),
            [
                span("2027-10-24T00:30:00Z", "2027-10-24T01:15:00Z"),
                // 02:30 happens twice: the first one (CEST).
                span("2027-10-31T00:30:00Z", "2027-10-31T01:15:00Z"),
                span("2027-11-07T01:30:00Z", "2027-11-07T02:15:00Z"),
            ],
            "{tzid}"
        );
    }
}

#[test]
fn single_meeting_starting_in_the_spring_gap_lasts_its_45_minutes() {
    // Once with DTEND (written on a clock without the gap), once with DURATION.
    let events = concat!(
        "BEGIN:VEVENT\r\nUID:with-end\r\nDTSTART;TZID={TZID}:20270328T023000\r\n",
        "DTEND;TZID={TZID}:20270328T031500\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:with-duration\r\nDTSTART;TZID={TZID}:20270328T023000\r\n",
        "DURATION:PT45M\r\nEND:VEVENT\r\n",
    );
    for (tzid, set) in in_each_paris_name(events) {
        assert_eq!(
            spans(tzid, &set, 45),
            [
                span("2027-03-28T01:30:00Z", "2027-03-28T02:15:00Z"),
                span("2027-03-28T01:30:00Z", "2027-03-28T02:15:00Z"),
            ],
            "{tzid}"
        );
    }
}

#[test]
fn single_meeting_starting_in_the_autumn_fold_lasts_its_45_minutes() {
    let events = concat!(
        "BEGIN:VEVENT\r\nUID:with-end\r\nDTSTART;TZID={TZID}:20271031T023000\r\n",
        "DTEND;TZID={TZID}:20271031T031500\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:with-duration\r\nDTSTART;TZID={TZID}:20271031T023000\r\n",
        "DURATION:PT45M\r\nEND:VEVENT\r\n",
    );
    for (tzid, set) in in_each_paris_name(events) {
        assert_eq!(
            spans(tzid, &set, 45),
            [
                span("2027-10-31T00:30:00Z", "2027-10-31T01:15:00Z"),
                span("2027-10-31T00:30:00Z", "2027-10-31T01:15:00Z"),
            ],
            "{tzid}"
        );
    }
}

#[test]
fn overnight_series_first_crossing_the_change_keeps_that_exact_length() {
    // The first night loses an hour: 23:00 → 04:00 is 4 h, and so is every later night
    // (RFC 5545 §3.8.5.3: a DTEND series has one exact duration).
    let events = "BEGIN:VEVENT\r\nUID:backup\r\nDTSTART;TZID={TZID}:20270327T230000\r\n\
                  DTEND;TZID={TZID}:20270328T040000\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\nEND:VEVENT\r\n";
    for (tzid, set) in in_each_paris_name(events) {
        assert_eq!(
            spans(tzid, &set, 240),
            [
                span("2027-03-27T22:00:00Z", "2027-03-28T02:00:00Z"),
                span("2027-04-03T21:00:00Z", "2027-04-04T01:00:00Z"),
            ],
            "{tzid}"
        );
    }
}

#[test]
fn duration_days_follow_the_calendar_and_hours_the_clock() {
    // RFC 5545 §3.3.6: P1D ends at the same local time the next day (23 h on the change
    // night); PT24H is 24 exact hours.
    let events = concat!(
        "BEGIN:VEVENT\r\nUID:one-day\r\nDTSTART;TZID={TZID}:20270327T100000\r\n",
        "DURATION:P1D\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:twenty-four-hours\r\nDTSTART;TZID={TZID}:20270327T100000\r\n",
        "DURATION:PT24H\r\nEND:VEVENT\r\n",
    );
    for (tzid, set) in in_each_paris_name(events) {
        let got: Vec<(&str, &str, &str)> = set
            .occurrences
            .iter()
            .map(|o| (o.uid.as_str(), o.start.as_str(), o.end.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("one-day", "2027-03-27T09:00:00Z", "2027-03-28T08:00:00Z"),
                (
                    "twenty-four-hours",
                    "2027-03-27T09:00:00Z",
                    "2027-03-28T09:00:00Z"
                ),
            ],
            "{tzid}"
        );
    }
}

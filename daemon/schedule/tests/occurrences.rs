//! What a room sees in its calendar: occurrences of real-world-shaped invites.

use chrono::{DateTime, Utc};
use visio_room_core::meeting_url::AllowedHosts;
use visio_room_schedule::{occurrences, parse_instant, ExpandOptions, Occurrence, Status};

fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s).unwrap()
}

fn opts() -> ExpandOptions {
    ExpandOptions {
        local_zone: chrono_tz::Europe::Paris,
        room_address: Some("salle-rhone@example.org".into()),
        allowed_hosts: AllowedHosts::parse(&["visio.numerique.gouv.fr"]).unwrap(),
    }
}

fn cal(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n")
}

fn starts(occ: &[Occurrence]) -> Vec<&str> {
    occ.iter().map(|o| o.start.as_str()).collect()
}

#[test]
fn weekly_meeting_stays_at_nine_local_across_the_dst_change() {
    let ics = cal("BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART;TZID=Europe/Paris:20240321T090000\r\nDTEND;TZID=Europe/Paris:20240321T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Point hebdo\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2024-03-01T00:00:00Z"),
        t("2024-05-01T00:00:00Z"),
        &opts(),
    );
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(
        starts(&set.occurrences),
        [
            "2024-03-21T08:00:00Z",
            "2024-03-28T08:00:00Z",
            "2024-04-04T07:00:00Z"
        ]
    );
    assert_eq!(set.occurrences[2].end, "2024-04-04T08:00:00Z");
    assert_eq!(
        set.occurrences[0].recurrence_id.as_deref(),
        Some("2024-03-21T08:00:00Z")
    );
}

#[test]
fn outlook_windows_zone_names_are_understood() {
    let ics = cal("BEGIN:VEVENT\r\nUID:outlook\r\nDTSTART;TZID=W. Europe Standard Time:20240704T140000\r\nDTEND;TZID=W. Europe Standard Time:20240704T150000\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2024-07-01T00:00:00Z"),
        t("2024-08-01T00:00:00Z"),
        &opts(),
    );
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(starts(&set.occurrences), ["2024-07-04T12:00:00Z"]);
    assert_eq!(set.occurrences[0].recurrence_id, None);
}

#[test]
fn excluded_moved_and_cancelled_instances() {
    let ics = cal(concat!(
        "BEGIN:VEVENT\r\nUID:daily\r\nDTSTART:20240506T080000Z\r\nDURATION:PT30M\r\n",
        "RRULE:FREQ=DAILY;COUNT=5\r\nEXDATE:20240507T080000Z\r\nSUMMARY:Stand-up\r\nEND:VEVENT\r\n",
        // Wednesday moved to the afternoon.
        "BEGIN:VEVENT\r\nUID:daily\r\nRECURRENCE-ID:20240508T080000Z\r\nDTSTART:20240508T140000Z\r\n",
        "DTEND:20240508T143000Z\r\nSUMMARY:Stand-up (moved)\r\nEND:VEVENT\r\n",
        // Thursday cancelled.
        "BEGIN:VEVENT\r\nUID:daily\r\nRECURRENCE-ID:20240509T080000Z\r\nDTSTART:20240509T080000Z\r\n",
        "DTEND:20240509T083000Z\r\nSTATUS:CANCELLED\r\nSUMMARY:Stand-up\r\nEND:VEVENT\r\n",
    ));
    let set = occurrences(
        &ics,
        t("2024-05-01T00:00:00Z"),
        t("2024-06-01T00:00:00Z"),
        &opts(),
    );
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let got: Vec<(&str, Status)> = set
        .occurrences
        .iter()
        .map(|o| (o.start.as_str(), o.status))
        .collect();
    assert_eq!(
        got,
        [
            ("2024-05-06T08:00:00Z", Status::Confirmed),
            ("2024-05-08T14:00:00Z", Status::Confirmed),
            ("2024-05-09T08:00:00Z", Status::Cancelled),
            ("2024-05-10T08:00:00Z", Status::Confirmed),
        ]
    );
    assert_eq!(
        set.occurrences[1].recurrence_id.as_deref(),
        Some("2024-05-08T08:00:00Z")
    );
    assert_eq!(
        set.occurrences[1].summary.as_deref(),
        Some("Stand-up (moved)")
    );
}

#[test]
fn this_and_future_moves_the_rest_of_the_series() {
    let ics = cal(concat!(
        "BEGIN:VEVENT\r\nUID:w\r\nDTSTART:20240603T090000Z\r\nDTEND:20240603T100000Z\r\n",
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Old\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20240617T090000Z\r\n",
        "DTSTART:20240617T130000Z\r\nDTEND:20240617T133000Z\r\nSUMMARY:New\r\nEND:VEVENT\r\n",
    ));
    let set = occurrences(
        &ics,
        t("2024-06-01T00:00:00Z"),
        t("2024-07-01T00:00:00Z"),
        &opts(),
    );
    let got: Vec<(&str, &str, &str)> = set
        .occurrences
        .iter()
        .map(|o| {
            (
                o.start.as_str(),
                o.end.as_str(),
                o.summary.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2024-06-03T09:00:00Z", "2024-06-03T10:00:00Z", "Old"),
            ("2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z", "Old"),
            ("2024-06-17T13:00:00Z", "2024-06-17T13:30:00Z", "New"),
            ("2024-06-24T13:00:00Z", "2024-06-24T13:30:00Z", "New"),
        ]
    );
}

#[test]
fn a_cancelled_series_is_shown_cancelled_and_a_declined_one_too() {
    let ics = cal(concat!(
        "BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20240603T090000Z\r\nDTEND:20240603T100000Z\r\n",
        "RRULE:FREQ=DAILY;COUNT=2\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:d\r\nDTSTART:20240603T110000Z\r\nDTEND:20240603T120000Z\r\n",
        "ATTENDEE;CN=Salle Rhône;CUTYPE=ROOM;PARTSTAT=DECLINED:mailto:Salle-Rhone@example.org\r\n",
        "STATUS:CONFIRMED\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:e\r\nDTSTART:20240603T130000Z\r\nDTEND:20240603T140000Z\r\n",
        "STATUS:TENTATIVE\r\nEND:VEVENT\r\n",
    ));
    let set = occurrences(
        &ics,
        t("2024-06-01T00:00:00Z"),
        t("2024-07-01T00:00:00Z"),
        &opts(),
    );
    let got: Vec<(&str, Status, bool)> = set
        .occurrences
        .iter()
        .map(|o| (o.uid.as_str(), o.status, o.declined))
        .collect();
    assert_eq!(
        got,
        [
            ("c", Status::Cancelled, false),
            ("d", Status::Cancelled, true),
            ("e", Status::Tentative, false),
            ("c", Status::Cancelled, false),
        ]
    );
}

#[test]
fn private_meetings_are_shown_without_details_but_can_still_be_joined() {
    let ics = cal("BEGIN:VEVENT\r\nUID:p\r\nDTSTART:20240603T090000Z\r\nDTEND:20240603T100000Z\r\nCLASS:PRIVATE\r\nSUMMARY:Entretien annuel\r\nURL:https://visio.numerique.gouv.fr/abc-defg-hij\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2024-06-01T00:00:00Z"),
        t("2024-07-01T00:00:00Z"),
        &opts(),
    );
    let o = &set.occurrences[0];
    assert_eq!(o.summary.as_deref(), Some("Private meeting"));
    assert!(o.private);
    assert_eq!(
        o.meeting_url.as_deref(),
        Some("https://visio.numerique.gouv.fr/abc-defg-hij")
    );
}

#[test]
fn all_day_and_floating_events_are_in_the_rooms_zone() {
    let ics = cal(concat!(
        "BEGIN:VEVENT\r\nUID:holiday\r\nDTSTART;VALUE=DATE:20240715\r\nDTEND;VALUE=DATE:20240716\r\nSUMMARY:Fermé\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:float\r\nDTSTART:20240716T090000\r\nDTEND:20240716T093000\r\nEND:VEVENT\r\n",
    ));
    let set = occurrences(
        &ics,
        t("2024-07-14T22:00:00Z"),
        t("2024-07-17T00:00:00Z"),
        &opts(),
    );
    let o = &set.occurrences;
    assert_eq!(
        (o[0].start.as_str(), o[0].end.as_str(), o[0].all_day),
        ("2024-07-15", "2024-07-16", true)
    );
    assert_eq!(o[0].start_utc, t("2024-07-14T22:00:00Z"));
    assert_eq!(o[1].start, "2024-07-16T07:00:00Z");
    assert!(o[1].floating);
}

#[test]
fn a_broken_event_costs_only_itself() {
    let ics = cal(concat!(
        "BEGIN:VEVENT\r\nUID:no-start\r\nSUMMARY:lost\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:bad-start\r\nDTSTART:2024-13-45\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:unterminated\r\nDTSTART:20240603T090000Z\r\n",
        "BEGIN:VEVENT\r\nUID:good\r\nDTSTART:20240603T100000Z\r\nRRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\n",
    ));
    let set = occurrences(
        &ics,
        t("2024-06-01T00:00:00Z"),
        t("2024-07-01T00:00:00Z"),
        &opts(),
    );
    assert_eq!(starts(&set.occurrences), ["2024-06-03T10:00:00Z"]);
    let uids: Vec<&str> = set.errors.iter().filter_map(|e| e.uid.as_deref()).collect();
    for uid in ["no-start", "bad-start", "unterminated", "good"] {
        assert!(
            uids.contains(&uid),
            "{uid} not reported in {:?}",
            set.errors
        );
    }
}

#[test]
fn json_is_the_shape_roomctl_prints() {
    let ics = cal("BEGIN:VEVENT\r\nUID:j\r\nDTSTART:20240603T090000Z\r\nDTEND:20240603T100000Z\r\nSUMMARY:Comité\r\nDESCRIPTION:Rejoindre : https://visio.numerique.gouv.fr/ABCDEFGHIJ\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2024-06-01T00:00:00Z"),
        t("2024-07-01T00:00:00Z"),
        &opts(),
    );
    let json = serde_json::to_value(&set.occurrences[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "uid": "j",
            "recurrence_id": null,
            "start": "2024-06-03T09:00:00Z",
            "end": "2024-06-03T10:00:00Z",
            "all_day": false,
            "summary": "Comité",
            "status": "confirmed",
            "meeting_url": "https://visio.numerique.gouv.fr/abc-defg-hij"
        })
    );
}

#[test]
fn instances_outside_the_window_are_not_returned_but_count_for_count() {
    let ics = cal("BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20200106T090000Z\r\nDTEND:20200106T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2020-03-01T00:00:00Z"),
        t("2021-01-01T00:00:00Z"),
        &opts(),
    );
    assert_eq!(
        starts(&set.occurrences),
        ["2020-03-02T09:00:00Z", "2020-03-09T09:00:00Z"]
    );
}

#[test]
fn gap_times_move_forward_as_rfc5545_says() {
    let ics = cal("BEGIN:VEVENT\r\nUID:gap\r\nDTSTART;TZID=Europe/Paris:20240330T023000\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=2\r\nEND:VEVENT\r\n");
    let set = occurrences(
        &ics,
        t("2024-03-29T00:00:00Z"),
        t("2024-04-02T00:00:00Z"),
        &opts(),
    );
    // 03-31 02:30 does not exist in Paris: it is read with the offset before the gap (+01:00).
    assert_eq!(
        starts(&set.occurrences),
        ["2024-03-30T01:30:00Z", "2024-03-31T01:30:00Z"]
    );
}

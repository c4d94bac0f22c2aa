//! Calendars from servers the room does not control: any mixture of valid and broken lines
//! is read without panicking, in bounded time, and gives well-formed occurrences.

use proptest::prelude::*;
use visio_room_schedule::{occurrences, parse_instant, ExpandOptions};

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "BEGIN:VCALENDAR",
            "END:VCALENDAR",
            "BEGIN:VEVENT",
            "END:VEVENT",
            "BEGIN:VTIMEZONE",
            "END:VTIMEZONE",
            "BEGIN:STANDARD",
            "END:STANDARD",
            "BEGIN:DAYLIGHT",
            "END:DAYLIGHT",
            "TZID:Z1",
            "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200",
            "UID:a",
            "UID:b",
            "STATUS:CANCELLED",
            "CLASS:PRIVATE",
            "RECURRENCE-ID;RANGE=THISANDFUTURE:20250101T090000Z",
            "DURATION:P99999999W",
            "DURATION:-PT1H",
            "DTEND;VALUE=DATE:99991231",
            "garbage",
            " folded continuation",
            "RDATE;VALUE=PERIOD:20250101T100000Z/PT1H,bad",
        ])
        .prop_map(str::to_owned),
        (
            prop::sample::select(vec!["DTSTART", "DTEND", "EXDATE", "RECURRENCE-ID", "RDATE"]),
            prop::sample::select(vec![
                "",
                ";TZID=Europe/Paris",
                ";TZID=Z1",
                ";TZID=Nowhere",
                ";VALUE=DATE",
                ";TZID=W. Europe Standard Time"
            ]),
            0u32..10000,
            1u32..13,
            1u32..32,
            0u32..25,
            any::<bool>()
        )
            .prop_map(|(n, p, y, mo, d, h, z)| format!(
                "{n}{p}:{y:04}{mo:02}{d:02}T{h:02}0000{}",
                if z { "Z" } else { "" }
            )),
        (
            prop::sample::select(vec![
                "SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY", "X"
            ]),
            prop::collection::vec(
                prop::sample::select(vec![
                    "COUNT=3",
                    "COUNT=0",
                    "INTERVAL=0",
                    "INTERVAL=1000",
                    "UNTIL=20250301",
                    "UNTIL=20240101T000000Z",
                    "BYDAY=-1SU",
                    "BYDAY=MO,53FR",
                    "BYMONTHDAY=31,-1",
                    "BYMONTH=2",
                    "BYMONTHDAY=30",
                    "BYSETPOS=-1,366",
                    "BYWEEKNO=-53,1",
                    "BYYEARDAY=366,-1",
                    "BYHOUR=25,9",
                    "BYMINUTE=0,59",
                    "BYSECOND=60",
                    "WKST=SU",
                    "RSCALE=CHINESE",
                ]),
                0..5
            )
        )
            .prop_map(|(f, parts)| format!("RRULE:FREQ={f};{}", parts.join(";"))),
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_mixture_of_lines_is_read_without_panic(lines in prop::collection::vec(line(), 0..40)) {
        let text = format!("BEGIN:VCALENDAR\r\n{}\r\n", lines.join("\r\n"));
        let started = std::time::Instant::now();
        let set = occurrences(
            &text,
            parse_instant("2024-06-01").unwrap(),
            parse_instant("2025-06-01").unwrap(),
            &ExpandOptions::default(),
        );
        prop_assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());
        for w in set.occurrences.windows(2) {
            prop_assert!(w[0].start_utc <= w[1].start_utc, "not sorted by start");
        }
        for o in &set.occurrences {
            prop_assert!(o.start_utc <= o.end_utc);
        }
    }
}

//! Benchmark: parse and expand one year of a busy room calendar, side by side with the Python
//! reference `recurring-ical-events` on the same file in the same run.
//!
//! Run: `cargo bench -p visio-room-schedule --bench year_of_room` (needs the venv made by
//! `scripts/deps.d/schedule.sh`). The calendar is generated (deterministically) into
//! `hw-tests/.work/calendar-bench/busy-room.ics`: thousands of single meetings, hundreds of
//! recurring series with exceptions and moved instances, in several time zones (IANA names, a
//! Windows name with its VTIMEZONE, UTC).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use visio_room_schedule::{occurrences, parse_instant, ExpandOptions};

/// Small deterministic generator (64-bit LCG), so every run benchmarks the same file.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "W. Europe Standard Time",
    "UTC",
];

const WINDOWS_VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

fn dt_prop(name: &str, zone: &str, stamp: &str) -> String {
    if zone == "UTC" {
        format!("{name}:{stamp}Z\r\n")
    } else {
        format!("{name};TZID={zone}:{stamp}\r\n")
    }
}

/// A year (2025) of a busy room: ~4000 single meetings and ~400 series.
fn busy_room_calendar() -> String {
    let mut rng = Lcg(0x5eed);
    let mut ics =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//visio-room//bench//EN\r\n");
    ics.push_str(WINDOWS_VTIMEZONE);
    let day = |n: u64| {
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::TimeDelta::days(n as i64)
    };
    for i in 0..4000 {
        let d = day(rng.next(365));
        let h = 7 + rng.next(11);
        let m = [0, 15, 30, 45][rng.next(4) as usize];
        let len = [15, 30, 45, 60, 90, 120][rng.next(6) as usize];
        let zone = ZONES[rng.next(ZONES.len() as u64) as usize];
        let start = d.and_hms_opt(h as u32, m, 0).unwrap();
        let end = start + chrono::TimeDelta::minutes(len);
        let _ = write!(
            ics,
            "BEGIN:VEVENT\r\nUID:single-{i}@bench\r\nDTSTAMP:20241201T000000Z\r\n{}{}SUMMARY:Meeting {i}\r\n\
             DESCRIPTION:Rejoindre : https://visio.numerique.gouv.fr/abc-defg-{:03}\\nOrdre du jour\\, notes\r\n\
             LOCATION:Salle Rhône\r\nEND:VEVENT\r\n",
            dt_prop("DTSTART", zone, &start.format("%Y%m%dT%H%M%S").to_string()),
            dt_prop("DTEND", zone, &end.format("%Y%m%dT%H%M%S").to_string()),
            i % 1000
        );
    }
    let rules = [
        "FREQ=WEEKLY;BYDAY=MO,WE,FR",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU",
        "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
        "FREQ=MONTHLY;BYDAY=2TU",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=WEEKLY;COUNT=20;BYDAY=TH",
        "FREQ=DAILY;INTERVAL=3;UNTIL=20251001T000000Z",
    ];
    for i in 0..400 {
        let d = day(rng.next(300));
        let h = 8 + rng.next(9);
        let zone = ZONES[rng.next(ZONES.len() as u64) as usize];
        let start = d.and_hms_opt(h as u32, 0, 0).unwrap();
        let end = start + chrono::TimeDelta::minutes(30 + 30 * rng.next(3) as i64);
        let rule = rules[rng.next(rules.len() as u64) as usize];
        let fmt = |t: chrono::NaiveDateTime| t.format("%Y%m%dT%H%M%S").to_string();
        let _ = write!(
            ics,
            "BEGIN:VEVENT\r\nUID:series-{i}@bench\r\nDTSTAMP:20241201T000000Z\r\n{}{}RRULE:{rule}\r\n\
             SUMMARY:Series {i}\r\nURL:https://visio.numerique.gouv.fr/ser-ies{:03}-x\r\n",
            dt_prop("DTSTART", zone, &fmt(start)),
            dt_prop("DTEND", zone, &fmt(end)),
            i
        );
        // A few excluded instances (weeks later, same time of day).
        for k in 1..=rng.next(3) {
            let ex = start + chrono::TimeDelta::weeks(k as i64 * 3);
            ics.push_str(&dt_prop("EXDATE", zone, &fmt(ex)));
        }
        ics.push_str("END:VEVENT\r\n");
        // One moved instance: the DTSTART instance itself, an hour later.
        if rng.next(2) == 0 {
            let moved = start + chrono::TimeDelta::hours(1);
            let _ = write!(
                ics,
                "BEGIN:VEVENT\r\nUID:series-{i}@bench\r\nDTSTAMP:20241201T000000Z\r\n{}{}{}SUMMARY:Series {i} (moved)\r\nEND:VEVENT\r\n",
                dt_prop("RECURRENCE-ID", zone, &fmt(start)),
                dt_prop("DTSTART", zone, &fmt(moved)),
                dt_prop("DTEND", zone, &fmt(moved + (end - start))),
            );
        }
    }
    ics.push_str("END:VCALENDAR\r\n");
    ics
}

/// CPU time of this thread in ms (Linux `/proc/thread-self/schedstat`), so that a busy
/// machine does not distort the comparison; NaN elsewhere.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("hw-tests/.work/calendar-bench");
    std::fs::create_dir_all(&dir).expect("create hw-tests/.work/calendar-bench");
    let file = dir.join("busy-room.ics");
    let ics = busy_room_calendar();
    std::fs::write(&file, &ics).expect("write the benchmark calendar");
    let events = ics.matches("BEGIN:VEVENT").count();

    let from = parse_instant("2025-01-01").unwrap();
    let to = parse_instant("2026-01-01").unwrap();
    let opts = ExpandOptions {
        local_zone: chrono_tz::Europe::Paris,
        room_address: None,
        allowed_hosts: visio_room_core::meeting_url::AllowedHosts::parse(&[
            "visio.numerique.gouv.fr",
        ])
        .unwrap(),
    };
    // Warm-up, then the best of several runs (parse + expand + link extraction).
    let mut count = occurrences(&ics, from, to, &opts).occurrences.len();
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let (t0, c0) = (Instant::now(), thread_cpu_ms());
        count = occurrences(&ics, from, to, &opts).occurrences.len();
        best = best.min(t0.elapsed().as_secs_f64() * 1000.0);
        best_cpu = best_cpu.min(thread_cpu_ms() - c0);
    }

    let py = repo.join("hw-tests/.work/venv-calendar/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/rie_occurrences.py");
    let reference = if py.exists() {
        let out = Command::new(&py)
            .arg(&script)
            .env("RIE_TIMEOUT_S", "900")
            .args(["2025-01-01", "2026-01-01"])
            .arg(&file)
            .output()
            .expect("run the reference script");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str::<serde_json::Value>(line.trim())
            .ok()
            .map(|v| {
                (
                    v["seconds"].as_f64().unwrap_or(f64::NAN) * 1000.0,
                    v["cpu_seconds"].as_f64().unwrap_or(f64::NAN) * 1000.0,
                    v["occurrences"].as_array().map_or(0, Vec::len),
                    v["error"].as_str().map(str::to_owned),
                )
            })
    } else {
        None
    };

    println!(
        "busy room calendar: {events} VEVENTs, {} bytes, year 2025",
        ics.len()
    );
    println!(
        "visio-room-schedule   : {best:9.1} ms wall, {best_cpu:9.1} ms CPU  ({count} occurrences; best of 5, parse + expand + links)"
    );
    match reference {
        Some((ms, cpu, n, None)) => println!(
            "recurring-ical-events : {ms:9.1} ms wall, {cpu:9.1} ms CPU  ({n} occurrences; one run, parse + expand, timed in-process)\n\
             CPU-time ratio: {:.1}x",
            cpu / best_cpu
        ),
        Some((_, _, _, Some(e))) => println!("recurring-ical-events failed: {e}"),
        None => println!(
            "recurring-ical-events: not measured, the venv is missing ({}); run scripts/deps.d/schedule.sh",
            py.display()
        ),
    }
}

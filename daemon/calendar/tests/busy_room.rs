//! A busy room on Radicale — 1,000 meetings in the next 60 days, a tenth of them weekly
//! series — read once, then polled: what each poll costs in requests and bytes (asserted)
//! and in time (printed: `cargo nextest run -p visio-room-calendar --test busy_room
//! --no-capture`).

mod common;

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use common::*;
use visio_room_calendar::{Fetched, Source, SourceOptions, SourceSpec};
use visio_room_schedule::{occurrences, ExpandOptions};

const CAL: &str = "/room-3/busy/";
const MEETINGS: usize = 1000;

/// One VCALENDAR holding all the meetings (Radicale splits it into one resource per UID).
fn busy_calendar() -> String {
    let mut out =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//visio-room tests//EN\r\n");
    for i in 0..MEETINGS {
        let one = event(
            &format!("m{i}"),
            hours_from_now(1 + (i as i64 * 59 * 24 / MEETINGS as i64)),
            30,
            &format!("Meeting {i}"),
            None,
            (i % 10 == 0).then_some("FREQ=WEEKLY;COUNT=8"),
        );
        let body = one
            .split("BEGIN:VEVENT")
            .nth(1)
            .unwrap()
            .split("END:VEVENT")
            .next()
            .unwrap();
        out.push_str("BEGIN:VEVENT");
        out.push_str(body);
        out.push_str("END:VEVENT\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// Requests and response bytes Radicale logged since `from` (a log length).
fn traffic(log: &str, from: usize) -> (usize, usize) {
    let lines: Vec<&str> = log[from..]
        .lines()
        .filter(|l| l.contains(" response status for "))
        .collect();
    let bytes = lines
        .iter()
        .filter_map(|l| {
            l.split(" bytes")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    (lines.len(), bytes)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

#[tokio::test]
async fn a_busy_room_is_read_once_then_polled_for_changes_only() {
    init_logs();
    let server = Radicale::start();
    server.put(CAL, &busy_calendar()).await;
    let spec = SourceSpec::CalDav {
        url: server.base.clone(),
        auth: server.auth(),
    };
    let mut source = Source::new(spec.clone()).unwrap();
    let mut figures = Vec::new();

    let mark = server.log().len();
    let (first, t) = timed(source.fetch()).await;
    let texts = changed(first.unwrap());
    assert_eq!(texts.len(), MEETINGS);
    let (requests, bytes) = traffic(&server.log(), mark);
    assert_eq!(
        requests, 5,
        "discovery (3 PROPFIND), markers, one calendar-query"
    );
    figures.push((
        "first fetch: discovery + calendar-query",
        t,
        requests,
        bytes,
    ));

    let (expanded, t_expand) = {
        let start = Instant::now();
        let (from, to) = (now() - TimeDelta::days(1), now() + TimeDelta::days(60));
        let n: usize = texts
            .iter()
            .map(|t| {
                occurrences(t, from, to, &ExpandOptions::default())
                    .occurrences
                    .len()
            })
            .sum();
        (n, start.elapsed())
    };
    assert!(expanded >= MEETINGS, "{expanded}");

    let mark = server.log().len();
    let (unchanged, t) = timed(source.fetch()).await;
    assert_eq!(unchanged.unwrap(), Fetched::Unchanged);
    let (requests, bytes) = traffic(&server.log(), mark);
    assert_eq!(requests, 1, "one sync-collection report");
    figures.push((
        "poll, nothing changed (sync-collection)",
        t,
        requests,
        bytes,
    ));

    server
        .put(
            &format!("{CAL}new.ics"),
            &event("new", hours_from_now(30), 30, "Added", None, None),
        )
        .await;
    let mark = server.log().len();
    let (one, t) = timed(source.fetch()).await;
    assert_eq!(changed(one.unwrap()).len(), MEETINGS + 1);
    let (requests, bytes) = traffic(&server.log(), mark);
    assert_eq!(
        requests, 2,
        "sync-collection + a multiget of the one change"
    );
    figures.push((
        "poll, one meeting added (sync + multiget)",
        t,
        requests,
        bytes,
    ));

    let options = SourceOptions {
        sync_collection: false,
        ..SourceOptions::default()
    };
    let mut ctag = Source::with_options(spec.clone(), options).unwrap();
    changed(ctag.fetch().await.unwrap());
    let mark = server.log().len();
    let (unchanged, t) = timed(ctag.fetch()).await;
    assert_eq!(unchanged.unwrap(), Fetched::Unchanged);
    let (requests, bytes) = traffic(&server.log(), mark);
    assert_eq!(requests, 1, "one PROPFIND of the ctag");
    figures.push(("poll, nothing changed (ctag)", t, requests, bytes));

    let mut feed = Source::new(SourceSpec::Ics {
        url: server.url(CAL),
        auth: server.auth(),
    })
    .unwrap();
    let mark = server.log().len();
    let (whole, t) = timed(feed.fetch()).await;
    changed(whole.unwrap());
    let (requests, bytes) = traffic(&server.log(), mark);
    figures.push((
        "the same calendar as one ICS feed (GET)",
        t,
        requests,
        bytes,
    ));

    eprintln!(
        "\n{MEETINGS} meetings ({} of them weekly series), Radicale on loopback:",
        MEETINGS / 10
    );
    eprintln!(
        "{:<45} {:>9} {:>9} {:>11}",
        "", "wall ms", "requests", "bytes in"
    );
    for (what, t, requests, bytes) in figures {
        eprintln!(
            "{what:<45} {:>9.1} {requests:>9} {bytes:>11}",
            t.as_secs_f64() * 1e3
        );
    }
    eprintln!(
        "expanding the {MEETINGS} texts (visio-room-schedule): {expanded} occurrences in {:.1} ms",
        t_expand.as_secs_f64() * 1e3
    );
}

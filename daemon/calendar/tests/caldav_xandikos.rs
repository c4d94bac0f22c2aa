//! The same room calendar on Xandikos, a server that differs from Radicale where it matters:
//! a 302 from `/.well-known/caldav`, calendars next to address books and scheduling inboxes,
//! git commits as sync tokens, and 412 (not 403) for a sync token it does not know.

mod common;

use common::*;
use visio_room_calendar::{Auth, Fetched, Source, SourceSpec};

#[tokio::test]
async fn the_room_calendar_on_xandikos_is_discovered_synced_and_resynced_after_a_412() {
    init_logs();
    let server = Xandikos::start();
    let cal = Xandikos::CALENDAR;
    server
        .request(
            "PUT",
            &format!("{cal}a.ics"),
            Some(event("a", hours_from_now(2), 30, "Kick-off", None, None)),
        )
        .await;
    let mut source = Source::new(SourceSpec::CalDav {
        url: server.base.join("/.well-known/caldav").unwrap(),
        auth: Auth::None,
    })
    .unwrap();
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(
        source.calendars(),
        1,
        "not the address book, inbox or outbox"
    );
    assert_eq!(texts.len(), 1);
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);

    server
        .request(
            "PUT",
            &format!("{cal}b.ics"),
            Some(event("b", hours_from_now(3), 30, "Follow-up", None, None)),
        )
        .await;
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 2);
    server.request("DELETE", &format!("{cal}a.ics"), None).await;
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("Follow-up"));

    // The calendar is deleted and made again: a new history, our token is unknown (412).
    server.request("DELETE", cal, None).await;
    server.request("MKCALENDAR", cal, None).await;
    server
        .request(
            "PUT",
            &format!("{cal}c.ics"),
            Some(event("c", hours_from_now(4), 30, "Rebuilt", None, None)),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("Rebuilt"));
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    let log = server.log();
    assert!(
        log.contains("\"PROPFIND /.well-known/caldav HTTP/1.1\" 302"),
        "{log}"
    );
    assert!(
        log.contains(&format!("\"REPORT {cal} HTTP/1.1\" 412")),
        "{log}"
    );
}

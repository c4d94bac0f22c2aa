//! The room's CalDAV calendar on a real Radicale server: discovery, the first read, then
//! meetings created, moved, cancelled and deleted seen at the next poll; a refused sync token;
//! a wrong password; ctag polling; the texts feeding the schedule crate.

mod common;

use chrono::TimeDelta;
use common::*;
use visio_room_calendar::{Fetched, Source, SourceError, SourceOptions, SourceSpec};
use visio_room_schedule::{occurrences, ExpandOptions, Status};

const CAL: &str = "/room-3/meetings/";

fn caldav(url: url::Url, auth: visio_room_calendar::Auth) -> SourceSpec {
    SourceSpec::CalDav { url, auth }
}

/// Occurrences of the fetched texts in the default window, as (uid, start, status).
fn meetings(texts: &[String]) -> Vec<(String, String, Status)> {
    let from = now() - TimeDelta::days(1);
    let to = now() + TimeDelta::days(60);
    let mut out = Vec::new();
    for text in texts {
        let set = occurrences(text, from, to, &ExpandOptions::default());
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        out.extend(
            set.occurrences
                .into_iter()
                .map(|o| (o.uid, o.start, o.status)),
        );
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[tokio::test]
async fn discovers_the_room_calendar_from_the_server_root_and_follows_every_change() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server.mkcalendar_for_tasks("/room-3/tasks/").await;
    let standup = hours_from_now(3);
    server
        .put(
            &format!("{CAL}standup.ics"),
            &event(
                "standup",
                standup,
                15,
                "Stand-up",
                None,
                Some("FREQ=DAILY;COUNT=3"),
            ),
        )
        .await;
    server
        .put(
            &format!("{CAL}review.ics"),
            &event(
                "review",
                hours_from_now(26),
                60,
                "Design review",
                None,
                None,
            ),
        )
        .await;
    // Far outside the 60-day window: a full read does not bring it.
    server
        .put(
            &format!("{CAL}offsite.ics"),
            &event(
                "offsite",
                hours_from_now(24 * 200),
                60,
                "Offsite",
                None,
                None,
            ),
        )
        .await;

    let mut source = Source::new(caldav(server.base.clone(), server.auth())).unwrap();
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(
        source.calendars(),
        1,
        "the tasks-only calendar is not a meeting calendar"
    );
    assert_eq!(
        texts.len(),
        2,
        "standup and review, not the offsite: {texts:?}"
    );
    let seen = meetings(&texts);
    assert_eq!(seen.len(), 4, "three stand-ups and a review: {seen:?}");
    assert_eq!(seen.iter().filter(|m| m.0 == "standup").count(), 3);
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);

    // Created.
    let retro = hours_from_now(5);
    server
        .put(
            &format!("{CAL}retro.ics"),
            &event("retro", retro, 30, "Retro", None, None),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 3);
    assert!(meetings(&texts).iter().any(|m| m.0 == "retro"));

    // Moved by two hours.
    let moved = retro + TimeDelta::hours(2);
    server
        .put(
            &format!("{CAL}retro.ics"),
            &event("retro", moved, 30, "Retro", None, None),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    let retro_now: Vec<_> = meetings(&texts)
        .into_iter()
        .filter(|m| m.0 == "retro")
        .collect();
    assert_eq!(retro_now.len(), 1);
    assert_eq!(
        retro_now[0].1,
        moved.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );

    // Cancelled.
    server
        .put(
            &format!("{CAL}review.ics"),
            &event(
                "review",
                hours_from_now(26),
                60,
                "Design review",
                Some("CANCELLED"),
                None,
            ),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    let review: Vec<_> = meetings(&texts)
        .into_iter()
        .filter(|m| m.0 == "review")
        .collect();
    assert_eq!(review.len(), 1);
    assert_eq!(review[0].2, Status::Cancelled);

    // Deleted.
    server.delete(&format!("{CAL}retro.ics")).await;
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 2);
    assert!(!meetings(&texts).iter().any(|m| m.0 == "retro"));
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    assert_eq!(source.skipped_resources(), 0);
    // After the first full read (one PROPFIND of the markers), every poll was one
    // sync-collection report (plus a multiget when something changed).
    let log = server.log();
    assert_eq!(log.matches("(sync-token getctag)").count(), 1, "{log}");
    assert_eq!(log.matches("sync-collection): 207").count(), 6, "{log}");
}

#[tokio::test]
async fn discovers_through_well_known_caldav_and_uses_a_calendar_url_as_given() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "A", None, None),
        )
        .await;

    let well_known = server.url("/.well-known/caldav");
    let mut source = Source::new(caldav(well_known, server.auth())).unwrap();
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);
    assert_eq!(source.calendars(), 1);

    let before = server.log().matches("PROPFIND request").count();
    let mut direct = Source::new(caldav(server.url(CAL), server.auth())).unwrap();
    assert_eq!(changed(direct.fetch().await.unwrap()).len(), 1);
    let log = server.log();
    // One PROPFIND to see it is a calendar, one for its sync token: no discovery walk.
    assert_eq!(log.matches("PROPFIND request").count() - before, 2, "{log}");

    let mut wrong = Source::new(caldav(server.url("/room-3/nope/"), server.auth())).unwrap();
    let error = wrong.fetch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::NotFound { status: 404, .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&wrong.describe()) && text.contains("check the calendar URL"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_sync_token_means_a_full_resync_that_sees_the_changes() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "A", None, None),
        )
        .await;
    let mut source = Source::new(caldav(server.url(CAL), server.auth())).unwrap();
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);

    // Radicale forgets the sync states it stored: our token is no longer valid.
    let states = server.storage_of("room-3/meetings/.Radicale.cache/sync-token");
    assert!(
        states.is_dir(),
        "Radicale keeps sync tokens in {}",
        states.display()
    );
    std::fs::remove_dir_all(&states).unwrap();
    server
        .put(
            &format!("{CAL}b.ics"),
            &event("b", hours_from_now(4), 30, "B", None, None),
        )
        .await;

    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 2);
    let log = server.log();
    assert!(
        log.contains("sync-collection): 403"),
        "Radicale refused the token: {log}"
    );
    assert_eq!(
        log.matches("(sync-token getctag)").count(),
        2,
        "a second full read: {log}"
    );
    // And incremental sync goes on from the new token.
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    assert_eq!(server.log().matches("sync-collection): 207").count(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_401_naming_the_source_and_a_fixed_file_is_read_again() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    let auth = server.auth_with_password("not-the-password");
    let mut source = Source::new(caldav(server.url(CAL), auth.clone())).unwrap();
    let error = source.fetch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::Unauthorized { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&source.describe()), "{text}");
    assert!(
        text.contains("HTTP 401") && text.contains("room-3"),
        "{text}"
    );
    let visio_room_calendar::Auth::Basic { password_file, .. } = &auth else {
        unreachable!()
    };
    assert!(
        text.contains(&password_file.display().to_string()),
        "{text}"
    );
    for shown in [text.clone(), format!("{error:?}"), format!("{source:?}")] {
        assert!(
            !shown.contains("not-the-password"),
            "secret leaked: {shown}"
        );
    }

    // The password is rotated in the file: the same source now works.
    server.auth();
    assert!(changed(source.fetch().await.unwrap()).is_empty());

    // A missing password file is said as such.
    std::fs::remove_file(password_file).unwrap();
    let error = source.fetch().await.unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::SecretFile {
                what: "password",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn without_sync_collection_the_ctag_and_etags_are_polled() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "A", None, None),
        )
        .await;
    let options = SourceOptions {
        sync_collection: false,
        ..SourceOptions::default()
    };
    let mut source =
        Source::with_options(caldav(server.base.clone(), server.auth()), options).unwrap();
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);

    server
        .put(
            &format!("{CAL}b.ics"),
            &event("b", hours_from_now(3), 30, "B", None, None),
        )
        .await;
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 2);
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "A", Some("CANCELLED"), None),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    assert!(meetings(&texts)
        .iter()
        .any(|m| m.0 == "a" && m.2 == Status::Cancelled));
    server.delete(&format!("{CAL}b.ics")).await;
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    assert!(!server.log().contains("sync-collection"));
}

#[tokio::test]
async fn a_meeting_whose_resource_name_needs_escaping_stays_one_meeting() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    // Outlook-style resource names: an address and spaces. (Radicale spells such hrefs the same
    // way in every report; two spellings of one name are checked by a unit test of the key.)
    let name = format!("{CAL}040000008200E0-room%40example.org%20copy.ics");
    server
        .put(
            &name,
            &event("odd", hours_from_now(2), 30, "Odd name", None, None),
        )
        .await;
    for (round, sync_collection) in [(0, true), (1, false)] {
        let options = SourceOptions {
            sync_collection,
            ..SourceOptions::default()
        };
        let mut source =
            Source::with_options(caldav(server.url(CAL), server.auth()), options).unwrap();
        assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);
        server
            .put(
                &name,
                &event(
                    "odd",
                    hours_from_now(3 + round),
                    30,
                    "Odd name moved",
                    None,
                    None,
                ),
            )
            .await;
        let texts = changed(source.fetch().await.unwrap());
        assert_eq!(
            texts.len(),
            1,
            "the same resource, not a second one: {texts:?}"
        );
        assert!(texts[0].contains("Odd name moved"));
        assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    }
}

#[tokio::test]
async fn a_due_full_read_reports_unchanged_when_nothing_changed() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "A", None, None),
        )
        .await;
    let options = SourceOptions {
        full_resync_every: std::time::Duration::ZERO,
        ..SourceOptions::default()
    };
    let mut source = Source::with_options(caldav(server.url(CAL), server.auth()), options).unwrap();
    assert_eq!(changed(source.fetch().await.unwrap()).len(), 1);
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    server.delete(&format!("{CAL}a.ics")).await;
    assert!(changed(source.fetch().await.unwrap()).is_empty());
    let log = server.log();
    assert_eq!(
        log.matches("(sync-token getctag)").count(),
        3,
        "three full reads: {log}"
    );
    assert!(!log.contains("sync-collection"), "{log}");
}

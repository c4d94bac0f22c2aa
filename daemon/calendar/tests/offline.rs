//! A room that loses its calendar server keeps its meetings: the cache written while the
//! server answered is used after a restart, staleness and failures are reported, polls back
//! off, and the first good poll after the outage brings the changes made meanwhile.

mod common;

use std::time::Duration;

use common::*;
use visio_room_calendar::{Cache, CachedSource, PollOutcome, Source, SourceError, SourceSpec};

const CAL: &str = "/room-3/meetings/";

#[tokio::test]
async fn a_restarted_room_without_its_server_plans_from_the_cached_calendar() {
    init_logs();
    let state = tempfile::tempdir().unwrap();
    let cache = Cache::new(state.path().join("calendar"));
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "Budget", None, None),
        )
        .await;
    let spec = SourceSpec::CalDav {
        url: server.url(CAL),
        auth: server.auth(),
    };

    // First life of the daemon: nothing cached, then the server's calendar.
    let mut room = CachedSource::new(Source::new(spec.clone()).unwrap(), cache.clone());
    assert!(room.texts().is_empty() && room.fetched_at().is_none());
    assert!(matches!(room.poll().await, PollOutcome::Changed));
    assert!(matches!(room.poll().await, PollOutcome::Unchanged));
    let confirmed = room.fetched_at().unwrap();

    // The daemon restarts while the server is down.
    let mut server = server;
    server.stop();
    let mut room = CachedSource::new(Source::new(spec.clone()).unwrap(), cache.clone());
    assert_eq!(room.texts().len(), 1);
    assert!(room.texts()[0].contains("SUMMARY:Budget"));
    let cached_at = room.fetched_at().unwrap();
    let drift = cached_at
        .duration_since(confirmed)
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift < Duration::from_secs(1),
        "the cache remembers when it was confirmed"
    );

    for failures in 1..=3u32 {
        match room.poll().await {
            PollOutcome::Failed(SourceError::Unreachable { calendar, .. }) => {
                assert_eq!(calendar, room.source().describe());
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert_eq!(room.consecutive_failures(), failures);
        assert_eq!(room.texts().len(), 1, "the last good calendar stays");
    }
    assert!(room.last_error().unwrap().contains("unreachable"));
    assert_eq!(
        room.fetched_at(),
        Some(cached_at),
        "failures do not refresh the date"
    );

    // The server comes back with a meeting added meanwhile.
    server.restart();
    server
        .put(
            &format!("{CAL}b.ics"),
            &event("b", hours_from_now(4), 30, "Hiring", None, None),
        )
        .await;
    assert!(matches!(room.poll().await, PollOutcome::Changed));
    assert_eq!(room.texts().len(), 2);
    assert_eq!(room.consecutive_failures(), 0);
    assert!(room.last_error().is_none());
    assert!(room.fetched_at().unwrap() > cached_at);
    assert_eq!(
        cache.load(&spec).unwrap().texts.len(),
        2,
        "the cache follows"
    );
}

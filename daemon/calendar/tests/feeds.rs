//! ICS feeds and local files: the room's Radicale calendar read as one `.ics` (webcal), a
//! static feed behind a real web server answering 304, a sharing page that is not a feed,
//! and a local file re-read only when it changes.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use visio_room_calendar::{Auth, Fetched, Source, SourceError, SourceOptions, SourceSpec};

const CAL: &str = "/room-3/meetings/";

#[tokio::test]
async fn the_room_calendar_read_as_a_webcal_feed_is_unchanged_until_a_meeting_changes() {
    init_logs();
    let server = Radicale::start();
    server.mkcalendar(CAL).await;
    server
        .put(
            &format!("{CAL}a.ics"),
            &event("a", hours_from_now(2), 30, "Weekly sync", None, None),
        )
        .await;
    let webcal = url::Url::parse(&format!(
        "webcal://127.0.0.1:{}{CAL}",
        server.base.port().unwrap()
    ))
    .unwrap();
    let mut source = Source::new(SourceSpec::Ics {
        url: webcal,
        auth: server.auth(),
    })
    .unwrap();
    let texts = changed(source.fetch().await.unwrap());
    assert_eq!(texts.len(), 1, "a feed is one calendar text");
    assert!(texts[0].contains("SUMMARY:Weekly sync"));
    // Radicale sends the same ETag and ignores If-None-Match: same content, no change.
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);

    server
        .put(
            &format!("{CAL}b.ics"),
            &event("b", hours_from_now(3), 30, "Board", None, None),
        )
        .await;
    let texts = changed(source.fetch().await.unwrap());
    assert!(texts[0].contains("SUMMARY:Weekly sync") && texts[0].contains("SUMMARY:Board"));
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    assert!(source
        .describe()
        .starts_with("ICS feed webcal://127.0.0.1:"));
    assert!(
        !source.describe().contains("meetings"),
        "no URL path in logs"
    );
}

/// Python's static web server (from the Radicale venv) serving `dir`, logging to `log`.
struct StaticServer {
    child: Child,
    port: u16,
}

impl StaticServer {
    fn start(dir: &Path, log: &Path) -> StaticServer {
        let python = repo().join("hw-tests/.work/venv-radicale/bin/python");
        assert!(
            python.exists(),
            "the test venv is missing: run `scripts/deps.d/calendar.sh {}`",
            repo().display()
        );
        let port = free_port();
        let log_file = std::fs::File::create(log).unwrap();
        let mut child = Command::new(python)
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        wait_listening(port, &mut child, log, "python http.server");
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_static_feed_answers_304_not_modified_and_a_sharing_page_is_refused() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        site.join("room.ics"),
        event("a", hours_from_now(2), 30, "All hands", None, None),
    )
    .unwrap();
    std::fs::write(
        site.join("share.html"),
        "<!DOCTYPE html><html>Sign in</html>",
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "feed-token-123\n").unwrap();
    let log = dir.path().join("http.log");
    let server = StaticServer::start(&site, &log);

    let url = url::Url::parse(&format!("http://127.0.0.1:{}/room.ics", server.port)).unwrap();
    let mut source = Source::new(SourceSpec::Ics {
        url,
        auth: Auth::Bearer { token_file: token },
    })
    .unwrap();
    assert!(changed(source.fetch().await.unwrap())[0].contains("All hands"));
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);
    let served = std::fs::read_to_string(&log).unwrap();
    assert!(
        served.contains("\"GET /room.ics HTTP/1.1\" 200")
            && served.contains("\"GET /room.ics HTTP/1.1\" 304"),
        "a conditional GET answered 304: {served}"
    );

    let page = url::Url::parse(&format!("http://127.0.0.1:{}/share.html", server.port)).unwrap();
    let mut wrong = Source::new(SourceSpec::Ics {
        url: page,
        auth: Auth::None,
    })
    .unwrap();
    let error = wrong.fetch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::NotICalendar { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("text/html") && text.contains("not iCalendar"),
        "{text}"
    );

    let small = SourceOptions {
        body_limit: 100,
        ..SourceOptions::default()
    };
    let feed = url::Url::parse(&format!("http://127.0.0.1:{}/room.ics", server.port)).unwrap();
    let mut capped = Source::with_options(
        SourceSpec::Ics {
            url: feed,
            auth: Auth::None,
        },
        small,
    )
    .unwrap();
    let error = capped.fetch().await.unwrap_err();
    assert!(matches!(error, SourceError::TooLarge { .. }), "{error:?}");

    let missing = url::Url::parse(&format!("http://127.0.0.1:{}/gone.ics", server.port)).unwrap();
    let mut gone = Source::new(SourceSpec::Ics {
        url: missing,
        auth: Auth::None,
    })
    .unwrap();
    let error = gone.fetch().await.unwrap_err();
    assert!(error.to_string().contains("HTTP 404"), "{error}");
}

#[tokio::test]
async fn a_calendar_file_is_read_again_only_when_it_changes() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("room.ics");
    std::fs::write(&path, event("a", hours_from_now(2), 30, "A", None, None)).unwrap();
    let mut source = Source::new(SourceSpec::File { path: path.clone() }).unwrap();
    assert!(changed(source.fetch().await.unwrap())[0].contains("SUMMARY:A"));
    assert_eq!(source.fetch().await.unwrap(), Fetched::Unchanged);

    // A longer file (the size changes even if the clock's resolution hides the new mtime).
    std::fs::write(
        &path,
        event("a", hours_from_now(2), 30, "A moved", None, None),
    )
    .unwrap();
    assert!(changed(source.fetch().await.unwrap())[0].contains("SUMMARY:A moved"));

    std::fs::write(
        &path,
        "not a calendar at all, but longer than before........",
    )
    .unwrap();
    let error = source.fetch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::NotICalendar { .. }),
        "{error:?}"
    );

    std::fs::remove_file(&path).unwrap();
    let error = source.fetch().await.unwrap_err();
    assert!(matches!(error, SourceError::File { .. }), "{error:?}");
    assert!(error.to_string().contains("room.ics"), "{error}");
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out() {
    init_logs();
    // A real socket that accepts connections and then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = SourceOptions {
        request_timeout: std::time::Duration::from_millis(500),
        ..SourceOptions::default()
    };
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/room.ics")).unwrap();
    let mut source = Source::with_options(
        SourceSpec::Ics {
            url,
            auth: Auth::None,
        },
        options,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = source.fetch().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(error, SourceError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(waited < std::time::Duration::from_secs(3), "{waited:?}");
    silent.abort();
}

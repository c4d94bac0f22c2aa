//! The room follows its calendar, end to end: a real `visio-roomd` on a private bus, a real
//! Radicale CalDAV server (or a local `.ics` file), and `visio-sim` as Visio. Meetings created,
//! moved and cancelled over CalDAV show in `NextMeetings` within one polling interval; a meeting
//! starting a few seconds ahead is joined by itself and left at its end.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use visio_room_test_support::{free_port, repo_root, Bus, Daemon, RoomConfig, Sim};

/// The shortest polling interval the configuration accepts.
const POLL_S: u64 = 10;
const USER: &str = "salle-4b";
const PASSWORD: &str = "c0rrect-h0rse";

/// One event with the meeting link in `URL`, as La Suite calendars put it.
fn event(uid: &str, start: DateTime<Utc>, end: DateTime<Utc>, url: &str, status: &str) -> String {
    let t = |d: DateTime<Utc>| d.format("%Y%m%dT%H%M%SZ").to_string();
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//visio-room tests//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Réunion {uid}\r\n\
         STATUS:{status}\r\nURL:{url}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        t(Utc::now()),
        t(start),
        t(end)
    )
}

/// Whole seconds from now (calendars have second precision).
fn in_secs(secs: i64) -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now + secs, 0).unwrap()
}

fn calendar_config(sources: &str) -> String {
    // Join at the start and leave at the end (the room is alone in the meeting).
    format!(
        "[calendar]\ntime_zone = \"UTC\"\npoll_interval_s = {POLL_S}\njoin_lead_s = 0\n\
         leave_grace_s = 0\n{sources}"
    )
}

fn start_room(bus: &Bus, sim: &Sim, calendar: &str) -> Daemon {
    let config = RoomConfig::new("Salle 4B", sim.host()).with(&calendar_config(calendar));
    let state = tempfile::tempdir().unwrap().keep();
    let state = state.to_string_lossy().into_owned();
    Daemon::with_config_and_env(bus, &config, &[("STATE_DIRECTORY", &state)])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn next_meetings(status: &Value) -> &Vec<Value> {
    status["next_meetings"]
        .as_array()
        .expect("next_meetings is a list")
}

fn state(status: &Value) -> &str {
    status["state"].as_str().unwrap_or_default()
}

/// Waits for the booked meeting starting at `start` and ending at `end` to be joined by the
/// calendar, then left.
fn expect_joined_then_left(
    bus: &Bus,
    daemon: &Daemon,
    url: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    let before = (start - Utc::now()).num_milliseconds() - 1_500;
    if before > 0 {
        std::thread::sleep(Duration::from_millis(before as u64));
        let s = bus.status().unwrap();
        assert_eq!(state(&s), "idle", "not joined before the start: {s:#}");
    }
    let wait = (end - Utc::now()).num_seconds().max(1) as u64;
    let joined = bus
        .wait_status(wait, "the booked meeting joined by the calendar", |s| {
            state(s) == "in-call"
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(joined["meeting"]["url"], url, "{joined:#}");
    assert_eq!(joined["meeting"]["source"], "schedule", "{joined:#}");
    let lag = Utc::now() - start;
    assert!(lag < TimeDelta::seconds(10), "joined {lag} after the start");
    // Alone in the meeting: left at its end.
    let wait = (end - Utc::now()).num_seconds().max(0) as u64 + 10;
    let left = bus
        .wait_status(wait, "left at the end of the booked meeting", |s| {
            state(s) == "idle"
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert!(
        Utc::now() >= end - TimeDelta::seconds(1),
        "left before the end: {left:#}"
    );
}

#[test]
fn a_booked_meeting_in_a_local_file_is_joined_at_its_start_and_left_at_its_end() {
    let sim = Sim::start(&[]).unwrap();
    let bus = Bus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("room.ics");
    let url = sim.meeting_url("point-hebdomadaire");
    let (start, end) = (in_secs(8), in_secs(22));
    std::fs::write(&ics, event("file-1", start, end, &url, "CONFIRMED")).unwrap();
    let daemon = start_room(
        &bus,
        &sim,
        &format!(
            "[[calendar.sources]]\ntype = \"file\"\npath = {:?}\n",
            ics.display().to_string()
        ),
    );
    let s = bus
        .wait_status(5, "the booked meeting listed", |s| {
            !next_meetings(s).is_empty()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    let m = &next_meetings(&s)[0];
    assert_eq!(m["url"], url.as_str());
    assert_eq!(m["auto_join"], true);
    assert_eq!(m["start"], start.timestamp());
    assert_eq!(s["health"]["calendar_sources"], 1, "{s:#}");
    assert_eq!(s["health"]["calendar_stale"], false, "{s:#}");
    expect_joined_then_left(&bus, &daemon, &url, start, end);
}

/// A Radicale server on loopback with one user (htpasswd, plain) and a temporary storage.
struct Radicale {
    child: Child,
    origin: String,
    dir: tempfile::TempDir,
}

impl Radicale {
    fn start() -> Radicale {
        let python = repo_root().join("hw-tests/.work/venv-radicale/bin/python");
        assert!(
            python.exists(),
            "Radicale is not installed: run scripts/deps.d/calendar.sh (expected {})",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\n\
                 htpasswd_filename = {}\nhtpasswd_encryption = plain\ndelay = 0\n\
                 [storage]\nfilesystem_folder = {}\n[rights]\ntype = owner_only\n",
                users.display(),
                dir.path().join("collections").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("radicale.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "radicale", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start Radicale");
        let radicale = Radicale {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Radicale did not listen:\n{}",
                radicale.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        radicale
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    /// The password file the room reads (with a trailing newline, as editors write it).
    fn password_file(&self) -> PathBuf {
        let file = self.dir.path().join("room-password");
        std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
        file
    }

    /// One CalDAV request with curl (the HTTP client every Debian has), checked for 2xx.
    fn request(&self, method: &str, path: &str, body: Option<&str>) {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .args(["-u", &format!("{USER}:{PASSWORD}")]);
        if let Some(body) = body {
            curl.args([
                "-H",
                "Content-Type: text/calendar; charset=utf-8",
                "--data-binary",
                body,
            ]);
        }
        let out = curl
            .arg(format!("{}{path}", self.origin))
            .output()
            .expect("run curl");
        let code = String::from_utf8_lossy(&out.stdout);
        assert!(
            code.starts_with('2'),
            "{method} {path}: HTTP {code} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_next(bus: &Bus, daemon: &Daemon, what: &str, done: impl Fn(&[Value]) -> bool) -> Value {
    // One polling interval plus its jitter, and a margin for a loaded machine.
    let secs = POLL_S + POLL_S / 10 + 5;
    bus.wait_status(secs, what, |s| done(next_meetings(s)))
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()))
}

#[test]
fn meetings_booked_moved_and_cancelled_over_caldav_are_followed() {
    let radicale = Radicale::start();
    radicale.request("MKCALENDAR", &format!("/{USER}/salle/"), None);
    let sim = Sim::start(&[]).unwrap();
    let bus = Bus::start().unwrap();
    let password = radicale.password_file();
    let daemon = start_room(
        &bus,
        &sim,
        &format!(
            "[[calendar.sources]]\ntype = \"caldav\"\nurl = \"{}/\"\nusername = \"{USER}\"\n\
             password_file = {:?}\n",
            radicale.origin,
            password.display().to_string()
        ),
    );
    let s = bus
        .wait_status(10, "the first CalDAV sync", |s| {
            s["health"]["calendar_synced_at"].as_u64().unwrap_or(0) > 0
        })
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", daemon.log(), radicale.log()));
    assert!(next_meetings(&s).is_empty(), "{s:#}");
    assert!(
        !daemon.log().contains(PASSWORD),
        "the password is never logged"
    );

    // Booked an hour ahead: listed within one polling interval.
    let url = sim.meeting_url("comite-de-pilotage");
    let path = format!("/{USER}/salle/copil.ics");
    let (start, end) = (in_secs(3_600), in_secs(7_200));
    radicale.request(
        "PUT",
        &path,
        Some(&event("copil", start, end, &url, "CONFIRMED")),
    );
    wait_next(&bus, &daemon, "the booked meeting listed", |next| {
        next.len() == 1 && next[0]["start"] == start.timestamp()
    });

    // Moved half an hour later.
    let (start2, end2) = (start + TimeDelta::minutes(30), end + TimeDelta::minutes(30));
    radicale.request(
        "PUT",
        &path,
        Some(&event("copil", start2, end2, &url, "CONFIRMED")),
    );
    wait_next(&bus, &daemon, "the meeting moved", |next| {
        next.len() == 1 && next[0]["start"] == start2.timestamp()
    });

    // Cancelled: no longer listed.
    radicale.request(
        "PUT",
        &path,
        Some(&event("copil", start2, end2, &url, "CANCELLED")),
    );
    wait_next(&bus, &daemon, "the cancelled meeting gone", |next| {
        next.is_empty()
    });

    // Booked to start in a few seconds: joined at its start, left at its end. The start
    // leaves room for one polling interval (the room must first see it).
    let soon_url = sim.meeting_url("point-rapide");
    let (start3, end3) = (in_secs(POLL_S as i64 + 8), in_secs(POLL_S as i64 + 22));
    radicale.request(
        "PUT",
        &format!("/{USER}/salle/rapide.ics"),
        Some(&event("rapide", start3, end3, &soon_url, "CONFIRMED")),
    );
    expect_joined_then_left(&bus, &daemon, &soon_url, start3, end3);
    let s = bus.status().unwrap();
    assert_eq!(s["health"]["calendar_stale"], false, "{s:#}");
    assert!(s["health"].get("calendar_error").is_none(), "{s:#}");
}

#[test]
fn the_last_good_calendar_is_followed_when_the_server_is_gone() {
    let radicale = Radicale::start();
    radicale.request("MKCALENDAR", &format!("/{USER}/salle/"), None);
    let sim = Sim::start(&[]).unwrap();
    let url = sim.meeting_url("revue-mensuelle");
    let start = in_secs(86_400);
    radicale.request(
        "PUT",
        &format!("/{USER}/salle/revue.ics"),
        Some(&event(
            "revue",
            start,
            start + TimeDelta::hours(1),
            &url,
            "CONFIRMED",
        )),
    );
    let password = radicale.password_file();
    let sources = format!(
        "[[calendar.sources]]\ntype = \"caldav\"\nurl = \"{}/{USER}/salle/\"\nusername = \"{USER}\"\n\
         password_file = {:?}\n",
        radicale.origin,
        password.display().to_string()
    );
    let bus = Bus::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_string_lossy().into_owned();
    let config = RoomConfig::new("Salle 4B", sim.host()).with(&calendar_config(&sources));
    let first =
        Daemon::with_config_and_env(&bus, &config, &[("STATE_DIRECTORY", &state_dir)]).unwrap();
    wait_next(&bus, &first, "the meeting listed", |next| next.len() == 1);
    first.terminate().unwrap();
    drop(radicale);

    // Restarted without its calendar server: the cached calendar is followed at once.
    let second =
        Daemon::with_config_and_env(&bus, &config, &[("STATE_DIRECTORY", &state_dir)]).unwrap();
    let s = bus
        .wait_status(5, "the cached meeting listed", |s| {
            next_meetings(s).len() == 1
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    assert_eq!(next_meetings(&s)[0]["url"], url.as_str());
    let s = bus
        .wait_status(10, "the failing source reported", |s| {
            s["health"].get("calendar_error").is_some()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    let error = s["health"]["calendar_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1"),
        "the error names the source: {error}"
    );
    assert!(!error.contains(PASSWORD));
    assert_eq!(next_meetings(&s).len(), 1, "still planned: {s:#}");
}

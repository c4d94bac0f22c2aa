//! The room's calendar inside the daemon: the latest text of each source, the meetings expanded
//! from it, and the planner's decisions turned into controller inputs.
//!
//! Fetching runs in one task per source ([`spawn_sources`]), which reports [`SourceUpdate`]s to
//! the room loop; the room loop owns the [`RoomCalendar`] and asks it what to do after every
//! change (a source update, a controller status change, or the planner's own wake-up time). The
//! calendar never calls the controller itself: it returns [`CalendarStep`]s, and the room loop
//! feeds them to the controller exactly as a button press would be, with `Source::Schedule`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;
use tracing::{info, warn};
use visio_room_calendar::{
    Cache, CachedSource, PollOutcome, Source as CalendarSourceIo, SourceOptions, SourceSpec,
};
use visio_room_core::backoff::{seed_from, Backoff, BackoffPolicy};
use visio_room_core::config::{CalendarConfig, Config};
use visio_room_core::controller::{Source, State, Status};
use visio_room_schedule::planner::{
    Action as PlanAction, CallOrigin, CallState, MeetingKey, NextMeeting, Planner,
};
use visio_room_schedule::{occurrences, ExpandOptions, Occurrence};

use crate::settings;

/// Where the last good copy of each source is kept (the unit's `StateDirectory`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/visio-room";

/// How far back and ahead meetings are expanded. Back: a meeting that started yesterday may
/// still be on. Ahead: enough for `NextMeetings` on a quiet week.
const LOOK_BEHIND: TimeDelta = TimeDelta::days(1);
const LOOK_AHEAD: TimeDelta = TimeDelta::days(35);
/// The window is expanded again when it is this old, so that it keeps moving with time.
const REEXPAND_AFTER: TimeDelta = TimeDelta::hours(6);

/// What a source task reports.
#[derive(Debug)]
pub struct SourceUpdate {
    /// Which source (index in the configuration).
    pub index: usize,
    /// What happened.
    pub outcome: SourceOutcome,
}

/// The outcome of one fetch of a source.
#[derive(Debug)]
pub enum SourceOutcome {
    /// The last good copy, read from the cache at start-up.
    Cached {
        /// The calendar texts.
        texts: Vec<String>,
        /// When they were fetched.
        fetched_at: SystemTime,
    },
    /// Fetched: the full current set of calendar texts.
    Changed(Vec<String>),
    /// Fetched: nothing changed.
    Unchanged,
    /// The fetch failed (the message names the source and what to do).
    Failed(String),
}

/// One configured source as the calendar sees it.
#[derive(Debug, Default)]
struct SourceState {
    /// Shown in `Health` and logs (no credentials).
    name: String,
    /// Its latest texts.
    texts: Vec<String>,
    /// When it was last fetched successfully (or the cache's fetch time).
    synced_at: Option<SystemTime>,
    /// The last failure, cleared by a success.
    error: Option<String>,
}

/// A step for the room loop to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarStep {
    /// Join `url` for the calendar (`Input::Join` with `Source::Schedule`).
    Join {
        /// The meeting URL.
        url: String,
    },
    /// Leave the current meeting for the calendar.
    Leave,
    /// Offer a booked meeting while a call started by hand goes on (`MeetingOffered`).
    Offer {
        /// The meeting URL.
        url: String,
        /// Its title (masked for private meetings).
        summary: String,
        /// Its start, seconds since the epoch.
        start: i64,
    },
}

/// What the calendar decided at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The steps to carry out now.
    pub steps: Vec<CalendarStep>,
    /// When to ask again (without new input).
    pub wake_at: Option<DateTime<Utc>>,
    /// The `NextMeetings` property.
    pub next: Vec<visio_room_bus::NextMeeting>,
}

/// The calendar's part of `Health`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarHealth {
    /// Number of configured sources.
    pub sources: u32,
    /// The oldest successful sync among the sources (seconds since the epoch); 0 if a source
    /// never synced.
    pub synced_at: u64,
    /// Whether the plan may be out of date: a source failed for longer than three polling
    /// intervals, or never synced.
    pub stale: bool,
    /// The latest failure of a source, if any is failing (the message names the source).
    pub error: Option<String>,
    /// Calendar components skipped because they could not be read.
    pub skipped_components: u32,
}

/// The room's calendar: sources' texts, expanded meetings and the planner.
pub struct RoomCalendar {
    planner: Planner,
    options: ExpandOptions,
    sources: Vec<SourceState>,
    poll_interval: Duration,
    occurrences: Vec<Occurrence>,
    skipped: u32,
    expanded_at: Option<DateTime<Utc>>,
    /// The meeting the calendar joined, and its URL, while the room is in it.
    scheduled: Option<(MeetingKey, String)>,
}

impl RoomCalendar {
    /// The calendar of `config`, or `None` when no source is configured.
    pub fn new(config: &Config) -> Option<RoomCalendar> {
        let c = &config.calendar;
        if c.sources.is_empty() {
            return None;
        }
        Some(RoomCalendar {
            planner: Planner::new(settings::planner_policy(c)),
            options: settings::expand_options(config),
            sources: c
                .sources
                .iter()
                .map(|s| SourceState {
                    name: settings::source_spec(s).describe(),
                    ..SourceState::default()
                })
                .collect(),
            poll_interval: settings::poll_interval(c),
            occurrences: Vec::new(),
            skipped: 0,
            expanded_at: None,
            scheduled: None,
        })
    }

    /// Takes a source's update; the meetings are expanded again when the text changed.
    pub fn apply(&mut self, update: SourceUpdate, now: SystemTime) {
        let Some(source) = self.sources.get_mut(update.index) else {
            return;
        };
        match update.outcome {
            SourceOutcome::Cached { texts, fetched_at } => {
                // A fetch that already succeeded is newer than the cache.
                if source.synced_at.is_none() {
                    info!(source = %source.name, "using the cached calendar until the source answers");
                    source.texts = texts;
                    source.synced_at = Some(fetched_at);
                    self.expanded_at = None;
                }
            }
            SourceOutcome::Changed(texts) => {
                info!(source = %source.name, resources = texts.len(), "calendar changed");
                source.texts = texts;
                source.synced_at = Some(now);
                source.error = None;
                self.expanded_at = None;
            }
            SourceOutcome::Unchanged => {
                source.synced_at = Some(now);
                source.error = None;
            }
            SourceOutcome::Failed(message) => {
                // Once per outage (or change of reason), not at every poll.
                if source.error.as_ref() != Some(&message) {
                    warn!(source = %source.name, error = %message, "calendar source failed; following the last good copy");
                }
                source.error = Some(message);
            }
        }
    }

    /// Decides what the room should do at `now`, given the controller's `status`: the steps to
    /// carry out, when to ask again, and the meetings to list.
    pub fn decide(&mut self, now: DateTime<Utc>, status: &Status) -> Decision {
        self.expand_if_due(now);
        let call = self.call_state(status);
        let plan = self.planner.plan(&self.occurrences, now, &call);
        let mut steps = Vec::new();
        for action in plan.actions {
            match action {
                PlanAction::Join { meeting, url } => {
                    info!(uid = %meeting.uid, %url, "joining a booked meeting");
                    self.scheduled = Some((meeting, url.clone()));
                    steps.push(CalendarStep::Join { url });
                }
                PlanAction::Leave { reason } => {
                    info!(?reason, "leaving the booked meeting");
                    self.scheduled = None;
                    steps.push(CalendarStep::Leave);
                }
                PlanAction::Switch { meeting, url } => {
                    info!(uid = %meeting.uid, %url, "switching to the next booked meeting");
                    // From a call started by hand, leave first: the controller refuses to
                    // replace a call someone started (it would interrupt them).
                    if matches!(
                        call,
                        CallState::InCall {
                            origin: CallOrigin::Manual,
                            ..
                        }
                    ) {
                        steps.push(CalendarStep::Leave);
                    }
                    self.scheduled = Some((meeting, url.clone()));
                    steps.push(CalendarStep::Join { url });
                }
                PlanAction::Offer { meeting, url } => {
                    let o = self
                        .occurrences
                        .iter()
                        .find(|o| MeetingKey::of(o) == meeting);
                    steps.push(CalendarStep::Offer {
                        url,
                        summary: o.and_then(|o| o.summary.clone()).unwrap_or_default(),
                        start: o.map_or(0, |o| o.start_utc.timestamp()),
                    });
                }
            }
        }
        // Wake up for the planner, and at the latest when the window must move.
        let reexpand = self.expanded_at.map(|t| t + REEXPAND_AFTER);
        Decision {
            steps,
            wake_at: [plan.wake_at, reexpand].into_iter().flatten().min(),
            next: self.listed(plan.next),
        }
    }

    /// The planner's next meetings as the `NextMeetings` property has them.
    fn listed(&self, next: Vec<NextMeeting>) -> Vec<visio_room_bus::NextMeeting> {
        next.into_iter()
            .map(|m| {
                let o = self
                    .occurrences
                    .iter()
                    .find(|o| MeetingKey::of(o) == m.meeting);
                visio_room_bus::NextMeeting {
                    summary: m.summary.unwrap_or_default(),
                    start: o.map_or(0, |o| o.start_utc.timestamp()),
                    end: o.map_or(0, |o| o.end_utc.timestamp()),
                    url: m.meeting_url.unwrap_or_default(),
                    auto_join: m.auto_join,
                }
            })
            .collect()
    }

    /// The calendar's part of `Health` at `now`.
    pub fn health(&self, now: SystemTime) -> CalendarHealth {
        let stale_after = self.poll_interval * 3;
        let stale = self.sources.iter().any(|s| match s.synced_at {
            None => true,
            Some(at) => {
                s.error.is_some() && now.duration_since(at).unwrap_or_default() > stale_after
            }
        });
        let synced_at = self
            .sources
            .iter()
            .map(|s| s.synced_at.map_or(0, crate::room::unix_s))
            .min()
            .unwrap_or(0);
        CalendarHealth {
            sources: self.sources.len() as u32,
            synced_at,
            stale,
            error: self.sources.iter().find_map(|s| s.error.clone()),
            skipped_components: self.skipped,
        }
    }

    fn expand_if_due(&mut self, now: DateTime<Utc>) {
        if self
            .expanded_at
            .is_some_and(|t| now >= t && now - t < REEXPAND_AFTER)
        {
            return;
        }
        let (from, to) = (now - LOOK_BEHIND, now + LOOK_AHEAD);
        let mut all = Vec::new();
        let mut skipped = 0;
        for source in &self.sources {
            for text in &source.texts {
                let set = occurrences(text, from, to, &self.options);
                // A component may have several problems (a bad value, then skipped): count
                // components.
                let mut components: Vec<_> = set
                    .errors
                    .iter()
                    .map(|p| (p.line, p.component.as_str(), p.uid.as_deref()))
                    .collect();
                components.sort_unstable();
                components.dedup();
                skipped += components.len() as u32;
                all.extend(set.occurrences);
            }
        }
        // The same event may come from two sources (a feed and a CalDAV copy): keep one.
        all.sort_by(|a, b| (a.start_utc, MeetingKey::of(a)).cmp(&(b.start_utc, MeetingKey::of(b))));
        all.dedup_by(|a, b| MeetingKey::of(a) == MeetingKey::of(b));
        if skipped > 0 {
            warn!(
                skipped,
                "calendar components could not be read and were skipped"
            );
        }
        self.occurrences = all;
        self.skipped = skipped;
        self.expanded_at = Some(now);
    }

    fn call_state(&self, status: &Status) -> CallState {
        match (status.state, &status.meeting) {
            (State::Idle | State::Error, _) | (_, None) => CallState::Idle,
            (_, Some(meeting)) => {
                let origin = match &self.scheduled {
                    Some((key, url))
                        if meeting.source == Source::Schedule && *url == meeting.url =>
                    {
                        CallOrigin::Scheduled(key.clone())
                    }
                    _ => CallOrigin::Manual,
                };
                CallState::InCall {
                    origin,
                    alone: status.participants.is_empty(),
                }
            }
        }
    }
}

/// Starts one fetching task per configured source. Each first reports its cached copy (if
/// any), then fetches at once and every `poll_interval_s` (with jitter; backing off while the
/// source fails), caching what it gets. `https` sources trust the room's one TLS
/// configuration, `tls` (none trusted without it).
pub fn spawn_sources(
    config: &CalendarConfig,
    room_name: &str,
    cache_dir: &Path,
    tls: Option<Arc<visio_room_session::tls::ClientConfig>>,
    updates: mpsc::Sender<SourceUpdate>,
) {
    let interval = settings::poll_interval(config);
    // Rooms of a building restarted together must not poll in lockstep: the jitter's seed
    // differs per room and per source.
    let room_seed = seed_from(room_name);
    for (index, source) in config.sources.iter().enumerate() {
        let follower = SourceFollower {
            index,
            spec: settings::source_spec(source),
            cache: Cache::new(cache_dir.to_owned()),
            interval,
            seed: room_seed ^ index as u64,
            tls: tls.clone(),
            updates: updates.clone(),
        };
        tokio::spawn(follower.run());
    }
}

/// The polls of one source: every `interval` with ±10 % jitter while it answers; while it
/// fails, the interval doubled at each failure up to ten intervals (a room whose server is down
/// asks it every 10 min, not every minute).
fn poll_backoff(interval: Duration) -> BackoffPolicy {
    BackoffPolicy {
        base: interval,
        factor: 2,
        max: interval.saturating_mul(10),
        jitter_percent: 10,
    }
}

/// The task fetching one source.
struct SourceFollower {
    index: usize,
    spec: SourceSpec,
    cache: Cache,
    interval: Duration,
    seed: u64,
    tls: Option<Arc<visio_room_session::tls::ClientConfig>>,
    updates: mpsc::Sender<SourceUpdate>,
}

impl SourceFollower {
    async fn send(&self, outcome: SourceOutcome) -> bool {
        let update = SourceUpdate {
            index: self.index,
            outcome,
        };
        self.updates.send(update).await.is_ok()
    }

    async fn run(self) {
        let options = SourceOptions {
            tls: self.tls.clone(),
            ..SourceOptions::default()
        };
        let source = match CalendarSourceIo::with_options(self.spec.clone(), options) {
            Ok(s) => s,
            Err(e) => {
                // The configuration was checked, so this is not expected; say it and stop.
                self.send(SourceOutcome::Failed(e.to_string())).await;
                return;
            }
        };
        let mut source = CachedSource::new(source, self.cache.clone());
        if let Some(fetched_at) = source.fetched_at() {
            let texts = source.texts().to_vec();
            if !self.send(SourceOutcome::Cached { texts, fetched_at }).await {
                return;
            }
        }
        let mut backoff = Backoff::new(poll_backoff(self.interval), self.seed);
        loop {
            let outcome = match source.poll().await {
                PollOutcome::Changed => SourceOutcome::Changed(source.texts().to_vec()),
                PollOutcome::Unchanged => SourceOutcome::Unchanged,
                PollOutcome::Failed(e) => SourceOutcome::Failed(e.to_string()),
            };
            if !self.send(outcome).await {
                return; // The room loop is gone: the daemon is stopping.
            }
            let delay = if source.consecutive_failures() == 0 {
                backoff.reset();
                backoff.pace()
            } else {
                backoff.next_delay()
            };
            tokio::time::sleep(delay).await;
        }
    }
}

/// The state directory: `state_dir` if given, else `$STATE_DIRECTORY` (systemd's
/// `StateDirectory=`; the first if several), else `/var/lib/visio-room`. The calendar cache is
/// its `calendar` directory; the room's intent its `intent.json`.
pub fn state_dir(state_dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = state_dir {
        return dir.to_owned();
    }
    std::env::var_os("STATE_DIRECTORY")
        .map(|d| {
            let first = d
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or("")
                .to_owned();
            PathBuf::from(first)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use visio_room_core::controller::{Controller, Meeting, Participant, Policy};

    use super::*;

    const URL: &str = "https://visio.numerique.gouv.fr/abc-defg-hij";

    fn room(extra: &str) -> RoomCalendar {
        let text = format!(
            "[calendar]\ntime_zone = \"Europe/Paris\"\njoin_lead_s = 60\nleave_grace_s = 300\n{extra}\n\
             [[calendar.sources]]\ntype = \"file\"\npath = \"/etc/visio-room/room.ics\"\n"
        );
        let config = Config::from_toml_str(&text, Path::new("test.toml")).unwrap();
        RoomCalendar::new(&config).unwrap()
    }

    /// One event on 2026-11-23 from 10:00 to 11:00 UTC with the Visio link.
    fn calendar(status: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:weekly-1\r\n\
             DTSTART:20261123T100000Z\r\nDTEND:20261123T110000Z\r\nSUMMARY:Point hebdo\r\n\
             STATUS:{status}\r\nLOCATION:{URL}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    fn at(hms: &str) -> DateTime<Utc> {
        format!("2026-11-23T{hms}Z").parse().unwrap()
    }

    fn idle() -> Status {
        Controller::new(Policy::default()).status().clone()
    }

    fn in_call(source: Source, people: usize) -> Status {
        let mut s = idle();
        s.state = State::InCall;
        s.meeting = Some(Meeting {
            url: URL.into(),
            source,
        });
        s.participants = (0..people)
            .map(|i| Participant {
                identity: format!("p{i}"),
                name: format!("P{i}"),
                audio: true,
                video: true,
            })
            .collect();
        s
    }

    fn changed(text: String) -> SourceUpdate {
        SourceUpdate {
            index: 0,
            outcome: SourceOutcome::Changed(vec![text]),
        }
    }

    #[test]
    fn a_failing_source_is_polled_less_and_less_often_up_to_ten_intervals() {
        let interval = Duration::from_secs(60);
        let policy = BackoffPolicy {
            jitter_percent: 0,
            ..poll_backoff(interval)
        };
        let mut backoff = Backoff::new(policy, 1);
        assert_eq!(backoff.pace(), interval);
        let waits: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 600, 600, 600]);
        backoff.reset();
        assert_eq!(backoff.pace(), interval);
        assert_eq!(
            backoff.next_delay(),
            interval,
            "a good poll starts the backoff over"
        );
    }

    #[test]
    fn joins_a_booked_meeting_at_the_lead_time_once() {
        let mut cal = room("");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        let d = cal.decide(at("09:58:00"), &idle());
        assert!(d.steps.is_empty());
        assert_eq!(d.wake_at, Some(at("09:59:00")), "wakes up at start − lead");
        let steps = cal.decide(at("09:59:00"), &idle()).steps;
        assert_eq!(steps, vec![CalendarStep::Join { url: URL.into() }]);
        // Joining failed for good and the room is idle again: not joined twice.
        let steps = cal.decide(at("09:59:30"), &idle()).steps;
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn leaves_at_the_end_when_alone_and_after_the_grace_otherwise() {
        let mut cal = room("");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        cal.decide(at("09:59:00"), &idle());
        let steps = cal
            .decide(at("10:30:00"), &in_call(Source::Schedule, 0))
            .steps;
        assert!(steps.is_empty(), "the meeting is on");
        let steps = cal
            .decide(at("11:00:00"), &in_call(Source::Schedule, 2))
            .steps;
        assert!(steps.is_empty(), "people are still talking: grace");
        let steps = cal
            .decide(at("11:02:00"), &in_call(Source::Schedule, 0))
            .steps;
        assert_eq!(steps, vec![CalendarStep::Leave], "alone after the end");
    }

    #[test]
    fn a_call_started_by_hand_is_offered_the_meeting_not_interrupted() {
        let mut cal = room("");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        let steps = cal.decide(at("10:00:00"), &in_call(Source::DBus, 1)).steps;
        assert_eq!(
            steps,
            vec![CalendarStep::Offer {
                url: URL.into(),
                summary: "Point hebdo".into(),
                start: at("10:00:00").timestamp(),
            }]
        );
        let steps = cal.decide(at("10:00:05"), &in_call(Source::DBus, 1)).steps;
        assert!(steps.is_empty(), "offered once");
    }

    #[test]
    fn with_the_switch_policy_a_call_started_by_hand_is_left_first() {
        let mut cal = room("manual_call = \"switch\"");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        let mut status = in_call(Source::DBus, 1);
        status.meeting.as_mut().unwrap().url =
            "https://visio.numerique.gouv.fr/xyz-abcd-efg".into();
        let steps = cal.decide(at("10:00:00"), &status).steps;
        assert_eq!(
            steps,
            vec![CalendarStep::Leave, CalendarStep::Join { url: URL.into() }]
        );
    }

    #[test]
    fn a_meeting_cancelled_while_the_room_is_in_it_is_left() {
        let mut cal = room("");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        cal.decide(at("09:59:00"), &idle());
        cal.apply(changed(calendar("CANCELLED")), SystemTime::now());
        let d = cal.decide(at("10:10:00"), &in_call(Source::Schedule, 3));
        assert_eq!(d.steps, vec![CalendarStep::Leave]);
        assert!(d.next.is_empty(), "cancelled: not listed");
    }

    #[test]
    fn next_meetings_list_the_booked_meeting_with_epoch_times() {
        let mut cal = room("");
        cal.apply(changed(calendar("CONFIRMED")), SystemTime::now());
        let next = cal.decide(at("08:00:00"), &idle()).next;
        assert_eq!(
            next,
            vec![visio_room_bus::NextMeeting {
                summary: "Point hebdo".into(),
                start: at("10:00:00").timestamp(),
                end: at("11:00:00").timestamp(),
                url: URL.into(),
                auto_join: true,
            }]
        );
    }

    #[test]
    fn a_failing_source_keeps_the_last_copy_and_turns_stale() {
        let mut cal = room("poll_interval_s = 60");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(cal.health(t0).stale, "never synced");
        cal.apply(
            SourceUpdate {
                index: 0,
                outcome: SourceOutcome::Cached {
                    texts: vec![calendar("CONFIRMED")],
                    fetched_at: t0,
                },
            },
            t0,
        );
        assert!(!cal.health(t0).stale);
        let later = t0 + Duration::from_secs(120);
        cal.apply(
            SourceUpdate {
                index: 0,
                outcome: SourceOutcome::Failed("agenda.example: unreachable".into()),
            },
            later,
        );
        let h = cal.health(later);
        assert!(!h.stale, "two minutes old is within three intervals");
        assert_eq!(h.error.as_deref(), Some("agenda.example: unreachable"));
        assert!(cal.health(t0 + Duration::from_secs(181)).stale);
        assert_eq!(cal.health(later).synced_at, 1_800_000_000);
        // The cached meeting is still followed.
        assert_eq!(cal.decide(at("08:00:00"), &idle()).next.len(), 1);
    }

    #[test]
    fn a_broken_event_costs_only_itself() {
        let mut cal = room("");
        let mut text = calendar("CONFIRMED");
        text = text.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:broken\r\nDTSTART:not-a-date\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        cal.apply(changed(text), SystemTime::now());
        assert_eq!(cal.decide(at("08:00:00"), &idle()).next.len(), 1);
        assert_eq!(cal.health(SystemTime::now()).skipped_components, 1);
    }
}

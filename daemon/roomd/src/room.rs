//! The room loop: owns the controller, feeds it inputs and carries out its actions.
//!
//! Everything that changes the room goes through one task, so the controller needs no locks and
//! sees inputs in one order. D-Bus calls arrive as [`Command`]s with a reply channel; meeting
//! sessions report on an unbounded channel (they must never block on us); the loop wakes for the
//! controller's deadlines and pings the systemd watchdog, which therefore proves that this loop —
//! not just the process — is alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info, warn};
use visio_room_core::controller::{
    Action, Controller, Failure, Input, Policy, Refusal, SessionEvent, SessionId, Source, Status,
    StatusField,
};

use crate::calendar::{CalendarHealth, CalendarStep, RoomCalendar, SourceUpdate};
use crate::intent::{self, Intent, IntentStore, Recovery};
use crate::meeting::{MediaStatus, MeetingBackend, RunningSession, SessionRequest};

/// A request to the room loop, answered on `reply`.
pub struct Command {
    /// The controller input.
    pub input: Input,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<(), Refusal>>,
}

/// Facts about the daemon that are not the controller's, shown in `Health` and `Media`.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The configuration file in use, or `None` for built-in defaults.
    pub config_file: Option<String>,
    /// When the daemon started, seconds since the epoch.
    pub started_at: u64,
    /// The configured media, as `key → value` strings.
    pub media: Vec<(&'static str, String)>,
    /// Upcoming meetings (empty until a calendar source is configured).
    pub next_meetings: Vec<visio_room_bus::NextMeeting>,
    /// What happened at start-up after an unclean exit: `Ok((when, meeting))` rejoined,
    /// `Err(reason)` did not (a crash loop). `None`: nothing to recover.
    pub recovery: Option<Result<(u64, String), String>>,
}

/// What the D-Bus side reads: the controller's status and the daemon's facts.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The controller's status.
    pub status: Status,
    /// When the pending retry will be made, seconds since the epoch.
    pub retry_at_unix_ms: Option<u64>,
    /// The daemon's facts.
    pub facts: Facts,
    /// Live media counters of the running session, refreshed every second.
    pub media_live: Option<MediaStatus>,
    /// The calendar's health, when the room has a calendar.
    pub calendar: Option<CalendarHealth>,
}

/// The snapshot shared between the loop (writer) and the D-Bus interface (readers).
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Snapshot>>);

impl Shared {
    /// Wraps a first snapshot.
    pub fn new(snapshot: Snapshot) -> Self {
        Shared(Arc::new(Mutex::new(snapshot)))
    }

    /// Reads the snapshot. The lock is never held across an await.
    pub fn read(&self) -> MutexGuard<'_, Snapshot> {
        // A poisoned lock only means a panic elsewhere; the data is still a valid snapshot.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Publishes status changes and events (the D-Bus interface implements this).
#[allow(async_fn_in_trait)]
pub trait Publisher {
    /// These fields changed in the shared snapshot.
    async fn changed(&self, fields: &[StatusField]);
    /// A failure to report to listeners.
    async fn error(&self, failure: &Failure);
    /// The live media counters changed.
    async fn media_changed(&self);
    /// `NextMeetings` changed.
    async fn next_meetings_changed(&self);
    /// A booked meeting is offered while a call started by hand goes on.
    async fn meeting_offered(&self, url: &str, summary: &str, start: i64);
}

/// The loop's state. Build with [`RoomLoop::new`], run with [`RoomLoop::run`].
pub struct RoomLoop<B: MeetingBackend> {
    controller: Controller,
    backend: B,
    display_name: String,
    shared: Shared,
    sessions: HashMap<SessionId, Box<dyn RunningSession>>,
    events_tx: crate::meeting::SessionEvents,
    events_rx: mpsc::UnboundedReceiver<(SessionId, SessionEvent)>,
    leave_timeout: Duration,
    calendar: Option<RoomCalendar>,
    calendar_updates: mpsc::Receiver<SourceUpdate>,
    calendar_wake: Option<Instant>,
    /// Where the room's intent is kept across restarts, and what was last written there.
    intent: Option<(IntentStore, Intent)>,
}

impl<B: MeetingBackend> RoomLoop<B> {
    /// A loop for a room called `display_name`, publishing into `shared`.
    pub fn new(policy: Policy, backend: B, display_name: String, shared: Shared) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let controller = Controller::new(policy);
        shared.read().status = controller.status().clone();
        RoomLoop {
            controller,
            backend,
            display_name,
            shared,
            sessions: HashMap::new(),
            events_tx,
            events_rx,
            leave_timeout: policy.leave_timeout,
            calendar: None,
            calendar_updates: mpsc::channel(1).1,
            calendar_wake: None,
            intent: None,
        }
    }

    /// Keeps the room's intent in `store`, and goes back to the meeting it names when the last
    /// run ended uncleanly (see [`crate::intent`]).
    pub fn with_intent(mut self, store: IntentStore) -> Self {
        let last = store.load().unwrap_or_default();
        self.intent = Some((store, last));
        self
    }

    /// At start-up: rejoin the meeting of an unclean exit, or say why not.
    async fn recover<P: Publisher>(&mut self, publisher: &P) {
        let Some((_, last)) = &self.intent else {
            return;
        };
        let now = unix_ms(SystemTime::now());
        match intent::decide(Some(last), now) {
            Recovery::Nothing => {}
            Recovery::GiveUp { reason } => {
                warn!(%reason, "not going back to the meeting");
                self.shared.read().facts.recovery = Some(Err(reason));
                publisher.changed(&[StatusField::Health]).await;
            }
            Recovery::Rejoin {
                meeting,
                mic_muted,
                camera_enabled,
                recoveries_unix_ms,
            } => {
                info!(url = %meeting.url, mic_muted, camera_enabled, "the daemon stopped uncleanly in a meeting: going back to it as it was");
                // Remembered before anything else can fail, for the crash-loop rule.
                if let Some((store, last)) = &mut self.intent {
                    last.recoveries_unix_ms = recoveries_unix_ms;
                    last.written_unix_ms = now;
                    if let Err(e) = store.save(last) {
                        warn!(error = %e, "cannot keep the room's intent");
                    }
                }
                let url = meeting.url.clone();
                let input = Input::Rejoin {
                    meeting,
                    mic_muted,
                    camera_enabled,
                };
                match self.feed(input, publisher).await {
                    Ok(()) => {
                        self.shared.read().facts.recovery = Some(Ok((now / 1000, url)));
                        publisher.changed(&[StatusField::Health]).await;
                    }
                    Err(refusal) => warn!(%refusal, "could not go back to the meeting"),
                }
            }
        }
    }

    /// Writes the intent when it changed, or when `heartbeat` and it is in a meeting.
    fn keep_intent(&mut self, heartbeat: bool) {
        let Some((store, last)) = &mut self.intent else {
            return;
        };
        let now = unix_ms(SystemTime::now());
        let intent = Intent::of(
            self.controller.status(),
            last.recoveries_unix_ms.clone(),
            now,
        );
        let due = heartbeat
            && intent.meeting.is_some()
            && now.saturating_sub(last.written_unix_ms) >= intent::HEARTBEAT.as_millis() as u64;
        if intent.same_as(last) && !due {
            return;
        }
        if let Err(e) = store.save(&intent) {
            warn!(error = %e, "cannot keep the room's intent; a crash would not bring the room back to its meeting");
        }
        *last = intent;
    }

    /// Follows `calendar`, whose sources report on `updates` ([`crate::calendar::spawn_sources`]).
    pub fn with_calendar(
        mut self,
        calendar: RoomCalendar,
        updates: mpsc::Receiver<SourceUpdate>,
    ) -> Self {
        self.calendar = Some(calendar);
        self.calendar_updates = updates;
        self
    }

    /// Runs until `shutdown` resolves, then leaves any meeting (bounded by the leave timeout).
    pub async fn run<P: Publisher>(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        publisher: P,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let watchdog = sd_notify::watchdog_enabled();
        let mut ping =
            tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |period| period / 2));
        // Media counters are published once a second while a session runs.
        let mut media_tick = tokio::time::interval(Duration::from_secs(1));
        media_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        self.recover(&publisher).await;
        loop {
            let deadline = self.controller.poll_timeout().map(to_tokio);
            tokio::select! {
                command = commands.recv() => {
                    let Some(Command { input, reply }) = command else { break };
                    let outcome = self.feed(input, &publisher).await;
                    let _ = reply.send(outcome); // The caller may have gone away.
                }
                Some((id, event)) = self.events_rx.recv() => {
                    let _ = self.feed(Input::Session { id, event }, &publisher).await;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let _ = self.feed(Input::Tick, &publisher).await;
                }
                _ = ping.tick(), if watchdog.is_some() => {
                    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                        warn!(error = %e, "could not ping the systemd watchdog");
                    }
                }
                _ = media_tick.tick() => {
                    self.refresh_media(&publisher).await;
                    self.keep_intent(true);
                }
                Some(update) = self.calendar_updates.recv(), if self.calendar.is_some() => {
                    if let Some(calendar) = self.calendar.as_mut() {
                        calendar.apply(update, SystemTime::now());
                    }
                }
                _ = sleep_until(self.calendar_wake), if self.calendar_wake.is_some() => {}
                () = &mut shutdown => break,
            }
            // Whatever happened may change what the calendar wants (a meeting ended, the room
            // is alone, the calendar changed, or its time came).
            self.follow_calendar(&publisher).await;
        }
        self.leave_before_exit(&publisher).await;
    }

    async fn leave_before_exit<P: Publisher>(&mut self, publisher: &P) {
        if self.controller.session().is_none() {
            return;
        }
        info!("leaving the meeting before exiting");
        let _ = self
            .feed(
                Input::Leave {
                    source: Source::DBus,
                },
                publisher,
            )
            .await;
        let give_up = Instant::now() + self.leave_timeout;
        while self.controller.session().is_some() {
            tokio::select! {
                Some((id, event)) = self.events_rx.recv() => {
                    let _ = self.feed(Input::Session { id, event }, publisher).await;
                }
                _ = tokio::time::sleep_until(give_up) => break,
            }
        }
    }

    /// Feeds one input and carries out the resulting actions.
    pub async fn feed<P: Publisher>(&mut self, input: Input, publisher: &P) -> Result<(), Refusal> {
        let actions = self.controller.handle(now(), input)?;
        for action in actions {
            self.carry_out(action, publisher).await;
        }
        self.keep_intent(false);
        Ok(())
    }

    async fn carry_out<P: Publisher>(&mut self, action: Action, publisher: &P) {
        match action {
            Action::StartSession {
                id,
                url,
                attempt,
                mic_muted,
                camera_enabled,
            } => {
                info!(session = id.0, %url, attempt, "starting the meeting session");
                let request = SessionRequest {
                    id,
                    url,
                    display_name: self.display_name.clone(),
                    mic_muted,
                    camera_enabled,
                };
                let session = self.backend.start(request, self.events_tx.clone());
                self.sessions.insert(id, session);
            }
            Action::StopSession { id } => {
                info!(session = id.0, "stopping the meeting session");
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.stop();
                }
            }
            Action::ApplyMicMuted(muted) => {
                info!(muted, "microphone");
                self.live_session(|s| s.set_mic_muted(muted));
            }
            Action::ApplyCameraEnabled(enabled) => {
                info!(enabled, "camera");
                self.live_session(|s| s.set_camera_enabled(enabled));
            }
            Action::ApplyVolume(percent) => {
                // The ALSA mixer comes with the audio device support; the value is kept and
                // published meanwhile.
                info!(percent, "speaker volume");
            }
            Action::SetIndicators(indicators) => {
                tracing::debug!(?indicators, "indicators");
            }
            Action::PublishStatus(fields) => {
                self.publish_snapshot();
                publisher.changed(&fields).await;
            }
            Action::ReportError(failure) => {
                error!(kind = failure.kind.as_str(), message = %failure.message, "meeting failure");
                publisher.error(&failure).await;
            }
        }
        // Sessions the controller no longer tracks are dropped (which stops them).
        let live = self.controller.session();
        self.sessions.retain(|k, _| Some(*k) == live);
    }

    /// Asks the calendar what to do now and does it; publishes `NextMeetings` and the calendar's
    /// health when they change.
    async fn follow_calendar<P: Publisher>(&mut self, publisher: &P) {
        let Some(calendar) = self.calendar.as_mut() else {
            return;
        };
        let now_utc = chrono::Utc::now();
        let decision = calendar.decide(now_utc, self.controller.status());
        self.calendar_wake = decision.wake_at.map(|at| {
            let wait = (at - now_utc).to_std().unwrap_or_default();
            Instant::now() + wait
        });
        let next = decision.next;
        let health = calendar.health(SystemTime::now());
        let (next_changed, health_changed) = {
            let mut snapshot = self.shared.read();
            let next_changed = snapshot.facts.next_meetings != next;
            let health_changed = snapshot.calendar.as_ref() != Some(&health);
            snapshot.facts.next_meetings = next;
            snapshot.calendar = Some(health);
            (next_changed, health_changed)
        };
        if next_changed {
            publisher.next_meetings_changed().await;
        }
        if health_changed {
            publisher.changed(&[StatusField::Health]).await;
        }
        for step in decision.steps {
            let outcome = match step {
                CalendarStep::Join { url } => {
                    let input = Input::Join {
                        url,
                        source: Source::Schedule,
                    };
                    self.feed(input, publisher).await
                }
                CalendarStep::Leave => {
                    let input = Input::Leave {
                        source: Source::Schedule,
                    };
                    self.feed(input, publisher).await
                }
                CalendarStep::Offer {
                    url,
                    summary,
                    start,
                } => {
                    info!(%url, "offering a booked meeting: the room is in a call started by hand");
                    publisher.meeting_offered(&url, &summary, start).await;
                    Ok(())
                }
            };
            if let Err(refusal) = outcome {
                warn!(%refusal, "the controller refused the calendar's step");
            }
        }
    }

    async fn refresh_media<P: Publisher>(&self, publisher: &P) {
        let live = self
            .controller
            .session()
            .and_then(|id| self.sessions.get(&id))
            .and_then(|s| s.media_status());
        let (changed, server_changed) = {
            let mut snapshot = self.shared.read();
            let server = |m: &Option<visio_room_session::MediaStatus>| {
                m.as_ref().map(|m| (m.media_server.clone(), m.media_path))
            };
            let changed = snapshot.media_live != live;
            let server_changed = server(&snapshot.media_live) != server(&live);
            snapshot.media_live = live;
            (changed, server_changed)
        };
        if changed {
            publisher.media_changed().await;
        }
        if server_changed {
            publisher.changed(&[StatusField::Health]).await;
        }
    }

    fn live_session(&mut self, f: impl FnOnce(&mut Box<dyn RunningSession>)) {
        if let Some(session) = self
            .controller
            .session()
            .and_then(|id| self.sessions.get_mut(&id))
        {
            f(session);
        }
    }

    fn publish_snapshot(&self) {
        let status = self.controller.status().clone();
        let retry_at_unix_ms = status.retry.map(|r| {
            let wait = r.at.saturating_duration_since(std::time::Instant::now());
            unix_ms(SystemTime::now() + wait)
        });
        let mut snapshot = self.shared.read();
        snapshot.status = status;
        snapshot.retry_at_unix_ms = retry_at_unix_ms;
    }
}

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn to_tokio(at: std::time::Instant) -> Instant {
    Instant::from_std(at)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

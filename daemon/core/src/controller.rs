//! The room controller: the appliance's decisions as a sans-IO state machine.
//!
//! Everything that can make the room join, leave, mute or retry arrives here as an [`Input`]
//! together with the current time, and the controller answers with [`Action`]s for the caller to
//! carry out (start or stop the meeting session, apply mute to the media, set the LEDs, publish
//! status). The controller owns no socket, task or clock: the caller reads the clock, passes it in,
//! and wakes the controller with [`Input::Tick`] at [`Controller::poll_timeout`]. That is what makes
//! retries, lobby time-outs and every odd interleaving testable in microseconds.
//!
//! The rules it keeps are written down in `docs/room-controller.md`; the important ones:
//! - at most one meeting session is alive at any time (switching meetings stops the old session
//!   and starts the new one only once the old one has stopped or its stop timed out);
//! - `Leave` always reaches `Idle`, even when the session never answers;
//! - a remote party (a meeting participant, the server, the fleet) may mute the room but never
//!   unmute it nor turn its camera on;
//! - the microphone and camera states survive reconnects within a meeting and are reset to the
//!   configured defaults when a new meeting starts;
//! - retryable failures are retried with exponential backoff up to a limit, then the room shows
//!   `Error` with the reason.

use std::fmt;
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, BackoffPolicy};

/// Who asked for something. Recorded with the meeting and used by the privacy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A physical button on the device (GPIO or input device).
    Button,
    /// A local D-Bus caller (`visio-roomctl`, the on-device UI).
    DBus,
    /// The room's calendar.
    Schedule,
    /// Facilities staff through the fleet-management link. Counts as a remote party.
    Fleet,
    /// Another participant or the server, from inside the meeting. Counts as a remote party.
    Meeting,
}

impl Source {
    /// Stable lower-case name used in status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Button => "button",
            Source::DBus => "dbus",
            Source::Schedule => "schedule",
            Source::Fleet => "fleet",
            Source::Meeting => "meeting",
        }
    }

    /// Remote parties may only take privacy-preserving actions (mute, camera off).
    pub fn is_remote(self) -> bool {
        matches!(self, Source::Fleet | Source::Meeting)
    }
}

/// The room's state, as shown in the `State` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not in a meeting.
    Idle,
    /// Connecting to a meeting, or waiting to retry after a failed attempt.
    Joining,
    /// Waiting in the meeting's lobby to be admitted by a host.
    Lobby,
    /// In the meeting.
    InCall,
    /// In the meeting as far as the service knows, but no media gets through (no network path
    /// to the media server, or nothing received for long); the session is trying to get it
    /// back. The reason is in [`Status::media_problem`].
    Reconnecting,
    /// Leaving the meeting.
    Leaving,
    /// The last meeting failed for good; the reason is in [`Status::last_error`].
    Error,
}

impl State {
    /// Stable name used on D-Bus (`State` property) and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Joining => "joining",
            State::Lobby => "lobby",
            State::InCall => "in-call",
            State::Reconnecting => "reconnecting",
            State::Leaving => "leaving",
            State::Error => "error",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one meeting session started by [`Action::StartSession`]. Events carrying an older
/// id are stale (from a session already stopped) and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Why a meeting session failed. Decides whether the controller retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The service could not be reached or the connection was lost (retryable).
    Unreachable,
    /// The service answered with something we could not understand (retryable: it may be a
    /// transient proxy error page).
    Protocol,
    /// The local media could not start (retryable: a camera may come back).
    Media,
    /// The meeting does not exist (not retryable).
    RoomNotFound,
    /// The service refused our credentials or token (not retryable).
    Refused,
    /// The host denied entry from the lobby (not retryable).
    Denied,
    /// Nobody admitted the room from the lobby in time (not retryable).
    LobbyTimeout,
    /// Joining meetings is not available in this build or configuration (not retryable).
    NotAvailable,
}

impl FailureKind {
    /// Whether a new attempt may succeed without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable | FailureKind::Protocol | FailureKind::Media
        )
    }

    /// Stable name used in `Health` and in the D-Bus `Error` signal.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unreachable => "unreachable",
            FailureKind::Protocol => "protocol",
            FailureKind::Media => "media",
            FailureKind::RoomNotFound => "room-not-found",
            FailureKind::Refused => "refused",
            FailureKind::Denied => "denied",
            FailureKind::LobbyTimeout => "lobby-timeout",
            FailureKind::NotAvailable => "not-available",
        }
    }
}

/// A failure with a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure, deciding retries.
    pub kind: FailureKind,
    /// What happened, in words an operator can act on.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

/// Why a meeting ended without anyone in the room asking (not an error of the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// A host removed the room from the meeting.
    Removed,
    /// The meeting was closed for everyone.
    RoomDeleted,
    /// Another connection with the same identity took our place.
    DuplicateIdentity,
    /// The meeting ended for another reason given by the server.
    Other,
}

impl EndReason {
    /// Stable name used in `Health`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Removed => "removed",
            EndReason::RoomDeleted => "room-deleted",
            EndReason::DuplicateIdentity => "duplicate-identity",
            EndReason::Other => "ended",
        }
    }
}

/// A media track of the room that a remote party can mute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// The room's microphone.
    Microphone,
    /// The room's camera.
    Camera,
}

/// A remote participant as the room sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// LiveKit identity (stable for the connection).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Whether the participant publishes unmuted audio.
    pub audio: bool,
    /// Whether the participant publishes unmuted video.
    pub video: bool,
}

/// What the meeting session reports to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The room is waiting in the meeting's lobby.
    WaitingInLobby,
    /// The room is in the meeting (signalling joined, media starting).
    Connected,
    /// A remote party muted one of our tracks; the session has already obeyed.
    RemoteMute(Track),
    /// The remote participants changed; the full current list.
    Participants(Vec<Participant>),
    /// No media gets through any more (or never did since joining): why, for people.
    MediaInterrupted(String),
    /// Media gets through again.
    MediaRestored,
    /// The session could not join, or lost the meeting for good after its own resume attempts.
    /// The session is gone after this event.
    Failed(Failure),
    /// The meeting ended from the other side. The session is gone after this event.
    Ended(EndReason),
    /// The session finished stopping after [`Action::StopSession`].
    Stopped,
}

/// One input to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Join the meeting at `url` (already validated against the allow-list and canonical).
    Join {
        /// Canonical meeting URL.
        url: String,
        /// Who asked.
        source: Source,
    },
    /// Go back to the meeting the room was in when the daemon stopped uncleanly (a crash, a
    /// kill, a power cut), with the microphone and camera as they were: a room that was muted
    /// comes back muted. Only from `Idle`; otherwise refused as `Busy`.
    Rejoin {
        /// The meeting, with who had asked to join it.
        meeting: Meeting,
        /// The microphone was muted.
        mic_muted: bool,
        /// The camera was on.
        camera_enabled: bool,
    },
    /// Leave the current meeting (or stop trying to join it).
    Leave {
        /// Who asked.
        source: Source,
    },
    /// Mute or unmute the microphone.
    SetMicMuted {
        /// `true` to mute.
        muted: bool,
        /// Who asked.
        source: Source,
    },
    /// Turn the camera on or off.
    SetCameraEnabled {
        /// `true` to send video.
        enabled: bool,
        /// Who asked.
        source: Source,
    },
    /// Set the speaker volume, in percent (0..=100).
    SetVolume {
        /// The volume in percent.
        percent: u8,
        /// Who asked.
        source: Source,
    },
    /// An event from the meeting session `id`.
    Session {
        /// Which session reports.
        id: SessionId,
        /// What happened.
        event: SessionEvent,
    },
    /// Time has passed (the caller sends this at [`Controller::poll_timeout`]).
    Tick,
}

/// State of a call LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    /// Off.
    Off,
    /// Blinking: something is in progress (joining, lobby, leaving).
    Blink,
    /// Steady on.
    On,
}

/// What the room's indicators should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Indicators {
    /// The call LED (on in a call, blinking while joining).
    pub call: Led,
    /// The mute LED (on while the microphone is muted in a meeting).
    pub mic_muted: bool,
    /// The error LED (on in the `Error` state).
    pub error: bool,
}

/// A status field that changed, so the caller can publish exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusField {
    /// [`Status::state`].
    State,
    /// [`Status::meeting`].
    Meeting,
    /// [`Status::mic_muted`].
    MicMuted,
    /// [`Status::camera_enabled`].
    CameraEnabled,
    /// [`Status::volume`].
    Volume,
    /// [`Status::participants`].
    Participants,
    /// [`Status::last_error`], [`Status::retry`] or [`Status::last_end`].
    Health,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a meeting session for `url` with the given media state.
    StartSession {
        /// The id its events must carry.
        id: SessionId,
        /// Canonical meeting URL.
        url: String,
        /// 1 for the first attempt at this meeting, more for retries.
        attempt: u32,
        /// Whether to start with the microphone muted.
        mic_muted: bool,
        /// Whether to start with the camera on.
        camera_enabled: bool,
    },
    /// Stop the meeting session `id`; it answers [`SessionEvent::Stopped`].
    StopSession {
        /// The session to stop.
        id: SessionId,
    },
    /// Apply the microphone state to the running session.
    ApplyMicMuted(bool),
    /// Apply the camera state to the running session.
    ApplyCameraEnabled(bool),
    /// Apply the speaker volume.
    ApplyVolume(u8),
    /// Show these indicators.
    SetIndicators(Indicators),
    /// These status fields changed; publish them.
    PublishStatus(Vec<StatusField>),
    /// Report a failure to listeners (D-Bus `Error` signal).
    ReportError(Failure),
}

/// Why a request was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The room is busy in another meeting; leave it first.
    Busy {
        /// The meeting the room is in.
        current: String,
    },
    /// A remote party asked for something only people in the room may do.
    NotPermitted {
        /// What was refused.
        what: &'static str,
    },
    /// A value out of range.
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Busy { current } => write!(
                f,
                "the room is already in the meeting {current}; leave it first"
            ),
            Refusal::NotPermitted { what } => {
                write!(
                    f,
                    "a remote party may not {what}; only people in the room can"
                )
            }
            Refusal::InvalidArgument { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for Refusal {}

/// The meeting the room is in, or trying to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    /// Canonical meeting URL.
    pub url: String,
    /// Who asked to join it.
    pub source: Source,
}

/// A pending retry, shown in `Health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The attempt that will be made next (2 for the first retry).
    pub next_attempt: u32,
    /// The configured limit of attempts.
    pub max_attempts: u32,
    /// When it will be made.
    pub at: Instant,
}

/// Everything the room publishes as status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// The meeting, while not idle.
    pub meeting: Option<Meeting>,
    /// Whether the microphone is muted.
    pub mic_muted: bool,
    /// Whether the camera is on.
    pub camera_enabled: bool,
    /// Speaker volume in percent.
    pub volume: u8,
    /// Remote participants of the current meeting.
    pub participants: Vec<Participant>,
    /// The last failure, until the next successful join.
    pub last_error: Option<Failure>,
    /// Why the last meeting ended from the other side, if it did.
    pub last_end: Option<EndReason>,
    /// A pending retry.
    pub retry: Option<Retry>,
    /// Why no media gets through, while [`State::Reconnecting`], in words a technician can act
    /// on.
    pub media_problem: Option<String>,
}

/// The controller's tunables (from the `[room]` and `[join]` configuration sections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts to join one meeting before giving up (the first one included).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled at each further one.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between attempts (before jitter).
    pub max_backoff: Duration,
    /// Jitter of the wait between attempts, in percent either way (default 10).
    pub retry_jitter_percent: u8,
    /// The seed of that jitter: something that differs between rooms
    /// ([`crate::backoff::seed_from`] the room's name), so that rooms restarted together do not
    /// retry in lockstep.
    pub retry_seed: u64,
    /// How long to wait in a lobby before giving up.
    pub lobby_timeout: Duration,
    /// How long a session may take to stop before it is considered gone.
    pub leave_timeout: Duration,
    /// Microphone state at the start of each meeting.
    pub join_muted: bool,
    /// Speaker volume at start-up, in percent.
    pub initial_volume: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            retry_jitter_percent: 10,
            retry_seed: 0,
            lobby_timeout: Duration::from_secs(600),
            leave_timeout: Duration::from_secs(5),
            join_muted: false,
            initial_volume: 50,
        }
    }
}

impl Policy {
    /// The waits between attempts at one meeting: `initial_backoff`, doubled at each further
    /// retry up to `max_backoff`, with the jitter.
    pub fn retry_backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            base: self.initial_backoff,
            factor: 2,
            max: self.max_backoff,
            jitter_percent: self.retry_jitter_percent,
        }
    }
}

/// What the controller is doing with the meeting session, beyond the public [`State`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    /// A session is running (joining, lobby or in call per `state`).
    Active {
        id: SessionId,
        attempt: u32,
        lobby_deadline: Option<Instant>,
    },
    /// No session is running; the next attempt starts at `retry.at`.
    WaitingToRetry {
        retry: Retry,
    },
    /// Session `id` was asked to stop; `then` says what follows.
    Stopping {
        id: SessionId,
        deadline: Instant,
        then: AfterStop,
    },
    Failed,
}

/// What follows once a stopping session is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterStop {
    Idle,
    Join(Meeting),
    Fail(Failure),
}

/// The room controller. See the module documentation.
#[derive(Debug, Clone)]
pub struct Controller {
    policy: Policy,
    /// The waits between attempts; reset at each new meeting.
    retries: Backoff,
    phase: Phase,
    status: Status,
    indicators: Indicators,
    next_session: u64,
}

impl Controller {
    /// A controller in `Idle` with the given policy.
    pub fn new(policy: Policy) -> Self {
        let status = Status {
            state: State::Idle,
            meeting: None,
            mic_muted: policy.join_muted,
            camera_enabled: true,
            volume: policy.initial_volume.min(100),
            participants: Vec::new(),
            last_error: None,
            last_end: None,
            retry: None,
            media_problem: None,
        };
        Controller {
            retries: Backoff::new(policy.retry_backoff(), policy.retry_seed),
            policy,
            phase: Phase::Idle,
            indicators: indicators_for(&status),
            status,
            next_session: 1,
        }
    }

    /// The current status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The current indicators.
    pub fn indicators(&self) -> Indicators {
        self.indicators
    }

    /// The running (or stopping) session, if any.
    pub fn session(&self) -> Option<SessionId> {
        match self.phase {
            Phase::Active { id, .. } | Phase::Stopping { id, .. } => Some(id),
            _ => None,
        }
    }

    /// When the caller must send [`Input::Tick`] next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Active { lobby_deadline, .. } => *lobby_deadline,
            Phase::WaitingToRetry { retry } => Some(retry.at),
            Phase::Stopping { deadline, .. } => Some(*deadline),
            Phase::Idle | Phase::Failed => None,
        }
    }

    /// Feeds one input at time `now`. On `Err` nothing changed.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Vec<Action>, Refusal> {
        let before = self.status.clone();
        let mut actions = Vec::new();
        match input {
            Input::Join { url, source } => self.join(now, Meeting { url, source }, &mut actions)?,
            Input::Rejoin {
                meeting,
                mic_muted,
                camera_enabled,
            } => {
                if !matches!(self.phase, Phase::Idle | Phase::Failed) {
                    let current = self.status.meeting.as_ref().map(|m| m.url.clone());
                    return Err(Refusal::Busy {
                        current: current.unwrap_or_default(),
                    });
                }
                // As it was, not as a new meeting starts.
                self.start_meeting(meeting, mic_muted, camera_enabled, &mut actions);
            }
            Input::Leave { .. } => self.leave(now, &mut actions),
            Input::SetMicMuted { muted, source } => {
                if !muted && source.is_remote() {
                    return Err(Refusal::NotPermitted {
                        what: "unmute the room",
                    });
                }
                self.set_mic_muted(muted, &mut actions);
            }
            Input::SetCameraEnabled { enabled, source } => {
                if enabled && source.is_remote() {
                    return Err(Refusal::NotPermitted {
                        what: "turn the room's camera on",
                    });
                }
                self.set_camera_enabled(enabled, &mut actions);
            }
            Input::SetVolume { percent, .. } => {
                if percent > 100 {
                    return Err(Refusal::InvalidArgument {
                        message: format!("volume {percent} is out of range; use 0 to 100"),
                    });
                }
                if self.status.volume != percent {
                    self.status.volume = percent;
                    actions.push(Action::ApplyVolume(percent));
                }
            }
            Input::Session { id, event } => self.session_event(now, id, event, &mut actions),
            Input::Tick => self.tick(now, &mut actions),
        }
        self.finish(&before, &mut actions);
        Ok(actions)
    }

    fn join(
        &mut self,
        now: Instant,
        meeting: Meeting,
        actions: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match &mut self.phase {
            Phase::Idle | Phase::Failed => {
                self.start_meeting(meeting, self.policy.join_muted, true, actions);
                Ok(())
            }
            Phase::Stopping { then, .. } => {
                // Leaving already: join once the old session is gone.
                *then = AfterStop::Join(meeting);
                Ok(())
            }
            Phase::Active { .. } | Phase::WaitingToRetry { .. } => {
                let current = self
                    .status
                    .meeting
                    .clone()
                    .expect("an active phase always has a meeting");
                if current.url == meeting.url {
                    return Ok(()); // Already there, or on the way: nothing to do.
                }
                // Back-to-back calendar meetings switch by themselves; anything else would
                // interrupt people, so they must leave first.
                if meeting.source == Source::Schedule && current.source == Source::Schedule {
                    self.stop(now, AfterStop::Join(meeting), actions);
                    Ok(())
                } else {
                    Err(Refusal::Busy {
                        current: current.url,
                    })
                }
            }
        }
    }

    /// Starts `meeting` with the microphone and camera as given (a new meeting: the policy's
    /// `join_muted` and the camera on).
    fn start_meeting(
        &mut self,
        meeting: Meeting,
        mic_muted: bool,
        camera_enabled: bool,
        actions: &mut Vec<Action>,
    ) {
        self.status.mic_muted = mic_muted;
        self.status.camera_enabled = camera_enabled;
        self.status.last_error = None;
        self.status.last_end = None;
        self.status.meeting = Some(meeting);
        self.retries.reset();
        self.start_attempt(1, actions);
    }

    fn start_attempt(&mut self, attempt: u32, actions: &mut Vec<Action>) {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let url = self
            .status
            .meeting
            .as_ref()
            .expect("an attempt needs a meeting")
            .url
            .clone();
        self.phase = Phase::Active {
            id,
            attempt,
            lobby_deadline: None,
        };
        self.status.state = State::Joining;
        self.status.retry = None;
        self.status.media_problem = None;
        actions.push(Action::StartSession {
            id,
            url,
            attempt,
            mic_muted: self.status.mic_muted,
            camera_enabled: self.status.camera_enabled,
        });
    }

    fn leave(&mut self, now: Instant, actions: &mut Vec<Action>) {
        match &mut self.phase {
            Phase::Idle => {}
            Phase::Failed | Phase::WaitingToRetry { .. } => self.go_idle(),
            Phase::Active { .. } => self.stop(now, AfterStop::Idle, actions),
            // A Leave while leaving cancels a pending switch to another meeting.
            Phase::Stopping { then, .. } => *then = AfterStop::Idle,
        }
    }

    /// Asks the running session to stop; `then` follows once it is gone. Without a running
    /// session, `then` follows at once.
    fn stop(&mut self, now: Instant, then: AfterStop, actions: &mut Vec<Action>) {
        if let Phase::Active { id, .. } = self.phase {
            actions.push(Action::StopSession { id });
            self.phase = Phase::Stopping {
                id,
                deadline: now + self.policy.leave_timeout,
                then,
            };
            self.status.state = State::Leaving;
            self.status.participants.clear();
            self.status.media_problem = None;
        } else {
            self.after_stop(then, actions);
        }
    }

    /// Called when the stopping session is gone (stopped, failed, ended or timed out).
    fn stopped(&mut self, actions: &mut Vec<Action>) {
        if let Phase::Stopping { then, .. } = &mut self.phase {
            let then = std::mem::replace(then, AfterStop::Idle);
            self.after_stop(then, actions);
        }
    }

    fn after_stop(&mut self, then: AfterStop, actions: &mut Vec<Action>) {
        self.go_idle();
        match then {
            AfterStop::Idle => {}
            AfterStop::Join(meeting) => {
                self.start_meeting(meeting, self.policy.join_muted, true, actions)
            }
            AfterStop::Fail(failure) => self.give_up(failure),
        }
    }

    fn give_up(&mut self, failure: Failure) {
        self.phase = Phase::Failed;
        self.status.state = State::Error;
        self.status.meeting = None;
        self.status.retry = None;
        self.status.last_error = Some(failure);
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle;
        self.status.state = State::Idle;
        self.status.meeting = None;
        self.status.participants.clear();
        self.status.retry = None;
        self.status.media_problem = None;
    }

    fn set_mic_muted(&mut self, muted: bool, actions: &mut Vec<Action>) {
        if self.status.mic_muted != muted {
            self.status.mic_muted = muted;
            if matches!(self.phase, Phase::Active { .. }) {
                actions.push(Action::ApplyMicMuted(muted));
            }
        }
    }

    fn set_camera_enabled(&mut self, enabled: bool, actions: &mut Vec<Action>) {
        if self.status.camera_enabled != enabled {
            self.status.camera_enabled = enabled;
            if matches!(self.phase, Phase::Active { .. }) {
                actions.push(Action::ApplyCameraEnabled(enabled));
            }
        }
    }

    fn session_event(
        &mut self,
        now: Instant,
        id: SessionId,
        event: SessionEvent,
        actions: &mut Vec<Action>,
    ) {
        match self.phase {
            Phase::Stopping { id: stopping, .. } if stopping == id => {
                // Only the end of the session matters while it stops.
                if matches!(
                    event,
                    SessionEvent::Stopped | SessionEvent::Failed(_) | SessionEvent::Ended(_)
                ) {
                    self.stopped(actions);
                }
            }
            Phase::Active { id: active, .. } if active == id => {
                self.active_session_event(now, event, actions)
            }
            _ => {} // Stale: from a session that is already gone.
        }
    }

    fn active_session_event(
        &mut self,
        now: Instant,
        event: SessionEvent,
        actions: &mut Vec<Action>,
    ) {
        let Phase::Active {
            attempt,
            lobby_deadline,
            ..
        } = &mut self.phase
        else {
            return;
        };
        match event {
            SessionEvent::WaitingInLobby => {
                if lobby_deadline.is_none() {
                    *lobby_deadline = Some(now + self.policy.lobby_timeout);
                }
                self.status.state = State::Lobby;
            }
            SessionEvent::Connected => {
                *lobby_deadline = None;
                self.status.state = State::InCall;
                self.status.last_error = None;
                self.status.media_problem = None;
            }
            SessionEvent::MediaInterrupted(reason) => {
                if matches!(self.status.state, State::InCall | State::Reconnecting) {
                    self.status.state = State::Reconnecting;
                    self.status.media_problem = Some(reason);
                }
            }
            SessionEvent::MediaRestored => {
                if self.status.state == State::Reconnecting {
                    self.status.state = State::InCall;
                }
                self.status.media_problem = None;
            }
            // The session has muted itself already. Saying it back closes a race: an unmute
            // from the room that crossed this event on its way would otherwise leave the
            // session sending while `MicMuted` says muted. The session applies commands in
            // order, so it ends on what the status says.
            SessionEvent::RemoteMute(Track::Microphone) => self.set_mic_muted(true, actions),
            SessionEvent::RemoteMute(Track::Camera) => self.set_camera_enabled(false, actions),
            SessionEvent::Participants(list) => self.status.participants = list,
            SessionEvent::Failed(failure) => {
                let attempt = *attempt;
                self.failed(now, attempt, failure, actions)
            }
            SessionEvent::Ended(reason) => {
                self.go_idle();
                self.status.last_end = Some(reason);
            }
            SessionEvent::Stopped => {
                // The session stopped without being asked: treat as a lost connection.
                let attempt = *attempt;
                let failure = Failure::new(
                    FailureKind::Unreachable,
                    "the meeting session stopped unexpectedly",
                );
                self.failed(now, attempt, failure, actions)
            }
        }
    }

    fn failed(&mut self, now: Instant, attempt: u32, failure: Failure, actions: &mut Vec<Action>) {
        actions.push(Action::ReportError(failure.clone()));
        self.status.participants.clear();
        if failure.kind.is_retryable() && attempt < self.policy.max_attempts {
            let next_attempt = attempt + 1;
            let retry = Retry {
                next_attempt,
                max_attempts: self.policy.max_attempts,
                at: now + self.retries.next_delay(),
            };
            self.phase = Phase::WaitingToRetry { retry };
            self.status.state = State::Joining;
            self.status.retry = Some(retry);
            self.status.last_error = Some(failure);
        } else if failure.kind == FailureKind::Denied {
            // Being turned away is an answer, not a fault: back to idle, reason in Health.
            self.go_idle();
            self.status.last_error = Some(failure);
        } else {
            let message = if failure.kind.is_retryable() {
                format!("{} (gave up after {attempt} attempts)", failure.message)
            } else {
                failure.message
            };
            self.give_up(Failure::new(failure.kind, message));
        }
    }

    fn tick(&mut self, now: Instant, actions: &mut Vec<Action>) {
        match self.phase {
            Phase::Active {
                lobby_deadline: Some(deadline),
                ..
            } if now >= deadline => {
                let seconds = self.policy.lobby_timeout.as_secs();
                let failure = Failure::new(
                    FailureKind::LobbyTimeout,
                    format!("nobody admitted the room from the lobby within {seconds} s"),
                );
                actions.push(Action::ReportError(failure.clone()));
                self.stop(now, AfterStop::Fail(failure), actions);
            }
            Phase::WaitingToRetry { retry } if now >= retry.at => {
                self.start_attempt(retry.next_attempt, actions);
            }
            Phase::Stopping { deadline, .. } if now >= deadline => self.stopped(actions),
            _ => {}
        }
    }

    /// Appends indicator and status-change actions for what differs from `before`.
    fn finish(&mut self, before: &Status, actions: &mut Vec<Action>) {
        let indicators = indicators_for(&self.status);
        if indicators != self.indicators {
            self.indicators = indicators;
            actions.push(Action::SetIndicators(indicators));
        }
        let now = &self.status;
        let mut changed = Vec::new();
        if now.state != before.state {
            changed.push(StatusField::State);
        }
        if now.meeting != before.meeting {
            changed.push(StatusField::Meeting);
        }
        if now.mic_muted != before.mic_muted {
            changed.push(StatusField::MicMuted);
        }
        if now.camera_enabled != before.camera_enabled {
            changed.push(StatusField::CameraEnabled);
        }
        if now.volume != before.volume {
            changed.push(StatusField::Volume);
        }
        if now.participants != before.participants {
            changed.push(StatusField::Participants);
        }
        if now.last_error != before.last_error
            || now.last_end != before.last_end
            || now.retry != before.retry
            || now.media_problem != before.media_problem
        {
            changed.push(StatusField::Health);
        }
        if !changed.is_empty() {
            actions.push(Action::PublishStatus(changed));
        }
    }
}

fn indicators_for(status: &Status) -> Indicators {
    let call = match status.state {
        State::Idle | State::Error => Led::Off,
        State::Joining | State::Lobby | State::Leaving | State::Reconnecting => Led::Blink,
        State::InCall => Led::On,
    };
    Indicators {
        call,
        mic_muted: status.mic_muted && status.state != State::Idle,
        error: status.state == State::Error,
    }
}

#[cfg(test)]
mod tests;

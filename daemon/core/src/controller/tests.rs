use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const A: &str = "https://visio.numerique.gouv.fr/abc-defg-hij";
const B: &str = "https://visio.numerique.gouv.fr/klm-nopq-rst";

/// A controller plus a clock, so scenarios read like what happens in the room.
struct Room {
    c: Controller,
    t0: Instant,
    now: Instant,
    actions: Vec<Action>,
}

/// The default policy without retry jitter, so that scenarios can wait exact times.
fn exact() -> Policy {
    Policy {
        retry_jitter_percent: 0,
        ..Policy::default()
    }
}

impl Room {
    fn new() -> Self {
        Self::with(exact())
    }

    fn with(policy: Policy) -> Self {
        let t0 = Instant::now();
        Room {
            c: Controller::new(policy),
            t0,
            now: t0,
            actions: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) -> Result<Vec<Action>, Refusal> {
        let r = self.c.handle(self.now, input);
        if let Ok(a) = &r {
            self.actions = a.clone();
        }
        r
    }

    fn ok(&mut self, input: Input) -> Vec<Action> {
        self.feed(input).expect("input accepted")
    }

    fn join(&mut self, url: &str, source: Source) -> Result<Vec<Action>, Refusal> {
        self.feed(Input::Join {
            url: url.into(),
            source,
        })
    }

    fn session(&self) -> SessionId {
        self.c.session().expect("a session is running")
    }

    fn event(&mut self, event: SessionEvent) -> Vec<Action> {
        let id = self.session();
        self.ok(Input::Session { id, event })
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.ok(Input::Tick)
    }

    fn state(&self) -> State {
        self.c.status().state
    }

    fn in_call(&mut self, url: &str, source: Source) {
        self.join(url, source).unwrap();
        self.event(SessionEvent::Connected);
        assert_eq!(self.state(), State::InCall);
    }
}

fn started(actions: &[Action]) -> Vec<SessionId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSession { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn unreachable() -> SessionEvent {
    SessionEvent::Failed(Failure::new(FailureKind::Unreachable, "connection refused"))
}

#[test]
fn join_button_starts_a_session_and_connects() {
    let mut room = Room::new();
    let actions = room.join(A, Source::Button).unwrap();
    assert_eq!(started(&actions).len(), 1);
    assert_eq!(room.state(), State::Joining);
    assert!(actions.contains(&Action::PublishStatus(vec![
        StatusField::State,
        StatusField::Meeting
    ])));
    assert_eq!(room.c.indicators().call, Led::Blink);
    room.event(SessionEvent::Connected);
    assert_eq!(room.state(), State::InCall);
    assert_eq!(room.c.indicators().call, Led::On);
    let meeting = room.c.status().meeting.clone().unwrap();
    assert_eq!(meeting.url, A);
    assert_eq!(meeting.source, Source::Button);
}

#[test]
fn leave_stops_the_session_and_reaches_idle() {
    let mut room = Room::new();
    room.in_call(A, Source::DBus);
    let id = room.session();
    let actions = room.ok(Input::Leave {
        source: Source::DBus,
    });
    assert!(actions.contains(&Action::StopSession { id }));
    assert_eq!(room.state(), State::Leaving);
    room.ok(Input::Session {
        id,
        event: SessionEvent::Stopped,
    });
    assert_eq!(room.state(), State::Idle);
    assert_eq!(room.c.status().meeting, None);
}

#[test]
fn leave_reaches_idle_even_if_the_session_never_answers() {
    let mut room = Room::new();
    room.in_call(A, Source::DBus);
    room.ok(Input::Leave {
        source: Source::Button,
    });
    assert_eq!(
        room.c.poll_timeout(),
        Some(room.now + Duration::from_secs(5))
    );
    room.advance(Duration::from_secs(4));
    assert_eq!(room.state(), State::Leaving);
    room.advance(Duration::from_secs(1));
    assert_eq!(room.state(), State::Idle);
}

#[test]
fn joining_the_same_meeting_twice_is_a_no_op() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    let actions = room.join(A, Source::DBus).unwrap();
    assert!(actions.is_empty());
    assert_eq!(room.state(), State::InCall);
}

#[test]
fn manual_join_of_another_meeting_while_in_call_is_busy() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    let err = room.join(B, Source::DBus).unwrap_err();
    assert_eq!(err, Refusal::Busy { current: A.into() });
    assert_eq!(room.state(), State::InCall);
}

#[test]
fn calendar_join_never_interrupts_a_manual_call() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    assert!(matches!(
        room.join(B, Source::Schedule),
        Err(Refusal::Busy { .. })
    ));
}

#[test]
fn back_to_back_calendar_meetings_switch_after_the_first_session_stopped() {
    let mut room = Room::new();
    room.in_call(A, Source::Schedule);
    let old = room.session();
    let actions = room.join(B, Source::Schedule).unwrap();
    assert!(actions.contains(&Action::StopSession { id: old }));
    assert!(started(&actions).is_empty(), "never two sessions at once");
    let actions = room.ok(Input::Session {
        id: old,
        event: SessionEvent::Stopped,
    });
    assert_eq!(started(&actions).len(), 1);
    assert_eq!(room.c.status().meeting.as_ref().unwrap().url, B);
    assert_eq!(room.state(), State::Joining);
}

#[test]
fn retryable_failures_back_off_exponentially_then_give_up() {
    let mut room = Room::with(Policy {
        max_attempts: 4,
        ..exact()
    });
    room.join(A, Source::Button).unwrap();
    let mut waits = Vec::new();
    for attempt in 1..4 {
        room.event(unreachable());
        assert_eq!(room.state(), State::Joining);
        let retry = room.c.status().retry.expect("a retry is planned");
        assert_eq!(retry.next_attempt, attempt + 1);
        let wait = room.c.poll_timeout().unwrap() - room.now;
        waits.push(wait.as_secs());
        assert!(started(&room.advance(wait - Duration::from_millis(1))).is_empty());
        assert_eq!(started(&room.advance(Duration::from_millis(1))).len(), 1);
    }
    assert_eq!(waits, vec![1, 2, 4]);
    room.event(unreachable());
    assert_eq!(room.state(), State::Error);
    let error = room.c.status().last_error.clone().unwrap();
    assert_eq!(error.kind, FailureKind::Unreachable);
    assert!(
        error.message.contains("gave up after 4 attempts"),
        "{error:?}"
    );
    assert!(room.c.indicators().error);
}

#[test]
fn backoff_is_capped() {
    let policy = Policy {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        ..exact()
    };
    let retries = policy.retry_backoff();
    assert_eq!(retries.nominal(0), Duration::from_secs(1));
    assert_eq!(retries.nominal(6), Duration::from_secs(60));
    assert_eq!(retries.nominal(u32::MAX), Duration::from_secs(60));
}

/// The waits before each retry of one meeting, for a room with this seed.
fn retry_waits(policy: Policy) -> Vec<Duration> {
    let mut room = Room::with(policy);
    room.join(A, Source::Button).unwrap();
    let mut waits = Vec::new();
    for _ in 1..policy.max_attempts {
        room.event(unreachable());
        let wait = room.c.poll_timeout().unwrap() - room.now;
        waits.push(wait);
        room.advance(wait);
    }
    waits
}

#[test]
fn rooms_restarted_together_do_not_retry_in_lockstep() {
    let room = |name: &str| Policy {
        max_attempts: 6,
        retry_seed: crate::backoff::seed_from(name),
        ..Policy::default()
    };
    let a = retry_waits(room("Salle Gutenberg"));
    let b = retry_waits(room("Salle Lovelace"));
    assert_ne!(a, b);
    assert_eq!(
        a,
        retry_waits(room("Salle Gutenberg")),
        "same seed, same waits"
    );
    for (n, wait) in a.iter().enumerate() {
        let nominal = Duration::from_secs(1 << n).as_secs_f64();
        let wait = wait.as_secs_f64();
        assert!(
            wait >= nominal * 0.9 - 1e-3 && wait <= nominal * 1.1 + 1e-3,
            "retry {n}: {wait} s"
        );
    }
}

#[test]
fn a_room_that_does_not_exist_is_not_retried() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    let actions = room.event(SessionEvent::Failed(Failure::new(
        FailureKind::RoomNotFound,
        "no such meeting",
    )));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::ReportError(f) if f.kind == FailureKind::RoomNotFound)));
    assert_eq!(room.state(), State::Error);
    assert_eq!(room.c.poll_timeout(), None);
    // From Error, a new join works and clears the error.
    room.join(B, Source::Button).unwrap();
    assert_eq!(room.state(), State::Joining);
    assert_eq!(room.c.status().last_error, None);
}

#[test]
fn leave_from_error_returns_to_idle() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    room.event(SessionEvent::Failed(Failure::new(
        FailureKind::Refused,
        "401",
    )));
    room.ok(Input::Leave {
        source: Source::Button,
    });
    assert_eq!(room.state(), State::Idle);
}

#[test]
fn lobby_admission_then_in_call() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    room.event(SessionEvent::WaitingInLobby);
    assert_eq!(room.state(), State::Lobby);
    room.event(SessionEvent::Connected);
    assert_eq!(room.state(), State::InCall);
    assert_eq!(room.c.poll_timeout(), None);
}

#[test]
fn lobby_denial_goes_back_to_idle_with_the_reason() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    room.event(SessionEvent::WaitingInLobby);
    room.event(SessionEvent::Failed(Failure::new(
        FailureKind::Denied,
        "the host denied entry",
    )));
    assert_eq!(room.state(), State::Idle);
    assert_eq!(
        room.c.status().last_error.as_ref().unwrap().kind,
        FailureKind::Denied
    );
}

#[test]
fn lobby_times_out_into_error_after_the_session_stopped() {
    let mut room = Room::with(Policy {
        lobby_timeout: Duration::from_secs(600),
        ..Policy::default()
    });
    room.join(A, Source::Button).unwrap();
    room.event(SessionEvent::WaitingInLobby);
    let id = room.session();
    room.advance(Duration::from_secs(599));
    assert_eq!(room.state(), State::Lobby);
    let actions = room.advance(Duration::from_secs(1));
    assert!(actions.contains(&Action::StopSession { id }));
    assert_eq!(room.state(), State::Leaving);
    room.ok(Input::Session {
        id,
        event: SessionEvent::Stopped,
    });
    assert_eq!(room.state(), State::Error);
    assert_eq!(
        room.c.status().last_error.as_ref().unwrap().kind,
        FailureKind::LobbyTimeout
    );
}

#[test]
fn remote_party_may_mute_but_never_unmute() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    let actions = room.event(SessionEvent::RemoteMute(Track::Microphone));
    assert!(room.c.status().mic_muted);
    assert!(actions.contains(&Action::PublishStatus(vec![StatusField::MicMuted])));
    assert!(room.c.indicators().mic_muted);
    for source in [Source::Fleet, Source::Meeting] {
        let err = room
            .feed(Input::SetMicMuted {
                muted: false,
                source,
            })
            .unwrap_err();
        assert!(matches!(err, Refusal::NotPermitted { .. }));
        assert!(room.c.status().mic_muted);
        assert!(room
            .feed(Input::SetCameraEnabled {
                enabled: true,
                source
            })
            .is_err());
    }
    // People in the room can unmute.
    let actions = room.ok(Input::SetMicMuted {
        muted: false,
        source: Source::Button,
    });
    assert!(actions.contains(&Action::ApplyMicMuted(false)));
    // The fleet may mute.
    room.ok(Input::SetMicMuted {
        muted: true,
        source: Source::Fleet,
    });
    assert!(room.c.status().mic_muted);
}

#[test]
fn a_remote_mute_that_crosses_an_unmute_ends_with_the_session_told_the_status() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    room.ok(Input::SetMicMuted {
        muted: true,
        source: Source::Button,
    });
    // The room unmutes; the session, not yet told, is muted by the server meanwhile.
    let unmute = room.ok(Input::SetMicMuted {
        muted: false,
        source: Source::Button,
    });
    assert!(unmute.contains(&Action::ApplyMicMuted(false)));
    let actions = room.event(SessionEvent::RemoteMute(Track::Microphone));
    // The session applies ApplyMicMuted(false) then this: it ends muted, as the status says.
    assert!(room.c.status().mic_muted);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::ApplyMicMuted(_)))
            .collect::<Vec<_>>(),
        [&Action::ApplyMicMuted(true)]
    );
    let actions = room.event(SessionEvent::RemoteMute(Track::Camera));
    assert!(actions.contains(&Action::ApplyCameraEnabled(false)));
}

#[test]
fn remote_camera_off_is_obeyed_and_sticks() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    room.event(SessionEvent::RemoteMute(Track::Camera));
    assert!(!room.c.status().camera_enabled);
}

#[test]
fn mute_survives_a_reconnect_and_resets_for_the_next_meeting() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    room.ok(Input::SetMicMuted {
        muted: true,
        source: Source::Button,
    });
    room.event(unreachable());
    let actions = room.advance(Duration::from_secs(1));
    assert!(
        matches!(
            actions.first(),
            Some(Action::StartSession {
                mic_muted: true,
                ..
            })
        ),
        "{actions:?}"
    );
    room.event(SessionEvent::Connected);
    assert!(room.c.status().mic_muted);
    room.ok(Input::Leave {
        source: Source::Button,
    });
    room.event(SessionEvent::Stopped);
    let actions = room.join(B, Source::Button).unwrap();
    assert!(matches!(
        actions.first(),
        Some(Action::StartSession {
            mic_muted: false,
            camera_enabled: true,
            ..
        })
    ));
}

#[test]
fn join_muted_policy_applies_at_every_meeting_start() {
    let mut room = Room::with(Policy {
        join_muted: true,
        ..Policy::default()
    });
    let actions = room.join(A, Source::Schedule).unwrap();
    assert!(matches!(
        actions.first(),
        Some(Action::StartSession {
            mic_muted: true,
            ..
        })
    ));
}

#[test]
fn events_from_an_old_session_are_ignored() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    let old = room.session();
    room.event(unreachable());
    room.advance(Duration::from_secs(1));
    let actions = room.ok(Input::Session {
        id: old,
        event: SessionEvent::Connected,
    });
    assert!(actions.is_empty());
    assert_eq!(room.state(), State::Joining);
}

#[test]
fn meeting_ended_by_the_host_returns_to_idle_with_the_reason() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    room.event(SessionEvent::Participants(vec![Participant {
        identity: "p1".into(),
        name: "Alice".into(),
        audio: true,
        video: true,
    }]));
    assert_eq!(room.c.status().participants.len(), 1);
    room.event(SessionEvent::Ended(EndReason::Removed));
    assert_eq!(room.state(), State::Idle);
    assert_eq!(room.c.status().last_end, Some(EndReason::Removed));
    assert!(room.c.status().participants.is_empty());
}

#[test]
fn volume_out_of_range_is_refused() {
    let mut room = Room::new();
    assert!(matches!(
        room.feed(Input::SetVolume {
            percent: 101,
            source: Source::DBus
        }),
        Err(Refusal::InvalidArgument { .. })
    ));
    let actions = room.ok(Input::SetVolume {
        percent: 80,
        source: Source::DBus,
    });
    assert!(actions.contains(&Action::ApplyVolume(80)));
    assert_eq!(room.c.status().volume, 80);
}

#[test]
fn leave_while_waiting_to_retry_goes_idle_at_once() {
    let mut room = Room::new();
    room.join(A, Source::Button).unwrap();
    room.event(unreachable());
    assert_eq!(room.c.session(), None);
    room.ok(Input::Leave {
        source: Source::Button,
    });
    assert_eq!(room.state(), State::Idle);
    assert_eq!(room.c.poll_timeout(), None);
    assert!(started(&room.advance(Duration::from_secs(120))).is_empty());
    let _ = room.t0;
}

// ---- property tests: random sequences of inputs, invariants after every step ----

#[derive(Debug, Clone)]
enum Step {
    Join(bool, Source),
    Leave(Source),
    Mute(bool, Source),
    Camera(bool, Source),
    /// An event for the current session (or, with `stale`, for an older one).
    Event(EventKind, bool),
    Wait(u64),
}

#[derive(Debug, Clone, Copy)]
enum EventKind {
    Lobby,
    Connected,
    RemoteMuteMic,
    RemoteMuteCam,
    Fail(FailureKind),
    Ended,
    Stopped,
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Button),
        Just(Source::DBus),
        Just(Source::Schedule),
        Just(Source::Fleet),
        Just(Source::Meeting),
    ]
}

fn failure_kind() -> impl Strategy<Value = FailureKind> {
    prop_oneof![
        Just(FailureKind::Unreachable),
        Just(FailureKind::Protocol),
        Just(FailureKind::Media),
        Just(FailureKind::RoomNotFound),
        Just(FailureKind::Refused),
        Just(FailureKind::Denied),
        Just(FailureKind::LobbyTimeout),
    ]
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        1 => Just(EventKind::Lobby),
        3 => Just(EventKind::Connected),
        1 => Just(EventKind::RemoteMuteMic),
        1 => Just(EventKind::RemoteMuteCam),
        2 => failure_kind().prop_map(EventKind::Fail),
        1 => Just(EventKind::Ended),
        2 => Just(EventKind::Stopped),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (any::<bool>(), source()).prop_map(|(b, s)| Step::Join(b, s)),
        1 => source().prop_map(Step::Leave),
        1 => (any::<bool>(), source()).prop_map(|(m, s)| Step::Mute(m, s)),
        1 => (any::<bool>(), source()).prop_map(|(e, s)| Step::Camera(e, s)),
        4 => (event_kind(), proptest::bool::weighted(0.1)).prop_map(|(e, s)| Step::Event(e, s)),
        2 => (0u64..700_000).prop_map(Step::Wait),
    ]
}

fn to_event(kind: EventKind) -> SessionEvent {
    match kind {
        EventKind::Lobby => SessionEvent::WaitingInLobby,
        EventKind::Connected => SessionEvent::Connected,
        EventKind::RemoteMuteMic => SessionEvent::RemoteMute(Track::Microphone),
        EventKind::RemoteMuteCam => SessionEvent::RemoteMute(Track::Camera),
        EventKind::Fail(k) => SessionEvent::Failed(Failure::new(k, "boom")),
        EventKind::Ended => SessionEvent::Ended(EndReason::RoomDeleted),
        EventKind::Stopped => SessionEvent::Stopped,
    }
}

/// Plays `steps` and checks the invariants after each one. Returns the room and the set of
/// sessions the caller believes alive.
fn play(steps: &[Step]) -> (Room, BTreeSet<SessionId>) {
    let mut room = Room::new();
    let mut alive: BTreeSet<SessionId> = BTreeSet::new();
    let mut ever_started: BTreeSet<SessionId> = BTreeSet::new();
    for step in steps {
        let before = room.c.status().clone();
        let mut input_session = None;
        let input = match step.clone() {
            Step::Join(a, source) => Input::Join {
                url: if a { A } else { B }.into(),
                source,
            },
            Step::Leave(source) => Input::Leave { source },
            Step::Mute(muted, source) => Input::SetMicMuted { muted, source },
            Step::Camera(enabled, source) => Input::SetCameraEnabled { enabled, source },
            Step::Event(kind, stale) => {
                let id = match (room.c.session(), stale) {
                    (Some(id), false) => id,
                    (Some(SessionId(n)), true) => SessionId(n.saturating_sub(1)),
                    (None, _) => SessionId(0),
                };
                input_session = Some((id, kind));
                Input::Session {
                    id,
                    event: to_event(kind),
                }
            }
            Step::Wait(ms) => {
                room.now += Duration::from_millis(ms);
                Input::Tick
            }
        };
        let tracked_before = room.c.session();
        let leaving_before = room.state() == State::Leaving;
        let result = room.feed(input);
        // A session that reports its own end is gone, whatever the controller thinks of it.
        if let Some((id, EventKind::Fail(_) | EventKind::Ended | EventKind::Stopped)) =
            input_session
        {
            alive.remove(&id);
        }
        // A session that did not stop within the leave timeout is killed by the caller.
        if let (Some(id), true, Step::Wait(_)) = (tracked_before, leaving_before, step) {
            if room.c.session() != Some(id) {
                alive.remove(&id);
            }
        }
        if let Ok(actions) = &result {
            for action in actions {
                match action {
                    Action::StartSession { id, .. } => {
                        assert!(ever_started.insert(*id), "session id reused: {id:?}");
                        assert!(alive.is_empty(), "started {id:?} while {alive:?} alive");
                        alive.insert(*id);
                    }
                    Action::StopSession { id } => {
                        assert!(alive.contains(id), "stopping a session not alive: {id:?}");
                    }
                    _ => {}
                }
            }
        }
        let status = room.c.status();
        // Never two meeting sessions, and the controller never loses track of a live one.
        let tracked: BTreeSet<_> = room.c.session().into_iter().collect();
        assert!(
            alive.is_subset(&tracked),
            "alive {alive:?}, tracked {tracked:?}"
        );
        // State and meeting agree.
        match status.state {
            State::Idle | State::Error => assert_eq!(status.meeting, None),
            _ => assert!(status.meeting.is_some()),
        }
        if status.state == State::Idle || status.state == State::Error {
            assert!(status.participants.is_empty());
        }
        // Remote parties never unmute nor turn the camera on.
        let remote_or_session = match step {
            Step::Mute(_, s) | Step::Camera(_, s) => s.is_remote(),
            Step::Event(..) | Step::Wait(_) | Step::Leave(_) => true,
            Step::Join(..) => false,
        };
        let new_meeting_started = result
            .as_ref()
            .map(|a| {
                a.iter()
                    .any(|a| matches!(a, Action::StartSession { attempt: 1, .. }))
            })
            .unwrap_or(false);
        if remote_or_session && !new_meeting_started {
            if before.mic_muted {
                assert!(status.mic_muted, "unmuted by {step:?}");
            }
            if !before.camera_enabled {
                assert!(!status.camera_enabled, "camera turned on by {step:?}");
            }
        }
        assert!(status.volume <= 100);
    }
    (room, alive)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn invariants_hold_for_any_sequence(steps in proptest::collection::vec(step(), 0..60)) {
        play(&steps);
    }

    #[test]
    fn leave_always_reaches_idle(steps in proptest::collection::vec(step(), 0..60), answers in any::<bool>()) {
        let (mut room, _) = play(&steps);
        room.ok(Input::Leave { source: Source::Button });
        if answers {
            if let Some(id) = room.c.session() {
                room.ok(Input::Session { id, event: SessionEvent::Stopped });
            }
        } else {
            room.advance(Duration::from_secs(5));
        }
        prop_assert_eq!(room.state(), State::Idle);
        prop_assert_eq!(room.c.session(), None);
        prop_assert_eq!(room.c.poll_timeout(), None);
    }

    #[test]
    fn every_wait_the_controller_asks_for_is_bounded(steps in proptest::collection::vec(step(), 0..60)) {
        let (room, _) = play(&steps);
        if let Some(at) = room.c.poll_timeout() {
            prop_assert!(at <= room.now + Duration::from_secs(600));
        }
    }
}

#[test]
fn a_rejoin_after_an_unclean_restart_starts_muted_if_the_room_was_muted() {
    // join_muted = false: a new meeting would start live; a rejoin keeps the mute it had.
    let mut room = Room::new();
    let actions = room.ok(Input::Rejoin {
        meeting: Meeting {
            url: A.into(),
            source: Source::Schedule,
        },
        mic_muted: true,
        camera_enabled: false,
    });
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::StartSession {
            mic_muted: true,
            camera_enabled: false,
            ..
        }
    )));
    assert!(room.c.status().mic_muted);
    assert!(!room.c.status().camera_enabled);
    assert_eq!(
        room.c.status().meeting.as_ref().map(|m| m.source),
        Some(Source::Schedule)
    );
    room.event(SessionEvent::Connected);
    assert_eq!(room.state(), State::InCall);
    // Not over a meeting already running.
    let refused = room.feed(Input::Rejoin {
        meeting: Meeting {
            url: B.into(),
            source: Source::DBus,
        },
        mic_muted: false,
        camera_enabled: true,
    });
    assert!(matches!(refused, Err(Refusal::Busy { .. })));
    assert!(room.c.status().mic_muted);
}

#[test]
fn no_media_path_shows_reconnecting_with_the_reason_until_media_flows_again() {
    let mut room = Room::new();
    room.in_call(A, Source::Button);
    let reason = "no network path to the media server: is UDP blocked?";
    let actions = room.event(SessionEvent::MediaInterrupted(reason.into()));
    assert_eq!(room.state(), State::Reconnecting);
    assert_eq!(room.c.status().media_problem.as_deref(), Some(reason));
    assert_eq!(room.c.indicators().call, Led::Blink);
    assert!(actions.contains(&Action::PublishStatus(vec![
        StatusField::State,
        StatusField::Health
    ])));
    room.event(SessionEvent::MediaRestored);
    assert_eq!(room.state(), State::InCall);
    assert_eq!(room.c.status().media_problem, None);
    assert_eq!(room.c.indicators().call, Led::On);
    // While joining (before the call), a media report does not pretend the room is in it.
    room.ok(Input::Leave {
        source: Source::Button,
    });
    room.event(SessionEvent::Stopped);
    room.join(B, Source::Button).unwrap();
    room.event(SessionEvent::MediaInterrupted(reason.into()));
    assert_eq!(room.state(), State::Joining);
}

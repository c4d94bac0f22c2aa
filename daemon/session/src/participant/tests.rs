use super::*;
use proptest::prelude::*;

const MIC: &str = "TR_mic";
const CAM: &str = "TR_cam";

/// The pipelines and the server's view of our tracks, as the effects leave them.
#[derive(Debug, Clone, PartialEq)]
struct World {
    mic_muted: bool,
    camera_enabled: bool,
    server_muted: HashMap<String, bool>,
    remote_mutes: Vec<Track>,
}

impl World {
    fn new(sending: Sending) -> Self {
        World {
            mic_muted: sending.mic_muted,
            camera_enabled: sending.camera_enabled,
            server_muted: HashMap::new(),
            remote_mutes: Vec::new(),
        }
    }

    fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Microphone { muted } => self.mic_muted = *muted,
                Effect::Camera { enabled } => self.camera_enabled = *enabled,
                Effect::Signal(request) if matches!(**request, Req::Mute(_)) => {
                    let Req::Mute(m) = &**request else { continue };
                    self.server_muted.insert(m.sid.clone(), m.muted);
                }
                Effect::Report(SessionEvent::RemoteMute(t)) => self.remote_mutes.push(*t),
                _ => {}
            }
        }
    }
}

fn unmuted() -> Sending {
    Sending {
        mic_muted: false,
        camera_enabled: true,
    }
}

/// A participant joined with both tracks published, and the world its effects made.
fn in_call(sending: Sending) -> (LocalParticipant, World) {
    let mut p = LocalParticipant::new(sending);
    let mut w = World::new(sending);
    w.apply(&p.handle(Input::Joined {
        my_sid: "PA_me".into(),
        others: vec![],
    }));
    for (track, sid) in [(Track::Microphone, MIC), (Track::Camera, CAM)] {
        w.apply(&p.handle(Input::TrackPublished {
            track,
            sid: sid.into(),
            muted: match track {
                Track::Microphone => sending.mic_muted,
                Track::Camera => !sending.camera_enabled,
            },
        }));
    }
    (p, w)
}

fn info(sid: &str, name: &str) -> proto::ParticipantInfo {
    proto::ParticipantInfo {
        sid: sid.into(),
        identity: format!("id-{sid}"),
        name: name.into(),
        state: proto::participant_info::State::Active as i32,
        ..Default::default()
    }
}

fn speaker(sid: &str, level: f32, active: bool) -> proto::SpeakerInfo {
    proto::SpeakerInfo {
        sid: sid.into(),
        level,
        active,
    }
}

#[test]
fn a_server_mute_mutes_the_microphone_reports_it_and_survives_a_resume() {
    let (mut p, mut w) = in_call(unmuted());
    w.apply(&p.handle(Input::ServerMute {
        sid: MIC.into(),
        muted: true,
    }));
    assert!(w.mic_muted);
    assert_eq!(w.remote_mutes, vec![Track::Microphone]);
    assert_eq!(w.server_muted.get(MIC), Some(&true));
    // The bug this module exists for: a resume restated a stale "unmuted".
    w.apply(&p.handle(Input::Resumed));
    assert!(w.mic_muted, "the resume unmuted the room");
    assert!(p.sending().mic_muted);
    // And a full rejoin.
    w.apply(&p.handle(Input::Joined {
        my_sid: "PA_me2".into(),
        others: vec![],
    }));
    assert!(w.mic_muted, "the rejoin unmuted the room");
}

#[test]
fn a_server_unmute_is_never_obeyed() {
    let (mut p, mut w) = in_call(Sending {
        mic_muted: true,
        camera_enabled: false,
    });
    for sid in [MIC, CAM] {
        let effects = p.handle(Input::ServerMute {
            sid: sid.into(),
            muted: false,
        });
        assert!(effects.is_empty(), "{effects:?}");
    }
    w.apply(&p.handle(Input::Resumed));
    assert!(w.mic_muted && !w.camera_enabled);
}

#[test]
fn a_server_mute_of_the_camera_turns_it_off() {
    let (mut p, mut w) = in_call(unmuted());
    w.apply(&p.handle(Input::ServerMute {
        sid: CAM.into(),
        muted: true,
    }));
    assert!(!w.camera_enabled);
    assert_eq!(w.remote_mutes, vec![Track::Camera]);
    assert_eq!(w.server_muted.get(CAM), Some(&true));
}

#[test]
fn a_server_mute_of_an_already_muted_track_or_of_another_track_reports_nothing() {
    let (mut p, _) = in_call(Sending {
        mic_muted: true,
        camera_enabled: true,
    });
    assert!(p
        .handle(Input::ServerMute {
            sid: MIC.into(),
            muted: true
        })
        .is_empty());
    assert!(p
        .handle(Input::ServerMute {
            sid: "TR_someone_else".into(),
            muted: true
        })
        .is_empty());
}

#[test]
fn meets_participant_muted_message_is_only_a_notification() {
    let (mut p, mut w) = in_call(unmuted());
    w.apply(&p.handle(Input::MeetMessage {
        kind: "participantMuted".into(),
        from: "host".into(),
    }));
    assert!(!w.mic_muted);
    assert!(!p.sending().mic_muted);
    assert!(w.remote_mutes.is_empty());
}

#[test]
fn the_daemons_mute_is_told_to_the_server_once_the_track_is_published() {
    let mut p = LocalParticipant::new(unmuted());
    p.handle(Input::Joined {
        my_sid: "PA_me".into(),
        others: vec![],
    });
    // Before TrackPublished: only the pipeline (the AddTrack carries the state).
    assert_eq!(
        p.handle(Input::SetMicMuted(true)),
        vec![Effect::Microphone { muted: true }]
    );
    // The AddTrack said "unmuted"; the answer comes after the mute: the server is told.
    assert_eq!(
        p.handle(Input::TrackPublished {
            track: Track::Microphone,
            sid: MIC.into(),
            muted: false,
        }),
        vec![mute_request(MIC, true)]
    );
    let effects = p.handle(Input::SetMicMuted(false));
    assert_eq!(effects[0], Effect::Microphone { muted: false });
    assert_eq!(effects[1], mute_request(MIC, false));
    // Setting the same value again does nothing.
    assert!(p.handle(Input::SetMicMuted(false)).is_empty());
}

#[test]
fn a_resume_restates_the_pipelines_and_the_servers_view() {
    let (mut p, _) = in_call(Sending {
        mic_muted: true,
        camera_enabled: false,
    });
    let effects = p.handle(Input::Resumed);
    assert!(effects.contains(&Effect::Microphone { muted: true }));
    assert!(effects.contains(&Effect::Camera { enabled: false }));
    assert!(effects.contains(&mute_request(MIC, true)));
    assert!(effects.contains(&mute_request(CAM, true)));
    assert_eq!(
        p.published(),
        vec![
            (Track::Camera, CAM.to_owned(), true),
            (Track::Microphone, MIC.to_owned(), true)
        ]
    );
}

#[test]
fn a_rejoin_forgets_the_old_track_sids() {
    let (mut p, _) = in_call(unmuted());
    p.handle(Input::Joined {
        my_sid: "PA_new".into(),
        others: vec![],
    });
    assert!(p.published().is_empty());
    // A mute for the old sid is not ours any more.
    assert!(p
        .handle(Input::ServerMute {
            sid: MIC.into(),
            muted: true
        })
        .is_empty());
}

#[test]
fn participants_are_reported_sorted_when_they_change_and_leave() {
    let mut p = LocalParticipant::new(unmuted());
    let effects = p.handle(Input::Joined {
        my_sid: "PA_me".into(),
        others: vec![
            info("PA_b", "Bob"),
            info("PA_a", "Alice"),
            info("PA_me", "Me"),
        ],
    });
    let Some(Effect::Report(SessionEvent::Participants(list))) = effects.last() else {
        panic!("{effects:?}")
    };
    let names: Vec<_> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Alice", "Bob"]);
    // The same again: nothing to report.
    assert!(p
        .handle(Input::ParticipantUpdate(vec![info("PA_a", "Alice")]))
        .is_empty());
    let mut gone = info("PA_a", "Alice");
    gone.state = proto::participant_info::State::Disconnected as i32;
    let effects = p.handle(Input::ParticipantUpdate(vec![gone]));
    assert!(matches!(
        &effects[..],
        [Effect::Report(SessionEvent::Participants(l))] if l.len() == 1 && l[0].name == "Bob"
    ));
}

#[test]
fn an_older_participant_version_does_not_overwrite_a_newer_one() {
    let mut p = LocalParticipant::new(unmuted());
    let mut newer = info("PA_a", "Alice B.");
    newer.version = 5;
    p.handle(Input::Joined {
        my_sid: "PA_me".into(),
        others: vec![newer],
    });
    let mut older = info("PA_a", "Alice");
    older.version = 3;
    assert!(p.handle(Input::ParticipantUpdate(vec![older])).is_empty());
    assert_eq!(p.participant("PA_a").unwrap().name, "Alice B.");
}

#[test]
fn speakers_changed_deltas_are_merged_and_the_loudest_becomes_active() {
    let mut p = LocalParticipant::new(unmuted());
    p.handle(Input::Joined {
        my_sid: "PA_me".into(),
        others: vec![],
    });
    assert_eq!(
        p.handle(Input::SpeakersChanged(vec![
            speaker("PA_a", 0.3, true),
            speaker("PA_me", 0.9, true)
        ])),
        vec![Effect::ActiveSpeaker("PA_a".into())]
    );
    // A delta that only adds a louder speaker: A is still speaking (not in the delta).
    assert_eq!(
        p.handle(Input::SpeakersChanged(vec![speaker("PA_b", 0.5, true)])),
        vec![Effect::ActiveSpeaker("PA_b".into())]
    );
    // B stops: A is the loudest left.
    assert_eq!(
        p.handle(Input::SpeakersChanged(vec![speaker("PA_b", 0.0, false)])),
        vec![Effect::ActiveSpeaker("PA_a".into())]
    );
    // A stops too: nobody speaks; the last speaker stays shown.
    assert!(p
        .handle(Input::SpeakersChanged(vec![speaker("PA_a", 0.0, false)]))
        .is_empty());
}

#[derive(Debug, Clone)]
enum Step {
    Mic(bool),
    Camera(bool),
    ServerMute(bool, bool),
    Resumed,
    Rejoin,
    Message,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(Step::Mic),
        any::<bool>().prop_map(Step::Camera),
        (any::<bool>(), any::<bool>()).prop_map(|(mic, muted)| Step::ServerMute(mic, muted)),
        Just(Step::Resumed),
        Just(Step::Rejoin),
        Just(Step::Message),
    ]
}

/// Our track's sid on the `generation`th connection (a rejoin gets new sids).
fn track_sid(base: &str, generation: u32) -> String {
    if generation == 0 {
        base.to_owned()
    } else {
        format!("{base}{generation}")
    }
}

proptest! {
    /// Whatever happens, the pipelines send what `sending()` says, the server is never told
    /// otherwise for a published track, and only the daemon unmutes.
    #[test]
    fn what_is_sent_always_equals_what_is_reported(
        start in (any::<bool>(), any::<bool>()),
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let sending = Sending { mic_muted: start.0, camera_enabled: start.1 };
        let (mut p, mut w) = in_call(sending);
        let mut generation = 0u32;
        for s in steps {
            let before = p.sending();
            let by_daemon = matches!(s, Step::Mic(_) | Step::Camera(_));
            let input = match s {
                Step::Mic(m) => Input::SetMicMuted(m),
                Step::Camera(c) => Input::SetCameraEnabled(c),
                Step::ServerMute(mic, muted) => Input::ServerMute {
                    sid: track_sid(if mic { MIC } else { CAM }, generation),
                    muted,
                },
                Step::Resumed => Input::Resumed,
                Step::Rejoin => {
                    generation += 1;
                    w.server_muted.clear();
                    w.apply(&p.handle(Input::Joined { my_sid: format!("PA_{generation}"), others: vec![] }));
                    for (track, sid) in [(Track::Microphone, MIC), (Track::Camera, CAM)] {
                        let muted = match track {
                            Track::Microphone => p.sending().mic_muted,
                            Track::Camera => !p.sending().camera_enabled,
                        };
                        w.apply(&p.handle(Input::TrackPublished { track, sid: track_sid(sid, generation), muted }));
                    }
                    Input::Resumed
                }
                Step::Message => Input::MeetMessage { kind: "participantMuted".into(), from: "x".into() },
            };
            w.apply(&p.handle(input));
            let now = p.sending();
            prop_assert_eq!(w.mic_muted, now.mic_muted);
            prop_assert_eq!(w.camera_enabled, now.camera_enabled);
            for (_, sid, muted) in p.published() {
                if let Some(told) = w.server_muted.get(&sid) {
                    prop_assert_eq!(*told, muted);
                }
            }
            if !by_daemon {
                prop_assert!(now.mic_muted || !before.mic_muted, "unmuted by a remote party");
                prop_assert!(!now.camera_enabled || before.camera_enabled, "camera on by a remote party");
            }
        }
    }
}

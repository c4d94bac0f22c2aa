//! The room following its calendar: scenarios and invariants of the planner.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use visio_room_schedule::planner::{
    Action, CallOrigin, CallState, LeaveReason, ManualCallPolicy, MeetingKey, Planner,
    PlannerPolicy,
};
use visio_room_schedule::{parse_instant, Occurrence, Status};

fn t(s: &str) -> DateTime<Utc> {
    parse_instant(s).unwrap()
}

fn meeting(uid: &str, start: DateTime<Utc>, minutes: i64, url: Option<&str>) -> Occurrence {
    let end = start + TimeDelta::minutes(minutes);
    Occurrence {
        uid: uid.into(),
        recurrence_id: None,
        start: start.to_rfc3339(),
        end: end.to_rfc3339(),
        all_day: false,
        summary: Some(uid.into()),
        status: Status::Confirmed,
        meeting_url: url.map(str::to_owned),
        start_utc: start,
        end_utc: end,
        declined: false,
        private: false,
        floating: false,
    }
}

const URL_A: &str = "https://visio.numerique.gouv.fr/aaa-aaaa-aaa";
const URL_B: &str = "https://visio.numerique.gouv.fr/bbb-bbbb-bbb";

fn key(uid: &str) -> MeetingKey {
    MeetingKey {
        uid: uid.into(),
        recurrence_id: None,
    }
}

fn in_scheduled(uid: &str, alone: bool) -> CallState {
    CallState::InCall {
        origin: CallOrigin::Scheduled(key(uid)),
        alone,
    }
}

#[test]
fn auto_joins_two_minutes_before_start() {
    let mut p = Planner::new(PlannerPolicy::default());
    let occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A))];
    let plan = p.plan(&occ, t("2024-06-03T08:57:59Z"), &CallState::Idle);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.wake_at, Some(t("2024-06-03T08:58:00Z")));
    let plan = p.plan(&occ, t("2024-06-03T08:58:00Z"), &CallState::Idle);
    assert_eq!(
        plan.actions,
        [Action::Join {
            meeting: key("a"),
            url: URL_A.into()
        }]
    );
}

#[test]
fn leaves_at_the_end_when_alone_and_after_the_grace_otherwise() {
    let mut p = Planner::new(PlannerPolicy::default());
    let occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A))];
    let end = t("2024-06-03T10:00:00Z");
    assert!(p
        .plan(&occ, end - TimeDelta::seconds(1), &in_scheduled("a", true))
        .actions
        .is_empty());
    assert_eq!(
        p.plan(&occ, end, &in_scheduled("a", true)).actions,
        [Action::Leave {
            reason: LeaveReason::Ended
        }]
    );
    // People are still talking: stay through the grace period.
    assert!(p
        .plan(&occ, end + TimeDelta::minutes(4), &in_scheduled("a", false))
        .actions
        .is_empty());
    assert_eq!(
        p.plan(&occ, end + TimeDelta::minutes(5), &in_scheduled("a", false))
            .actions,
        [Action::Leave {
            reason: LeaveReason::Ended
        }]
    );
}

#[test]
fn back_to_back_meetings_switch_at_the_boundary() {
    let mut p = Planner::new(PlannerPolicy::default());
    let occ = [
        meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A)),
        meeting("b", t("2024-06-03T10:00:00Z"), 30, Some(URL_B)),
    ];
    // During b's lead time, a keeps the room.
    assert!(p
        .plan(&occ, t("2024-06-03T09:59:00Z"), &in_scheduled("a", false))
        .actions
        .is_empty());
    assert_eq!(
        p.plan(&occ, t("2024-06-03T10:00:00Z"), &in_scheduled("a", false))
            .actions,
        [Action::Switch {
            meeting: key("b"),
            url: URL_B.into()
        }]
    );
}

#[test]
fn a_meeting_cancelled_while_joined_is_left() {
    let mut p = Planner::new(PlannerPolicy::default());
    let mut occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A))];
    occ[0].status = Status::Cancelled;
    assert_eq!(
        p.plan(&occ, t("2024-06-03T09:10:00Z"), &in_scheduled("a", false))
            .actions,
        [Action::Leave {
            reason: LeaveReason::Cancelled
        }]
    );
    // Removed from the calendar altogether: left too.
    assert_eq!(
        p.plan(&[], t("2024-06-03T09:10:00Z"), &in_scheduled("a", false))
            .actions,
        [Action::Leave {
            reason: LeaveReason::Cancelled
        }]
    );
}

#[test]
fn a_call_started_by_hand_is_offered_the_meeting_not_interrupted() {
    let manual = CallState::InCall {
        origin: CallOrigin::Manual,
        alone: false,
    };
    let occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A))];
    let mut p = Planner::new(PlannerPolicy::default());
    assert_eq!(
        p.plan(&occ, t("2024-06-03T09:00:00Z"), &manual).actions,
        [Action::Offer {
            meeting: key("a"),
            url: URL_A.into()
        }]
    );
    // Offered once, not at every tick.
    assert!(p
        .plan(&occ, t("2024-06-03T09:01:00Z"), &manual)
        .actions
        .is_empty());

    let mut p = Planner::new(PlannerPolicy {
        manual_call: ManualCallPolicy::Switch,
        ..PlannerPolicy::default()
    });
    assert!(matches!(
        p.plan(&occ, t("2024-06-03T09:00:00Z"), &manual).actions[..],
        [Action::Switch { .. }]
    ));
}

#[test]
fn a_meeting_without_a_link_is_shown_but_not_joined() {
    let mut p = Planner::new(PlannerPolicy::default());
    let occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, None)];
    let plan = p.plan(&occ, t("2024-06-03T09:00:00Z"), &CallState::Idle);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.next.len(), 1);
    assert!(!plan.next[0].auto_join);
}

#[test]
fn a_meeting_left_by_hand_is_not_joined_again() {
    let mut p = Planner::new(PlannerPolicy::default());
    let occ = [meeting("a", t("2024-06-03T09:00:00Z"), 60, Some(URL_A))];
    assert_eq!(
        p.plan(&occ, t("2024-06-03T09:00:00Z"), &CallState::Idle)
            .actions
            .len(),
        1
    );
    assert!(p
        .plan(&occ, t("2024-06-03T09:05:00Z"), &CallState::Idle)
        .actions
        .is_empty());
}

#[test]
fn next_meetings_skip_cancelled_and_past_ones() {
    let mut p = Planner::new(PlannerPolicy::default());
    let mut occ = vec![
        meeting("past", t("2024-06-03T07:00:00Z"), 60, Some(URL_A)),
        meeting("now", t("2024-06-03T08:30:00Z"), 60, Some(URL_A)),
        meeting("cancelled", t("2024-06-03T10:00:00Z"), 60, Some(URL_A)),
        meeting("later", t("2024-06-03T11:00:00Z"), 60, None),
    ];
    occ[2].status = Status::Cancelled;
    let plan = p.plan(&occ, t("2024-06-03T09:00:00Z"), &CallState::Idle);
    let uids: Vec<&str> = plan.next.iter().map(|n| n.meeting.uid.as_str()).collect();
    assert_eq!(uids, ["now", "later"]);
}

// ---- invariants over random calendars and clocks ----

#[derive(Debug, Clone)]
struct Spec {
    start_min: i64,
    minutes: i64,
    status: u8,
    link: bool,
    cancel_at_min: Option<i64>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0i64..600,
        0i64..120,
        0u8..6,
        proptest::bool::weighted(0.8),
        proptest::option::weighted(0.15, 0i64..700),
    )
        .prop_map(|(start_min, minutes, status, link, cancel_at_min)| Spec {
            start_min,
            minutes,
            status,
            link,
            cancel_at_min,
        })
}

#[derive(Debug, Clone)]
struct Step {
    seconds: i64,
    alone: bool,
    manual: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (10i64..120, any::<bool>(), 0u8..100).prop_map(|(seconds, alone, manual)| Step {
        seconds,
        alone,
        manual,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn planned_joins_are_inside_meetings_and_nothing_is_joined_twice(
        specs in proptest::collection::vec(spec(), 0..10),
        steps in proptest::collection::vec(step(), 50..600),
        lead in 0u32..600,
        grace in 0u32..900,
        switch_manual in any::<bool>(),
    ) {
        let t0 = t("2024-06-03T08:00:00Z");
        let policy = PlannerPolicy {
            join_lead_s: lead,
            leave_grace_s: grace,
            manual_call: if switch_manual { ManualCallPolicy::Switch } else { ManualCallPolicy::Offer },
            ..PlannerPolicy::default()
        };
        let lead = TimeDelta::seconds(lead.into());
        let grace_d = TimeDelta::seconds(grace.into());
        let mut planner = Planner::new(policy);
        let urls = [URL_A, URL_B];
        let base: Vec<Occurrence> = specs.iter().enumerate().map(|(i, s)| {
            let mut o = meeting(&format!("m{i}"), t0 + TimeDelta::minutes(s.start_min), s.minutes,
                                s.link.then_some(urls[i % 2]));
            o.status = match s.status { 0 => Status::Cancelled, 1 => Status::Tentative, _ => Status::Confirmed };
            o
        }).collect();

        let mut now = t0 - TimeDelta::minutes(15);
        let mut call = CallState::Idle;
        let mut joined: HashSet<MeetingKey> = HashSet::new();
        for s in &steps {
            now += TimeDelta::seconds(s.seconds);
            // Meetings cancelled in the calendar while the room follows it.
            let occ: Vec<Occurrence> = base.iter().zip(&specs).map(|(o, sp)| {
                let mut o = o.clone();
                if sp.cancel_at_min.is_some_and(|c| now >= t0 + TimeDelta::minutes(c)) {
                    o.status = Status::Cancelled;
                }
                o
            }).collect();
            // People in the room start or end calls by hand now and then.
            call = match (&call, s.manual) {
                (CallState::Idle, 0..=1) => CallState::InCall { origin: CallOrigin::Manual, alone: false },
                (CallState::InCall { .. }, 2..=3) => CallState::Idle,
                (CallState::InCall { origin, .. }, _) => CallState::InCall { origin: origin.clone(), alone: s.alone },
                (CallState::Idle, _) => CallState::Idle,
            };
            let plan = planner.plan(&occ, now, &call);
            let call_actions = plan.actions.iter().filter(|a| !matches!(a, Action::Offer { .. })).count();
            prop_assert!(call_actions <= 1, "several call actions at once: {:?}", plan.actions);
            for a in &plan.actions {
                match a {
                    Action::Join { meeting, url } | Action::Switch { meeting, url } => {
                        let o = occ.iter().find(|o| MeetingKey::of(o) == *meeting).expect("known meeting");
                        prop_assert!(o.start_utc - lead <= now && now < o.end_utc,
                            "joined {meeting:?} at {now} outside [{} - lead, {})", o.start_utc, o.end_utc);
                        prop_assert!(o.status != Status::Cancelled, "joined a cancelled meeting");
                        prop_assert_eq!(o.meeting_url.as_deref(), Some(url.as_str()));
                        prop_assert!(joined.insert(meeting.clone()), "{:?} joined twice", meeting);
                        if let CallState::InCall { origin: CallOrigin::Manual, .. } = call {
                            prop_assert!(switch_manual, "a manual call was interrupted under the Offer policy");
                        }
                    }
                    Action::Leave { .. } => {
                        prop_assert!(matches!(call, CallState::InCall { origin: CallOrigin::Scheduled(_), .. }),
                            "asked to leave a call it did not start: {:?}", call);
                    }
                    Action::Offer { .. } => {
                        prop_assert!(
                            matches!(call, CallState::InCall { origin: CallOrigin::Manual, .. }),
                            "offered outside a manual call"
                        );
                    }
                }
            }
            // A scheduled meeting is never overstayed: past its end plus grace, or cancelled,
            // the plan leaves or switches.
            if let CallState::InCall { origin: CallOrigin::Scheduled(k), .. } = &call {
                let o = occ.iter().find(|o| MeetingKey::of(o) == *k).unwrap();
                if now >= o.end_utc + grace_d || o.status == Status::Cancelled {
                    prop_assert!(plan.actions.iter().any(|a| matches!(a, Action::Leave { .. } | Action::Switch { .. })),
                        "overstayed {k:?} at {now}");
                }
            }
            // The room carries the actions out.
            for a in &plan.actions {
                call = match a {
                    Action::Join { meeting, .. } | Action::Switch { meeting, .. } =>
                        CallState::InCall { origin: CallOrigin::Scheduled(meeting.clone()), alone: s.alone },
                    Action::Leave { .. } => CallState::Idle,
                    Action::Offer { .. } => call,
                };
            }
        }
    }
}

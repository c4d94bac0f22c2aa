//! The meeting planner: given the room's occurrences, the current time and what the room is
//! doing, what should it do now?
//!
//! Sans-IO: [`Planner::plan`] takes everything as input and returns a [`Plan`] (the next
//! meetings to show, the actions to carry out, and when to ask again). The daemon owns the
//! clock and carries the actions out through the room controller, exactly as a button press
//! would. The rules (documented in `docs/calendar.md`):
//!
//! - A meeting is *joinable* when it is not cancelled (nor declined by the room), not all-day,
//!   and has an acceptable meeting link. Others are shown but never joined.
//! - Join at `start − join_lead`, if the room is idle. Each occurrence is joined at most once:
//!   if someone leaves it by hand, the planner does not pull the room back in.
//! - Leave at the end when the room is alone in the call; otherwise at `end + leave_grace`.
//! - Back-to-back and overlapping meetings: the meeting the room is in keeps it until its end;
//!   then the room switches straight to the joinable meeting that is on (no grace: the next
//!   meeting is waiting). When several are on, the one that started first wins (then the one
//!   that ends first, then by UID).
//! - A meeting cancelled (or removed from the calendar) while the room is in it is left.
//! - A call someone started by hand is never interrupted: the meeting is offered instead
//!   ([`ManualCallPolicy::Offer`], the default), or the room switches to it only if the policy
//!   says so ([`ManualCallPolicy::Switch`]).

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::expand::{Occurrence, Status};

/// What to do when a scheduled meeting starts while the room is in a call started by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualCallPolicy {
    /// Offer the meeting on the screen; the people in the room decide.
    #[default]
    Offer,
    /// Leave the manual call and join the scheduled meeting.
    Switch,
}

/// How the room follows its calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlannerPolicy {
    /// How long before the start the room joins (seconds; default 120).
    pub join_lead_s: u32,
    /// How long after the end the room stays while people are still in the call (seconds;
    /// default 300).
    pub leave_grace_s: u32,
    /// Whether tentative meetings are joined (default true).
    pub join_tentative: bool,
    /// What to do about a call started by hand.
    pub manual_call: ManualCallPolicy,
    /// How many meetings `NextMeetings` lists (default 5).
    pub next_count: usize,
}

impl Default for PlannerPolicy {
    fn default() -> Self {
        PlannerPolicy {
            join_lead_s: 120,
            leave_grace_s: 300,
            join_tentative: true,
            manual_call: ManualCallPolicy::Offer,
            next_count: 5,
        }
    }
}

/// Identifies one occurrence: its `UID` and recurrence id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MeetingKey {
    /// The event's `UID`.
    pub uid: String,
    /// The instance's recurrence id (`None` for a single event).
    pub recurrence_id: Option<String>,
}

impl MeetingKey {
    /// The key of an occurrence.
    pub fn of(o: &Occurrence) -> MeetingKey {
        MeetingKey {
            uid: o.uid.clone(),
            recurrence_id: o.recurrence_id.clone(),
        }
    }
}

/// What the room is doing, as far as the planner needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Not in a call (also while joining failed and the room is back to idle).
    Idle,
    /// In a call (or joining one).
    InCall {
        /// Who started it: the planner (with the occurrence) or a person.
        origin: CallOrigin,
        /// Whether the room is alone in the call (no other participant).
        alone: bool,
    },
}

/// Who started the current call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOrigin {
    /// Someone in the room (button, D-Bus, fleet).
    Manual,
    /// The planner, for this occurrence.
    Scheduled(MeetingKey),
}

/// Why the planner asks the room to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The meeting ended and the room is alone (or the grace period is over).
    Ended,
    /// The meeting was cancelled, declined or removed from the calendar.
    Cancelled,
}

/// Something the room should do now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Join this meeting (the room is idle).
    Join {
        /// The occurrence.
        meeting: MeetingKey,
        /// Its canonical meeting URL.
        url: String,
    },
    /// Leave the current scheduled meeting.
    Leave {
        /// Why.
        reason: LeaveReason,
    },
    /// Leave the current call and join this meeting straight away.
    Switch {
        /// The occurrence to join.
        meeting: MeetingKey,
        /// Its canonical meeting URL.
        url: String,
    },
    /// Show this meeting as an offer: the room is in a call started by hand.
    Offer {
        /// The occurrence offered.
        meeting: MeetingKey,
        /// Its canonical meeting URL.
        url: String,
    },
}

/// One line of `NextMeetings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextMeeting {
    /// The occurrence.
    #[serde(flatten)]
    pub meeting: MeetingKey,
    /// Title (already masked for private meetings).
    pub summary: Option<String>,
    /// Start, RFC 3339 (or a date for all-day events).
    pub start: String,
    /// End, same form.
    pub end: String,
    /// Whether it is all-day.
    pub all_day: bool,
    /// The meeting URL, if any.
    pub meeting_url: Option<String>,
    /// Whether the room will join it by itself.
    pub auto_join: bool,
}

/// The planner's answer for one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    /// The meetings to show (on now or later, not cancelled), soonest first.
    pub next: Vec<NextMeeting>,
    /// What to do now (at most one call action, plus offers).
    pub actions: Vec<Action>,
    /// When the plan may change next without new input (ask again then).
    pub wake_at: Option<DateTime<Utc>>,
}

/// The planner: the policy, plus the memory of what it already did (so nothing is joined or
/// offered twice).
#[derive(Debug, Clone, Default)]
pub struct Planner {
    policy: PlannerPolicy,
    joined: HashSet<MeetingKey>,
    offered: HashSet<MeetingKey>,
}

impl Planner {
    /// A planner with `policy`.
    pub fn new(policy: PlannerPolicy) -> Planner {
        Planner {
            policy,
            ..Planner::default()
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PlannerPolicy {
        &self.policy
    }

    fn lead(&self) -> TimeDelta {
        TimeDelta::seconds(self.policy.join_lead_s.into())
    }

    fn grace(&self) -> TimeDelta {
        TimeDelta::seconds(self.policy.leave_grace_s.into())
    }

    /// Whether the room would join `o` by itself.
    pub fn auto_joins(&self, o: &Occurrence) -> bool {
        o.meeting_url.is_some()
            && !o.all_day
            && match o.status {
                Status::Confirmed => true,
                Status::Tentative => self.policy.join_tentative,
                Status::Cancelled => false,
            }
    }

    /// Whether `o` is on for joining at `now`: from `start − lead` to its end.
    fn is_on(&self, o: &Occurrence, now: DateTime<Utc>) -> bool {
        self.auto_joins(o) && o.start_utc - self.lead() <= now && now < o.end_utc
    }

    /// Decides what to do at `now`. `occurrences` are the room's occurrences around now (at
    /// least from `now − leave_grace` to the horizon shown); `call` is what the room is doing.
    pub fn plan(
        &mut self,
        occurrences: &[Occurrence],
        now: DateTime<Utc>,
        call: &CallState,
    ) -> Plan {
        let mut plan = Plan {
            next: self.next_meetings(occurrences, now),
            ..Plan::default()
        };
        // The meeting to be in now: the first on (start, end, key order) not yet joined.
        let mut on: Vec<&Occurrence> = occurrences.iter().filter(|o| self.is_on(o, now)).collect();
        on.sort_by(|a, b| {
            (a.start_utc, a.end_utc, MeetingKey::of(a)).cmp(&(
                b.start_utc,
                b.end_utc,
                MeetingKey::of(b),
            ))
        });
        let candidate = on
            .iter()
            .find(|o| !self.joined.contains(&MeetingKey::of(o)))
            .copied();

        match call {
            CallState::Idle => {
                if let Some(o) = candidate {
                    let key = MeetingKey::of(o);
                    self.joined.insert(key.clone());
                    plan.actions.push(Action::Join {
                        meeting: key,
                        url: o.meeting_url.clone().expect("joinable has a URL"),
                    });
                }
            }
            CallState::InCall {
                origin: CallOrigin::Scheduled(current),
                alone,
            } => {
                // Remember it even if the daemon restarted the planner mid-meeting.
                self.joined.insert(current.clone());
                let current_occ = occurrences.iter().find(|o| MeetingKey::of(o) == *current);
                let still_wanted = current_occ.is_some_and(|o| self.auto_joins(o));
                if !still_wanted {
                    plan.actions.push(Action::Leave {
                        reason: LeaveReason::Cancelled,
                    });
                } else if let Some(o) = current_occ.filter(|o| now >= o.end_utc) {
                    let next = candidate.filter(|c| MeetingKey::of(c) != *current);
                    if let Some(next) = next {
                        let key = MeetingKey::of(next);
                        self.joined.insert(key.clone());
                        plan.actions.push(Action::Switch {
                            meeting: key,
                            url: next.meeting_url.clone().expect("joinable has a URL"),
                        });
                    } else if *alone || now >= o.end_utc + self.grace() {
                        plan.actions.push(Action::Leave {
                            reason: LeaveReason::Ended,
                        });
                    }
                }
            }
            CallState::InCall {
                origin: CallOrigin::Manual,
                ..
            } => {
                if let Some(o) = candidate {
                    let key = MeetingKey::of(o);
                    let url = o.meeting_url.clone().expect("joinable has a URL");
                    match self.policy.manual_call {
                        ManualCallPolicy::Offer => {
                            if self.offered.insert(key.clone()) {
                                plan.actions.push(Action::Offer { meeting: key, url });
                            }
                        }
                        ManualCallPolicy::Switch => {
                            self.joined.insert(key.clone());
                            plan.actions.push(Action::Switch { meeting: key, url });
                        }
                    }
                }
            }
        }
        plan.wake_at = self.wake_at(occurrences, now);
        plan
    }

    /// Forgets an occurrence so it may be joined again (someone pressed "join the scheduled
    /// meeting" after leaving it, say).
    pub fn forget(&mut self, key: &MeetingKey) {
        self.joined.remove(key);
        self.offered.remove(key);
    }

    fn next_meetings(&self, occurrences: &[Occurrence], now: DateTime<Utc>) -> Vec<NextMeeting> {
        let mut list: Vec<&Occurrence> = occurrences
            .iter()
            .filter(|o| o.end_utc > now && o.status != Status::Cancelled)
            .collect();
        list.sort_by_key(|o| (o.start_utc, MeetingKey::of(o)));
        list.into_iter()
            .take(self.policy.next_count)
            .map(|o| NextMeeting {
                meeting: MeetingKey::of(o),
                summary: o.summary.clone(),
                start: o.start.clone(),
                end: o.end.clone(),
                all_day: o.all_day,
                meeting_url: o.meeting_url.clone(),
                auto_join: self.auto_joins(o),
            })
            .collect()
    }

    fn wake_at(&self, occurrences: &[Occurrence], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        occurrences
            .iter()
            .flat_map(|o| {
                [
                    o.start_utc - self.lead(),
                    o.start_utc,
                    o.end_utc,
                    o.end_utc + self.grace(),
                ]
            })
            .filter(|t| *t > now)
            .min()
    }
}

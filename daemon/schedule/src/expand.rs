//! From parsed calendars to the occurrences of meetings in a time window.
//!
//! Each `VEVENT` series (one `UID`) is expanded in its own local time: `DTSTART` and the
//! `RRULE`s and `RDATE`s, minus `EXDATE`s, with instances replaced by their overrides
//! (`RECURRENCE-ID`, also `RANGE=THISANDFUTURE`), then resolved to UTC with the zone rules of
//! [`crate::zone`]. A component that cannot be understood (no usable `DTSTART`, say) is dropped
//! and reported; the others are kept.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use visio_room_core::meeting_url::AllowedHosts;

use crate::ics::{self, Component, ParseProblem, Property};
use crate::links::meeting_link;
use crate::rrule::Rrule;
use crate::value::{parse_duration, parse_naive, Length, ValueKind};
use crate::zone::{iana_or_windows, Zone, ZoneBook};

/// How a calendar is read for one room.
#[derive(Debug, Clone)]
pub struct ExpandOptions {
    /// The room's time zone: floating times and all-day events are in it.
    pub local_zone: Tz,
    /// The room's calendar address (`room-3@example.org`): events where this attendee has
    /// `PARTSTAT=DECLINED` are shown as cancelled.
    pub room_address: Option<String>,
    /// Hosts meeting links may point to (`visio.allowed_hosts`); empty means no links.
    pub allowed_hosts: AllowedHosts,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            local_zone: Tz::UTC,
            room_address: None,
            allowed_hosts: AllowedHosts::default(),
        }
    }
}

/// Status of one occurrence, as the room sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Happening.
    Confirmed,
    /// Tentatively happening (still joined automatically).
    Tentative,
    /// Cancelled, or declined by the room: shown, never joined.
    Cancelled,
}

/// One occurrence of a meeting. Serialises to the JSON object printed by
/// `visio-roomctl calendar occurrences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    /// The event's `UID`.
    pub uid: String,
    /// Original start of this instance when the event recurs (RFC 3339 UTC, or a date for
    /// all-day events); `null` for a single event.
    pub recurrence_id: Option<String>,
    /// Start: RFC 3339 in UTC (`2024-03-01T09:00:00Z`), or a date (`2024-03-01`) when all-day.
    pub start: String,
    /// End (exclusive), same form as `start`.
    pub end: String,
    /// Whether this is an all-day event.
    pub all_day: bool,
    /// Title; `Private meeting` for private and confidential events; `null` when there is none.
    pub summary: Option<String>,
    /// Status for the room.
    pub status: Status,
    /// The canonical meeting URL, when the event carries an acceptable one.
    pub meeting_url: Option<String>,
    /// Start instant (all-day events: local midnight in the room's zone).
    #[serde(skip)]
    pub start_utc: DateTime<Utc>,
    /// End instant.
    #[serde(skip)]
    pub end_utc: DateTime<Utc>,
    /// The room declined this meeting (`status` is then `cancelled`).
    #[serde(skip)]
    pub declined: bool,
    /// `CLASS` was `PRIVATE` or `CONFIDENTIAL` (details masked).
    #[serde(skip)]
    pub private: bool,
    /// The times were floating (wall-clock, no zone) and were put in the room's zone.
    #[serde(skip)]
    pub floating: bool,
}

/// Occurrences in a window, and what could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OccurrenceSet {
    /// Occurrences overlapping the window, sorted by start (then `uid`).
    pub occurrences: Vec<Occurrence>,
    /// Components that were skipped or partly read, and why.
    pub errors: Vec<ParseProblem>,
}

/// Instances one RRULE may give in a window (a room never needs more; `FREQ=SECONDLY` would).
const MAX_INSTANCES_PER_RULE: usize = 100_000;

/// Summary shown instead of the title of private and confidential events.
pub const PRIVATE_SUMMARY: &str = "Private meeting";

/// Time kind of a value after its `TZID` is applied.
#[derive(Debug, Clone)]
enum Kind {
    Date,
    Floating,
    Zoned(Zone),
}

/// A DATE or DATE-TIME with its zone.
#[derive(Debug, Clone)]
struct Dt {
    local: NaiveDateTime,
    kind: Kind,
}

/// Context for reading one calendar.
struct Reader<'a> {
    zones: ZoneBook,
    /// `X-WR-TIMEZONE` (Google exports): UTC and floating times are meant in it.
    calendar_zone: Option<Tz>,
    opts: &'a ExpandOptions,
    problems: Vec<ParseProblem>,
}

impl Reader<'_> {
    fn problem(&mut self, c: &Component, message: String) {
        self.problems.push(ParseProblem {
            line: c.line,
            component: c.name.clone(),
            uid: c.uid(),
            message,
        });
    }

    /// Reads a DATE/DATE-TIME property (one value).
    fn dt(&mut self, c: &Component, p: &Property) -> Option<Dt> {
        let first = p.value.split(',').next().unwrap_or_default();
        self.dt_value(c, p, first)
    }

    fn dt_value(&mut self, c: &Component, p: &Property, value: &str) -> Option<Dt> {
        let Some((local, vk)) = parse_naive(value) else {
            self.problem(
                c,
                format!(
                    "{} value {:?} is not a date or date-time",
                    p.name,
                    ics::shorten(value)
                ),
            );
            return None;
        };
        let date_param = p
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
        let kind = match vk {
            ValueKind::Date => Kind::Date,
            _ if date_param => Kind::Date,
            ValueKind::Utc => Kind::Zoned(Zone::Utc),
            ValueKind::Local => match p.param("TZID") {
                Some(tzid) => match self.zones.resolve(tzid) {
                    Some(z) => Kind::Zoned(z),
                    None => {
                        self.problem(
                            c,
                            format!(
                                "time zone {tzid:?} of {} is unknown (no VTIMEZONE, not an IANA or \
                                 Windows name); the time was read in the room's zone",
                                p.name
                            ),
                        );
                        Kind::Floating
                    }
                },
                None => match self.calendar_zone {
                    Some(tz) => Kind::Zoned(Zone::Iana(tz)),
                    None => Kind::Floating,
                },
            },
        };
        let local = if matches!(kind, Kind::Date) {
            local.date().and_time(NaiveTime::MIN)
        } else {
            local
        };
        Some(Dt { local, kind })
    }

    /// The zone local times of `kind` are read in: their own, else the room's.
    fn zone_of(&self, kind: &Kind) -> Zone {
        match kind {
            Kind::Zoned(z) => z.clone(),
            Kind::Date | Kind::Floating => Zone::Iana(self.opts.local_zone),
        }
    }

    /// The UTC instant of `local` in `kind`.
    fn utc(&self, local: NaiveDateTime, kind: &Kind) -> NaiveDateTime {
        self.zone_of(kind).to_utc(local)
    }

    /// The length from `start` to `end` (a DTEND, or the end of an RDATE period): the days
    /// between two DATEs, else the exact time between the two instants (RFC 5545 §3.8.5.3:
    /// every instance of a DTEND series lasts that same exact time). An end without a zone is
    /// read in the start's.
    ///
    /// Except when `start` is itself in a DST gap or fold: §3.3.5 then reads it with the offset
    /// before the gap, or as the first of the two, but its producer wrote the end on the same
    /// clock it wrote that impossible or ambiguous start on, so the exact difference is an
    /// artefact (02:30–03:15 on a spring-forward night would end 15 minutes *before* it starts,
    /// in a fold it would last 1 h 45), and a series starting that night would pass it on to
    /// all its instances. The wall-clock difference is what was meant there.
    fn length_between(&self, start: &Dt, end: &Dt) -> Length {
        if let (Kind::Date, Kind::Date) = (&start.kind, &end.kind) {
            return Length::days((end.local.date() - start.local.date()).num_days());
        }
        if self.zone_of(&start.kind).is_gap_or_fold(start.local) {
            return Length::exact(self.in_series_time(end, &start.kind) - start.local);
        }
        let end_kind = match end.kind {
            Kind::Zoned(_) => &end.kind,
            _ => &start.kind,
        };
        Length::exact(self.utc(end.local, end_kind) - self.utc(start.local, &start.kind))
    }

    /// `dt` expressed as a local time of `kind` (the series' zone), for matching.
    fn in_series_time(&self, dt: &Dt, series: &Kind) -> NaiveDateTime {
        match (series, &dt.kind) {
            (Kind::Zoned(z), Kind::Zoned(_)) => z.to_local(self.utc(dt.local, &dt.kind)),
            _ => dt.local,
        }
    }
}

/// One `VEVENT` read far enough to expand it.
struct Event<'a> {
    comp: &'a Component,
    start: Dt,
    /// How long each instance lasts.
    length: Length,
    recurrence_id: Option<Dt>,
    this_and_future: bool,
    sequence: i64,
}

fn read_event<'a>(r: &mut Reader, comp: &'a Component) -> Option<Event<'a>> {
    let Some(p) = comp.property("DTSTART") else {
        r.problem(comp, "VEVENT has no DTSTART; it was skipped".into());
        return None;
    };
    let Some(mut start) = r.dt(comp, p) else {
        r.problem(
            comp,
            "VEVENT has an unreadable DTSTART; it was skipped".into(),
        );
        return None;
    };
    let default_length = match start.kind {
        Kind::Date => Length::days(1),
        _ => Length::ZERO,
    };
    let length = if let Some(p) = comp.property("DTEND") {
        match r.dt(comp, p) {
            Some(end) => {
                // Mixed forms (a DATE start with a DATE-TIME end, a floating start with a
                // UTC end): the start takes the more precise form of the end, so the event
                // keeps the length its producer meant.
                match (&start.kind, &end.kind) {
                    (Kind::Date, Kind::Floating | Kind::Zoned(_))
                    | (Kind::Floating, Kind::Zoned(_)) => start.kind = end.kind.clone(),
                    _ => {}
                }
                r.length_between(&start, &end)
            }
            None => default_length,
        }
    } else if let Some(p) = comp.property("DURATION") {
        let mut length = parse_duration(&p.value).unwrap_or_else(|| {
            r.problem(
                comp,
                format!("DURATION {:?} is unreadable; ignored", p.value),
            );
            default_length
        });
        if matches!(start.kind, Kind::Date) {
            if length.exact.num_seconds() % 86_400 != 0 {
                // Hours on a whole-day start: a timed event from midnight.
                start.kind = Kind::Floating;
            } else {
                // `PT24H` on a whole day is a day.
                length = Length::days(length.days + length.exact.num_days());
            }
        }
        length
    } else {
        default_length
    };
    // End before start: producers that swap them mean the other way round.
    let (start, length) = if length.approx().is_some_and(|l| l < TimeDelta::zero()) {
        r.problem(
            comp,
            "the event ends before it starts; start and end were swapped".into(),
        );
        (
            Dt {
                local: length
                    .approx()
                    .and_then(|l| start.local.checked_add_signed(l))
                    .unwrap_or(start.local),
                kind: start.kind,
            },
            length.negated(),
        )
    } else {
        (start, length)
    };
    let (recurrence_id, this_and_future) = match comp.property("RECURRENCE-ID") {
        Some(p) => (
            r.dt(comp, p),
            p.param("RANGE")
                .is_some_and(|v| v.eq_ignore_ascii_case("THISANDFUTURE")),
        ),
        None => (None, false),
    };
    let sequence = comp
        .property("SEQUENCE")
        .and_then(|p| p.value.trim().parse().ok())
        .unwrap_or(0);
    Some(Event {
        comp,
        start,
        length,
        recurrence_id,
        this_and_future,
        sequence,
    })
}

/// An instance before its final times are known.
struct Instance<'a> {
    /// The component whose properties apply (master or override).
    comp: &'a Component,
    start_local: NaiveDateTime,
    kind: Kind,
    length: Length,
    recurrence_id: Option<(NaiveDateTime, Kind)>,
}

/// Occurrences of the events in `ics` that overlap `[from, to)`, sorted by start.
pub fn occurrences(
    ics: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    opts: &ExpandOptions,
) -> OccurrenceSet {
    let (roots, mut problems) = ics::parse(ics);
    let mut out = Vec::new();
    for cal in &roots {
        if cal.name != "VCALENDAR" {
            problems.push(ParseProblem {
                line: cal.line,
                component: cal.name.clone(),
                uid: cal.uid(),
                message: format!("{} outside a VCALENDAR was read anyway", cal.name),
            });
        }
        let mut reader = Reader {
            zones: ZoneBook::from_calendar(cal),
            calendar_zone: cal
                .property("X-WR-TIMEZONE")
                .and_then(|p| iana_or_windows(&p.text())),
            opts,
            problems: Vec::new(),
        };
        // A lone VEVENT file (no VCALENDAR) is accepted too.
        let events: Vec<&Component> = if cal.name == "VEVENT" {
            vec![cal]
        } else {
            cal.children.iter().filter(|c| c.name == "VEVENT").collect()
        };
        let mut series: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for (i, comp) in events.into_iter().enumerate() {
            if let Some(ev) = read_event(&mut reader, comp) {
                // Events without UID cannot be matched with anything: each is its own series.
                let key = comp.uid().unwrap_or_else(|| format!("\u{0}{i}"));
                series.entry(key).or_default().push(ev);
            }
        }
        for (uid, events) in series {
            let uid = if uid.starts_with('\u{0}') {
                String::new()
            } else {
                uid
            };
            expand_series(&mut reader, &uid, events, from, to, &mut out);
        }
        problems.append(&mut reader.problems);
    }
    out.sort_by(|a, b| {
        (a.start_utc, &a.uid, &a.recurrence_id).cmp(&(b.start_utc, &b.uid, &b.recurrence_id))
    });
    OccurrenceSet {
        occurrences: out,
        errors: problems,
    }
}

fn expand_series<'a>(
    r: &mut Reader,
    uid: &str,
    events: Vec<Event<'a>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut Vec<Occurrence>,
) {
    let (masters, overrides): (Vec<Event>, Vec<Event>) =
        events.into_iter().partition(|e| e.recurrence_id.is_none());
    // Duplicated masters: the highest SEQUENCE (then the last one) is the current version.
    let master = masters
        .into_iter()
        .enumerate()
        .max_by_key(|(i, e)| (e.sequence, *i))
        .map(|(_, e)| e);
    let mut instances: Vec<Instance> = Vec::new();

    let Some(master) = master else {
        // Only overrides: each stands alone.
        for o in &overrides {
            let rid = o.recurrence_id.as_ref().expect("override");
            instances.push(Instance {
                comp: o.comp,
                start_local: o.start.local,
                kind: o.start.kind.clone(),
                length: o.length,
                recurrence_id: Some((rid.local, rid.kind.clone())),
            });
        }
        emit(r, uid, None, instances, from, to, out);
        return;
    };

    let kind = master.start.kind.clone();
    let recurring =
        master.comp.property("RRULE").is_some() || master.comp.property("RDATE").is_some();
    // The window in the series' local time, with a day of margin for zone offsets and the
    // longest override shift we accept to find by scanning.
    let margin = TimeDelta::days(2);
    let to_local = |t: DateTime<Utc>| match &kind {
        Kind::Zoned(z) => z.to_local(t.naive_utc()),
        _ => Zone::Iana(r.opts.local_zone).to_local(t.naive_utc()),
    };
    let stop = to_local(to) + margin;
    let skip_before = to_local(from)
        .checked_sub_signed(master.length.approx().unwrap_or_default() + margin)
        .unwrap_or(master.start.local);

    // Instance starts (local), each with its own length (RDATE periods may differ).
    let mut starts: BTreeMap<NaiveDateTime, Length> = BTreeMap::new();
    let mut rule_found = false;
    for p in master.comp.properties_named("RRULE") {
        let rule = match Rrule::parse(&p.value) {
            Ok(rule) => rule,
            Err(e) => {
                r.problem(
                    master.comp,
                    format!(
                        "RRULE {:?} is unusable ({}); only the first instance is shown",
                        ics::shorten(&p.value),
                        e.0
                    ),
                );
                continue;
            }
        };
        rule_found = true;
        let until = rule.until_naive().map(|(u, is_utc)| match (&kind, is_utc) {
            (Kind::Zoned(z), true) => z.to_local(u),
            _ => u,
        });
        let mut n = 0;
        for t in rule.expand(master.start.local, until, Some(skip_before), stop) {
            n += 1;
            if n > MAX_INSTANCES_PER_RULE {
                r.problem(
                    master.comp,
                    format!("RRULE gives more than {MAX_INSTANCES_PER_RULE} instances in the window; the rest were skipped"),
                );
                break;
            }
            starts.insert(t, master.length);
        }
    }
    // With a usable rule, DTSTART comes from the expansion (which drops it when UNTIL is
    // before DTSTART, the "series deleted" form some clients write); without one, it is the
    // only start besides RDATEs.
    if !rule_found {
        starts.insert(master.start.local, master.length);
    }
    for p in master.comp.properties_named("RDATE") {
        for value in p.value.split(',') {
            let (start_text, period_end) = match value.split_once('/') {
                Some((s, e)) => (s, Some(e)),
                None => (value, None),
            };
            let Some(dt) = r.dt_value(master.comp, p, start_text) else {
                continue;
            };
            let start = Dt {
                local: r.in_series_time(&dt, &kind),
                kind: kind.clone(),
            };
            let length = period_end
                .and_then(|e| {
                    parse_duration(e).or_else(|| {
                        let end = r.dt_value(master.comp, p, e)?;
                        Some(r.length_between(&start, &end))
                    })
                })
                .unwrap_or(master.length);
            starts.insert(start.local, length);
        }
    }
    let mut excluded_days: Vec<NaiveDate> = Vec::new();
    let mut excluded: Vec<NaiveDateTime> = Vec::new();
    for p in master.comp.properties_named("EXDATE") {
        for value in p.value.split(',') {
            let Some(dt) = r.dt_value(master.comp, p, value) else {
                continue;
            };
            if matches!(dt.kind, Kind::Date) && !matches!(kind, Kind::Date) {
                // A DATE excludes every instance on that day.
                excluded_days.push(dt.local.date());
            } else {
                excluded.push(r.in_series_time(&dt, &kind));
            }
        }
    }
    let is_excluded = |t: &NaiveDateTime| excluded.contains(t) || excluded_days.contains(&t.date());
    starts.retain(|t, _| !is_excluded(t));

    // Overrides, by the local start they replace.
    let mut exact: HashMap<NaiveDateTime, &Event> = HashMap::new();
    let mut future: Vec<(NaiveDateTime, &Event)> = Vec::new();
    for o in &overrides {
        let rid = o.recurrence_id.as_ref().expect("override");
        let rid_local = if matches!(rid.kind, Kind::Date) && !matches!(kind, Kind::Date) {
            // A DATE recurrence-id on a timed series means that day's instance.
            rid.local.date().and_time(master.start.local.time())
        } else {
            let by_instant = r.in_series_time(rid, &kind);
            // Some producers (Google exports) write the RECURRENCE-ID in another zone than
            // the series with the same wall-clock time: match on that when the instant
            // matches nothing.
            if !starts.contains_key(&by_instant) && starts.contains_key(&rid.local) {
                rid.local
            } else {
                by_instant
            }
        };
        if is_excluded(&rid_local) {
            // Modified, then deleted: the EXDATE wins.
            continue;
        }
        if o.this_and_future {
            future.push((rid_local, o));
        }
        match exact.get(&rid_local) {
            Some(prev) if prev.sequence > o.sequence => {}
            _ => {
                exact.insert(rid_local, o);
            }
        }
    }
    future.sort_by_key(|(t, _)| *t);

    for (start, length) in &starts {
        if exact.contains_key(start) {
            continue;
        }
        let rid = recurring.then(|| (*start, kind.clone()));
        // The latest THISANDFUTURE override at or before this instance changes it.
        match future.iter().rev().find(|(t, _)| t <= start) {
            Some((t, o)) => {
                let shift = r.in_series_time(&o.start, &kind) - *t;
                instances.push(Instance {
                    comp: o.comp,
                    start_local: *start + shift,
                    kind: kind.clone(),
                    length: o.length,
                    recurrence_id: rid,
                });
            }
            None => instances.push(Instance {
                comp: master.comp,
                start_local: *start,
                kind: kind.clone(),
                length: *length,
                recurrence_id: rid,
            }),
        }
    }
    for (rid_local, o) in exact {
        instances.push(Instance {
            comp: o.comp,
            start_local: o.start.local,
            kind: o.start.kind.clone(),
            length: o.length,
            recurrence_id: Some((rid_local, kind.clone())),
        });
    }
    emit(r, uid, Some(master.comp), instances, from, to, out);
}

fn emit(
    r: &mut Reader,
    uid: &str,
    master: Option<&Component>,
    instances: Vec<Instance>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut Vec<Occurrence>,
) {
    let master_cancelled = master.is_some_and(is_cancelled);
    // Link look-up is the costly part per instance; instances share few components.
    let mut links: HashMap<*const Component, Option<String>> = HashMap::new();
    let mut link_of = |c: &Component| {
        links
            .entry(c as *const Component)
            .or_insert_with(|| {
                meeting_link(c, &r.opts.allowed_hosts).map(|u| u.as_str().to_owned())
            })
            .clone()
    };
    let master_link = master.and_then(&mut link_of);
    for inst in instances {
        let all_day = matches!(inst.kind, Kind::Date);
        let start_utc = r.utc(inst.start_local, &inst.kind).and_utc();
        // The days on the local calendar, then the exact time from that instant (RFC 5545
        // §3.3.6). The exact time added on the wall clock instead would end a meeting that
        // starts in a DST gap before its start, and one in a fold an hour late (issue 11).
        let Some(end_local) = TimeDelta::try_days(inst.length.days)
            .and_then(|days| inst.start_local.checked_add_signed(days))
        else {
            continue;
        };
        let Some(end_utc) = r
            .utc(end_local, &inst.kind)
            .checked_add_signed(inst.length.exact)
            .map(|t| t.and_utc())
        else {
            continue;
        };
        let overlaps = if start_utc == end_utc {
            from <= start_utc && start_utc < to
        } else {
            start_utc < to && end_utc > from
        };
        if !overlaps {
            continue;
        }
        let comp = inst.comp;
        let prop_or_master = |name: &str| {
            comp.property(name)
                .or_else(|| master.and_then(|m| m.property(name)))
        };
        let declined = r.opts.room_address.as_deref().is_some_and(|room| {
            room_declined(comp, room) || master.is_some_and(|m| room_declined(m, room))
        });
        let private = prop_or_master("CLASS").is_some_and(|p| {
            let v = p.value.trim().to_ascii_uppercase();
            v == "PRIVATE" || v == "CONFIDENTIAL"
        });
        let status = if master_cancelled || is_cancelled(comp) || declined {
            Status::Cancelled
        } else if comp
            .property("STATUS")
            .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("TENTATIVE"))
        {
            Status::Tentative
        } else {
            Status::Confirmed
        };
        let summary = if private {
            Some(PRIVATE_SUMMARY.to_owned())
        } else {
            comp.property("SUMMARY").map(|p| p.text())
        };
        let meeting_url = link_of(comp).or_else(|| master_link.clone());
        let format = |local: NaiveDateTime, utc: DateTime<Utc>| {
            if all_day {
                local.date().format("%Y-%m-%d").to_string()
            } else {
                utc.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            }
        };
        let recurrence_id = inst.recurrence_id.map(|(local, kind)| {
            if matches!(kind, Kind::Date) {
                local.date().format("%Y-%m-%d").to_string()
            } else {
                r.utc(local, &kind).format("%Y-%m-%dT%H:%M:%SZ").to_string()
            }
        });
        out.push(Occurrence {
            uid: uid.to_owned(),
            recurrence_id,
            start: format(inst.start_local, start_utc),
            end: format(end_local, end_utc),
            all_day,
            summary,
            status,
            meeting_url,
            start_utc,
            end_utc,
            declined,
            private,
            floating: matches!(inst.kind, Kind::Floating),
        });
    }
}

fn is_cancelled(c: &Component) -> bool {
    c.property("STATUS")
        .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED"))
}

fn room_declined(c: &Component, room: &str) -> bool {
    let room = room.trim().trim_start_matches("mailto:");
    c.properties_named("ATTENDEE").any(|a| {
        let addr = a.value.trim();
        let addr = addr
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .map_or(addr, |_| &addr[7..]);
        addr.eq_ignore_ascii_case(room)
            && a.param("PARTSTAT")
                .is_some_and(|s| s.eq_ignore_ascii_case("DECLINED"))
    })
}

/// Parses an RFC 3339 instant (`2024-03-01T00:00:00Z`) or a date (`2024-03-01`, midnight UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

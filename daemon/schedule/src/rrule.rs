//! RRULE (RFC 5545 §3.3.10) parsing and expansion in *local* (wall-clock) time.
//!
//! Expanding in local time and resolving the zone afterwards keeps a 09:00 weekly meeting at
//! 09:00 across DST changes, and puts the DST gap/fold rules in one place ([`crate::zone`]).
//! The parser is tolerant: unknown parts and out-of-range values are ignored; only a missing
//! or unknown `FREQ` makes a rule unusable.

use std::collections::VecDeque;

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Weekday};

use crate::value::{parse_naive, ValueKind};

/// Recurrence frequency, from shortest to longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Freq {
    /// Every second.
    Secondly,
    /// Every minute.
    Minutely,
    /// Every hour.
    Hourly,
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every year.
    Yearly,
}

/// A parsed recurrence rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrule {
    freq: Freq,
    interval: u32,
    count: Option<u32>,
    until: Option<(NaiveDateTime, ValueKind)>,
    by_second: Vec<u32>,
    by_minute: Vec<u32>,
    by_hour: Vec<u32>,
    by_day: Vec<(i32, Weekday)>,
    by_month_day: Vec<i32>,
    by_year_day: Vec<i32>,
    by_week_no: Vec<i32>,
    by_month: Vec<u32>,
    by_set_pos: Vec<i32>,
    wkst: Weekday,
}

/// Why a rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RruleError(pub String);

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn int_list<T: std::str::FromStr>(v: &str, ok: impl Fn(&T) -> bool) -> Vec<T> {
    v.split(',')
        .filter_map(|x| x.trim().trim_start_matches('+').parse::<T>().ok())
        .filter(|x| ok(x))
        .collect()
}

impl Rrule {
    /// Parses `FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20241231T235959Z`.
    pub fn parse(s: &str) -> Result<Rrule, RruleError> {
        let mut freq = None;
        let mut r = Rrule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_second: vec![],
            by_minute: vec![],
            by_hour: vec![],
            by_day: vec![],
            by_month_day: vec![],
            by_year_day: vec![],
            by_week_no: vec![],
            by_month: vec![],
            by_set_pos: vec![],
            wkst: Weekday::Mon,
        };
        for part in s.trim().split(';') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_uppercase().as_str() {
                "FREQ" => {
                    freq = Some(match v.to_ascii_uppercase().as_str() {
                        "SECONDLY" => Freq::Secondly,
                        "MINUTELY" => Freq::Minutely,
                        "HOURLY" => Freq::Hourly,
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        other => return Err(RruleError(format!("unknown FREQ {other:?}"))),
                    })
                }
                "INTERVAL" => r.interval = v.parse::<u32>().unwrap_or(1).max(1),
                "COUNT" => r.count = v.parse().ok(),
                "UNTIL" => r.until = parse_naive(v),
                "BYSECOND" => r.by_second = int_list(v, |x| *x <= 60),
                "BYMINUTE" => r.by_minute = int_list(v, |x| *x < 60),
                "BYHOUR" => r.by_hour = int_list(v, |x| *x < 24),
                "BYMONTHDAY" => r.by_month_day = int_list(v, |x: &i32| *x != 0 && x.abs() <= 31),
                "BYYEARDAY" => r.by_year_day = int_list(v, |x: &i32| *x != 0 && x.abs() <= 366),
                "BYWEEKNO" => r.by_week_no = int_list(v, |x: &i32| *x != 0 && x.abs() <= 53),
                "BYMONTH" => r.by_month = int_list(v, |x| (1..=12).contains(x)),
                "BYSETPOS" => r.by_set_pos = int_list(v, |x: &i32| *x != 0 && x.abs() <= 366),
                "WKST" => r.wkst = weekday(v).unwrap_or(Weekday::Mon),
                "RSCALE" if !v.eq_ignore_ascii_case("GREGORIAN") => {
                    return Err(RruleError(format!(
                        "calendar scale RSCALE={v} (RFC 7529) is not supported"
                    )))
                }
                "BYDAY" => {
                    r.by_day = v
                        .split(',')
                        .filter_map(|d| {
                            let d = d.trim();
                            if d.len() < 2 || !d.is_char_boundary(d.len() - 2) {
                                return None;
                            }
                            let (n, wd) = d.split_at(d.len() - 2);
                            let n = if n.is_empty() {
                                0
                            } else {
                                n.trim_start_matches('+').parse::<i32>().ok()?
                            };
                            (n.abs() <= 53).then_some((n, weekday(wd)?))
                        })
                        .collect()
                }
                _ => {}
            }
        }
        r.by_second.iter_mut().for_each(|s| *s = (*s).min(59));
        r.freq = freq.ok_or_else(|| RruleError("the rule has no FREQ".into()))?;
        Ok(r)
    }

    /// `COUNT`, when given.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// `UNTIL` as a local time bound and whether it is UTC. A DATE `UNTIL` includes that day.
    pub fn until_naive(&self) -> Option<(NaiveDateTime, bool)> {
        self.until.map(|(t, kind)| match kind {
            ValueKind::Date => (
                t.date()
                    .and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid")),
                false,
            ),
            ValueKind::Local => (t, false),
            ValueKind::Utc => (t, true),
        })
    }

    /// Instances in local time, in order: `dtstart` first (it always counts as the first
    /// instance, RFC 5545 §3.8.5.3), then the rule's instances after it, until `until`
    /// (inclusive, local), `COUNT`, or the first instance after `stop`. `skip_before` is a hint
    /// that instances before it are not wanted: without `COUNT`, whole periods before it are
    /// jumped over instead of generated.
    pub fn expand(
        &self,
        dtstart: NaiveDateTime,
        until: Option<NaiveDateTime>,
        skip_before: Option<NaiveDateTime>,
        stop: NaiveDateTime,
    ) -> Instances {
        let mut rule = self.clone();
        if rule.by_week_no.is_empty()
            && rule.by_year_day.is_empty()
            && rule.by_month_day.is_empty()
            && rule.by_day.is_empty()
        {
            match rule.freq {
                Freq::Yearly => {
                    if rule.by_month.is_empty() {
                        rule.by_month = vec![dtstart.month()];
                    }
                    rule.by_month_day = vec![dtstart.day() as i32];
                }
                Freq::Monthly => rule.by_month_day = vec![dtstart.day() as i32],
                Freq::Weekly => rule.by_day = vec![(0, dtstart.weekday())],
                _ => {}
            }
        }
        let mut period = 0u64;
        if let (Some(skip), None) = (skip_before, rule.count) {
            let units: i64 = match rule.freq {
                Freq::Yearly => (skip.year() - dtstart.year()).into(),
                Freq::Monthly => {
                    (skip.year() - dtstart.year()) as i64 * 12 + skip.month() as i64
                        - dtstart.month() as i64
                }
                Freq::Weekly => (skip - dtstart).num_days() / 7,
                Freq::Daily => (skip - dtstart).num_days(),
                Freq::Hourly => (skip - dtstart).num_hours(),
                Freq::Minutely => (skip - dtstart).num_minutes(),
                Freq::Secondly => (skip - dtstart).num_seconds(),
            };
            period = (units / i64::from(rule.interval) - 1).max(0) as u64;
        }
        Instances {
            rule,
            dtstart,
            until,
            stop,
            period,
            emitted: 0,
            started: false,
            done: false,
            buffer: VecDeque::new(),
        }
    }
}

/// Iterator over a rule's instances; see [`Rrule::expand`].
pub struct Instances {
    rule: Rrule,
    dtstart: NaiveDateTime,
    until: Option<NaiveDateTime>,
    stop: NaiveDateTime,
    period: u64,
    emitted: u32,
    started: bool,
    done: bool,
    buffer: VecDeque<NaiveDateTime>,
}

/// Consecutive periods without an instance after which a rule is taken to be impossible
/// (`BYMONTHDAY=30;BYMONTH=2`). Ten years of days.
const MAX_EMPTY_PERIODS: u32 = 3700;

impl Iterator for Instances {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            if self.until.is_some_and(|u| self.dtstart > u) {
                self.done = true;
                return None;
            }
            self.emitted = 1;
            if self.rule.count == Some(1) || self.rule.count == Some(0) {
                self.done = true;
            }
            return Some(self.dtstart);
        }
        let mut empty = 0;
        while self.buffer.is_empty() {
            let Some((period_start, set)) = self.period_instances(self.period) else {
                self.done = true;
                return None;
            };
            self.period += 1;
            if period_start > self.stop {
                self.done = true;
                return None;
            }
            self.buffer
                .extend(set.into_iter().filter(|t| *t > self.dtstart));
            if self.buffer.is_empty() {
                empty += 1;
                if empty > MAX_EMPTY_PERIODS {
                    self.done = true;
                    return None;
                }
            }
        }
        let t = self.buffer.pop_front().expect("non-empty");
        if t > self.stop || self.until.is_some_and(|u| t > u) {
            self.done = true;
            return None;
        }
        self.emitted += 1;
        if self.rule.count.is_some_and(|c| self.emitted >= c) {
            self.done = true;
        }
        Some(t)
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
    let next = first + Months::new(1);
    (next - first).num_days() as u32
}

fn days_in_year(y: i32) -> u32 {
    if NaiveDate::from_ymd_opt(y, 2, 29).is_some() {
        366
    } else {
        365
    }
}

impl Instances {
    /// The start of period `k` and its instances (sorted), `None` past the representable range.
    fn period_instances(&self, k: u64) -> Option<(NaiveDateTime, Vec<NaiveDateTime>)> {
        let r = &self.rule;
        let step = k.checked_mul(u64::from(r.interval))?;
        let step_i = i64::try_from(step).ok()?;
        let d0 = self.dtstart.date();
        let (start, days): (NaiveDateTime, Vec<NaiveDate>) = match r.freq {
            Freq::Yearly => {
                let y = d0.year().checked_add(i32::try_from(step).ok()?)?;
                let first = NaiveDate::from_ymd_opt(y, 1, 1)?;
                let days = (0..days_in_year(y))
                    .map(|i| first + TimeDelta::days(i.into()))
                    .collect();
                (first.and_time(NaiveTime::MIN), days)
            }
            Freq::Monthly => {
                let first = NaiveDate::from_ymd_opt(d0.year(), d0.month(), 1)?
                    .checked_add_months(Months::new(u32::try_from(step).ok()?))?;
                let days = (0..days_in_month(first.year(), first.month()))
                    .map(|i| first + TimeDelta::days(i.into()))
                    .collect();
                (first.and_time(NaiveTime::MIN), days)
            }
            Freq::Weekly => {
                let back =
                    (7 + d0.weekday().num_days_from_monday() - r.wkst.num_days_from_monday()) % 7;
                let first = d0
                    .checked_sub_signed(TimeDelta::days(back.into()))?
                    .checked_add_signed(TimeDelta::try_weeks(step_i)?)?;
                let days = (0..7).map(|i| first + TimeDelta::days(i)).collect();
                (first.and_time(NaiveTime::MIN), days)
            }
            Freq::Daily => {
                let d = d0.checked_add_signed(TimeDelta::try_days(step_i)?)?;
                (d.and_time(NaiveTime::MIN), vec![d])
            }
            Freq::Hourly | Freq::Minutely | Freq::Secondly => {
                let unit = match r.freq {
                    Freq::Hourly => TimeDelta::try_hours(step_i)?,
                    Freq::Minutely => TimeDelta::try_minutes(step_i)?,
                    _ => TimeDelta::try_seconds(step_i)?,
                };
                let t = self.dtstart.checked_add_signed(unit)?;
                if !self.day_matches(t.date()) {
                    return Some((t, vec![]));
                }
                let hour_ok = r.by_hour.is_empty() || r.by_hour.contains(&t.hour());
                let minute_ok = r.by_minute.is_empty() || r.by_minute.contains(&t.minute());
                let second_ok = r.by_second.is_empty() || r.by_second.contains(&t.second());
                let set = match r.freq {
                    Freq::Hourly if hour_ok => self.times_for(t.date(), Some(t.hour()), None),
                    Freq::Minutely if hour_ok && minute_ok => {
                        self.times_for(t.date(), Some(t.hour()), Some(t.minute()))
                    }
                    Freq::Secondly if hour_ok && minute_ok && second_ok => vec![t],
                    _ => vec![],
                };
                return Some((t, apply_set_pos(&r.by_set_pos, set)));
            }
        };
        let mut set = Vec::new();
        for d in days.into_iter().filter(|d| self.day_matches(*d)) {
            set.extend(self.times_for(d, None, None));
        }
        Some((start, apply_set_pos(&r.by_set_pos, set)))
    }

    /// Times of day on `d` from BYHOUR/BYMINUTE/BYSECOND (defaults from DTSTART).
    fn times_for(
        &self,
        d: NaiveDate,
        hour: Option<u32>,
        minute: Option<u32>,
    ) -> Vec<NaiveDateTime> {
        let r = &self.rule;
        let or_default = |v: &Vec<u32>, default: u32| {
            let mut v = if v.is_empty() {
                vec![default]
            } else {
                v.clone()
            };
            v.sort_unstable();
            v.dedup();
            v
        };
        let hours = hour.map_or_else(|| or_default(&r.by_hour, self.dtstart.hour()), |h| vec![h]);
        let minutes = minute.map_or_else(
            || or_default(&r.by_minute, self.dtstart.minute()),
            |m| vec![m],
        );
        let seconds = or_default(&r.by_second, self.dtstart.second());
        let mut out = Vec::with_capacity(hours.len() * minutes.len() * seconds.len());
        for h in &hours {
            for m in &minutes {
                for s in &seconds {
                    if let Some(t) = NaiveTime::from_hms_opt(*h, *m, *s) {
                        out.push(d.and_time(t));
                    }
                }
            }
        }
        out
    }

    /// Whether day `d` passes the date-level BYxxx filters.
    fn day_matches(&self, d: NaiveDate) -> bool {
        let r = &self.rule;
        if !r.by_month.is_empty() && !r.by_month.contains(&d.month()) {
            return false;
        }
        let dim = days_in_month(d.year(), d.month()) as i32;
        let diy = days_in_year(d.year()) as i32;
        if !r.by_month_day.is_empty() {
            let day = d.day() as i32;
            if !r
                .by_month_day
                .iter()
                .any(|&n| n == day || (n < 0 && dim + n + 1 == day))
            {
                return false;
            }
        }
        if !r.by_year_day.is_empty() {
            let day = d.ordinal() as i32;
            if !r
                .by_year_day
                .iter()
                .any(|&n| n == day || (n < 0 && diy + n + 1 == day))
            {
                return false;
            }
        }
        if !r.by_week_no.is_empty() {
            let (week, weeks) = week_number(d, r.wkst);
            if !r
                .by_week_no
                .iter()
                .any(|&n| n == week || (n < 0 && weeks + n + 1 == week))
            {
                return false;
            }
        }
        if !r.by_day.is_empty() {
            // Which span a numbered BYDAY (`2MO`, `-1FR`) counts in.
            let in_month =
                r.freq == Freq::Monthly || (r.freq == Freq::Yearly && !r.by_month.is_empty());
            let in_year =
                r.freq == Freq::Yearly && r.by_month.is_empty() && r.by_week_no.is_empty();
            let ok = r.by_day.iter().any(|&(n, wd)| {
                if wd != d.weekday() {
                    return false;
                }
                if n == 0 || !(in_month || in_year) {
                    return true;
                }
                let (pos, len) = if in_month {
                    (d.day() as i32, dim)
                } else {
                    (d.ordinal() as i32, diy)
                };
                if n > 0 {
                    (pos - 1) / 7 + 1 == n
                } else {
                    (len - pos) / 7 + 1 == -n
                }
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

/// Week number of `d` with weeks starting on `wkst` (week 1 is the first with at least four
/// days in the year, RFC 5545), and how many weeks that week-year has.
fn week_number(d: NaiveDate, wkst: Weekday) -> (i32, i32) {
    let week1_start = |y: i32| {
        let jan4 = NaiveDate::from_ymd_opt(y, 1, 4).expect("valid");
        let back = (7 + jan4.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
        jan4 - TimeDelta::days(back.into())
    };
    let mut y = d.year();
    if d < week1_start(y) {
        y -= 1;
    } else if d >= week1_start(y + 1) {
        y += 1;
    }
    let start = week1_start(y);
    let week = ((d - start).num_days() / 7 + 1) as i32;
    let weeks = ((week1_start(y + 1) - start).num_days() / 7) as i32;
    (week, weeks)
}

fn apply_set_pos(set_pos: &[i32], set: Vec<NaiveDateTime>) -> Vec<NaiveDateTime> {
    if set_pos.is_empty() || set.is_empty() {
        return set;
    }
    let len = set.len() as i32;
    let mut out: Vec<NaiveDateTime> = set_pos
        .iter()
        .filter_map(|&p| {
            let i = if p > 0 { p - 1 } else { len + p };
            (0..len).contains(&i).then(|| set[i as usize])
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        parse_naive(s).unwrap().0
    }

    fn run(rule: &str, start: &str, n: usize) -> Vec<String> {
        let r = Rrule::parse(rule).unwrap();
        let until = r.until_naive().map(|(u, _)| u);
        r.expand(dt(start), until, None, dt("22000101"))
            .take(n)
            .map(|t| t.format("%Y%m%dT%H%M%S").to_string())
            .collect()
    }

    // Examples from RFC 5545 §3.8.5.3.
    #[test]
    fn rfc_every_other_week_on_monday_wednesday_friday() {
        assert_eq!(
            run(
                "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=MO,WE,FR;UNTIL=19971224T000000Z",
                "19970901T090000",
                100
            )
            .len(),
            25
        );
    }

    #[test]
    fn rfc_last_weekday_of_the_month_with_bysetpos() {
        assert_eq!(
            run(
                "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
                "19970930T090000",
                3
            ),
            ["19970930T090000", "19971031T090000", "19971128T090000"]
        );
    }

    #[test]
    fn rfc_first_saturday_after_first_sunday_monthly() {
        assert_eq!(
            run(
                "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
                "19970913T090000",
                3
            ),
            ["19970913T090000", "19971011T090000", "19971108T090000"]
        );
    }

    #[test]
    fn rfc_us_presidential_election_day() {
        assert_eq!(
            run(
                "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
                "19961105T090000",
                3
            ),
            ["19961105T090000", "20001107T090000", "20041102T090000"]
        );
    }

    #[test]
    fn rfc_monday_of_week_20() {
        assert_eq!(
            run("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "19970512T090000", 3),
            ["19970512T090000", "19980511T090000", "19990517T090000"]
        );
    }

    #[test]
    fn rfc_wkst_changes_the_result() {
        assert_eq!(
            run(
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
                "19970805T090000",
                10
            ),
            [
                "19970805T090000",
                "19970810T090000",
                "19970819T090000",
                "19970824T090000"
            ]
        );
        assert_eq!(
            run(
                "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
                "19970805T090000",
                10
            ),
            [
                "19970805T090000",
                "19970817T090000",
                "19970819T090000",
                "19970831T090000"
            ]
        );
    }

    #[test]
    fn monthly_on_the_31st_skips_short_months() {
        assert_eq!(
            run("FREQ=MONTHLY;COUNT=3", "20240131T100000", 10),
            ["20240131T100000", "20240331T100000", "20240531T100000"]
        );
    }

    #[test]
    fn second_to_last_day_of_the_month() {
        assert_eq!(
            run("FREQ=MONTHLY;BYMONTHDAY=-2;COUNT=3", "19970929T090000", 10),
            ["19970929T090000", "19971030T090000", "19971129T090000"]
        );
    }

    #[test]
    fn every_20th_monday_of_the_year() {
        assert_eq!(
            run("FREQ=YEARLY;BYDAY=20MO", "19970519T090000", 3),
            ["19970519T090000", "19980518T090000", "19990517T090000"]
        );
    }

    #[test]
    fn hourly_with_interval_and_until() {
        assert_eq!(
            run(
                "FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000Z",
                "19970902T090000",
                10
            ),
            ["19970902T090000", "19970902T120000", "19970902T150000"]
        );
    }

    #[test]
    fn skipping_ahead_gives_the_same_instances() {
        let r = Rrule::parse("FREQ=DAILY;INTERVAL=3").unwrap();
        let all: Vec<_> = r
            .expand(dt("20200101T090000"), None, None, dt("20250101"))
            .filter(|t| *t >= dt("20240601"))
            .collect();
        let skipped: Vec<_> = r
            .expand(
                dt("20200101T090000"),
                None,
                Some(dt("20240601")),
                dt("20250101"),
            )
            .filter(|t| *t >= dt("20240601"))
            .collect();
        assert_eq!(all, skipped);
    }

    #[test]
    fn an_impossible_rule_ends() {
        assert_eq!(
            run("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "20240101T090000", 10).len(),
            1
        );
    }

    #[test]
    fn a_rule_without_freq_is_refused() {
        assert!(Rrule::parse("COUNT=3").is_err());
        assert!(Rrule::parse("FREQ=FORTNIGHTLY").is_err());
    }
}

//! Calendar value types: DATE, DATE-TIME (floating, UTC or with a `TZID`), DURATION, PERIOD.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

/// What a DATE or DATE-TIME text was, before any `TZID` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `20240301`: a whole day.
    Date,
    /// `20240301T090000`: local time (floating, or in the `TZID` zone).
    Local,
    /// `20240301T090000Z`: UTC.
    Utc,
}

/// Parses a DATE or DATE-TIME, tolerating `-` and `:` separators and missing seconds.
pub fn parse_naive(s: &str) -> Option<(NaiveDateTime, ValueKind)> {
    let s = s.trim();
    let (s, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let compact: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    let (date_part, time_part) = match compact.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (compact.as_str(), None),
    };
    if date_part.len() != 8 || !date_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        date_part[0..4].parse().ok()?,
        date_part[4..6].parse().ok()?,
        date_part[6..8].parse().ok()?,
    )?;
    let Some(t) = time_part else {
        return Some((date.and_time(NaiveTime::MIN), ValueKind::Date));
    };
    // Fractional seconds are not iCalendar, but some producers write them: ignore.
    let t = t.split(['.', ',']).next().unwrap_or_default();
    if !(t.len() == 4 || t.len() == 6) || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u32 = t[0..2].parse().ok()?;
    let m: u32 = t[2..4].parse().ok()?;
    let sec: u32 = if t.len() == 6 {
        t[4..6].parse().ok()?
    } else {
        0
    };
    // A leap second (60) is read as 59.
    let time = NaiveTime::from_hms_opt(h, m, sec.min(59))?;
    let kind = if utc {
        ValueKind::Utc
    } else {
        ValueKind::Local
    };
    Some((date.and_time(time), kind))
}

/// How long an event or instance lasts, as RFC 5545 counts it: a number of nominal days
/// (weeks and days of a DURATION, or the days between two DATEs), added on the local
/// calendar, then an exact time (hours, minutes and seconds of a DURATION, or the time between
/// DTSTART and DTEND), added to the instant (§3.3.6: days first). On a DST change night `P1D`
/// is 23 or 25 hours; `PT24H` is always 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    /// Whole days, counted on the local calendar.
    pub days: i64,
    /// Exact time, added after the days.
    pub exact: TimeDelta,
}

impl Length {
    /// No length at all.
    pub const ZERO: Length = Length {
        days: 0,
        exact: TimeDelta::zero(),
    };

    /// `days` nominal days.
    pub fn days(days: i64) -> Length {
        Length {
            days,
            exact: TimeDelta::zero(),
        }
    }

    /// An exact time.
    pub fn exact(exact: TimeDelta) -> Length {
        Length { days: 0, exact }
    }

    /// The length counting every day as 24 hours: for window margins and ordering, never for
    /// an end time. `None` when it does not fit a `TimeDelta`.
    pub fn approx(&self) -> Option<TimeDelta> {
        TimeDelta::try_days(self.days)?.checked_add(&self.exact)
    }

    /// The same length the other way (both parts always have the same sign).
    pub fn negated(&self) -> Length {
        Length {
            days: -self.days,
            exact: -self.exact,
        }
    }
}

/// Parses a DURATION (`P1D`, `PT1H30M`, `-PT15M`, `P2W`).
pub fn parse_duration(s: &str) -> Option<Length> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s.strip_prefix(['P', 'p'])?;
    let mut length = Length::ZERO;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => num.push(c),
            'T' => {}
            unit @ ('W' | 'D' | 'H' | 'M' | 'S') => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                any = true;
                match unit {
                    'W' => length.days = length.days.checked_add(n.checked_mul(7)?)?,
                    'D' => length.days = length.days.checked_add(n)?,
                    _ => {
                        length.exact = length.exact.checked_add(&match unit {
                            'H' => TimeDelta::try_hours(n)?,
                            'M' => TimeDelta::try_minutes(n)?,
                            _ => TimeDelta::try_seconds(n)?,
                        })?
                    }
                }
            }
            _ => return None,
        }
    }
    if !any || !num.is_empty() {
        return None;
    }
    // A length that does not fit a `TimeDelta` is no length a calendar means.
    length.approx()?;
    Some(if neg { length.negated() } else { length })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_in_their_three_forms() {
        let (d, k) = parse_naive("20240301").unwrap();
        assert_eq!(
            (d.to_string().as_str(), k),
            ("2024-03-01 00:00:00", ValueKind::Date)
        );
        let (d, k) = parse_naive("20240301T093000Z").unwrap();
        assert_eq!(
            (d.to_string().as_str(), k),
            ("2024-03-01 09:30:00", ValueKind::Utc)
        );
        let (_, k) = parse_naive("2024-03-01T09:30:00").unwrap();
        assert_eq!(k, ValueKind::Local);
        assert!(parse_naive("20240230T090000").is_none());
        assert!(parse_naive("garbage").is_none());
    }

    #[test]
    fn durations() {
        let exact = |d| Some(Length::exact(d));
        assert_eq!(parse_duration("PT1H30M"), exact(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("-PT15M"), exact(TimeDelta::minutes(-15)));
        assert_eq!(parse_duration("P1W"), Some(Length::days(7)));
        assert_eq!(
            parse_duration("P1DT1S"),
            Some(Length {
                days: 1,
                exact: TimeDelta::seconds(1)
            })
        );
        assert_eq!(parse_duration("PT24H"), exact(TimeDelta::hours(24)));
        assert_eq!(parse_duration("P"), None);
        assert_eq!(parse_duration("1H"), None);
    }
}

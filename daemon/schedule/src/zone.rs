//! Time zones of calendar values: IANA names, Windows (Outlook/Exchange) names, and the
//! calendar's own `VTIMEZONE` definitions; local-to-UTC resolution with RFC 5545's rules for
//! DST gaps and folds.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::Tz;

use crate::ics::Component;
use crate::rrule::Rrule;
use crate::value::parse_naive;

/// The zone a zoned calendar value is in.
#[derive(Debug, Clone)]
pub enum Zone {
    /// UTC (`Z` suffix).
    Utc,
    /// A zone of the IANA database (also reached from Windows names).
    Iana(Tz),
    /// A zone defined only by the calendar's own `VTIMEZONE`.
    Custom(Arc<CustomZone>),
}

impl Zone {
    /// Offset from UTC (seconds east) at the UTC instant `utc`.
    pub fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Iana(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
            Zone::Custom(c) => c.offset_at(utc),
        }
    }

    /// The UTC instant of local time `local`. In a DST gap, the offset before the gap is used
    /// (so 02:30 on a spring-forward night becomes 03:30 local); in a fold, the first
    /// occurrence wins — both as RFC 5545 §3.3.5 says.
    pub fn to_utc(&self, local: NaiveDateTime) -> NaiveDateTime {
        self.read(local).0
    }

    /// Whether local time `local` falls in a DST gap (names no instant) or a fold (names two),
    /// so that [`Zone::to_utc`] had to choose.
    pub fn is_gap_or_fold(&self, local: NaiveDateTime) -> bool {
        !self.read(local).1
    }

    /// The instant [`Zone::to_utc`] gives, and whether `local` names exactly that one.
    fn read(&self, local: NaiveDateTime) -> (NaiveDateTime, bool) {
        if let Zone::Utc = self {
            return (local, true);
        }
        let day = TimeDelta::days(1);
        let before = self.offset_at(local - day);
        let after = self.offset_at(local + day);
        let valid = |off: i32| {
            let t = local - TimeDelta::seconds(off.into());
            (self.offset_at(t) == off).then_some(t)
        };
        match (valid(before), valid(after)) {
            (Some(a), Some(b)) => (a.min(b), a == b),
            (Some(a), None) | (None, Some(a)) => (a, true),
            (None, None) => (local - TimeDelta::seconds(before.into()), false),
        }
    }

    /// Local time at the UTC instant `utc`.
    pub fn to_local(&self, utc: NaiveDateTime) -> NaiveDateTime {
        utc + TimeDelta::seconds(self.offset_at(utc).into())
    }
}

/// A zone from a `VTIMEZONE` whose name is neither IANA nor Windows: its transitions computed
/// from the `STANDARD`/`DAYLIGHT` observances.
#[derive(Debug)]
pub struct CustomZone {
    /// (UTC instant of the transition, offset after it), sorted.
    transitions: Vec<(NaiveDateTime, i32)>,
    /// Offset before the first transition.
    initial: i32,
}

/// Observances are expanded up to this year (calendars plan a few years ahead at most).
const LAST_TRANSITION_YEAR: i32 = 2200;

impl CustomZone {
    /// Builds the zone from a `VTIMEZONE` component. `None` when it has no usable observance.
    pub fn from_vtimezone(vtz: &Component) -> Option<CustomZone> {
        let mut transitions = Vec::new();
        let mut first: Option<(NaiveDateTime, i32)> = None;
        for obs in &vtz.children {
            if obs.name != "STANDARD" && obs.name != "DAYLIGHT" {
                continue;
            }
            let Some(from) = obs
                .property("TZOFFSETFROM")
                .and_then(|p| parse_offset(&p.value))
            else {
                continue;
            };
            let Some(to) = obs
                .property("TZOFFSETTO")
                .and_then(|p| parse_offset(&p.value))
            else {
                continue;
            };
            let Some(start) = obs
                .property("DTSTART")
                .and_then(|p| parse_naive(p.value.trim()))
                .map(|(dt, _)| dt)
            else {
                continue;
            };
            let mut onsets = vec![start];
            for p in obs.properties_named("RDATE") {
                onsets.extend(
                    p.value
                        .split(',')
                        .filter_map(|v| parse_naive(v.trim()).map(|(d, _)| d)),
                );
            }
            if let Some(rule) = obs
                .property("RRULE")
                .and_then(|p| Rrule::parse(&p.value).ok())
            {
                let stop = chrono::NaiveDate::from_ymd_opt(LAST_TRANSITION_YEAR, 1, 1)
                    .expect("valid date")
                    .and_hms_opt(0, 0, 0)
                    .expect("valid time");
                // UNTIL in a VTIMEZONE is UTC; compare in local standard-of-this-observance time.
                let until = rule.until_naive().map(|(u, utc)| {
                    if utc {
                        u + TimeDelta::seconds(from.into())
                    } else {
                        u
                    }
                });
                onsets.extend(rule.expand(start, until, None, stop).take(5000).skip(1));
            }
            for onset in onsets {
                let utc = onset - TimeDelta::seconds(from.into());
                if first.is_none_or(|(t, _)| utc < t) {
                    first = Some((utc, from));
                }
                transitions.push((utc, to));
            }
        }
        let (_, initial) = first?;
        transitions.sort_by_key(|(t, _)| *t);
        Some(CustomZone {
            transitions,
            initial,
        })
    }

    fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self.transitions.partition_point(|(t, _)| *t <= utc) {
            0 => self.initial,
            i => self.transitions[i - 1].1,
        }
    }
}

/// `+0100`, `-0530`, `+013045`.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[0..2].parse().ok()?;
    let m: i32 = digits[2..4].parse().ok()?;
    let sec: i32 = if digits.len() == 6 {
        digits[4..6].parse().ok()?
    } else {
        0
    };
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// The zones a calendar's values may refer to by `TZID`.
#[derive(Debug, Default)]
pub struct ZoneBook {
    /// `TZID` → the calendar's own definition.
    vtimezones: HashMap<String, Arc<CustomZone>>,
    /// `TZID` → IANA zone, for `VTIMEZONE`s whose `TZID` or `X-LIC-LOCATION` names one.
    named: HashMap<String, Tz>,
}

impl ZoneBook {
    /// Collects the `VTIMEZONE`s of a calendar.
    pub fn from_calendar(cal: &Component) -> ZoneBook {
        let mut book = ZoneBook::default();
        for vtz in cal.children.iter().filter(|c| c.name == "VTIMEZONE") {
            let Some(tzid) = vtz.property("TZID").map(|p| p.text().trim().to_owned()) else {
                continue;
            };
            if let Some(tz) = vtz
                .property("X-LIC-LOCATION")
                .and_then(|p| iana_or_windows(p.text().trim()))
            {
                book.named.insert(tzid.clone(), tz);
            }
            if let Some(custom) = CustomZone::from_vtimezone(vtz) {
                book.vtimezones.insert(tzid, Arc::new(custom));
            }
        }
        book
    }

    /// The zone named `tzid`. An exact IANA name first (the database knows the zone's whole
    /// history, a calendar's `VTIMEZONE` only an excerpt); then the calendar's own
    /// `VTIMEZONE` of that exact name (it may define a name that only looks like an IANA one,
    /// such as `Europe/lisbon` defined as CET in Google exports); then Windows names, IANA
    /// names in another case or with a vendor prefix, and `X-LIC-LOCATION`. `None` if unknown.
    pub fn resolve(&self, tzid: &str) -> Option<Zone> {
        let tzid = tzid.trim().trim_matches('"');
        if let Ok(tz) = tzid.parse::<Tz>() {
            return Some(Zone::Iana(tz));
        }
        if let Some(custom) = self.vtimezones.get(tzid) {
            return Some(Zone::Custom(custom.clone()));
        }
        iana_or_windows(tzid)
            .or_else(|| self.named.get(tzid).copied())
            .map(Zone::Iana)
    }
}

/// Resolves an IANA name (also with a vendor prefix like `/mozilla.org/20050126_1/Europe/Paris`
/// and in any case) or a Windows zone name (`W. Europe Standard Time`).
pub fn iana_or_windows(name: &str) -> Option<Tz> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("gmt") || name == "Z" {
        return Some(Tz::UTC);
    }
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    if let Ok(tz) = Tz::from_str_insensitive(name) {
        return Some(tz);
    }
    if let Some(tz) = windows_zone(name) {
        return Some(tz);
    }
    // Vendor prefixes: try every suffix made of whole path segments.
    let mut rest = name;
    while let Some(i) = rest.find('/') {
        rest = &rest[i + 1..];
        if let Ok(tz) = Tz::from_str_insensitive(rest) {
            return Some(tz);
        }
    }
    None
}

/// Windows time zone names (Outlook, Exchange, Teams) to IANA, after CLDR's `windowsZones`
/// table (territory "001" entries).
fn windows_zone(name: &str) -> Option<Tz> {
    let iana = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(name))
        .map(|(_, iana)| *iana)?;
    iana.parse().ok()
}

const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("UTC-09", "Etc/GMT+9"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("UTC-08", "Etc/GMT+8"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("Greenland Standard Time", "America/Godthab"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Central Asia Standard Time", "Asia/Bishkek"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Rangoon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
];

/// The machine's time zone: `TZ`, else `/etc/timezone`, else the `/etc/localtime` link, else UTC.
pub fn system_zone() -> Tz {
    let from_tz = std::env::var("TZ")
        .ok()
        .map(|s| s.trim_start_matches(':').to_owned());
    let from_file = || {
        std::fs::read_to_string("/etc/timezone")
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let from_link = || {
        std::fs::read_link("/etc/localtime").ok().and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            p.split_once("zoneinfo/").map(|(_, name)| name.to_owned())
        })
    };
    [from_tz, from_file(), from_link()]
        .into_iter()
        .flatten()
        .find_map(|name| iana_or_windows(&name))
        .unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn windows_names_map_to_iana() {
        assert_eq!(
            iana_or_windows("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            iana_or_windows("Romance Standard Time"),
            Some(chrono_tz::Europe::Paris)
        );
        for (_, iana) in WINDOWS_ZONES {
            assert!(
                iana.parse::<Tz>().is_ok(),
                "{iana} is not in the IANA database"
            );
        }
    }

    #[test]
    fn vendor_prefixed_tzids_resolve() {
        assert_eq!(
            iana_or_windows("/mozilla.org/20050126_1/Europe/Paris"),
            Some(chrono_tz::Europe::Paris)
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_moves_forward_by_the_gap() {
        let paris = Zone::Iana(chrono_tz::Europe::Paris);
        // 2024-03-31 02:30 does not exist in Paris: interpreted with +01:00 → 01:30 UTC.
        assert_eq!(paris.to_utc(at(2024, 3, 31, 2, 30)), at(2024, 3, 31, 1, 30));
    }

    #[test]
    fn a_time_in_the_autumn_fold_is_its_first_occurrence() {
        let paris = Zone::Iana(chrono_tz::Europe::Paris);
        // 2024-10-27 02:30 happens twice; the first is at +02:00 → 00:30 UTC.
        assert_eq!(
            paris.to_utc(at(2024, 10, 27, 2, 30)),
            at(2024, 10, 27, 0, 30)
        );
    }

    #[test]
    fn gaps_and_folds_are_told_apart_from_ordinary_times() {
        let paris = Zone::Iana(chrono_tz::Europe::Paris);
        assert!(paris.is_gap_or_fold(at(2024, 3, 31, 2, 30)));
        assert!(paris.is_gap_or_fold(at(2024, 10, 27, 2, 30)));
        for ordinary in [
            at(2024, 3, 31, 1, 59),
            at(2024, 3, 31, 3, 0),
            at(2024, 10, 27, 1, 59),
            at(2024, 10, 27, 3, 0),
            at(2024, 7, 10, 9, 0),
        ] {
            assert!(!paris.is_gap_or_fold(ordinary), "{ordinary}");
        }
        assert!(!Zone::Utc.is_gap_or_fold(at(2024, 3, 31, 2, 30)));
    }

    #[test]
    fn a_custom_vtimezone_matches_the_database() {
        let (roots, _) = crate::ics::parse(
            "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:My Office\nBEGIN:STANDARD\nDTSTART:16011028T030000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010325T020000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE\nEND:VCALENDAR\n",
        );
        let book = ZoneBook::from_calendar(&roots[0]);
        let zone = book.resolve("My Office").expect("custom zone");
        assert!(matches!(zone, Zone::Custom(_)));
        let paris = Zone::Iana(chrono_tz::Europe::Paris);
        for local in [
            at(2024, 1, 10, 9, 0),
            at(2024, 7, 10, 9, 0),
            at(2024, 3, 31, 2, 30),
            at(2024, 10, 27, 2, 30),
            at(2025, 3, 30, 3, 0),
        ] {
            assert_eq!(zone.to_utc(local), paris.to_utc(local), "{local}");
        }
        assert_eq!(at(2024, 1, 1, 0, 0).year(), 2024);
    }
}

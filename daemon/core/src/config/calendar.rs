//! `[calendar]` and its `[[calendar.sources]]`: where the room's meetings come from and how the
//! room follows them. The sources are fetched by `visio-room-calendar`, the meetings planned by
//! `visio-room-schedule`; this module only reads and checks the settings.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use url::{Host, Url};

use super::keys::{checked, optional, parsed, section, whole, Flag, Located, Rule};
use super::reader::{At, Item, Reader};
use super::ConfigError;

section! {
    /// `[calendar]`: the room's calendar. No sources means no automatic joins.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CalendarConfig in "calendar" {
        /// The room's own calendar address (`salle-4b@example.gouv.fr`): meetings it declined
        /// are skipped.
        room_address: Option<String> = None => optional(checked(
            "the room's calendar e-mail address, such as \"salle-4b@example.gouv.fr\"",
            room_address,
        )),
        /// The zone of floating times and all-day events (IANA name); `None`: the system's zone.
        time_zone: Option<String> = None => optional(checked(
            "an IANA time zone such as \"Europe/Paris\"",
            time_zone,
        )),
        /// Seconds between two fetches of each source (±10 % jitter).
        poll_interval_s: u32 = 60 => whole(10, 86_400),
        /// Seconds before the start at which the room joins.
        join_lead_s: u32 = 120 => whole(0, 3_600),
        /// Seconds the room stays after the end while people are still in the call.
        leave_grace_s: u32 = 300 => whole(0, 7_200),
        /// Whether tentative meetings are joined.
        join_tentative: bool = true => Flag,
        /// What a scheduled meeting does to a call started by hand.
        manual_call: ManualCall = ManualCall::Offer => parsed("\"offer\" or \"switch\""),
        /// How many meetings `NextMeetings` lists.
        show_next: u32 = 5 => whole(1, 50),
        /// `[[calendar.sources]]`, in file order (their keys: `SourceKeys`).
        sources: Vec<CalendarSource> = Vec::new() => SourceList,
    }
}

section! {
    /// The keys of one `[[calendar.sources]]` table as written; [`SourceKeys::source`] checks
    /// them together and makes the [`CalendarSource`].
    #[derive(Debug)]
    pub(super) struct SourceKeys in "calendar.sources" {
        /// `file`, `ics` or `caldav` (required).
        kind as "type": Option<At<String>> = None
            => optional(Located { expected: "\"file\", \"ics\" or \"caldav\"" }),
        /// The `.ics` file of a `file` source (required for it).
        path: Option<At<String>> = None
            => optional(Located { expected: "an absolute path" }),
        /// The feed, or where CalDAV discovery starts (required for `ics` and `caldav`).
        url: Option<At<String>> = None
            => optional(Located { expected: "an https:// URL" }),
        /// HTTP basic user name; needs `password_file`.
        username: Option<At<String>> = None
            => optional(Located { expected: "a string" }),
        /// The file holding the basic-auth password.
        password_file: Option<At<String>> = None
            => optional(Located { expected: "an absolute path" }),
        /// The file holding a bearer token, instead of `username` and `password_file`.
        token_file: Option<At<String>> = None
            => optional(Located { expected: "an absolute path" }),
    }
}

/// `calendar.room_address`: the address without `mailto:`.
fn room_address(address: &str) -> Result<String, String> {
    let address = address.trim();
    let address = address
        .strip_prefix("mailto:")
        .or_else(|| address.strip_prefix("MAILTO:"))
        .unwrap_or(address);
    let valid = address.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
    });
    if valid {
        Ok(address.to_owned())
    } else {
        Err(
            "expected the room's calendar e-mail address, such as \"salle-4b@example.gouv.fr\""
                .into(),
        )
    }
}

/// `calendar.time_zone`: a zone of the IANA database.
fn time_zone(zone: &str) -> Result<String, String> {
    match zone.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(zone.to_owned()),
        Err(_) => Err(format!(
            "expected an IANA time zone such as \"Europe/Paris\", got {zone:?}"
        )),
    }
}

/// `calendar.manual_call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManualCall {
    /// Offer the scheduled meeting (signal `MeetingOffered`); the people in the room decide.
    #[default]
    Offer,
    /// Leave the call started by hand and join the scheduled meeting.
    Switch,
}

/// One `[[calendar.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarSource {
    /// `type = "file"`: a local `.ics` file, re-read when it changes.
    File {
        /// The file.
        path: PathBuf,
    },
    /// `type = "ics"`: an ICS/webcal feed.
    Ics {
        /// The feed (`https://`, `webcal://`; `http://` only on loopback).
        url: Url,
        /// How to authenticate.
        auth: CalendarAuth,
    },
    /// `type = "caldav"`: a CalDAV server (base URL, principal or calendar collection).
    CalDav {
        /// Where discovery starts.
        url: Url,
        /// How to authenticate.
        auth: CalendarAuth,
    },
}

/// How a calendar source authenticates. Secrets stay in files readable by the daemon only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarAuth {
    /// No authentication.
    None,
    /// HTTP basic: `username` and `password_file`.
    Basic {
        /// The user name.
        username: String,
        /// The file holding the password.
        password_file: PathBuf,
    },
    /// HTTP bearer: `token_file`.
    Bearer {
        /// The file holding the token.
        token_file: PathBuf,
    },
}

impl FromStr for ManualCall {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offer" => Ok(ManualCall::Offer),
            "switch" => Ok(ManualCall::Switch),
            _ => Err(format!("expected \"offer\" or \"switch\", got {s:?}")),
        }
    }
}

impl fmt::Display for ManualCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManualCall::Offer => "offer",
            ManualCall::Switch => "switch",
        })
    }
}

/// `calendar.sources`: the `[[calendar.sources]]` tables, each read as [`SourceKeys`] and
/// checked as a whole.
struct SourceList;

impl<S> Rule<S> for SourceList {
    type Value = Vec<CalendarSource>;

    fn toml_type(&self) -> &'static str {
        "array"
    }

    fn expected(&self) -> String {
        "[[calendar.sources]] tables".into()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        _: &S,
    ) -> Result<Vec<CalendarSource>, ConfigError> {
        let expected = "[[calendar.sources]] tables";
        let array = item
            .get_ref()
            .as_array()
            .ok_or_else(|| r.type_error(item, key, expected))?;
        let mut sources = Vec::with_capacity(array.len());
        for entry in array.iter() {
            let table = entry
                .get_ref()
                .as_table()
                .ok_or_else(|| r.type_error(entry, key, expected))?;
            sources.push(SourceKeys::read(r, table)?.source(r, entry.span())?);
        }
        Ok(sources)
    }

    fn to_toml(&self, sources: &Vec<CalendarSource>) -> Option<toml::Value> {
        // Only the default (no source) is ever shown.
        sources.is_empty().then(|| toml::Value::Array(Vec::new()))
    }
}

impl SourceKeys {
    /// The source these keys describe; `span` is the whole table, for a missing key.
    fn source(self, r: &Reader<'_>, span: Range<usize>) -> Result<CalendarSource, ConfigError> {
        let Some((kind, kind_span)) = self.kind.clone() else {
            return Err(r.error(
                Some(span),
                Some("calendar.sources.type"),
                "missing; expected type = \"file\", \"ics\" or \"caldav\"",
            ));
        };
        // Keys that make no sense for this type are refused rather than ignored.
        let refuse = |key: &str, value: &Option<At<String>>, why: &str| match value {
            Some((_, at)) => Err(r.error(
                Some(at.clone()),
                Some(&format!("calendar.sources.{key}")),
                why,
            )),
            None => Ok(()),
        };
        match kind.as_str() {
            "file" => {
                let why = "not used by a type = \"file\" source; remove it";
                refuse("url", &self.url, why)?;
                refuse("username", &self.username, why)?;
                refuse("password_file", &self.password_file, why)?;
                refuse("token_file", &self.token_file, why)?;
                let (path, path_span) = self.path.ok_or_else(|| {
                    r.error(
                        Some(span.clone()),
                        Some("calendar.sources.path"),
                        "missing; a type = \"file\" source needs path = \"/etc/visio-room/room.ics\"",
                    )
                })?;
                Ok(CalendarSource::File {
                    path: absolute_path(r, &path, path_span, "calendar.sources.path")?,
                })
            }
            "ics" | "caldav" => {
                refuse("path", &self.path, "a network source has url, not path")?;
                let (url, url_span) = self.url.clone().ok_or_else(|| {
                    r.error(
                        Some(span.clone()),
                        Some("calendar.sources.url"),
                        "missing; a network source needs url = \"https://…\"",
                    )
                })?;
                let url = source_url(r, &url, url_span, kind == "ics")?;
                let auth = self.auth(r, span)?;
                Ok(if kind == "ics" {
                    CalendarSource::Ics { url, auth }
                } else {
                    CalendarSource::CalDav { url, auth }
                })
            }
            _ => Err(r.error(
                Some(kind_span),
                Some("calendar.sources.type"),
                &format!("expected \"file\", \"ics\" or \"caldav\", got {kind:?}"),
            )),
        }
    }

    fn auth(self, r: &Reader<'_>, span: Range<usize>) -> Result<CalendarAuth, ConfigError> {
        match (self.username, self.password_file, self.token_file) {
            (None, None, None) => Ok(CalendarAuth::None),
            (Some((username, _)), Some((file, file_span)), None) => Ok(CalendarAuth::Basic {
                username,
                password_file: absolute_path(
                    r,
                    &file,
                    file_span,
                    "calendar.sources.password_file",
                )?,
            }),
            (None, None, Some((file, file_span))) => Ok(CalendarAuth::Bearer {
                token_file: absolute_path(r, &file, file_span, "calendar.sources.token_file")?,
            }),
            (Some((_, s)), None, None) => Err(r.error(
                Some(s),
                Some("calendar.sources.username"),
                "needs password_file too (a file holding the password; never the password itself)",
            )),
            (None, Some((_, s)), None) => Err(r.error(
                Some(s),
                Some("calendar.sources.password_file"),
                "needs username too",
            )),
            _ => Err(r.error(
                Some(span),
                Some("calendar.sources.token_file"),
                "use either username and password_file, or token_file, not both",
            )),
        }
    }
}

/// A source's URL: `https://` (`webcal://` for a feed), `http://` only on loopback, no
/// credentials.
fn source_url(
    r: &Reader<'_>,
    text: &str,
    span: Range<usize>,
    webcal: bool,
) -> Result<Url, ConfigError> {
    let key = Some("calendar.sources.url");
    let mut url = Url::parse(text.trim()).map_err(|e| {
        r.error(
            Some(span.clone()),
            key,
            &format!("{text:?} is not a URL ({e}); expected such as \"https://agenda.example.gouv.fr/rooms/4b.ics\""),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(r.error(
            Some(span),
            key,
            "must not contain credentials; use username and password_file (or token_file)",
        ));
    }
    if webcal && url.scheme() == "webcal" {
        // webcal:// is https:// (the scheme only tells desktops to subscribe).
        let rest = &url.as_str()["webcal".len()..];
        url = Url::parse(&format!("https{rest}")).expect("same URL with another scheme");
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(r.error(
            Some(span),
            key,
            "http:// is only allowed on loopback; use https:// (calendar data and credentials must not travel in clear)",
        )),
        other => Err(r.error(
            Some(span),
            key,
            &format!("expected an https:// URL{}, got {other}://", if webcal { " (or webcal://)" } else { "" }),
        )),
    }
}

/// An absolute path (a file named in the configuration is never relative to anything).
fn absolute_path(
    r: &Reader<'_>,
    p: &str,
    span: Range<usize>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(p);
    if path.is_absolute() && !p.chars().any(char::is_control) {
        Ok(path)
    } else {
        Err(r.error(
            Some(span),
            Some(key),
            &format!(
                "expected an absolute path such as \"/etc/visio-room/calendar.secret\", got {p:?}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, parse};

    #[test]
    fn no_calendar_section_means_no_sources_and_the_default_policy() {
        let c = parse("").unwrap().calendar;
        assert!(c.sources.is_empty());
        assert_eq!(
            (c.poll_interval_s, c.join_lead_s, c.leave_grace_s),
            (60, 120, 300)
        );
        assert_eq!(c.manual_call, ManualCall::Offer);
    }

    #[test]
    fn every_kind_of_source_and_the_policy_are_read() {
        let c = parse(
            r#"
[calendar]
room_address = "mailto:Salle-4B@example.gouv.fr"
time_zone = "Europe/Paris"
poll_interval_s = 30
join_lead_s = 60
leave_grace_s = 600
join_tentative = false
manual_call = "switch"
show_next = 3

[[calendar.sources]]
type = "file"
path = "/etc/visio-room/room.ics"

[[calendar.sources]]
type = "ics"
url = "webcal://agenda.example.gouv.fr/rooms/4b.ics"
token_file = "/etc/visio-room/secrets/agenda-token"

[[calendar.sources]]
type = "caldav"
url = "http://127.0.0.1:5232/"
username = "salle-4b"
password_file = "/etc/visio-room/secrets/caldav"
"#,
        )
        .unwrap()
        .calendar;
        assert_eq!(c.room_address.as_deref(), Some("Salle-4B@example.gouv.fr"));
        assert_eq!(c.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(
            (
                c.poll_interval_s,
                c.join_lead_s,
                c.leave_grace_s,
                c.show_next
            ),
            (30, 60, 600, 3)
        );
        assert!(!c.join_tentative);
        assert_eq!(c.manual_call, ManualCall::Switch);
        assert_eq!(
            c.sources,
            vec![
                CalendarSource::File {
                    path: "/etc/visio-room/room.ics".into()
                },
                CalendarSource::Ics {
                    url: Url::parse("https://agenda.example.gouv.fr/rooms/4b.ics").unwrap(),
                    auth: CalendarAuth::Bearer {
                        token_file: "/etc/visio-room/secrets/agenda-token".into()
                    },
                },
                CalendarSource::CalDav {
                    url: Url::parse("http://127.0.0.1:5232/").unwrap(),
                    auth: CalendarAuth::Basic {
                        username: "salle-4b".into(),
                        password_file: "/etc/visio-room/secrets/caldav".into()
                    },
                },
            ]
        );
    }

    #[test]
    fn bad_sources_name_the_key_and_what_to_do() {
        let cases = [
            (
                "[[calendar.sources]]\npath = \"/x.ics\"\n",
                "config.toml:1:1: calendar.sources.type: missing",
            ),
            (
                "[[calendar.sources]]\ntype = \"exchange\"\n",
                "config.toml:2:8: calendar.sources.type: expected \"file\", \"ics\" or \"caldav\", got \"exchange\"",
            ),
            (
                "[[calendar.sources]]\ntype = \"file\"\npath = \"room.ics\"\n",
                "calendar.sources.path: expected an absolute path",
            ),
            (
                "[[calendar.sources]]\ntype = \"file\"\npath = \"/r.ics\"\nurl = \"https://a.fr/\"\n",
                "calendar.sources.url: not used by a type = \"file\" source",
            ),
            (
                "[[calendar.sources]]\ntype = \"ics\"\nurl = \"http://agenda.example.gouv.fr/r.ics\"\n",
                "calendar.sources.url: http:// is only allowed on loopback",
            ),
            (
                "[[calendar.sources]]\ntype = \"caldav\"\nurl = \"https://room:hunter2@cal.example.gouv.fr/\"\n",
                "calendar.sources.url: must not contain credentials",
            ),
            (
                "[[calendar.sources]]\ntype = \"caldav\"\nurl = \"https://cal.example.gouv.fr/\"\nusername = \"room\"\n",
                "calendar.sources.username: needs password_file too",
            ),
            (
                "[[calendar.sources]]\ntype = \"caldav\"\nurl = \"https://c.fr/\"\npasword_file = \"/p\"\n",
                "calendar.sources.pasword_file: unknown key; expected one of type, path, url, username, password_file, token_file (did you mean password_file?)",
            ),
            (
                "[calendar]\ntime_zone = \"Paris\"\n",
                "config.toml:2:13: calendar.time_zone: expected an IANA time zone",
            ),
            (
                "[calendar]\nmanual_call = \"interrupt\"\n",
                "calendar.manual_call: expected \"offer\" or \"switch\"",
            ),
            (
                "[calendar]\nroom_address = \"salle 4b\"\n",
                "calendar.room_address: expected the room's calendar e-mail address",
            ),
            ("[calendar]\nsources = \"x\"\n", "calendar.sources: expected [[calendar.sources]] tables"),
            ("[calendar]\npoll_interval_s = 1\n", "calendar.poll_interval_s: expected a whole number from 10 to 86400, got 1"),
        ];
        for (text, expected) in cases {
            let message = err(text);
            assert!(
                message.contains(expected),
                "{text:?}\n  gave {message}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn secrets_are_never_in_the_configuration_itself() {
        // A password given inline is an unknown key, not silently accepted.
        let message = err("[[calendar.sources]]\ntype = \"caldav\"\nurl = \"https://c.fr/\"\npassword = \"hunter2\"\n");
        assert!(
            message.contains("calendar.sources.password: unknown key"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}

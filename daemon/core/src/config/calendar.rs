//! `[calendar]` and its `[[calendar.sources]]`: where the room's meetings come from and how the
//! room follows them. The sources are fetched by `visio-room-calendar`, the meetings planned by
//! `visio-room-schedule`; this module only reads and checks the settings.

use std::path::PathBuf;

use toml::de::DeTable;
use url::{Host, Url};

use super::reader::Reader;
use super::ConfigError;

/// `[calendar]`: the room's calendar. No sources means no automatic joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarConfig {
    /// `[[calendar.sources]]`, in file order.
    pub sources: Vec<CalendarSource>,
    /// The room's own calendar address (`salle-4b@example.gouv.fr`): meetings it declined are
    /// skipped.
    pub room_address: Option<String>,
    /// The zone of floating times and all-day events (IANA name); `None`: the system's zone.
    pub time_zone: Option<String>,
    /// Seconds between two fetches of each source (±10 % jitter).
    pub poll_interval_s: u32,
    /// Seconds before the start at which the room joins.
    pub join_lead_s: u32,
    /// Seconds the room stays after the end while people are still in the call.
    pub leave_grace_s: u32,
    /// Whether tentative meetings are joined.
    pub join_tentative: bool,
    /// What a scheduled meeting does to a call started by hand.
    pub manual_call: ManualCall,
    /// How many meetings `NextMeetings` lists.
    pub show_next: u32,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            sources: Vec::new(),
            room_address: None,
            time_zone: None,
            poll_interval_s: 60,
            join_lead_s: 120,
            leave_grace_s: 300,
            join_tentative: true,
            manual_call: ManualCall::Offer,
            show_next: 5,
        }
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

pub(super) const KEYS: &[&str] = &[
    "room_address",
    "time_zone",
    "poll_interval_s",
    "join_lead_s",
    "leave_grace_s",
    "join_tentative",
    "manual_call",
    "show_next",
    "sources",
];

const SOURCE_KEYS: &[&str] = &[
    "type",
    "path",
    "url",
    "username",
    "password_file",
    "token_file",
];

impl Reader<'_> {
    pub(super) fn calendar(
        &self,
        t: &DeTable<'_>,
        c: &mut CalendarConfig,
    ) -> Result<(), ConfigError> {
        self.check_keys(t, Some("calendar"), KEYS)?;
        if let Some((address, span)) = self.string(t, "calendar", "room_address")? {
            let address = address.trim();
            let address = address
                .strip_prefix("mailto:")
                .or_else(|| address.strip_prefix("MAILTO:"))
                .unwrap_or(address);
            let valid = address.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
            });
            if !valid {
                return Err(self.error(
                    Some(span),
                    Some("calendar.room_address"),
                    "expected the room's calendar e-mail address, such as \"salle-4b@example.gouv.fr\"",
                ));
            }
            c.room_address = Some(address.to_owned());
        }
        if let Some((zone, span)) = self.string(t, "calendar", "time_zone")? {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(self.error(
                    Some(span),
                    Some("calendar.time_zone"),
                    &format!("expected an IANA time zone such as \"Europe/Paris\", got {zone:?}"),
                ));
            }
            c.time_zone = Some(zone);
        }
        if let Some(v) = self.integer(t, "calendar", "poll_interval_s", 10, 86_400)? {
            c.poll_interval_s = v as u32;
        }
        if let Some(v) = self.integer(t, "calendar", "join_lead_s", 0, 3_600)? {
            c.join_lead_s = v as u32;
        }
        if let Some(v) = self.integer(t, "calendar", "leave_grace_s", 0, 7_200)? {
            c.leave_grace_s = v as u32;
        }
        if let Some(v) = self.boolean(t, "calendar", "join_tentative")? {
            c.join_tentative = v;
        }
        if let Some((v, span)) = self.string(t, "calendar", "manual_call")? {
            c.manual_call = match v.as_str() {
                "offer" => ManualCall::Offer,
                "switch" => ManualCall::Switch,
                _ => {
                    return Err(self.error(
                        Some(span),
                        Some("calendar.manual_call"),
                        &format!("expected \"offer\" or \"switch\", got {v:?}"),
                    ))
                }
            };
        }
        if let Some(v) = self.integer(t, "calendar", "show_next", 1, 50)? {
            c.show_next = v as u32;
        }
        if let Some(item) = t.get("sources") {
            let array = item.get_ref().as_array().ok_or_else(|| {
                self.type_error(item, "calendar", "sources", "[[calendar.sources]] tables")
            })?;
            for entry in array.iter() {
                let table = entry.get_ref().as_table().ok_or_else(|| {
                    self.type_error(entry, "calendar", "sources", "[[calendar.sources]] tables")
                })?;
                c.sources.push(self.calendar_source(table, entry.span())?);
            }
        }
        Ok(())
    }

    fn calendar_source(
        &self,
        t: &DeTable<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<CalendarSource, ConfigError> {
        const SECTION: &str = "calendar.sources";
        self.check_keys(t, Some(SECTION), SOURCE_KEYS)?;
        let Some((kind, kind_span)) = self.string(t, SECTION, "type")? else {
            return Err(self.error(
                Some(span),
                Some("calendar.sources.type"),
                "missing; expected type = \"file\", \"ics\" or \"caldav\"",
            ));
        };
        // Keys that make no sense for this type are refused rather than ignored.
        let refuse = |key: &str, why: &str| -> Result<(), ConfigError> {
            match t.get(key) {
                Some(item) => {
                    Err(self.error(Some(item.span()), Some(&format!("{SECTION}.{key}")), why))
                }
                None => Ok(()),
            }
        };
        match kind.as_str() {
            "file" => {
                for key in ["url", "username", "password_file", "token_file"] {
                    refuse(key, "not used by a type = \"file\" source; remove it")?;
                }
                let (path, path_span) = self.string(t, SECTION, "path")?.ok_or_else(|| {
                    self.error(
                        Some(span.clone()),
                        Some("calendar.sources.path"),
                        "missing; a type = \"file\" source needs path = \"/etc/visio-room/room.ics\"",
                    )
                })?;
                Ok(CalendarSource::File {
                    path: self.absolute_path(&path, path_span, "calendar.sources.path")?,
                })
            }
            "ics" | "caldav" => {
                refuse("path", "a network source has url, not path")?;
                let (url, url_span) = self.string(t, SECTION, "url")?.ok_or_else(|| {
                    self.error(
                        Some(span.clone()),
                        Some("calendar.sources.url"),
                        "missing; a network source needs url = \"https://…\"",
                    )
                })?;
                let url = self.source_url(&url, url_span, kind == "ics")?;
                let auth = self.source_auth(t, span)?;
                Ok(if kind == "ics" {
                    CalendarSource::Ics { url, auth }
                } else {
                    CalendarSource::CalDav { url, auth }
                })
            }
            _ => Err(self.error(
                Some(kind_span),
                Some("calendar.sources.type"),
                &format!("expected \"file\", \"ics\" or \"caldav\", got {kind:?}"),
            )),
        }
    }

    fn source_url(
        &self,
        text: &str,
        span: std::ops::Range<usize>,
        webcal: bool,
    ) -> Result<Url, ConfigError> {
        let key = Some("calendar.sources.url");
        let mut url = Url::parse(text.trim()).map_err(|e| {
            self.error(
                Some(span.clone()),
                key,
                &format!("{text:?} is not a URL ({e}); expected such as \"https://agenda.example.gouv.fr/rooms/4b.ics\""),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.error(
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
            "http" => Err(self.error(
                Some(span),
                key,
                "http:// is only allowed on loopback; use https:// (calendar data and credentials must not travel in clear)",
            )),
            other => Err(self.error(
                Some(span),
                key,
                &format!("expected an https:// URL{}, got {other}://", if webcal { " (or webcal://)" } else { "" }),
            )),
        }
    }

    fn source_auth(
        &self,
        t: &DeTable<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<CalendarAuth, ConfigError> {
        const SECTION: &str = "calendar.sources";
        let username = self.string(t, SECTION, "username")?;
        let password = self.string(t, SECTION, "password_file")?;
        let token = self.string(t, SECTION, "token_file")?;
        match (username, password, token) {
            (None, None, None) => Ok(CalendarAuth::None),
            (Some((username, _)), Some((file, file_span)), None) => Ok(CalendarAuth::Basic {
                username,
                password_file: self.absolute_path(
                    &file,
                    file_span,
                    "calendar.sources.password_file",
                )?,
            }),
            (None, None, Some((file, file_span))) => Ok(CalendarAuth::Bearer {
                token_file: self.absolute_path(&file, file_span, "calendar.sources.token_file")?,
            }),
            (Some((_, s)), None, None) => Err(self.error(
                Some(s),
                Some("calendar.sources.username"),
                "needs password_file too (a file holding the password; never the password itself)",
            )),
            (None, Some((_, s)), None) => Err(self.error(
                Some(s),
                Some("calendar.sources.password_file"),
                "needs username too",
            )),
            _ => Err(self.error(
                Some(span),
                Some("calendar.sources.token_file"),
                "use either username and password_file, or token_file, not both",
            )),
        }
    }

    fn absolute_path(
        &self,
        p: &str,
        span: std::ops::Range<usize>,
        key: &str,
    ) -> Result<PathBuf, ConfigError> {
        let path = PathBuf::from(p);
        if path.is_absolute() && !p.chars().any(char::is_control) {
            Ok(path)
        } else {
            Err(self.error(
                Some(span),
                Some(key),
                &format!("expected an absolute path such as \"/etc/visio-room/calendar.secret\", got {p:?}"),
            ))
        }
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

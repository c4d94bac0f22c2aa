//! What a source is ([`SourceSpec`], plain data built by the daemon from its configuration), how
//! it authenticates ([`Auth`]), and the secrets read from files at each fetch ([`Secret`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;

use crate::error::SourceError;

/// One room calendar source, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A local `.ics` file, re-read when its modification time or size changes.
    File {
        /// The file.
        path: PathBuf,
    },
    /// An ICS feed (`https://…/room.ics`, `webcal://…`), fetched with conditional GETs.
    Ics {
        /// The feed URL; `webcal://` and `webcals://` are read as `https://` (or `http://` for a
        /// loopback host).
        url: Url,
        /// How to authenticate.
        auth: Auth,
    },
    /// A CalDAV server (RFC 4791): the URL of a calendar collection, or any URL the calendars
    /// of the account can be discovered from (the server's root, a principal, a home set).
    CalDav {
        /// The calendar or discovery URL.
        url: Url,
        /// How to authenticate.
        auth: Auth,
    },
}

/// How a source authenticates. Secrets stay in files (read at each fetch, so they can be rotated
/// without a restart); only their paths are configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// HTTP Basic authentication.
    Basic {
        /// The user name (not a secret).
        username: String,
        /// A file holding the password (one trailing newline is ignored).
        password_file: PathBuf,
    },
    /// A bearer token (`Authorization: Bearer …`).
    Bearer {
        /// A file holding the token (one trailing newline is ignored).
        token_file: PathBuf,
    },
}

/// A secret read from a file: never printed (`Debug` shows `Secret(***)`), never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Reads a secret file, dropping one trailing newline (`\n` or `\r\n`).
    pub fn read(path: &Path) -> std::io::Result<Secret> {
        let mut text = std::fs::read_to_string(path)?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(Secret(text))
    }

    /// The secret itself, to put in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Whether `host` is this machine (the only hosts plain `http://` is allowed to).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        // Non-special schemes (`webcal://`) keep IP addresses as opaque host names.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `scheme://host[:port]`: what may be shown of a URL (the path of a private feed is often a
/// secret token, and user info always is).
pub(crate) fn origin_of(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out
}

impl SourceSpec {
    /// Short text naming the source in logs, errors and `Health`: the kind, the URL's scheme and
    /// host (never its path, query or credentials) and a short key telling apart two sources on
    /// the same host; the path for a file.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::File { path } => format!("calendar file {}", path.display()),
            SourceSpec::Ics { url, .. } => {
                format!("ICS feed {} [{}]", origin_of(url), &self.key()[..8])
            }
            SourceSpec::CalDav { url, .. } => {
                format!("CalDAV {} [{}]", origin_of(url), &self.key()[..8])
            }
        }
    }

    /// A stable key for this source (hex SHA-256 of its kind, URL or path, and user name —
    /// never a secret): the name of its cache entry.
    pub fn key(&self) -> String {
        let mut hash = Sha256::new();
        let (kind, location, user) = match self {
            SourceSpec::File { path } => ("file", path.display().to_string(), String::new()),
            SourceSpec::Ics { url, auth } => ("ics", url.to_string(), auth_user(auth)),
            SourceSpec::CalDav { url, auth } => ("caldav", url.to_string(), auth_user(auth)),
        };
        for part in [kind, &location, &user] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The URL to request: `webcal(s)://` mapped to `https://` (`http://` on loopback), and the
    /// transport checked — `https://`, or `http://` to a loopback host only; no credentials in
    /// the URL (they belong in [`Auth`], where they are read from files).
    pub(crate) fn request_url(&self) -> Result<Option<Url>, SourceError> {
        let url = match self {
            SourceSpec::File { .. } => return Ok(None),
            SourceSpec::Ics { url, .. } | SourceSpec::CalDav { url, .. } => url,
        };
        let invalid = |reason: &str| SourceError::InvalidSource {
            calendar: self.describe(),
            reason: reason.to_owned(),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "the URL carries a user name or password: remove them from the URL and set the \
                 calendar's username and password file instead",
            ));
        }
        let mut url = url.clone();
        if matches!(url.scheme(), "webcal" | "webcals") {
            if !matches!(self, SourceSpec::Ics { .. }) {
                return Err(invalid(
                    "webcal:// is an ICS feed address: configure it as an ICS source",
                ));
            }
            let scheme = if is_loopback(&url) { "http" } else { "https" };
            // `set_scheme` refuses special↔non-special changes; rebuild the URL instead.
            let rest = &url.as_str()[url.scheme().len()..];
            url = Url::parse(&format!("{scheme}{rest}")).map_err(|e| invalid(&e.to_string()))?;
        }
        check_transport(&url).map_err(|reason| invalid(&reason))?;
        Ok(Some(url))
    }
}

/// `https://` anywhere, `http://` only to this machine.
pub(crate) fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "plain http:// is only allowed to this machine (localhost); use https://{}",
            url.host_str().unwrap_or("…")
        )),
        other => Err(format!(
            "unsupported URL scheme {other}:// (use https://, or webcal:// for a feed)"
        )),
    }
}

fn auth_user(auth: &Auth) -> String {
    match auth {
        Auth::Basic { username, .. } => format!("basic:{username}"),
        Auth::Bearer { .. } => "bearer".into(),
        Auth::None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ics(url: &str) -> SourceSpec {
        SourceSpec::Ics {
            url: Url::parse(url).unwrap(),
            auth: Auth::None,
        }
    }

    #[test]
    fn webcal_becomes_https_or_loopback_http() {
        let u = ics("webcal://cal.example.org/feeds/room.ics")
            .request_url()
            .unwrap();
        assert_eq!(
            u.unwrap().as_str(),
            "https://cal.example.org/feeds/room.ics"
        );
        let u = ics("webcal://127.0.0.1:8080/room.ics")
            .request_url()
            .unwrap();
        assert_eq!(u.unwrap().as_str(), "http://127.0.0.1:8080/room.ics");
    }

    #[test]
    fn plain_http_to_another_host_is_refused_with_advice() {
        let e = ics("http://cal.example.org/room.ics")
            .request_url()
            .unwrap_err();
        assert!(e.to_string().contains("use https://cal.example.org"), "{e}");
        assert!(ics("http://[::1]:81/x.ics").request_url().is_ok());
        assert!(ics("http://localhost/x.ics").request_url().is_ok());
        assert!(ics("ftp://cal.example.org/x.ics").request_url().is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_shown() {
        let spec = ics("https://room:hunter2@cal.example.org/private-abc/room.ics");
        let e = spec.request_url().unwrap_err().to_string();
        assert!(!e.contains("hunter2") && !e.contains("private-abc"), "{e}");
        assert!(!spec.describe().contains("hunter2"));
        assert!(!spec.describe().contains("private-abc"));
    }

    #[test]
    fn key_changes_with_the_url_but_not_with_secrets() {
        let a = SourceSpec::CalDav {
            url: Url::parse("https://cal.example.org/dav/").unwrap(),
            auth: Auth::Basic {
                username: "room".into(),
                password_file: "/etc/a".into(),
            },
        };
        let mut b = a.clone();
        if let SourceSpec::CalDav {
            auth: Auth::Basic { password_file, .. },
            ..
        } = &mut b
        {
            *password_file = "/etc/b".into();
        }
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), ics("https://cal.example.org/dav/").key());
        assert_eq!(a.key().len(), 64);
    }

    #[test]
    fn secret_debug_is_redacted_and_trailing_newline_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\r\n").unwrap();
        let s = Secret::read(&p).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}

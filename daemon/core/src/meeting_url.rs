//! Meeting URLs: what the room accepts to join, and in which canonical form.
//!
//! A meeting URL is untrusted input (typed by someone, read from a calendar invite, sent over
//! the fleet link). It is accepted only when its host is on the configured allow-list
//! (`visio.allowed_hosts`), it uses `https` (plain `http` only for loopback hosts, for local
//! tests), and its path is a single valid room slug. Slugs are normalised like the Meet web app
//! does: `ABC-DEFG-HIJ` and `abcdefghij` both mean `abc-defg-hij`; custom slugs are slugified
//! like Django's `slugify` (`Réunion` → `reunion`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use thiserror::Error;
use url::{Host, Url};

/// Longest URL accepted (anything longer is not a meeting link someone meant).
pub const MAX_URL_LEN: usize = 2048;

/// Paths of the Meet web app that are not rooms.
const RESERVED: &[&str] = &[
    "api",
    "admin",
    "static",
    "assets",
    "media",
    "oidc",
    "silent",
    "sdk",
    "feedback",
    "legal",
    "accessibility",
    "terms",
    "privacy",
    "recording",
    "404",
];

/// Why a meeting URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MeetingUrlError {
    /// Not a URL the room could join.
    #[error("{input:?} is not a meeting URL: {reason}")]
    Invalid {
        /// The input, shortened.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// The host is not on the allow-list.
    #[error(
        "meetings on {host} are not allowed: add it to visio.allowed_hosts in the configuration \
         to allow it"
    )]
    HostNotAllowed {
        /// Host (and port, when not the default) of the URL.
        host: String,
    },
    /// `http` on a host that is not a loopback address.
    #[error("{input:?} uses {scheme}; meeting URLs must use https (http only for loopback hosts)")]
    InsecureScheme {
        /// The input, shortened.
        input: String,
        /// The scheme used.
        scheme: String,
    },
    /// The path is not a room name.
    #[error("{input:?} does not name a meeting room: {reason}")]
    InvalidSlug {
        /// The input, shortened.
        input: String,
        /// What is wrong.
        reason: String,
    },
}

impl MeetingUrlError {
    /// The D-Bus error name for this refusal.
    pub fn dbus_error_name(&self) -> &'static str {
        match self {
            MeetingUrlError::HostNotAllowed { .. } => "org.visioroom.Error.HostNotAllowed",
            _ => "org.visioroom.Error.InvalidUrl",
        }
    }
}

/// One allowed host, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

/// The hosts meeting URLs may point to (`visio.allowed_hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

/// Why an allow-list entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{entry:?} is not a host name: {reason} (expected a host such as \"visio.numerique.gouv.fr\", \"127.0.0.1:8080\" or \"[::1]:8080\")")]
pub struct AllowedHostError {
    /// The entry.
    pub entry: String,
    /// What is wrong.
    pub reason: String,
}

impl AllowedHosts {
    /// Parses allow-list entries: a host name or IP literal with an optional `:port`, no scheme
    /// or path. Host names are compared case-insensitively.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, AllowedHostError> {
        entries
            .iter()
            .map(|e| parse_allowed_host(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedHosts)
    }

    /// Whether `host` on `port` (the URL's effective port) with default port `default` is allowed.
    /// An entry without a port allows only the scheme's default port.
    fn allows(&self, host: &str, port: u16, default: u16) -> bool {
        self.0
            .iter()
            .any(|a| a.host == host && a.port.unwrap_or(default) == port)
    }

    /// Whether the list is empty (nothing could be joined).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_allowed_host(entry: &str) -> Result<AllowedHost, AllowedHostError> {
    let err = |reason: &str| AllowedHostError {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    if entry.is_empty() {
        return Err(err("it is empty"));
    }
    if entry.contains("://") || entry.contains('/') {
        return Err(err("write the host only, without scheme or path"));
    }
    // Let the URL parser validate the host and port exactly as it will for meeting URLs.
    let url = Url::parse(&format!("https://{entry}/")).map_err(|e| err(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("user names are not allowed"));
    }
    let host = url.host_str().ok_or_else(|| err("no host"))?.to_owned();
    // Url drops the port when it is the default for https; keep what was written.
    let port = match url.port() {
        Some(p) => Some(p),
        None if entry.ends_with(":443") => Some(443),
        None => None,
    };
    Ok(AllowedHost { host, port })
}

/// A validated meeting URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeetingUrl {
    origin: String,
    slug: String,
    canonical: String,
    loopback: bool,
}

impl MeetingUrl {
    /// Validates `input` against the allow-list and normalises it.
    pub fn parse(input: &str, allowed: &AllowedHosts) -> Result<MeetingUrl, MeetingUrlError> {
        let shown = shorten(input);
        let invalid = |reason: &str| MeetingUrlError::Invalid {
            input: shown.clone(),
            reason: reason.to_owned(),
        };
        let input = input.trim();
        if input.len() > MAX_URL_LEN {
            return Err(invalid("it is too long"));
        }
        if input.chars().any(char::is_control) {
            return Err(invalid("it contains control characters"));
        }
        let url = Url::parse(input).map_err(|e| invalid(&e.to_string()))?;
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(invalid("only https links can be joined"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("links with a user name are not accepted"));
        }
        let host = url.host().ok_or_else(|| invalid("it has no host"))?;
        let loopback = is_loopback(&host);
        if scheme == "http" && !loopback {
            return Err(MeetingUrlError::InsecureScheme {
                input: shown,
                scheme: scheme.to_owned(),
            });
        }
        let host_str = url.host_str().unwrap_or_default().to_owned();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        if !allowed.allows(&host_str, port, default_port) {
            let host = match url.port() {
                Some(p) => format!("{host_str}:{p}"),
                None => host_str,
            };
            return Err(MeetingUrlError::HostNotAllowed { host });
        }
        let bad_slug = |reason: &str| MeetingUrlError::InvalidSlug {
            input: shown.clone(),
            reason: reason.to_owned(),
        };
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let raw = match segments.as_slice() {
            [one] => *one,
            [] => return Err(bad_slug("the link has no room name")),
            _ => return Err(bad_slug("the path must be a single room name")),
        };
        let decoded = percent_decode(raw).ok_or_else(|| bad_slug("the room name is not UTF-8"))?;
        let slug = normalize_slug(&decoded).ok_or_else(|| bad_slug("the room name is empty"))?;
        if RESERVED.contains(&slug.as_str()) {
            return Err(bad_slug("this path of the web app is not a room"));
        }
        let origin = url.origin().ascii_serialization();
        let canonical = format!("{origin}/{slug}");
        Ok(MeetingUrl {
            origin,
            slug,
            canonical,
            loopback,
        })
    }

    /// The normalised room slug (`abc-defg-hij`, or a custom slug).
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// Scheme, host and port: `https://visio.numerique.gouv.fr`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Base URL of the Meet REST API: origin + `/api/v1.0/`.
    pub fn api_base(&self) -> String {
        format!("{}/api/v1.0/", self.origin)
    }

    /// The canonical URL: origin + `/` + slug.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Whether the host is a loopback address (plain http allowed).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }
}

impl fmt::Display for MeetingUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => *ip == Ipv6Addr::LOCALHOST,
    }
}

/// Normalises a room name like the Meet web app: generated slugs in any case and with or
/// without hyphens become `abc-defg-hij`; anything else is slugified like Django's `slugify`.
/// `None` when nothing is left.
pub fn normalize_slug(raw: &str) -> Option<String> {
    let letters: String = raw
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if letters.len() == 10 && letters.chars().all(|c| c.is_ascii_lowercase()) {
        return Some(format!(
            "{}-{}-{}",
            &letters[0..3],
            &letters[3..7],
            &letters[7..10]
        ));
    }
    let slug = slugify(raw);
    (!slug.is_empty()).then_some(slug)
}

/// Django's `slugify` without `allow_unicode`: strip accents to ASCII, lower-case, drop what is
/// not a letter, digit, underscore, hyphen or space, turn runs of spaces and hyphens into one
/// hyphen, and trim hyphens and underscores at both ends.
fn slugify(s: &str) -> String {
    let mut ascii = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else if let Some(base) = strip_accent(c) {
            ascii.push_str(base);
        }
        // Other non-ASCII characters are dropped, as NFKD + ASCII encoding drops them.
    }
    let kept: String = ascii
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '\t' | '\n'))
        .collect();
    let mut out = String::with_capacity(kept.len());
    let mut pending_sep = false;
    for c in kept.chars() {
        if matches!(c, '-' | ' ' | '\t' | '\n') {
            pending_sep = true;
        } else {
            if pending_sep && !out.is_empty() {
                out.push('-');
            }
            pending_sep = false;
            out.push(c);
        }
    }
    out.trim_matches(|c| c == '-' || c == '_').to_owned()
}

/// ASCII base of common Latin letters with diacritics (what NFKD decomposition keeps).
fn strip_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ď' => "d",
        'Ď' => "D",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ō' | 'ŏ' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => "S",
        'ţ' | 'ť' => "t",
        'Ţ' | 'Ť' => "T",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn shorten(input: &str) -> String {
    const MAX: usize = 120;
    if input.chars().count() <= MAX {
        input.to_owned()
    } else {
        let mut s: String = input.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn visio() -> AllowedHosts {
        AllowedHosts::parse(&["visio.numerique.gouv.fr", "127.0.0.1:7880", "[::1]:7880"]).unwrap()
    }

    fn ok(s: &str) -> MeetingUrl {
        MeetingUrl::parse(s, &visio()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn generated_slugs_are_normalised_to_3_4_3() {
        for input in [
            "https://visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr/ABC-DEFG-HIJ",
            "https://visio.numerique.gouv.fr/abcdefghij",
            "https://VISIO.numerique.gouv.fr/AbcDefgHij/",
            "https://visio.numerique.gouv.fr/abc-defg-hij?lang=fr#x",
            "  https://visio.numerique.gouv.fr:443/abc-defg-hij ",
        ] {
            let url = ok(input);
            assert_eq!(url.slug(), "abc-defg-hij", "{input}");
            assert_eq!(
                url.as_str(),
                "https://visio.numerique.gouv.fr/abc-defg-hij",
                "{input}"
            );
        }
    }

    #[test]
    fn custom_slugs_are_slugified_like_django() {
        assert_eq!(
            ok("https://visio.numerique.gouv.fr/R%C3%A9union").slug(),
            "reunion"
        );
        assert_eq!(
            ok("https://visio.numerique.gouv.fr/Conseil%20des%20ministres").slug(),
            "conseil-des-ministres"
        );
        assert_eq!(
            normalize_slug("--Équipe  Projet__"),
            Some("equipe-projet".into())
        );
        assert_eq!(normalize_slug("!!!"), None);
        assert_eq!(normalize_slug("abc-defg-hi"), Some("abc-defg-hi".into()));
    }

    #[test]
    fn api_base_and_origin_follow_the_url() {
        let url = ok("http://127.0.0.1:7880/abcdefghij");
        assert_eq!(url.origin(), "http://127.0.0.1:7880");
        assert_eq!(url.api_base(), "http://127.0.0.1:7880/api/v1.0/");
        assert!(url.is_loopback());
        assert!(!ok("https://visio.numerique.gouv.fr/abc-defg-hij").is_loopback());
        assert_eq!(
            ok("http://[::1]:7880/abc-defg-hij").origin(),
            "http://[::1]:7880"
        );
    }

    #[test]
    fn hosts_not_on_the_list_are_refused() {
        for input in [
            "https://meet.example.com/abc-defg-hij",
            "https://visio.numerique.gouv.fr.evil.com/abc-defg-hij",
            "https://evil.com/visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr:8443/abc-defg-hij",
            "http://127.0.0.1:9999/abc-defg-hij",
        ] {
            let err = MeetingUrl::parse(input, &visio()).unwrap_err();
            assert!(
                matches!(err, MeetingUrlError::HostNotAllowed { .. }),
                "{input}: {err:?}"
            );
            assert_eq!(err.dbus_error_name(), "org.visioroom.Error.HostNotAllowed");
            assert!(err.to_string().contains("visio.allowed_hosts"));
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let hosts = AllowedHosts::parse(&["meet.example.org"]).unwrap();
        let err = MeetingUrl::parse("http://meet.example.org/abc-defg-hij", &hosts).unwrap_err();
        assert!(
            matches!(err, MeetingUrlError::InsecureScheme { .. }),
            "{err:?}"
        );
        assert_eq!(err.dbus_error_name(), "org.visioroom.Error.InvalidUrl");
        let local = AllowedHosts::parse(&["localhost:8080"]).unwrap();
        assert!(MeetingUrl::parse("http://localhost:8080/abc-defg-hij", &local).is_ok());
    }

    #[test]
    fn malformed_links_are_invalid() {
        for input in [
            "",
            "not a url",
            "ftp://visio.numerique.gouv.fr/abc-defg-hij",
            "https://user@visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr/",
            "https://visio.numerique.gouv.fr/a/b",
            "https://visio.numerique.gouv.fr/api",
            "https://visio.numerique.gouv.fr/%FF%FE",
            "https://visio.numerique.gouv.fr/abc\u{7}defg",
            "javascript:alert(1)",
        ] {
            let err = MeetingUrl::parse(input, &visio()).unwrap_err();
            assert_eq!(
                err.dbus_error_name(),
                "org.visioroom.Error.InvalidUrl",
                "{input}: {err:?}"
            );
        }
        let long = format!("https://visio.numerique.gouv.fr/{}", "a".repeat(3000));
        assert!(MeetingUrl::parse(&long, &visio()).is_err());
    }

    #[test]
    fn allow_list_entries_are_validated() {
        for bad in [
            "",
            "https://visio.numerique.gouv.fr",
            "visio/x",
            "host:99999",
            "a b",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad:?} accepted");
        }
        let err = AllowedHosts::parse(&["https://x"]).unwrap_err();
        assert!(err.to_string().contains("without scheme"), "{err}");
        let hosts = AllowedHosts::parse(&["Visio.Numerique.Gouv.FR:443"]).unwrap();
        assert!(MeetingUrl::parse("https://visio.numerique.gouv.fr/abc-defg-hij", &hosts).is_ok());
    }

    proptest! {
        #[test]
        fn accepted_urls_round_trip(slug in "[a-zA-Z0-9 _-]{1,40}") {
            let input = format!("https://visio.numerique.gouv.fr/{}", slug.replace(' ', "%20"));
            if let Ok(url) = MeetingUrl::parse(&input, &visio()) {
                let again = MeetingUrl::parse(url.as_str(), &visio()).unwrap();
                prop_assert_eq!(again, url);
            }
        }

        #[test]
        fn nothing_off_the_list_is_ever_accepted(input in "\\PC{0,80}", host in "[a-z]{1,10}\\.[a-z]{2,3}") {
            let url = format!("https://{host}/{input}");
            if host != "visio.numerique.gouv.fr" {
                prop_assert!(MeetingUrl::parse(&url, &visio()).is_err());
            }
            if let Ok(u) = MeetingUrl::parse(&input, &visio()) {
                prop_assert!(u.origin() == "https://visio.numerique.gouv.fr"
                    || u.is_loopback());
            }
        }
    }
}

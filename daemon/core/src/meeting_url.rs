//! Meeting URLs: what the room accepts to join, and in which canonical form.
//!
//! A meeting URL is untrusted input (typed by someone, read from a calendar invite, sent over
//! the fleet link). It is accepted only when its host is on the configured allow-list
//! (`visio.allowed_hosts`), it uses `https` (plain `http` only for loopback hosts, for local
//! tests), it carries no user name, and its path is a single room name. Room names are
//! normalised the way La Suite Meet does, so that the room joins the meeting a browser opening
//! the same link would join: `ABC-DEFG-HIJ` and `abcdefghij` both mean `abc-defg-hij`, and
//! custom room names are slugified like Django's `slugify` (`Réunion` → `reunion`).
//!
//! This module knows nothing of HTTP or LiveKit: it only decides whether a link may be joined
//! and what its canonical form, origin and REST API base are. `docs/meeting-urls.md` describes
//! the rules for users.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use icu_normalizer::DecomposingNormalizerBorrowed;
use thiserror::Error;
use url::{Host, Url};

/// Longest URL accepted (anything longer is not a meeting link someone meant).
pub const MAX_URL_LEN: usize = 2048;

/// Paths of the Meet web app that are pages, not rooms (front-end routes and back-end
/// prefixes, as slugs). A link to one of them is refused rather than joined as a room of that
/// name.
const RESERVED: &[&str] = &[
    // Back end and static files.
    "api",
    "admin",
    "static",
    "assets",
    "media",
    "oidc",
    "silent",
    "sdk",
    // Front-end pages (`src/frontend/src/routes.ts` of suitenumerique/meet).
    "feedback",
    "test-connection",
    "mentions-legales",
    "accessibilite",
    "conditions-utilisation",
    "recording",
    // Same pages in other deployments' languages, and error pages.
    "legal",
    "accessibility",
    "terms",
    "privacy",
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
    #[error(
        "{input:?} uses {scheme}; meeting URLs must use https (http only for loopback hosts such \
         as 127.0.0.1)"
    )]
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
    /// The D-Bus error name for this refusal (see `docs/dbus-api.md`).
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
    /// As the URL parser serialises it: lower case, IDNA (punycode), IPv6 in brackets.
    host: String,
    /// `None`: only the default port of the URL's scheme.
    port: Option<u16>,
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// The hosts meeting URLs may point to (`visio.allowed_hosts`).
///
/// The default is empty: nothing may be joined.
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
    /// Parses allow-list entries: a host name or IP literal with an optional `:port`, without
    /// scheme, user name, path or wildcard. Host names are compared case-insensitively (and in
    /// their IDNA form); `127.1` means `127.0.0.1`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, AllowedHostError> {
        entries
            .iter()
            .map(|e| parse_allowed_host(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedHosts)
    }

    /// The entries in canonical form (`visio.numerique.gouv.fr`, `127.0.0.1:7880`,
    /// `[::1]:7880`); parsing them again gives the same list.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
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
    if entry.contains("://") {
        return Err(err("write the host only, without scheme"));
    }
    if entry.contains(['/', '?', '#', '\\']) {
        return Err(err("write the host only, without path"));
    }
    if entry.contains('@') {
        return Err(err("user names are not allowed"));
    }
    if entry.contains('*') {
        return Err(err("wildcards are not supported: list each host"));
    }
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("it contains spaces or control characters"));
    }
    let (host, port) = split_host_port(entry).map_err(err)?;
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(err("the port must be a number from 1 to 65535")),
        },
    };
    // Let the URL parser normalise the host exactly as it will for meeting URLs.
    let url = Url::parse(&format!("https://{host}/")).map_err(|e| err(&e.to_string()))?;
    let host = match url.host() {
        Some(Host::Domain(d)) => {
            let valid = d.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !valid {
                return Err(err("a host name has letters, digits, hyphens and dots"));
            }
            d.to_owned()
        }
        Some(_) => url.host_str().unwrap_or_default().to_owned(),
        None => return Err(err("no host")),
    };
    Ok(AllowedHost { host, port })
}

/// Splits `host[:port]`, `[v6]` and `[v6]:port`.
fn split_host_port(entry: &str) -> Result<(&str, Option<&str>), &'static str> {
    if entry.starts_with('[') {
        let end = entry
            .find(']')
            .ok_or("an IPv6 address needs a closing bracket")?;
        let (host, rest) = entry.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err("expected \":PORT\" after the IPv6 address"),
            },
        };
    }
    match entry.matches(':').count() {
        0 => Ok((entry, None)),
        1 => {
            let (host, port) = entry.split_once(':').unwrap_or((entry, ""));
            Ok((host, Some(port)))
        }
        _ => Err("an IPv6 address must be written in brackets, such as \"[::1]:7880\""),
    }
}

/// A validated meeting URL: https (or http on a loopback host), an allowed host, one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeetingUrl {
    origin: String,
    slug: String,
    canonical: String,
    loopback: bool,
}

impl MeetingUrl {
    /// Validates `input` against the allow-list and normalises it. White space around the
    /// input is ignored, and so are its query and fragment.
    pub fn parse(input: &str, allowed: &AllowedHosts) -> Result<MeetingUrl, MeetingUrlError> {
        let shown = shorten(input);
        let invalid = |reason: &str| MeetingUrlError::Invalid {
            input: shown.clone(),
            reason: reason.to_owned(),
        };
        let input = input.trim();
        if input.len() > MAX_URL_LEN {
            return Err(invalid("it is too long (more than 2048 bytes)"));
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
            .map(Iterator::collect)
            .unwrap_or_default();
        let raw = match segments.as_slice() {
            [one] | [one, ""] if !one.is_empty() => *one,
            [] | [""] => return Err(bad_slug("the link has no room name")),
            _ => return Err(bad_slug("the path must be a single room name")),
        };
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| bad_slug("the room name is not valid UTF-8 text"))?;
        if decoded.chars().any(char::is_control) {
            return Err(bad_slug("the room name contains control characters"));
        }
        if decoded.contains(['/', '\\']) {
            // An escaped slash is a second path segment in disguise.
            return Err(bad_slug("the path must be a single room name"));
        }
        let slug = normalize_slug(&decoded)
            .ok_or_else(|| bad_slug("nothing is left of the room name once normalised"))?;
        if RESERVED.contains(&slug.as_str()) {
            return Err(bad_slug("this is a page of the web app, not a room"));
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

    /// The normalised room slug (`abc-defg-hij`, or a custom slug such as `reunion`).
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// Scheme, host and port: `https://visio.numerique.gouv.fr`, `http://127.0.0.1:7880`.
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

/// Normalises a room name as La Suite Meet does. The name is first slugified like Django's
/// `slugify` (what the Meet back end does with a room name in a URL); then, when what is left
/// is ten letters or digits once hyphens are removed, it is re-split 3-4-3 as the Meet web app
/// does with room codes (`ABCDEFGHIJ` → `abc-defg-hij`). `None` when nothing is left.
///
/// The result is a fixed point: normalising it again gives it back.
pub fn normalize_slug(raw: &str) -> Option<String> {
    let slug = slugify(raw);
    let code: String = slug.chars().filter(|c| *c != '-').collect();
    if code.len() == 10 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(format!("{}-{}-{}", &code[0..3], &code[3..7], &code[7..10]));
    }
    (!slug.is_empty()).then_some(slug)
}

/// Django's `slugify` without `allow_unicode`: NFKD-decompose and keep only ASCII (accents
/// fall off, other scripts disappear), lower-case, drop what is not a letter, digit,
/// underscore, hyphen or white space, turn each run of hyphens and white space into one
/// hyphen, and strip hyphens and underscores at both ends.
fn slugify(s: &str) -> String {
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let mut out = String::with_capacity(s.len());
    let mut in_separator_run = false;
    for c in nfkd.normalize_iter(s.chars()) {
        if !c.is_ascii() {
            continue;
        }
        let c = c.to_ascii_lowercase();
        // Python's `\s` on ASCII: space, \t, \n, \v, \f, \r and the separators \x1c-\x1f.
        if c == '-' || c == ' ' || ('\t'..='\r').contains(&c) || ('\x1c'..='\x1f').contains(&c) {
            if !in_separator_run {
                out.push('-');
            }
            in_separator_run = true;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_separator_run = false;
        }
        // Any other character is dropped without ending a run, as Django's first
        // substitution removes it before the second one collapses the runs.
    }
    out.trim_matches(['-', '_']).to_owned()
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

    const ALLOWED: [&str; 3] = ["visio.numerique.gouv.fr", "127.0.0.1:7880", "[::1]:7880"];

    fn visio() -> AllowedHosts {
        AllowedHosts::parse(&ALLOWED).unwrap()
    }

    fn ok(s: &str) -> MeetingUrl {
        MeetingUrl::parse(s, &visio()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> MeetingUrlError {
        match MeetingUrl::parse(s, &visio()) {
            Ok(u) => panic!("{s:?} accepted as {u}"),
            Err(e) => e,
        }
    }

    #[test]
    fn room_codes_are_normalised_to_3_4_3_like_the_web_app() {
        for input in [
            "https://visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr/ABC-DEFG-HIJ",
            "https://visio.numerique.gouv.fr/abcdefghij",
            "https://visio.numerique.gouv.fr/abc-defghij",
            "https://VISIO.numerique.gouv.fr/AbcDefgHij/",
            "https://visio.numerique.gouv.fr/abc-defg-hij?lang=fr#x",
            "  https://visio.numerique.gouv.fr:443/abc-defg-hij \n",
        ] {
            let url = ok(input);
            assert_eq!(url.slug(), "abc-defg-hij", "{input}");
            assert_eq!(
                url.as_str(),
                "https://visio.numerique.gouv.fr/abc-defg-hij",
                "{input}"
            );
            assert_eq!(url.to_string(), url.as_str());
        }
        // The web app's room-code pattern takes digits too.
        assert_eq!(
            ok("https://visio.numerique.gouv.fr/AB1CDEF2GH").slug(),
            "ab1-cdef-2gh"
        );
    }

    #[test]
    fn custom_room_names_are_slugified_like_django() {
        assert_eq!(
            ok("https://visio.numerique.gouv.fr/R%C3%A9union").slug(),
            "reunion"
        );
        assert_eq!(
            ok("https://visio.numerique.gouv.fr/Conseil%20des%20ministres").slug(),
            "conseil-des-ministres"
        );
        // Checked against Django 5.2 `slugify`, except the last: ten letters and digits are
        // then re-split as a room code.
        for (raw, slug) in [
            ("--Équipe  Projet__", Some("equipe-projet")),
            ("Réunion d'équipe", Some("reunion-dequipe")),
            ("a - _ - b", Some("a-_-b")),
            ("a-!-b", Some("a-b")),
            ("ﬁnances", Some("finances")),
            ("Straße", Some("strae")),
            ("Ⅻ salle", Some("xii-salle")),
            ("会议室", None),
            ("!!!", None),
            ("__", None),
            ("abc-defg-hi", Some("abc-defg-hi")),
            ("équipe1234", Some("equ-ipe1-234")),
        ] {
            assert_eq!(normalize_slug(raw).as_deref(), slug, "{raw:?}");
        }
        // Compatibility forms, checked against Django 5.2 (100 000 random strings over these
        // Unicode blocks agreed with it when this was written).
        for (raw, slug) in [
            ("ＡＢＣ\u{3000}ｄｅｆ", "abc-def"),
            ("𝐒𝐚𝐥𝐥𝐞 ①", "salle-1"),
            ("x²\u{a0}y", "x2-y"),
            ("Œuvre", "uvre"),
            ("ǅemal", "dzemal"),
            ("5 ㎏", "5-kg"),
            ("a\u{1c}b", "a-b"),
            ("\u{301}\u{301}", ""),
            ("Cafe\u{301}", "cafe"),
            ("ℌ𝔢𝔩𝔩𝔬", "hello"),
            ("a\u{2003}b", "a-b"),
            ("a\u{2028}b", "ab"),
            ("😀 salle 😀", "salle"),
        ] {
            assert_eq!(slugify(raw), slug, "{raw:?}");
        }
    }

    #[test]
    fn api_base_and_origin_follow_the_url() {
        let url = ok("http://127.0.0.1:7880/abcdefghij");
        assert_eq!(url.origin(), "http://127.0.0.1:7880");
        assert_eq!(url.api_base(), "http://127.0.0.1:7880/api/v1.0/");
        assert!(url.is_loopback());
        let visio = ok("https://visio.numerique.gouv.fr/abc-defg-hij");
        assert!(!visio.is_loopback());
        assert_eq!(
            visio.api_base(),
            "https://visio.numerique.gouv.fr/api/v1.0/"
        );
        assert_eq!(
            ok("http://[::1]:7880/abc-defg-hij").origin(),
            "http://[::1]:7880"
        );
        // 127.1 is 127.0.0.1, as for every URL parser.
        assert_eq!(
            ok("http://127.1:7880/abc-defg-hij").origin(),
            "http://127.0.0.1:7880"
        );
    }

    #[test]
    fn hosts_not_on_the_list_are_refused() {
        for input in [
            "https://meet.example.com/abc-defg-hij",
            "https://visio.numerique.gouv.fr.evil.com/abc-defg-hij",
            "https://evil.com/visio.numerique.gouv.fr/abc-defg-hij",
            "https://evil.com\\@visio.numerique.gouv.fr/abc-defg-hij",
            "https://evil.com#@visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr./abc-defg-hij",
            "https://visio.numerique.gouv.fr:8443/abc-defg-hij",
            "https://visiо.numerique.gouv.fr/abc-defg-hij",
            "http://127.0.0.1:9999/abc-defg-hij",
            "http://127.0.0.1/abc-defg-hij",
            "http://127.0.0.2:7880/abc-defg-hij",
            "http://localhost:7880/abc-defg-hij",
        ] {
            let err = refused(input);
            assert!(
                matches!(err, MeetingUrlError::HostNotAllowed { .. }),
                "{input}: {err:?}"
            );
            assert_eq!(err.dbus_error_name(), "org.visioroom.Error.HostNotAllowed");
            assert!(err.to_string().contains("visio.allowed_hosts"), "{err}");
        }
        assert_eq!(
            refused("https://meet.example.com:8443/abc-defg-hij").to_string(),
            "meetings on meet.example.com:8443 are not allowed: add it to visio.allowed_hosts in \
             the configuration to allow it"
        );
    }

    #[test]
    fn other_spellings_of_an_allowed_host_are_the_same_host() {
        for (input, canonical) in [
            (
                "HTTPS://VISIO.NUMERIQUE.GOUV.FR:443/ABCDEFGHIJ",
                "https://visio.numerique.gouv.fr/abc-defg-hij",
            ),
            (
                "https://@visio.numerique.gouv.fr/abc-defg-hij",
                "https://visio.numerique.gouv.fr/abc-defg-hij",
            ),
            (
                "https://visio%2Enumerique.gouv.fr/abc-defg-hij",
                "https://visio.numerique.gouv.fr/abc-defg-hij",
            ),
            (
                "https://visio.numerique.gouv.fr\\abc-defg-hij",
                "https://visio.numerique.gouv.fr/abc-defg-hij",
            ),
            (
                "http://0x7f.0.0.1:7880/abc-defg-hij",
                "http://127.0.0.1:7880/abc-defg-hij",
            ),
            (
                "http://2130706433:7880/abc-defg-hij",
                "http://127.0.0.1:7880/abc-defg-hij",
            ),
            (
                "http://[0:0:0:0:0:0:0:1]:7880/abc-defg-hij",
                "http://[::1]:7880/abc-defg-hij",
            ),
        ] {
            assert_eq!(ok(input).as_str(), canonical, "{input}");
        }
    }

    #[test]
    fn an_empty_allow_list_refuses_everything() {
        let none = AllowedHosts::default();
        assert!(none.is_empty());
        let err =
            MeetingUrl::parse("https://visio.numerique.gouv.fr/abc-defg-hij", &none).unwrap_err();
        assert!(matches!(err, MeetingUrlError::HostNotAllowed { .. }));
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let hosts = AllowedHosts::parse(&["meet.example.org", "meet.example.org:80"]).unwrap();
        let err = MeetingUrl::parse("http://meet.example.org/abc-defg-hij", &hosts).unwrap_err();
        assert!(
            matches!(err, MeetingUrlError::InsecureScheme { .. }),
            "{err:?}"
        );
        assert_eq!(err.dbus_error_name(), "org.visioroom.Error.InvalidUrl");
        assert!(err.to_string().contains("must use https"), "{err}");
        let local = AllowedHosts::parse(&["localhost:8080", "[::1]"]).unwrap();
        assert!(MeetingUrl::parse("http://localhost:8080/abc-defg-hij", &local).is_ok());
        assert!(MeetingUrl::parse("http://[::1]/abc-defg-hij", &local).is_ok());
        assert!(MeetingUrl::parse("https://[::1]/abc-defg-hij", &local).is_ok());
    }

    #[test]
    fn an_entry_without_port_allows_only_the_default_port() {
        let hosts = AllowedHosts::parse(&["meet.example.org"]).unwrap();
        assert!(MeetingUrl::parse("https://meet.example.org/abc-defg-hij", &hosts).is_ok());
        assert!(MeetingUrl::parse("https://meet.example.org:443/abc-defg-hij", &hosts).is_ok());
        assert!(MeetingUrl::parse("https://meet.example.org:8443/abc-defg-hij", &hosts).is_err());
        let with_port = AllowedHosts::parse(&["meet.example.org:8443"]).unwrap();
        let url =
            MeetingUrl::parse("https://meet.example.org:8443/abc-defg-hij", &with_port).unwrap();
        assert_eq!(url.origin(), "https://meet.example.org:8443");
        assert!(MeetingUrl::parse("https://meet.example.org/abc-defg-hij", &with_port).is_err());
    }

    #[test]
    fn malformed_links_are_invalid_urls() {
        for input in [
            "",
            "not a url",
            "visio.numerique.gouv.fr/abc-defg-hij",
            "ftp://visio.numerique.gouv.fr/abc-defg-hij",
            "file:///abc-defg-hij",
            "javascript:alert(1)",
            "https://user@visio.numerique.gouv.fr/abc-defg-hij",
            "https://user:secret@visio.numerique.gouv.fr/abc-defg-hij",
            "https://visio.numerique.gouv.fr/abc\u{7}defg",
            "https://visio.numerique.gouv.fr/abc\u{85}defg",
        ] {
            let err = refused(input);
            assert!(
                matches!(err, MeetingUrlError::Invalid { .. }),
                "{input:?}: {err:?}"
            );
            assert_eq!(err.dbus_error_name(), "org.visioroom.Error.InvalidUrl");
        }
        let long = format!("https://visio.numerique.gouv.fr/{}", "a".repeat(3000));
        let err = refused(&long);
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(
            err.to_string().chars().count() < 300,
            "the message quotes the input shortened: {err}"
        );
    }

    #[test]
    fn paths_that_are_not_one_room_are_invalid_slugs() {
        for input in [
            "https://visio.numerique.gouv.fr",
            "https://visio.numerique.gouv.fr/",
            "https://visio.numerique.gouv.fr/a/b",
            "https://visio.numerique.gouv.fr//abc-defg-hij",
            "https://visio.numerique.gouv.fr/abc-defg-hij//",
            "https://visio.numerique.gouv.fr/api",
            "https://visio.numerique.gouv.fr/API/",
            "https://visio.numerique.gouv.fr/feedback",
            "https://visio.numerique.gouv.fr/test-connection",
            "https://visio.numerique.gouv.fr/recording/0d4b3ff6-0000-4000-8000-000000000000",
            "https://visio.numerique.gouv.fr/%FF%FE",
            "https://visio.numerique.gouv.fr/abc%0Adefg",
            "https://visio.numerique.gouv.fr/%E4%BC%9A%E8%AE%AE",
            "https://visio.numerique.gouv.fr/---",
        ] {
            let err = refused(input);
            assert!(
                matches!(err, MeetingUrlError::InvalidSlug { .. }),
                "{input:?}: {err:?}"
            );
            assert_eq!(err.dbus_error_name(), "org.visioroom.Error.InvalidUrl");
        }
        assert!(matches!(
            refused("https://visio.numerique.gouv.fr/api%2Fv1.0"),
            MeetingUrlError::InvalidSlug { .. }
        ));
        // `%zz` is not an escape: kept as typed, then slugified.
        assert_eq!(ok("https://visio.numerique.gouv.fr/a%zz").slug(), "azz");
    }

    #[test]
    fn allow_list_entries_are_validated() {
        for (bad, why) in [
            ("", "empty"),
            ("https://visio.numerique.gouv.fr", "without scheme"),
            ("visio/x", "without path"),
            ("visio?x", "without path"),
            ("user@visio", "user names"),
            ("*.numerique.gouv.fr", "wildcards"),
            ("host:99999", "port"),
            ("host:0", "port"),
            ("host:", "port"),
            ("host:+80", "port"),
            ("::1", "brackets"),
            ("[::1", "closing bracket"),
            ("[::1]x", "PORT"),
            ("a b", "spaces"),
            ("a..b", "letters, digits"),
            ("a!b", "letters, digits"),
        ] {
            match AllowedHosts::parse(&[bad]) {
                Ok(h) => panic!("{bad:?} accepted as {:?}", h.entries()),
                Err(e) => assert!(e.to_string().contains(why), "{bad:?}: {e}"),
            }
        }
        let hosts = AllowedHosts::parse(&["Visio.Numerique.Gouv.FR:443", "[0:0::1]:7880", "127.1"])
            .unwrap();
        assert_eq!(
            hosts.entries(),
            ["visio.numerique.gouv.fr:443", "[::1]:7880", "127.0.0.1"]
        );
        assert!(MeetingUrl::parse("https://visio.numerique.gouv.fr/abc-defg-hij", &hosts).is_ok());
        assert!(MeetingUrl::parse("http://[::1]:7880/abc-defg-hij", &hosts).is_ok());
        assert_eq!(AllowedHosts::parse(&hosts.entries()).unwrap(), hosts);
    }

    /// The origins `visio()` allows, written out by hand (the oracle of the property tests).
    const ALLOWED_ORIGINS: [&str; 5] = [
        "https://visio.numerique.gouv.fr",
        "https://127.0.0.1:7880",
        "http://127.0.0.1:7880",
        "https://[::1]:7880",
        "http://[::1]:7880",
    ];

    fn hostile_url() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["https", "http", "HTTPS", "ftp", "ws"]);
        let userinfo = prop::sample::select(vec![
            "",
            "user@",
            "user:pw@",
            "visio.numerique.gouv.fr@",
            "evil.com\\@",
            "@",
        ]);
        let host = prop_oneof![
            prop::sample::select(vec![
                "visio.numerique.gouv.fr",
                "VISIO.NUMERIQUE.GOUV.FR",
                "visio.numerique.gouv.fr.",
                "visio.numerique.gouv.fr.evil.com",
                "evil.com",
                "visio%2Enumerique.gouv.fr",
                "xn--visio-9ta.numerique.gouv.fr",
                "127.0.0.1",
                "127.1",
                "0x7f.0.0.1",
                "2130706433",
                "localhost",
                "[::1]",
                "[::ffff:127.0.0.1]",
                "[0:0:0:0:0:0:0:1]",
            ])
            .prop_map(str::to_owned),
            "[a-z0-9.-]{1,24}",
        ];
        let port = prop::sample::select(vec!["", ":443", ":7880", ":80", ":8443", ":0", ":"]);
        let separator = prop::sample::select(vec!["/", "//", "\\", "/%2F", "?", "#", "/./", ""]);
        let path = "[a-zA-Z0-9 %_./?#@:-]{0,24}";
        (scheme, userinfo, host, port, separator, path)
            .prop_map(|(s, u, h, p, sep, path)| format!("{s}://{u}{h}{p}{sep}{path}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accepted_urls_round_trip(name in "\\PC{1,40}") {
            let encoded = percent_encoding::utf8_percent_encode(
                &name,
                percent_encoding::NON_ALPHANUMERIC,
            );
            let input = format!("https://visio.numerique.gouv.fr/{encoded}");
            if let Ok(url) = MeetingUrl::parse(&input, &visio()) {
                let slug = url.slug();
                prop_assert!(!slug.is_empty());
                prop_assert!(slug.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit() || b == b'-' || b == b'_'), "{}", slug);
                prop_assert!(!slug.starts_with(['-', '_']) && !slug.ends_with(['-', '_']));
                let again = MeetingUrl::parse(url.as_str(), &visio()).unwrap();
                prop_assert_eq!(again, url);
            }
        }

        #[test]
        fn nothing_off_the_list_is_ever_accepted(input in hostile_url()) {
            if let Ok(url) = MeetingUrl::parse(&input, &visio()) {
                prop_assert!(ALLOWED_ORIGINS.contains(&url.origin()), "{} -> {}", input, url);
                prop_assert!(url.origin().starts_with("https://") || url.is_loopback());
                prop_assert!(!url.as_str().contains('@'));
                // The origin is the one the input names, not a rewrite of it.
                let parsed = Url::parse(input.trim()).unwrap();
                prop_assert_eq!(parsed.origin().ascii_serialization(), url.origin());
                prop_assert_eq!(MeetingUrl::parse(url.as_str(), &visio()).unwrap(), url);
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_is_rarely_a_meeting(input in "\\PC{0,200}") {
            if let Ok(url) = MeetingUrl::parse(&input, &visio()) {
                prop_assert!(ALLOWED_ORIGINS.contains(&url.origin()));
            }
        }

        #[test]
        fn normalising_twice_changes_nothing(raw in "\\PC{0,40}") {
            if let Some(slug) = normalize_slug(&raw) {
                prop_assert_eq!(normalize_slug(&slug), Some(slug.clone()));
            }
        }
    }
}

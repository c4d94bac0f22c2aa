//! Finding the meeting link of a calendar event.
//!
//! The invite text is untrusted: a link is used only when `visio_room_core`'s
//! [`MeetingUrl::parse`] accepts it (host on the allow-list, https, a valid room slug). The
//! properties are searched in the order of the calendar spec — `CONFERENCE`, `URL`, vendor
//! X-properties, `LOCATION`, `DESCRIPTION` — and the first acceptable link wins. Links rewritten
//! by mail-security gateways (Microsoft Defender safelinks, Proofpoint URL Defense v2/v3, Google
//! and Barracuda redirectors) are unwrapped first; Mimecast's `protect-*.mimecast.com/s/TOKEN`
//! links hide the original behind a server-side token and cannot be unwrapped offline.

use visio_room_core::meeting_url::{AllowedHosts, MeetingUrl};

use crate::ics::Component;

/// Vendor properties that carry a conference link, in the order they are tried.
const VENDOR_PROPERTIES: &[&str] = &[
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",
    "X-MICROSOFT-ONLINEMEETINGCONFLINK",
    "X-LASUITE-MEET-URL",
];

/// Properties searched, in order (the spec's lookup order).
fn search_order() -> impl Iterator<Item = &'static str> {
    ["CONFERENCE", "URL"]
        .into_iter()
        .chain(VENDOR_PROPERTIES.iter().copied())
        .chain(["LOCATION", "DESCRIPTION", "X-ALT-DESC"])
}

/// The first acceptable meeting link of `event`, if any.
pub fn meeting_link(event: &Component, allowed: &AllowedHosts) -> Option<MeetingUrl> {
    if allowed.is_empty() {
        return None;
    }
    for name in search_order() {
        for prop in event.properties_named(name) {
            let text = prop.text();
            for candidate in link_candidates(&text) {
                let unwrapped = unwrap_link(candidate);
                if let Ok(url) = MeetingUrl::parse(&unwrapped, allowed) {
                    return Some(url);
                }
            }
        }
    }
    None
}

/// The http(s) URLs in free text, in order. A URL ends at white space, quotes, angle brackets
/// or a closing bracket, and trailing sentence punctuation is not part of it.
pub fn link_candidates(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut i = 0;
    while let Some(k) = lower[i..].find("http") {
        let start = i + k;
        let rest = &lower[start..];
        if !(rest.starts_with("https://") || rest.starts_with("http://")) {
            i = start + 4;
            continue;
        }
        let end = text[start..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '}' | '|')
            })
            .map_or(text.len(), |e| start + e);
        let url = text[start..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        out.push(url);
        i = end.max(start + 4);
    }
    out
}

/// Removes known mail-security wrappers (repeatedly, as gateways nest). Anything else is
/// returned unchanged.
pub fn unwrap_link(link: &str) -> String {
    let mut current = link.to_owned();
    for _ in 0..4 {
        match unwrap_once(&current) {
            Some(inner) if inner != current => current = inner,
            _ => break,
        }
    }
    current
}

fn unwrap_once(link: &str) -> Option<String> {
    let url = url::Url::parse(link).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if host.ends_with(".safelinks.protection.outlook.com") {
        return param("url");
    }
    if host == "urldefense.proofpoint.com" && url.path().starts_with("/v2/") {
        // v2: `u=` holds the URL with `%` written `-` and `/` written `_`.
        let u = param("u")?.replace('_', "/").replace('-', "%");
        return percent_decode(&u);
    }
    if host == "urldefense.com" && url.path().starts_with("/v3/") {
        return proofpoint_v3(link);
    }
    if (host == "www.google.com" || host == "google.com") && url.path() == "/url" {
        return param("q").or_else(|| param("url"));
    }
    if host.ends_with("linkprotect.cudasvc.com") && url.path() == "/url" {
        return param("a");
    }
    None
}

/// Proofpoint URL Defense v3: `https://urldefense.com/v3/__URL__;BASE64!!...`, where each `*`
/// in URL stands for the next character of the base64-decoded replacement bytes, and `**X`
/// for a run of several of them (X gives the length).
fn proofpoint_v3(link: &str) -> Option<String> {
    let body = link.split_once("/v3/__")?.1;
    let (encoded, rest) = body.split_once("__;")?;
    let replacement_b64 = rest.split("!!").next().unwrap_or_default();
    let replacement = base64_url_decode(replacement_b64)?;
    let replacement = String::from_utf8(replacement).ok()?;
    let mut chars = replacement.chars();
    let mut out = String::with_capacity(encoded.len());
    let mut it = encoded.chars().peekable();
    const RUN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    while let Some(c) = it.next() {
        if c != '*' {
            out.push(c);
            continue;
        }
        let take = if it.peek() == Some(&'*') {
            it.next();
            let len_char = it.next()?;
            RUN.find(len_char)? + 2
        } else {
            1
        };
        for _ in 0..take {
            out.push(chars.next()?);
        }
    }
    Some(out)
}

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedHosts {
        AllowedHosts::parse(&["visio.numerique.gouv.fr"]).unwrap()
    }

    fn event(props: &str) -> Component {
        let (roots, problems) = crate::ics::parse(&format!(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n{props}\nEND:VEVENT\nEND:VCALENDAR\n"
        ));
        assert!(problems.is_empty(), "{problems:?}");
        roots[0].children[0].clone()
    }

    #[test]
    fn url_property_wins_over_the_description() {
        let ev = event(
            "DESCRIPTION:Join https://visio.numerique.gouv.fr/aaa-bbbb-ccc\nURL:https://visio.numerique.gouv.fr/XYZ-ABCD-EFG",
        );
        assert_eq!(
            meeting_link(&ev, &allowed()).unwrap().as_str(),
            "https://visio.numerique.gouv.fr/xyz-abcd-efg"
        );
    }

    #[test]
    fn a_link_to_another_host_is_not_used() {
        let ev = event("LOCATION:https://evil.example/abc-defg-hij\nDESCRIPTION:Visio: https://visio.numerique.gouv.fr/abc-defg-hij.");
        assert_eq!(
            meeting_link(&ev, &allowed()).unwrap().as_str(),
            "https://visio.numerique.gouv.fr/abc-defg-hij"
        );
        let ev = event("LOCATION:https://evil.example/abc-defg-hij");
        assert!(meeting_link(&ev, &allowed()).is_none());
    }

    #[test]
    fn links_in_outlook_html_and_escaped_text_are_found() {
        let ev = event(
            "DESCRIPTION:____\\nRejoindre la réunion <https://visio.numerique.gouv.fr/abc-defg-hij>\\n____",
        );
        assert_eq!(
            meeting_link(&ev, &allowed()).unwrap().slug(),
            "abc-defg-hij"
        );
    }

    #[test]
    fn safelinks_are_unwrapped() {
        let wrapped = "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fvisio.numerique.gouv.fr%2Fabc-defg-hij&data=05%7C01&reserved=0";
        assert_eq!(
            unwrap_link(wrapped),
            "https://visio.numerique.gouv.fr/abc-defg-hij"
        );
        let ev = event(&format!("DESCRIPTION:Join: {wrapped}"));
        assert!(meeting_link(&ev, &allowed()).is_some());
    }

    #[test]
    fn proofpoint_v2_is_unwrapped() {
        assert_eq!(
            unwrap_link("https://urldefense.proofpoint.com/v2/url?u=https-3A__visio.numerique.gouv.fr_abc-2Ddefg-2Dhij&d=DwMFaQ&c=abc&r=def"),
            "https://visio.numerique.gouv.fr/abc-defg-hij"
        );
    }

    #[test]
    fn proofpoint_v3_is_unwrapped() {
        // `**B` stands for a run of 3 characters of the base64 replacement "Oi8v" = "://".
        assert_eq!(
            unwrap_link("https://urldefense.com/v3/__https**Bvisio.numerique.gouv.fr/abc-defg-hij__;Oi8v!!ABC"),
            "https://visio.numerique.gouv.fr/abc-defg-hij"
        );
        // `*` stands for one character: "Lw" = "/".
        assert_eq!(
            unwrap_link("https://urldefense.com/v3/__https:*/visio.numerique.gouv.fr/x__;Lw!!ABC"),
            "https://visio.numerique.gouv.fr/x"
        );
    }

    #[test]
    fn nested_wrappers_are_unwrapped() {
        let inner = "https://urldefense.proofpoint.com/v2/url?u=https-3A__visio.numerique.gouv.fr_abc-2Ddefg-2Dhij&d=x";
        let outer = format!(
            "https://nam02.safelinks.protection.outlook.com/?url={}",
            url::form_urlencoded::byte_serialize(inner.as_bytes()).collect::<String>()
        );
        assert_eq!(
            unwrap_link(&outer),
            "https://visio.numerique.gouv.fr/abc-defg-hij"
        );
    }

    #[test]
    fn no_allow_list_no_link() {
        let ev = event("URL:https://visio.numerique.gouv.fr/abc-defg-hij");
        assert!(meeting_link(&ev, &AllowedHosts::default()).is_none());
    }
}

//! WebDAV/CalDAV on the wire: the request bodies we send and the `multistatus` answers we read
//! (RFC 4918, 4791, 6578). Only the properties a room needs are understood.

use roxmltree::{Document, Node};

/// `DAV:`.
const DAV: &str = "DAV:";
/// `urn:ietf:params:xml:ns:caldav`.
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// Apple's namespace, for `getctag`.
const CALSERVER: &str = "http://calendarserver.org/ns/";

/// The properties of one resource that the server reported as found (2xx `propstat`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Props {
    /// `DAV:getetag`.
    pub etag: Option<String>,
    /// `CALDAV:calendar-data`: the iCalendar text.
    pub calendar_data: Option<String>,
    /// `DAV:resourcetype` contains `CALDAV:calendar`.
    pub is_calendar: bool,
    /// `DAV:current-user-principal` / `DAV:href`.
    pub current_user_principal: Option<String>,
    /// `CALDAV:calendar-home-set` / `DAV:href`s.
    pub calendar_home_set: Vec<String>,
    /// `CS:getctag`.
    pub ctag: Option<String>,
    /// `DAV:sync-token` as a property.
    pub sync_token: Option<String>,
    /// `CALDAV:supported-calendar-component-set` names (`None`: not reported).
    pub components: Option<Vec<String>>,
}

/// One `DAV:response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DavResponse {
    /// Its `DAV:href` (as sent: a path or an absolute URL, percent-encoded).
    pub href: String,
    /// The response-level `DAV:status` (set for removed members in a sync report: 404).
    pub status: Option<u16>,
    /// The properties found.
    pub props: Props,
}

/// A parsed `DAV:multistatus`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Multistatus {
    /// The responses, in order.
    pub responses: Vec<DavResponse>,
    /// The top-level `DAV:sync-token` of a sync report.
    pub sync_token: Option<String>,
}

fn status_code(line: &str) -> Option<u16> {
    // "HTTP/1.1 200 OK"
    line.split_whitespace().nth(1)?.parse().ok()
}

fn child<'a>(node: Node<'a, 'a>, ns: &str, name: &str) -> Option<Node<'a, 'a>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn text_of(node: Node<'_, '_>) -> String {
    // Text and CDATA children (roxmltree gives CDATA as text) concatenated.
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

fn hrefs(node: Node<'_, '_>) -> Vec<String> {
    node.children()
        .filter(|c| {
            c.is_element() && c.tag_name().namespace() == Some(DAV) && c.tag_name().name() == "href"
        })
        .map(|h| text_of(h).trim().to_owned())
        .collect()
}

fn read_props(prop: Node<'_, '_>, into: &mut Props) {
    for p in prop.children().filter(|c| c.is_element()) {
        let ns = p.tag_name().namespace().unwrap_or("");
        match (ns, p.tag_name().name()) {
            (DAV, "getetag") => {
                into.etag = Some(text_of(p).trim().to_owned()).filter(|s| !s.is_empty())
            }
            (CALDAV, "calendar-data") => into.calendar_data = Some(text_of(p)),
            (DAV, "resourcetype") => {
                into.is_calendar = child(p, CALDAV, "calendar").is_some();
            }
            (DAV, "current-user-principal") => {
                into.current_user_principal = hrefs(p).into_iter().next();
            }
            (CALDAV, "calendar-home-set") => into.calendar_home_set = hrefs(p),
            (CALSERVER, "getctag") => into.ctag = Some(text_of(p).trim().to_owned()),
            (DAV, "sync-token") => into.sync_token = Some(text_of(p).trim().to_owned()),
            (CALDAV, "supported-calendar-component-set") => {
                into.components = Some(
                    p.children()
                        .filter(|c| c.is_element() && c.tag_name().name() == "comp")
                        .filter_map(|c| c.attribute("name"))
                        .map(|n| n.to_ascii_uppercase())
                        .collect(),
                );
            }
            _ => {}
        }
    }
}

/// Parses a `DAV:multistatus` body.
pub(crate) fn parse_multistatus(body: &str) -> Result<Multistatus, String> {
    let doc = Document::parse(body).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(DAV) || root.tag_name().name() != "multistatus" {
        return Err(format!(
            "the root element is <{}>, not DAV:multistatus",
            root.tag_name().name()
        ));
    }
    let mut out = Multistatus {
        sync_token: child(root, DAV, "sync-token").map(|t| text_of(t).trim().to_owned()),
        ..Multistatus::default()
    };
    for response in root.children().filter(|c| {
        c.is_element() && c.tag_name().namespace() == Some(DAV) && c.tag_name().name() == "response"
    }) {
        let status = child(response, DAV, "status").and_then(|s| status_code(&text_of(s)));
        let mut props = Props::default();
        for propstat in response.children().filter(|c| {
            c.is_element()
                && c.tag_name().namespace() == Some(DAV)
                && c.tag_name().name() == "propstat"
        }) {
            let ok = child(propstat, DAV, "status")
                .and_then(|s| status_code(&text_of(s)))
                .is_none_or(|code| (200..300).contains(&code));
            if let (true, Some(prop)) = (ok, child(propstat, DAV, "prop")) {
                read_props(prop, &mut props);
            }
        }
        // RFC 4918 allows several hrefs in a response with a status only; each gets that status.
        for href in hrefs(response) {
            out.responses.push(DavResponse {
                href,
                status,
                props: props.clone(),
            });
        }
    }
    Ok(out)
}

/// Escapes text for an XML element.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// `PROPFIND` for discovery: what the URL is, and where the calendars are.
pub(crate) fn propfind_discovery() -> String {
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:prop><d:resourcetype/><d:current-user-principal/><c:calendar-home-set/><c:supported-calendar-component-set/><d:displayname/></d:prop></d:propfind>"#
    )
}

/// `PROPFIND` (depth 0) of a collection's change markers.
pub(crate) fn propfind_markers() -> String {
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:" xmlns:cs="{CALSERVER}"><d:prop><d:resourcetype/><d:sync-token/><cs:getctag/></d:prop></d:propfind>"#
    )
}

/// `REPORT calendar-query`: the events overlapping `[start, end)` (iCalendar UTC times), with
/// their whole data (`with_data`) or only their ETags. No `DAV:limit`: some servers truncate
/// silently. No `CALDAV:expand`: recurrences are expanded by the room.
pub(crate) fn calendar_query(start: &str, end: &str, with_data: bool) -> String {
    let data = if with_data { "<c:calendar-data/>" } else { "" };
    format!(
        r#"{HEAD}<c:calendar-query xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:prop><d:getetag/>{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#
    )
}

/// `REPORT calendar-multiget` of some resources.
pub(crate) fn calendar_multiget<'a>(hrefs: impl IntoIterator<Item = &'a str>) -> String {
    let hrefs: String = hrefs
        .into_iter()
        .map(|h| format!("<d:href>{}</d:href>", escape(h)))
        .collect();
    format!(
        r#"{HEAD}<c:calendar-multiget xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>"#
    )
}

/// `REPORT sync-collection` (RFC 6578) from `token`, ETags only.
pub(crate) fn sync_collection(token: &str) -> String {
    format!(
        r#"{HEAD}<d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
        escape(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sync_report_with_changed_and_removed_members() {
        let body = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:"><sync-token>http://radicale.org/ns/sync/43b1</sync-token>
<response><href>/room/cal/e1.ics</href><propstat><prop><getetag>"34"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/room/cal/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
</multistatus>"#;
        let ms = parse_multistatus(body).unwrap();
        assert_eq!(
            ms.sync_token.as_deref(),
            Some("http://radicale.org/ns/sync/43b1")
        );
        assert_eq!(ms.responses.len(), 2);
        assert_eq!(ms.responses[0].props.etag.as_deref(), Some("\"34\""));
        assert_eq!(ms.responses[1].status, Some(404));
    }

    #[test]
    fn reads_discovery_properties_and_ignores_not_found_ones() {
        let body = r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><response><href>/</href><propstat><prop><resourcetype><collection /></resourcetype><current-user-principal><href>/room/</href></current-user-principal></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><C:calendar-home-set><href>/bogus/</href></C:calendar-home-set></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>
<response><href>/room/cal/</href><propstat><prop><resourcetype><collection/><C:calendar/></resourcetype><CS:getctag>"c1"</CS:getctag><C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="vtodo"/></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let ms = parse_multistatus(body).unwrap();
        let root = &ms.responses[0].props;
        assert_eq!(root.current_user_principal.as_deref(), Some("/room/"));
        assert!(
            root.calendar_home_set.is_empty(),
            "a 404 propstat is not a value"
        );
        assert!(!root.is_calendar);
        let cal = &ms.responses[1].props;
        assert!(cal.is_calendar);
        assert_eq!(cal.ctag.as_deref(), Some("\"c1\""));
        assert_eq!(cal.components, Some(vec!["VEVENT".into(), "VTODO".into()]));
    }

    #[test]
    fn calendar_data_in_cdata_or_escaped_text_is_read_whole() {
        let body = "<d:multistatus xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:response><d:href>a.ics</d:href><d:propstat><d:prop><c:calendar-data><![CDATA[BEGIN:VCALENDAR\r\nSUMMARY:R&D\r\nEND:VCALENDAR\r\n]]></c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response><d:response><d:href>b.ics</d:href><d:propstat><d:prop><c:calendar-data>BEGIN:VCALENDAR&#13;\nSUMMARY:R&amp;D&#13;\nEND:VCALENDAR</c:calendar-data></d:prop></d:propstat></d:response></d:multistatus>";
        let ms = parse_multistatus(body).unwrap();
        // XML normalises CR LF to LF, even in CDATA; the iCalendar reader accepts both.
        assert!(ms.responses[0]
            .props
            .calendar_data
            .as_deref()
            .unwrap()
            .contains("SUMMARY:R&D\nEND:VCALENDAR"));
        assert!(ms.responses[1]
            .props
            .calendar_data
            .as_deref()
            .unwrap()
            .contains("SUMMARY:R&D\r\n"));
    }

    #[test]
    fn malformed_or_foreign_xml_is_an_error_not_a_panic() {
        assert!(parse_multistatus("<multistatus xmlns=\"DAV:\"><response>").is_err());
        assert!(parse_multistatus("<html><body>Login</body></html>").is_err());
        assert!(parse_multistatus("").is_err());
    }

    #[test]
    fn request_bodies_are_well_formed_and_never_ask_for_a_limit() {
        for body in [
            propfind_discovery(),
            propfind_markers(),
            calendar_query("20261122T000000Z", "20270122T000000Z", true),
            calendar_multiget(["/a&b.ics", "/c.ics"]),
            sync_collection("http://x/sync/<1>"),
        ] {
            Document::parse(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert!(!body.contains("limit"), "{body}");
        }
    }
}

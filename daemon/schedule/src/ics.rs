//! A tolerant iCalendar (RFC 5545) reader: content lines into a tree of components.
//!
//! Real calendars are often slightly broken (bare `\n` line ends, lines without a colon, missing
//! `END:` lines, stray text). The rule here is that a broken *component* costs only that
//! component: it is dropped, counted in the returned problems, and the rest of the file is kept.
//! A broken *line* inside an otherwise sound component costs only that line (also reported).
//! Nothing here knows about time or recurrence; see [`crate::expand`].

use serde::Serialize;

/// One thing wrong in a calendar, kept so operators can see what was skipped and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseProblem {
    /// 1-based line (after unfolding, the line where the problem starts) in the source text.
    pub line: usize,
    /// The component concerned (`VEVENT`, `VTIMEZONE`, `VCALENDAR`, ...).
    pub component: String,
    /// Its `UID`, when known.
    pub uid: Option<String>,
    /// What is wrong and what was done about it.
    pub message: String,
}

/// A property (content line): `NAME;PARAM=VALUE:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-case name (`DTSTART`).
    pub name: String,
    /// Parameters, names upper-case, values unquoted.
    pub params: Vec<(String, Vec<String>)>,
    /// The raw value (not unescaped).
    pub value: String,
}

impl Property {
    /// First value of parameter `name` (upper-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    /// The value as TEXT (RFC 5545 §3.3.11): `\n`, `\,`, `\;`, `\\` unescaped.
    pub fn text(&self) -> String {
        unescape_text(&self.value)
    }
}

/// A component (`BEGIN:NAME` ... `END:NAME`) with its properties and sub-components.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Upper-case name (`VEVENT`).
    pub name: String,
    /// Properties in file order.
    pub properties: Vec<Property>,
    /// Nested components in file order.
    pub children: Vec<Component>,
    /// Line of its `BEGIN:`.
    pub line: usize,
}

impl Component {
    /// First property called `name` (upper-case).
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// All properties called `name` (upper-case).
    pub fn properties_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> {
        self.properties.iter().filter(move |p| p.name == name)
    }

    /// The `UID`, trimmed.
    pub fn uid(&self) -> Option<String> {
        self.property("UID").map(|p| p.text().trim().to_owned())
    }
}

/// Components that may only appear at the top of a `VCALENDAR`: meeting one while another of
/// them is open means the open one lost its `END:` line.
const TOP_LEVEL: &[&str] = &[
    "VEVENT",
    "VTODO",
    "VJOURNAL",
    "VFREEBUSY",
    "VTIMEZONE",
    "VAVAILABILITY",
];

/// Parses `text` into its top-level components (normally one or more `VCALENDAR`), plus the
/// problems met. Never fails: the worst case is no components and a list of problems.
pub fn parse(text: &str) -> (Vec<Component>, Vec<ParseProblem>) {
    let mut problems = Vec::new();
    let mut roots: Vec<Component> = Vec::new();
    let mut stack: Vec<Component> = Vec::new();

    let drop_unterminated = |c: Component, problems: &mut Vec<ParseProblem>, why: &str| {
        problems.push(ParseProblem {
            line: c.line,
            uid: c.uid(),
            message: format!("{} has no END line ({why}); it was skipped", c.name),
            component: c.name,
        });
    };

    for (line_no, line) in unfold(text) {
        if line.trim().is_empty() {
            continue;
        }
        let prop = match parse_line(&line) {
            Some(p) => p,
            None => {
                let component = stack.last().map(|c| c.name.clone()).unwrap_or_default();
                let uid = stack.last().and_then(Component::uid);
                problems.push(ParseProblem {
                    line: line_no,
                    component,
                    uid,
                    message: format!(
                        "line {:?} is not a NAME:value content line; it was skipped",
                        shorten(&line)
                    ),
                });
                continue;
            }
        };
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if TOP_LEVEL.contains(&name.as_str()) {
                    // Close anything that cannot contain this component.
                    while let Some(top) = stack.last() {
                        if top.name == "VCALENDAR" {
                            break;
                        }
                        let c = stack.pop().expect("non-empty");
                        drop_unterminated(c, &mut problems, &format!("BEGIN:{name} came first"));
                    }
                }
                stack.push(Component {
                    name,
                    line: line_no,
                    ..Component::default()
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(depth) = stack.iter().rposition(|c| c.name == name) else {
                    problems.push(ParseProblem {
                        line: line_no,
                        component: name.clone(),
                        uid: None,
                        message: format!("END:{name} without BEGIN:{name}; it was skipped"),
                    });
                    continue;
                };
                while stack.len() > depth + 1 {
                    let c = stack.pop().expect("deeper than depth");
                    drop_unterminated(c, &mut problems, &format!("END:{name} came first"));
                }
                let c = stack.pop().expect("found at depth");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(c),
                    None => roots.push(c),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.properties.push(prop),
                None => problems.push(ParseProblem {
                    line: line_no,
                    component: String::new(),
                    uid: None,
                    message: format!(
                        "property {} outside any component; it was skipped",
                        prop.name
                    ),
                }),
            },
        }
    }
    // End of file with open components: an open VCALENDAR keeps what it holds (only its END
    // line is missing); anything else open lost its end and is dropped.
    while let Some(c) = stack.pop() {
        if c.name == "VCALENDAR" && stack.is_empty() {
            problems.push(ParseProblem {
                line: c.line,
                component: c.name.clone(),
                uid: None,
                message: "VCALENDAR has no END line; its complete components were kept".into(),
            });
            roots.push(c);
        } else {
            drop_unterminated(c, &mut problems, "end of file");
        }
    }
    (roots, problems)
}

/// Splits into lines (CRLF, LF or CR) and joins folded continuation lines (leading space or
/// tab), returning each logical line with the number of its first physical line.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(usize, String)> = Vec::new();

    let mut n = 0;
    for raw in text.split('\n') {
        // A lone CR also ends a line (old Mac files); split further.
        for part in raw.strip_suffix('\r').unwrap_or(raw).split('\r') {
            n += 1;
            if let Some(rest) = part.strip_prefix([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.1.push_str(rest);
                    continue;
                }
            }
            out.push((n, part.to_owned()));
        }
    }
    out
}

/// Parses one content line. `None` when there is no name or no colon.
fn parse_line(line: &str) -> Option<Property> {
    let bytes = line.as_bytes();
    let name_end = line.find([';', ':'])?;
    let name = line[..name_end].trim().to_ascii_uppercase();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return None;
    }
    let mut params = Vec::new();
    let mut i = name_end;
    while bytes.get(i) == Some(&b';') {
        i += 1;
        let eq = line[i..].find(['=', ':', ';']).map(|k| k + i)?;
        let pname = line[i..eq].trim().to_ascii_uppercase();
        if bytes[eq] != b'=' {
            // A parameter without a value (`;X-FOO:`): keep it empty, tolerate.
            params.push((pname, vec![]));
            i = eq;
            continue;
        }
        i = eq + 1;
        let mut values = Vec::new();
        loop {
            if bytes.get(i) == Some(&b'"') {
                let close = line[i + 1..].find('"').map(|k| k + i + 1)?;
                values.push(line[i + 1..close].to_owned());
                i = close + 1;
            } else {
                let end = line[i..].find([',', ';', ':']).map(|k| k + i)?;
                values.push(line[i..end].to_owned());
                i = end;
            }
            if bytes.get(i) == Some(&b',') {
                i += 1;
                continue;
            }
            break;
        }
        params.push((pname, values));
    }
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    Some(Property {
        name,
        params,
        value: line[i + 1..].to_owned(),
    })
}

/// Unescapes a TEXT value.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// First 60 characters of `s`, for messages.
pub(crate) fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_and_quoted_params_are_read() {
        let (roots, problems) = parse(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDESCRIPTION:Join at\r\n  https://visio\r\n .example/abc\r\nATTENDEE;CN=\"Room; 1\";PARTSTAT=DECLINED:mailto:r@x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let ev = &roots[0].children[0];
        assert_eq!(
            ev.property("DESCRIPTION").unwrap().value,
            "Join at https://visio.example/abc"
        );
        let att = ev.property("ATTENDEE").unwrap();
        assert_eq!(att.param("CN"), Some("Room; 1"));
        assert_eq!(att.param("PARTSTAT"), Some("DECLINED"));
        assert_eq!(att.value, "mailto:r@x");
    }

    #[test]
    fn an_event_missing_its_end_costs_only_that_event() {
        let (roots, problems) = parse(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:broken\nBEGIN:VEVENT\nUID:good\nEND:VEVENT\nEND:VCALENDAR\n",
        );
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(roots[0].children[0].uid().as_deref(), Some("good"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].uid.as_deref(), Some("broken"));
    }

    #[test]
    fn garbage_lines_are_reported_and_skipped() {
        let (roots, problems) = parse(
            "BEGIN:VCALENDAR\nthis is not ics\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\nEND:VCALENDAR",
        );
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn text_values_are_unescaped() {
        assert_eq!(unescape_text(r"a\, b\; c\\d\nE"), "a, b; c\\d\nE");
    }
}

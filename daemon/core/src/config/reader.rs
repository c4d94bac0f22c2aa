//! Reading the spanned TOML document: typed values with their position, unknown keys refused
//! with a suggestion, and the file/line/column/key every error names.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{ConfigError, SECTIONS};

/// Levenshtein distance, to suggest the key a typo meant.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Walks the spanned document, checking each section against what it may contain.
pub(super) struct Reader<'a> {
    pub(super) text: &'a str,
    pub(super) origin: &'a Path,
}

pub(super) type Item<'i> = Spanned<DeValue<'i>>;

/// A value read from the file, with where it was (a byte range of the text).
pub(super) type At<T> = (T, Range<usize>);

impl Reader<'_> {
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        message: &str,
    ) -> ConfigError {
        ConfigError {
            file: self.origin.to_owned(),
            position: span.map(|s| line_column(self.text, s.start)),
            key: key.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    /// Refuses keys of `t` not in `known`, naming the unknown one and the valid ones.
    pub(super) fn check_keys(
        &self,
        t: &DeTable<'_>,
        section: Option<&str>,
        known: &[&str],
    ) -> Result<(), ConfigError> {
        for key in t.keys() {
            let name: &str = key.get_ref().as_ref();
            if !known.contains(&name) {
                let dotted = dotted(section, name);
                let what = if section.is_some() { "key" } else { "section" };
                let mut message = format!("unknown {what}; expected one of {}", known.join(", "));
                if let Some((home, _)) = SECTIONS
                    .iter()
                    .find(|(s, keys)| Some(*s) != section && keys.contains(&name))
                {
                    message.push_str(&format!(" ({name} belongs in [{home}])"));
                } else if let Some(near) = known.iter().find(|k| edit_distance(k, name) <= 2) {
                    message.push_str(&format!(" (did you mean {near}?)"));
                }
                return Err(self.error(Some(key.span()), Some(&dotted), &message));
            }
        }
        Ok(())
    }

    pub(super) fn section<'t, 'i>(
        &self,
        doc: &'t DeTable<'i>,
        name: &str,
    ) -> Result<Option<&'t DeTable<'i>>, ConfigError> {
        match doc.get(name) {
            None => Ok(None),
            Some(item) => item.get_ref().as_table().map(Some).ok_or_else(|| {
                self.error(
                    Some(item.span()),
                    Some(name),
                    &format!(
                        "expected a section [{name}], got {}",
                        a_type(item.get_ref().type_str())
                    ),
                )
            }),
        }
    }

    /// `key` (dotted) holds a value of the wrong type: what was `expected`, and what it got.
    pub(super) fn type_error(&self, item: &Item<'_>, key: &str, expected: &str) -> ConfigError {
        self.error(
            Some(item.span()),
            Some(key),
            &format!(
                "expected {expected}, got {}",
                a_type(item.get_ref().type_str())
            ),
        )
    }
}

/// The dotted key a syntax error at byte `offset` is about, read from the text around it: the
/// key of a `key = value` line (when the error is in its value) and the table header above.
/// `None` when the line is not an assignment (the error is then in a header or a key).
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    if !text.is_char_boundary(offset) {
        return None;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let (key, _) = line.split_once('=')?;
    if line_start + key.len() >= offset {
        return None;
    }
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.split('.').all(|part| {
                let part = part.trim();
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
    };
    if !bare(key) {
        return None;
    }
    let header = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim_matches(['[', ' ']);
        bare(inner).then(|| inner.to_owned())
    });
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_owned(),
    })
}

/// "a string", "an integer": the TOML type of a value, for messages.
pub(super) fn a_type(type_str: &str) -> String {
    let article = if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_str}")
}

/// `section.key`, or `key` at the top level.
pub(super) fn dotted(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_owned(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

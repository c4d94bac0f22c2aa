//! Each key of the configuration file is declared once, with [`section!`]: its name, its Rust
//! type, its default, its documentation and the [`Rule`] that reads and checks it. The section's
//! struct, its `Default`, its reader (unknown keys refused, each key checked where it is written)
//! and its rows of the [`KeySchema`] are all derived from that one declaration, so they cannot
//! drift apart; `docs/configuration.md` is checked against the schema by a test
//! (`daemon/core/tests/config_files.rs`). rust-analyzer's `config_data!` is the model.
//!
//! A rule is a small value: [`whole`] numbers in a range, [`Flag`]s, strings [`Parsed`] into a
//! type, [`Checked`] strings, [`HostList`]s, [`optional`] keys. A section's own rules (a meeting
//! link checked against the allowed hosts, the calendar's sources) live in its module.

use std::marker::PhantomData;
use std::ops::Range;
use std::str::FromStr;

use serde::Serialize;

use super::reader::{Item, Reader};
use super::ConfigError;
use crate::meeting_url::AllowedHosts;

/// One key of the configuration file, as a program (the fleet's configuration push, a
/// reference generator) needs to know it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeySchema {
    /// The section: `media`, or `calendar.sources` for the keys of each `[[calendar.sources]]`.
    pub section: &'static str,
    /// The key: `framerate`.
    pub key: &'static str,
    /// The TOML type of the value: `string`, `integer`, `boolean`, `array`.
    pub toml_type: &'static str,
    /// What the value must be, in the words of the error messages: `a whole number from 1 to 60`.
    pub expected: String,
    /// The value used when the key is absent, as TOML; `None` when an absent key means "not set"
    /// (or, for some `calendar.sources` keys, that the key is required).
    pub default: Option<toml::Value>,
    /// What the key is for (the field's documentation).
    pub doc: String,
}

impl KeySchema {
    /// The row of a key read by `rule`, whose default is `default`.
    pub(super) fn new<S, R: Rule<S>>(
        section: &'static str,
        key: &'static str,
        rule: &R,
        default: &R::Value,
        doc: &[&str],
    ) -> KeySchema {
        KeySchema {
            section,
            key,
            toml_type: rule.toml_type(),
            expected: rule.expected(),
            default: rule.to_toml(default),
            doc: doc
                .iter()
                .map(|line| line.trim())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// `section.key`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// How one key's value is read from the file, checked, and described.
///
/// `S` is the section being read: a rule may check a value against the keys read before it
/// (the default meeting against the allowed hosts); most rules are for any section.
pub(super) trait Rule<S> {
    /// The value in the section's struct.
    type Value;
    /// The TOML type of the value (for the schema).
    fn toml_type(&self) -> &'static str;
    /// What the value must be (for messages and the schema).
    fn expected(&self) -> String;
    /// Reads the value of `key` (dotted) at `item`; `so_far` holds the keys read before it.
    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        so_far: &S,
    ) -> Result<Self::Value, ConfigError>;
    /// The value as TOML (for the schema's defaults); `None` for "not set".
    fn to_toml(&self, value: &Self::Value) -> Option<toml::Value>;
}

/// Declares a section of the configuration file: one line per key, from which the struct, its
/// `Default`, `KEYS`, `schema()` and `read()` are derived.
///
/// ```text
/// section! {
///     /// `[join]`: retries and time-outs of joining.
///     #[derive(Debug, Clone, PartialEq, Eq)]
///     pub struct JoinConfig in "join" {
///         /// Attempts to join one meeting, the first included.
///         max_attempts: u32 = 6 => whole(1, 100),
///     }
/// }
/// ```
///
/// A key whose name is not a Rust identifier is renamed: `kind as "type": …`.
macro_rules! section {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $(as $key:literal)? : $ty:ty = $default:expr => $rule:expr,
            )*
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                }
            }
        }

        impl $name {
            /// The section's name in the file.
            // Unused for `calendar.sources`, whose tables are found through `calendar`.
            #[allow(dead_code)]
            pub const SECTION: &'static str = $section;

            /// The section's keys, in the reference's order.
            pub const KEYS: &'static [&'static str] = &[$($crate::config::keys::key_name!($field $($key)?)),*];

            /// The section's keys with their types, defaults and documentation.
            pub fn schema() -> Vec<$crate::config::KeySchema> {
                let default = Self::default();
                vec![$(
                    $crate::config::KeySchema::new::<Self, _>(
                        $section,
                        $crate::config::keys::key_name!($field $($key)?),
                        &$rule,
                        &default.$field,
                        &[$($doc),*],
                    ),
                )*]
            }

            /// Each key that has a value, and the value as the file would spell it (a
            /// string without its quotes): what the daemon shows of its settings.
            #[allow(dead_code)] // Not for `calendar.sources`, whose values are checked together.
            pub fn values(&self) -> Vec<(&'static str, String)> {
                let mut values = Vec::new();
                $(
                    let value = $crate::config::keys::Rule::<Self>::to_toml(&$rule, &self.$field);
                    if let Some(value) = value {
                        values.push((
                            $crate::config::keys::key_name!($field $($key)?),
                            $crate::config::keys::plain(value),
                        ));
                    }
                )*
                values
            }

            /// Reads the section from `t`: an unknown key is refused, each key is read by its
            /// rule (in declaration order), an absent key keeps its default.
            pub(super) fn read(
                r: &$crate::config::reader::Reader<'_>,
                t: &toml::de::DeTable<'_>,
            ) -> Result<Self, $crate::config::ConfigError> {
                r.check_keys(t, Some($section), Self::KEYS)?;
                let mut section = Self::default();
                $(
                    let key = $crate::config::keys::key_name!($field $($key)?);
                    if let Some(item) = t.get(key) {
                        let dotted = format!("{}.{key}", $section);
                        section.$field = $crate::config::keys::Rule::<Self>::read(
                            &$rule, r, item, &dotted, &section,
                        )?;
                    }
                )*
                Ok(section)
            }
        }
    };
}

/// A key's name: the field's, or the one given with `as`.
macro_rules! key_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $key:literal) => {
        $key
    };
}

pub(super) use {key_name, section};

/// A TOML value as text, a string without its quotes.
pub(super) fn plain(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A whole number from `min` to `max` (both included), stored as `T`.
pub(super) struct Whole<T> {
    min: i64,
    max: i64,
    stored_as: PhantomData<T>,
}

/// A whole number from `min` to `max`, both included.
pub(super) fn whole<T>(min: i64, max: i64) -> Whole<T> {
    Whole {
        min,
        max,
        stored_as: PhantomData,
    }
}

impl<S, T: TryFrom<i64> + Copy> Rule<S> for Whole<T>
where
    i64: TryFrom<T>,
{
    type Value = T;

    fn toml_type(&self) -> &'static str {
        "integer"
    }

    fn expected(&self) -> String {
        format!("a whole number from {} to {}", self.min, self.max)
    }

    fn read(&self, r: &Reader<'_>, item: &Item<'_>, key: &str, _: &S) -> Result<T, ConfigError> {
        let expected = Rule::<S>::expected(self);
        let integer = item
            .get_ref()
            .as_integer()
            .ok_or_else(|| r.type_error(item, key, &expected))?;
        let out_of_range = |got: &dyn std::fmt::Display| {
            r.error(
                Some(item.span()),
                Some(key),
                &format!("expected {expected}, got {got}"),
            )
        };
        // The document keeps the number as written (`1_000`, `0x10`): read it here, so that a
        // number too large for any integer is reported like one out of range.
        let value = i64::from_str_radix(&integer.as_str().replace('_', ""), integer.radix())
            .map_err(|_| out_of_range(&integer.as_str()))?;
        if !(self.min..=self.max).contains(&value) {
            return Err(out_of_range(&value));
        }
        T::try_from(value).map_err(|_| out_of_range(&value))
    }

    fn to_toml(&self, value: &T) -> Option<toml::Value> {
        i64::try_from(*value).ok().map(toml::Value::Integer)
    }
}

/// `true` or `false`.
pub(super) struct Flag;

impl<S> Rule<S> for Flag {
    type Value = bool;

    fn toml_type(&self) -> &'static str {
        "boolean"
    }

    fn expected(&self) -> String {
        "true or false".into()
    }

    fn read(&self, r: &Reader<'_>, item: &Item<'_>, key: &str, _: &S) -> Result<bool, ConfigError> {
        item.get_ref()
            .as_bool()
            .ok_or_else(|| r.type_error(item, key, "true or false"))
    }

    fn to_toml(&self, value: &bool) -> Option<toml::Value> {
        Some(toml::Value::Boolean(*value))
    }
}

/// The string of `item`, or an error saying what was `expected`.
fn string<'i>(
    r: &Reader<'_>,
    item: &'i Item<'_>,
    key: &str,
    expected: &str,
) -> Result<&'i str, ConfigError> {
    item.get_ref()
        .as_str()
        .ok_or_else(|| r.type_error(item, key, expected))
}

/// A string parsed into `T` by its `FromStr`, whose error is the whole message ("expected …,
/// got …"); shown in the schema by its `Display`.
pub(super) struct Parsed<T> {
    expected: &'static str,
    parsed_into: PhantomData<T>,
}

/// A string parsed into `T`; `expected` says what it may be (`"auto", "kms", …`).
pub(super) fn parsed<T>(expected: &'static str) -> Parsed<T> {
    Parsed {
        expected,
        parsed_into: PhantomData,
    }
}

impl<S, T> Rule<S> for Parsed<T>
where
    T: FromStr<Err = String> + std::fmt::Display,
{
    type Value = T;

    fn toml_type(&self) -> &'static str {
        "string"
    }

    fn expected(&self) -> String {
        self.expected.into()
    }

    fn read(&self, r: &Reader<'_>, item: &Item<'_>, key: &str, _: &S) -> Result<T, ConfigError> {
        string(r, item, key, self.expected)?
            .parse()
            .map_err(|message: String| r.error(Some(item.span()), Some(key), &message))
    }

    fn to_toml(&self, value: &T) -> Option<toml::Value> {
        Some(toml::Value::String(value.to_string()))
    }
}

/// A string checked (and maybe tidied) by a function whose error is the whole message.
pub(super) struct Checked {
    expected: &'static str,
    check: fn(&str) -> Result<String, String>,
}

/// A string that `check` accepts; `expected` says what it may be.
pub(super) fn checked(
    expected: &'static str,
    check: fn(&str) -> Result<String, String>,
) -> Checked {
    Checked { expected, check }
}

impl<S> Rule<S> for Checked {
    type Value = String;

    fn toml_type(&self) -> &'static str {
        "string"
    }

    fn expected(&self) -> String {
        self.expected.into()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        _: &S,
    ) -> Result<String, ConfigError> {
        (self.check)(string(r, item, key, self.expected)?)
            .map_err(|message| r.error(Some(item.span()), Some(key), &message))
    }

    fn to_toml(&self, value: &String) -> Option<toml::Value> {
        Some(toml::Value::String(value.clone()))
    }
}

/// A string kept as written, with where it is (a byte range of the file), for values checked
/// together with other keys afterwards (a `[[calendar.sources]]` entry).
pub(super) struct Located {
    pub(super) expected: &'static str,
}

impl<S> Rule<S> for Located {
    type Value = (String, Range<usize>);

    fn toml_type(&self) -> &'static str {
        "string"
    }

    fn expected(&self) -> String {
        self.expected.into()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        _: &S,
    ) -> Result<Self::Value, ConfigError> {
        Ok((string(r, item, key, self.expected)?.to_owned(), item.span()))
    }

    fn to_toml(&self, value: &Self::Value) -> Option<toml::Value> {
        Some(toml::Value::String(value.0.clone()))
    }
}

/// A non-empty list of hosts, each checked on its own (so that an error points at the wrong
/// one) and kept in canonical form (see [`AllowedHosts`]).
pub(super) struct HostList {
    /// What an empty list would mean, for its message.
    pub(super) if_empty: &'static str,
}

impl<S> Rule<S> for HostList {
    type Value = Vec<String>;

    fn toml_type(&self) -> &'static str {
        "array"
    }

    fn expected(&self) -> String {
        "a list of strings: hosts, with an optional port, such as [\"visio.numerique.gouv.fr\"]"
            .into()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        _: &S,
    ) -> Result<Vec<String>, ConfigError> {
        let array = item
            .get_ref()
            .as_array()
            .ok_or_else(|| r.type_error(item, key, "a list of strings"))?;
        if array.is_empty() {
            return Err(r.error(
                Some(item.span()),
                Some(key),
                &format!(
                    "the list is empty, so {}; expected hosts such as [\"visio.numerique.gouv.fr\"]",
                    self.if_empty
                ),
            ));
        }
        let mut canonical = Vec::with_capacity(array.len());
        for element in array.iter() {
            let host = string(r, element, key, "a list of strings")?;
            let parsed = AllowedHosts::parse(&[host])
                .map_err(|e| r.error(Some(element.span()), Some(key), &e.to_string()))?;
            canonical.extend(parsed.entries());
        }
        Ok(canonical)
    }

    fn to_toml(&self, value: &Vec<String>) -> Option<toml::Value> {
        Some(toml::Value::Array(
            value.iter().cloned().map(toml::Value::String).collect(),
        ))
    }
}

/// A key that is not set by default (`None`); when set, read by `rule`.
pub(super) struct Optional<R>(R);

/// A key that is not set by default; when set, read by `rule`.
pub(super) fn optional<R>(rule: R) -> Optional<R> {
    Optional(rule)
}

impl<S, R: Rule<S>> Rule<S> for Optional<R> {
    type Value = Option<R::Value>;

    fn toml_type(&self) -> &'static str {
        self.0.toml_type()
    }

    fn expected(&self) -> String {
        self.0.expected()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        so_far: &S,
    ) -> Result<Self::Value, ConfigError> {
        self.0.read(r, item, key, so_far).map(Some)
    }

    fn to_toml(&self, value: &Self::Value) -> Option<toml::Value> {
        value.as_ref().and_then(|v| self.0.to_toml(v))
    }
}

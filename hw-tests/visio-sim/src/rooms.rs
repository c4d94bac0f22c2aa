//! The Meet room directory: registered rooms with their access level, slug normalisation, and
//! which LiveKit room names exist.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who gets a LiveKit token straight from `GET rooms/<slug>/` (Meet `RoomAccessLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    /// Everyone, anonymous included.
    Public,
    /// Authenticated users; anonymous participants wait in the lobby.
    Trusted,
    /// Only users with a role; everyone else waits in the lobby.
    Restricted,
}

impl AccessLevel {
    /// Meet's spelling of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "public",
            AccessLevel::Trusted => "trusted",
            AccessLevel::Restricted => "restricted",
        }
    }
}

/// A room declaration was malformed.
#[derive(Debug, thiserror::Error)]
pub enum RoomSpecError {
    /// `--room` value not of the form `SLUG:LEVEL`.
    #[error(
        "--room {0:?}: expected SLUG:public|trusted|restricted, e.g. --room abc-defg-hij:trusted"
    )]
    BadRoomArg(String),
    /// Unknown access level.
    #[error("room {slug:?}: unknown access level {level:?}; use public, trusted or restricted")]
    BadLevel {
        /// The slug.
        slug: String,
        /// What was given.
        level: String,
    },
    /// The rooms file could not be read.
    #[error("cannot read rooms file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The rooms file is not valid TOML of the expected shape.
    #[error("rooms file {path}: {source}; expected [[room]] tables with slug, access_level, optional name and id")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: toml::de::Error,
    },
}

/// A room registered in the Meet database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisteredRoom {
    /// Room UUID: also its LiveKit room name.
    pub id: Uuid,
    /// Normalised slug.
    pub slug: String,
    /// Display name (Meet defaults it to the slug).
    pub name: String,
    /// Access level.
    pub access_level: AccessLevel,
}

#[derive(Deserialize)]
struct RoomsFile {
    #[serde(default)]
    room: Vec<RoomFileEntry>,
}

#[derive(Deserialize)]
struct RoomFileEntry {
    slug: String,
    access_level: AccessLevel,
    name: Option<String>,
    id: Option<Uuid>,
}

/// Normalises a meeting slug as the Meet web app does: lower-case; a 10-letter code without
/// hyphens is re-split 3-4-3; other custom slugs are slugified (accents dropped, spaces to `-`).
pub fn normalize_slug(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    let letters: String = lower.chars().filter(|c| *c != '-').collect();
    if letters.len() == 10 && letters.chars().all(|c| c.is_ascii_lowercase()) {
        return format!("{}-{}-{}", &letters[..3], &letters[3..7], &letters[7..]);
    }
    let mut out = String::new();
    for c in lower.chars() {
        let c = match c {
            'à' | 'â' | 'ä' | 'á' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' => 'i',
            'ô' | 'ö' | 'ó' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ç' => 'c',
            c => c,
        };
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if c.is_whitespace() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// What a room lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A registered room.
    Registered(RegisteredRoom),
    /// An unknown slug served as a public room (Meet `ALLOW_UNREGISTERED_ROOMS`).
    Unregistered {
        /// The normalised slug, also the LiveKit room name.
        slug: String,
    },
}

impl Lookup {
    /// The LiveKit room name: the UUID of a registered room, the slug otherwise.
    pub fn livekit_room(&self) -> String {
        match self {
            Lookup::Registered(r) => r.id.to_string(),
            Lookup::Unregistered { slug } => slug.clone(),
        }
    }

    /// Access level (unregistered rooms are public).
    pub fn access_level(&self) -> AccessLevel {
        match self {
            Lookup::Registered(r) => r.access_level,
            Lookup::Unregistered { .. } => AccessLevel::Public,
        }
    }
}

/// The set of registered rooms and the unregistered-rooms policy.
#[derive(Debug, Clone)]
pub struct RoomDirectory {
    rooms: BTreeMap<String, RegisteredRoom>,
    allow_unregistered: bool,
}

impl RoomDirectory {
    /// An empty directory.
    pub fn new(allow_unregistered: bool) -> Self {
        Self {
            rooms: BTreeMap::new(),
            allow_unregistered,
        }
    }

    /// Registers a room; a random UUID is drawn when none is given.
    pub fn register(
        &mut self,
        slug: &str,
        level: AccessLevel,
        name: Option<String>,
        id: Option<Uuid>,
    ) -> RegisteredRoom {
        let slug = normalize_slug(slug);
        let room = RegisteredRoom {
            id: id.unwrap_or_else(Uuid::new_v4),
            name: name.unwrap_or_else(|| slug.clone()),
            slug: slug.clone(),
            access_level: level,
        };
        self.rooms.insert(slug, room.clone());
        room
    }

    /// Parses and registers a `--room SLUG:LEVEL` argument.
    pub fn register_arg(&mut self, arg: &str) -> Result<RegisteredRoom, RoomSpecError> {
        let (slug, level) = arg
            .rsplit_once(':')
            .ok_or_else(|| RoomSpecError::BadRoomArg(arg.to_owned()))?;
        if slug.is_empty() {
            return Err(RoomSpecError::BadRoomArg(arg.to_owned()));
        }
        let level = match level {
            "public" => AccessLevel::Public,
            "trusted" => AccessLevel::Trusted,
            "restricted" => AccessLevel::Restricted,
            other => {
                return Err(RoomSpecError::BadLevel {
                    slug: slug.into(),
                    level: other.into(),
                })
            }
        };
        Ok(self.register(slug, level, None, None))
    }

    /// Loads `[[room]]` tables (`slug`, `access_level`, optional `name`, `id`) from a TOML file.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<RegisteredRoom>, RoomSpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| RoomSpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: RoomsFile = toml::from_str(&text).map_err(|source| RoomSpecError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        Ok(file
            .room
            .into_iter()
            .map(|r| self.register(&r.slug, r.access_level, r.name, r.id))
            .collect())
    }

    /// Every registered room.
    pub fn registered(&self) -> impl Iterator<Item = &RegisteredRoom> {
        self.rooms.values()
    }

    /// Finds a room by slug (any accepted spelling) or UUID.
    pub fn lookup(&self, slug_or_id: &str) -> Option<Lookup> {
        if let Ok(id) = Uuid::parse_str(slug_or_id) {
            return self
                .rooms
                .values()
                .find(|r| r.id == id)
                .cloned()
                .map(Lookup::Registered);
        }
        let slug = normalize_slug(slug_or_id);
        if slug.is_empty() {
            return None;
        }
        match self.rooms.get(&slug) {
            Some(r) => Some(Lookup::Registered(r.clone())),
            None if self.allow_unregistered => Some(Lookup::Unregistered { slug }),
            None => None,
        }
    }

    /// Whether a LiveKit room of that name exists for the Meet backend: a registered room's
    /// UUID, or an unregistered slug when those are allowed. A registered room's *slug* is not
    /// a LiveKit room (Meet never issues a token for it).
    pub fn serves_livekit_room(&self, name: &str) -> bool {
        if let Ok(id) = Uuid::parse_str(name) {
            return self.rooms.values().any(|r| r.id == id);
        }
        self.allow_unregistered
            && normalize_slug(name) == name
            && !name.is_empty()
            && !self.rooms.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_normalised_like_the_web_app() {
        assert_eq!(normalize_slug("ABC-DEFG-HIJ"), "abc-defg-hij");
        assert_eq!(normalize_slug("abcdefghij"), "abc-defg-hij");
        assert_eq!(normalize_slug("Réunion"), "reunion");
        assert_eq!(normalize_slug("Salle du conseil"), "salle-du-conseil");
    }

    #[test]
    fn unknown_slugs_are_public_unregistered_rooms_unless_disallowed() {
        let mut dir = RoomDirectory::new(true);
        let r = dir.register_arg("abc-defg-hij:trusted").unwrap();
        assert_eq!(
            dir.lookup("ABCDEFGHIJ"),
            Some(Lookup::Registered(r.clone()))
        );
        assert_eq!(
            dir.lookup(&r.id.to_string()),
            Some(Lookup::Registered(r.clone()))
        );
        assert_eq!(
            dir.lookup("xyz-abcd-efg").unwrap().livekit_room(),
            "xyz-abcd-efg"
        );
        assert!(dir.serves_livekit_room(&r.id.to_string()));
        assert!(!dir.serves_livekit_room("abc-defg-hij"));
        assert!(dir.serves_livekit_room("xyz-abcd-efg"));
        assert_eq!(RoomDirectory::new(false).lookup("xyz-abcd-efg"), None);
    }

    #[test]
    fn bad_room_arguments_say_what_is_expected() {
        let mut dir = RoomDirectory::new(true);
        assert!(dir
            .register_arg("nolevel")
            .unwrap_err()
            .to_string()
            .contains("SLUG:public"));
        assert!(dir
            .register_arg("a:open")
            .unwrap_err()
            .to_string()
            .contains("public, trusted"));
    }
}

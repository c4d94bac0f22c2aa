//! LiveKit access tokens: HS256 JWTs carrying a `video` grant, as a LiveKit server validates
//! them and as La Suite Meet issues them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Why a token was refused. Every variant is answered with HTTP 401 on the `/rtc` upgrade, as
/// a LiveKit server does.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No token in `access_token` nor in `Authorization: Bearer`.
    #[error("no access token: pass ?access_token=<jwt> or an Authorization: Bearer header")]
    Missing,
    /// Bad signature, malformed JWT, wrong algorithm, unknown API key.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` is in the past.
    #[error("invalid token: token is expired (exp); ask the Meet API for a new one")]
    Expired,
    /// The token does not allow joining a room (no `roomJoin` or no `room`).
    #[error("permissions denied: the token's video grant has no roomJoin for a named room")]
    NoRoomJoin,
}

/// The `video` grant of a LiveKit token (field names as in livekit/protocol `VideoGrant`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    /// May join `room`.
    pub room_join: bool,
    /// The LiveKit room name (Meet: the room UUID, or the slug of an unregistered room).
    pub room: String,
    /// May publish tracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// May subscribe to tracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// May send data packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Sources it may publish (`camera`, `microphone`, `screen_share`, `screen_share_audio`);
    /// empty means all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    /// May change its own name/metadata/attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    /// Room administrator (Meet owners and admins).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub room_admin: bool,
    /// Invisible to other participants.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The claims of a LiveKit access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// API key that signed the token.
    pub iss: String,
    /// Participant identity.
    pub sub: String,
    /// Not before (seconds since the epoch).
    #[serde(default)]
    pub nbf: u64,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The video grant.
    #[serde(default)]
    pub video: VideoGrant,
    /// Participant metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Participant attributes (Meet: `color`, `room_role`, `is_authenticated`). A `null` value
    /// (Meet's `room_role` for an anonymous participant) reads as `""`, as LiveKit's Go
    /// decoder reads it into its `map[string]string`.
    #[serde(
        default,
        skip_serializing_if = "HashMap::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub attributes: HashMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, String>, D::Error> {
    let map: HashMap<String, Option<String>> = HashMap::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Signs and validates tokens with one API key/secret pair, like a LiveKit dev server.
#[derive(Clone)]
pub struct TokenAuthority {
    api_key: String,
    secret: String,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("TokenAuthority")
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenAuthority {
    /// An authority for `api_key` signing with `secret`.
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            secret: secret.into(),
        }
    }

    /// Claims for `identity` valid from now for `ttl`, with the given grant.
    pub fn claims(&self, identity: &str, name: &str, video: VideoGrant, ttl: Duration) -> Claims {
        let now = now_secs();
        Claims {
            iss: self.api_key.clone(),
            sub: identity.to_owned(),
            nbf: now,
            exp: now + ttl.as_secs(),
            name: name.to_owned(),
            video,
            metadata: String::new(),
            attributes: HashMap::new(),
        }
    }

    /// Signs claims into a JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("HS256 signing of serializable claims cannot fail")
    }

    /// Signs claims given as JSON: for what `Claims` cannot say, such as Meet's
    /// `"room_role": null` attribute.
    pub fn sign_json(&self, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("HS256 signing of JSON claims cannot fail")
    }

    /// A fresh token for the same participant and grants (the `refresh_token` a server sends
    /// during a call), valid from now for `ttl`.
    pub fn refresh(&self, claims: &Claims, ttl: Duration) -> String {
        let now = now_secs();
        self.sign(&Claims {
            nbf: now,
            exp: now + ttl.as_secs(),
            ..claims.clone()
        })
    }

    /// Validates a JWT: signature, algorithm, issuer (the API key), expiry and the room grant.
    pub fn validate(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[&self.api_key]);
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(self.secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        if !claims.video.room_join || claims.video.room.is_empty() {
            return Err(TokenError::NoRoomJoin);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(room: &str) -> VideoGrant {
        VideoGrant {
            room_join: true,
            room: room.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_token_validates_and_keeps_its_grant() {
        let auth = TokenAuthority::new("devkey", "secret");
        let claims = auth.claims(
            "alice",
            "Alice",
            grant("abc-defg-hij"),
            Duration::from_secs(60),
        );
        let back = auth.validate(&auth.sign(&claims)).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn a_refreshed_token_keeps_identity_and_grants_with_a_new_expiry() {
        let auth = TokenAuthority::new("devkey", "secret");
        let mut claims = auth.claims("alice", "Alice", grant("r"), Duration::from_secs(5));
        claims.attributes.insert("color".into(), "#123456".into());
        claims.exp -= 1;
        let back = auth
            .validate(&auth.refresh(&claims, Duration::from_secs(600)))
            .unwrap();
        assert_eq!(
            (&back.sub, &back.name, &back.video),
            (&claims.sub, &claims.name, &claims.video)
        );
        assert_eq!(back.attributes, claims.attributes);
        assert!(back.exp >= now_secs() + 599);
    }

    #[test]
    fn a_token_from_another_secret_or_key_is_refused() {
        let ours = TokenAuthority::new("devkey", "secret");
        let claims = ours.claims("a", "", grant("r"), Duration::from_secs(60));
        let forged = TokenAuthority::new("devkey", "other").sign(&claims);
        assert!(matches!(
            ours.validate(&forged),
            Err(TokenError::Invalid(_))
        ));
        let other_key = TokenAuthority::new("otherkey", "secret");
        let claims = other_key.claims("a", "", grant("r"), Duration::from_secs(60));
        assert!(matches!(
            ours.validate(&other_key.sign(&claims)),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let auth = TokenAuthority::new("devkey", "secret");
        let mut claims = auth.claims("a", "", grant("r"), Duration::from_secs(60));
        claims.exp = now_secs() - 10;
        assert!(matches!(
            auth.validate(&auth.sign(&claims)),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn a_token_without_room_join_is_refused() {
        let auth = TokenAuthority::new("devkey", "secret");
        let claims = auth.claims("a", "", VideoGrant::default(), Duration::from_secs(60));
        assert!(matches!(
            auth.validate(&auth.sign(&claims)),
            Err(TokenError::NoRoomJoin)
        ));
    }
}

//! Auth cryptography for the gateway: Ed25519 (EdDSA) access tokens with key rotation,
//! Argon2id password hashing, and opaque high-entropy tokens (refresh tokens, API keys).
//!
//! Everything here is synchronous and CPU-bound; password hashing in particular takes tens of
//! milliseconds on purpose, so callers on the async runtime should run it on a blocking pool
//! (`actix_web::web::block`).

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::{Algorithm as Argon2Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Seconds of clock skew tolerated when checking `exp` (gateway replicas' clocks differ slightly).
pub const CLOCK_SKEW_S: i64 = 5;

/// Role claim value for ordinary users.
pub const ROLE_USER: &str = "user";

/// Role claim value for administrators.
pub const ROLE_ADMIN: &str = "admin";

/// Prefix of refresh tokens, so leaked tokens are recognisable by secret scanners.
pub const REFRESH_TOKEN_PREFIX: &str = "prt_";

/// Prefix of API keys, so leaked keys are recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "pk_live_";

/// Length of the API key prefix shown in UIs and logs to identify a key without revealing it.
pub const API_KEY_DISPLAY_LEN: usize = 12;

/// Our access tokens are a few hundred bytes; refusing anything far larger bounds the work an
/// unauthenticated client can make us do per request.
const MAX_TOKEN_LEN: usize = 4096;

/// Longest accepted `kid`; it ends up in every token header and in the JWKS document.
const MAX_KID_LEN: usize = 64;

const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Only this algorithm is ever accepted: pinning it defeats `alg: none` and HS/EdDSA confusion.
const JWT_ALG: &str = "EdDSA";

// OWASP Password Storage Cheat Sheet: Argon2id with m=19 MiB, t=2, p=1.
const ARGON2_M_COST_KIB: u32 = 19_456;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// Failures while creating keys, signing tokens or hashing passwords (server-side problems).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The system could not generate key material.
    #[error("key generation failed")]
    KeyGeneration,
    /// Stored key material could not be parsed or is not an Ed25519 key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A key id is empty, too long or contains characters outside `[A-Za-z0-9._-]`.
    #[error("invalid key id")]
    InvalidKid,
    /// Two keys in one key ring share a key id.
    #[error("duplicate key id {0:?} in key ring")]
    DuplicateKid(String),
    /// The key ring was configured with an empty issuer or audience.
    #[error("invalid key ring configuration: {0}")]
    InvalidConfig(&'static str),
    /// Claims handed to `sign` would not pass `verify`.
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    /// The JWT library failed to produce a signature.
    #[error("signing failed: {0}")]
    Signing(String),
    /// Argon2 failed (bad parameters or RNG failure while salting).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

/// Why an access token was rejected; each variant maps to a distinct 401 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS with a decodable header, or absurdly long.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than EdDSA (including `none` and HS256).
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// The header has no `kid`, or one that is not in the key ring.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the header and payload.
    #[error("invalid token signature")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Signature is fine but claims are missing, mistyped, or have the wrong issuer/audience.
    #[error("invalid token claims")]
    InvalidClaims,
}

impl TokenError {
    /// Stable machine-readable code for the 401 response body.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "token_malformed",
            Self::WrongAlgorithm => "token_wrong_algorithm",
            Self::UnknownKey => "token_unknown_key",
            Self::InvalidSignature => "token_invalid_signature",
            Self::Expired => "token_expired",
            Self::InvalidClaims => "token_invalid_claims",
        }
    }
}

/// Claims carried by an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Unique token id (for revocation lists and audit logs).
    pub jti: String,
    /// Issued-at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issuer; must equal the key ring's configured issuer.
    pub iss: String,
    /// Audience; must equal the key ring's configured audience.
    pub aud: String,
    /// `"user"` or `"admin"`.
    pub role: String,
    /// Subscription tier, used for rate limits and quotas.
    pub tier: String,
    /// Refresh-token family id this access token was minted from.
    pub sid: String,
    /// When the user last proved their password (the session's sign-in), seconds since the
    /// Unix epoch (OpenID Connect's `auth_time`); refreshed tokens keep the sign-in's time.
    #[serde(default)]
    pub auth_time: i64,
}

/// An Ed25519 private key used to sign access tokens.
pub struct SigningKey {
    /// Key id placed in token headers and the JWKS.
    pub kid: String,
    /// Creation time in milliseconds since the Unix epoch (drives rotation schedules).
    pub created_at_ms: i64,
    public_key: [u8; ED25519_PUBLIC_KEY_LEN],
    // Holds the PKCS#8 DER bytes; jsonwebtoken zeroizes them on drop, so this is the only
    // copy of the secret we keep.
    encoding_key: EncodingKey,
}

impl SigningKey {
    /// Generates a fresh Ed25519 key with a random 16-hex-char kid.
    pub fn generate() -> Result<Self, CryptoError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| CryptoError::KeyGeneration)?;
        Self::from_pkcs8(new_kid(), pkcs8.as_ref(), unix_now_ms())
    }

    /// Loads a key from PKCS#8 DER (v1 or v2), as produced by [`SigningKey::pkcs8_der`].
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8_der: &[u8], created_at_ms: i64) -> Result<Self, CryptoError> {
        let kid = kid.into();
        validate_kid(&kid)?;
        // Parsing here (not lazily at first sign) surfaces corrupt stored keys at startup.
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8_der).map_err(|e| CryptoError::InvalidKey(e.to_string()))?;
        let public_key = <[u8; ED25519_PUBLIC_KEY_LEN]>::try_from(pair.public_key().as_ref())
            .map_err(|_| CryptoError::InvalidKey("unexpected Ed25519 public key length".into()))?;
        Ok(Self {
            kid,
            created_at_ms,
            public_key,
            encoding_key: EncodingKey::from_ed_der(pkcs8_der),
        })
    }

    /// PKCS#8 DER encoding of the private key, for (encrypted) storage.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.encoding_key.as_bytes()
    }

    /// Raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; ED25519_PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// Public half of this key, to keep accepting its tokens after it stops being active.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            kid: self.kid.clone(),
            created_at_ms: self.created_at_ms,
            public_key: self.public_key,
        }
    }

    /// Public JWK (OKP / Ed25519, alg EdDSA, use sig) for the JWKS endpoint.
    pub fn public_jwk(&self) -> Jwk {
        ed25519_jwk(&self.kid, &self.public_key)
    }
}

// Hand-written so the private key can never end up in logs.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key that still verifies tokens but no longer signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// Key id matched against token headers.
    pub kid: String,
    /// Creation time in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    public_key: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl VerifyingKey {
    /// Builds a verifying key from a raw 32-byte Ed25519 public key.
    pub fn from_public_key(kid: impl Into<String>, public_key: &[u8], created_at_ms: i64) -> Result<Self, CryptoError> {
        let kid = kid.into();
        validate_kid(&kid)?;
        let public_key = <[u8; ED25519_PUBLIC_KEY_LEN]>::try_from(public_key)
            .map_err(|_| CryptoError::InvalidKey("Ed25519 public key must be 32 bytes".into()))?;
        Ok(Self {
            kid,
            created_at_ms,
            public_key,
        })
    }

    /// Raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; ED25519_PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// Public JWK (OKP / Ed25519, alg EdDSA, use sig) for the JWKS endpoint.
    pub fn public_jwk(&self) -> Jwk {
        ed25519_jwk(&self.kid, &self.public_key)
    }
}

/// The active signing key plus retired keys whose tokens are still accepted.
///
/// Immutable by design: on rotation build a new ring and swap the `Arc<KeyRing>`.
pub struct KeyRing {
    active: SigningKey,
    // Built once so verification is a hash lookup plus one signature check.
    decoding_keys: HashMap<String, DecodingKey>,
    jwks: JwkSet,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl KeyRing {
    /// Builds a ring that signs with `active` and also accepts tokens from `previous`.
    pub fn new(
        active: SigningKey,
        previous: Vec<VerifyingKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, CryptoError> {
        let issuer = issuer.into();
        let audience = audience.into();
        if issuer.is_empty() {
            return Err(CryptoError::InvalidConfig("issuer must not be empty"));
        }
        if audience.is_empty() {
            return Err(CryptoError::InvalidConfig("audience must not be empty"));
        }

        let mut decoding_keys = HashMap::with_capacity(previous.len() + 1);
        let mut jwks = JwkSet {
            keys: Vec::with_capacity(previous.len() + 1),
        };
        for key in std::iter::once(active.verifying_key()).chain(previous) {
            if decoding_keys.contains_key(&key.kid) {
                // A shared kid would make key selection ambiguous.
                return Err(CryptoError::DuplicateKid(key.kid));
            }
            jwks.keys.push(key.public_jwk());
            // Despite the name, jsonwebtoken's aws-lc EdDSA verifier expects the raw 32-byte key.
            decoding_keys.insert(key.kid, DecodingKey::from_ed_der(&key.public_key));
        }

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        // The library reads the system clock; we check `exp` ourselves against the caller's
        // `now_s` so time is injectable and the skew policy lives in one place.
        validation.validate_exp = false;
        validation.leeway = 0;

        Ok(Self {
            active,
            decoding_keys,
            jwks,
            validation,
            issuer,
            audience,
        })
    }

    /// Key id of the signing key.
    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// Configured `iss` value.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Configured `aud` value.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Builds claims with this ring's issuer/audience, a random v4 `jti`, and `exp = now_s + ttl_s`.
    #[must_use]
    pub fn new_claims(
        &self,
        sub: impl Into<String>,
        sid: impl Into<String>,
        role: impl Into<String>,
        tier: impl Into<String>,
        now_s: i64,
        ttl_s: i64,
    ) -> AccessClaims {
        AccessClaims {
            sub: sub.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now_s,
            exp: now_s.saturating_add(ttl_s),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            role: role.into(),
            tier: tier.into(),
            sid: sid.into(),
            auth_time: now_s,
        }
    }

    /// Signs `claims` with the active key (header: alg EdDSA, typ JWT, kid = active kid).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, CryptoError> {
        // Refuse to mint tokens our own `verify` would reject; that is always a caller bug.
        check_claims_shape(claims).map_err(CryptoError::InvalidClaims)?;
        if claims.iss != self.issuer {
            return Err(CryptoError::InvalidClaims("iss differs from the configured issuer"));
        }
        if claims.aud != self.audience {
            return Err(CryptoError::InvalidClaims("aud differs from the configured audience"));
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.active.encoding_key)
            .map_err(|e| CryptoError::Signing(e.to_string()))
    }

    /// Verifies signature, algorithm, key id, issuer, audience and expiry at `now_s`.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        // Read alg and kid ourselves first: the library cannot even parse `alg: none`, and we
        // want that reported as WrongAlgorithm, before any key is chosen.
        let header = peek_header(token)?;
        if header.alg != JWT_ALG {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding_keys.get(kid))
            .ok_or(TokenError::UnknownKey)?;

        // The library re-checks alg against `validation.algorithms` (EdDSA only), verifies the
        // signature before looking at the payload, then checks iss/aud and claim presence.
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(map_jwt_error)?
            .claims;

        if now_s >= claims.exp.saturating_add(CLOCK_SKEW_S) {
            return Err(TokenError::Expired);
        }
        // Belt and braces: these are also library checks, but they are the whole point of
        // audience/issuer scoping, so do not depend on library defaults for them.
        if claims.iss != self.issuer || claims.aud != self.audience {
            return Err(TokenError::InvalidClaims);
        }
        check_claims_shape(&claims).map_err(|_| TokenError::InvalidClaims)?;
        Ok(claims)
    }

    /// Public keys of every accepted key (active first), for `/.well-known/jwks.json`.
    #[must_use]
    pub fn jwks(&self) -> JwkSet {
        self.jwks.clone()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.decoding_keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeyRing")
            .field("active_kid", &self.active.kid)
            .field("accepted_kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The only header fields we need before choosing a key.
#[derive(Deserialize)]
struct PeekedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn peek_header(token: &str) -> Result<PeekedHeader, TokenError> {
    let mut parts = token.split('.');
    // Exactly three segments: compact JWS. Five would be a JWE, which we never issue.
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> TokenError {
    match err.kind() {
        ErrorKind::InvalidSignature => TokenError::InvalidSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
        // The header already parsed in `peek_header`, so JSON errors here come from the
        // payload (a missing or mistyped claim).
        ErrorKind::Json(_)
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::ImmatureSignature => TokenError::InvalidClaims,
        _ => TokenError::Malformed,
    }
}

/// Invariants every access token must satisfy, shared by `sign` and `verify`.
fn check_claims_shape(claims: &AccessClaims) -> Result<(), &'static str> {
    if claims.sub.is_empty() {
        return Err("sub must not be empty");
    }
    if claims.jti.is_empty() {
        return Err("jti must not be empty");
    }
    if claims.sid.is_empty() {
        return Err("sid must not be empty");
    }
    if claims.role != ROLE_USER && claims.role != ROLE_ADMIN {
        return Err("role must be \"user\" or \"admin\"");
    }
    if claims.exp <= claims.iat {
        return Err("exp must be after iat");
    }
    Ok(())
}

fn validate_kid(kid: &str) -> Result<(), CryptoError> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(CryptoError::InvalidKid) }
}

fn ed25519_jwk(kid: &str, public_key: &[u8; ED25519_PUBLIC_KEY_LEN]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}

fn new_kid() -> String {
    hex::encode(random_bytes::<8>())
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // ThreadRng is a CSPRNG (ChaCha12) seeded and periodically reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn argon2() -> Result<Argon2<'static>, CryptoError> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id (m=19456 KiB, t=2, p=1) and a random salt; returns a PHC string.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let hash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks a password against a stored PHC string; false on mismatch or unparsable hash.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    // Parameters come from the PHC string, so hashes made with older settings still verify;
    // the final comparison is constant-time inside password-hash.
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Spends the same time as a failed `verify_password`, for logins with an unknown email.
///
/// Without it, "no such user" answers in microseconds and "wrong password" in tens of
/// milliseconds, which reveals which emails are registered. Call once at startup to pay the
/// one-off cost of creating the dummy hash before the first real request.
pub fn dummy_verify() {
    static DUMMY_PHC: OnceLock<Option<String>> = OnceLock::new();
    // Hashing lazily with the live parameters keeps the cost identical to real verifications.
    let phc = DUMMY_PHC.get_or_init(|| hash_password("portico-dummy-password").ok());
    match phc {
        Some(phc) => {
            std::hint::black_box(verify_password("not-the-dummy-password", phc));
        }
        // Hashing only fails if the OS RNG does; still burn comparable time.
        None => {
            let _ = std::hint::black_box(hash_password("portico-dummy-password"));
        }
    }
}

/// New refresh token: `prt_` + 32 random bytes, base64url without padding.
#[must_use]
pub fn new_refresh_token() -> String {
    format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Prefix of mailed tokens (verification and password-reset links).
pub const MAIL_TOKEN_PREFIX: &str = "pmt_";

/// New mailed token: `pmt_` + 32 random bytes, base64url without padding.
#[must_use]
pub fn new_mail_token() -> String {
    format!("{MAIL_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// New API key: returns (full key `pk_live_` + 32 random bytes base64url, display prefix of 12 chars).
#[must_use]
pub fn new_api_key() -> (String, String) {
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    // The key is ASCII, so a byte slice is a char slice; `get` keeps this panic-free anyway.
    let display = key.get(..API_KEY_DISPLAY_LEN).unwrap_or(&key).to_owned();
    (key, display)
}

/// Lowercase hex SHA-256 of a token, the value stored and looked up in the database.
///
/// A fast unsalted hash is right here (unlike passwords): the tokens carry 256 bits of entropy,
/// so brute force is hopeless, and a deterministic hash allows an indexed lookup.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.portico.test";
    const AUD: &str = "portico-api";
    // Fixed clock: verification never reads the system time, so tests are deterministic.
    const NOW: i64 = 1_800_000_000;
    const TTL: i64 = 900;

    fn ring(active: SigningKey, previous: Vec<VerifyingKey>) -> KeyRing {
        KeyRing::new(active, previous, ISS, AUD).expect("valid key ring")
    }

    fn fresh_ring() -> KeyRing {
        ring(SigningKey::generate().expect("keygen"), Vec::new())
    }

    fn user_claims(ring: &KeyRing) -> AccessClaims {
        ring.new_claims("user-1", "family-1", ROLE_USER, "free", NOW, TTL)
    }

    fn b64_json(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn copy_of(key: &SigningKey) -> SigningKey {
        SigningKey::from_pkcs8(key.kid.clone(), key.pkcs8_der(), key.created_at_ms).unwrap()
    }

    #[test]
    fn key_ring_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KeyRing>();
        assert_send_sync::<std::sync::Arc<KeyRing>>();
    }

    #[test]
    fn sign_verify_round_trip() {
        let ring = fresh_ring();
        let claims = user_claims(&ring);
        let token = ring.sign(&claims).unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(ring.active_kid()));

        assert_eq!(ring.verify(&token, NOW).unwrap(), claims);
    }

    #[test]
    fn expired_token_rejected() {
        let ring = fresh_ring();
        let claims = ring.new_claims("user-1", "family-1", ROLE_USER, "free", NOW - 7200, 3600);
        let token = ring.sign(&claims).unwrap();
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::Expired));
    }

    #[test]
    fn expiry_boundary_allows_only_small_skew() {
        let ring = fresh_ring();
        let claims = user_claims(&ring);
        let token = ring.sign(&claims).unwrap();
        assert!(ring.verify(&token, claims.exp + CLOCK_SKEW_S - 1).is_ok());
        assert_eq!(ring.verify(&token, claims.exp + CLOCK_SKEW_S), Err(TokenError::Expired));
    }

    #[test]
    fn different_key_with_same_kid_rejected() {
        let real = SigningKey::generate().unwrap();
        let impostor_der = SigningKey::generate().unwrap().pkcs8_der().to_vec();
        let impostor = SigningKey::from_pkcs8(real.kid.clone(), &impostor_der, 0).unwrap();

        let real_ring = ring(real, Vec::new());
        let impostor_ring = ring(impostor, Vec::new());
        let forged = impostor_ring.sign(&user_claims(&impostor_ring)).unwrap();

        assert_eq!(real_ring.verify(&forged, NOW), Err(TokenError::InvalidSignature));
    }

    #[test]
    fn unknown_or_missing_kid_rejected() {
        let ring_a = fresh_ring();
        let ring_b = fresh_ring();
        let token = ring_b.sign(&user_claims(&ring_b)).unwrap();
        assert_eq!(ring_a.verify(&token, NOW), Err(TokenError::UnknownKey));

        // Correctly signed by the active key, but without a kid to select it.
        let no_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &user_claims(&ring_a),
            &ring_a.active.encoding_key,
        )
        .unwrap();
        assert_eq!(ring_a.verify(&no_kid, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn tampered_payload_rejected() {
        let ring = fresh_ring();
        let token = ring.sign(&user_claims(&ring)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = parts[1].as_bytes().to_vec();
        let mid = payload.len() / 2;
        payload[mid] = if payload[mid] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{}.{}.{}", parts[0], String::from_utf8(payload).unwrap(), parts[2]);
        assert_ne!(tampered, token);
        assert_eq!(ring.verify(&tampered, NOW), Err(TokenError::InvalidSignature));
    }

    #[test]
    fn alg_none_rejected() {
        let ring = fresh_ring();
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": ring.active_kid()});
        let payload = serde_json::to_value(user_claims(&ring)).unwrap();
        let token = format!("{}.{}.", b64_json(&header), b64_json(&payload));
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn hs256_with_public_key_as_secret_rejected() {
        let ring = fresh_ring();
        let public_key = *ring.active.public_key();
        let x = URL_SAFE_NO_PAD.encode(public_key);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(ring.active_kid().to_owned());

        // Both forms an attacker could take from our JWKS: raw key bytes and the `x` string.
        for secret in [public_key.as_slice(), x.as_bytes()] {
            let token = jsonwebtoken::encode(&header, &user_claims(&ring), &EncodingKey::from_secret(secret)).unwrap();
            assert_eq!(ring.verify(&token, NOW), Err(TokenError::WrongAlgorithm));
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_new_kid() {
        let old = SigningKey::generate().unwrap();
        let old_kid = old.kid.clone();
        let old_public = old.verifying_key();
        let old_ring = ring(old, Vec::new());
        let old_token = old_ring.sign(&user_claims(&old_ring)).unwrap();

        let new = SigningKey::generate().unwrap();
        let new_kid = new.kid.clone();
        assert_ne!(new_kid, old_kid);
        let rotated = ring(new, vec![old_public]);

        assert_eq!(rotated.active_kid(), new_kid);
        assert!(rotated.verify(&old_token, NOW).is_ok());

        let new_token = rotated.sign(&user_claims(&rotated)).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        assert!(rotated.verify(&new_token, NOW).is_ok());

        // The pre-rotation ring does not know the new key.
        assert_eq!(old_ring.verify(&new_token, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn jwks_lists_all_keys_as_okp_ed25519() {
        let old = SigningKey::generate().unwrap();
        let old_kid = old.kid.clone();
        let old_public = old.verifying_key();
        let new = SigningKey::generate().unwrap();
        let new_kid = new.kid.clone();
        let rotated = ring(new, vec![old_public]);

        let jwks = rotated.jwks();
        let json = serde_json::to_value(&jwks).unwrap();
        let keys = json["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        for key in keys {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(key["alg"], "EdDSA");
            assert_eq!(key["use"], "sig");
            let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
            assert_eq!(x.len(), 32);
            assert!(key.get("d").is_none(), "private key material must not leak");
        }

        // A third party using only the published JWK can verify our tokens.
        let token = rotated.sign(&user_claims(&rotated)).unwrap();
        let jwk = jwks.find(&new_kid).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUD]);
        validation.validate_exp = false;
        let decoded =
            jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
        assert_eq!(decoded.claims.sub, "user-1");
    }

    #[test]
    fn wrong_audience_or_issuer_rejected() {
        let key = SigningKey::generate().unwrap();
        let other_aud = KeyRing::new(copy_of(&key), Vec::new(), ISS, "other-api").unwrap();
        let other_iss = KeyRing::new(copy_of(&key), Vec::new(), "https://evil.test", AUD).unwrap();
        let ring = ring(key, Vec::new());

        let token = ring.sign(&user_claims(&ring)).unwrap();
        assert!(ring.verify(&token, NOW).is_ok());
        assert_eq!(other_aud.verify(&token, NOW), Err(TokenError::InvalidClaims));
        assert_eq!(other_iss.verify(&token, NOW), Err(TokenError::InvalidClaims));

        // Signing claims for another audience is refused rather than producing a dud token.
        let mut foreign = user_claims(&ring);
        foreign.aud = "other-api".into();
        assert!(matches!(ring.sign(&foreign), Err(CryptoError::InvalidClaims(_))));
    }

    #[test]
    fn missing_required_claim_rejected() {
        let ring = fresh_ring();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ring.active_kid().to_owned());
        let mut payload = serde_json::to_value(user_claims(&ring)).unwrap();
        for claim in ["jti", "sub", "iat", "exp", "iss", "aud"] {
            let mut p = payload.clone();
            p.as_object_mut().unwrap().remove(claim);
            let token = jsonwebtoken::encode(&header, &p, &ring.active.encoding_key).unwrap();
            assert_eq!(
                ring.verify(&token, NOW),
                Err(TokenError::InvalidClaims),
                "missing {claim}"
            );
        }
        payload["sub"] = serde_json::json!("");
        let token = jsonwebtoken::encode(&header, &payload, &ring.active.encoding_key).unwrap();
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::InvalidClaims));
    }

    #[test]
    fn malformed_tokens_rejected() {
        let ring = fresh_ring();
        let valid = ring.sign(&user_claims(&ring)).unwrap();
        let oversized = format!("{valid}{}", "A".repeat(MAX_TOKEN_LEN));
        for token in ["", "abc", "a.b", "a.b.c.d.e", "!!!.e30.", oversized.as_str()] {
            assert_eq!(ring.verify(token, NOW), Err(TokenError::Malformed), "{token}");
        }
    }

    #[test]
    fn key_ring_rejects_duplicate_kids_and_empty_config() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        assert!(matches!(
            KeyRing::new(copy_of(&key), vec![public], ISS, AUD),
            Err(CryptoError::DuplicateKid(_))
        ));
        assert!(KeyRing::new(copy_of(&key), Vec::new(), "", AUD).is_err());
        assert!(KeyRing::new(key, Vec::new(), ISS, "").is_err());
    }

    #[test]
    fn pkcs8_round_trip() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(key.kid.len(), 16);
        assert!(key.kid.bytes().all(|b| b.is_ascii_hexdigit()));

        let loaded = SigningKey::from_pkcs8(key.kid.clone(), key.pkcs8_der(), key.created_at_ms).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(loaded.created_at_ms, key.created_at_ms);
        assert_eq!(loaded.public_jwk(), key.public_jwk());

        // A token from the reloaded key verifies against a ring holding only the public half.
        let verifier = ring(SigningKey::generate().unwrap(), vec![key.verifying_key()]);
        let signer = ring(loaded, Vec::new());
        let token = signer.sign(&user_claims(&signer)).unwrap();
        assert!(verifier.verify(&token, NOW).is_ok());

        assert!(SigningKey::from_pkcs8("k1", b"not a key", 0).is_err());
        assert!(matches!(
            SigningKey::from_pkcs8("bad kid!", key.pkcs8_der(), 0),
            Err(CryptoError::InvalidKid)
        ));
        assert!(!format!("{key:?}").contains(&hex::encode(key.pkcs8_der())));
    }

    #[test]
    fn password_hash_and_verify() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("correct horse battery staple", "not a phc string"));
        // Random salt: the same password never hashes to the same string.
        assert_ne!(phc, hash_password("correct horse battery staple").unwrap());
        dummy_verify();
    }

    #[test]
    fn token_hash_is_stable_sha256_hex() {
        let h = token_hash("prt_example");
        assert_eq!(h, token_hash("prt_example"));
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(h, token_hash("prt_example2"));
        assert_eq!(
            token_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn opaque_tokens_are_distinct_and_well_formed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        let body = a.strip_prefix(REFRESH_TOKEN_PREFIX).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);

        let (key1, display1) = new_api_key();
        let (key2, _) = new_api_key();
        assert_ne!(key1, key2);
        let body = key1.strip_prefix(API_KEY_PREFIX).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_eq!(display1.len(), API_KEY_DISPLAY_LEN);
        assert!(key1.starts_with(&display1));
    }

    #[test]
    fn token_error_codes_are_distinct() {
        let all = [
            TokenError::Malformed,
            TokenError::WrongAlgorithm,
            TokenError::UnknownKey,
            TokenError::InvalidSignature,
            TokenError::Expired,
            TokenError::InvalidClaims,
        ];
        let codes: std::collections::HashSet<&str> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}

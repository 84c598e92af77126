//! Authentication: accounts, sessions with rotating refresh tokens, access JWTs signed by a
//! rotating Ed25519 key set, and API keys.

pub mod crypto;
mod recovery;
pub mod sealing;
pub mod store;
pub mod throttle;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use portico_runtime::{
    ErrorCode, Problem,
    cache::{Cache, CacheRegistry},
    db::{Db, DbError, now_ms},
    redis::SharedRedis,
};
use serde::{Deserialize, Serialize};

use crate::envelope::ApiError;
use crypto::{AccessClaims, KeyRing, SigningKey, TokenError, VerifyingKey};
use sealing::Kek;
use store::{ApiKeyRow, RefreshRow, SigningKeyRow, UserRow};

pub use recovery::Links;

/// A caller's plan tier (ordered: free < pro < enterprise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Free plan.
    Free,
    /// Pro plan.
    Pro,
    /// Enterprise plan.
    Enterprise,
}

impl Tier {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "free" => Some(Tier::Free),
            "pro" => Some(Tier::Pro),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }
}

/// A caller's role, stored with the account: the first admin is made by the operator
/// (`portico admin grant EMAIL`), later ones by an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ordinary user.
    User,
    /// Administrator.
    Admin,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => crypto::ROLE_USER,
            Role::Admin => crypto::ROLE_ADMIN,
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            crypto::ROLE_USER => Some(Role::User),
            crypto::ROLE_ADMIN => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What an API key may do: `read` (GET, HEAD), `write` (everything else), `admin` (admin
/// routes, for admins' keys only and never by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Safe methods.
    Read,
    /// Unsafe methods.
    Write,
    /// Admin routes.
    Admin,
}

impl Scope {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// The scopes of a key created without naming any.
    pub const DEFAULT: [Scope; 2] = [Scope::Read, Scope::Write];

    /// The stored form of a set of scopes.
    pub fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Reads the stored form (unknown names are dropped: they grant nothing).
    pub fn split(stored: &str) -> Vec<Scope> {
        stored.split(',').filter_map(|s| Scope::parse(s.trim())).collect()
    }
}

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token of session `sid`.
    AccessToken {
        /// Session id.
        sid: String,
    },
    /// An API key.
    ApiKey {
        /// Key id.
        id: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Plan tier (current, not as of token issue).
    pub tier: Tier,
    /// How they authenticated.
    pub credential: Credential,
    /// Signed in with their password within `PORTICO_FRESH_LOGIN_SECS` (access tokens only).
    pub fresh: bool,
    /// Whether their address is verified.
    pub email_verified: bool,
}

/// What is cached about a user for authenticating each request.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct UserRecord {
    email: String,
    tier: Tier,
    role: Role,
    email_verified: bool,
    /// Sessions revoked within the access-token lifetime: their access tokens are refused.
    revoked_sessions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ApiKeyRecord {
    id: String,
    user_id: String,
    scopes: Vec<Scope>,
}

/// Token lifetimes and signing settings.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// JWT `iss`.
    pub issuer: String,
    /// JWT `aud`.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token (session) lifetime.
    pub refresh_ttl: Duration,
    /// How long one key signs before a new one takes over.
    pub key_rotation: Duration,
    /// How long after a password sign-in sensitive actions are allowed.
    pub fresh_login: Duration,
    /// Where mailed links point.
    pub links: Links,
}

/// Tokens handed to a client after signup, login or refresh.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The user.
    pub user: UserView,
    /// Access JWT (EdDSA), for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque refresh token (single use).
    #[schema(example = "prt_3q2-HgXb…")]
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
}

/// A user as clients see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Id (UUIDv7).
    pub id: String,
    /// Email (lower case).
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Role.
    pub role: Role,
    /// Plan tier.
    pub tier: Tier,
    /// Whether the address is verified.
    pub email_verified: bool,
}

/// A newly created API key, shown once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    /// Id (for deletion).
    pub id: String,
    /// Name given by the user.
    pub name: String,
    /// The key itself; not retrievable later.
    pub key: String,
    /// Its first characters, for recognising it in lists.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// An API key as listed (no secret).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// First characters of the key.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last use (RFC 3339), at minute precision.
    pub last_used_at: Option<String>,
}

/// The name of the cache of user records (shared by every gateway through Redis).
pub const USERS_CACHE: &str = "gateway.users";

/// Most API keys a user may hold.
pub const MAX_API_KEYS: i64 = 20;
const UNKNOWN_KID_RELOAD_MS: i64 = 1_000;

/// The authentication service of the gateway.
#[derive(Clone)]
pub struct Auth {
    db: Db,
    settings: Arc<AuthSettings>,
    kek: Arc<Kek>,
    ring: Arc<RwLock<Arc<KeyRing>>>,
    last_reload_ms: Arc<AtomicI64>,
    /// One reload for an unknown key id at a time; the others wait for its result.
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// Password hashing is memory-hard (19 MiB each): at most one per core at a time, so a
    /// burst of sign-ins queues instead of exhausting memory.
    hashing: Arc<tokio::sync::Semaphore>,
    outbox: portico_runtime::outbox::Outbox,
    users: Cache<Option<UserRecord>>,
    api_keys: Cache<Option<ApiKeyRecord>>,
    verified: moka::sync::Cache<String, Arc<AccessClaims>>,
    /// API keys whose last use was recorded in the past minute: not written again.
    recently_used: moka::sync::Cache<String, ()>,
}

fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The form an address is kept and compared in (its shape is checked by the request types'
/// schema before it gets here).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

enum RefreshOutcome {
    Rotated(Issued),
    Replayed { user_id: String },
    Invalid,
    Expired,
}

/// The outbox topic of account erasure requests (one row per service).
pub const ERASE_TOPIC: &str = "erase";

/// One service's share of an account deletion, queued in the deleting transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// The deleted user.
    pub user_id: String,
    /// The service that must erase them.
    pub service: String,
}

impl Auth {
    /// Opens the key ring (creating or rotating keys as needed, sealing any older plaintext
    /// key under `kek`).
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        db: Db,
        settings: AuthSettings,
        kek: Kek,
        redis: Option<SharedRedis>,
        l1_ttl: Duration,
        ttl: Duration,
        registry: &CacheRegistry,
    ) -> Result<Auth, String> {
        let settings = Arc::new(settings);
        let kek = Arc::new(kek);
        let ring = rotate_ring(&db, &settings, &kek).await?;
        let verified = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.access_ttl.min(Duration::from_secs(60)))
            .build();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Ok(Auth {
            users: Cache::new(USERS_CACHE, 100_000, l1_ttl, ttl, redis.clone(), registry),
            api_keys: Cache::new("gateway.api_keys", 100_000, l1_ttl, ttl, redis, registry),
            outbox: portico_runtime::outbox::Outbox::new(db.clone()),
            db,
            settings,
            kek,
            ring: Arc::new(RwLock::new(Arc::new(ring))),
            last_reload_ms: Arc::new(AtomicI64::new(now_ms())),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
            hashing: Arc::new(tokio::sync::Semaphore::new(cores)),
            verified,
            recently_used: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The gateway database's outbox (mail, erasure requests).
    pub fn outbox(&self) -> &portico_runtime::outbox::Outbox {
        &self.outbox
    }

    fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, ring: KeyRing) {
        self.last_reload_ms.store(now_ms(), Ordering::Relaxed);
        match self.ring.write() {
            Ok(mut r) => *r = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
    }

    /// Rotates keys when due and reloads the ring (run periodically).
    pub async fn rotate_keys(&self) -> Result<(), String> {
        let ring = rotate_ring(&self.db, &self.settings, &self.kek).await?;
        self.install(ring);
        Ok(())
    }

    /// Reloads the published keys for a token signed by a key this replica has not seen
    /// (another replica rotated). Read-only, at most once a second, and single-flight: callers
    /// that arrive during a reload wait for it instead of starting their own.
    async fn reload_for_unknown_kid(&self) -> Result<(), String> {
        let seen = self.last_reload_ms.load(Ordering::Relaxed);
        let _turn = self.reloading.lock().await;
        let last = self.last_reload_ms.load(Ordering::Relaxed);
        if last != seen || now_ms() - last <= UNKNOWN_KID_RELOAD_MS {
            return Ok(());
        }
        let ring = read_ring(&self.db, &self.settings, &self.kek).await?;
        self.install(ring);
        Ok(())
    }

    /// The public keys (JWKS).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.ring().jwks()
    }

    fn view(user: &UserRow) -> UserView {
        UserView {
            id: user.id.clone(),
            email: user.email.clone(),
            role: Role::parse(&user.role).unwrap_or(Role::User),
            tier: Tier::parse(&user.tier).unwrap_or(Tier::Free),
            email_verified: user.email_verified_at.is_some(),
        }
    }

    fn access_token(&self, user: &UserRow, sid: &str, signed_in_ms: i64) -> Result<String, ApiError> {
        let ring = self.ring();
        let now = now_ms() / 1000;
        let ttl = i64::try_from(self.settings.access_ttl.as_secs()).unwrap_or(900);
        let role = Role::parse(&user.role).unwrap_or(Role::User);
        let mut claims = ring.new_claims(&user.id, sid, role.as_str(), &user.tier, now, ttl);
        claims.auth_time = signed_in_ms / 1000;
        ring.sign(&claims).map_err(ApiError::internal)
    }

    /// Starts a session: refresh token stored hashed, access token signed.
    fn issue(&self, conn: &mut portico_runtime::db::DbConnection, user: &UserRow) -> Result<Issued, ApiError> {
        let now = now_ms();
        let sid = uuid::Uuid::new_v4().to_string();
        let expires = now + i64::try_from(self.settings.refresh_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        store::insert_session(conn, &sid, &user.id, now, expires)?;
        self.issue_in_session(conn, user, &sid, now, expires)
    }

    fn issue_in_session(
        &self,
        conn: &mut portico_runtime::db::DbConnection,
        user: &UserRow,
        sid: &str,
        signed_in_ms: i64,
        session_expires: i64,
    ) -> Result<Issued, ApiError> {
        let refresh = crypto::new_refresh_token();
        store::insert_refresh(
            conn,
            &crypto::token_hash(&refresh),
            sid,
            &user.id,
            now_ms(),
            session_expires,
        )?;
        Ok(Issued {
            user: Self::view(user),
            access_token: self.access_token(user, sid, signed_in_ms)?,
            refresh_token: refresh,
            expires_in: self.settings.access_ttl.as_secs(),
            token_type: "Bearer",
        })
    }

    /// Hashes a password on the blocking pool, one per core at a time.
    async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || crypto::hash_password(&password))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }

    /// Checks a password against a stored hash (or burns the same time when there is none),
    /// on the blocking pool, one per core at a time.
    async fn verify_password(&self, password: String, phc: Option<String>) -> Result<bool, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => crypto::verify_password(&password, &phc),
            None => {
                crypto::dummy_verify();
                false
            }
        })
        .await
        .map_err(ApiError::internal)
    }

    /// Creates an account, signs it in and mails a verification link (queued in the same
    /// transaction, so the account never exists without its mail).
    pub async fn signup(&self, email: String, password: String) -> Result<Issued, ApiError> {
        let hash = self.hash_password(password).await?;
        let now = now_ms();
        let user = UserRow {
            id: uuid::Uuid::now_v7().to_string(),
            email,
            password_hash: hash,
            tier: "free".into(),
            created_at: now,
            updated_at: now,
            role: Role::User.as_str().into(),
            email_verified_at: None,
            verification_sent_at: Some(now),
            reset_sent_at: None,
        };
        let me = self.clone();
        let issued = self
            .db
            .write(move |conn| {
                if UserRow::by_email(conn, &user.email)?.is_some() {
                    return Err(email_taken());
                }
                user.insert(conn).map_err(|e| match e {
                    diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                        email_taken()
                    }
                    e => ApiError::from(e),
                })?;
                me.queue_verification(conn, &user, now)?;
                me.issue(conn, &user)
            })
            .await?;
        self.outbox.notify();
        Ok(issued)
    }

    /// Signs in with email and password. Each address has its own failure budget besides
    /// the per-IP limit ([`throttle`]); unknown addresses are counted and timed alike.
    pub async fn login(&self, email: String, password: String) -> Result<Issued, ApiError> {
        let key = throttle::key(&email);
        let (lookup, k) = (email.clone(), key.clone());
        let (user, locked_ms) = self
            .db
            .run(move |conn| {
                let locked = throttle::locked_for(conn, &k, now_ms())?;
                let user = UserRow::by_email(conn, &lookup)?;
                Ok::<_, ApiError>((user, locked))
            })
            .await?;
        if locked_ms > 0 {
            return Err(throttled(locked_ms));
        }
        let ok = self
            .verify_password(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let Some(user) = user.filter(|_| ok) else {
            let k = key.clone();
            let lock_ms = self
                .db
                .write(move |conn| throttle::fail(conn, &k, now_ms()).map_err(ApiError::from))
                .await?;
            if lock_ms > 0 {
                tracing::warn!(locked_ms = lock_ms, "sign-in locked after repeated failures");
            }
            return Err(bad_credentials());
        };
        let me = self.clone();
        self.db
            .write(move |conn| {
                store::LoginFailureRow::clear(conn, &key)?;
                me.issue(conn, &user)
            })
            .await
    }

    /// Exchanges a refresh token for a new pair. A token used twice revokes its whole session.
    pub async fn refresh(&self, token: String) -> Result<Issued, ApiError> {
        let hash = crypto::token_hash(&token);
        let me = self.clone();
        let outcome = self
            .db
            .write(move |conn| {
                let now = now_ms();
                let Some(row) = RefreshRow::find(conn, &hash)? else {
                    return Ok(RefreshOutcome::Invalid);
                };
                if !RefreshRow::mark_used(conn, &hash, now)? {
                    store::revoke_session(conn, &row.session_id, "refresh_token_reused", now)?;
                    return Ok(RefreshOutcome::Replayed { user_id: row.user_id });
                }
                if row.expires_at <= now {
                    return Ok(RefreshOutcome::Expired);
                }
                let Some(signed_in) = store::session_started(conn, &row.session_id, now)? else {
                    return Ok(RefreshOutcome::Invalid);
                };
                let Some(user) = UserRow::find(conn, &row.user_id)? else {
                    return Ok(RefreshOutcome::Invalid);
                };
                me.issue_in_session(conn, &user, &row.session_id, signed_in, row.expires_at)
                    .map(RefreshOutcome::Rotated)
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated(issued) => Ok(issued),
            RefreshOutcome::Replayed { user_id } => {
                self.users.invalidate(&user_id).await;
                tracing::warn!(user_id, "refresh token replayed; session revoked");
                Err(ApiError::new(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; the session is revoked, sign in again",
                ))
            }
            RefreshOutcome::Expired => Err(ApiError::new(
                ErrorCode::InvalidToken,
                "the refresh token has expired; sign in again",
            )),
            RefreshOutcome::Invalid => Err(ApiError::new(
                ErrorCode::InvalidToken,
                "the refresh token is invalid or revoked",
            )),
        }
    }

    /// Ends the caller's session (and the one of `refresh_token`, if given and theirs).
    pub async fn logout(&self, principal: &Principal, refresh_token: Option<String>) -> Result<(), ApiError> {
        let user_id = principal.user_id.clone();
        let sid = match &principal.credential {
            Credential::AccessToken { sid } => Some(sid.clone()),
            Credential::ApiKey { .. } => None,
        };
        self.db
            .write(move |conn| {
                let now = now_ms();
                if let Some(sid) = &sid {
                    store::revoke_session(conn, sid, "logout", now)?;
                }
                if let Some(token) = refresh_token
                    && let Some(row) = RefreshRow::find(conn, &crypto::token_hash(&token))?
                    && row.user_id == user_id
                {
                    store::revoke_session(conn, &row.session_id, "logout", now)?;
                }
                Ok::<_, ApiError>(())
            })
            .await?;
        self.users.invalidate(&principal.user_id).await;
        Ok(())
    }

    /// Deletes the caller's account and everything tied to it here, and queues the erasure
    /// of their data in each of `services` (in the same transaction, so a service that is
    /// down gets the request when it is back).
    pub async fn delete_account(&self, user_id: &str, services: &[&'static str]) -> Result<(), ApiError> {
        let id = user_id.to_string();
        let erasures: Vec<String> = services
            .iter()
            .map(|service| {
                serde_json::to_string(&Erasure {
                    user_id: user_id.to_string(),
                    service: (*service).to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(ApiError::internal)?;
        let keys = self
            .db
            .write(move |conn| {
                let keys = ApiKeyRow::of_user(conn, &id)?;
                if !UserRow::delete(conn, &id)? {
                    return Err(ApiError::not_found("user"));
                }
                for erasure in &erasures {
                    portico_runtime::outbox::enqueue(conn, ERASE_TOPIC, erasure)?;
                }
                Ok::<_, ApiError>(keys)
            })
            .await?;
        self.outbox.notify();
        for key in keys {
            self.api_keys.invalidate(&key.key_hash).await;
        }
        self.users.invalidate(user_id).await;
        Ok(())
    }

    /// Sets a user's plan tier (admin).
    pub async fn set_tier(&self, user_id: &str, tier: Tier) -> Result<UserView, ApiError> {
        let id = user_id.to_string();
        let user = self
            .db
            .write(move |conn| {
                if !UserRow::set_tier(conn, &id, tier.as_str(), now_ms())? {
                    return Err(ApiError::not_found("user"));
                }
                UserRow::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))
            })
            .await?;
        self.users.invalidate(user_id).await;
        Ok(Self::view(&user))
    }

    /// Grants or revokes admin (admin). The last admin cannot be demoted: someone must be
    /// left who can grant it again.
    pub async fn set_role(&self, user_id: &str, role: Role) -> Result<UserView, ApiError> {
        let id = user_id.to_string();
        let user = self
            .db
            .write(move |conn| {
                let user = UserRow::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
                if role == Role::User && user.role == Role::Admin.as_str() && UserRow::count_admins(conn)? <= 1 {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "this is the last admin; grant admin to someone else first",
                    ));
                }
                UserRow::set_role(conn, &id, role.as_str(), now_ms())?;
                UserRow::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))
            })
            .await?;
        self.users.invalidate(user_id).await;
        tracing::info!(user_id, role = role.as_str(), "role changed");
        Ok(Self::view(&user))
    }

    /// Drops this process's cached record of the account with `email` (after an operator
    /// changed it on the database).
    pub async fn forget_user(&self, email: &str) {
        let email = email.trim().to_ascii_lowercase();
        if let Ok(Some(user)) = self
            .db
            .run(move |conn| UserRow::by_email(conn, &email).map_err(DbError::from))
            .await
        {
            self.users.invalidate(&user.id).await;
        }
    }

    /// A user by id.
    pub async fn user(&self, user_id: &str) -> Result<UserView, ApiError> {
        let id = user_id.to_string();
        let user = self
            .db
            .run(move |conn| UserRow::find(conn, &id).map_err(ApiError::from))
            .await?;
        user.as_ref().map(Self::view).ok_or_else(|| ApiError::not_found("user"))
    }

    async fn user_record(&self, user_id: &str) -> Result<Option<UserRecord>, ApiError> {
        let id = user_id.to_string();
        let db = self.db.clone();
        let window = i64::try_from(self.settings.access_ttl.as_millis()).unwrap_or(900_000) + 60_000;
        self.users
            .get_or_load(user_id, || async move {
                db.run(move |conn| {
                    let Some(user) = UserRow::find(conn, &id)? else {
                        return Ok(None);
                    };
                    let revoked = store::revoked_sessions(conn, &id, now_ms() - window)?;
                    Ok::<_, ApiError>(Some(UserRecord {
                        email: user.email,
                        tier: Tier::parse(&user.tier).unwrap_or(Tier::Free),
                        role: Role::parse(&user.role).unwrap_or(Role::User),
                        email_verified: user.email_verified_at.is_some(),
                        revoked_sessions: revoked,
                    }))
                })
                .await
            })
            .await
    }

    fn verify_token(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        let now_s = now_ms() / 1000;
        if let Some(claims) = self.verified.get(token) {
            if claims.exp + crypto::CLOCK_SKEW_S > now_s {
                return Ok(claims);
            }
            return Err(TokenError::Expired);
        }
        let claims = Arc::new(self.ring().verify(token, now_s)?);
        self.verified.insert(token.to_string(), Arc::clone(&claims));
        Ok(claims)
    }

    /// Authenticates a bearer access token.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = match self.verify_token(token) {
            Err(TokenError::UnknownKey) => {
                // Another replica may have rotated keys since this one loaded them.
                self.reload_for_unknown_kid().await.map_err(ApiError::internal)?;
                self.verify_token(token)
            }
            other => other,
        }
        .map_err(token_problem)?;
        let record = self
            .user_record(&claims.sub)
            .await?
            .ok_or_else(|| invalid_token("the user no longer exists"))?;
        if record.revoked_sessions.iter().any(|s| *s == claims.sid) {
            return Err(invalid_token("the session was signed out"));
        }
        let fresh_s = i64::try_from(self.settings.fresh_login.as_secs()).unwrap_or(300);
        Ok(Principal {
            user_id: claims.sub.clone(),
            role: record.role,
            email: record.email,
            tier: record.tier,
            credential: Credential::AccessToken {
                sid: claims.sid.clone(),
            },
            fresh: claims.auth_time > 0 && now_ms() / 1000 - claims.auth_time <= fresh_s,
            email_verified: record.email_verified,
        })
    }

    /// Authenticates an API key.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, ApiError> {
        if !key.starts_with(crypto::API_KEY_PREFIX) || key.len() > 128 {
            return Err(invalid_token("the API key is invalid"));
        }
        let hash = crypto::token_hash(key);
        let db = self.db.clone();
        let h = hash.clone();
        let record = self
            .api_keys
            .get_or_load(&hash, || async move {
                db.run(move |conn| {
                    Ok::<_, ApiError>(ApiKeyRow::live_by_hash(conn, &h)?.map(|k| ApiKeyRecord {
                        id: k.id,
                        user_id: k.user_id,
                        scopes: Scope::split(&k.scopes),
                    }))
                })
                .await
            })
            .await?
            .ok_or_else(|| invalid_token("the API key is invalid or revoked"))?;
        let user = self
            .user_record(&record.user_id)
            .await?
            .ok_or_else(|| invalid_token("the user no longer exists"))?;
        // Record the use at most once a minute per key per process, off the request path.
        if !self.recently_used.contains_key(&record.id) {
            self.recently_used.insert(record.id.clone(), ());
            let (db, id) = (self.db.clone(), record.id.clone());
            tokio::spawn(async move {
                let _ = db
                    .write(move |conn| ApiKeyRow::touch(conn, &id, now_ms()).map_err(DbError::from))
                    .await;
            });
        }
        // An admin key of a user who is no longer an admin grants nothing more.
        let scopes = record
            .scopes
            .into_iter()
            .filter(|s| *s != Scope::Admin || user.role == Role::Admin)
            .collect();
        Ok(Principal {
            user_id: record.user_id,
            role: user.role,
            email: user.email,
            tier: user.tier,
            credential: Credential::ApiKey { id: record.id, scopes },
            fresh: false,
            email_verified: user.email_verified,
        })
    }

    /// Creates an API key for `owner` with `scopes` (only admins may give a key `admin`).
    pub async fn create_api_key(
        &self,
        owner: &Principal,
        name: String,
        scopes: Vec<Scope>,
    ) -> Result<NewApiKey, ApiError> {
        if scopes.contains(&Scope::Admin) && owner.role != Role::Admin {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only admins may create keys with the admin scope",
            ));
        }
        let (key, prefix) = crypto::new_api_key();
        let now = now_ms();
        let row = ApiKeyRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: owner.user_id.clone(),
            name,
            prefix,
            key_hash: crypto::token_hash(&key),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            scopes: Scope::join(&scopes),
        };
        let stored = row.clone();
        self.db
            .write(move |conn| {
                if ApiKeyRow::count_live(conn, &stored.user_id)? >= MAX_API_KEYS {
                    return Err(ApiError(Problem::new(
                        ErrorCode::Conflict,
                        format!("at most {MAX_API_KEYS} API keys per user; delete one first"),
                    )));
                }
                stored.insert(conn).map_err(ApiError::from)
            })
            .await?;
        Ok(NewApiKey {
            id: row.id,
            name: row.name,
            key,
            prefix: row.prefix,
            scopes,
            created_at: ms_to_rfc3339(now),
        })
    }

    /// A user's API keys.
    pub async fn list_api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyView>, ApiError> {
        let id = user_id.to_string();
        let rows = self
            .db
            .run(move |conn| ApiKeyRow::of_user(conn, &id).map_err(ApiError::from))
            .await?;
        Ok(rows
            .into_iter()
            .map(|k| ApiKeyView {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                scopes: Scope::split(&k.scopes),
                created_at: ms_to_rfc3339(k.created_at),
                last_used_at: k.last_used_at.map(ms_to_rfc3339),
            })
            .collect())
    }

    /// Revokes one of a user's API keys (404 when it is not theirs).
    pub async fn delete_api_key(&self, user_id: &str, key_id: &str) -> Result<(), ApiError> {
        let (uid, kid) = (user_id.to_string(), key_id.to_string());
        let hash = self
            .db
            .write(move |conn| {
                let hash = ApiKeyRow::of_user(conn, &uid)?
                    .into_iter()
                    .find(|k| k.id == kid)
                    .map(|k| k.key_hash);
                if hash.is_some() {
                    ApiKeyRow::revoke(conn, &uid, &kid, now_ms())?;
                }
                Ok::<_, ApiError>(hash)
            })
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        self.api_keys.invalidate(&hash).await;
        Ok(())
    }

    /// Removes what has outlived its use: ended sessions and their refresh tokens, expired
    /// mailed tokens, finished sign-in throttles. Returns rows removed.
    pub async fn purge_expired(&self) -> Result<usize, ApiError> {
        let access_ttl = i64::try_from(self.settings.access_ttl.as_millis()).unwrap_or(900_000);
        self.db
            .write(move |conn| {
                let now = now_ms();
                // Revoked sessions are kept while their access tokens could still be presented.
                let mut removed = store::purge_sessions(conn, now - access_ttl - 60_000)?;
                removed += store::purge_email_tokens(conn, now)?;
                removed += store::LoginFailureRow::purge(conn, now - throttle::WINDOW_MS)?;
                Ok::<_, ApiError>(removed)
            })
            .await
    }
}

/// Grants or revokes admin by e-mail, straight on the gateway's database (the operator's
/// `portico admin grant EMAIL`): how the first admin is made. False when no account has
/// that address.
pub async fn set_role_by_email(db: &Db, email: &str, role: Role) -> Result<Option<String>, DbError> {
    let email = email.trim().to_ascii_lowercase();
    db.write(move |conn| {
        if !UserRow::set_role_by_email(conn, &email, role.as_str(), now_ms())? {
            return Ok(None);
        }
        Ok(UserRow::by_email(conn, &email)?.map(|u| u.id))
    })
    .await
}

fn throttled(locked_ms: i64) -> ApiError {
    retry_later(
        ErrorCode::LoginThrottled,
        "too many failed sign-ins for this address",
        locked_ms,
    )
}

/// A 429 that says when to come back (`Retry-After` is taken from `retryAfterSeconds`).
pub(crate) fn retry_later(code: ErrorCode, why: &str, wait_ms: i64) -> ApiError {
    let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1);
    ApiError(
        Problem::new(code, format!("{why}; try again in {secs} s"))
            .with_details(serde_json::json!({ "retryAfterSeconds": secs })),
    )
}

fn email_taken() -> ApiError {
    ApiError(
        Problem::new(ErrorCode::EmailTaken, "an account with this email exists")
            .with_details(serde_json::json!({"fields": {"email": "is already registered"}})),
    )
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "email or password is wrong")
}

fn invalid_token(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidToken, message)
}

fn token_problem(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "the access token has expired; refresh it"),
        other => ApiError(
            Problem::new(ErrorCode::InvalidToken, "the access token is invalid")
                .with_details(serde_json::json!({"reason": other.code()})),
        ),
    }
}

/// Loads the published keys, creating the first key or rotating the active one when due, and
/// sealing any key still stored in plaintext (written by an older version).
async fn rotate_ring(db: &Db, settings: &Arc<AuthSettings>, kek: &Arc<Kek>) -> Result<KeyRing, String> {
    let (s, k) = (Arc::clone(settings), Arc::clone(kek));
    let rows = db
        .write(move |conn| {
            let now = now_ms();
            SigningKeyRow::purge_expired(conn, now)?;
            let mut rows = SigningKeyRow::published(conn, now)?;
            for row in rows.iter_mut().filter(|r| !sealing::is_sealed(&r.private_key)) {
                let der =
                    hex::decode(&row.private_key).map_err(|e| DbError::Pool(format!("stored key {}: {e}", row.kid)))?;
                row.private_key = k.seal(&row.kid, &der).map_err(DbError::Pool)?;
                SigningKeyRow::set_private_key(conn, &row.kid, &row.private_key)?;
                tracing::info!(kid = %row.kid, "sealed a signing key stored in plaintext");
            }
            let rotation = i64::try_from(s.key_rotation.as_millis()).unwrap_or(i64::MAX / 2);
            let due = rows
                .iter()
                .find(|r| r.retired_at.is_none())
                .is_none_or(|active| active.created_at + rotation <= now);
            if due {
                let key = SigningKey::generate().map_err(|e| DbError::Pool(e.to_string()))?;
                let row = SigningKeyRow {
                    kid: key.kid.clone(),
                    private_key: k.seal(&key.kid, key.pkcs8_der()).map_err(DbError::Pool)?,
                    public_key: hex::encode(key.public_key()),
                    created_at: now,
                    retired_at: None,
                    expires_at: None,
                };
                row.insert(conn)?;
                // Old keys stay published until every token they signed has expired.
                let keep_until = now + i64::try_from(s.access_ttl.as_millis()).unwrap_or(900_000) + 60_000;
                SigningKeyRow::retire_others(conn, &row.kid, now, keep_until)?;
                tracing::info!(kid = %row.kid, "signing key rotated");
                rows = SigningKeyRow::published(conn, now)?;
            }
            Ok::<_, DbError>(rows)
        })
        .await
        .map_err(|e| e.to_string())?;
    ring_from_rows(rows, settings, kek)
}

/// Loads the published keys without changing anything.
async fn read_ring(db: &Db, settings: &Arc<AuthSettings>, kek: &Arc<Kek>) -> Result<KeyRing, String> {
    let rows = db
        .run(|conn| SigningKeyRow::published(conn, now_ms()).map_err(DbError::from))
        .await
        .map_err(|e| e.to_string())?;
    ring_from_rows(rows, settings, kek)
}

fn ring_from_rows(rows: Vec<SigningKeyRow>, settings: &AuthSettings, kek: &Kek) -> Result<KeyRing, String> {
    let mut active = None;
    let mut previous = Vec::new();
    for row in rows {
        if active.is_none() && row.retired_at.is_none() {
            let der = if sealing::is_sealed(&row.private_key) {
                kek.open(&row.kid, &row.private_key)?
            } else {
                hex::decode(&row.private_key).map_err(|e| e.to_string())?
            };
            active = Some(SigningKey::from_pkcs8(row.kid, &der, row.created_at).map_err(|e| e.to_string())?);
        } else {
            let public = hex::decode(&row.public_key).map_err(|e| e.to_string())?;
            previous.push(VerifyingKey::from_public_key(row.kid, &public, row.created_at).map_err(|e| e.to_string())?);
        }
    }
    let active = active.ok_or("no active signing key")?;
    KeyRing::new(active, previous, settings.issuer.clone(), settings.audience.clone()).map_err(|e| e.to_string())
}

//! The gateway's own tables: users, sessions, refresh tokens, API keys, signing keys.

use diesel::prelude::*;
use portico_runtime::db::DbConnection;

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        users (id) {
            id -> Text,
            email -> Text,
            password_hash -> Text,
            tier -> Text,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }
    diesel::table! {
        sessions (id) {
            id -> Text,
            user_id -> Text,
            created_at -> BigInt,
            expires_at -> BigInt,
            revoked_at -> Nullable<BigInt>,
            revoked_reason -> Nullable<Text>,
        }
    }
    diesel::table! {
        refresh_tokens (token_hash) {
            token_hash -> Text,
            session_id -> Text,
            user_id -> Text,
            created_at -> BigInt,
            expires_at -> BigInt,
            used_at -> Nullable<BigInt>,
        }
    }
    diesel::table! {
        api_keys (id) {
            id -> Text,
            user_id -> Text,
            name -> Text,
            prefix -> Text,
            key_hash -> Text,
            created_at -> BigInt,
            last_used_at -> Nullable<BigInt>,
            revoked_at -> Nullable<BigInt>,
        }
    }
    diesel::table! {
        signing_keys (kid) {
            kid -> Text,
            private_key -> Text,
            public_key -> Text,
            created_at -> BigInt,
            retired_at -> Nullable<BigInt>,
            expires_at -> Nullable<BigInt>,
        }
    }
    diesel::allow_tables_to_appear_in_same_query!(users, sessions, refresh_tokens, api_keys, signing_keys);
}

use schema::{api_keys, refresh_tokens, sessions, signing_keys, users};

/// A user account.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub tier: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    /// By id.
    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
        users::table
            .find(id)
            .select(UserRow::as_select())
            .first(conn)
            .optional()
    }

    /// By (normalised) email.
    pub fn by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<UserRow>> {
        users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(conn)
            .optional()
    }

    /// Inserts (unique violation when the email exists).
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(users::table).values(self).execute(conn).map(|_| ())
    }

    /// Sets the plan tier; false when there is no such user.
    pub fn set_tier(conn: &mut DbConnection, id: &str, tier: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(users::table.find(id))
            .set((users::tier.eq(tier), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// Deletes the account; sessions, tokens and keys go with it (foreign keys cascade).
    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        // SQLite only cascades with foreign keys on; delete children explicitly so both agree.
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::user_id.eq(id))).execute(conn)?;
        diesel::delete(sessions::table.filter(sessions::user_id.eq(id))).execute(conn)?;
        diesel::delete(api_keys::table.filter(api_keys::user_id.eq(id))).execute(conn)?;
        Ok(diesel::delete(users::table.find(id)).execute(conn)? == 1)
    }
}

/// Starts a session.
pub fn insert_session(conn: &mut DbConnection, id: &str, user_id: &str, now: i64, expires_at: i64) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Revokes a session (idempotent); returns whether it was live.
pub fn revoke_session(conn: &mut DbConnection, id: &str, reason: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
        .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
        .execute(conn)?;
    Ok(n == 1)
}

/// Ids of a user's sessions revoked since `since` (access tokens of older ones have expired).
pub fn revoked_sessions(conn: &mut DbConnection, user_id: &str, since: i64) -> QueryResult<Vec<String>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.ge(since))
        .select(sessions::id)
        .load(conn)
}

/// A refresh token as stored (only its hash).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    pub token_hash: String,
    pub session_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl RefreshRow {
    /// By hash.
    pub fn find(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<RefreshRow>> {
        refresh_tokens::table
            .find(hash)
            .select(RefreshRow::as_select())
            .first(conn)
            .optional()
    }

    /// Marks the token used if it was unused; false when it had been used already (a replay).
    pub fn mark_used(conn: &mut DbConnection, hash: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(
            refresh_tokens::table
                .find(hash)
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }
}

/// Stores a new refresh token of a session.
pub fn insert_refresh(
    conn: &mut DbConnection,
    hash: &str,
    session_id: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(hash),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Whether a session is live (exists, unrevoked, unexpired).
pub fn session_live(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    Ok(sessions::table
        .find(id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(sessions::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// An API key as stored (only its hash).
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    /// Inserts.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(api_keys::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// A live key by hash.
    pub fn live_by_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<ApiKeyRow>> {
        api_keys::table
            .filter(api_keys::key_hash.eq(hash))
            .filter(api_keys::revoked_at.is_null())
            .select(ApiKeyRow::as_select())
            .first(conn)
            .optional()
    }

    /// A user's live keys, newest first.
    pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<ApiKeyRow>> {
        api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .filter(api_keys::revoked_at.is_null())
            .order(api_keys::created_at.desc())
            .select(ApiKeyRow::as_select())
            .load(conn)
    }

    /// Count of a user's live keys.
    pub fn count_live(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
        api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .filter(api_keys::revoked_at.is_null())
            .count()
            .get_result(conn)
    }

    /// Revokes one of the user's keys; false when it is not theirs or already revoked.
    pub fn revoke(conn: &mut DbConnection, user_id: &str, id: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(id))
                .filter(api_keys::user_id.eq(user_id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Records use (at most once a minute per key, to keep writes off the hot path).
    pub fn touch(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<()> {
        diesel::update(
            api_keys::table.filter(api_keys::id.eq(id)).filter(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.lt(now - 60_000)),
            ),
        )
        .set(api_keys::last_used_at.eq(now))
        .execute(conn)
        .map(|_| ())
    }
}

/// A stored signing key.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl SigningKeyRow {
    /// Keys still published (unexpired), newest first.
    pub fn published(conn: &mut DbConnection, now: i64) -> QueryResult<Vec<SigningKeyRow>> {
        signing_keys::table
            .filter(signing_keys::expires_at.is_null().or(signing_keys::expires_at.gt(now)))
            .order(signing_keys::created_at.desc())
            .select(SigningKeyRow::as_select())
            .load(conn)
    }

    /// Inserts.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(signing_keys::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// Retires every signing key but `keep`, keeping them published until `expires_at`.
    pub fn retire_others(conn: &mut DbConnection, keep: &str, now: i64, expires_at: i64) -> QueryResult<()> {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::kid.ne(keep))
                .filter(signing_keys::retired_at.is_null()),
        )
        .set((
            signing_keys::retired_at.eq(now),
            signing_keys::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
    }

    /// Removes keys past their expiry.
    pub fn purge_expired(conn: &mut DbConnection, now: i64) -> QueryResult<usize> {
        diesel::delete(signing_keys::table.filter(signing_keys::expires_at.le(now))).execute(conn)
    }
}

//! The gateway's own tables: users, sessions, refresh tokens, API keys, signing keys, mailed
//! tokens and failed sign-ins.

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
            role -> Text,
            email_verified_at -> Nullable<BigInt>,
            verification_sent_at -> Nullable<BigInt>,
            reset_sent_at -> Nullable<BigInt>,
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
            scopes -> Text,
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
    diesel::table! {
        email_tokens (token_hash) {
            token_hash -> Text,
            user_id -> Text,
            purpose -> Text,
            created_at -> BigInt,
            expires_at -> BigInt,
            used_at -> Nullable<BigInt>,
        }
    }
    diesel::table! {
        login_failures (email_hash) {
            email_hash -> Text,
            failures -> Integer,
            last_failure_at -> BigInt,
            locked_until -> BigInt,
        }
    }
    diesel::allow_tables_to_appear_in_same_query!(
        users,
        sessions,
        refresh_tokens,
        api_keys,
        signing_keys,
        email_tokens,
        login_failures
    );
}

use schema::{api_keys, email_tokens, login_failures, refresh_tokens, sessions, signing_keys, users};

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
    pub role: String,
    pub email_verified_at: Option<i64>,
    pub verification_sent_at: Option<i64>,
    pub reset_sent_at: Option<i64>,
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

    /// Sets the role of the account with `email`; false when there is none.
    pub fn set_role_by_email(conn: &mut DbConnection, email: &str, role: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(users::table.filter(users::email.eq(email)))
            .set((users::role.eq(role), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// Sets the role of user `id`; false when there is no such user.
    pub fn set_role(conn: &mut DbConnection, id: &str, role: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(users::table.find(id))
            .set((users::role.eq(role), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// How many admins there are.
    pub fn count_admins(conn: &mut DbConnection) -> QueryResult<i64> {
        users::table.filter(users::role.eq("admin")).count().get_result(conn)
    }

    /// Marks the address verified (idempotent).
    pub fn mark_verified(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id).filter(users::email_verified_at.is_null()))
            .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
            .execute(conn)
            .map(|_| ())
    }

    /// Takes the verification-mail cooldown: true when a mail may be sent now (the address is
    /// unverified and none was sent in the last `cooldown_ms`).
    pub fn take_verification_slot(conn: &mut DbConnection, id: &str, now: i64, cooldown_ms: i64) -> QueryResult<bool> {
        let n = diesel::update(
            users::table.find(id).filter(users::email_verified_at.is_null()).filter(
                users::verification_sent_at
                    .is_null()
                    .or(users::verification_sent_at.le(now - cooldown_ms)),
            ),
        )
        .set(users::verification_sent_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Takes the reset-mail cooldown of the account with this address.
    pub fn take_reset_slot(conn: &mut DbConnection, id: &str, now: i64, cooldown_ms: i64) -> QueryResult<bool> {
        let n = diesel::update(
            users::table.find(id).filter(
                users::reset_sent_at
                    .is_null()
                    .or(users::reset_sent_at.le(now - cooldown_ms)),
            ),
        )
        .set(users::reset_sent_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Replaces the password hash.
    pub fn set_password(conn: &mut DbConnection, id: &str, hash: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::update(users::table.find(id))
            .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// Deletes the account; sessions, tokens and keys go with it (foreign keys cascade).
    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        // SQLite only cascades with foreign keys on; delete children explicitly so both agree.
        diesel::delete(email_tokens::table.filter(email_tokens::user_id.eq(id))).execute(conn)?;
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

/// Revokes every live session of a user (password reset); returns how many.
pub fn revoke_all_sessions(conn: &mut DbConnection, user_id: &str, reason: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
    .execute(conn)
}

/// Revokes every live session of a user but `keep` (password change); returns how many.
pub fn revoke_other_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    keep: &str,
    reason: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((sessions::revoked_at.eq(now), sessions::revoked_reason.eq(reason)))
    .execute(conn)
}

/// Removes sessions (with their refresh tokens) that ended before `before`.
pub fn purge_sessions(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    let ended = sessions::table
        .filter(sessions::expires_at.lt(before).or(sessions::revoked_at.lt(before)))
        .select(sessions::id);
    let tokens = diesel::delete(
        refresh_tokens::table.filter(
            refresh_tokens::session_id
                .eq_any(ended)
                .or(refresh_tokens::expires_at.lt(before)),
        ),
    )
    .execute(conn)?;
    let sessions =
        diesel::delete(sessions::table.filter(sessions::expires_at.lt(before).or(sessions::revoked_at.lt(before))))
            .execute(conn)?;
    Ok(tokens + sessions)
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

/// When a live (unrevoked, unexpired) session was signed in, or `None` when it is not live.
pub fn session_started(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<Option<i64>> {
    sessions::table
        .find(id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(sessions::created_at)
        .first::<i64>(conn)
        .optional()
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
    pub scopes: String,
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

    /// Replaces a key's stored private half (sealing a plaintext one).
    pub fn set_private_key(conn: &mut DbConnection, kid: &str, private_key: &str) -> QueryResult<()> {
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::private_key.eq(private_key))
            .execute(conn)
            .map(|_| ())
    }

    /// Removes keys past their expiry.
    pub fn purge_expired(conn: &mut DbConnection, now: i64) -> QueryResult<usize> {
        diesel::delete(signing_keys::table.filter(signing_keys::expires_at.le(now))).execute(conn)
    }
}

/// What a mailed token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the address (24 h).
    Verify,
    /// Sets a new password (1 h).
    Reset,
}

impl Purpose {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Reset => "reset",
        }
    }
}

/// Stores a mailed token (its hash).
pub fn insert_email_token(
    conn: &mut DbConnection,
    hash: &str,
    user_id: &str,
    purpose: Purpose,
    now: i64,
    expires_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::token_hash.eq(hash),
            email_tokens::user_id.eq(user_id),
            email_tokens::purpose.eq(purpose.as_str()),
            email_tokens::created_at.eq(now),
            email_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Uses a mailed token once: the user it belongs to when it was unused, unexpired and for
/// `purpose` (one conditional UPDATE, so two concurrent uses cannot both succeed).
pub fn consume_email_token(
    conn: &mut DbConnection,
    hash: &str,
    purpose: Purpose,
    now: i64,
) -> QueryResult<Option<String>> {
    let n = diesel::update(
        email_tokens::table
            .find(hash)
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(now)),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    email_tokens::table
        .find(hash)
        .select(email_tokens::user_id)
        .first(conn)
        .optional()
}

/// Whether a reset token could be used now (unused, unexpired), without using it.
pub fn reset_token_usable(conn: &mut DbConnection, hash: &str, now: i64) -> QueryResult<bool> {
    Ok(email_tokens::table
        .find(hash)
        .filter(email_tokens::purpose.eq(Purpose::Reset.as_str()))
        .filter(email_tokens::used_at.is_null())
        .filter(email_tokens::expires_at.gt(now))
        .select(email_tokens::user_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Spends every unused token of a user for `purpose` (after a reset, older links die).
pub fn spend_email_tokens(conn: &mut DbConnection, user_id: &str, purpose: Purpose, now: i64) -> QueryResult<()> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null()),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

/// Removes mailed tokens that expired before `before`.
pub fn purge_email_tokens(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(email_tokens::table.filter(email_tokens::expires_at.lt(before))).execute(conn)
}

/// Failed sign-ins of one address.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = login_failures)]
pub struct LoginFailureRow {
    pub email_hash: String,
    pub failures: i32,
    pub last_failure_at: i64,
    pub locked_until: i64,
}

impl LoginFailureRow {
    /// The row of an address.
    pub fn find(conn: &mut DbConnection, email_hash: &str) -> QueryResult<Option<LoginFailureRow>> {
        login_failures::table
            .find(email_hash)
            .select(LoginFailureRow::as_select())
            .first(conn)
            .optional()
    }

    /// Counts one failure: a new row, or one more on a row whose window is still open, or a
    /// restart at 1 when the last failure is older than `window_ms`. One upsert, so
    /// concurrent failures are all counted.
    pub fn record(conn: &mut DbConnection, email_hash: &str, now: i64, window_ms: i64) -> QueryResult<LoginFailureRow> {
        use diesel::{
            dsl::sql,
            sql_types::{BigInt, Integer},
            upsert::excluded,
        };
        let counted = || {
            sql::<Integer>("CASE WHEN login_failures.last_failure_at > ")
                .bind::<BigInt, _>(now - window_ms)
                .sql(" THEN login_failures.failures + 1 ELSE 1 END")
        };
        let row = (
            login_failures::email_hash.eq(email_hash),
            login_failures::failures.eq(1),
            login_failures::last_failure_at.eq(now),
            login_failures::locked_until.eq(0_i64),
        );
        portico_runtime::on_backend!(conn, |c| diesel::insert_into(login_failures::table)
            .values(row)
            .on_conflict(login_failures::email_hash)
            .do_update()
            .set((
                login_failures::failures.eq(counted()),
                login_failures::last_failure_at.eq(excluded(login_failures::last_failure_at)),
            ))
            .execute(c))?;
        login_failures::table
            .find(email_hash)
            .select(LoginFailureRow::as_select())
            .first(conn)
    }

    /// Locks the address until `until` (never shortening a longer lock).
    pub fn lock(conn: &mut DbConnection, email_hash: &str, until: i64) -> QueryResult<()> {
        diesel::update(
            login_failures::table
                .find(email_hash)
                .filter(login_failures::locked_until.lt(until)),
        )
        .set(login_failures::locked_until.eq(until))
        .execute(conn)
        .map(|_| ())
    }

    /// Forgets an address's failures (after a successful sign-in or a reset).
    pub fn clear(conn: &mut DbConnection, email_hash: &str) -> QueryResult<()> {
        diesel::delete(login_failures::table.find(email_hash))
            .execute(conn)
            .map(|_| ())
    }

    /// Removes rows whose window and lock are over.
    pub fn purge(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
        diesel::delete(
            login_failures::table
                .filter(login_failures::last_failure_at.lt(before))
                .filter(login_failures::locked_until.lt(before)),
        )
        .execute(conn)
    }
}

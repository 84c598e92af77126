//! The beta service's tables and the queries on them, written once for both backends.

use diesel::{expression_methods::AggregateExpressionMethods, prelude::*, upsert::excluded};
use portico_runtime::{db::DbConnection, on_backend};

use crate::domain::{InviteState, Level};

// `on_backend!` runs one statement on the backend's own connection: the MultiConnection
// cannot express `ON CONFLICT`, but both backends can (SQLite ≥ 3.24), so each upsert here
// is written once and compiled for each.

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        invite_codes (code) {
            code -> Text,
            access_level -> Integer,
            max_uses -> Integer,
            uses -> Integer,
            expires_at -> Nullable<BigInt>,
            active -> Bool,
            created_at -> BigInt,
            created_by -> Text,
        }
    }

    diesel::table! {
        beta_users (user_id) {
            user_id -> Text,
            access_level -> Integer,
            invite_code -> Text,
            joined_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        redemptions (user_id, code) {
            user_id -> Text,
            code -> Text,
            redeemed_at -> BigInt,
        }
    }

    diesel::table! {
        features (name) {
            name -> Text,
            min_level -> Integer,
            description -> Text,
        }
    }

    diesel::table! {
        analytics_events (id) {
            id -> BigInt,
            user_id -> Text,
            access_level -> Integer,
            feature -> Text,
            action -> Text,
            properties -> Text,
            occurred_at -> BigInt,
            received_at -> BigInt,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(invite_codes, beta_users, redemptions, features, analytics_events);
}

use schema::{analytics_events, beta_users, features, invite_codes, redemptions};

/// An invitation code row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = invite_codes)]
pub struct InviteCodeRow {
    pub code: String,
    pub access_level: i32,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: Option<i64>,
    pub active: bool,
    pub created_at: i64,
    pub created_by: String,
}

impl InviteCodeRow {
    /// The fields that decide whether it can be redeemed.
    pub fn state(&self) -> InviteState {
        InviteState {
            active: self.active,
            uses: self.uses,
            max_uses: self.max_uses,
            expires_at: self.expires_at,
        }
    }

    /// Its level (rows always hold a valid rank; the schema checks it).
    pub fn level(&self) -> Level {
        Level::from_rank(self.access_level).unwrap_or(Level::None)
    }

    /// Finds a code.
    pub fn find(conn: &mut DbConnection, code: &str) -> QueryResult<Option<InviteCodeRow>> {
        invite_codes::table
            .find(code)
            .select(InviteCodeRow::as_select())
            .first(conn)
            .optional()
    }

    /// Inserts a new code (unique violation when it exists).
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(invite_codes::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// Inserts the code unless one by that name exists (replicas seeding at once both succeed).
    pub fn insert_if_missing(&self, conn: &mut DbConnection) -> QueryResult<()> {
        on_backend!(conn, |c| diesel::insert_into(invite_codes::table)
            .values(self)
            .on_conflict(invite_codes::code)
            .do_nothing()
            .execute(c))?;
        Ok(())
    }

    /// Consumes one use if the code is still redeemable at `now`; false when it is not.
    /// The check and the increment are one statement, so concurrent joins can never
    /// consume more uses than the code has.
    pub fn consume_use(conn: &mut DbConnection, code: &str, now: i64) -> QueryResult<bool> {
        let updated = diesel::update(
            invite_codes::table
                .filter(invite_codes::code.eq(code))
                .filter(invite_codes::active.eq(true))
                .filter(invite_codes::uses.lt(invite_codes::max_uses))
                .filter(invite_codes::expires_at.is_null().or(invite_codes::expires_at.gt(now))),
        )
        .set(invite_codes::uses.eq(invite_codes::uses + 1))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// A page of codes, newest first, and the total.
    pub fn page(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<(Vec<InviteCodeRow>, i64)> {
        let rows = invite_codes::table
            .select(InviteCodeRow::as_select())
            .order((invite_codes::created_at.desc(), invite_codes::code.asc()))
            .limit(limit)
            .offset(offset)
            .load(conn)?;
        let total = invite_codes::table.count().get_result(conn)?;
        Ok((rows, total))
    }

    /// Applies an admin change; returns the row after it.
    pub fn update(
        conn: &mut DbConnection,
        code: &str,
        change: &InviteCodeChange,
    ) -> QueryResult<Option<InviteCodeRow>> {
        let target = invite_codes::table.filter(invite_codes::code.eq(code));
        if let Some(active) = change.active {
            diesel::update(target)
                .set(invite_codes::active.eq(active))
                .execute(conn)?;
        }
        if let Some(max_uses) = change.max_uses {
            diesel::update(target)
                .set(invite_codes::max_uses.eq(max_uses))
                .execute(conn)?;
        }
        if let Some(expires_at) = change.expires_at {
            diesel::update(target)
                .set(invite_codes::expires_at.eq(expires_at))
                .execute(conn)?;
        }
        InviteCodeRow::find(conn, code)
    }
}

/// An admin's change to a code; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct InviteCodeChange {
    pub active: Option<bool>,
    pub max_uses: Option<i32>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<i64>>,
}

/// A member of the beta program.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = beta_users)]
pub struct MemberRow {
    pub user_id: String,
    pub access_level: i32,
    pub invite_code: String,
    pub joined_at: i64,
    pub updated_at: i64,
}

impl MemberRow {
    /// The member's level.
    pub fn level(&self) -> Level {
        Level::from_rank(self.access_level).unwrap_or(Level::None)
    }

    /// Finds a member.
    pub fn find(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<MemberRow>> {
        beta_users::table
            .find(user_id)
            .select(MemberRow::as_select())
            .first(conn)
            .optional()
    }

    /// Makes `self.user_id` a member at `self.access_level` (given by `self.invite_code`), or
    /// raises an existing member to it; a member already at that level or above is left as
    /// they are. True when the level rose (or the member is new).
    ///
    /// One statement, `INSERT … ON CONFLICT (user_id) DO UPDATE … WHERE access_level <
    /// excluded.access_level`: the database decides against the row as committed, so two
    /// concurrent first joins both land (the second becomes an update) and a lower level never
    /// overwrites a higher one whatever the interleaving — together `GREATEST(stored, new)`.
    /// `joined_at` is only ever written by the insert.
    pub fn join(&self, conn: &mut DbConnection) -> QueryResult<bool> {
        // `FilterDsl` puts the WHERE on the DO UPDATE (the prelude's `filter` is for queries).
        use diesel::query_dsl::methods::FilterDsl;
        let changed = on_backend!(conn, |c| FilterDsl::filter(
            diesel::insert_into(beta_users::table)
                .values(self)
                .on_conflict(beta_users::user_id)
                .do_update()
                .set((
                    beta_users::access_level.eq(excluded(beta_users::access_level)),
                    beta_users::invite_code.eq(excluded(beta_users::invite_code)),
                    beta_users::updated_at.eq(excluded(beta_users::updated_at)),
                )),
            beta_users::access_level.lt(excluded(beta_users::access_level)),
        )
        .execute(c))?;
        Ok(changed == 1)
    }

    /// Sets a member's level as an admin chose it (up or down), making them a member when
    /// they are not (`self` is the row to insert then). One upsert, so two concurrent
    /// changes for a new member cannot fail on the primary key; the last one wins.
    pub fn set_by_admin(&self, conn: &mut DbConnection) -> QueryResult<()> {
        on_backend!(conn, |c| diesel::insert_into(beta_users::table)
            .values(self)
            .on_conflict(beta_users::user_id)
            .do_update()
            .set((
                beta_users::access_level.eq(excluded(beta_users::access_level)),
                beta_users::updated_at.eq(excluded(beta_users::updated_at)),
            ))
            .execute(c))?;
        Ok(())
    }

    /// A page of members, newest first, and the total.
    pub fn page(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<(Vec<MemberRow>, i64)> {
        let rows = beta_users::table
            .select(MemberRow::as_select())
            .order((beta_users::joined_at.desc(), beta_users::user_id.asc()))
            .limit(limit)
            .offset(offset)
            .load(conn)?;
        let total = beta_users::table.count().get_result(conn)?;
        Ok((rows, total))
    }
}

/// Records that a user redeemed a code; false (and nothing written) when they already had.
/// The `(user, code)` primary key decides, in the database: of two concurrent redemptions of
/// one code by one user exactly one inserts, the other waits for it and then does nothing,
/// which makes joining twice idempotent.
pub fn record_redemption(conn: &mut DbConnection, user_id: &str, code: &str, now: i64) -> QueryResult<bool> {
    let inserted = on_backend!(conn, |c| diesel::insert_into(redemptions::table)
        .values((
            redemptions::user_id.eq(user_id),
            redemptions::code.eq(code),
            redemptions::redeemed_at.eq(now),
        ))
        .on_conflict((redemptions::user_id, redemptions::code))
        .do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Deletes everything stored about `user_id` (account erasure): the membership, the
/// redemptions and the analytics events; returns the rows removed. Call inside a write
/// transaction so the erasure lands whole. The codes' use counts stay: the uses happened.
pub fn erase_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<u64> {
    let members = diesel::delete(beta_users::table.filter(beta_users::user_id.eq(user_id))).execute(conn)?;
    let redeemed = diesel::delete(redemptions::table.filter(redemptions::user_id.eq(user_id))).execute(conn)?;
    let events = diesel::delete(analytics_events::table.filter(analytics_events::user_id.eq(user_id))).execute(conn)?;
    Ok((members + redeemed + events) as u64)
}

/// A feature flag and the minimum level that sees it.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = features)]
pub struct FeatureRow {
    pub name: String,
    pub min_level: i32,
    pub description: String,
}

impl FeatureRow {
    /// The whole table, by name.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<FeatureRow>> {
        features::table
            .select(FeatureRow::as_select())
            .order(features::name.asc())
            .load(conn)
    }

    /// Replaces the whole table (call inside a transaction).
    pub fn replace_all(conn: &mut DbConnection, rows: &[FeatureRow]) -> QueryResult<()> {
        diesel::delete(features::table).execute(conn)?;
        for row in rows {
            diesel::insert_into(features::table).values(row).execute(conn)?;
        }
        Ok(())
    }
}

/// One stored analytics event.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = analytics_events)]
pub struct NewEvent {
    pub user_id: String,
    pub access_level: i32,
    pub feature: String,
    pub action: String,
    pub properties: String,
    pub occurred_at: i64,
    pub received_at: i64,
}

/// Stores a batch of events (call inside a transaction so a batch lands whole or not at all).
pub fn insert_events(conn: &mut DbConnection, events: &[NewEvent]) -> QueryResult<usize> {
    let mut n = 0;
    for e in events {
        n += diesel::insert_into(analytics_events::table).values(e).execute(conn)?;
    }
    Ok(n)
}

/// Per-feature totals in `[from, to)`: (feature, events, unique users).
pub fn feature_totals(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<(String, i64, i64)>> {
    use diesel::dsl::count_star;
    analytics_events::table
        .filter(analytics_events::occurred_at.ge(from))
        .filter(analytics_events::occurred_at.lt(to))
        .group_by(analytics_events::feature)
        .select((
            analytics_events::feature,
            count_star(),
            diesel::dsl::count(analytics_events::user_id).aggregate_distinct(),
        ))
        .order(analytics_events::feature.asc())
        .load(conn)
}

/// Per feature and level counts in `[from, to)`.
pub fn feature_level_counts(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<Vec<(String, i32, i64)>> {
    use diesel::dsl::count_star;
    analytics_events::table
        .filter(analytics_events::occurred_at.ge(from))
        .filter(analytics_events::occurred_at.lt(to))
        .group_by((analytics_events::feature, analytics_events::access_level))
        .select((analytics_events::feature, analytics_events::access_level, count_star()))
        .load(conn)
}

/// Events and distinct users overall in `[from, to)`.
pub fn overall_totals(conn: &mut DbConnection, from: i64, to: i64) -> QueryResult<(i64, i64)> {
    use diesel::dsl::count_star;
    analytics_events::table
        .filter(analytics_events::occurred_at.ge(from))
        .filter(analytics_events::occurred_at.lt(to))
        .select((
            count_star(),
            diesel::dsl::count(analytics_events::user_id).aggregate_distinct(),
        ))
        .first(conn)
}

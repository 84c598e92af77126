//! The workflow service's tables and the queries on them, written once for both backends.

use diesel::prelude::*;
use portico_runtime::db::DbConnection;

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        analyses (id) {
            id -> Text,
            user_id -> Text,
            name -> Nullable<Text>,
            content_hash -> Text,
            health_score -> Integer,
            grade -> Text,
            issue_count -> Integer,
            steps -> Integer,
            result -> Text,
            cached -> Bool,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        analysis_quota (user_id, window_start) {
            user_id -> Text,
            window_start -> BigInt,
            used -> Integer,
        }
    }
}

use schema::{analyses, analysis_quota};

/// One analysis in a user's history.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = analyses)]
pub struct AnalysisRow {
    pub id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub content_hash: String,
    pub health_score: i32,
    pub grade: String,
    pub issue_count: i32,
    pub steps: i32,
    /// [`crate::domain::Computed`] as JSON.
    pub result: String,
    pub cached: bool,
    pub created_at: i64,
}

/// A history entry without its findings.
#[derive(Clone, Debug, Queryable, Selectable, PartialEq)]
#[diesel(table_name = analyses)]
pub struct SummaryRow {
    pub id: String,
    pub name: Option<String>,
    pub health_score: i32,
    pub grade: String,
    pub issue_count: i32,
    pub steps: i32,
    pub cached: bool,
    pub created_at: i64,
}

impl AnalysisRow {
    /// Records an analysis.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(analyses::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// One of `user_id`'s analyses; another user's id reads as absent.
    pub fn find(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<AnalysisRow>> {
        analyses::table
            .filter(analyses::id.eq(id))
            .filter(analyses::user_id.eq(user_id))
            .select(AnalysisRow::as_select())
            .first(conn)
            .optional()
    }

    /// Deletes one of `user_id`'s analyses; false when there is none by that id.
    pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<bool> {
        let n = diesel::delete(
            analyses::table
                .filter(analyses::id.eq(id))
                .filter(analyses::user_id.eq(user_id)),
        )
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Up to `limit` of `user_id`'s analyses older than `before` (all when `None`), newest first.
    pub fn page(
        conn: &mut DbConnection,
        user_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<SummaryRow>> {
        let mut query = analyses::table
            .filter(analyses::user_id.eq(user_id))
            .select(SummaryRow::as_select())
            .order(analyses::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(analyses::id.lt(before.to_string()));
        }
        query.load(conn)
    }
}

/// Analyses used by `user_id` in the window starting at `window_start`.
pub fn quota_used(conn: &mut DbConnection, user_id: &str, window_start: i64) -> QueryResult<i32> {
    Ok(analysis_quota::table
        .find((user_id, window_start))
        .select(analysis_quota::used)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// Takes one analysis from `user_id`'s quota for the window if fewer than `limit` are used, and
/// returns the count used after it; `None` when the quota is spent. Call inside a write
/// transaction: the check and the increment are one conditional UPDATE, so concurrent callers
/// can never use more than `limit` between them.
pub fn take_quota(conn: &mut DbConnection, user_id: &str, window_start: i64, limit: i32) -> QueryResult<Option<i32>> {
    let row = analysis_quota::table.find((user_id, window_start));
    // A window opened by a concurrent first analysis after our UPDATE found none is not a
    // spent quota: take from it (it is committed, so the next UPDATE sees it).
    let mut existing = None;
    for _ in 0..3 {
        let updated = diesel::update(row.filter(analysis_quota::used.lt(limit)))
            .set(analysis_quota::used.eq(analysis_quota::used + 1))
            .execute(conn)?;
        if updated == 1 {
            return quota_used(conn, user_id, window_start).map(Some);
        }
        existing = row.select(analysis_quota::used).first::<i32>(conn).optional()?;
        if existing.is_none_or(|used| used >= limit) {
            break;
        }
    }
    let exists = existing.is_some();
    if exists || limit < 1 {
        return Ok(None);
    }
    // The user's first analysis this hour: forget past windows, open this one. A concurrent
    // first analysis makes this insert a unique violation; the caller retries.
    diesel::delete(
        analysis_quota::table
            .filter(analysis_quota::user_id.eq(user_id))
            .filter(analysis_quota::window_start.lt(window_start)),
    )
    .execute(conn)?;
    diesel::insert_into(analysis_quota::table)
        .values((
            analysis_quota::user_id.eq(user_id),
            analysis_quota::window_start.eq(window_start),
            analysis_quota::used.eq(1),
        ))
        .execute(conn)?;
    Ok(Some(1))
}

/// Deletes every analysis and every quota row of `user_id` and returns how many rows went (0
/// when there were none). Call inside a write transaction, so an erasure is all or nothing.
pub fn erase_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<u64> {
    let analyses = diesel::delete(analyses::table.filter(analyses::user_id.eq(user_id))).execute(conn)?;
    let quota = diesel::delete(analysis_quota::table.filter(analysis_quota::user_id.eq(user_id))).execute(conn)?;
    Ok(u64::try_from(analyses.saturating_add(quota)).unwrap_or(u64::MAX))
}

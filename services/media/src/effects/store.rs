//! The effects tables and the queries on them, written once for both backends: the catalogue,
//! the runs (moved only by conditional UPDATEs from a non-terminal status), and each user's
//! allowance (taken and given back atomically in the database).

use diesel::{dsl::case_when, prelude::*};
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the effects tables (see `migrations/`).
pub mod schema {
    diesel::table! {
        effects (id) {
            id -> Text,
            name -> Text,
            description -> Text,
            webapp_id -> Text,
            image_node_id -> Text,
            image_field_name -> Text,
            parameters -> Text,
            min_level -> Text,
            enabled -> Bool,
            region -> Nullable<Text>,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        effect_runs (id) {
            id -> Text,
            user_id -> Text,
            effect_id -> Text,
            effect_name -> Text,
            media_id -> Text,
            webapp_id -> Text,
            image_node -> Text,
            nodes -> Text,
            status -> Text,
            step -> Text,
            progress -> Nullable<Integer>,
            error -> Nullable<Text>,
            result_media_id -> Nullable<Text>,
            provider_file -> Nullable<Text>,
            task_id -> Nullable<Text>,
            start_sent -> Integer,
            attempts -> Integer,
            polls -> Integer,
            next_at -> BigInt,
            claimed_until -> BigInt,
            deadline_at -> BigInt,
            created_at -> BigInt,
            updated_at -> BigInt,
            finished_at -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        effect_allowance (user_id) {
            user_id -> Text,
            window_start -> BigInt,
            used -> Integer,
            active -> Integer,
        }
    }
}

use schema::{effect_allowance, effect_runs, effects};

/// Statuses a run can still leave.
const LIVE: [&str; 2] = ["queued", "running"];

/// One effect of the catalogue (also as the catalogue cache holds it).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = effects)]
pub struct EffectRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub webapp_id: String,
    pub image_node_id: String,
    pub image_field_name: String,
    /// The parameters, a JSON array of `portico_effects::definition::Parameter`.
    pub parameters: String,
    /// The least beta level that sees it (`BASIC`).
    pub min_level: String,
    pub enabled: bool,
    pub region: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an admin's edit changes (`None`: unchanged; `region: Some(None)` clears it).
#[derive(Clone, Debug, Default, AsChangeset)]
#[diesel(table_name = effects)]
pub struct EffectChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub webapp_id: Option<String>,
    pub image_node_id: Option<String>,
    pub image_field_name: Option<String>,
    pub parameters: Option<String>,
    pub min_level: Option<String>,
    pub enabled: Option<bool>,
    pub region: Option<Option<String>>,
    pub updated_at: i64,
}

impl EffectRow {
    /// Adds an effect.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(effects::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// One effect.
    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EffectRow>> {
        effects::table
            .find(id)
            .select(EffectRow::as_select())
            .first(conn)
            .optional()
    }

    /// Every effect, oldest first.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<EffectRow>> {
        effects::table
            .order(effects::id.asc())
            .select(EffectRow::as_select())
            .load(conn)
    }

    /// Applies an edit; the edited row, `None` when there is no such effect.
    pub fn update(conn: &mut DbConnection, id: &str, change: &EffectChange) -> QueryResult<Option<EffectRow>> {
        let n = diesel::update(effects::table.find(id)).set(change).execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        Self::find(conn, id)
    }

    /// Removes an effect; false when there was none. Its runs keep what they send.
    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        Ok(diesel::delete(effects::table.find(id)).execute(conn)? == 1)
    }
}

/// One run.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = effect_runs)]
pub struct RunRow {
    pub id: String,
    pub user_id: String,
    pub effect_id: String,
    pub effect_name: String,
    pub media_id: String,
    pub webapp_id: String,
    /// The node that takes the photo, JSON `{nodeId, fieldName}`.
    pub image_node: String,
    /// The parameters' node values, a JSON array of `portico_effects::params::NodeValue`.
    pub nodes: String,
    pub status: String,
    pub step: String,
    pub progress: Option<i32>,
    pub error: Option<String>,
    pub result_media_id: Option<String>,
    /// What the provider called the uploaded photo.
    pub provider_file: Option<String>,
    pub task_id: Option<String>,
    pub start_sent: i32,
    /// Failed steps so far, against the run's budget.
    pub attempts: i32,
    /// Status reads that found the task unfinished.
    pub polls: i32,
    pub next_at: i64,
    pub claimed_until: i64,
    pub deadline_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// What a step changes on a live run.
#[derive(Clone, Debug, Default, AsChangeset)]
#[diesel(table_name = effect_runs)]
pub struct RunChange {
    pub status: Option<String>,
    pub step: Option<String>,
    pub progress: Option<Option<i32>>,
    pub provider_file: Option<String>,
    pub task_id: Option<String>,
    pub start_sent: Option<i32>,
    pub attempts: Option<i32>,
    pub polls: Option<i32>,
    pub next_at: Option<i64>,
    pub claimed_until: Option<i64>,
    pub updated_at: i64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    /// `succeeded` or `failed`.
    pub status: &'static str,
    pub error: Option<String>,
    pub result_media_id: Option<String>,
    pub at: i64,
}

impl RunRow {
    /// Records a new run (inside the transaction that took its allowance).
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(effect_runs::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// One of `user_id`'s runs; another user's id reads as absent.
    pub fn find(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<RunRow>> {
        effect_runs::table
            .filter(effect_runs::id.eq(id))
            .filter(effect_runs::user_id.eq(user_id))
            .select(RunRow::as_select())
            .first(conn)
            .optional()
    }

    /// A run by id alone (the run job and the webhook, which proves itself by the token).
    pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RunRow>> {
        effect_runs::table
            .find(id)
            .select(RunRow::as_select())
            .first(conn)
            .optional()
    }

    /// `user_id`'s runs newest first, those older than `before` (a run id) when given, at most
    /// `limit`.
    pub fn page(conn: &mut DbConnection, user_id: &str, before: Option<&str>, limit: i64) -> QueryResult<Vec<RunRow>> {
        let mut q = effect_runs::table
            .filter(effect_runs::user_id.eq(user_id))
            .order(effect_runs::id.desc())
            .limit(limit)
            .select(RunRow::as_select())
            .into_boxed();
        if let Some(before) = before {
            q = q.filter(effect_runs::id.lt(before.to_string()));
        }
        q.load(conn)
    }

    /// Live runs whose next step is due at `now` and that no replica holds, soonest first.
    pub fn due(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<String>> {
        effect_runs::table
            .filter(effect_runs::status.eq_any(LIVE))
            .filter(effect_runs::next_at.le(now))
            .filter(effect_runs::claimed_until.le(now))
            .order(effect_runs::next_at.asc())
            .limit(limit)
            .select(effect_runs::id)
            .load(conn)
    }

    /// Takes the lease on a due run until `until`; false when another replica took it first
    /// or it is no longer live.
    pub fn claim(conn: &mut DbConnection, id: &str, now: i64, until: i64) -> QueryResult<bool> {
        let n = diesel::update(
            effect_runs::table
                .filter(effect_runs::id.eq(id))
                .filter(effect_runs::status.eq_any(LIVE))
                .filter(effect_runs::claimed_until.le(now)),
        )
        .set(effect_runs::claimed_until.eq(until))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Applies a step's change to a live run; false when the run is over (cancelled meanwhile).
    pub fn advance(conn: &mut DbConnection, id: &str, change: &RunChange) -> QueryResult<bool> {
        let n = diesel::update(
            effect_runs::table
                .filter(effect_runs::id.eq(id))
                .filter(effect_runs::status.eq_any(LIVE)),
        )
        .set(change)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Ends a live run and gives its owner's concurrency slot back, in the caller's write
    /// transaction; false when it had already ended (only one ending ever lands).
    pub fn finish(conn: &mut DbConnection, id: &str, ending: &Ending) -> QueryResult<bool> {
        let Some(user_id) = effect_runs::table
            .filter(effect_runs::id.eq(id))
            .filter(effect_runs::status.eq_any(LIVE))
            .select(effect_runs::user_id)
            .first::<String>(conn)
            .optional()?
        else {
            return Ok(false);
        };
        let n = diesel::update(
            effect_runs::table
                .filter(effect_runs::id.eq(id))
                .filter(effect_runs::status.eq_any(LIVE)),
        )
        .set((
            effect_runs::status.eq(ending.status),
            effect_runs::step.eq("done"),
            effect_runs::error.eq(&ending.error),
            effect_runs::result_media_id.eq(&ending.result_media_id),
            effect_runs::finished_at.eq(ending.at),
            effect_runs::updated_at.eq(ending.at),
            effect_runs::claimed_until.eq(0),
        ))
        .execute(conn)?;
        if n == 1 {
            diesel::update(
                effect_allowance::table
                    .filter(effect_allowance::user_id.eq(&user_id))
                    .filter(effect_allowance::active.gt(0)),
            )
            .set(effect_allowance::active.eq(effect_allowance::active - 1))
            .execute(conn)?;
        }
        Ok(n == 1)
    }
}

/// Why a run could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// The user has `concurrent` runs unfinished.
    Concurrent,
    /// The user started `per_hour` runs in this window.
    Hourly,
}

/// Takes one run from `user_id`'s allowance for the hour starting at `window_start`: one more
/// unfinished run (under `concurrent`) and one more this hour (under `per_hour`, counted afresh
/// in a new hour). Call inside the write transaction that inserts the run: the user's row is
/// made first if missing (an upsert that does nothing when it exists), then the check and the
/// increment are one conditional UPDATE, so concurrent starts never pass a limit between them.
pub fn take_allowance(
    conn: &mut DbConnection,
    user_id: &str,
    window_start: i64,
    concurrent: i32,
    per_hour: i32,
) -> QueryResult<Result<(), Spent>> {
    use effect_allowance::dsl as a;
    let fresh = (
        a::user_id.eq(user_id),
        a::window_start.eq(window_start),
        a::used.eq(0),
        a::active.eq(0),
    );
    on_backend!(conn, |c| diesel::insert_into(a::effect_allowance)
        .values(fresh)
        .on_conflict(a::user_id)
        .do_nothing()
        .execute(c))?;
    let n = diesel::update(
        a::effect_allowance
            .filter(a::user_id.eq(user_id))
            .filter(a::active.lt(concurrent))
            .filter(a::window_start.ne(window_start).or(a::used.lt(per_hour))),
    )
    .set((
        a::used.eq(case_when(a::window_start.eq(window_start), a::used + 1).otherwise(1)),
        a::window_start.eq(window_start),
        a::active.eq(a::active + 1),
    ))
    .execute(conn)?;
    if n == 1 {
        return Ok(Ok(()));
    }
    let active = a::effect_allowance
        .find(user_id)
        .select(a::active)
        .first::<i32>(conn)
        .optional()?;
    Ok(Err(if active.is_some_and(|n| n < concurrent) {
        Spent::Hourly
    } else {
        Spent::Concurrent
    }))
}

/// `user_id`'s allowance now: `(window_start, used, active)`, or none before their first run.
pub fn allowance(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<(i64, i32, i32)>> {
    use effect_allowance::dsl as a;
    a::effect_allowance
        .find(user_id)
        .select((a::window_start, a::used, a::active))
        .first(conn)
        .optional()
}

/// Deletes `user_id`'s runs and allowance (account erasure); the rows removed. Result media
/// are the user's media and go with them.
pub fn erase_user_rows(conn: &mut DbConnection, user_id: &str) -> QueryResult<u64> {
    let runs = diesel::delete(effect_runs::table.filter(effect_runs::user_id.eq(user_id))).execute(conn)?;
    let allowance =
        diesel::delete(effect_allowance::table.filter(effect_allowance::user_id.eq(user_id))).execute(conn)?;
    Ok((runs + allowance) as u64)
}

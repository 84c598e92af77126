//! The monitoring tables and the queries on them, written once for both backends. Counting
//! is done by the database: a group's count is one conditional UPDATE per event, an event id
//! is recorded once (a retrying SDK counts once), a user once per group, and a resolved group
//! reopens with one conditional UPDATE that exactly one recurring event wins.

use diesel::prelude::*;
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        projects (id) {
            id -> BigInt,
            name -> Text,
            public_key -> Text,
            is_default -> Bool,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        error_groups (id) {
            id -> Text,
            project_id -> BigInt,
            hash -> Text,
            title -> Text,
            culprit -> Nullable<Text>,
            level -> Text,
            status -> Text,
            regressed -> Bool,
            times_seen -> BigInt,
            first_seen -> BigInt,
            last_seen -> BigInt,
            first_release -> Nullable<Text>,
            last_release -> Nullable<Text>,
            last_event_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        error_group_users (group_id, user_key) {
            group_id -> Text,
            user_key -> Text,
        }
    }

    diesel::table! {
        error_events (project_id, id) {
            project_id -> BigInt,
            id -> Text,
            group_id -> Text,
            received_at -> BigInt,
            occurred_at -> BigInt,
            level -> Text,
            release -> Nullable<Text>,
            environment -> Nullable<Text>,
            user_key -> Nullable<Text>,
            payload -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(projects, error_groups, error_group_users, error_events);
}

use schema::{error_events, error_group_users, error_groups, projects};

/// A project.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub public_key: String,
    pub is_default: bool,
    pub created_at: i64,
}

impl ProjectRow {
    /// Records a project under the next free id (inside a write transaction; on PostgreSQL a
    /// concurrent creation taking the same id fails on the primary key and the caller retries).
    pub fn create(
        conn: &mut DbConnection,
        name: &str,
        public_key: &str,
        is_default: bool,
        now: i64,
    ) -> QueryResult<ProjectRow> {
        let last: Option<i64> = projects::table.select(diesel::dsl::max(projects::id)).first(conn)?;
        let row = ProjectRow {
            id: last.unwrap_or(0) + 1,
            name: name.to_string(),
            public_key: public_key.to_string(),
            is_default,
            created_at: now,
        };
        diesel::insert_into(projects::table).values(&row).execute(conn)?;
        Ok(row)
    }

    /// One project.
    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ProjectRow>> {
        projects::table.find(id).first(conn).optional()
    }

    /// The default project (native events without a project), if made.
    pub fn default_project(conn: &mut DbConnection) -> QueryResult<Option<ProjectRow>> {
        projects::table
            .filter(projects::is_default.eq(true))
            .order(projects::id.asc())
            .first(conn)
            .optional()
    }

    /// Every project, oldest first.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<ProjectRow>> {
        projects::table.order(projects::id.asc()).load(conn)
    }
}

/// A group.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = error_groups)]
pub struct GroupRow {
    pub id: String,
    pub project_id: i64,
    pub hash: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: String,
    pub status: String,
    pub regressed: bool,
    pub times_seen: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub last_event_id: Option<String>,
}

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub project_id: i64,
    pub event_id: String,
    pub hash: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub user_key: Option<String>,
    pub occurred_at: i64,
    pub received_at: i64,
    pub payload: String,
}

/// What recording an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The event's group.
    pub group_id: String,
    /// The event id was seen before: nothing was counted.
    pub duplicate: bool,
    /// The event made its group.
    pub new_group: bool,
    /// The event reopened a resolved group.
    pub regression: bool,
}

/// Records one event (inside a write transaction): the group is made if new, the event kept
/// once, and then counted. An existing group (the usual case) costs a read, the event's
/// insert and one UPDATE; a resolved one a second, conditional UPDATE that reopens it.
pub fn record(conn: &mut DbConnection, event: &NewEvent, new_group_id: &str) -> QueryResult<Recorded> {
    // The per-event statements run on the concrete connection: there diesel's statement
    // cache keeps them prepared, where through the multi-connection they are prepared again
    // for every event (7.5 % of an event's CPU on SQLite).
    let find = |conn: &mut DbConnection| {
        on_backend!(conn, |c| error_groups::table
            .filter(error_groups::project_id.eq(event.project_id))
            .filter(error_groups::hash.eq(&event.hash))
            .select((error_groups::id, error_groups::status))
            .first::<(String, String)>(c)
            .optional())
    };
    let (found, new_group) = match find(conn)? {
        Some(found) => (found, false),
        None => {
            let inserted = on_backend!(conn, |c| diesel::insert_into(error_groups::table)
                .values(GroupRow {
                    id: new_group_id.to_string(),
                    project_id: event.project_id,
                    hash: event.hash.clone(),
                    title: event.title.clone(),
                    culprit: event.culprit.clone(),
                    level: event.level.clone(),
                    status: "open".into(),
                    regressed: false,
                    times_seen: 0,
                    first_seen: event.received_at,
                    last_seen: event.received_at,
                    first_release: event.release.clone(),
                    last_release: event.release.clone(),
                    last_event_id: None,
                })
                .on_conflict_do_nothing()
                .execute(c))?;
            // A concurrent first event may have made it (PostgreSQL): read whichever stands.
            (find(conn)?.ok_or(diesel::result::Error::NotFound)?, inserted == 1)
        }
    };
    let (group_id, status) = found;
    let kept = on_backend!(conn, |c| diesel::insert_into(error_events::table)
        .values((
            error_events::project_id.eq(event.project_id),
            error_events::id.eq(&event.event_id),
            error_events::group_id.eq(&group_id),
            error_events::received_at.eq(event.received_at),
            error_events::occurred_at.eq(event.occurred_at),
            error_events::level.eq(&event.level),
            error_events::release.eq(&event.release),
            error_events::environment.eq(&event.environment),
            error_events::user_key.eq(&event.user_key),
            error_events::payload.eq(&event.payload),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    if kept == 0 {
        return Ok(Recorded {
            group_id,
            duplicate: true,
            new_group: false,
            regression: false,
        });
    }
    let group = error_groups::table.find(&group_id);
    let counted = (
        error_groups::times_seen.eq(error_groups::times_seen + 1),
        error_groups::last_seen.eq(event.received_at),
        error_groups::title.eq(&event.title),
        error_groups::culprit.eq(&event.culprit),
        error_groups::level.eq(&event.level),
        error_groups::last_event_id.eq(&event.event_id),
    );
    match &event.release {
        Some(release) => on_backend!(conn, |c| diesel::update(group)
            .set((counted, error_groups::last_release.eq(release)))
            .execute(c))?,
        None => on_backend!(conn, |c| diesel::update(group).set(counted).execute(c))?,
    };
    // Conditional, so of concurrent recurrences exactly one reopens it.
    let regression = status == "resolved"
        && on_backend!(conn, |c| diesel::update(
            group.filter(error_groups::status.eq("resolved"))
        )
        .set((error_groups::status.eq("open"), error_groups::regressed.eq(true)))
        .execute(c))?
            == 1;
    if let Some(user) = &event.user_key {
        on_backend!(conn, |c| diesel::insert_into(error_group_users::table)
            .values((
                error_group_users::group_id.eq(&group_id),
                error_group_users::user_key.eq(user)
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(Recorded {
        group_id,
        duplicate: false,
        new_group,
        regression,
    })
}

/// Which groups a listing wants.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    pub project_id: Option<i64>,
    pub status: Option<String>,
    pub release: Option<String>,
    /// Strictly after this `(last_seen, id)` in the order (most recent first).
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// A page of groups, most recently seen first.
pub fn groups(conn: &mut DbConnection, filter: &GroupFilter) -> QueryResult<Vec<GroupRow>> {
    let mut q = error_groups::table.into_boxed();
    if let Some(p) = filter.project_id {
        q = q.filter(error_groups::project_id.eq(p));
    }
    if let Some(s) = &filter.status {
        q = q.filter(error_groups::status.eq(s.clone()));
    }
    if let Some(r) = &filter.release {
        q = q.filter(
            error_groups::first_release
                .eq(r.clone())
                .or(error_groups::last_release.eq(r.clone())),
        );
    }
    if let Some((seen, id)) = &filter.after {
        q = q.filter(
            error_groups::last_seen
                .lt(*seen)
                .or(error_groups::last_seen.eq(*seen).and(error_groups::id.lt(id.clone()))),
        );
    }
    q.order((error_groups::last_seen.desc(), error_groups::id.desc()))
        .limit(filter.limit)
        .load(conn)
}

/// How many users each of `ids` affected.
pub fn users_affected(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(String, i64)>> {
    error_group_users::table
        .filter(error_group_users::group_id.eq_any(ids))
        .group_by(error_group_users::group_id)
        .select((error_group_users::group_id, diesel::dsl::count_star()))
        .load(conn)
}

/// One group.
pub fn group(conn: &mut DbConnection, id: &str) -> QueryResult<Option<GroupRow>> {
    error_groups::table.find(id).first(conn).optional()
}

/// A group's latest event still kept: its id and payload.
pub fn latest_event(conn: &mut DbConnection, group_id: &str) -> QueryResult<Option<(String, String)>> {
    error_events::table
        .filter(error_events::group_id.eq(group_id))
        .order(error_events::received_at.desc())
        .select((error_events::id, error_events::payload))
        .first(conn)
        .optional()
}

/// Sets a group's status (resolving clears the regression mark); false when there is no
/// such group.
pub fn set_status(conn: &mut DbConnection, id: &str, status: &str) -> QueryResult<bool> {
    let group = error_groups::table.find(id);
    let changed = if status == "open" {
        diesel::update(group)
            .set(error_groups::status.eq(status))
            .execute(conn)?
    } else {
        diesel::update(group)
            .set((error_groups::status.eq(status), error_groups::regressed.eq(false)))
            .execute(conn)?
    };
    Ok(changed == 1)
}

/// Removes events received before `before` (retention); the groups and their counts stay.
pub fn purge_events(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(error_events::table.filter(error_events::received_at.lt(before))).execute(conn)
}

/// Erases what events recorded of one user: their events and their place in the groups'
/// affected users (counts stay: they hold no personal data).
pub fn erase_user(conn: &mut DbConnection, user_key: &str) -> QueryResult<usize> {
    let events = diesel::delete(error_events::table.filter(error_events::user_key.eq(user_key))).execute(conn)?;
    let seen =
        diesel::delete(error_group_users::table.filter(error_group_users::user_key.eq(user_key))).execute(conn)?;
    Ok(events + seen)
}

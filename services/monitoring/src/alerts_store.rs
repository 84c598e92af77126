//! The alerting tables: rules, alerts, health-probe samples and the service's own secrets.
//! Every lifecycle change is one conditional statement on the alert's current state, and at
//! most one alert per fingerprint is open (a partial unique index), so evaluators that race
//! change an alert once and notify once.

use diesel::prelude::*;
use portico_runtime::{db::DbConnection, on_backend};

use crate::store::schema::error_events;

/// Diesel's view of the schema (see `migrations/…_alerts`).
pub mod schema {
    diesel::table! {
        alert_rules (id) {
            id -> Text,
            name -> Text,
            metric -> Text,
            vital -> Nullable<Text>,
            project_id -> Nullable<BigInt>,
            route -> Nullable<Text>,
            condition -> Text,
            threshold -> Double,
            window_seconds -> BigInt,
            for_seconds -> BigInt,
            severity -> Text,
            repeat_interval_seconds -> BigInt,
            notify -> Text,
            enabled -> Bool,
            created_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        seeds (name) {
            name -> Text,
            seeded_at -> BigInt,
        }
    }

    diesel::table! {
        alerts (id) {
            id -> Text,
            rule_id -> Nullable<Text>,
            source -> Text,
            fingerprint -> Text,
            name -> Text,
            severity -> Text,
            labels -> Text,
            annotations -> Text,
            status -> Text,
            value -> Nullable<Double>,
            notify -> Text,
            pending_since -> BigInt,
            fired_at -> Nullable<BigInt>,
            acknowledged_at -> Nullable<BigInt>,
            acknowledged_by -> Nullable<Text>,
            resolved_at -> Nullable<BigInt>,
            resolved_by -> Nullable<Text>,
            last_notified_at -> Nullable<BigInt>,
            notifications -> Integer,
            expires_at -> Nullable<BigInt>,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        probe_samples (target, checked_at) {
            target -> Text,
            checked_at -> BigInt,
            healthy -> Bool,
            latency_ms -> Double,
            version -> Nullable<Text>,
            detail -> Nullable<Text>,
            cache_hits -> BigInt,
            cache_lookups -> BigInt,
            memory_percent -> Nullable<Double>,
        }
    }

    diesel::table! {
        secrets (name) {
            name -> Text,
            value -> Text,
        }
    }
}

use schema::{alert_rules, alerts, probe_samples, secrets, seeds};

/// A stored rule (`notify` is a JSON array).
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_rules, treat_none_as_null = true)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub metric: String,
    pub vital: Option<String>,
    pub project_id: Option<i64>,
    pub route: Option<String>,
    pub condition: String,
    pub threshold: f64,
    pub window_seconds: i64,
    pub for_seconds: i64,
    pub severity: String,
    pub repeat_interval_seconds: i64,
    pub notify: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored alert (`labels`, `annotations` are JSON objects, `notify` a JSON array).
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    pub id: String,
    pub rule_id: Option<String>,
    pub source: String,
    pub fingerprint: String,
    pub name: String,
    pub severity: String,
    pub labels: String,
    pub annotations: String,
    pub status: String,
    pub value: Option<f64>,
    pub notify: String,
    pub pending_since: i64,
    pub fired_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub last_notified_at: Option<i64>,
    pub notifications: i32,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

/// One probe of one target.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = probe_samples)]
pub struct ProbeSample {
    pub target: String,
    pub checked_at: i64,
    pub healthy: bool,
    pub latency_ms: f64,
    pub version: Option<String>,
    pub detail: Option<String>,
    pub cache_hits: i64,
    pub cache_lookups: i64,
    /// A service's memory as a percentage of what it may use (none for dependencies).
    pub memory_percent: Option<f64>,
}

/// Records `name` as seeded: true the first time (the caller then seeds).
pub fn seed_once(conn: &mut DbConnection, name: &str, now: i64) -> QueryResult<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(seeds::table)
        .values((seeds::name.eq(name), seeds::seeded_at.eq(now)))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Adds a rule.
pub fn insert_rule(conn: &mut DbConnection, row: &RuleRow) -> QueryResult<()> {
    diesel::insert_into(alert_rules::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Replaces a rule's fields (its id and creation time stay): false when there is no such rule.
pub fn update_rule(conn: &mut DbConnection, row: &RuleRow) -> QueryResult<bool> {
    let n = diesel::update(alert_rules::table.find(&row.id))
        .set((
            alert_rules::name.eq(&row.name),
            alert_rules::metric.eq(&row.metric),
            alert_rules::vital.eq(&row.vital),
            alert_rules::project_id.eq(row.project_id),
            alert_rules::route.eq(&row.route),
            alert_rules::condition.eq(&row.condition),
            alert_rules::threshold.eq(row.threshold),
            alert_rules::window_seconds.eq(row.window_seconds),
            alert_rules::for_seconds.eq(row.for_seconds),
            alert_rules::severity.eq(&row.severity),
            alert_rules::repeat_interval_seconds.eq(row.repeat_interval_seconds),
            alert_rules::notify.eq(&row.notify),
            alert_rules::enabled.eq(row.enabled),
            alert_rules::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// Deletes a rule and drops its pending alerts; its firing ones resolve at `now` (they can no
/// longer clear by themselves). False when there was no such rule.
pub fn delete_rule(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::delete(alert_rules::table.find(id)).execute(conn)?;
    diesel::delete(
        alerts::table
            .filter(alerts::rule_id.eq(id))
            .filter(alerts::status.eq("pending")),
    )
    .execute(conn)?;
    diesel::update(
        alerts::table
            .filter(alerts::rule_id.eq(id))
            .filter(alerts::status.ne("resolved")),
    )
    .set((
        alerts::status.eq("resolved"),
        alerts::resolved_at.eq(now),
        alerts::resolved_by.eq("rule deleted"),
        alerts::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// One rule.
pub fn rule(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RuleRow>> {
    alert_rules::table.find(id).first(conn).optional()
}

/// Every rule, oldest first (`enabled_only` for the evaluator).
pub fn rules(conn: &mut DbConnection, enabled_only: bool) -> QueryResult<Vec<RuleRow>> {
    let mut q = alert_rules::table.into_boxed();
    if enabled_only {
        q = q.filter(alert_rules::enabled.eq(true));
    }
    q.order((alert_rules::created_at.asc(), alert_rules::id.asc()))
        .load(conn)
}

/// The open (not resolved) alerts of a rule.
pub fn open_of_rule(conn: &mut DbConnection, rule_id: &str) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::rule_id.eq(rule_id))
        .filter(alerts::status.ne("resolved"))
        .load(conn)
}

/// The open alert of a fingerprint.
pub fn open_by_fingerprint(conn: &mut DbConnection, fingerprint: &str) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .filter(alerts::fingerprint.eq(fingerprint))
        .filter(alerts::status.ne("resolved"))
        .first(conn)
        .optional()
}

/// Opens an alert unless its fingerprint already has an open one: true when this one opened.
pub fn open(conn: &mut DbConnection, row: &AlertRow) -> QueryResult<bool> {
    let n = on_backend!(conn, |c| diesel::insert_into(alerts::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Pending → firing, notified now: true when this call made the change.
pub fn fire(conn: &mut DbConnection, id: &str, value: Option<f64>, now: i64) -> QueryResult<bool> {
    let n = diesel::update(alerts::table.find(id).filter(alerts::status.eq("pending")))
        .set((
            alerts::status.eq("firing"),
            alerts::fired_at.eq(now),
            alerts::last_notified_at.eq(now),
            alerts::notifications.eq(alerts::notifications + 1),
            alerts::value.eq(value),
            alerts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// A repeat notice of a firing alert last notified at `last`: true when this call took it.
pub fn repeat(conn: &mut DbConnection, id: &str, last: i64, value: Option<f64>, now: i64) -> QueryResult<bool> {
    let n = diesel::update(
        alerts::table
            .find(id)
            .filter(alerts::status.eq("firing"))
            .filter(alerts::last_notified_at.eq(last)),
    )
    .set((
        alerts::last_notified_at.eq(now),
        alerts::notifications.eq(alerts::notifications + 1),
        alerts::value.eq(value),
        alerts::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Firing → acknowledged by `by`: true when this call made the change.
pub fn acknowledge(conn: &mut DbConnection, id: &str, by: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::update(alerts::table.find(id).filter(alerts::status.eq("firing")))
        .set((
            alerts::status.eq("acknowledged"),
            alerts::acknowledged_at.eq(now),
            alerts::acknowledged_by.eq(by),
            alerts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// Any open state → resolved by `by`: true when this call made the change.
pub fn resolve(conn: &mut DbConnection, id: &str, by: &str, now: i64) -> QueryResult<bool> {
    let n = diesel::update(alerts::table.find(id).filter(alerts::status.ne("resolved")))
        .set((
            alerts::status.eq("resolved"),
            alerts::resolved_at.eq(now),
            alerts::resolved_by.eq(by),
            alerts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// A pending alert that cleared before firing goes unannounced: true when this call removed it.
pub fn forget(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let n = diesel::delete(alerts::table.find(id).filter(alerts::status.eq("pending"))).execute(conn)?;
    Ok(n > 0)
}

/// An external alert seen again: new annotations, value and expiry.
pub fn refresh(
    conn: &mut DbConnection,
    id: &str,
    annotations: &str,
    value: Option<f64>,
    expires_at: Option<i64>,
    now: i64,
) -> QueryResult<()> {
    diesel::update(alerts::table.find(id).filter(alerts::status.ne("resolved")))
        .set((
            alerts::annotations.eq(annotations),
            alerts::value.eq(value),
            alerts::expires_at.eq(expires_at),
            alerts::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Open external alerts whose expiry passed (they resolve: nothing renewed them).
pub fn expired(conn: &mut DbConnection, now: i64) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::status.ne("resolved"))
        .filter(alerts::expires_at.le(now))
        .load(conn)
}

/// Open alerts of a source (to cap what clients may open).
pub fn open_count(conn: &mut DbConnection, source: &str) -> QueryResult<i64> {
    alerts::table
        .filter(alerts::source.eq(source))
        .filter(alerts::status.ne("resolved"))
        .count()
        .get_result(conn)
}

/// One alert.
pub fn alert(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AlertRow>> {
    alerts::table.find(id).first(conn).optional()
}

/// Alerts newest first, `status` filtering, after the cursor `before` (an alert id).
pub fn alerts(
    conn: &mut DbConnection,
    status: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut q = alerts::table.into_boxed();
    if let Some(s) = status {
        q = q.filter(alerts::status.eq(s.to_string()));
    }
    if let Some(b) = before {
        q = q.filter(alerts::id.lt(b.to_string()));
    }
    q.order(alerts::id.desc()).limit(limit).load(conn)
}

/// Records probe samples.
pub fn add_samples(conn: &mut DbConnection, rows: &[ProbeSample]) -> QueryResult<()> {
    for row in rows {
        on_backend!(conn, |c| diesel::insert_into(probe_samples::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// Every sample since `from`, per target oldest first.
pub fn samples_since(conn: &mut DbConnection, from: i64) -> QueryResult<Vec<ProbeSample>> {
    probe_samples::table
        .filter(probe_samples::checked_at.ge(from))
        .order((probe_samples::target.asc(), probe_samples::checked_at.asc()))
        .load(conn)
}

/// Drops samples older than `before`.
pub fn purge_samples(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(probe_samples::table.filter(probe_samples::checked_at.lt(before))).execute(conn)
}

/// Error events received since `from`, per project.
pub fn error_counts(conn: &mut DbConnection, from: i64) -> QueryResult<Vec<(i64, i64)>> {
    error_events::table
        .filter(error_events::received_at.ge(from))
        .group_by(error_events::project_id)
        .select((error_events::project_id, diesel::dsl::count_star()))
        .load(conn)
}

/// The secret `name`, made from `fresh` the first time (every replica then reads the same).
pub fn secret(conn: &mut DbConnection, name: &str, fresh: &str) -> QueryResult<String> {
    on_backend!(conn, |c| diesel::insert_into(secrets::table)
        .values((secrets::name.eq(name), secrets::value.eq(fresh)))
        .on_conflict_do_nothing()
        .execute(c))?;
    secrets::table.find(name).select(secrets::value).first(conn)
}

//! Alerting: rules, the evaluator that walks each rule's series through the lifecycle, the
//! notices it sends (mail through the outbox, Alertmanager-shaped webhooks), acknowledging and
//! resolving (signed in, or through a signed link), and alerts that come from outside
//! (Alertmanager, clients reporting a performance problem).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use portico_runtime::{
    db::{DbConnection, now_ms},
    outbox,
};
use portico_sketch::Histogram;
use serde_json::{Value, json};

use crate::{
    Monitoring,
    alerts_store::{self as store, AlertRow, ProbeSample, RuleRow},
    analytics_store,
    domain::alert::{self, Action, Draft, LinkError, Links, Open, Rule, Severity, Status, Step, Target},
    error::MonitoringError,
};

/// The outbox topic of alert webhooks.
pub const WEBHOOK_TOPIC: &str = "alert_webhook";
/// What `seeds` records once the default rules are in.
const DEFAULTS_SEED: &str = "default_alert_rules";
/// How long a link in a notice works.
const LINK_TTL_SECS: i64 = 7 * 86_400;
/// The secret the links are signed with, when configuration gives none.
const LINK_SECRET: &str = "alert_link_key";
/// An external alert nobody renews resolves after this long (Alertmanager's `resolve_timeout`).
pub const RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;
/// Most open client-reported alerts; further reports join one catch-all alert.
const MAX_CLIENT_ALERTS: i64 = 50;
/// Probe samples are kept this long.
pub const SAMPLE_RETENTION_MS: i64 = 86_400_000;
/// Most alerts per page.
pub const MAX_PAGE: u32 = 100;
/// Longest label or annotation value kept from outside.
const MAX_LABEL: usize = 1_024;
/// Most labels or annotations kept from outside.
const MAX_LABELS: usize = 64;

/// How alerting runs.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// `PORTICO_ALERT_EVAL_INTERVAL_SECS` (15; 0 turns the evaluator off): the
    /// `alert_evaluation` job's period.
    pub eval_interval: std::time::Duration,
    /// `PORTICO_MONITORING_PROBE_INTERVAL_SECS` (30; 0 turns the probes off): the
    /// `health_probes` job's period.
    pub probe_interval: std::time::Duration,
    /// `PORTICO_ALERT_NOTIFY`: where the seeded rules and client-reported alerts notify
    /// (comma-separated e-mail addresses and webhook URLs; none by default).
    pub notify: Vec<Target>,
    /// `PORTICO_ALERT_WEBHOOKS_ALLOW_PRIVATE` (false; `portico dev` sets it): webhooks may be
    /// `http://` and reach loopback and private addresses.
    pub allow_private_webhooks: bool,
    /// `PORTICO_ALERT_LINK_SECRET`: signs the links in notices; when unset a key is made once
    /// and kept in the database, shared by every replica.
    pub link_secret: Option<portico_runtime::config::Secret<String>>,
    /// The services probed (name, gRPC URL): `PORTICO_MONITORING_PROBE_SERVICES` (default
    /// every service behind the gateway but this one; empty: none), at their `PORTICO_*_URL`.
    pub probes: Vec<(String, String)>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            eval_interval: std::time::Duration::from_secs(15),
            probe_interval: std::time::Duration::from_secs(30),
            notify: Vec::new(),
            allow_private_webhooks: false,
            link_secret: None,
            probes: Vec::new(),
        }
    }
}

/// A stored rule, read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub rule: Rule,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields of a rule to change (`None`: keep).
#[derive(Clone, Debug, Default)]
pub struct RulePatch {
    pub name: Option<String>,
    pub metric: Option<String>,
    pub vital: Option<String>,
    pub project_id: Option<i64>,
    pub route: Option<String>,
    pub condition: Option<String>,
    pub threshold: Option<f64>,
    pub window_seconds: Option<i64>,
    pub for_seconds: Option<i64>,
    pub severity: Option<String>,
    pub repeat_interval_seconds: Option<i64>,
    pub notify: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// One alert as Alertmanager's webhook (version 4) carries it.
#[derive(Clone, Debug, Default)]
pub struct ExternalAlert {
    pub firing: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// 0: open-ended.
    pub ends_at_ms: i64,
    /// Empty: computed from the labels.
    pub fingerprint: String,
}

/// A client-reported performance problem (`POST /v1/analytics/performance/alerts`).
#[derive(Clone, Debug, Default)]
pub struct ClientAlert {
    pub metric: String,
    pub page: String,
    pub value: Option<f64>,
    pub message: String,
    pub severity: String,
    pub user_id: String,
}

/// What a pass of the evaluator did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub pended: usize,
    pub fired: usize,
    pub repeated: usize,
    pub resolved: usize,
    pub forgotten: usize,
}

fn rule_row(id: &str, r: &Rule, created_at: i64, updated_at: i64) -> RuleRow {
    RuleRow {
        id: id.to_string(),
        name: r.name.clone(),
        metric: r.metric.as_str().into(),
        vital: r.vital.map(|v| v.as_str().to_string()),
        project_id: r.project_id,
        route: r.route.clone(),
        condition: r.condition.as_str().into(),
        threshold: r.threshold,
        window_seconds: r.window_seconds,
        for_seconds: r.for_seconds,
        severity: r.severity.as_str().into(),
        repeat_interval_seconds: r.repeat_interval_seconds,
        notify: targets_json(&r.notify),
        enabled: r.enabled,
        created_at,
        updated_at,
    }
}

fn targets_json(targets: &[Target]) -> String {
    Value::from(targets.iter().map(Target::as_str).collect::<Vec<_>>()).to_string()
}

fn notify_strings(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(json).unwrap_or_default()
}

/// The draft a stored row is (stored rows were valid when written).
fn draft_of(row: &RuleRow) -> Draft {
    Draft {
        name: row.name.clone(),
        metric: row.metric.clone(),
        vital: row.vital.clone().unwrap_or_default(),
        project_id: row.project_id.unwrap_or(0),
        route: row.route.clone().unwrap_or_default(),
        condition: row.condition.clone(),
        threshold: row.threshold,
        window_seconds: row.window_seconds,
        for_seconds: row.for_seconds,
        severity: row.severity.clone(),
        repeat_interval_seconds: row.repeat_interval_seconds,
        notify: notify_strings(&row.notify),
        enabled: row.enabled,
    }
}

fn map_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

/// An alert's labels or annotations, read back.
pub fn map_of(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Keeps at most [`MAX_LABELS`] entries, each cut to [`MAX_LABEL`] characters.
fn bounded(map: BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter()
        .take(MAX_LABELS)
        .map(|(k, v)| (k.chars().take(MAX_LABEL).collect(), v.chars().take(MAX_LABEL).collect()))
        .collect()
}

/// What a notice says: the alert, what happened, and how to act on it.
enum Notice {
    Firing,
    Repeat,
    Resolved,
}

impl Monitoring {
    fn rule_of(&self, row: &RuleRow) -> Result<Rule, MonitoringError> {
        // Stored rules were valid when written; private webhooks stored while allowed stay.
        Rule::validate(draft_of(row), true).map_err(|bad| {
            MonitoringError::Db(portico_runtime::db::DbError::Query(
                diesel::result::Error::DeserializationError(
                    format!("stored rule {} is invalid: {bad:?}", row.id).into(),
                ),
            ))
        })
    }

    fn stored(&self, row: &RuleRow) -> Result<StoredRule, MonitoringError> {
        Ok(StoredRule {
            id: row.id.clone(),
            rule: self.rule_of(row)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Seeds the default rules once per database (a default an admin deleted stays deleted).
    pub async fn seed_default_rules(&self) -> Result<bool, MonitoringError> {
        let rules = alert::default_rules(&self.alert_settings().notify);
        self.db()
            .write(move |conn| {
                let now = now_ms();
                if !store::seed_once(conn, DEFAULTS_SEED, now)? {
                    return Ok::<_, MonitoringError>(false);
                }
                for (i, rule) in rules.iter().enumerate() {
                    // Distinct creation times keep the seeded order.
                    let at = now + i as i64;
                    store::insert_rule(conn, &rule_row(&uuid::Uuid::now_v7().to_string(), rule, at, at))?;
                }
                Ok(true)
            })
            .await
    }

    /// Adds a rule.
    pub async fn create_rule(&self, draft: Draft) -> Result<StoredRule, MonitoringError> {
        let rule =
            Rule::validate(draft, self.alert_settings().allow_private_webhooks).map_err(MonitoringError::Invalid)?;
        let now = now_ms();
        let row = rule_row(&uuid::Uuid::now_v7().to_string(), &rule, now, now);
        let stored = StoredRule {
            id: row.id.clone(),
            rule,
            created_at: now,
            updated_at: now,
        };
        self.db()
            .write(move |conn| Ok::<_, MonitoringError>(store::insert_rule(conn, &row)?))
            .await?;
        Ok(stored)
    }

    /// Every rule, oldest first.
    pub async fn rules(&self) -> Result<Vec<StoredRule>, MonitoringError> {
        let rows = self
            .db()
            .run(|conn| Ok::<_, MonitoringError>(store::rules(conn, false)?))
            .await?;
        rows.iter().map(|r| self.stored(r)).collect()
    }

    /// One rule.
    pub async fn rule(&self, id: &str) -> Result<StoredRule, MonitoringError> {
        let id = id.to_string();
        let row = self
            .db()
            .run(move |conn| Ok::<_, MonitoringError>(store::rule(conn, &id)?))
            .await?
            .ok_or(MonitoringError::NotFound("alert rule"))?;
        self.stored(&row)
    }

    /// Changes the given fields of a rule (read, merged, checked and written in one write
    /// transaction, so concurrent patches of different fields both land).
    pub async fn update_rule(&self, id: &str, patch: RulePatch) -> Result<StoredRule, MonitoringError> {
        let id = id.to_string();
        let allow_private = self.alert_settings().allow_private_webhooks;
        let row = self
            .db()
            .write(move |conn| {
                let row = store::rule(conn, &id)?.ok_or(MonitoringError::NotFound("alert rule"))?;
                let mut d = draft_of(&row);
                let p = patch;
                macro_rules! take {
                    ($($f:ident),*) => { $(if let Some(v) = p.$f { d.$f = v; })* };
                }
                take!(
                    name,
                    metric,
                    vital,
                    project_id,
                    route,
                    condition,
                    threshold,
                    window_seconds,
                    for_seconds,
                    severity,
                    repeat_interval_seconds,
                    notify,
                    enabled
                );
                let rule = Rule::validate(d, allow_private).map_err(MonitoringError::Invalid)?;
                let updated = rule_row(&row.id, &rule, row.created_at, now_ms().max(row.updated_at));
                store::update_rule(conn, &updated)?;
                Ok::<_, MonitoringError>(updated)
            })
            .await?;
        self.stored(&row)
    }

    /// Deletes a rule; its open alerts end with it.
    pub async fn delete_rule(&self, id: &str) -> Result<(), MonitoringError> {
        let id = id.to_string();
        let found = self
            .db()
            .write(move |conn| Ok::<_, MonitoringError>(store::delete_rule(conn, &id, now_ms())?))
            .await?;
        if found {
            Ok(())
        } else {
            Err(MonitoringError::NotFound("alert rule"))
        }
    }

    /// A page of alerts, newest first.
    pub async fn alerts(
        &self,
        status: Option<Status>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AlertRow>, Option<String>), MonitoringError> {
        let before = cursor.filter(|c| !c.is_empty()).map(str::to_string);
        if before.as_deref().is_some_and(|c| uuid::Uuid::parse_str(c).is_err()) {
            return Err(MonitoringError::Invalid(vec![(
                "cursor".into(),
                "is not a cursor this API gave".into(),
            )]));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        self.db()
            .run(move |conn| {
                let mut rows = store::alerts(
                    conn,
                    status.map(Status::as_str),
                    before.as_deref(),
                    i64::from(limit) + 1,
                )?;
                let more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                let next = more.then(|| rows.last().map(|a| a.id.clone())).flatten();
                Ok::<_, MonitoringError>((rows, next))
            })
            .await
    }

    /// One alert.
    pub async fn alert(&self, id: &str) -> Result<AlertRow, MonitoringError> {
        let id = id.to_string();
        self.db()
            .run(move |conn| Ok::<_, MonitoringError>(store::alert(conn, &id)?))
            .await?
            .ok_or(MonitoringError::NotFound("alert"))
    }

    /// The link signer, its key from configuration or made once and kept in the database.
    async fn links(&self) -> Result<Arc<Links>, MonitoringError> {
        self.link_signer()
            .get_or_try_init(|| async {
                if let Some(secret) = &self.alert_settings().link_secret {
                    return Ok(Arc::new(Links::new(secret.expose().as_bytes())));
                }
                let fresh = hex::encode(rand::random::<[u8; 32]>());
                let key = self
                    .db()
                    .write(move |conn| Ok::<_, MonitoringError>(store::secret(conn, LINK_SECRET, &fresh)?))
                    .await?;
                Ok(Arc::new(Links::new(key.as_bytes())))
            })
            .await
            .cloned()
    }

    /// Checks a link token for `action` on alert `id`.
    pub async fn check_link(&self, id: &str, action: Action, token: &str) -> Result<(), MonitoringError> {
        match self.links().await?.verify(token, id, action, now_ms() / 1000) {
            Ok(()) => Ok(()),
            Err(LinkError::Invalid) => Err(MonitoringError::Link("the link is not valid for this alert and action")),
            Err(LinkError::Expired) => Err(MonitoringError::Link(
                "the link has expired; act on the alert signed in",
            )),
        }
    }

    /// Acknowledges a firing alert (no more repeats). Acknowledging twice is a no-op; a
    /// pending or resolved alert cannot be acknowledged.
    pub async fn acknowledge(&self, id: &str, by: &str) -> Result<AlertRow, MonitoringError> {
        let (id, by) = (id.to_string(), by.to_string());
        self.db()
            .write(move |conn| {
                let now = now_ms();
                store::acknowledge(conn, &id, &by, now)?;
                let row = store::alert(conn, &id)?.ok_or(MonitoringError::NotFound("alert"))?;
                match Status::parse(&row.status) {
                    Some(Status::Acknowledged) => Ok(row),
                    Some(Status::Pending) => Err(MonitoringError::Conflict(
                        "the alert is pending: it can be acknowledged once it fires",
                    )),
                    _ => Err(MonitoringError::Conflict("the alert is resolved")),
                }
            })
            .await
    }

    /// Resolves an alert by hand (a rule's alert whose condition still holds opens again on a
    /// later evaluation). Resolving twice is a no-op; a resolve of a fired alert is announced.
    pub async fn resolve(&self, id: &str, by: &str) -> Result<AlertRow, MonitoringError> {
        let (id, by) = (id.to_string(), by.to_string());
        let me = self.clone();
        let links = self.links().await?;
        let row = self
            .db()
            .write(move |conn| {
                let now = now_ms();
                let changed = store::resolve(conn, &id, &by, now)?;
                let row = store::alert(conn, &id)?.ok_or(MonitoringError::NotFound("alert"))?;
                if changed && row.fired_at.is_some() {
                    let targets = me.targets_of(conn, &row)?;
                    me.notify(conn, &links, &row, Notice::Resolved, &targets)?;
                }
                Ok::<_, MonitoringError>(row)
            })
            .await?;
        self.outbox().notify();
        Ok(row)
    }

    /// Where an alert's notices go: its rule's current targets, else what it was opened with.
    fn targets_of(&self, conn: &mut DbConnection, row: &AlertRow) -> Result<Vec<Target>, MonitoringError> {
        let stored = match &row.rule_id {
            Some(rule_id) => store::rule(conn, rule_id)?.map(|r| r.notify),
            None => None,
        };
        // Stored targets were checked when written.
        Ok(notify_strings(stored.as_deref().unwrap_or(&row.notify))
            .iter()
            .filter_map(|t| Target::parse(t, true).ok())
            .collect())
    }

    /// Queues the notices of `row` to `targets` (inside the transaction that changed it).
    fn notify(
        &self,
        conn: &mut DbConnection,
        links: &Links,
        row: &AlertRow,
        notice: Notice,
        targets: &[Target],
    ) -> Result<(), MonitoringError> {
        if targets.is_empty() {
            return Ok(());
        }
        let base = self.public_url().trim_end_matches('/').to_string();
        let expires = now_ms() / 1000 + LINK_TTL_SECS;
        let link = |action: Action| {
            format!(
                "{base}/v1/monitoring/alerts/{}/{}?token={}",
                row.id,
                action.as_str(),
                links.sign(&row.id, action, expires)
            )
        };
        let labels = map_of(&row.labels);
        let annotations = map_of(&row.annotations);
        let (tag, state) = match notice {
            Notice::Firing => ("FIRING", "is firing"),
            Notice::Repeat => ("FIRING, reminder", "is still firing"),
            Notice::Resolved => ("RESOLVED", "is resolved"),
        };
        let mut text = format!("{} {state} ({}).\n\n", row.name, row.severity);
        if let Some(summary) = annotations.get("summary").or_else(|| annotations.get("description")) {
            text.push_str(&format!("{summary}\n"));
        }
        if let Some(v) = row.value {
            text.push_str(&format!("Value: {v}\n"));
        }
        text.push_str(&format!("Since: {}\n", rfc3339(row.pending_since)));
        let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!("Labels: {}\n\n", shown.join(", ")));
        if !matches!(notice, Notice::Resolved) {
            text.push_str(&format!(
                "Acknowledge (stops reminders): {}\nResolve: {}\n\n",
                link(Action::Acknowledge),
                link(Action::Resolve)
            ));
        }
        text.push_str(&format!("Alert: {base}/v1/monitoring/alerts/{}\n", row.id));
        let subject = format!("[{tag}] {} ({})", row.name, row.severity);
        let status = if matches!(notice, Notice::Resolved) {
            "resolved"
        } else {
            "firing"
        };
        for target in targets {
            match target {
                Target::Email(to) => {
                    portico_mail::enqueue(
                        conn,
                        &portico_mail::Mail {
                            to: to.clone(),
                            subject: subject.clone(),
                            text: text.clone(),
                        },
                    )?;
                }
                Target::Webhook(url) => {
                    let body = alertmanager_payload(&base, row, status, &labels, &annotations);
                    let payload = json!({"url": url, "body": body}).to_string();
                    outbox::enqueue(conn, WEBHOOK_TOPIC, &payload)?;
                }
            }
        }
        Ok(())
    }

    /// One pass of the evaluator at `now` (milliseconds; tests pass a clock of their own):
    /// every enabled rule's series walked through the lifecycle, external alerts past their
    /// expiry resolved.
    pub async fn evaluate_at(&self, now: i64) -> Result<Pass, MonitoringError> {
        let rows = self
            .db()
            .run(|conn| Ok::<_, MonitoringError>(store::rules(conn, true)?))
            .await?;
        let links = self.links().await?;
        let mut pass = Pass::default();
        for row in rows {
            let rule = self.rule_of(&row)?;
            let series = self.observe(&rule, now).await?;
            let (me, links) = (self.clone(), links.clone());
            let rule_id = row.id.clone();
            let done = self
                .db()
                .write(move |conn| me.apply(conn, &links, &rule_id, &rule, &series, now))
                .await?;
            pass.pended += done.pended;
            pass.fired += done.fired;
            pass.repeated += done.repeated;
            pass.resolved += done.resolved;
            pass.forgotten += done.forgotten;
        }
        let me = self.clone();
        pass.resolved += self
            .db()
            .write(move |conn| {
                let mut n = 0;
                for row in store::expired(conn, now)? {
                    if store::resolve(conn, &row.id, "expired", now)? {
                        n += 1;
                        let targets = me.targets_of(conn, &row)?;
                        if row.fired_at.is_some() {
                            me.notify(conn, &links, &row, Notice::Resolved, &targets)?;
                        }
                    }
                }
                Ok::<_, MonitoringError>(n)
            })
            .await?;
        if pass.fired + pass.repeated + pass.resolved > 0 {
            self.outbox().notify();
        }
        for (what, n) in [
            ("pending", pass.pended),
            ("firing", pass.fired),
            ("repeat", pass.repeated),
            ("resolved", pass.resolved),
        ] {
            if n > 0 {
                metrics::counter!("portico_alert_transitions_total", "to" => what).increment(n as u64);
            }
        }
        Ok(pass)
    }

    /// Applies one rule's observations (inside one write transaction).
    fn apply(
        &self,
        conn: &mut DbConnection,
        links: &Links,
        rule_id: &str,
        rule: &Rule,
        series: &[(BTreeMap<String, String>, Option<f64>)],
        now: i64,
    ) -> Result<Pass, MonitoringError> {
        let open: HashMap<String, AlertRow> = store::open_of_rule(conn, rule_id)?
            .into_iter()
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        let (for_ms, repeat_ms) = (rule.for_seconds * 1000, rule.repeat_interval_seconds * 1000);
        let mut seen = HashSet::new();
        let mut pass = Pass::default();
        let mut observations: Vec<(BTreeMap<String, String>, Option<f64>, bool)> = series
            .iter()
            .map(|(extra, value)| {
                let mut labels = rule.labels();
                labels.extend(extra.clone());
                let breaching = value.is_some_and(|v| rule.condition.breaches(v, rule.threshold));
                (labels, *value, breaching)
            })
            .collect();
        // Open alerts whose series has no data now have cleared.
        let observed: HashSet<String> = observations
            .iter()
            .map(|(l, ..)| alert::fingerprint(rule_id, l))
            .collect();
        for a in open.values() {
            if !observed.contains(&a.fingerprint) {
                observations.push((map_of(&a.labels), None, false));
            }
        }
        for (labels, value, breaching) in observations {
            let fp = alert::fingerprint(rule_id, &labels);
            if !seen.insert(fp.clone()) {
                continue;
            }
            let current = open.get(&fp);
            let state = current.and_then(|a| {
                Some(Open {
                    status: Status::parse(&a.status)?,
                    pending_since: a.pending_since,
                    last_notified_at: a.last_notified_at,
                })
            });
            match (alert::step(state, breaching, for_ms, repeat_ms, now), current) {
                (Step::Stay, _) => {}
                (step @ (Step::Pend | Step::Fire), None) => {
                    let firing = step == Step::Fire;
                    let row = AlertRow {
                        id: uuid::Uuid::now_v7().to_string(),
                        rule_id: Some(rule_id.to_string()),
                        source: "rule".into(),
                        fingerprint: fp,
                        name: rule.name.clone(),
                        severity: rule.severity.as_str().into(),
                        labels: map_json(&labels),
                        annotations: map_json(&BTreeMap::from([("summary".to_string(), rule.describe())])),
                        status: if firing { "firing" } else { "pending" }.into(),
                        value,
                        notify: targets_json(&rule.notify),
                        pending_since: now,
                        fired_at: firing.then_some(now),
                        acknowledged_at: None,
                        acknowledged_by: None,
                        resolved_at: None,
                        resolved_by: None,
                        last_notified_at: firing.then_some(now),
                        notifications: i32::from(firing),
                        expires_at: None,
                        updated_at: now,
                    };
                    if store::open(conn, &row)? {
                        if firing {
                            pass.fired += 1;
                            self.notify(conn, links, &row, Notice::Firing, &rule.notify)?;
                        } else {
                            pass.pended += 1;
                        }
                    }
                }
                (Step::Fire, Some(a)) => {
                    if store::fire(conn, &a.id, value, now)? {
                        pass.fired += 1;
                        let row = AlertRow { value, ..a.clone() };
                        self.notify(conn, links, &row, Notice::Firing, &rule.notify)?;
                    }
                }
                (Step::Repeat, Some(a)) => {
                    let last = a.last_notified_at.unwrap_or(a.pending_since);
                    if store::repeat(conn, &a.id, last, value, now)? {
                        pass.repeated += 1;
                        let row = AlertRow { value, ..a.clone() };
                        self.notify(conn, links, &row, Notice::Repeat, &rule.notify)?;
                    }
                }
                (Step::Resolve, Some(a)) => {
                    if store::resolve(conn, &a.id, "cleared", now)? {
                        pass.resolved += 1;
                        self.notify(conn, links, a, Notice::Resolved, &rule.notify)?;
                    }
                }
                (Step::Forget, Some(a)) => {
                    if store::forget(conn, &a.id)? {
                        pass.forgotten += 1;
                    }
                }
                (Step::Repeat | Step::Resolve | Step::Forget, None) | (Step::Pend, Some(_)) => {}
            }
        }
        Ok(pass)
    }

    /// A rule's series at `now`: extra labels and the value (`None`: no data, which clears).
    async fn observe(
        &self,
        rule: &Rule,
        now: i64,
    ) -> Result<Vec<(BTreeMap<String, String>, Option<f64>)>, MonitoringError> {
        use crate::domain::alert::Metric;
        let from = now - rule.window_seconds * 1000;
        let none = BTreeMap::new;
        match rule.metric {
            Metric::VitalP75 => {
                let Some(vital) = rule.vital else { return Ok(vec![]) };
                let minute = analytics_store::MINUTE_MS;
                let buckets = self
                    .db()
                    .run(move |conn| {
                        Ok::<_, MonitoringError>(analytics_store::vital_histograms(
                            conn,
                            from / minute * minute,
                            now + 1,
                        )?)
                    })
                    .await?;
                let histogram = Histogram::new(
                    buckets
                        .iter()
                        .filter(|(n, ..)| n == vital.as_str())
                        .map(|(_, _, b, c)| (*b, *c as u64))
                        .collect(),
                );
                let value = (histogram.count() > 0).then(|| histogram.quantile(0.75));
                Ok(vec![(none(), value)])
            }
            Metric::ErrorEvents => {
                let counts = self
                    .db()
                    .run(move |conn| Ok::<_, MonitoringError>(store::error_counts(conn, from)?))
                    .await?;
                let series = match rule.project_id {
                    // One project: a quiet window is a count of zero (the alert clears).
                    Some(p) => vec![(
                        none(),
                        Some(counts.iter().find(|(id, _)| *id == p).map_or(0.0, |(_, n)| *n as f64)),
                    )],
                    None => counts
                        .iter()
                        .map(|(p, n)| {
                            (
                                BTreeMap::from([("project".to_string(), p.to_string())]),
                                Some(*n as f64),
                            )
                        })
                        .collect(),
                };
                Ok(series)
            }
            Metric::ServiceDown | Metric::CacheHitRate | Metric::MemoryPercent => {
                let samples = self
                    .db()
                    .run(move |conn| Ok::<_, MonitoringError>(store::samples_since(conn, from)?))
                    .await?;
                Ok(probe_series(rule.metric, &samples))
            }
            Metric::ApiP95Ms | Metric::ApiErrorRate => {
                let health = self.api_health(from, now + 1, rule.route.clone()).await?;
                let value = health.map(|(p95, rate)| if rule.metric == Metric::ApiP95Ms { p95 } else { rate });
                Ok(vec![(none(), value)])
            }
        }
    }

    /// Maps Alertmanager's webhook (version 4) onto alerts: firing ones open (or refresh) an
    /// alert per fingerprint, resolved ones resolve it. Alertmanager sent its own notices, so
    /// these alerts notify nobody here; they land in the same inbox. Answers how many alerts
    /// were opened and resolved.
    pub async fn receive_alertmanager(&self, alerts: Vec<ExternalAlert>) -> Result<(usize, usize), MonitoringError> {
        let mut bad = Vec::new();
        for (i, a) in alerts.iter().enumerate() {
            if a.labels.get("alertname").is_none_or(|n| n.trim().is_empty()) {
                bad.push((format!("alerts[{i}].labels.alertname"), "is required".to_string()));
            }
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        self.db()
            .write(move |conn| {
                let now = now_ms();
                let (mut opened, mut resolved) = (0, 0);
                for a in alerts {
                    let labels = bounded(a.labels);
                    let fp = if a.fingerprint.is_empty() || a.fingerprint.len() > 64 {
                        alert::fingerprint("alertmanager", &labels)
                    } else {
                        format!("am:{}", a.fingerprint)
                    };
                    let current = store::open_by_fingerprint(conn, &fp)?;
                    if !a.firing {
                        if let Some(c) = current
                            && store::resolve(conn, &c.id, "alertmanager", now)?
                        {
                            resolved += 1;
                        }
                        continue;
                    }
                    let annotations = map_json(&bounded(a.annotations));
                    let expires = (a.ends_at_ms > now).then_some(a.ends_at_ms);
                    match current {
                        Some(c) => store::refresh(conn, &c.id, &annotations, None, expires, now)?,
                        None => {
                            let started = if a.starts_at_ms > 0 {
                                a.starts_at_ms.min(now)
                            } else {
                                now
                            };
                            let row =
                                external_row("alertmanager", fp, &labels, annotations, None, started, expires, now);
                            if store::open(conn, &row)? {
                                opened += 1;
                            }
                        }
                    }
                }
                Ok::<_, MonitoringError>((opened, resolved))
            })
            .await
    }

    /// A client-reported performance problem, raised as a firing alert (one per metric and
    /// page; repeated reports refresh it) that notifies the configured targets and resolves
    /// itself when nobody reports it for five minutes.
    pub async fn report_client_alert(&self, a: ClientAlert) -> Result<AlertRow, MonitoringError> {
        let mut bad = Vec::new();
        let metric = a.metric.trim().to_string();
        if metric.is_empty() || metric.len() > 64 {
            bad.push(("metric".to_string(), "must be 1 to 64 characters".to_string()));
        }
        if a.page.chars().count() > 512 {
            bad.push(("page".into(), "at most 512 characters".into()));
        }
        if a.message.trim().is_empty() || a.message.chars().count() > 1_000 {
            bad.push(("message".into(), "must be 1 to 1000 characters".into()));
        }
        if a.value.is_some_and(|v| !v.is_finite()) {
            bad.push(("value".into(), "must be a finite number".into()));
        }
        let severity = match a.severity.as_str() {
            "" => Severity::Critical,
            s => Severity::parse(s).unwrap_or_else(|| {
                bad.push(("severity".into(), "must be warning or critical".into()));
                Severity::Critical
            }),
        };
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        let targets = self.alert_settings().notify.clone();
        let me = self.clone();
        let links = self.links().await?;
        let row = self
            .db()
            .write(move |conn| {
                let now = now_ms();
                let page = if store::open_count(conn, "client")? >= MAX_CLIENT_ALERTS {
                    "(other pages)".to_string()
                } else {
                    a.page.clone()
                };
                let labels = BTreeMap::from([
                    ("alertname".to_string(), "client_performance".to_string()),
                    ("metric".to_string(), metric.clone()),
                    ("page".to_string(), page),
                    ("severity".to_string(), severity.as_str().to_string()),
                ]);
                let fp = alert::fingerprint("client", &labels);
                let mut annotations = BTreeMap::from([("summary".to_string(), a.message.trim().to_string())]);
                if !a.user_id.is_empty() {
                    annotations.insert("reportedBy".into(), a.user_id.clone());
                }
                let annotations = map_json(&annotations);
                let expires = Some(now + RESOLVE_TIMEOUT_MS);
                if let Some(c) = store::open_by_fingerprint(conn, &fp)? {
                    store::refresh(conn, &c.id, &annotations, a.value, expires, now)?;
                    return Ok::<_, MonitoringError>(store::alert(conn, &c.id)?.unwrap_or(c));
                }
                let mut row = external_row("client", fp.clone(), &labels, annotations, a.value, now, expires, now);
                row.notify = targets_json(&targets);
                if store::open(conn, &row)? {
                    me.notify(conn, &links, &row, Notice::Firing, &targets)?;
                    return Ok(row);
                }
                // Another report opened it meanwhile.
                Ok(store::open_by_fingerprint(conn, &fp)?.unwrap_or(row))
            })
            .await?;
        self.outbox().notify();
        Ok(row)
    }

    /// Records probe samples and drops those past a day.
    pub async fn record_samples(&self, samples: Vec<ProbeSample>) -> Result<(), MonitoringError> {
        self.db()
            .write(move |conn| {
                store::add_samples(conn, &samples)?;
                let before = samples.first().map_or(0, |s| s.checked_at) - SAMPLE_RETENTION_MS;
                store::purge_samples(conn, before)?;
                Ok::<_, MonitoringError>(())
            })
            .await
    }

    /// The latest sample of every target (the system-health view).
    pub async fn latest_samples(&self) -> Result<Vec<ProbeSample>, MonitoringError> {
        let from = now_ms() - SAMPLE_RETENTION_MS;
        let all = self
            .db()
            .run(move |conn| Ok::<_, MonitoringError>(store::samples_since(conn, from)?))
            .await?;
        let mut latest: BTreeMap<String, ProbeSample> = BTreeMap::new();
        for s in all {
            latest.insert(s.target.clone(), s);
        }
        Ok(latest.into_values().collect())
    }
}

#[allow(clippy::too_many_arguments)]
fn external_row(
    source: &str,
    fingerprint: String,
    labels: &BTreeMap<String, String>,
    annotations: String,
    value: Option<f64>,
    started: i64,
    expires_at: Option<i64>,
    now: i64,
) -> AlertRow {
    let name = labels.get("alertname").cloned().unwrap_or_else(|| source.to_string());
    let severity = labels
        .get("severity")
        .and_then(|s| Severity::parse(s))
        .unwrap_or(Severity::Warning);
    AlertRow {
        id: uuid::Uuid::now_v7().to_string(),
        rule_id: None,
        source: source.into(),
        fingerprint,
        name,
        severity: severity.as_str().into(),
        labels: map_json(labels),
        annotations,
        status: "firing".into(),
        value,
        notify: "[]".into(),
        pending_since: started,
        fired_at: Some(now),
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        last_notified_at: Some(now),
        notifications: 0,
        expires_at,
        updated_at: now,
    }
}

/// Series of the probe metrics: per target, 1/0 for down/up from its latest sample; per
/// service, its memory (percent of its limit) from the latest sample, and the cache hit rate
/// (percent) from its counters' growth over the window (a restarted process, whose counters
/// fell, is measured from its restart).
fn probe_series(metric: alert::Metric, samples: &[ProbeSample]) -> Vec<(BTreeMap<String, String>, Option<f64>)> {
    let mut by_target: BTreeMap<&str, Vec<&ProbeSample>> = BTreeMap::new();
    for s in samples {
        by_target.entry(&s.target).or_default().push(s);
    }
    let mut series = Vec::new();
    for (target, rows) in by_target {
        let Some(last) = rows.last() else { continue };
        let labels = BTreeMap::from([("service".to_string(), target.to_string())]);
        match metric {
            alert::Metric::ServiceDown => series.push((labels, Some(if last.healthy { 0.0 } else { 1.0 }))),
            _ if target.contains('/') || !last.healthy => {}
            alert::Metric::MemoryPercent => {
                if let Some(m) = last.memory_percent {
                    series.push((labels, Some(m)));
                }
            }
            _ => {
                // Back from the latest while the counters only grew: a fall is a restart.
                let mut first = *last;
                for s in rows.iter().rev().skip(1) {
                    if s.cache_lookups > first.cache_lookups || s.cache_hits > first.cache_hits {
                        break;
                    }
                    first = *s;
                }
                let lookups = last.cache_lookups - first.cache_lookups;
                if lookups > 0 {
                    let hits = (last.cache_hits - first.cache_hits).max(0);
                    series.push((labels, Some(hits as f64 * 100.0 / lookups as f64)));
                }
            }
        }
    }
    series
}

/// Alertmanager's webhook payload (version 4) for one alert, what Portico's webhooks send so
/// existing receivers consume them.
pub fn alertmanager_payload(
    base: &str,
    row: &AlertRow,
    status: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Value {
    let ends = if status == "resolved" {
        rfc3339(row.resolved_at.unwrap_or_else(now_ms))
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    let alertname = labels.get("alertname").cloned().unwrap_or_default();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "portico",
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": base,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(row.pending_since),
            "endsAt": ends,
            "generatorURL": format!("{base}/v1/monitoring/alerts/{}", row.id),
            "fingerprint": row.fingerprint,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str, at: i64, healthy: bool, hits: i64, lookups: i64) -> ProbeSample {
        ProbeSample {
            target: target.into(),
            checked_at: at,
            healthy,
            latency_ms: 1.0,
            version: None,
            detail: None,
            cache_hits: hits,
            cache_lookups: lookups,
            memory_percent: Some(hits as f64),
        }
    }

    #[test]
    fn probe_series_down_and_hit_rates() {
        let samples = vec![
            sample("beta", 0, true, 10, 20),
            sample("beta", 30, true, 60, 120),
            sample("beta/database", 30, false, 0, 0),
            sample("media", 0, true, 500, 1000),
            sample("media", 30, true, 3, 10),
            sample("media", 60, true, 13, 20),
        ];
        let down = probe_series(alert::Metric::ServiceDown, &samples);
        let values: Vec<(String, Option<f64>)> = down.iter().map(|(l, v)| (l["service"].clone(), *v)).collect();
        assert_eq!(
            values,
            [
                ("beta".to_string(), Some(0.0)),
                ("beta/database".to_string(), Some(1.0)),
                ("media".to_string(), Some(0.0))
            ]
        );
        let rates = probe_series(alert::Metric::CacheHitRate, &samples);
        let values: Vec<(String, Option<f64>)> = rates.iter().map(|(l, v)| (l["service"].clone(), *v)).collect();
        // beta: 50 hits of 100 lookups; media restarted: measured from its restart, 10 of 10.
        assert_eq!(
            values,
            [("beta".to_string(), Some(50.0)), ("media".to_string(), Some(100.0))]
        );
    }

    #[test]
    fn webhook_payload_is_alertmanager_v4() {
        let labels = BTreeMap::from([("alertname".to_string(), "Service down".to_string())]);
        let row = external_row("rule", "fp".into(), &labels, "{}".into(), None, 1_000, None, 1_000);
        let v = alertmanager_payload("https://p.example", &row, "firing", &labels, &BTreeMap::new());
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["alerts"][0]["fingerprint"], "fp");
        assert_eq!(v["alerts"][0]["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["groupLabels"]["alertname"], "Service down");
    }
}

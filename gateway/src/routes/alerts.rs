//! Alerting: `/v1/monitoring/alert-rules` (admin CRUD), `/v1/monitoring/alerts` (the inbox,
//! acknowledge and resolve, signed in or through the links in notices),
//! `/v1/monitoring/alertmanager` (Alertmanager's webhook) and
//! `/v1/analytics/performance/alerts` (problems clients report), answered by the monitoring
//! service.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
pub use portico_monitoring_domain::alert::{
    Condition as AlertCondition, Metric as AlertMetric, Severity as AlertSeverity, Status as AlertStatus,
};
use portico_proto::monitoring::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Admin, Rid, User, at};
use crate::{
    AppState,
    contract::{
        Created, Deleted, Raw, Reply, Valid, ValidQuery,
        doc::{Output, ResponseDoc, Schemas},
    },
    envelope::ApiError,
};

/// A new alert rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Checkout slow", "metric": "api_p95_ms", "route": "/v1/billing/checkout",
    "condition": "gt", "threshold": 2000, "windowSeconds": 300, "forSeconds": 60, "severity": "critical",
    "repeatIntervalSeconds": 3600, "notify": ["oncall@example.com", "https://hooks.example.com/portico"]}))]
pub struct AlertRuleInput {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// What it watches.
    metric: AlertMetric,
    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB`: required for `vital_p75`, refused otherwise.
    #[schema(max_length = 8)]
    vital: Option<String>,
    /// For `error_events`: one project (default: each project on its own).
    #[schema(minimum = 1)]
    project_id: Option<i64>,
    /// For `api_p95_ms` and `api_error_rate`: one route template (default: all routes).
    #[schema(max_length = 256)]
    route: Option<String>,
    /// `gt` or `lt`.
    condition: AlertCondition,
    /// The value that breaches.
    threshold: f64,
    /// The window the value is computed over, 60 to 86400 s (default 300).
    #[schema(minimum = 60, maximum = 86400)]
    window_seconds: Option<i64>,
    /// How long it must breach before it fires, 0 to 86400 s (default 0).
    #[schema(minimum = 0, maximum = 86400)]
    for_seconds: Option<i64>,
    /// Default `warning`.
    severity: Option<AlertSeverity>,
    /// Reminders while firing and unacknowledged: 0 (never) or 60 to 604800 s (default 3600).
    #[schema(minimum = 0, maximum = 604800)]
    repeat_interval_seconds: Option<i64>,
    /// E-mail addresses and `https://` webhook URLs (Alertmanager's webhook payload, version 4).
    #[schema(max_items = 20)]
    notify: Option<Vec<String>>,
    /// Default true.
    enabled: Option<bool>,
}

/// Fields of a rule to change; the rest stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"threshold": 2500, "enabled": false}))]
pub struct AlertRulePatch {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    metric: Option<AlertMetric>,
    /// Empty clears it.
    #[schema(max_length = 8)]
    vital: Option<String>,
    /// 0 clears it.
    #[schema(minimum = 0)]
    project_id: Option<i64>,
    /// Empty clears it.
    #[schema(max_length = 256)]
    route: Option<String>,
    condition: Option<AlertCondition>,
    threshold: Option<f64>,
    #[schema(minimum = 60, maximum = 86400)]
    window_seconds: Option<i64>,
    #[schema(minimum = 0, maximum = 86400)]
    for_seconds: Option<i64>,
    severity: Option<AlertSeverity>,
    #[schema(minimum = 0, maximum = 604800)]
    repeat_interval_seconds: Option<i64>,
    /// Replaces the list.
    #[schema(max_items = 20)]
    notify: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// An alert rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    id: String,
    name: String,
    metric: AlertMetric,
    vital: Option<String>,
    project_id: Option<i64>,
    route: Option<String>,
    condition: AlertCondition,
    threshold: f64,
    window_seconds: i64,
    for_seconds: i64,
    severity: AlertSeverity,
    repeat_interval_seconds: i64,
    notify: Vec<String>,
    enabled: bool,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

impl From<pb::AlertRule> for AlertRule {
    fn from(r: pb::AlertRule) -> Self {
        let i = r.rule.unwrap_or_default();
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        AlertRule {
            id: r.id,
            metric: AlertMetric::parse(&i.metric).unwrap_or(AlertMetric::ServiceDown),
            condition: AlertCondition::parse(&i.condition).unwrap_or(AlertCondition::Gt),
            severity: AlertSeverity::parse(&i.severity).unwrap_or(AlertSeverity::Warning),
            name: i.name,
            vital: nonempty(i.vital),
            project_id: (i.project_id > 0).then_some(i.project_id),
            route: nonempty(i.route),
            threshold: i.threshold,
            window_seconds: i.window_seconds,
            for_seconds: i.for_seconds,
            repeat_interval_seconds: i.repeat_interval_seconds,
            notify: i.notify,
            enabled: i.enabled,
            created_at: at(r.created_at_ms),
            updated_at: at(r.updated_at_ms),
        }
    }
}

/// POST /monitoring/alert-rules
pub async fn create_rule(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    body: Valid<AlertRuleInput>,
) -> Result<Created<AlertRule>, ApiError> {
    let b = body.0;
    let input = pb::AlertRuleInput {
        name: b.name,
        metric: b.metric.as_str().to_string(),
        vital: b.vital.unwrap_or_default(),
        project_id: b.project_id.unwrap_or(0),
        route: b.route.unwrap_or_default(),
        condition: b.condition.as_str().to_string(),
        threshold: b.threshold,
        window_seconds: b.window_seconds.unwrap_or(300),
        for_seconds: b.for_seconds.unwrap_or(0),
        severity: b.severity.unwrap_or(AlertSeverity::Warning).as_str().to_string(),
        repeat_interval_seconds: b.repeat_interval_seconds.unwrap_or(3600),
        notify: b.notify.unwrap_or_default(),
        enabled: b.enabled.unwrap_or(true),
    };
    let r = state
        .monitoring()?
        .create_alert_rule(outgoing(input, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(r.into()))
}

/// GET /monitoring/alert-rules
pub async fn list_rules(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
) -> Result<Reply<Vec<AlertRule>>, ApiError> {
    let list = state
        .monitoring()?
        .list_alert_rules(outgoing(pb::ListAlertRulesRequest {}, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(list.rules.into_iter().map(AlertRule::from).collect()))
}

/// GET /monitoring/alert-rules/{id}
pub async fn get_rule(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<AlertRule>, ApiError> {
    let r = state
        .monitoring()?
        .get_alert_rule(outgoing(pb::AlertRuleRef { id: id.into_inner() }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(r.into()))
}

/// PATCH /monitoring/alert-rules/{id}
pub async fn update_rule(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
    body: Valid<AlertRulePatch>,
) -> Result<Reply<AlertRule>, ApiError> {
    let p = body.0;
    let patch = pb::UpdateAlertRuleRequest {
        id: id.into_inner(),
        name: p.name,
        metric: p.metric.map(|v| v.as_str().to_string()),
        vital: p.vital,
        project_id: p.project_id,
        route: p.route,
        condition: p.condition.map(|v| v.as_str().to_string()),
        threshold: p.threshold,
        window_seconds: p.window_seconds,
        for_seconds: p.for_seconds,
        severity: p.severity.map(|v| v.as_str().to_string()),
        repeat_interval_seconds: p.repeat_interval_seconds,
        notify: p.notify.map(|targets| pb::NotifyList { targets }),
        enabled: p.enabled,
    };
    let r = state
        .monitoring()?
        .update_alert_rule(outgoing(patch, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(r.into()))
}

/// DELETE /monitoring/alert-rules/{id}
pub async fn delete_rule(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<Deleted>, ApiError> {
    state
        .monitoring()?
        .delete_alert_rule(outgoing(pb::AlertRuleRef { id: id.into_inner() }, &rid.0))
        .await?;
    Ok(Reply(Deleted::YES))
}

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    id: String,
    /// The rule that raised it (none for Alertmanager's and clients' alerts).
    rule_id: Option<String>,
    /// `rule`, `alertmanager` or `client`.
    source: String,
    /// What deduplicates it: one open alert per fingerprint.
    fingerprint: String,
    name: String,
    severity: AlertSeverity,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    status: AlertStatus,
    /// The value last observed.
    value: Option<f64>,
    /// When the breach began.
    starts_at: Option<DateTime<Utc>>,
    fired_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledged_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    /// `cleared`, `expired`, `alertmanager`, an admin's id, `e-mail link`, `rule deleted`.
    resolved_by: Option<String>,
    last_notified_at: Option<DateTime<Utc>>,
    /// Notices sent (firing and reminders).
    notifications: u32,
}

impl From<pb::Alert> for Alert {
    fn from(a: pb::Alert) -> Self {
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        let when = |ms: i64| if ms > 0 { at(ms) } else { None };
        Alert {
            severity: AlertSeverity::parse(&a.severity).unwrap_or(AlertSeverity::Warning),
            status: AlertStatus::parse(&a.status).unwrap_or(AlertStatus::Firing),
            id: a.id,
            rule_id: nonempty(a.rule_id),
            source: a.source,
            fingerprint: a.fingerprint,
            name: a.name,
            labels: a.labels.into_iter().collect(),
            annotations: a.annotations.into_iter().collect(),
            value: a.value,
            starts_at: when(a.started_at_ms),
            fired_at: when(a.fired_at_ms),
            acknowledged_at: when(a.acknowledged_at_ms),
            acknowledged_by: nonempty(a.acknowledged_by),
            resolved_at: when(a.resolved_at_ms),
            resolved_by: nonempty(a.resolved_by),
            last_notified_at: when(a.last_notified_at_ms),
            notifications: a.notifications,
        }
    }
}

/// `?status&cursor&limit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Only alerts in this state.
    status: Option<AlertStatus>,
    /// From the previous page's `nextCursor`.
    #[schema(max_length = 64)]
    cursor: Option<String>,
    /// 1 to 100 (default 25).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertPage {
    alerts: Vec<Alert>,
    /// Absent on the last page.
    next_cursor: Option<String>,
}

/// GET /monitoring/alerts
pub async fn list_alerts(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    q: ValidQuery<AlertsQuery>,
) -> Result<Reply<AlertPage>, ApiError> {
    let q = q.0;
    let page = state
        .monitoring()?
        .list_alerts(outgoing(
            pb::ListAlertsRequest {
                status: q.status.map(|v| v.as_str().to_string()).unwrap_or_default(),
                cursor: q.cursor.unwrap_or_default(),
                limit: q.limit.unwrap_or(25),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(AlertPage {
        alerts: page.alerts.into_iter().map(Alert::from).collect(),
        next_cursor: (!page.next_cursor.is_empty()).then_some(page.next_cursor),
    }))
}

/// GET /monitoring/alerts/{id}
pub async fn get_alert(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<Alert>, ApiError> {
    let a = state
        .monitoring()?
        .get_alert(outgoing(pb::AlertRef { id: id.into_inner() }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(a.into()))
}

async fn act(
    state: &AppState,
    rid: &Rid,
    id: String,
    actor: String,
    token: String,
    acknowledge: bool,
) -> Result<pb::Alert, ApiError> {
    let req = outgoing(pb::AlertActionRequest { id, actor, token }, &rid.0);
    let mut client = state.monitoring()?;
    let alert = if acknowledge {
        client.acknowledge_alert(req).await?
    } else {
        client.resolve_alert(req).await?
    };
    Ok(alert.into_inner())
}

/// POST /monitoring/alerts/{id}/acknowledge
pub async fn acknowledge(
    state: web::Data<AppState>,
    rid: Rid,
    admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<Alert>, ApiError> {
    let a = act(&state, &rid, id.into_inner(), admin.0.user_id, String::new(), true).await?;
    Ok(Reply(a.into()))
}

/// POST /monitoring/alerts/{id}/resolve
pub async fn resolve(
    state: web::Data<AppState>,
    rid: Rid,
    admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<Alert>, ApiError> {
    let a = act(&state, &rid, id.into_inner(), admin.0.user_id, String::new(), false).await?;
    Ok(Reply(a.into()))
}

/// `?token=` of a link in a notice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    /// The signed token from the notice.
    #[schema(min_length = 1, max_length = 200)]
    token: String,
}

/// A small HTML page confirming what a link did.
pub struct ConfirmationPage;

impl ResponseDoc for ConfirmationPage {
    fn document(_: &mut Schemas) -> Output {
        Output {
            status: 200,
            response: json!({
                "description": "A small page saying what was done to the alert.",
                "content": { "text/html": { "schema": { "type": "string" } } },
            }),
            others: Vec::new(),
        }
    }
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn page(alert: &pb::Alert, done: &str) -> Raw<ConfirmationPage> {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
         <title>Alert {done}</title></head>\n<body><h1>Alert {done}</h1>\n<p><strong>{}</strong> ({}) is now <strong>{}</strong>.</p>\n</body></html>\n",
        escape(&alert.name),
        escape(&alert.severity),
        escape(&alert.status),
    );
    Raw::new(
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .insert_header(("Content-Security-Policy", "default-src 'none'"))
            .body(body),
    )
}

/// GET /monitoring/alerts/{id}/acknowledge?token=
pub async fn acknowledge_link(
    state: web::Data<AppState>,
    rid: Rid,
    id: web::Path<String>,
    q: ValidQuery<LinkQuery>,
) -> Result<Raw<ConfirmationPage>, ApiError> {
    let a = act(&state, &rid, id.into_inner(), String::new(), q.0.token, true).await?;
    Ok(page(&a, "acknowledged"))
}

/// GET /monitoring/alerts/{id}/resolve?token=
pub async fn resolve_link(
    state: web::Data<AppState>,
    rid: Rid,
    id: web::Path<String>,
    q: ValidQuery<LinkQuery>,
) -> Result<Raw<ConfirmationPage>, ApiError> {
    let a = act(&state, &rid, id.into_inner(), String::new(), q.0.token, false).await?;
    Ok(page(&a, "resolved"))
}

/// `firing` or `resolved`.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AmStatus {
    /// Firing.
    Firing,
    /// Resolved.
    Resolved,
}

/// One alert of Alertmanager's webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmAlert {
    status: AmStatus,
    /// Must include `alertname`; `severity` (`warning`, `critical`) is read.
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
    starts_at: Option<DateTime<Utc>>,
    /// `0001-01-01T00:00:00Z` while firing.
    ends_at: Option<DateTime<Utc>>,
    /// Alertmanager's fingerprint (deduplicates; default: one computed from the labels).
    #[schema(max_length = 64)]
    fingerprint: Option<String>,
}

/// Alertmanager's webhook payload (version 4). Only `alerts` is read; the other fields of the
/// payload (`version`, `groupKey`, `status`, `receiver`, `groupLabels`, `commonLabels`,
/// `commonAnnotations`, `externalURL`, `truncatedAlerts`, each alert's `generatorURL`) are
/// accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": "firing",
    "receiver": "portico", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {}, "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
    "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "severity": "critical"},
    "annotations": {"summary": "p99 over 2 s"}, "startsAt": "2026-12-02T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph", "fingerprint": "c0ffee0123456789"}]}))]
pub struct AlertmanagerWebhook {
    /// Up to 1000 alerts.
    #[schema(max_items = 1000)]
    alerts: Vec<AmAlert>,
}

/// What an Alertmanager webhook did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertmanagerAccepted {
    /// Alerts opened.
    opened: u32,
    /// Alerts resolved.
    resolved: u32,
}

fn ms(t: Option<DateTime<Utc>>) -> i64 {
    t.map_or(0, |t| t.timestamp_millis().max(0))
}

/// POST /monitoring/alertmanager
pub async fn alertmanager(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    body: Valid<AlertmanagerWebhook>,
) -> Result<Reply<AlertmanagerAccepted>, ApiError> {
    let alerts = body
        .0
        .alerts
        .into_iter()
        .map(|a| pb::AlertmanagerAlert {
            status: if a.status == AmStatus::Firing {
                "firing"
            } else {
                "resolved"
            }
            .into(),
            labels: a.labels.into_iter().collect(),
            annotations: a.annotations.unwrap_or_default().into_iter().collect(),
            starts_at_ms: ms(a.starts_at),
            ends_at_ms: ms(a.ends_at),
            fingerprint: a.fingerprint.unwrap_or_default(),
        })
        .collect();
    let r = state
        .monitoring()?
        .receive_alertmanager(outgoing(pb::AlertmanagerRequest { alerts }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(AlertmanagerAccepted {
        opened: r.opened,
        resolved: r.resolved,
    }))
}

/// A performance problem a client saw.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"metric": "LCP", "page": "/checkout", "value": 9100, "message": "checkout paints in 9 s"}))]
pub struct ClientAlertReport {
    /// What was slow (`LCP`, `api_latency`, `frame_drops`…).
    #[schema(min_length = 1, max_length = 64)]
    metric: String,
    /// Where.
    #[schema(max_length = 512)]
    page: Option<String>,
    /// The value measured.
    value: Option<f64>,
    /// What happened, for the people notified.
    #[schema(min_length = 1, max_length = 1000)]
    message: String,
    /// Default `critical`.
    severity: Option<AlertSeverity>,
}

/// The alert a report raised (or refreshed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientAlertAccepted {
    /// One alert per metric and page: repeated reports refresh it.
    alert_id: String,
    status: AlertStatus,
}

/// POST /analytics/performance/alerts
pub async fn client_alert(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<ClientAlertReport>,
) -> Result<Reply<ClientAlertAccepted, 202>, ApiError> {
    let b = body.0;
    let a = state
        .monitoring()?
        .report_client_alert(outgoing(
            pb::ClientAlertRequest {
                metric: b.metric,
                page: b.page.unwrap_or_default(),
                value: b.value,
                message: b.message,
                severity: b.severity.map(|v| v.as_str().to_string()).unwrap_or_default(),
                user_id: user.0.user_id,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(ClientAlertAccepted {
        status: AlertStatus::parse(&a.status).unwrap_or(AlertStatus::Firing),
        alert_id: a.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}

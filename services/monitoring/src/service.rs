//! The monitoring application served over gRPC (`portico.monitoring.v1.MonitoringService`).

use portico_proto::monitoring::v1::{self as pb, monitoring_service_server::MonitoringService};
use portico_runtime::{Problem, grpc};
use tonic::{Request, Response, Status};

use crate::{
    alerts::{ClientAlert, ExternalAlert, RulePatch, StoredRule, map_of},
    alerts_store::AlertRow,
    analytics::{Metric, ProductEvent},
    app::{MAX_PAGE, Monitoring, NativeError},
    domain::{
        alert::{Action, Draft, Rule, Status as AlertStatus},
        group::GroupStatus,
        grouping::Frame,
    },
    error::MonitoringError,
    routes::{Latency, Point, RouteStat, error_rate},
    store::{GroupRow, ProjectRow},
};

/// Fully qualified gRPC name, for health reporting.
pub const SERVICE_NAME: &str = "portico.monitoring.v1.MonitoringService";
const SVC: &str = "monitoring";

fn project(app: &Monitoring, p: ProjectRow) -> pb::Project {
    pb::Project {
        dsn: app.dsn(&p),
        id: p.id,
        name: p.name,
        public_key: p.public_key,
        created_at_ms: p.created_at,
    }
}

fn status_to_proto(s: &str) -> i32 {
    let s = match GroupStatus::parse(s) {
        Some(GroupStatus::Open) => pb::GroupStatus::Open,
        Some(GroupStatus::Resolved) => pb::GroupStatus::Resolved,
        Some(GroupStatus::Ignored) => pb::GroupStatus::Ignored,
        None => pb::GroupStatus::Unspecified,
    };
    s as i32
}

fn status_from_proto(v: i32) -> Option<GroupStatus> {
    match pb::GroupStatus::try_from(v).ok()? {
        pb::GroupStatus::Open => Some(GroupStatus::Open),
        pb::GroupStatus::Resolved => Some(GroupStatus::Resolved),
        pb::GroupStatus::Ignored => Some(GroupStatus::Ignored),
        pb::GroupStatus::Unspecified => None,
    }
}

fn group(g: GroupRow, users: i64) -> pb::Group {
    pb::Group {
        status: status_to_proto(&g.status),
        id: g.id,
        project_id: g.project_id,
        title: g.title,
        culprit: g.culprit.unwrap_or_default(),
        level: g.level,
        count: g.times_seen,
        users_affected: users,
        first_seen_ms: g.first_seen,
        last_seen_ms: g.last_seen,
        regressed: g.regressed,
        first_release: g.first_release.unwrap_or_default(),
        last_release: g.last_release.unwrap_or_default(),
    }
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn rule_input(r: &Rule) -> pb::AlertRuleInput {
    pb::AlertRuleInput {
        name: r.name.clone(),
        metric: r.metric.as_str().into(),
        vital: r.vital.map(|v| v.as_str().to_string()).unwrap_or_default(),
        project_id: r.project_id.unwrap_or(0),
        route: r.route.clone().unwrap_or_default(),
        condition: r.condition.as_str().into(),
        threshold: r.threshold,
        window_seconds: r.window_seconds,
        for_seconds: r.for_seconds,
        severity: r.severity.as_str().into(),
        repeat_interval_seconds: r.repeat_interval_seconds,
        notify: r.notify.iter().map(|t| t.as_str().to_string()).collect(),
        enabled: r.enabled,
    }
}

fn alert_rule(r: StoredRule) -> pb::AlertRule {
    pb::AlertRule {
        rule: Some(rule_input(&r.rule)),
        id: r.id,
        created_at_ms: r.created_at,
        updated_at_ms: r.updated_at,
    }
}

fn draft(m: pb::AlertRuleInput) -> Draft {
    Draft {
        name: m.name,
        metric: m.metric,
        vital: m.vital,
        project_id: m.project_id,
        route: m.route,
        condition: m.condition,
        threshold: m.threshold,
        window_seconds: m.window_seconds,
        for_seconds: m.for_seconds,
        severity: m.severity,
        repeat_interval_seconds: m.repeat_interval_seconds,
        notify: m.notify,
        enabled: m.enabled,
    }
}

fn latency(l: Latency) -> pb::Latency {
    pb::Latency {
        p50: l.p50,
        p95: l.p95,
        p99: l.p99,
    }
}

fn point(p: Point) -> pb::ApiPoint {
    pb::ApiPoint {
        start_ms: p.start,
        requests: p.requests,
        errors: p.errors,
        latency: (p.latency != Latency::default()).then(|| latency(p.latency)),
        error_rate: error_rate(p.requests, p.errors),
    }
}

fn alert(a: AlertRow) -> pb::Alert {
    pb::Alert {
        labels: map_of(&a.labels).into_iter().collect(),
        annotations: map_of(&a.annotations).into_iter().collect(),
        id: a.id,
        rule_id: a.rule_id.unwrap_or_default(),
        source: a.source,
        fingerprint: a.fingerprint,
        name: a.name,
        severity: a.severity,
        status: a.status,
        value: a.value,
        started_at_ms: a.pending_since,
        fired_at_ms: a.fired_at.unwrap_or(0),
        acknowledged_at_ms: a.acknowledged_at.unwrap_or(0),
        acknowledged_by: a.acknowledged_by.unwrap_or_default(),
        resolved_at_ms: a.resolved_at.unwrap_or(0),
        resolved_by: a.resolved_by.unwrap_or_default(),
        last_notified_at_ms: a.last_notified_at.unwrap_or(0),
        notifications: u32::try_from(a.notifications).unwrap_or(0),
    }
}

impl Monitoring {
    /// Acknowledges or resolves, for an admin (`actor`) or a signed link (`token`).
    async fn rpc_alert_action(&self, m: pb::AlertActionRequest, action: Action) -> Result<pb::Alert, MonitoringError> {
        let actor = if m.token.is_empty() {
            if m.actor.is_empty() {
                return Err(MonitoringError::Invalid(vec![(
                    "actor".into(),
                    "who acts is required".into(),
                )]));
            }
            m.actor
        } else {
            self.check_link(&m.id, action, &m.token).await?;
            "e-mail link".to_string()
        };
        let row = match action {
            Action::Acknowledge => self.acknowledge(&m.id, &actor).await?,
            Action::Resolve => self.resolve(&m.id, &actor).await?,
        };
        Ok(alert(row))
    }

    async fn rpc_ingest_error(&self, m: pb::IngestErrorRequest) -> Result<pb::IngestResponse, MonitoringError> {
        let ingested = self
            .ingest_native(NativeError {
                project_id: m.project_id,
                message: m.message,
                kind: m.r#type,
                frames: m
                    .frames
                    .into_iter()
                    .map(|f| Frame {
                        module: nonempty(f.module),
                        filename: nonempty(f.filename),
                        function: nonempty(f.function),
                        context_line: nonempty(f.context_line),
                        in_app: Some(f.in_app),
                        lineno: (f.lineno > 0).then_some(f.lineno),
                    })
                    .collect(),
                fingerprint: m.fingerprint,
                level: m.level,
                release: m.release,
                environment: m.environment,
                tags: m.tags.into_iter().collect(),
                user_id: m.user_id,
                occurred_at_ms: m.occurred_at_ms,
            })
            .await?;
        Ok(pb::IngestResponse {
            event_id: ingested.event_id,
            group_id: ingested.group_id,
        })
    }

    async fn rpc_list_groups(&self, m: pb::ListGroupsRequest) -> Result<pb::ListGroupsResponse, MonitoringError> {
        let limit = if m.limit == 0 { 25 } else { m.limit.min(MAX_PAGE) };
        let page = self
            .groups(
                (m.project_id > 0).then_some(m.project_id),
                status_from_proto(m.status),
                nonempty(m.release),
                Some(m.cursor.as_str()),
                limit,
            )
            .await?;
        Ok(pb::ListGroupsResponse {
            groups: page.groups.into_iter().map(|(g, n)| group(g, n)).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        })
    }
}

macro_rules! monitoring_rpcs {
    ($( $name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr; )*) => {
        #[tonic::async_trait]
        impl MonitoringService for Monitoring {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

monitoring_rpcs! {
    create_project, "CreateProject", pb::CreateProjectRequest => pb::Project, |app, m| async move {
        Ok::<_, MonitoringError>(project(app, app.create_project(&m.name).await?))
    };
    list_projects, "ListProjects", pb::ListProjectsRequest => pb::ListProjectsResponse, |app, _m| async move {
        Ok::<_, MonitoringError>(pb::ListProjectsResponse {
            projects: app.projects().await?.into_iter().map(|p| project(app, p)).collect(),
        })
    };
    ingest_sentry, "IngestSentry", pb::IngestSentryRequest => pb::IngestResponse, |app, m| async move {
        let ingested = app.ingest_sentry(m.project_id, &m.auth, &m.body, m.store).await?;
        Ok::<_, MonitoringError>(pb::IngestResponse { event_id: ingested.event_id, group_id: ingested.group_id })
    };
    ingest_error, "IngestError", pb::IngestErrorRequest => pb::IngestResponse, |app, m| app.rpc_ingest_error(m);
    list_groups, "ListGroups", pb::ListGroupsRequest => pb::ListGroupsResponse, |app, m| app.rpc_list_groups(m);
    get_group, "GetGroup", pb::GetGroupRequest => pb::GroupDetail, |app, m| async move {
        let (g, users, latest) = app.group(&m.group_id).await?;
        let (latest_event_id, latest_event_json) = latest.unwrap_or_default();
        Ok::<_, MonitoringError>(pb::GroupDetail { group: Some(group(g, users)), latest_event_json, latest_event_id })
    };
    update_group, "UpdateGroup", pb::UpdateGroupRequest => pb::Group, |app, m| async move {
        let status = status_from_proto(m.status).ok_or_else(|| MonitoringError::Invalid(vec![(
            "status".into(), "must be open, resolved or ignored".into(),
        )]))?;
        let (g, users) = app.set_status(&m.group_id, status).await?;
        Ok::<_, MonitoringError>(group(g, users))
    };
    record_metrics, "RecordMetrics", pb::RecordMetricsRequest => pb::RecordMetricsResponse, |app, m| async move {
        let metrics = m.metrics.into_iter().map(|m| Metric {
            name: m.name, value: m.value, page: m.page, device: m.device,
            connection: m.connection, occurred_at_ms: m.occurred_at_ms,
        }).collect();
        let ratings = app.record_metrics(metrics).await?;
        Ok::<_, MonitoringError>(pb::RecordMetricsResponse {
            ratings: ratings.into_iter().map(|r| r.as_str().to_string()).collect(),
        })
    };
    record_funnel_step, "RecordFunnelStep", pb::RecordFunnelStepRequest => pb::RecordFunnelStepResponse, |app, m| async move {
        let first = app.record_step(&m.session_id, &m.step, nonempty(m.user_id), m.occurred_at_ms).await?;
        Ok::<_, MonitoringError>(pb::RecordFunnelStepResponse { first })
    };
    record_events, "RecordEvents", pb::RecordEventsRequest => pb::RecordEventsResponse, |app, m| async move {
        let events = m.events.into_iter().map(|e| ProductEvent {
            name: e.name, session_id: e.session_id, properties_json: e.properties_json, occurred_at_ms: e.occurred_at_ms,
        }).collect();
        let accepted = app.record_events(events, nonempty(m.user_id)).await?;
        Ok::<_, MonitoringError>(pb::RecordEventsResponse { accepted: u32::try_from(accepted).unwrap_or(u32::MAX) })
    };
    performance_dashboard, "PerformanceDashboard", pb::PerformanceDashboardRequest => pb::PerformanceDashboard, |app, m| async move {
        let d = app.dashboard(m.from_ms, m.to_ms).await?;
        let bucket_ms = crate::routes::time_bucket(m.from_ms, m.to_ms, m.bucket_ms)?;
        let api = app.api_dashboard(m.from_ms, m.to_ms, bucket_ms).await?;
        let (drop, lost) = d.funnel.biggest_drop_off.map_or((String::new(), 0), |(s, n)| (s.to_string(), n));
        Ok::<_, MonitoringError>(pb::PerformanceDashboard {
            vitals: d.vitals.into_iter().map(|v| pb::VitalSummary {
                name: v.vital.as_str().to_string(), count: v.count, p75: v.p75,
                good: v.shares[0], needs_improvement: v.shares[1], poor: v.shares[2],
            }).collect(),
            funnel: d.funnel.steps.into_iter().map(|s| pb::FunnelStep {
                step: s.step.to_string(), sessions: s.sessions, from_previous: s.from_previous, from_first: s.from_first,
            }).collect(),
            biggest_drop_off: drop,
            biggest_drop_off_sessions: lost,
            bucket_ms: api.bucket_ms,
            requests: api.requests,
            server_errors: api.server_errors,
            latency: Some(latency(api.latency)),
            error_rate: error_rate(api.requests, api.server_errors),
            routes: api.routes.into_iter().map(|r| pb::RouteSummary {
                error_rate: error_rate(r.requests, r.server_errors),
                route: r.route, method: r.method, requests: r.requests, server_errors: r.server_errors,
                client_errors: r.client_errors, latency: Some(latency(r.latency)),
                series: r.series.into_iter().map(point).collect(),
            }).collect(),
            series: api.series.into_iter().map(point).collect(),
        })
    };
    record_route_stats, "RecordRouteStats", pb::RecordRouteStatsRequest => pb::RecordRouteStatsResponse, |app, m| async move {
        let stats = m.stats.into_iter().map(|s| RouteStat {
            minute_ms: s.minute_ms, route: s.route, method: s.method, requests: s.requests,
            server_errors: s.server_errors, client_errors: s.client_errors,
            buckets: s.buckets.into_iter().map(|b| (b.bucket, b.count)).collect(),
        }).collect();
        let recorded = app.record_route_stats(stats).await?;
        Ok::<_, MonitoringError>(pb::RecordRouteStatsResponse { recorded: u32::try_from(recorded).unwrap_or(u32::MAX) })
    };
    create_alert_rule, "CreateAlertRule", pb::AlertRuleInput => pb::AlertRule, |app, m| async move {
        Ok::<_, MonitoringError>(alert_rule(app.create_rule(draft(m)).await?))
    };
    list_alert_rules, "ListAlertRules", pb::ListAlertRulesRequest => pb::ListAlertRulesResponse, |app, _m| async move {
        Ok::<_, MonitoringError>(pb::ListAlertRulesResponse {
            rules: app.rules().await?.into_iter().map(alert_rule).collect(),
        })
    };
    get_alert_rule, "GetAlertRule", pb::AlertRuleRef => pb::AlertRule, |app, m| async move {
        Ok::<_, MonitoringError>(alert_rule(app.rule(&m.id).await?))
    };
    update_alert_rule, "UpdateAlertRule", pb::UpdateAlertRuleRequest => pb::AlertRule, |app, m| async move {
        let patch = RulePatch {
            name: m.name, metric: m.metric, vital: m.vital, project_id: m.project_id, route: m.route,
            condition: m.condition, threshold: m.threshold, window_seconds: m.window_seconds,
            for_seconds: m.for_seconds, severity: m.severity,
            repeat_interval_seconds: m.repeat_interval_seconds,
            notify: m.notify.map(|n| n.targets), enabled: m.enabled,
        };
        Ok::<_, MonitoringError>(alert_rule(app.update_rule(&m.id, patch).await?))
    };
    delete_alert_rule, "DeleteAlertRule", pb::AlertRuleRef => pb::DeleteAlertRuleResponse, |app, m| async move {
        app.delete_rule(&m.id).await?;
        Ok::<_, MonitoringError>(pb::DeleteAlertRuleResponse {})
    };
    list_alerts, "ListAlerts", pb::ListAlertsRequest => pb::ListAlertsResponse, |app, m| async move {
        let status = match m.status.as_str() {
            "" => None,
            s => Some(AlertStatus::parse(s).ok_or_else(|| MonitoringError::Invalid(vec![(
                "status".into(), "must be pending, firing, acknowledged or resolved".into(),
            )]))?),
        };
        let limit = if m.limit == 0 { 25 } else { m.limit };
        let (rows, next) = app.alerts(status, Some(m.cursor.as_str()), limit).await?;
        Ok::<_, MonitoringError>(pb::ListAlertsResponse {
            alerts: rows.into_iter().map(alert).collect(),
            next_cursor: next.unwrap_or_default(),
        })
    };
    get_alert, "GetAlert", pb::AlertRef => pb::Alert, |app, m| async move {
        Ok::<_, MonitoringError>(alert(app.alert(&m.id).await?))
    };
    acknowledge_alert, "AcknowledgeAlert", pb::AlertActionRequest => pb::Alert, |app, m| app.rpc_alert_action(m, Action::Acknowledge);
    resolve_alert, "ResolveAlert", pb::AlertActionRequest => pb::Alert, |app, m| app.rpc_alert_action(m, Action::Resolve);
    receive_alertmanager, "ReceiveAlertmanager", pb::AlertmanagerRequest => pb::AlertmanagerResponse, |app, m| async move {
        let alerts = m.alerts.into_iter().map(|a| ExternalAlert {
            firing: a.status != "resolved",
            labels: a.labels.into_iter().collect(),
            annotations: a.annotations.into_iter().collect(),
            starts_at_ms: a.starts_at_ms,
            ends_at_ms: a.ends_at_ms,
            fingerprint: a.fingerprint,
        }).collect();
        let (opened, resolved) = app.receive_alertmanager(alerts).await?;
        Ok::<_, MonitoringError>(pb::AlertmanagerResponse {
            opened: u32::try_from(opened).unwrap_or(u32::MAX),
            resolved: u32::try_from(resolved).unwrap_or(u32::MAX),
        })
    };
    report_client_alert, "ReportClientAlert", pb::ClientAlertRequest => pb::Alert, |app, m| async move {
        let row = app.report_client_alert(ClientAlert {
            metric: m.metric, page: m.page, value: m.value, message: m.message,
            severity: m.severity, user_id: m.user_id,
        }).await?;
        Ok::<_, MonitoringError>(alert(row))
    };
    system_health, "SystemHealth", pb::SystemHealthRequest => pb::SystemHealthResponse, |app, _m| async move {
        Ok::<_, MonitoringError>(pb::SystemHealthResponse {
            targets: app.latest_samples().await?.into_iter().map(|s| pb::ProbedTarget {
                target: s.target, healthy: s.healthy, latency_ms: s.latency_ms,
                version: s.version.unwrap_or_default(), detail: s.detail.unwrap_or_default(),
                checked_at_ms: s.checked_at,
            }).collect(),
        })
    };
}

//! `/v1/analytics/*`: web vitals, funnel steps and product events from clients, and the
//! performance dashboard for admins, answered by the monitoring service.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, Utc};
use portico_monitoring_domain::analytics::{FunnelStepName, Rating};
use portico_proto::monitoring::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Accepted, Admin, Rid, User};
use crate::{
    AppState,
    contract::{Reply, Valid, ValidQuery},
    envelope::ApiError,
};

/// One measured web vital.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB` (another name is 422, named).
    #[schema(min_length = 1, max_length = 16, example = "LCP")]
    name: String,
    /// Milliseconds (CLS: unitless). Negative values are 422, named.
    #[schema(example = 2300.5)]
    value: f64,
    /// The page or screen.
    #[schema(max_length = 256)]
    page: Option<String>,
    /// The device class (`mobile`, `desktop`, a model).
    #[schema(max_length = 64)]
    device: Option<String>,
    /// The network (`4g`, `wifi`).
    #[schema(max_length = 32)]
    connection: Option<String>,
    /// When it was measured (default: now; never later than now).
    occurred_at: Option<DateTime<Utc>>,
}

/// A batch of metrics.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"metrics": [{"name": "LCP", "value": 2300.5, "page": "/effects", "device": "mobile"}, {"name": "CLS", "value": 0.02}]}))]
pub struct MetricsBatch {
    /// 1 to 100 metrics.
    #[schema(min_items = 1, max_items = 100)]
    metrics: Vec<Metric>,
}

/// The ratings of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ratings {
    /// One per metric, in order.
    ratings: Vec<Rating>,
}

/// POST /analytics/performance/metrics
pub async fn metrics(
    state: web::Data<AppState>,
    rid: Rid,
    _user: User,
    body: Valid<MetricsBatch>,
) -> Result<Reply<Ratings, 202>, ApiError> {
    let metrics = body
        .0
        .metrics
        .into_iter()
        .map(|m| pb::Metric {
            name: m.name,
            value: m.value,
            page: m.page.unwrap_or_default(),
            device: m.device.unwrap_or_default(),
            connection: m.connection.unwrap_or_default(),
            occurred_at_ms: m.occurred_at.map_or(0, |t| t.timestamp_millis()),
        })
        .collect();
    let r = state
        .monitoring()?
        .record_metrics(outgoing(pb::RecordMetricsRequest { metrics }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(Ratings {
        ratings: r
            .ratings
            .iter()
            .map(|r| Rating::parse(r).unwrap_or(Rating::Poor))
            .collect(),
    }))
}

/// A session reached a step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"sessionId": "3f2b9c1e", "step": "image_upload"}))]
pub struct FunnelStepEvent {
    /// The client's session.
    #[schema(min_length = 1, max_length = 128)]
    session_id: String,
    /// The step.
    step: FunnelStepName,
    /// When (default: now).
    occurred_at: Option<DateTime<Utc>>,
}

/// What a funnel step did.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelRecorded {
    /// The session reached this step for the first time (a repeat counts nothing).
    first: bool,
}

/// POST /analytics/funnel
pub async fn funnel(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<FunnelStepEvent>,
) -> Result<Reply<FunnelRecorded, 202>, ApiError> {
    let e = body.0;
    let r = state
        .monitoring()?
        .record_funnel_step(outgoing(
            pb::RecordFunnelStepRequest {
                session_id: e.session_id,
                step: e.step.as_str().to_string(),
                occurred_at_ms: e.occurred_at.map_or(0, |t| t.timestamp_millis()),
                user_id: user.0.user_id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(FunnelRecorded { first: r.first }))
}

/// One product event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ProductEvent)]
pub struct Event {
    /// What happened (`effect_shared`).
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// The client's session.
    #[schema(max_length = 128)]
    session_id: Option<String>,
    /// Anything about it (at most 8 KiB as JSON).
    properties: Option<BTreeMap<String, serde_json::Value>>,
    /// When (default: now).
    occurred_at: Option<DateTime<Utc>>,
}

/// A batch of product events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [{"name": "effect_shared", "sessionId": "3f2b9c1e", "properties": {"effect": "oil-painting"}}]}))]
pub struct EventsBatch {
    /// 1 to 100 events.
    #[schema(min_items = 1, max_items = 100)]
    events: Vec<Event>,
}

/// POST /analytics/events
pub async fn events(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<EventsBatch>,
) -> Result<Reply<Accepted, 202>, ApiError> {
    let events = body
        .0
        .events
        .into_iter()
        .map(|e| pb::ProductEvent {
            name: e.name,
            session_id: e.session_id.unwrap_or_default(),
            properties_json: e
                .properties
                .map(|p| serde_json::to_string(&p).unwrap_or_default())
                .unwrap_or_default(),
            occurred_at_ms: e.occurred_at.map_or(0, |t| t.timestamp_millis()),
        })
        .collect();
    let r = state
        .monitoring()?
        .record_events(outgoing(
            pb::RecordEventsRequest {
                events,
                user_id: user.0.user_id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(Accepted { accepted: r.accepted }))
}

/// `?from=&to=&bucket=` of the dashboard (RFC 3339; default the last 24 hours, at most 93
/// days).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// Start (inclusive).
    from: Option<DateTime<Utc>>,
    /// End (exclusive; after `from`).
    to: Option<DateTime<Utc>>,
    /// The API series' time bucket in seconds: a whole number of minutes, at most 1000
    /// buckets in the range (default: about 60 buckets).
    #[schema(minimum = 60, maximum = 8035200)]
    bucket: Option<i64>,
}

/// Response-time percentiles, milliseconds.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
}

impl From<Option<pb::Latency>> for Latency {
    fn from(l: Option<pb::Latency>) -> Self {
        l.map_or_else(Latency::default, |l| Latency {
            p50: l.p50,
            p95: l.p95,
            p99: l.p99,
        })
    }
}

/// One time bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiPoint {
    /// The bucket's start.
    start: Option<DateTime<Utc>>,
    requests: i64,
    /// 5xx answers.
    errors: i64,
    /// Percent of requests that were 5xx.
    error_rate: f64,
    /// All routes together (absent in a route's own series).
    latency: Option<Latency>,
}

impl From<pb::ApiPoint> for ApiPoint {
    fn from(p: pb::ApiPoint) -> Self {
        ApiPoint {
            start: super::at(p.start_ms),
            error_rate: p.error_rate,
            requests: p.requests,
            errors: p.errors,
            latency: p.latency.map(|l| Some(l).into()),
        }
    }
}

/// One route over the range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSummary {
    /// The route template (`/v1/monitoring/errors/{groupId}`).
    route: String,
    method: String,
    requests: i64,
    /// 5xx answers.
    server_errors: i64,
    /// 4xx answers.
    client_errors: i64,
    /// Percent of requests that were 5xx.
    error_rate: f64,
    latency: Latency,
    /// Requests and errors per time bucket.
    series: Vec<ApiPoint>,
}

/// The API's own performance, as the gateway measured it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSummary {
    /// The time bucket of the series.
    bucket_seconds: i64,
    requests: i64,
    /// 5xx answers.
    server_errors: i64,
    /// Percent of requests that were 5xx.
    error_rate: f64,
    latency: Latency,
    /// The 50 busiest routes, busiest first.
    routes: Vec<RouteSummary>,
    /// All routes together, per time bucket.
    series: Vec<ApiPoint>,
}

/// Shares of a vital's values by rating.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatingShares {
    /// Rated good.
    good: f64,
    /// Rated needs-improvement.
    needs_improvement: f64,
    /// Rated poor.
    poor: f64,
}

/// One vital over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct VitalSummary {
    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB`.
    name: String,
    /// Values reported.
    count: u64,
    /// 75th percentile (within 1 %), what web-vitals reports a page by; 0 without values.
    p75: f64,
    /// Shares by rating.
    ratings: RatingShares,
}

/// One funnel step over the range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStepSummary {
    /// The step.
    step: String,
    /// Sessions that reached it.
    sessions: u64,
    /// Share of the previous step's sessions.
    from_previous: f64,
    /// Share of the first step's sessions.
    from_first: f64,
}

/// The step losing the most sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DropOff {
    /// The step whose sessions fall furthest short of the previous step's.
    step: String,
    /// Sessions lost there.
    sessions: u64,
}

/// The funnel over the range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelSummary {
    /// The nine steps in order.
    steps: Vec<FunnelStepSummary>,
    /// Absent when no step loses sessions.
    biggest_drop_off: Option<DropOff>,
}

/// The performance dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceDashboard {
    /// Start of the range.
    from: DateTime<Utc>,
    /// End of the range.
    to: DateTime<Utc>,
    /// Each web vital.
    vitals: Vec<VitalSummary>,
    /// The conversion funnel.
    funnel: FunnelSummary,
    /// Response times, requests and errors per route.
    api: ApiSummary,
}

/// GET /analytics/dashboard/performance
pub async fn dashboard(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    query: ValidQuery<DashboardQuery>,
) -> Result<Reply<PerformanceDashboard>, ApiError> {
    let to = query.0.to.unwrap_or_else(Utc::now);
    let from = query.0.from.unwrap_or(to - chrono::Duration::hours(24));
    let d = state
        .monitoring()?
        .performance_dashboard(outgoing(
            pb::PerformanceDashboardRequest {
                from_ms: from.timestamp_millis(),
                to_ms: to.timestamp_millis(),
                bucket_ms: query.0.bucket.map_or(0, |b| b.saturating_mul(1000)),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(PerformanceDashboard {
        from,
        to,
        vitals: d
            .vitals
            .into_iter()
            .map(|v| VitalSummary {
                name: v.name,
                count: v.count,
                p75: v.p75,
                ratings: RatingShares {
                    good: v.good,
                    needs_improvement: v.needs_improvement,
                    poor: v.poor,
                },
            })
            .collect(),
        funnel: FunnelSummary {
            steps: d
                .funnel
                .into_iter()
                .map(|s| FunnelStepSummary {
                    step: s.step,
                    sessions: s.sessions,
                    from_previous: s.from_previous,
                    from_first: s.from_first,
                })
                .collect(),
            biggest_drop_off: (!d.biggest_drop_off.is_empty()).then_some(DropOff {
                step: d.biggest_drop_off,
                sessions: d.biggest_drop_off_sessions,
            }),
        },
        api: ApiSummary {
            bucket_seconds: d.bucket_ms / 1000,
            error_rate: d.error_rate,
            requests: d.requests,
            server_errors: d.server_errors,
            latency: d.latency.into(),
            routes: d
                .routes
                .into_iter()
                .map(|r| RouteSummary {
                    error_rate: r.error_rate,
                    latency: r.latency.into(),
                    series: r.series.into_iter().map(ApiPoint::from).collect(),
                    route: r.route,
                    method: r.method,
                    requests: r.requests,
                    server_errors: r.server_errors,
                    client_errors: r.client_errors,
                })
                .collect(),
            series: d.series.into_iter().map(ApiPoint::from).collect(),
        },
    }))
}

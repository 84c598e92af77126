//! Client performance: batched timing events from the apps, and percentiles over them.

use actix_web::web;
use chrono::{DateTime, Utc};
use portico_proto::media::v1 as pb;
use portico_runtime::{ErrorCode, grpc::outgoing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Connection;
use crate::{
    AppState,
    auth::Role,
    contract::{Reply, Valid, ValidQuery},
    envelope::ApiError,
    routes::{Accepted, Rid, User, at},
};

/// What a client timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An upload.
    Upload,
    /// A screen rendering.
    Screen,
    /// An API call.
    Api,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Upload => "upload",
            EventType::Screen => "screen",
            EventType::Api => "api",
        }
    }
}

/// One client event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientEvent {
    /// What was timed.
    #[serde(rename = "type")]
    event_type: EventType,
    /// How long it took.
    #[schema(minimum = 0, exclusive_maximum = 86_400_000)]
    duration_ms: f64,
    /// Bytes moved (uploads).
    bytes: Option<u64>,
    /// The network.
    connection: Option<Connection>,
    /// Device model.
    #[schema(max_length = 64)]
    device: Option<String>,
    /// Operating system.
    #[schema(max_length = 64)]
    os: Option<String>,
    /// App version.
    #[schema(max_length = 64)]
    app_version: Option<String>,
    /// Whether it worked (default true).
    success: Option<bool>,
    /// When it happened (default: now; at most a day ahead, for clocks that drift).
    occurred_at: Option<DateTime<Utc>>,
}

/// `{events: [...]}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": [
    {"type": "upload", "durationMs": 1840.5, "bytes": 2_481_152, "connection": "4g", "device": "Pixel 8", "os": "Android 15", "appVersion": "3.2.0", "success": true},
    {"type": "screen", "durationMs": 320.0, "connection": "wifi"}
]}))]
pub struct ClientEvents {
    /// 1 to 100 events.
    #[schema(min_items = 1, max_items = 100)]
    events: Vec<ClientEvent>,
}

/// POST /mobile/analytics → 202
pub async fn analytics(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    body: Valid<ClientEvents>,
) -> Result<Reply<Accepted, 202>, ApiError> {
    // How far ahead `occurredAt` may be (phones' clocks drift) is the service's rule.
    let mut out = Vec::with_capacity(body.0.events.len());
    for e in body.0.events {
        let occurred_at_ms = e.occurred_at.map_or(0, |t| t.timestamp_millis());
        out.push(pb::ClientEvent {
            r#type: e.event_type.as_str().to_string(),
            duration_ms: e.duration_ms,
            bytes: e.bytes.unwrap_or_default(),
            connection: e.connection.map_or(pb::Connection::Unspecified, Connection::to_proto) as i32,
            device: e.device.unwrap_or_default(),
            os: e.os.unwrap_or_default(),
            app_version: e.app_version.unwrap_or_default(),
            success: e.success.unwrap_or(true),
            occurred_at_ms,
        });
    }
    let r = state
        .media()?
        .record_events(outgoing(
            pb::RecordEventsRequest {
                user_id: user.0.user_id,
                events: out,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(Accepted { accepted: r.accepted }))
}

/// What groups a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The network.
    Connection,
    /// The device model.
    Device,
}

/// `?from=&to=&groupBy=&type=` (and `userId=` for admins).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PerformanceQuery {
    /// Start (default: seven days before `to`).
    from: Option<DateTime<Utc>>,
    /// End (default: now).
    to: Option<DateTime<Utc>>,
    /// Grouping (default `connection`).
    group_by: Option<GroupBy>,
    /// Only this kind of event.
    #[serde(rename = "type")]
    event_type: Option<EventType>,
    /// Admins: one user's events (default: everyone's).
    #[schema(max_length = 64)]
    user_id: Option<String>,
}

/// Percentiles of one group.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceGroup {
    /// The group (a connection or a device).
    key: String,
    /// Events.
    count: u64,
    /// Share that succeeded, 0 to 1.
    success_rate: f64,
    /// Median, milliseconds.
    p50: f64,
    /// 95th percentile.
    p95: f64,
    /// 99th percentile.
    p99: f64,
}

/// Who a report covers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportScope {
    /// One user.
    User,
    /// Everyone (admins).
    All,
}

/// A performance report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceReport {
    /// Start.
    from: Option<DateTime<Utc>>,
    /// End.
    to: Option<DateTime<Utc>>,
    /// Grouping.
    group_by: GroupBy,
    /// Who it covers.
    scope: ReportScope,
    /// One row per group.
    groups: Vec<PerformanceGroup>,
}

/// GET /mobile/performance: the caller's own events; an admin sees everyone's (or one
/// user's with `userId`).
pub async fn performance(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    query: ValidQuery<PerformanceQuery>,
) -> Result<Reply<PerformanceReport>, ApiError> {
    let q = query.0;
    let now = Utc::now().timestamp_millis();
    let to = q.to.map_or(now, |t| t.timestamp_millis());
    let from = q.from.map_or(to - 7 * 86_400_000, |t| t.timestamp_millis());
    // Whether `from` comes before `to` is the service's rule (it widens the range to hours).
    let group_by = q.group_by.unwrap_or(GroupBy::Connection);
    let is_admin = user.0.role == Role::Admin;
    let scope = if is_admin && q.user_id.is_none() {
        ReportScope::All
    } else {
        ReportScope::User
    };
    let user_id = match (is_admin, q.user_id) {
        (true, Some(u)) => u,
        (true, None) => String::new(),
        (false, Some(u)) if u == user.0.user_id => u,
        (false, Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only admins may read another user's performance",
            ));
        }
        (false, None) => user.0.user_id.clone(),
    };
    let r = state
        .media()?
        .get_performance(outgoing(
            pb::GetPerformanceRequest {
                user_id,
                from_ms: from,
                to_ms: to,
                group_by: match group_by {
                    GroupBy::Connection => pb::GroupBy::Connection,
                    GroupBy::Device => pb::GroupBy::Device,
                } as i32,
                r#type: q.event_type.map(|t| t.as_str().to_string()).unwrap_or_default(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(PerformanceReport {
        from: at(from),
        to: at(to),
        group_by,
        scope,
        groups: r
            .groups
            .into_iter()
            .map(|g| PerformanceGroup {
                key: g.key,
                count: g.count,
                success_rate: g.success_rate,
                p50: g.p50_ms,
                p95: g.p95_ms,
                p99: g.p99_ms,
            })
            .collect(),
    }))
}

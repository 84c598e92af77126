//! `/v1/monitoring/*` (projects, error groups, native error ingest) and the Sentry ingest
//! endpoints the official SDKs post to (`/sentry/api/{projectId}/envelope/` and the legacy
//! `…/store/`), answered by the monitoring service.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use portico_monitoring_domain::{event::Level, group::GroupStatus};
use portico_proto::monitoring::v1 as pb;
use portico_runtime::{ErrorCode, Problem, grpc::outgoing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, Rid, User, at};
use crate::{
    AppState,
    contract::{Created, Reply, Valid, ValidQuery},
    envelope::{ApiError, RawBody, current_request_id, problem_response},
    ratelimit::Quota,
};

/// A project errors are reported into.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MonitoringProject)]
pub struct Project {
    /// Numeric id (the last part of the DSN).
    #[schema(example = 1)]
    id: i64,
    /// Its name.
    name: String,
    /// 32 hex characters: the DSN's user.
    #[schema(example = "0123456789abcdef0123456789abcdef")]
    public_key: String,
    /// What `sentry_sdk.init(dsn=…)` / `Sentry.init({dsn})` takes.
    #[schema(example = "https://0123456789abcdef0123456789abcdef@portico.example.com/sentry/1")]
    dsn: String,
    /// When it was made.
    created_at: Option<DateTime<Utc>>,
}

impl From<pb::Project> for Project {
    fn from(p: pb::Project) -> Self {
        Project {
            dsn: p.dsn,
            id: p.id,
            name: p.name,
            public_key: p.public_key,
            created_at: at(p.created_at_ms),
        }
    }
}

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "shop-backend"}))]
pub struct CreateProject {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// POST /monitoring/projects
pub async fn create_project(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    body: Valid<CreateProject>,
) -> Result<Created<Project>, ApiError> {
    let p = state
        .monitoring()?
        .create_project(outgoing(pb::CreateProjectRequest { name: body.0.name }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(p.into()))
}

/// GET /monitoring/projects
pub async fn list_projects(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
) -> Result<Reply<Vec<Project>>, ApiError> {
    let list = state
        .monitoring()?
        .list_projects(outgoing(pb::ListProjectsRequest {}, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(list.projects.into_iter().map(Project::from).collect()))
}

/// One stack frame, oldest call first.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = StackFrame)]
pub struct Frame {
    /// Module or package (`app.checkout`).
    #[schema(max_length = 256)]
    module: Option<String>,
    /// File path.
    #[schema(max_length = 1024)]
    filename: Option<String>,
    /// Function.
    #[schema(max_length = 256)]
    function: Option<String>,
    /// Line number (shown, never grouped on).
    #[schema(minimum = 0, maximum = 10_000_000)]
    lineno: Option<u32>,
    /// The source line (grouped on, whitespace collapsed).
    #[schema(max_length = 1024)]
    context_line: Option<String>,
    /// The application's own code (default true; library frames do not decide the group).
    in_app: Option<bool>,
}

/// A native error event, for clients without a Sentry SDK.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"message": "payment declined for order 1234", "type": "PaymentError", "level": "error",
    "release": "app@2.3.0", "frames": [{"module": "app.checkout", "function": "pay", "lineno": 88}]}))]
pub struct ErrorEvent {
    /// The error message (a message or a type is required).
    #[schema(max_length = 8192)]
    message: Option<String>,
    /// The error type (`PaymentError`).
    #[serde(rename = "type")]
    #[schema(max_length = 256)]
    kind: Option<String>,
    /// Stack frames, oldest call first.
    #[schema(max_items = 250)]
    frames: Option<Vec<Frame>>,
    /// A custom grouping: events with the same fingerprint are one group (`{{ default }}`
    /// stands for the computed grouping).
    #[schema(max_items = 16)]
    fingerprint: Option<Vec<String>>,
    /// Severity (default error).
    level: Option<Level>,
    /// Release (`app@2.3.0`).
    #[schema(max_length = 200)]
    release: Option<String>,
    /// Environment (`production`).
    #[schema(max_length = 64)]
    environment: Option<String>,
    /// Tags.
    tags: Option<std::collections::BTreeMap<String, String>>,
    /// The affected user (default: the caller).
    #[schema(max_length = 128)]
    user_id: Option<String>,
    /// When it happened (default: now).
    occurred_at: Option<DateTime<Utc>>,
    /// The project (default: the default project, made on first use).
    #[schema(minimum = 1)]
    project_id: Option<i64>,
}

/// An accepted error event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorAccepted {
    /// The group it joined.
    group_id: String,
    /// Its id.
    event_id: String,
}

/// POST /monitoring/errors
pub async fn ingest_error(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<ErrorEvent>,
) -> Result<Reply<ErrorAccepted, 202>, ApiError> {
    let e = body.0;
    let r = state
        .monitoring()?
        .ingest_error(outgoing(
            pb::IngestErrorRequest {
                project_id: e.project_id.unwrap_or(0),
                message: e.message.unwrap_or_default(),
                r#type: e.kind.unwrap_or_default(),
                frames: e
                    .frames
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| pb::StackFrame {
                        module: f.module.unwrap_or_default(),
                        filename: f.filename.unwrap_or_default(),
                        function: f.function.unwrap_or_default(),
                        context_line: f.context_line.unwrap_or_default(),
                        in_app: f.in_app.unwrap_or(true),
                        lineno: f.lineno.unwrap_or(0),
                    })
                    .collect(),
                fingerprint: e.fingerprint.unwrap_or_default(),
                level: e.level.unwrap_or(Level::Error).as_str().to_string(),
                release: e.release.unwrap_or_default(),
                environment: e.environment.unwrap_or_default(),
                tags: e.tags.unwrap_or_default().into_iter().collect(),
                user_id: e.user_id.unwrap_or_else(|| user.0.user_id.clone()),
                occurred_at_ms: e.occurred_at.map_or(0, |t| t.timestamp_millis()),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(ErrorAccepted {
        group_id: r.group_id,
        event_id: r.event_id,
    }))
}

/// A status as the gRPC API spells it.
fn status_to_proto(s: GroupStatus) -> pb::GroupStatus {
    match s {
        GroupStatus::Open => pb::GroupStatus::Open,
        GroupStatus::Resolved => pb::GroupStatus::Resolved,
        GroupStatus::Ignored => pb::GroupStatus::Ignored,
    }
}

/// A status from the gRPC API (unknown: open).
fn status_from_proto(v: i32) -> GroupStatus {
    match pb::GroupStatus::try_from(v).unwrap_or(pb::GroupStatus::Open) {
        pb::GroupStatus::Resolved => GroupStatus::Resolved,
        pb::GroupStatus::Ignored => GroupStatus::Ignored,
        pb::GroupStatus::Open | pb::GroupStatus::Unspecified => GroupStatus::Open,
    }
}

/// A group of events that are the same error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErrorGroup)]
pub struct Group {
    /// Its id.
    id: String,
    /// Its project.
    project_id: i64,
    /// `Type: value` of the error, or its message.
    title: String,
    /// Where it happens (`module in function`).
    culprit: Option<String>,
    /// The latest event's level.
    level: Level,
    /// Events.
    count: i64,
    /// Distinct users affected.
    users_affected: i64,
    /// First event.
    first_seen: Option<DateTime<Utc>>,
    /// Latest event.
    last_seen: Option<DateTime<Utc>>,
    /// Its status.
    status: GroupStatus,
    /// Reopened by an event after it was resolved.
    regressed: bool,
    /// Release of the first event.
    first_release: Option<String>,
    /// Release of the latest event that named one.
    last_release: Option<String>,
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<pb::Group> for Group {
    fn from(g: pb::Group) -> Self {
        Group {
            status: status_from_proto(g.status),
            level: Level::parse(&g.level).unwrap_or(Level::Error),
            id: g.id,
            project_id: g.project_id,
            title: g.title,
            culprit: nonempty(g.culprit),
            count: g.count,
            users_affected: g.users_affected,
            first_seen: at(g.first_seen_ms),
            last_seen: at(g.last_seen_ms),
            regressed: g.regressed,
            first_release: nonempty(g.first_release),
            last_release: nonempty(g.last_release),
        }
    }
}

/// `?projectId&status&release&limit&cursor` of the group list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupsQuery {
    /// Only this project's groups.
    #[schema(minimum = 1)]
    project_id: Option<i64>,
    /// Only groups with this status.
    status: Option<GroupStatus>,
    /// Only groups first or last seen in this release.
    #[schema(max_length = 200)]
    release: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[schema(max_length = 128, pattern = "^[0-9]+\\.[0-9a-f-]+$")]
    cursor: Option<String>,
}

/// A page of groups, most recently seen first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupPage {
    /// This page.
    items: Vec<Group>,
    /// Pass it back as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// GET /monitoring/errors
pub async fn list_errors(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    query: ValidQuery<GroupsQuery>,
) -> Result<Reply<GroupPage>, ApiError> {
    let q = query.0;
    let page = state
        .monitoring()?
        .list_groups(outgoing(
            pb::ListGroupsRequest {
                project_id: q.project_id.unwrap_or(0),
                status: q.status.map_or(pb::GroupStatus::Unspecified, status_to_proto) as i32,
                release: q.release.unwrap_or_default(),
                cursor: q.cursor.unwrap_or_default(),
                limit: q.limit.unwrap_or(25),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(GroupPage {
        items: page.groups.into_iter().map(Group::from).collect(),
        next_cursor: nonempty(page.next_cursor),
    }))
}

/// A group with its latest event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDetail {
    /// The group.
    #[serde(flatten)]
    group: Group,
    /// The latest event as it was received (absent once past retention).
    latest_event: Option<serde_json::Value>,
}

/// GET /monitoring/errors/{groupId}
pub async fn get_error(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<Reply<GroupDetail>, ApiError> {
    let d = state
        .monitoring()?
        .get_group(outgoing(
            pb::GetGroupRequest {
                group_id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let group = d
        .group
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "error group not found"))?;
    Ok(Reply(GroupDetail {
        group: group.into(),
        latest_event: serde_json::from_str(&d.latest_event_json).ok(),
    }))
}

/// A status change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "resolved"}))]
pub struct UpdateGroup {
    /// The new status.
    status: GroupStatus,
}

/// PATCH /monitoring/errors/{groupId}
pub async fn update_error(
    state: web::Data<AppState>,
    rid: Rid,
    _admin: Admin,
    id: web::Path<String>,
    body: Valid<UpdateGroup>,
) -> Result<Reply<Group>, ApiError> {
    let g = state
        .monitoring()?
        .update_group(outgoing(
            pb::UpdateGroupRequest {
                group_id: id.into_inner(),
                status: status_to_proto(body.0.status) as i32,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(g.into()))
}

/// What the Sentry ingest answers, outside the envelope (what Sentry answers).
#[derive(Debug, Serialize)]
pub struct SentryAck {
    /// The event's id; null when the envelope held no error event.
    id: Option<String>,
}

impl crate::contract::doc::ResponseDoc for SentryAck {
    fn document(_: &mut crate::contract::doc::Schemas) -> crate::contract::doc::Output {
        crate::contract::doc::Output {
            status: 200,
            response: serde_json::json!({
                "description": "Accepted: the error event's id, as Sentry answers (null when the envelope held none; an envelope carries at most one).",
                "content": { "application/json": { "schema": {
                    "type": "object", "required": ["id"],
                    "properties": { "id": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$",
                        "example": "9ec79c33ec9942ab8353589fcb2e04dc" } } } } },
            }),
            others: Vec::new(),
        }
    }
}

/// POST /sentry/api/{projectId}/envelope/
pub async fn sentry_envelope(
    state: web::Data<AppState>,
    rid: Rid,
    req: HttpRequest,
    project: web::Path<String>,
    body: Result<RawBody, ApiError>,
) -> HttpResponse {
    sentry_ingest(&state, &rid, &req, &project, body, false).await
}

/// POST /sentry/api/{projectId}/store/
pub async fn sentry_store(
    state: web::Data<AppState>,
    rid: Rid,
    req: HttpRequest,
    project: web::Path<String>,
    body: Result<RawBody, ApiError>,
) -> HttpResponse {
    sentry_ingest(&state, &rid, &req, &project, body, true).await
}

/// Where a Sentry request carries its key, as it came: `X-Sentry-Auth` (or `Authorization:
/// Sentry …`), else the query string (the browser SDK's way). The service reads the key out.
fn sentry_auth(req: &HttpRequest) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    header("x-sentry-auth")
        .or_else(|| header("authorization").filter(|v| v.starts_with("Sentry ")))
        .unwrap_or(req.query_string())
        .to_string()
}

async fn sentry_ingest(
    state: &AppState,
    rid: &Rid,
    req: &HttpRequest,
    project: &str,
    body: Result<RawBody, ApiError>,
    store: bool,
) -> HttpResponse {
    let refuse = |p: Problem| problem_response(&p, &current_request_id());
    let body = match body {
        Ok(RawBody(body)) => body,
        Err(e) => return refuse(e.0),
    };
    // A project id is a number; anything else is no project (the same answer as a bad key,
    // so ids cannot be told from keys).
    let Ok(project_id) = project.parse::<i64>() else {
        return refuse(Problem::new(ErrorCode::SentryKeyInvalid, "no such project or key"));
    };
    // Each project's ingest budget, apart from every caller's API budget (an app in a crash
    // loop must not starve the API, nor another project).
    let decision = state
        .limiter
        .check(
            &format!("sentry:{project_id}"),
            Quota::per_minute(state.config.sentry.events_per_min),
        )
        .await;
    if !decision.allowed {
        let secs = decision.retry_after_secs.max(1);
        let mut res = refuse(Problem::new(
            ErrorCode::RateLimited,
            format!("project {project_id} is over its ingest budget; retry in {secs} s"),
        ));
        for (name, value) in [
            ("x-sentry-rate-limits", format!("{secs}:error:key")),
            ("retry-after", secs.to_string()),
        ] {
            if let Ok(v) = header::HeaderValue::from_str(&value) {
                res.headers_mut().insert(header::HeaderName::from_static(name), v);
            }
        }
        return res;
    }
    let request = pb::IngestSentryRequest {
        project_id,
        auth: sentry_auth(req),
        body,
        store,
    };
    let mut client = match state.monitoring() {
        Ok(c) => c,
        Err(e) => return refuse(e.0),
    };
    match client.ingest_sentry(outgoing(request, &rid.0)).await {
        Ok(r) => {
            let r = r.into_inner();
            HttpResponse::Ok().json(SentryAck {
                id: nonempty(r.event_id),
            })
        }
        Err(status) => refuse(Problem::from_status(&status)),
    }
}

/// The Sentry ingest's input as the OpenAPI document shows it.
pub fn sentry_input() -> serde_json::Value {
    serde_json::json!({
        "parameters": [
            {"name": "projectId", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}},
            {"name": "X-Sentry-Auth", "in": "header", "required": false,
             "description": "`Sentry sentry_key=<public key>, sentry_version=7, sentry_client=…` (or `?sentry_key=` in the query, or the key in the envelope header's `dsn`).",
             "schema": {"type": "string", "maxLength": 1024}},
            {"name": "sentry_key", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 64}},
            {"name": "Content-Encoding", "in": "header", "required": false, "schema": {"type": "string", "enum": ["gzip", "deflate", "br", "zstd", "identity"]}},
        ],
        "requestBody": {
            "required": true,
            "description": "A Sentry envelope (newline-delimited: a JSON header, then items with their JSON headers), or on `store` one event object; at most `PORTICO_SENTRY_MAX_BYTES` once decoded.",
            "content": {
                "application/x-sentry-envelope": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
    })
}

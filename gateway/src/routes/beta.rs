//! `/v1/beta/*` and `/v1/admin/beta/*`: validated here, answered by the beta service.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web};
use portico_proto::beta::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Admin, PageQuery, Rid, User, rfc3339};
use crate::{
    AppState,
    envelope::{ApiError, ApiResult, Json, ok, success},
};

/// The public name of a level (`NONE`, `BASIC`, ...).
pub fn level_name(value: i32) -> &'static str {
    match pb::AccessLevel::try_from(value).unwrap_or(pb::AccessLevel::None) {
        pb::AccessLevel::Unspecified | pb::AccessLevel::None => "NONE",
        pb::AccessLevel::Basic => "BASIC",
        pb::AccessLevel::Premium => "PREMIUM",
        pb::AccessLevel::Advanced => "ADVANCED",
        pb::AccessLevel::Developer => "DEVELOPER",
    }
}

fn parse_level(name: &str) -> Option<pb::AccessLevel> {
    match name.trim().to_ascii_uppercase().as_str() {
        "NONE" => Some(pb::AccessLevel::None),
        "BASIC" => Some(pb::AccessLevel::Basic),
        "PREMIUM" => Some(pb::AccessLevel::Premium),
        "ADVANCED" => Some(pb::AccessLevel::Advanced),
        "DEVELOPER" => Some(pb::AccessLevel::Developer),
        _ => None,
    }
}

fn parse_time(field: &str, raw: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|d| d.timestamp_millis())
        .map_err(|_| ApiError::fields([(field, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")]))
}

/// What a user may use, as answered by user-access and join.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessView<'a> {
    access_level: &'static str,
    features: BTreeMap<&'a str, bool>,
    joined_at: Value,
    /// Join only: whether the join raised the caller's level.
    #[serde(skip_serializing_if = "Option::is_none")]
    upgraded: Option<bool>,
}

fn access_view(a: &pb::UserAccess) -> AccessView<'_> {
    AccessView {
        access_level: level_name(a.access_level),
        features: a.features.iter().map(|f| (f.name.as_str(), f.enabled)).collect(),
        joined_at: a.joined_at_ms.map(rfc3339).unwrap_or(Value::Null),
        upgraded: None,
    }
}

fn code_json(c: &pb::InviteCode) -> Value {
    json!({
        "code": c.code,
        "accessLevel": level_name(c.access_level),
        "maxUses": c.max_uses,
        "uses": c.uses,
        "remainingUses": (c.max_uses - c.uses).max(0),
        "expiresAt": c.expires_at_ms.map(rfc3339).unwrap_or(Value::Null),
        "active": c.active,
        "createdAt": rfc3339(c.created_at_ms),
        "createdBy": c.created_by,
    })
}

fn member_json(u: &pb::BetaUser) -> Value {
    json!({
        "userId": u.user_id,
        "accessLevel": level_name(u.access_level),
        "joinedAt": rfc3339(u.joined_at_ms),
        "updatedAt": rfc3339(u.updated_at_ms),
        "inviteCode": u.invite_code,
    })
}

/// `{code}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteCodeRequest {
    code: Option<String>,
}

impl InviteCodeRequest {
    fn code(self) -> Result<String, ApiError> {
        match self.code.map(|c| c.trim().to_string()) {
            Some(c) if !c.is_empty() && c.len() <= 64 => Ok(c),
            Some(c) if !c.is_empty() => Err(ApiError::fields([("code", "must be at most 64 characters")])),
            _ => Err(ApiError::fields([("code", "is required")])),
        }
    }
}

/// POST /beta/validate-invite
pub async fn validate_invite(state: web::Data<AppState>, rid: Rid, body: Json<InviteCodeRequest>) -> ApiResult {
    let code = body.0.code()?;
    let r = state
        .beta()?
        .validate_invite(outgoing(pb::ValidateInviteRequest { code }, &rid.0))
        .await?
        .into_inner();
    if r.valid {
        return Ok(ok(json!({
            "valid": true,
            "accessLevel": level_name(r.access_level),
            "remainingUses": r.remaining_uses,
            "expiresAt": r.expires_at_ms.map(rfc3339).unwrap_or(Value::Null),
        })));
    }
    let reason = match pb::InviteProblem::try_from(r.problem).unwrap_or(pb::InviteProblem::NotFound) {
        pb::InviteProblem::Expired => "expired",
        pb::InviteProblem::Exhausted => "exhausted",
        pb::InviteProblem::Inactive => "inactive",
        pb::InviteProblem::NotFound | pb::InviteProblem::Unspecified => "not_found",
    };
    Ok(ok(json!({ "valid": false, "reason": reason })))
}

/// POST /beta/join
pub async fn join(state: web::Data<AppState>, user: User, rid: Rid, body: Json<InviteCodeRequest>) -> ApiResult {
    let code = body.0.code()?;
    let r = state
        .beta()?
        .join(outgoing(
            pb::JoinRequest {
                user_id: user.0.user_id,
                code,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let access = r.access.unwrap_or_default();
    Ok(ok(AccessView {
        upgraded: Some(r.upgraded),
        ..access_view(&access)
    }))
}

/// GET /beta/user-access
pub async fn user_access(state: web::Data<AppState>, user: User, rid: Rid) -> ApiResult {
    let a = state
        .beta()?
        .get_user_access(outgoing(
            pb::GetUserAccessRequest {
                user_id: user.0.user_id,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(ok(access_view(&a)))
}

/// One analytics event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnalyticsEvent {
    feature: Option<String>,
    action: Option<String>,
    properties: Option<serde_json::Map<String, Value>>,
    occurred_at: Option<String>,
}

/// One event, or `{events: [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnalyticsEvents {
    events: Option<Vec<AnalyticsEvent>>,
    feature: Option<String>,
    action: Option<String>,
    properties: Option<serde_json::Map<String, Value>>,
    occurred_at: Option<String>,
}

const MAX_PROPERTIES_BYTES: usize = 8 * 1024;

/// POST /beta/analytics → 202
pub async fn analytics(state: web::Data<AppState>, user: User, rid: Rid, body: Json<AnalyticsEvents>) -> ApiResult {
    let b = body.0;
    let single = b.feature.is_some() || b.action.is_some() || b.properties.is_some() || b.occurred_at.is_some();
    let (events, prefix) = match (b.events, single) {
        (Some(_), true) => {
            return Err(ApiError::fields([(
                "events",
                "send either one event or {events: [...]}, not both",
            )]));
        }
        (Some(events), false) => (events, "events."),
        (None, true) => (
            vec![AnalyticsEvent {
                feature: b.feature,
                action: b.action,
                properties: b.properties,
                occurred_at: b.occurred_at,
            }],
            "",
        ),
        (None, false) => {
            return Err(ApiError::fields([
                ("feature", "is required"),
                ("action", "is required"),
            ]));
        }
    };
    if events.is_empty() || events.len() > 100 {
        return Err(ApiError::fields([("events", "must hold 1 to 100 events")]));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let at = |f: &str| {
            if prefix.is_empty() {
                f.to_string()
            } else {
                format!("{prefix}{i}.{f}")
            }
        };
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 64)
                .map(String::from)
        };
        let feature = text(&e.feature);
        let action = text(&e.action);
        if feature.is_none() {
            bad.push((at("feature"), "is required (1 to 64 characters)".into()));
        }
        if action.is_none() {
            bad.push((at("action"), "is required (1 to 64 characters)".into()));
        }
        let properties = e.properties.map(|p| Value::Object(p).to_string()).unwrap_or_default();
        if properties.len() > MAX_PROPERTIES_BYTES {
            bad.push((
                at("properties"),
                format!("must be at most {MAX_PROPERTIES_BYTES} bytes of JSON"),
            ));
        }
        let occurred_at = match e.occurred_at.as_deref().map(|t| parse_time(&at("occurredAt"), t)) {
            Some(Ok(ms)) if ms > now + 5 * 60_000 => {
                bad.push((at("occurredAt"), "must not be in the future".into()));
                None
            }
            Some(Ok(ms)) => Some(ms),
            Some(Err(ApiError(p))) => {
                bad.push((
                    at("occurredAt"),
                    p.message.replace("invalid fields: ", "must be an RFC 3339 date-time "),
                ));
                None
            }
            None => None,
        };
        out.push(pb::AnalyticsEvent {
            feature: feature.unwrap_or_default(),
            action: action.unwrap_or_default(),
            properties_json: properties,
            occurred_at_ms: occurred_at,
        });
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let r = state
        .beta()?
        .record_events(outgoing(
            pb::RecordEventsRequest {
                user_id: user.0.user_id,
                events: out,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(success(StatusCode::ACCEPTED, json!({ "accepted": r.accepted })))
}

/// Invite code creation body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateInviteCode {
    code: Option<String>,
    access_level: Option<String>,
    max_uses: Option<i32>,
    expires_at: Option<String>,
}

/// POST /admin/beta/invite-codes → 201
pub async fn create_code(
    state: web::Data<AppState>,
    admin: Admin,
    rid: Rid,
    body: Json<CreateInviteCode>,
) -> ApiResult {
    let b = body.0;
    let mut bad: Vec<(String, String)> = Vec::new();
    let level = match b.access_level.as_deref().map(parse_level) {
        Some(Some(l)) if l != pb::AccessLevel::None => l,
        Some(_) => {
            bad.push((
                "accessLevel".into(),
                "must be BASIC, PREMIUM, ADVANCED or DEVELOPER".into(),
            ));
            pb::AccessLevel::Unspecified
        }
        None => {
            bad.push(("accessLevel".into(), "is required".into()));
            pb::AccessLevel::Unspecified
        }
    };
    if b.max_uses.is_none() {
        bad.push(("maxUses".into(), "is required".into()));
    }
    let expires = match b.expires_at.as_deref().map(|t| parse_time("expiresAt", t)) {
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => {
            bad.push(("expiresAt".into(), "must be an RFC 3339 date-time".into()));
            None
        }
        None => None,
    };
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let req = pb::CreateInviteCodeRequest {
        code: b.code.unwrap_or_default(),
        access_level: level as i32,
        max_uses: b.max_uses.unwrap_or_default(),
        expires_at_ms: expires,
        created_by: admin.0.user_id,
    };
    let c = state
        .beta()?
        .create_invite_code(outgoing(req, &rid.0))
        .await?
        .into_inner();
    Ok(success(StatusCode::CREATED, code_json(&c)))
}

/// GET /admin/beta/invite-codes
pub async fn list_codes(state: web::Data<AppState>, _admin: Admin, rid: Rid, q: web::Query<PageQuery>) -> ApiResult {
    let (limit, offset) = q.bounds()?;
    let r = state
        .beta()?
        .list_invite_codes(outgoing(pb::ListInviteCodesRequest { limit, offset }, &rid.0))
        .await?
        .into_inner();
    Ok(ok(json!({
        "items": r.codes.iter().map(code_json).collect::<Vec<_>>(),
        "total": r.total, "limit": limit, "offset": offset,
    })))
}

/// GET /admin/beta/invite-codes/{code}
pub async fn get_code(state: web::Data<AppState>, _admin: Admin, rid: Rid, code: web::Path<String>) -> ApiResult {
    let c = state
        .beta()?
        .get_invite_code(outgoing(
            pb::GetInviteCodeRequest {
                code: code.into_inner(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(ok(code_json(&c)))
}

/// Invite code change body. `expiresAt: null` removes the expiry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateInviteCode {
    active: Option<bool>,
    max_uses: Option<i32>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// PATCH /admin/beta/invite-codes/{code}
pub async fn update_code(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    code: web::Path<String>,
    body: Json<UpdateInviteCode>,
) -> ApiResult {
    let b = body.0;
    let (expires_at_ms, clear_expiry) = match b.expires_at {
        None => (None, false),
        Some(None) => (None, true),
        Some(Some(t)) => (Some(parse_time("expiresAt", &t)?), false),
    };
    let req = pb::UpdateInviteCodeRequest {
        code: code.into_inner(),
        active: b.active,
        max_uses: b.max_uses,
        expires_at_ms,
        clear_expiry,
    };
    let c = state
        .beta()?
        .update_invite_code(outgoing(req, &rid.0))
        .await?
        .into_inner();
    Ok(ok(code_json(&c)))
}

/// GET /admin/beta/users
pub async fn list_users(state: web::Data<AppState>, _admin: Admin, rid: Rid, q: web::Query<PageQuery>) -> ApiResult {
    let (limit, offset) = q.bounds()?;
    let r = state
        .beta()?
        .list_users(outgoing(pb::ListUsersRequest { limit, offset }, &rid.0))
        .await?
        .into_inner();
    Ok(ok(json!({
        "items": r.users.iter().map(member_json).collect::<Vec<_>>(),
        "total": r.total, "limit": limit, "offset": offset,
    })))
}

/// Level body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetLevel {
    access_level: Option<String>,
}

/// PUT /admin/beta/users/{userId}
pub async fn set_user_level(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    user_id: web::Path<String>,
    body: Json<SetLevel>,
) -> ApiResult {
    let level =
        body.0.access_level.as_deref().and_then(parse_level).ok_or_else(|| {
            ApiError::fields([("accessLevel", "must be NONE, BASIC, PREMIUM, ADVANCED or DEVELOPER")])
        })?;
    // Only real accounts can be given a level.
    state.auth.user(&user_id).await?;
    let req = pb::SetUserLevelRequest {
        user_id: user_id.into_inner(),
        access_level: level as i32,
    };
    let u = state.beta()?.set_user_level(outgoing(req, &rid.0)).await?.into_inner();
    Ok(ok(member_json(&u)))
}

fn features_json(t: &pb::FeatureTable) -> Value {
    Value::Array(
        t.features
            .iter()
            .map(|f| json!({ "name": f.name, "minLevel": level_name(f.min_level), "description": f.description }))
            .collect(),
    )
}

/// GET /admin/beta/features
pub async fn features(state: web::Data<AppState>, _admin: Admin, rid: Rid) -> ApiResult {
    let t = state
        .beta()?
        .get_features(outgoing(pb::GetFeaturesRequest {}, &rid.0))
        .await?
        .into_inner();
    Ok(ok(json!({ "features": features_json(&t) })))
}

/// One feature row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FeatureInput {
    name: Option<String>,
    min_level: Option<String>,
    description: Option<String>,
}

/// The whole feature table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureTable {
    features: Option<Vec<FeatureInput>>,
}

/// PUT /admin/beta/features
pub async fn set_features(state: web::Data<AppState>, _admin: Admin, rid: Rid, body: Json<FeatureTable>) -> ApiResult {
    let rows = body
        .0
        .features
        .ok_or_else(|| ApiError::fields([("features", "is required")]))?;
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut features = Vec::with_capacity(rows.len());
    for (i, f) in rows.into_iter().enumerate() {
        if f.name.as_deref().is_none_or(str::is_empty) {
            bad.push((format!("features.{i}.name"), "is required".into()));
        }
        let level = f.min_level.as_deref().and_then(parse_level);
        if level.is_none() {
            bad.push((
                format!("features.{i}.minLevel"),
                "must be NONE, BASIC, PREMIUM, ADVANCED or DEVELOPER".into(),
            ));
        }
        features.push(pb::Feature {
            name: f.name.unwrap_or_default(),
            min_level: level.unwrap_or(pb::AccessLevel::Unspecified) as i32,
            description: f.description.unwrap_or_default(),
        });
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let t = state
        .beta()?
        .set_features(outgoing(pb::SetFeaturesRequest { features }, &rid.0))
        .await?
        .into_inner();
    Ok(ok(json!({ "features": features_json(&t) })))
}

/// `?from=&to=` (RFC 3339; default the last 7 days).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// GET /admin/beta/analytics/summary
pub async fn summary(state: web::Data<AppState>, _admin: Admin, rid: Rid, q: web::Query<RangeQuery>) -> ApiResult {
    let now = chrono::Utc::now().timestamp_millis();
    let to = match q.to.as_deref() {
        Some(t) => parse_time("to", t)?,
        None => now + 1,
    };
    let from = match q.from.as_deref() {
        Some(t) => parse_time("from", t)?,
        None => to - 7 * 24 * 3600 * 1000,
    };
    if from >= to {
        return Err(ApiError::fields([("to", "must be after from")]));
    }
    let r = state
        .beta()?
        .analytics_summary(outgoing(
            pb::AnalyticsSummaryRequest {
                from_ms: from,
                to_ms: to,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let features: Vec<Value> = r
        .features
        .iter()
        .map(|f| {
            let by_level: BTreeMap<&str, i64> = f
                .by_level
                .iter()
                .map(|l| (level_name(l.access_level), l.events))
                .collect();
            json!({ "feature": f.feature, "events": f.events, "uniqueUsers": f.unique_users, "byLevel": by_level })
        })
        .collect();
    Ok(ok(json!({
        "from": rfc3339(from), "to": rfc3339(to),
        "totalEvents": r.total_events, "uniqueUsers": r.unique_users,
        "features": features,
    })))
}

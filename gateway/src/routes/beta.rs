//! `/v1/beta/*` and `/v1/admin/beta/*`: validated here, answered by the beta service.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, Utc};
use portico_proto::beta::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Accepted, Admin, PageQuery, Rid, User, at};
use crate::{
    AppState,
    contract::{Created, Reply, Valid, ValidQuery},
    envelope::ApiError,
};

/// A beta access level, ordered NONE < BASIC < PREMIUM < ADVANCED < DEVELOPER.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Not in the beta.
    None,
    /// Basic.
    Basic,
    /// Premium.
    Premium,
    /// Advanced.
    Advanced,
    /// Developer.
    Developer,
}

impl Level {
    /// From the wire value (unknown values are NONE).
    pub fn from_proto(value: i32) -> Level {
        match pb::AccessLevel::try_from(value).unwrap_or(pb::AccessLevel::None) {
            pb::AccessLevel::Unspecified | pb::AccessLevel::None => Level::None,
            pb::AccessLevel::Basic => Level::Basic,
            pb::AccessLevel::Premium => Level::Premium,
            pb::AccessLevel::Advanced => Level::Advanced,
            pb::AccessLevel::Developer => Level::Developer,
        }
    }

    /// To the wire value.
    pub fn to_proto(self) -> pb::AccessLevel {
        match self {
            Level::None => pb::AccessLevel::None,
            Level::Basic => pb::AccessLevel::Basic,
            Level::Premium => pb::AccessLevel::Premium,
            Level::Advanced => pb::AccessLevel::Advanced,
            Level::Developer => pb::AccessLevel::Developer,
        }
    }
}

/// The level an invitation code gives (any but NONE).
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeLevel {
    /// Basic.
    Basic,
    /// Premium.
    Premium,
    /// Advanced.
    Advanced,
    /// Developer.
    Developer,
}

impl From<CodeLevel> for Level {
    fn from(l: CodeLevel) -> Level {
        match l {
            CodeLevel::Basic => Level::Basic,
            CodeLevel::Premium => Level::Premium,
            CodeLevel::Advanced => Level::Advanced,
            CodeLevel::Developer => Level::Developer,
        }
    }
}

/// What a user may use, as answered by user-access and join.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The caller's level.
    access_level: Level,
    /// Every feature flag, on or off for that level.
    features: BTreeMap<String, bool>,
    /// When the caller joined (absent when not a member).
    joined_at: Option<DateTime<Utc>>,
    /// Join only: whether the join raised the caller's level.
    #[serde(skip_serializing_if = "Option::is_none")]
    upgraded: Option<bool>,
}

fn access(a: pb::UserAccess, upgraded: Option<bool>) -> Access {
    Access {
        access_level: Level::from_proto(a.access_level),
        features: a.features.into_iter().map(|f| (f.name, f.enabled)).collect(),
        joined_at: a.joined_at_ms.and_then(at),
        upgraded,
    }
}

/// An invitation code as admins see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCode {
    /// The code.
    #[schema(example = "COSNAPBETA2025")]
    code: String,
    /// The level it gives.
    access_level: Level,
    /// How many joins it admits.
    max_uses: i32,
    /// How many it has admitted.
    uses: i32,
    /// How many it still admits.
    remaining_uses: i32,
    /// When it stops working, if ever.
    expires_at: Option<DateTime<Utc>>,
    /// Whether it works at all.
    active: bool,
    /// When it was made.
    created_at: Option<DateTime<Utc>>,
    /// The admin who made it (empty for seeded codes).
    created_by: String,
}

impl From<pb::InviteCode> for InviteCode {
    fn from(c: pb::InviteCode) -> Self {
        InviteCode {
            remaining_uses: (c.max_uses - c.uses).max(0),
            access_level: Level::from_proto(c.access_level),
            expires_at: c.expires_at_ms.and_then(at),
            created_at: at(c.created_at_ms),
            code: c.code,
            max_uses: c.max_uses,
            uses: c.uses,
            active: c.active,
            created_by: c.created_by,
        }
    }
}

/// A beta member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user.
    user_id: String,
    /// Their level.
    access_level: Level,
    /// When they joined.
    joined_at: Option<DateTime<Utc>>,
    /// When their level last changed.
    updated_at: Option<DateTime<Utc>>,
    /// The code that gave their level (empty when an admin set it).
    invite_code: String,
}

impl From<pb::BetaUser> for Member {
    fn from(u: pb::BetaUser) -> Self {
        Member {
            access_level: Level::from_proto(u.access_level),
            joined_at: at(u.joined_at_ms),
            updated_at: at(u.updated_at_ms),
            user_id: u.user_id,
            invite_code: u.invite_code,
        }
    }
}

/// `{code}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteCodeRequest {
    /// The invitation code (case and surrounding space do not matter).
    #[schema(min_length = 1, max_length = 64, pattern = r"\S", example = "COSNAPBETA2025")]
    code: String,
}

/// Whether a code can be redeemed, without using it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCheck {
    /// Whether it can be redeemed now.
    valid: bool,
    /// The level it gives (valid codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_level: Option<Level>,
    /// Joins it still admits (valid codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_uses: Option<i32>,
    /// When it stops working (valid codes that expire).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    /// Why not (invalid codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<InviteProblem>,
}

/// Why a code cannot be redeemed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteProblem {
    /// No such code.
    NotFound,
    /// Past its expiry.
    Expired,
    /// No uses left.
    Exhausted,
    /// Deactivated by an admin.
    Inactive,
}

/// POST /beta/validate-invite
pub async fn validate_invite(
    state: web::Data<AppState>,
    rid: Rid,
    body: Valid<InviteCodeRequest>,
) -> Result<Reply<InviteCheck>, ApiError> {
    let r = state
        .beta()?
        .validate_invite(outgoing(pb::ValidateInviteRequest { code: body.0.code }, &rid.0))
        .await?
        .into_inner();
    if r.valid {
        return Ok(Reply(InviteCheck {
            valid: true,
            access_level: Some(Level::from_proto(r.access_level)),
            remaining_uses: Some(r.remaining_uses),
            expires_at: r.expires_at_ms.and_then(at),
            reason: None,
        }));
    }
    let reason = match pb::InviteProblem::try_from(r.problem).unwrap_or(pb::InviteProblem::NotFound) {
        pb::InviteProblem::Expired => InviteProblem::Expired,
        pb::InviteProblem::Exhausted => InviteProblem::Exhausted,
        pb::InviteProblem::Inactive => InviteProblem::Inactive,
        pb::InviteProblem::NotFound | pb::InviteProblem::Unspecified => InviteProblem::NotFound,
    };
    Ok(Reply(InviteCheck {
        valid: false,
        access_level: None,
        remaining_uses: None,
        expires_at: None,
        reason: Some(reason),
    }))
}

/// POST /beta/join
pub async fn join(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    body: Valid<InviteCodeRequest>,
) -> Result<Reply<Access>, ApiError> {
    let r = state
        .beta()?
        .join(outgoing(
            pb::JoinRequest {
                user_id: user.0.user_id,
                code: body.0.code,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(access(r.access.unwrap_or_default(), Some(r.upgraded))))
}

/// GET /beta/user-access
pub async fn user_access(state: web::Data<AppState>, user: User, rid: Rid) -> Result<Reply<Access>, ApiError> {
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
    Ok(Reply(access(a, None)))
}

/// One feature-usage event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnalyticsEvent {
    /// The feature used.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S", example = "ai_filters")]
    feature: String,
    /// What was done with it.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S", example = "applied")]
    action: String,
    /// Free-form details (at most 8 KiB of JSON).
    #[schema(value_type = Option<Object>)]
    properties: Option<serde_json::Map<String, Value>>,
    /// When it happened (default: now; not in the future).
    occurred_at: Option<DateTime<Utc>>,
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsBatch {
    /// 1 to 100 events.
    #[schema(min_items = 1, max_items = 100)]
    events: Vec<AnalyticsEvent>,
}

/// One event, or `{events: [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"events": [{"feature": "ai_filters", "action": "applied", "properties": {"filter": "vintage"}}]}))]
pub enum AnalyticsEvents {
    /// A batch.
    Batch(AnalyticsBatch),
    /// One event.
    One(AnalyticsEvent),
}

const MAX_PROPERTIES_BYTES: usize = 8 * 1024;

/// POST /beta/analytics → 202
pub async fn analytics(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    body: Valid<AnalyticsEvents>,
) -> Result<Reply<Accepted, 202>, ApiError> {
    let (events, batch) = match body.0 {
        AnalyticsEvents::Batch(b) => (b.events, true),
        AnalyticsEvents::One(e) => (vec![e], false),
    };
    let now = Utc::now().timestamp_millis();
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let at = |f: &str| {
            if batch {
                format!("events[{i}].{f}")
            } else {
                f.to_string()
            }
        };
        let properties = e.properties.map(|p| Value::Object(p).to_string()).unwrap_or_default();
        if properties.len() > MAX_PROPERTIES_BYTES {
            bad.push((
                at("properties"),
                format!("must be at most {MAX_PROPERTIES_BYTES} bytes of JSON"),
            ));
        }
        let occurred_at = e.occurred_at.map(|t| t.timestamp_millis());
        if occurred_at.is_some_and(|ms| ms > now + 5 * 60_000) {
            bad.push((at("occurredAt"), "must not be in the future".into()));
        }
        out.push(pb::AnalyticsEvent {
            feature: e.feature.trim().to_string(),
            action: e.action.trim().to_string(),
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
    Ok(Reply(Accepted {
        accepted: u32::try_from(r.accepted).unwrap_or(0),
    }))
}

/// Invite code creation body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateInviteCode {
    /// The code (made up when left out): 4 to 64 of A-Z, 0-9, `_`, `-` (lower case is raised).
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{4,64}\s*$", example = "SPRING_LAUNCH")]
    code: Option<String>,
    /// The level it gives.
    access_level: CodeLevel,
    /// How many joins it admits.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_uses: i32,
    /// When it stops working.
    expires_at: Option<DateTime<Utc>>,
}

/// POST /admin/beta/invite-codes → 201
pub async fn create_code(
    state: web::Data<AppState>,
    admin: Admin,
    rid: Rid,
    body: Valid<CreateInviteCode>,
) -> Result<Created<InviteCode>, ApiError> {
    let b = body.0;
    let req = pb::CreateInviteCodeRequest {
        code: b.code.unwrap_or_default(),
        access_level: Level::from(b.access_level).to_proto() as i32,
        max_uses: b.max_uses,
        expires_at_ms: b.expires_at.map(|t| t.timestamp_millis()),
        created_by: admin.0.user_id,
    };
    let c = state
        .beta()?
        .create_invite_code(outgoing(req, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(c.into()))
}

/// A page of invitation codes.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteCodePage {
    /// This page.
    items: Vec<InviteCode>,
    /// How many there are in all.
    total: i64,
    /// The page size asked for.
    limit: i32,
    /// Where the page starts.
    offset: i32,
}

/// GET /admin/beta/invite-codes
pub async fn list_codes(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    q: ValidQuery<PageQuery>,
) -> Result<Reply<InviteCodePage>, ApiError> {
    let (limit, offset) = q.0.bounds();
    let r = state
        .beta()?
        .list_invite_codes(outgoing(pb::ListInviteCodesRequest { limit, offset }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(InviteCodePage {
        items: r.codes.into_iter().map(InviteCode::from).collect(),
        total: r.total,
        limit,
        offset,
    }))
}

/// GET /admin/beta/invite-codes/{code}
pub async fn get_code(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    code: web::Path<String>,
) -> Result<Reply<InviteCode>, ApiError> {
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
    Ok(Reply(c.into()))
}

/// Invite code change body: at least one field. `expiresAt: null` removes the expiry; the
/// other fields are left out, not null, to keep them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(min_properties = 1)]
#[schema(example = json!({"maxUses": 500, "expiresAt": "2027-06-30T23:59:59Z"}))]
pub struct UpdateInviteCode {
    /// Deactivate (false) or reactivate (true).
    #[schema(nullable = false)]
    active: Option<bool>,
    /// A new use limit (not below the uses so far).
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000)]
    max_uses: Option<i32>,
    /// A new expiry, or null for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    expires_at: Option<Option<DateTime<Utc>>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<DateTime<Utc>>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(d).map(Some)
}

/// PATCH /admin/beta/invite-codes/{code}
pub async fn update_code(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    code: web::Path<String>,
    body: Valid<UpdateInviteCode>,
) -> Result<Reply<InviteCode>, ApiError> {
    let b = body.0;
    let (expires_at_ms, clear_expiry) = match b.expires_at {
        None => (None, false),
        Some(None) => (None, true),
        Some(Some(t)) => (Some(t.timestamp_millis()), false),
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
    Ok(Reply(c.into()))
}

/// A page of beta members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// This page.
    items: Vec<Member>,
    /// How many there are in all.
    total: i64,
    /// The page size asked for.
    limit: i32,
    /// Where the page starts.
    offset: i32,
}

/// GET /admin/beta/users
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    q: ValidQuery<PageQuery>,
) -> Result<Reply<MemberPage>, ApiError> {
    let (limit, offset) = q.0.bounds();
    let r = state
        .beta()?
        .list_users(outgoing(pb::ListUsersRequest { limit, offset }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(MemberPage {
        items: r.users.into_iter().map(Member::from).collect(),
        total: r.total,
        limit,
        offset,
    }))
}

/// Level body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"accessLevel": "PREMIUM"}))]
pub struct SetLevel {
    /// The member's new level (NONE removes them from the beta).
    access_level: Level,
}

/// PUT /admin/beta/users/{userId}
pub async fn set_user_level(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    user_id: web::Path<String>,
    body: Valid<SetLevel>,
) -> Result<Reply<Member>, ApiError> {
    // Only real accounts can be given a level.
    state.auth.user(&user_id).await?;
    let req = pb::SetUserLevelRequest {
        user_id: user_id.into_inner(),
        access_level: body.0.access_level.to_proto() as i32,
    };
    let u = state.beta()?.set_user_level(outgoing(req, &rid.0)).await?.into_inner();
    Ok(Reply(u.into()))
}

/// One feature flag: the least level that sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Feature {
    /// Its name: 1 to 64 of a-z, 0-9, `_`, `.`, `-`.
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}$", example = "ai_filters")]
    name: String,
    /// The least level that sees it.
    min_level: Level,
    /// What it is, for admins.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// The whole feature table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"features": [{"name": "ai_filters", "minLevel": "PREMIUM", "description": "AI photo effects"}, {"name": "batch_export", "minLevel": "BASIC"}]}))]
pub struct FeatureTable {
    /// Every flag (names unique), at most 1000.
    #[schema(max_items = 1000)]
    features: Vec<Feature>,
}

impl From<pb::FeatureTable> for FeatureTable {
    fn from(t: pb::FeatureTable) -> Self {
        FeatureTable {
            features: t
                .features
                .into_iter()
                .map(|f| Feature {
                    name: f.name,
                    min_level: Level::from_proto(f.min_level),
                    description: f.description,
                })
                .collect(),
        }
    }
}

/// GET /admin/beta/features
pub async fn features(state: web::Data<AppState>, _admin: Admin, rid: Rid) -> Result<Reply<FeatureTable>, ApiError> {
    let t = state
        .beta()?
        .get_features(outgoing(pb::GetFeaturesRequest {}, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(t.into()))
}

/// PUT /admin/beta/features
pub async fn set_features(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    body: Valid<FeatureTable>,
) -> Result<Reply<FeatureTable>, ApiError> {
    let features = body
        .0
        .features
        .into_iter()
        .map(|f| pb::Feature {
            name: f.name,
            min_level: f.min_level.to_proto() as i32,
            description: f.description,
        })
        .collect();
    let t = state
        .beta()?
        .set_features(outgoing(pb::SetFeaturesRequest { features }, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(t.into()))
}

/// `?from=&to=` (RFC 3339; default the last 7 days).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// Start (inclusive).
    from: Option<DateTime<Utc>>,
    /// End (exclusive; after `from`).
    to: Option<DateTime<Utc>>,
}

/// One feature's usage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureUsage {
    /// The feature.
    feature: String,
    /// Events.
    events: i64,
    /// Distinct users.
    unique_users: i64,
    /// Events per member level.
    by_level: BTreeMap<String, i64>,
}

/// Usage over a range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// Start.
    from: Option<DateTime<Utc>>,
    /// End.
    to: Option<DateTime<Utc>>,
    /// Events in all.
    total_events: i64,
    /// Distinct users in all.
    unique_users: i64,
    /// Per feature.
    features: Vec<FeatureUsage>,
}

/// GET /admin/beta/analytics/summary
pub async fn summary(
    state: web::Data<AppState>,
    _admin: Admin,
    rid: Rid,
    q: ValidQuery<RangeQuery>,
) -> Result<Reply<UsageSummary>, ApiError> {
    let now = Utc::now().timestamp_millis();
    let to = q.0.to.map_or(now + 1, |t| t.timestamp_millis());
    let from = q.0.from.map_or(to - 7 * 24 * 3600 * 1000, |t| t.timestamp_millis());
    // Whether `from` comes before `to` is the service's rule.
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
    let features = r
        .features
        .into_iter()
        .map(|f| FeatureUsage {
            by_level: f
                .by_level
                .iter()
                .map(|l| {
                    (
                        format!("{:?}", Level::from_proto(l.access_level)).to_ascii_uppercase(),
                        l.events,
                    )
                })
                .collect(),
            feature: f.feature,
            events: f.events,
            unique_users: f.unique_users,
        })
        .collect();
    Ok(Reply(UsageSummary {
        from: at(from),
        to: at(to),
        total_events: r.total_events,
        unique_users: r.unique_users,
        features,
    }))
}

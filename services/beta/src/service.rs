//! The beta service: the rules of `domain` applied to the store, served over gRPC.

use std::{collections::BTreeMap, sync::Arc};

use portico_proto::beta::v1::{self as pb, beta_service_server::BetaService};
use portico_runtime::{
    Problem,
    cache::{Cache, CacheRegistry},
    db::{Db, now_ms},
    grpc,
};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, InviteProblem, Level},
    error::BetaError,
    store::{self, FeatureRow, InviteCodeChange, InviteCodeRow, MemberRow, NewEvent},
};

/// Fully qualified gRPC name, for health reporting.
pub const SERVICE_NAME: &str = "portico.beta.v1.BetaService";
const SVC: &str = "beta";
const FEATURES_KEY: &str = "all";
/// Most events accepted in one call.
pub const MAX_EVENTS_PER_BATCH: usize = 100;

/// A member's level as cached (absent for non-members, which are cached too).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Membership {
    level: i32,
    joined_at: i64,
}

/// The beta application: store, caches and rules.
#[derive(Clone)]
pub struct Beta {
    db: Db,
    members: Cache<Option<Membership>>,
    features: Cache<Arc<Vec<FeatureRow>>>,
}

impl Beta {
    /// The application over `db`, with caches registered in `registry`.
    pub fn new(db: Db, caches: &portico_runtime::cache::CacheSettings, registry: &CacheRegistry) -> Self {
        let members = Cache::new(
            "beta.membership",
            100_000,
            caches.l1_ttl,
            caches.ttl,
            caches.redis.clone(),
            registry,
        );
        let features = Cache::new(
            "beta.features",
            1,
            caches.l1_ttl,
            caches.ttl,
            caches.redis.clone(),
            registry,
        );
        Beta { db, members, features }
    }

    /// Inserts the demo codes if they are missing (embedded developer stack only).
    pub async fn seed_demo_codes(&self) -> Result<(), BetaError> {
        self.db
            .write(|conn| {
                for (code, level, max_uses) in domain::DEMO_CODES {
                    InviteCodeRow {
                        code: code.to_string(),
                        access_level: level.rank(),
                        max_uses,
                        uses: 0,
                        expires_at: None,
                        active: true,
                        created_at: now_ms(),
                        created_by: "seed".to_string(),
                    }
                    .insert_if_missing(conn)?;
                }
                Ok::<_, BetaError>(())
            })
            .await
    }

    async fn membership(&self, user_id: &str) -> Result<Option<Membership>, BetaError> {
        let id = user_id.to_string();
        let db = self.db.clone();
        self.members
            .get_or_load(user_id, || async move {
                db.run(move |conn| {
                    Ok::<_, BetaError>(MemberRow::find(conn, &id)?.map(|m| Membership {
                        level: m.access_level,
                        joined_at: m.joined_at,
                    }))
                })
                .await
            })
            .await
    }

    async fn feature_table(&self) -> Result<Arc<Vec<FeatureRow>>, BetaError> {
        let db = self.db.clone();
        self.features
            .get_or_load(FEATURES_KEY, || async move {
                db.run(|conn| Ok::<_, BetaError>(Arc::new(FeatureRow::all(conn)?)))
                    .await
            })
            .await
    }

    /// Reloads the feature table into both cache layers (the `cache_warmer` job): how many
    /// features it holds. Like any load, a change committed meanwhile invalidates it after.
    pub async fn warm(&self) -> Result<usize, BetaError> {
        let table = self
            .db
            .run(|conn| Ok::<_, BetaError>(Arc::new(FeatureRow::all(conn)?)))
            .await?;
        let n = table.len();
        self.features.set(FEATURES_KEY, table).await;
        Ok(n)
    }

    async fn access(&self, user_id: &str) -> Result<pb::UserAccess, BetaError> {
        let (membership, table) = tokio::try_join!(self.membership(user_id), self.feature_table())?;
        let level = membership
            .as_ref()
            .and_then(|m| Level::from_rank(m.level))
            .unwrap_or(Level::None);
        Ok(user_access(level, membership.map(|m| m.joined_at), &table))
    }

    async fn user_access(&self, req: pb::GetUserAccessRequest) -> Result<pb::UserAccess, BetaError> {
        let user_id = require_user(&req.user_id)?;
        self.access(&user_id).await
    }

    async fn validate_invite(&self, req: pb::ValidateInviteRequest) -> Result<pb::ValidateInviteResponse, BetaError> {
        let code = domain::normalize_code(&req.code);
        if code.is_empty() {
            return Err(BetaError::field("code", "is required"));
        }
        let row = self
            .db
            .run(move |conn| Ok::<_, BetaError>(InviteCodeRow::find(conn, &code)?))
            .await?;
        let Some(row) = row else {
            return Ok(invalid(InviteProblem::NotFound));
        };
        Ok(match row.state().check(now_ms()) {
            Ok(()) => pb::ValidateInviteResponse {
                valid: true,
                access_level: row.level().to_proto() as i32,
                remaining_uses: row.state().remaining(),
                expires_at_ms: row.expires_at,
                problem: pb::InviteProblem::Unspecified as i32,
            },
            Err(problem) => invalid(problem),
        })
    }

    async fn join(&self, req: pb::JoinRequest) -> Result<pb::JoinResponse, BetaError> {
        let user_id = require_user(&req.user_id)?;
        let code = domain::normalize_code(&req.code);
        if code.is_empty() {
            return Err(BetaError::field("code", "is required"));
        }
        let (uid, c) = (user_id.clone(), code.clone());
        let upgraded = self.db.write(move |conn| join_tx(conn, &uid, &c)).await?;
        self.members.invalidate(&user_id).await;
        let access = self.access(&user_id).await?;
        metrics::counter!("portico_beta_joins_total", "upgraded" => if upgraded { "true" } else { "false" })
            .increment(1);
        Ok(pb::JoinResponse {
            access: Some(access),
            upgraded,
        })
    }

    /// Erases everything stored about a user (account deletion, served as `Ops/EraseUser`):
    /// membership, redemptions and analytics events in one write transaction, then the cached
    /// access entry on every replica. Returns the rows removed; erasing again removes nothing
    /// and answers 0. Invitation codes keep their use counts: the uses happened.
    pub async fn erase_user(&self, user_id: &str) -> Result<u64, BetaError> {
        let Ok(user_id) = require_user(user_id) else {
            // No call stores an id `require_user` refuses: there is nothing to erase.
            return Ok(0);
        };
        let uid = user_id.clone();
        let removed = self
            .db
            .write(move |conn| Ok::<_, BetaError>(store::erase_user(conn, &uid)?))
            .await?;
        // After the commit, so a replica reloading at once reads the erased state; through
        // the cache, so the other replicas drop their in-memory copy too.
        self.members.invalidate(&user_id).await;
        metrics::counter!("portico_beta_erasures_total").increment(1);
        Ok(removed)
    }

    async fn record_events(&self, req: pb::RecordEventsRequest) -> Result<pb::RecordEventsResponse, BetaError> {
        let user_id = require_user(&req.user_id)?;
        if req.events.is_empty() {
            return Err(BetaError::field("events", "must hold at least one event"));
        }
        if req.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(BetaError::field("events", "must hold at most 100 events"));
        }
        let mut problems = Vec::new();
        for (i, e) in req.events.iter().enumerate() {
            if e.feature.trim().is_empty() || e.feature.len() > 64 {
                problems.push((format!("events[{i}].feature"), "must be 1 to 64 characters".to_string()));
            }
            if e.action.trim().is_empty() || e.action.len() > 64 {
                problems.push((format!("events[{i}].action"), "must be 1 to 64 characters".to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(BetaError::Invalid(problems));
        }
        let level = self
            .membership(&user_id)
            .await?
            .map(|m| m.level)
            .unwrap_or(Level::None.rank());
        let now = now_ms();
        let rows: Vec<NewEvent> = req
            .events
            .into_iter()
            .map(|e| NewEvent {
                user_id: user_id.clone(),
                access_level: level,
                feature: e.feature,
                action: e.action,
                properties: if e.properties_json.is_empty() {
                    "{}".to_string()
                } else {
                    e.properties_json
                },
                occurred_at: e.occurred_at_ms.unwrap_or(now),
                received_at: now,
            })
            .collect();
        let accepted = self
            .db
            .write(move |conn| Ok::<_, BetaError>(store::insert_events(conn, &rows)?))
            .await?;
        Ok(pb::RecordEventsResponse {
            accepted: i32::try_from(accepted).unwrap_or(i32::MAX),
        })
    }

    async fn create_code(&self, req: pb::CreateInviteCodeRequest) -> Result<pb::InviteCode, BetaError> {
        let mut problems = Vec::new();
        let code = if req.code.trim().is_empty() {
            domain::generate_code()
        } else {
            domain::normalize_code(&req.code)
        };
        if let Err(m) = domain::validate_code(&code) {
            problems.push(("code".to_string(), m.to_string()));
        }
        let level = Level::from_proto(req.access_level).filter(|l| *l != Level::None);
        if level.is_none() {
            problems.push((
                "accessLevel".to_string(),
                "must be BASIC, PREMIUM, ADVANCED or DEVELOPER".to_string(),
            ));
        }
        if !(1..=1_000_000).contains(&req.max_uses) {
            problems.push(("maxUses".to_string(), "must be between 1 and 1000000".to_string()));
        }
        let now = now_ms();
        if req.expires_at_ms.is_some_and(|e| e <= now) {
            problems.push(("expiresAt".to_string(), "must be in the future".to_string()));
        }
        if !problems.is_empty() {
            return Err(BetaError::Invalid(problems));
        }
        let row = InviteCodeRow {
            code,
            access_level: level.map(Level::rank).unwrap_or_default(),
            max_uses: req.max_uses,
            uses: 0,
            expires_at: req.expires_at_ms,
            active: true,
            created_at: now,
            created_by: req.created_by,
        };
        let stored = row.clone();
        self.db
            .write(move |conn| {
                if InviteCodeRow::find(conn, &stored.code)?.is_some() {
                    return Err(BetaError::CodeTaken);
                }
                stored.insert(conn)?;
                Ok(())
            })
            .await
            .map_err(|e| match e {
                BetaError::Db(e) if e.is_unique_violation() => BetaError::CodeTaken,
                e => e,
            })?;
        Ok(code_to_proto(row))
    }

    async fn list_codes(&self, req: pb::ListInviteCodesRequest) -> Result<pb::ListInviteCodesResponse, BetaError> {
        let (limit, offset) = page_bounds(req.limit, req.offset)?;
        let (rows, total) = self
            .db
            .run(move |conn| Ok::<_, BetaError>(InviteCodeRow::page(conn, limit, offset)?))
            .await?;
        Ok(pb::ListInviteCodesResponse {
            codes: rows.into_iter().map(code_to_proto).collect(),
            total,
        })
    }

    async fn get_code(&self, req: pb::GetInviteCodeRequest) -> Result<pb::InviteCode, BetaError> {
        let code = domain::normalize_code(&req.code);
        let row = self
            .db
            .run(move |conn| Ok::<_, BetaError>(InviteCodeRow::find(conn, &code)?))
            .await?;
        row.map(code_to_proto).ok_or(BetaError::NotFound("invitation code"))
    }

    async fn update_code(&self, req: pb::UpdateInviteCodeRequest) -> Result<pb::InviteCode, BetaError> {
        let code = domain::normalize_code(&req.code);
        let mut problems = Vec::new();
        if req.max_uses.is_some_and(|m| !(0..=1_000_000).contains(&m)) {
            problems.push(("maxUses".to_string(), "must be between 0 and 1000000".to_string()));
        }
        if req.clear_expiry && req.expires_at_ms.is_some() {
            problems.push((
                "expiresAt".to_string(),
                "cannot both set and clear the expiry".to_string(),
            ));
        }
        if req.active.is_none() && req.max_uses.is_none() && req.expires_at_ms.is_none() && !req.clear_expiry {
            problems.push((
                "body".to_string(),
                "change at least one of active, maxUses, expiresAt".to_string(),
            ));
        }
        if !problems.is_empty() {
            return Err(BetaError::Invalid(problems));
        }
        let change = InviteCodeChange {
            active: req.active,
            max_uses: req.max_uses,
            expires_at: if req.clear_expiry {
                Some(None)
            } else {
                req.expires_at_ms.map(Some)
            },
        };
        let row = self
            .db
            .write(move |conn| {
                let Some(current) = InviteCodeRow::find(conn, &code)? else {
                    return Err(BetaError::NotFound("invitation code"));
                };
                if change.max_uses.is_some_and(|m| m < current.uses) {
                    return Err(BetaError::field("maxUses", "cannot be below the uses already consumed"));
                }
                InviteCodeRow::update(conn, &code, &change)?.ok_or(BetaError::NotFound("invitation code"))
            })
            .await?;
        Ok(code_to_proto(row))
    }

    async fn list_users(&self, req: pb::ListUsersRequest) -> Result<pb::ListUsersResponse, BetaError> {
        let (limit, offset) = page_bounds(req.limit, req.offset)?;
        let (rows, total) = self
            .db
            .run(move |conn| Ok::<_, BetaError>(MemberRow::page(conn, limit, offset)?))
            .await?;
        Ok(pb::ListUsersResponse {
            users: rows.into_iter().map(member_to_proto).collect(),
            total,
        })
    }

    async fn set_level(&self, req: pb::SetUserLevelRequest) -> Result<pb::BetaUser, BetaError> {
        let user_id = require_user(&req.user_id)?;
        let Some(level) = Level::from_proto(req.access_level) else {
            return Err(BetaError::field(
                "accessLevel",
                "must be NONE, BASIC, PREMIUM, ADVANCED or DEVELOPER",
            ));
        };
        let uid = user_id.clone();
        let row = self
            .db
            .write(move |conn| {
                let now = now_ms();
                MemberRow {
                    user_id: uid.clone(),
                    access_level: level.rank(),
                    invite_code: "admin".to_string(),
                    joined_at: now,
                    updated_at: now,
                }
                .set_by_admin(conn)?;
                MemberRow::find(conn, &uid)?.ok_or(BetaError::NotFound("beta user"))
            })
            .await?;
        self.members.invalidate(&user_id).await;
        Ok(member_to_proto(row))
    }

    async fn features(&self) -> Result<pb::FeatureTable, BetaError> {
        Ok(feature_table_to_proto(&self.feature_table().await?))
    }

    async fn set_features(&self, req: pb::SetFeaturesRequest) -> Result<pb::FeatureTable, BetaError> {
        let mut problems = Vec::new();
        let mut seen = BTreeMap::new();
        if req.features.len() > 1000 {
            problems.push(("features".to_string(), "must hold at most 1000 features".to_string()));
        }
        let mut rows = Vec::with_capacity(req.features.len());
        for (i, f) in req.features.into_iter().enumerate() {
            if let Err(m) = domain::validate_feature_name(&f.name) {
                problems.push((format!("features[{i}].name"), m.to_string()));
            }
            if seen.insert(f.name.clone(), i).is_some() {
                problems.push((format!("features[{i}].name"), "is listed twice".to_string()));
            }
            let Some(level) = Level::from_proto(f.min_level) else {
                problems.push((format!("features[{i}].minLevel"), "must be an access level".to_string()));
                continue;
            };
            if f.description.len() > 500 {
                problems.push((
                    format!("features[{i}].description"),
                    "must be at most 500 characters".to_string(),
                ));
            }
            rows.push(FeatureRow {
                name: f.name,
                min_level: level.rank(),
                description: f.description,
            });
        }
        if !problems.is_empty() {
            return Err(BetaError::Invalid(problems));
        }
        let stored = self
            .db
            .write(move |conn| {
                FeatureRow::replace_all(conn, &rows)?;
                Ok::<_, BetaError>(FeatureRow::all(conn)?)
            })
            .await?;
        self.features.invalidate(FEATURES_KEY).await;
        Ok(feature_table_to_proto(&stored))
    }

    async fn summary(&self, req: pb::AnalyticsSummaryRequest) -> Result<pb::AnalyticsSummaryResponse, BetaError> {
        if req.to_ms <= req.from_ms {
            return Err(BetaError::field("to", "must be after from"));
        }
        let (from, to) = (req.from_ms, req.to_ms);
        let (totals, levels, (total_events, unique_users)) = self
            .db
            .run(move |conn| {
                Ok::<_, BetaError>((
                    store::feature_totals(conn, from, to)?,
                    store::feature_level_counts(conn, from, to)?,
                    store::overall_totals(conn, from, to)?,
                ))
            })
            .await?;
        let mut by_feature: BTreeMap<String, Vec<pb::LevelCount>> = BTreeMap::new();
        for (feature, rank, events) in levels {
            let level = Level::from_rank(rank).unwrap_or(Level::None);
            by_feature.entry(feature).or_default().push(pb::LevelCount {
                access_level: level.to_proto() as i32,
                events,
            });
        }
        let features = totals
            .into_iter()
            .map(|(feature, events, unique_users)| {
                let mut by_level = by_feature.remove(&feature).unwrap_or_default();
                by_level.sort_by_key(|l| l.access_level);
                pb::FeatureSummary {
                    feature,
                    events,
                    unique_users,
                    by_level,
                }
            })
            .collect();
        Ok(pb::AnalyticsSummaryResponse {
            features,
            total_events,
            unique_users,
        })
    }
}

/// Redeems `code` for `user_id` inside one write transaction; true when the level rose.
///
/// Every step is one statement the database decides, so any interleaving of concurrent joins
/// ends the same way: the redemption row is claimed first (a repeat of the same code does
/// nothing more), then the code's use is consumed by a conditional UPDATE, then the member is
/// upserted so the level only ever rises. A refusal after the claim rolls the claim back.
fn join_tx(conn: &mut portico_runtime::db::DbConnection, user_id: &str, code: &str) -> Result<bool, BetaError> {
    let now = now_ms();
    let Some(row) = InviteCodeRow::find(conn, code)? else {
        return Err(BetaError::Invite(InviteProblem::NotFound));
    };
    if !store::record_redemption(conn, user_id, code, now)? {
        return Ok(false);
    }
    row.state().check(now).map_err(BetaError::Invite)?;
    if !InviteCodeRow::consume_use(conn, code, now)? {
        // Lost the race for the last use, or the code changed since it was read.
        let problem = InviteCodeRow::find(conn, code)?
            .map(|r| r.state().check(now).err().unwrap_or(InviteProblem::Exhausted))
            .unwrap_or(InviteProblem::NotFound);
        return Err(BetaError::Invite(problem));
    }
    let member = MemberRow {
        user_id: user_id.to_string(),
        access_level: row.level().rank(),
        invite_code: code.to_string(),
        joined_at: now,
        updated_at: now,
    };
    Ok(member.join(conn)?)
}

fn require_user(user_id: &str) -> Result<String, BetaError> {
    let id = user_id.trim();
    if id.is_empty() || id.len() > 64 {
        return Err(BetaError::field("userId", "is required"));
    }
    Ok(id.to_string())
}

fn page_bounds(limit: i32, offset: i32) -> Result<(i64, i64), BetaError> {
    let limit = if limit == 0 { 50 } else { limit };
    if !(1..=200).contains(&limit) {
        return Err(BetaError::field("limit", "must be between 1 and 200"));
    }
    if offset < 0 {
        return Err(BetaError::field("offset", "must not be negative"));
    }
    Ok((i64::from(limit), i64::from(offset)))
}

fn invalid(problem: InviteProblem) -> pb::ValidateInviteResponse {
    let problem = match problem {
        InviteProblem::NotFound => pb::InviteProblem::NotFound,
        InviteProblem::Expired => pb::InviteProblem::Expired,
        InviteProblem::Exhausted => pb::InviteProblem::Exhausted,
        InviteProblem::Inactive => pb::InviteProblem::Inactive,
    };
    pb::ValidateInviteResponse {
        valid: false,
        problem: problem as i32,
        ..Default::default()
    }
}

fn user_access(level: Level, joined_at: Option<i64>, table: &[FeatureRow]) -> pb::UserAccess {
    let flags = domain::evaluate_features(
        level,
        table.iter().map(|f| {
            (
                f.name.as_str(),
                Level::from_rank(f.min_level).unwrap_or(Level::Developer),
            )
        }),
    );
    pb::UserAccess {
        access_level: level.to_proto() as i32,
        features: flags
            .into_iter()
            .map(|(name, enabled)| pb::FeatureFlag { name, enabled })
            .collect(),
        joined_at_ms: joined_at,
    }
}

fn code_to_proto(row: InviteCodeRow) -> pb::InviteCode {
    pb::InviteCode {
        access_level: row.level().to_proto() as i32,
        code: row.code,
        max_uses: row.max_uses,
        uses: row.uses,
        expires_at_ms: row.expires_at,
        active: row.active,
        created_at_ms: row.created_at,
        created_by: row.created_by,
    }
}

fn member_to_proto(row: MemberRow) -> pb::BetaUser {
    pb::BetaUser {
        access_level: row.level().to_proto() as i32,
        user_id: row.user_id,
        joined_at_ms: row.joined_at,
        updated_at_ms: row.updated_at,
        invite_code: row.invite_code,
    }
}

fn feature_table_to_proto(rows: &[FeatureRow]) -> pb::FeatureTable {
    pb::FeatureTable {
        features: rows
            .iter()
            .map(|f| pb::Feature {
                name: f.name.clone(),
                min_level: Level::from_rank(f.min_level).unwrap_or(Level::Developer).to_proto() as i32,
                description: f.description.clone(),
            })
            .collect(),
    }
}

/// Implements `BetaService` by routing each RPC through [`grpc::handle`] to a method of `Beta`.
macro_rules! beta_rpcs {
    ($($name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr;)*) => {
        #[tonic::async_trait]
        impl BetaService for Beta {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

beta_rpcs! {
    validate_invite, "ValidateInvite", pb::ValidateInviteRequest => pb::ValidateInviteResponse, |app, m| app.validate_invite(m);
    join, "Join", pb::JoinRequest => pb::JoinResponse, |app, m| app.join(m);
    get_user_access, "GetUserAccess", pb::GetUserAccessRequest => pb::UserAccess, |app, m| app.user_access(m);
    record_events, "RecordEvents", pb::RecordEventsRequest => pb::RecordEventsResponse, |app, m| app.record_events(m);
    create_invite_code, "CreateInviteCode", pb::CreateInviteCodeRequest => pb::InviteCode, |app, m| app.create_code(m);
    list_invite_codes, "ListInviteCodes", pb::ListInviteCodesRequest => pb::ListInviteCodesResponse, |app, m| app.list_codes(m);
    get_invite_code, "GetInviteCode", pb::GetInviteCodeRequest => pb::InviteCode, |app, m| app.get_code(m);
    update_invite_code, "UpdateInviteCode", pb::UpdateInviteCodeRequest => pb::InviteCode, |app, m| app.update_code(m);
    list_users, "ListUsers", pb::ListUsersRequest => pb::ListUsersResponse, |app, m| app.list_users(m);
    set_user_level, "SetUserLevel", pb::SetUserLevelRequest => pb::BetaUser, |app, m| app.set_level(m);
    get_features, "GetFeatures", pb::GetFeaturesRequest => pb::FeatureTable, |app, _m| app.features();
    set_features, "SetFeatures", pb::SetFeaturesRequest => pb::FeatureTable, |app, m| app.set_features(m);
    analytics_summary, "AnalyticsSummary", pb::AnalyticsSummaryRequest => pb::AnalyticsSummaryResponse, |app, m| app.summary(m);
}

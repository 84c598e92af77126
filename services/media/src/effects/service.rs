//! The effects API over gRPC: the catalogue (cached, filtered per caller by beta level and
//! region), starting runs (checked, counted against the tier's allowance in the transaction
//! that records them), reading and cancelling the caller's runs, and the provider's webhook.

use std::{sync::Arc, time::Duration};

use aws_lc_rs::hmac;
use portico_effects::{
    definition::{Definition, NodeField, Parameter},
    params,
    run::RunStatus,
};
use portico_proto::{
    beta::v1::AccessLevel,
    media::v1::{self as pb, effect_service_server::EffectService},
    workflow::v1::Tier,
};
use portico_runtime::{
    Problem,
    cache::{Cache, CacheRegistry},
    db::{Db, now_ms},
    grpc,
    redis::SharedRedis,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use super::{
    Allowance, EffectsConfig, Provider,
    store::{self, EffectChange, EffectRow, Ending, RunRow, Spent},
};
use crate::{MediaApp, domain, error::MediaError, service::require_user};

const SVC: &str = "effects";
/// The catalogue's cache key: every effect (callers' views are filtered from it).
const CATALOGUE: &str = "all";
/// Most runs on one page.
const MAX_PAGE: u32 = 100;
/// Longest `params` accepted, as JSON.
const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// The effects application: the catalogue, the runs and the job that drives them.
#[derive(Clone)]
pub struct EffectsApp {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) media: MediaApp,
    pub(crate) provider: Provider,
    pub(crate) config: EffectsConfig,
    /// Wakes the run job when a run becomes due now (started, or answered by webhook).
    pub(crate) wake: Notify,
    /// Makes and checks the runs' webhook tokens.
    pub(crate) webhook_key: hmac::Key,
    catalogue: Cache<Vec<EffectRow>>,
}

/// The stored form of a beta level (`BASIC`), or `None` for an unset one.
fn level_name(level: AccessLevel) -> Option<&'static str> {
    level
        .as_str_name()
        .strip_prefix("ACCESS_LEVEL_")
        .filter(|l| *l != "UNSPECIFIED")
}

fn level_of(stored: &str) -> AccessLevel {
    AccessLevel::from_str_name(&format!("ACCESS_LEVEL_{stored}")).unwrap_or(AccessLevel::Developer)
}

/// The key a run's webhook token is made with, derived from the service's internal token (a
/// secret every replica shares), so a token proves itself without a stored copy.
pub(crate) fn webhook_key(internal_token: &str) -> hmac::Key {
    let derived = Sha256::digest(format!("portico effects webhook\0{internal_token}").as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, &derived)
}

/// Run `run_id`'s webhook token: hex HMAC-SHA256 of its id.
pub(crate) fn webhook_token(key: &hmac::Key, run_id: &str) -> String {
    hex::encode(hmac::sign(key, run_id.as_bytes()).as_ref())
}

/// Whether `token` is run `run_id`'s, compared in constant time.
fn token_matches(key: &hmac::Key, run_id: &str, token: &str) -> bool {
    hex::decode(token).is_ok_and(|tag| hmac::verify(key, run_id.as_bytes(), &tag).is_ok())
}

impl EffectsApp {
    /// The application over the media service's database and pipeline.
    pub fn new(
        db: Db,
        media: MediaApp,
        provider: Provider,
        config: EffectsConfig,
        internal_token: &str,
        redis: Option<SharedRedis>,
        registry: &CacheRegistry,
    ) -> Self {
        let catalogue = Cache::new(
            "effects.catalogue",
            1,
            Duration::from_secs(5),
            Duration::from_secs(300),
            redis,
            registry,
        );
        EffectsApp {
            inner: Arc::new(Inner {
                db,
                media,
                provider,
                config,
                wake: Notify::new(),
                webhook_key: webhook_key(internal_token),
                catalogue,
            }),
        }
    }

    /// The provider runs go to.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    async fn catalogue(&self) -> Result<Vec<EffectRow>, MediaError> {
        let db = self.inner.db.clone();
        self.inner
            .catalogue
            .get_or_load(CATALOGUE, || async move {
                let rows = db.run(|conn| Ok::<_, MediaError>(EffectRow::all(conn)?)).await?;
                Ok::<_, MediaError>(rows)
            })
            .await
    }

    async fn changed_catalogue(&self) {
        self.inner.catalogue.invalidate(CATALOGUE).await;
    }

    /// Whether `caller` sees `e`: enabled, at or under their level, of their region or all.
    fn visible(e: &EffectRow, caller: &pb::EffectCaller) -> bool {
        let level = AccessLevel::try_from(caller.level).unwrap_or(AccessLevel::Unspecified);
        e.enabled
            && level >= level_of(&e.min_level)
            && e.region.as_ref().is_none_or(|r| caller.region.as_ref() == Some(r))
    }

    async fn list_effects(&self, req: pb::ListEffectsRequest) -> Result<pb::ListEffectsResponse, MediaError> {
        let all = self.catalogue().await?;
        let caller = req.caller.unwrap_or_default();
        Ok(pb::ListEffectsResponse {
            effects: all
                .iter()
                .filter(|e| req.all || Self::visible(e, &caller))
                .map(effect_to_proto)
                .collect(),
        })
    }

    async fn get_effect(&self, req: pb::GetEffectRequest) -> Result<pb::Effect, MediaError> {
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("effect"))?;
        let row = self
            .inner
            .db
            .run(move |conn| Ok::<_, MediaError>(EffectRow::find(conn, &id)?))
            .await?
            .ok_or(MediaError::NotFound("effect"))?;
        Ok(effect_to_proto(&row))
    }

    async fn create_effect(&self, req: pb::CreateEffectRequest) -> Result<pb::Effect, MediaError> {
        let now = now_ms();
        let row = EffectRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: req.name.trim().to_string(),
            description: req.description,
            webapp_id: req.webapp_id,
            image_node_id: req.image_node.as_ref().map(|n| n.node_id.clone()).unwrap_or_default(),
            image_field_name: req.image_node.map(|n| n.field_name).unwrap_or_default(),
            parameters: String::new(),
            min_level: String::new(),
            enabled: req.enabled,
            region: req.region.filter(|r| !r.is_empty()),
            created_at: now,
            updated_at: now,
        };
        let row = checked(row, &req.parameters_json, req.min_level)?;
        let stored = row.clone();
        self.inner
            .db
            .write(move |conn| Ok::<_, MediaError>(stored.insert(conn)?))
            .await?;
        self.changed_catalogue().await;
        Ok(effect_to_proto(&row))
    }

    async fn update_effect(&self, req: pb::UpdateEffectRequest) -> Result<pb::Effect, MediaError> {
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("effect"))?;
        let lookup = id.clone();
        let current = self
            .inner
            .db
            .run(move |conn| Ok::<_, MediaError>(EffectRow::find(conn, &lookup)?))
            .await?
            .ok_or(MediaError::NotFound("effect"))?;
        // The edited effect must be as usable as a new one: check the whole of it.
        let edited = EffectRow {
            name: req.name.map_or(current.name.clone(), |n| n.trim().to_string()),
            description: req.description.unwrap_or(current.description.clone()),
            webapp_id: req.webapp_id.unwrap_or(current.webapp_id.clone()),
            image_node_id: req
                .image_node
                .as_ref()
                .map_or(current.image_node_id.clone(), |n| n.node_id.clone()),
            image_field_name: req
                .image_node
                .as_ref()
                .map_or(current.image_field_name.clone(), |n| n.field_name.clone()),
            enabled: req.enabled.unwrap_or(current.enabled),
            region: if req.clear_region {
                None
            } else {
                req.region.filter(|r| !r.is_empty()).or(current.region.clone())
            },
            updated_at: now_ms(),
            ..current.clone()
        };
        let parameters = req.parameters_json.unwrap_or(current.parameters.clone());
        let level = req.min_level.unwrap_or(level_of(&current.min_level) as i32);
        let edited = checked(edited, &parameters, level)?;
        let change = EffectChange {
            name: Some(edited.name.clone()),
            description: Some(edited.description.clone()),
            webapp_id: Some(edited.webapp_id.clone()),
            image_node_id: Some(edited.image_node_id.clone()),
            image_field_name: Some(edited.image_field_name.clone()),
            parameters: Some(edited.parameters.clone()),
            min_level: Some(edited.min_level.clone()),
            enabled: Some(edited.enabled),
            region: Some(edited.region.clone()),
            updated_at: edited.updated_at,
        };
        let row = self
            .inner
            .db
            .write(move |conn| Ok::<_, MediaError>(EffectRow::update(conn, &id, &change)?))
            .await?
            .ok_or(MediaError::NotFound("effect"))?;
        self.changed_catalogue().await;
        Ok(effect_to_proto(&row))
    }

    async fn delete_effect(&self, req: pb::DeleteEffectRequest) -> Result<pb::DeleteEffectResponse, MediaError> {
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("effect"))?;
        let deleted = self
            .inner
            .db
            .write(move |conn| Ok::<_, MediaError>(EffectRow::delete(conn, &id)?))
            .await?;
        if !deleted {
            return Err(MediaError::NotFound("effect"));
        }
        self.changed_catalogue().await;
        Ok(pb::DeleteEffectResponse {})
    }

    fn allowance(&self, tier: Tier) -> Allowance {
        let [free, pro, enterprise] = self.inner.config.allowances;
        match tier {
            Tier::Pro => pro,
            Tier::Enterprise => enterprise,
            Tier::Free | Tier::Unspecified => free,
        }
    }

    async fn start_run(&self, req: pb::StartRunRequest) -> Result<pb::EffectRun, MediaError> {
        let caller = req.caller.unwrap_or_default();
        let user_id = require_user(&caller.user_id)?;
        // An effect the caller may not use reads as absent, like another user's run.
        let effect_id = domain::parse_id(&req.effect_id).ok_or(MediaError::NotFound("effect"))?;
        let effect = self
            .catalogue()
            .await?
            .into_iter()
            .find(|e| e.id == effect_id && Self::visible(e, &caller))
            .ok_or(MediaError::NotFound("effect"))?;

        let mut bad = Vec::new();
        let media_id = domain::parse_id(&req.media_id);
        let media = match &media_id {
            Some(id) => self
                .inner
                .media
                .get_media(pb::GetMediaRequest {
                    user_id: user_id.clone(),
                    id: id.clone(),
                })
                .await
                .ok(),
            None => None,
        };
        if media.is_none() {
            bad.push(("mediaId".to_string(), "no such photo of yours".to_string()));
        }
        let given: Map<String, Value> = if req.params_json.trim().is_empty() {
            Map::new()
        } else if req.params_json.len() > MAX_PARAMS_BYTES {
            bad.push((
                "params".into(),
                format!("must be at most {MAX_PARAMS_BYTES} bytes of JSON"),
            ));
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&req.params_json) {
                Ok(Value::Object(m)) => m,
                _ => {
                    bad.push(("params".into(), "must be a JSON object".into()));
                    Map::new()
                }
            }
        };
        let parameters: Vec<Parameter> = serde_json::from_str(&effect.parameters).unwrap_or_default();
        let nodes = match params::node_values(&parameters, &given) {
            Ok(nodes) => nodes,
            Err(problems) => {
                bad.extend(problems);
                Vec::new()
            }
        };
        if !bad.is_empty() {
            return Err(MediaError::Invalid(bad));
        }

        let now = now_ms();
        let image_node = NodeField {
            node_id: effect.image_node_id.clone(),
            field_name: effect.image_field_name.clone(),
        };
        let deadline_ms = i64::try_from(self.inner.config.run_deadline.as_millis()).unwrap_or(i64::MAX);
        let row = RunRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.clone(),
            effect_id: effect.id.clone(),
            effect_name: effect.name.clone(),
            media_id: media_id.unwrap_or_default(),
            webapp_id: effect.webapp_id.clone(),
            image_node: serde_json::to_string(&image_node).map_err(|e| MediaError::Task(e.to_string()))?,
            nodes: serde_json::to_string(&nodes).map_err(|e| MediaError::Task(e.to_string()))?,
            status: RunStatus::Queued.as_str().to_string(),
            step: "upload".to_string(),
            progress: Some(0),
            error: None,
            result_media_id: None,
            provider_file: None,
            task_id: None,
            start_sent: 0,
            attempts: 0,
            polls: 0,
            next_at: now,
            claimed_until: 0,
            deadline_at: now.saturating_add(deadline_ms),
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let allowance = self.allowance(Tier::try_from(caller.tier).unwrap_or(Tier::Free));
        let (window_start, window_end) = domain::hour_window(now);
        let concurrent = i32::try_from(allowance.concurrent).unwrap_or(i32::MAX);
        let per_hour = i32::try_from(allowance.per_hour).unwrap_or(i32::MAX);
        match self.record_run(row.clone(), window_start, concurrent, per_hour).await? {
            Ok(()) => {}
            Err(Spent::Concurrent) => {
                return Err(MediaError::EffectsSpent {
                    concurrent: true,
                    limit: allowance.concurrent,
                    retry_after_secs: 5,
                    resets_at_ms: None,
                });
            }
            Err(Spent::Hourly) => {
                return Err(MediaError::EffectsSpent {
                    concurrent: false,
                    limit: allowance.per_hour,
                    retry_after_secs: u64::try_from((window_end - now).max(1000) / 1000).unwrap_or(1),
                    resets_at_ms: Some(window_end),
                });
            }
        }
        metrics::counter!("portico_effects_runs_started_total").increment(1);
        self.inner.wake.notify_one();
        Ok(self.run_to_proto(&row, None))
    }

    async fn record_run(
        &self,
        row: RunRow,
        window_start: i64,
        concurrent: i32,
        per_hour: i32,
    ) -> Result<Result<(), Spent>, MediaError> {
        self.inner
            .db
            .write(move |conn| {
                if let Err(spent) = store::take_allowance(conn, &row.user_id, window_start, concurrent, per_hour)? {
                    return Ok(Err(spent));
                }
                row.insert(conn)?;
                Ok::<_, MediaError>(Ok(()))
            })
            .await
    }

    async fn find_run(&self, user_id: &str, id: &str) -> Result<RunRow, MediaError> {
        let user_id = require_user(user_id)?;
        let id = domain::parse_id(id).ok_or(MediaError::NotFound("run"))?;
        self.inner
            .db
            .run(move |conn| Ok::<_, MediaError>(RunRow::find(conn, &user_id, &id)?))
            .await?
            .ok_or(MediaError::NotFound("run"))
    }

    async fn with_result(&self, row: &RunRow) -> pb::EffectRun {
        let result = match &row.result_media_id {
            Some(id) => self
                .inner
                .media
                .get_media(pb::GetMediaRequest {
                    user_id: row.user_id.clone(),
                    id: id.clone(),
                })
                .await
                .ok(),
            None => None,
        };
        self.run_to_proto(row, result)
    }

    async fn get_run(&self, req: pb::GetRunRequest) -> Result<pb::EffectRun, MediaError> {
        let row = self.find_run(&req.user_id, &req.id).await?;
        Ok(self.with_result(&row).await)
    }

    async fn list_runs(&self, req: pb::ListRunsRequest) -> Result<pb::ListRunsResponse, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let cursor = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => {
                Some(domain::parse_id(c).ok_or_else(|| MediaError::field("cursor", "is not a cursor from this list"))?)
            }
            None => None,
        };
        let limit = match req.limit {
            0 => 20,
            n => n.min(MAX_PAGE),
        };
        let mut rows = self
            .inner
            .db
            .run(move |conn| {
                Ok::<_, MediaError>(RunRow::page(conn, &user_id, cursor.as_deref(), i64::from(limit) + 1)?)
            })
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            runs.push(self.with_result(row).await);
        }
        Ok(pb::ListRunsResponse { runs, next_cursor })
    }

    async fn cancel_run(&self, req: pb::CancelRunRequest) -> Result<pb::EffectRun, MediaError> {
        let row = self.find_run(&req.user_id, &req.id).await?;
        let ending = Ending {
            status: RunStatus::Failed.as_str(),
            error: Some("cancelled".to_string()),
            result_media_id: None,
            at: now_ms(),
        };
        let id = row.id.clone();
        let ended = self
            .inner
            .db
            .write(move |conn| Ok::<_, MediaError>(RunRow::finish(conn, &id, &ending)?))
            .await?;
        if ended {
            metrics::counter!("portico_effects_runs_total", "status" => "cancelled").increment(1);
            if let Some(task_id) = row.task_id.clone() {
                // The provider stops working on it; whether it hears is its business.
                let provider = self.inner.provider.clone();
                tokio::spawn(async move {
                    if let Err(e) = provider.cancel(&task_id).await {
                        tracing::info!(error = %e, "the provider did not take the cancel");
                    }
                });
            }
        }
        let row = self.find_run(&req.user_id, &req.id).await?;
        Ok(self.with_result(&row).await)
    }

    /// The provider's callback: proven by the run's token, it says the task is over; the run
    /// job then fetches the outputs (a callback's own content is never downloaded from).
    async fn receive_webhook(&self, req: pb::EffectWebhookRequest) -> Result<pb::EffectWebhookResponse, MediaError> {
        let id = domain::parse_id(&req.run_id).ok_or(MediaError::NotFound("run"))?;
        let lookup = id.clone();
        let row = self
            .inner
            .db
            .run(move |conn| Ok::<_, MediaError>(RunRow::get(conn, &lookup)?))
            .await?
            .ok_or(MediaError::NotFound("run"))?;
        if !token_matches(&self.inner.webhook_key, &row.id, &req.token) {
            return Err(MediaError::NotFound("run"));
        }
        let body: Value = serde_json::from_slice(&req.payload)
            .map_err(|_| MediaError::field("body", "must be the provider's JSON callback"))?;
        let task_id = match &body["taskId"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if RunStatus::parse(&row.status).is_none_or(RunStatus::is_terminal) {
            return Ok(pb::EffectWebhookResponse { accepted: false });
        }
        if let (Some(theirs), Some(ours)) = (&task_id, &row.task_id)
            && theirs != ours
        {
            return Err(MediaError::field("taskId", "is not this run's task"));
        }
        // `eventData` is a JSON string with the envelope (`code` 0 when the task succeeded).
        let event: Value = match &body["eventData"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let failed = event["code"].as_i64().is_some_and(|c| c != 0);
        let accepted = super::runs::answered_by_webhook(
            self,
            &row,
            task_id,
            failed.then(|| {
                event["msg"]
                    .as_str()
                    .unwrap_or("the provider reported a failure")
                    .to_string()
            }),
        )
        .await?;
        Ok(pb::EffectWebhookResponse { accepted })
    }

    fn run_to_proto(&self, row: &RunRow, result: Option<pb::Media>) -> pb::EffectRun {
        pb::EffectRun {
            id: row.id.clone(),
            effect_id: row.effect_id.clone(),
            effect_name: row.effect_name.clone(),
            media_id: row.media_id.clone(),
            status: row.status.clone(),
            progress: row.progress.and_then(|p| u32::try_from(p).ok()),
            error: row.error.clone(),
            result_media_id: row.result_media_id.clone(),
            result,
            created_at_ms: row.created_at,
            updated_at_ms: row.updated_at,
            finished_at_ms: row.finished_at,
        }
    }
}

/// `row` with its parameters and level checked and stored, or every problem by JSON path.
fn checked(mut row: EffectRow, parameters_json: &str, level: i32) -> Result<EffectRow, MediaError> {
    let mut bad = Vec::new();
    let parameters: Vec<Parameter> = if parameters_json.trim().is_empty() {
        Vec::new()
    } else {
        match serde_json::from_str(parameters_json) {
            Ok(p) => p,
            Err(e) => {
                bad.push(("parameters".to_string(), format!("must be a list of parameters: {e}")));
                Vec::new()
            }
        }
    };
    let image_node = NodeField {
        node_id: row.image_node_id.clone(),
        field_name: row.image_field_name.clone(),
    };
    bad.extend(
        Definition {
            name: &row.name,
            description: &row.description,
            webapp_id: &row.webapp_id,
            image_node: &image_node,
            parameters: &parameters,
            region: row.region.as_deref(),
        }
        .problems(),
    );
    match AccessLevel::try_from(level).ok().and_then(level_name) {
        Some(name) => row.min_level = name.to_string(),
        None => bad.push((
            "minLevel".into(),
            "must be one of NONE, BASIC, PREMIUM, ADVANCED, DEVELOPER".into(),
        )),
    }
    if !bad.is_empty() {
        return Err(MediaError::Invalid(bad));
    }
    row.parameters = serde_json::to_string(&parameters).map_err(|e| MediaError::Task(e.to_string()))?;
    Ok(row)
}

fn effect_to_proto(e: &EffectRow) -> pb::Effect {
    pb::Effect {
        id: e.id.clone(),
        name: e.name.clone(),
        description: e.description.clone(),
        webapp_id: e.webapp_id.clone(),
        image_node: Some(pb::NodeField {
            node_id: e.image_node_id.clone(),
            field_name: e.image_field_name.clone(),
        }),
        parameters_json: e.parameters.clone(),
        min_level: level_of(&e.min_level) as i32,
        enabled: e.enabled,
        region: e.region.clone(),
        created_at_ms: e.created_at,
        updated_at_ms: e.updated_at,
    }
}

/// Implements `EffectService` by routing each RPC through [`grpc::handle`] to a method.
macro_rules! effect_rpcs {
    ($($name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr;)*) => {
        #[tonic::async_trait]
        impl EffectService for EffectsApp {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

effect_rpcs! {
    list_effects, "ListEffects", pb::ListEffectsRequest => pb::ListEffectsResponse, |app, m| app.list_effects(m);
    get_effect, "GetEffect", pb::GetEffectRequest => pb::Effect, |app, m| app.get_effect(m);
    create_effect, "CreateEffect", pb::CreateEffectRequest => pb::Effect, |app, m| app.create_effect(m);
    update_effect, "UpdateEffect", pb::UpdateEffectRequest => pb::Effect, |app, m| app.update_effect(m);
    delete_effect, "DeleteEffect", pb::DeleteEffectRequest => pb::DeleteEffectResponse, |app, m| app.delete_effect(m);
    start_run, "StartRun", pb::StartRunRequest => pb::EffectRun, |app, m| app.start_run(m);
    get_run, "GetRun", pb::GetRunRequest => pb::EffectRun, |app, m| app.get_run(m);
    list_runs, "ListRuns", pb::ListRunsRequest => pb::ListRunsResponse, |app, m| app.list_runs(m);
    cancel_run, "CancelRun", pb::CancelRunRequest => pb::EffectRun, |app, m| app.cancel_run(m);
    receive_webhook, "ReceiveWebhook", pb::EffectWebhookRequest => pb::EffectWebhookResponse, |app, m| app.receive_webhook(m);
}

//! Gateway-owned endpoints: health, readiness, metrics, OpenAPI and its UI, JWKS, cache stats.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, http::header, web};
use portico_proto::ops::v1 as ops;
use portico_runtime::grpc::outgoing;
use serde_json::{Map, Value, json};

use super::{API_ROUTES, Access, Rid};
use crate::{
    AppState,
    envelope::{ApiResult, ok},
};

/// GET /live — the process is up.
pub async fn live() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// GET /health — liveness; says nothing about the inside (versions and dependencies are in
/// `/health/detailed`, for operators).
pub async fn health() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// Deadline of one dependency probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one report answers every caller.
const REPORT_TTL: Duration = Duration::from_secs(1);

/// One dependency's state.
#[derive(Clone, Debug)]
struct Check {
    name: String,
    healthy: bool,
    latency_ms: f64,
    detail: Value,
}

/// What the probes found, shared for [`REPORT_TTL`]: a burst of callers costs one round of
/// probes, and callers that arrive during a round wait for it instead of starting another.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(Instant, Arc<Vec<Check>>)>>);

impl HealthCache {
    async fn report(&self, state: &AppState, rid: &str) -> Arc<Vec<Check>> {
        let mut slot = self.0.lock().await;
        if let Some((at, report)) = slot.as_ref()
            && at.elapsed() < REPORT_TTL
        {
            return Arc::clone(report);
        }
        let report = Arc::new(probe_all(state, rid).await);
        *slot = Some((Instant::now(), Arc::clone(&report)));
        report
    }
}

async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> (Result<T, String>, f64) {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    (outcome, started.elapsed().as_secs_f64() * 1000.0)
}

/// Probes the database, Redis and every service side by side, each under its own deadline.
async fn probe_all(state: &AppState, rid: &str) -> Vec<Check> {
    let database = async {
        let (r, latency_ms) = timed(state.db.ping()).await;
        Check {
            name: format!("database ({})", state.db.backend().as_str()),
            healthy: r.is_ok(),
            latency_ms,
            detail: r.err().map(|e| json!({ "error": e })).unwrap_or(Value::Null),
        }
    };
    let redis = async {
        match &state.redis {
            Some(redis) => {
                let (r, latency_ms) = timed(redis.ping()).await;
                Check {
                    name: "redis".into(),
                    healthy: r.is_ok(),
                    latency_ms,
                    detail: r.err().map(|e| json!({ "error": e })).unwrap_or(Value::Null),
                }
            }
            None => Check {
                name: "cache (in-memory)".into(),
                healthy: true,
                latency_ms: 0.0,
                detail: Value::Null,
            },
        }
    };
    let services = futures_util::future::join_all(state.services.iter().map(|(name, client)| async move {
        let mut client = client.clone();
        let (r, latency_ms) = timed(client.info(outgoing(ops::InfoRequest {}, rid))).await;
        let (healthy, detail) = match r {
            Ok(info) => {
                let info = info.into_inner();
                let detail = json!({
                    "version": info.version,
                    "startedAt": chrono::DateTime::from_timestamp_millis(info.started_at_ms).map(|d| d.to_rfc3339()),
                    "dependencies": info.dependencies.iter().map(|d| json!({
                        "name": d.name, "status": if d.healthy { "up" } else { "down" },
                        "latencyMs": d.latency_ms, "error": if d.detail.is_empty() { Value::Null } else { Value::String(d.detail.clone()) },
                    })).collect::<Vec<_>>(),
                });
                (info.dependencies.iter().all(|d| d.healthy), detail)
            }
            Err(e) => (false, json!({ "error": e })),
        };
        Check {
            name: (*name).to_string(),
            healthy,
            latency_ms,
            detail,
        }
    }));
    let (database, redis, services) = futures_util::join!(database, redis, services);
    let mut out = vec![database, redis];
    out.extend(services);
    out
}

/// GET /ready — 200 while the gateway's own database answers and it is not shutting down;
/// else 503. A Redis or service outage does not fail it: the limiter and caches degrade,
/// and pulling every replica out of the load balancer would turn a partial outage into a
/// total one. Says nothing internal.
pub async fn ready(state: web::Data<AppState>, rid: Rid) -> HttpResponse {
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let database = !draining && timed(state.db.ping()).await.0.is_ok();
    if database {
        ok(json!({ "status": "ready" }))
    } else {
        let problem = portico_runtime::Problem::new(portico_runtime::ErrorCode::ServiceUnavailable, "not ready")
            .with_details(json!({ "status": if draining { "draining" } else { "not_ready" } }));
        crate::envelope::problem_response(&problem, &rid.0)
    }
}

/// GET /health/detailed — operators: every dependency and service with status, latency,
/// version and error (admin listener, or admin auth on the API port).
pub async fn detailed(state: web::Data<AppState>, rid: Rid) -> HttpResponse {
    let checks = state.health.report(&state, &rid.0).await;
    let healthy = checks.iter().all(|c| c.healthy);
    let items: Vec<Value> = checks
        .iter()
        .map(|c| json!({ "name": c.name, "status": if c.healthy { "up" } else { "down" }, "latencyMs": c.latency_ms, "detail": c.detail }))
        .collect();
    ok(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "gateway": { "version": env!("CARGO_PKG_VERSION"), "uptimeSeconds": state.started.elapsed().as_secs() },
        "dependencies": items,
    }))
}

/// GET /metrics — Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    portico_runtime::metrics::record_pool("gateway", state.db.status());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(portico_runtime::metrics::render())
}

/// GET /.well-known/jwks.json
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.auth.jwks())
}

/// GET /internal/cache-stats — operators: the gateway's and every service's caches, per layer.
pub async fn cache_stats(state: web::Data<AppState>, rid: Rid) -> ApiResult {
    let mut processes = vec![json!({ "process": "gateway", "caches": state.caches.stats() })];
    for (name, client) in &state.services {
        match client.clone().info(outgoing(ops::InfoRequest {}, &rid.0)).await {
            Ok(info) => {
                let caches: Vec<Value> = info
                    .into_inner()
                    .caches
                    .into_iter()
                    .map(|c| {
                        let total = c.l1_hits + c.l2_hits + c.loads;
                        json!({
                            "name": c.name, "l1Hits": c.l1_hits, "l1Misses": c.l1_misses, "l1Size": c.l1_size,
                            "l2Hits": c.l2_hits, "l2Misses": c.l2_misses, "l2Errors": c.l2_errors, "l2Enabled": c.l2_enabled,
                            "loads": c.loads,
                            "hitRate": if total == 0 { Value::Null } else { json!((c.l1_hits + c.l2_hits) as f64 / total as f64) },
                        })
                    })
                    .collect();
                processes.push(json!({ "process": name, "caches": caches }));
            }
            Err(status) => processes.push(json!({ "process": name, "error": status.message() })),
        }
    }
    Ok(ok(json!({ "processes": processes })))
}

/// The OpenAPI 3.1 document of every public path.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in API_ROUTES {
        for (prefix, deprecated) in [("/v1", false), ("/api", true)] {
            let path = format!("{prefix}{}", r.path);
            let params: Vec<Value> = r
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
                .collect();
            let mut op = json!({
                "tags": [r.tag],
                "summary": r.summary,
                "operationId": format!("{}{}{}", r.method, if deprecated { "Legacy" } else { "" }, r.path.replace(['/', '{', '}', '-'], "_")),
                "parameters": params,
                "responses": {
                    "200": { "description": "Success envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Success" } } } },
                    "4XX": { "description": "Error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "429": { "description": "Rate limited; see Retry-After and RateLimit headers" },
                },
            });
            if deprecated {
                op["deprecated"] = Value::Bool(true);
                op["description"] = json!(format!(
                    "Legacy alias of {}; answers with Deprecation, Sunset and Link headers.",
                    format_args!("/v1{}", r.path)
                ));
            }
            match r.access {
                Access::Anonymous => op["security"] = json!([{}, { "bearer": [] }, { "apiKey": [] }]),
                Access::User | Access::Admin => op["security"] = json!([{ "bearer": [] }, { "apiKey": [] }]),
                // A fresh password sign-in: an access token, never an API key.
                Access::Fresh => op["security"] = json!([{ "bearer": [] }]),
            }
            if r.access == Access::Admin {
                op["summary"] = json!(format!("{} (admin)", r.summary));
            }
            if let Some(body) = r.body {
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } }
                });
                if body == "Upload" {
                    op["requestBody"]["content"] = json!({
                        "multipart/form-data": { "schema": { "$ref": "#/components/schemas/Upload" } }
                    });
                }
                if body == "Workflow" {
                    op["requestBody"]["content"]["application/xml"] = json!({
                        "schema": { "type": "string", "description": "A BPMN 2.0 process (see the README for how it maps to steps)" }
                    });
                }
            }
            let entry = paths.entry(path).or_insert_with(|| json!({}));
            entry[r.method] = op;
        }
    }
    for (path, summary) in [
        ("/health", "Liveness with version"),
        ("/live", "Liveness"),
        ("/ready", "Readiness: database, cache and every service"),
        ("/health/detailed", "Every dependency: status, latency, version"),
        ("/metrics", "Prometheus metrics"),
        ("/.well-known/jwks.json", "Public keys of access tokens"),
        ("/openapi.json", "This document"),
        (
            "/internal/cache-stats",
            "Cache hit/miss/size per cache and layer (admin)",
        ),
    ] {
        paths.insert(path.to_string(), json!({ "get": { "tags": ["operations"], "summary": summary, "responses": { "200": { "description": "OK" } } } }));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portico API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every response uses the envelope {success, data | error, meta}. Errors carry a stable `code` from the catalogue below; validation errors name each bad field in `error.details.fields`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let codes: Vec<Value> = portico_runtime::ErrorCode::ALL
        .iter()
        .map(|c| json!(c.as_str()))
        .collect();
    let level = json!({ "type": "string", "enum": ["NONE", "BASIC", "PREMIUM", "ADVANCED", "DEVELOPER"] });
    let time = json!({ "type": "string", "format": "date-time" });
    // The workflow document's schema, its internal references re-rooted at its place here so
    // tools that ignore `$id` resolve them too.
    let workflow: Value = serde_json::from_str(
        &portico_workflow_analyzer::SCHEMA.replace("\"#/$defs/", "\"#/components/schemas/Workflow/$defs/"),
    )
    .unwrap_or_default();
    let connection = json!({ "type": "string", "enum": ["slow-2g", "2g", "3g", "4g", "wifi"] });
    json!({
        "Workflow": workflow,
        "Upload": { "type": "object", "required": ["file"], "properties": {
            "file": { "type": "string", "format": "binary", "description": "JPEG, PNG or WebP" },
            "connection": connection } },
        "ClientEvents": { "type": "object", "required": ["events"], "additionalProperties": false, "properties": {
            "events": { "type": "array", "minItems": 1, "maxItems": 100, "items": {
                "type": "object", "required": ["type", "durationMs"], "additionalProperties": false, "properties": {
                    "type": { "type": "string", "enum": ["upload", "screen", "api"] },
                    "durationMs": { "type": "number", "minimum": 0 },
                    "bytes": { "type": "integer", "minimum": 0 },
                    "connection": connection,
                    "device": { "type": "string", "maxLength": 64 },
                    "os": { "type": "string", "maxLength": 64 },
                    "appVersion": { "type": "string", "maxLength": 64 },
                    "success": { "type": "boolean" },
                    "occurredAt": time } } } } },
        "Meta": { "type": "object", "properties": { "timestamp": time, "requestId": { "type": "string" } } },
        "Success": { "type": "object", "properties": { "success": { "const": true }, "data": {}, "meta": { "$ref": "#/components/schemas/Meta" } } },
        "Error": { "type": "object", "properties": {
            "success": { "const": false },
            "error": { "type": "object", "properties": {
                "code": { "type": "string", "enum": codes }, "message": { "type": "string" }, "details": {} } },
            "meta": { "$ref": "#/components/schemas/Meta" } } },
        "Credentials": { "type": "object", "required": ["email", "password"], "additionalProperties": false, "properties": {
            "email": { "type": "string", "format": "email" }, "password": { "type": "string", "minLength": 8 } } },
        "RefreshRequest": { "type": "object", "required": ["refreshToken"], "additionalProperties": false, "properties": { "refreshToken": { "type": "string" } } },
        "LogoutRequest": { "type": "object", "additionalProperties": false, "properties": { "refreshToken": { "type": "string" } } },
        "CreateApiKey": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 100 },
            "scopes": { "type": "array", "minItems": 1, "uniqueItems": true, "items": { "type": "string", "enum": ["read", "write", "admin"] },
                        "description": "default [\"read\", \"write\"]; `admin` for admins only" } } },
        "TokenRequest": { "type": "object", "required": ["token"], "additionalProperties": false, "properties": { "token": { "type": "string", "maxLength": 128 } } },
        "ForgotPassword": { "type": "object", "required": ["email"], "additionalProperties": false, "properties": { "email": { "type": "string", "format": "email" } } },
        "ResetPassword": { "type": "object", "required": ["token", "password"], "additionalProperties": false, "properties": {
            "token": { "type": "string", "maxLength": 128 }, "password": { "type": "string", "minLength": 8, "maxLength": 256 } } },
        "ChangePassword": { "type": "object", "required": ["currentPassword", "newPassword"], "additionalProperties": false, "properties": {
            "currentPassword": { "type": "string", "maxLength": 256 }, "newPassword": { "type": "string", "minLength": 8, "maxLength": 256 } } },
        "SetRole": { "type": "object", "required": ["role"], "additionalProperties": false, "properties": { "role": { "type": "string", "enum": ["user", "admin"] } } },
        "SetTier": { "type": "object", "required": ["tier"], "additionalProperties": false, "properties": { "tier": { "type": "string", "enum": ["free", "pro", "enterprise"] } } },
        "InviteCodeRequest": { "type": "object", "required": ["code"], "additionalProperties": false, "properties": { "code": { "type": "string", "maxLength": 64 } } },
        "AnalyticsEvent": { "type": "object", "required": ["feature", "action"], "additionalProperties": false, "properties": {
            "feature": { "type": "string", "maxLength": 64 }, "action": { "type": "string", "maxLength": 64 },
            "properties": { "type": "object" }, "occurredAt": time } },
        "AnalyticsEvents": { "oneOf": [
            { "$ref": "#/components/schemas/AnalyticsEvent" },
            { "type": "object", "required": ["events"], "additionalProperties": false, "properties": {
                "events": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "$ref": "#/components/schemas/AnalyticsEvent" } } } } ] },
        "CreateInviteCode": { "type": "object", "required": ["accessLevel", "maxUses"], "additionalProperties": false, "properties": {
            "code": { "type": "string", "pattern": "^[A-Z0-9_-]{4,64}$" }, "accessLevel": level, "maxUses": { "type": "integer", "minimum": 1, "maximum": 1_000_000 }, "expiresAt": time } },
        "UpdateInviteCode": { "type": "object", "additionalProperties": false, "properties": {
            "active": { "type": "boolean" }, "maxUses": { "type": "integer", "minimum": 0 }, "expiresAt": { "type": ["string", "null"], "format": "date-time" } } },
        "SetLevel": { "type": "object", "required": ["accessLevel"], "additionalProperties": false, "properties": { "accessLevel": level } },
        "FeatureTable": { "type": "object", "required": ["features"], "additionalProperties": false, "properties": {
            "features": { "type": "array", "items": { "type": "object", "required": ["name", "minLevel"], "properties": {
                "name": { "type": "string", "pattern": "^[a-z0-9_.-]{1,64}$" }, "minLevel": level, "description": { "type": "string" } } } } } },
    })
}

/// GET /api-docs → the UI.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/api-docs/"))
        .finish()
}

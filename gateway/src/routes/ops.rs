//! Gateway-owned endpoints: health, readiness, metrics, OpenAPI and its UI, JWKS, cache stats.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, http::header, web};
use portico_proto::ops::v1 as ops;
use portico_runtime::{ErrorCode, grpc::outgoing};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::Rid;
use crate::{
    AppState,
    contract::{
        Raw, Reply,
        doc::{Output, ResponseDoc, Schemas},
        openapi::OpsDoc,
    },
    envelope::ApiError,
};

/// A public probe's answer: its status and nothing else.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (liveness) or `ready`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// GET /live — the process is up.
pub async fn live() -> Result<Reply<Status>, ApiError> {
    Ok(Reply(Status { status: "ok" }))
}

/// GET /health — liveness; says nothing about the inside (versions and dependencies are in
/// `/health/detailed`, for operators).
pub async fn health() -> Result<Reply<Status>, ApiError> {
    Ok(Reply(Status { status: "ok" }))
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

/// A process's memory and CPU as the reports show them.
fn process_json(p: &ops::ProcessStats) -> Value {
    json!({
        "rssBytes": p.rss_bytes,
        "memoryLimitBytes": p.memory_limit_bytes,
        "memoryPercent": p.memory_percent,
        "cpuPercent": p.cpu_percent,
    })
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
                    "process": info.process.as_ref().map(process_json),
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
pub async fn ready(state: web::Data<AppState>) -> Result<Reply<Status>, ApiError> {
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let database = !draining && timed(state.db.ping()).await.0.is_ok();
    if database {
        Ok(Reply(Status { status: "ready" }))
    } else {
        Err(ApiError(
            portico_runtime::Problem::new(ErrorCode::ServiceUnavailable, "not ready")
                .with_details(json!({ "status": if draining { "draining" } else { "not_ready" } })),
        ))
    }
}

/// Up or down.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpDown {
    /// Answering.
    Up,
    /// Not answering, or its own dependencies are not.
    Down,
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyCheck {
    /// The database, Redis (or the in-memory cache) or a service.
    name: String,
    /// Its state.
    status: UpDown,
    /// How long the probe took.
    latency_ms: f64,
    /// An error, or a service's version, process (memory and CPU) and own dependencies.
    #[schema(value_type = Option<Object>)]
    detail: Value,
}

/// The gateway itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfo {
    /// Its version.
    version: &'static str,
    /// Seconds since it started.
    uptime_seconds: u64,
    /// Its memory (`rssBytes`, `memoryLimitBytes`, `memoryPercent`) and CPU (`cpuPercent`
    /// of one core since the previous report); absent where the platform cannot say.
    #[schema(value_type = Option<Object>)]
    process: Value,
}

/// Every dependency, probed side by side.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `healthy` when everything is up, else `degraded`.
    #[schema(example = "healthy")]
    status: &'static str,
    /// The gateway.
    gateway: GatewayInfo,
    /// Each dependency.
    dependencies: Vec<DependencyCheck>,
}

/// GET /health/detailed — operators: every dependency and service with status, latency,
/// version and error (admin listener, or admin auth on the API port).
pub async fn detailed(state: web::Data<AppState>, rid: Rid) -> Result<Reply<HealthReport>, ApiError> {
    let checks = state.health.report(&state, &rid.0).await;
    let healthy = checks.iter().all(|c| c.healthy);
    Ok(Reply(HealthReport {
        status: if healthy { "healthy" } else { "degraded" },
        gateway: GatewayInfo {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            process: portico_runtime::process::stats()
                .map_or(Value::Null, |p| process_json(&ops::ProcessStats::from(p))),
        },
        dependencies: checks
            .iter()
            .map(|c| DependencyCheck {
                name: c.name.clone(),
                status: if c.healthy { UpDown::Up } else { UpDown::Down },
                latency_ms: c.latency_ms,
                detail: c.detail.clone(),
            })
            .collect(),
    }))
}

/// Prometheus's text format.
pub struct PrometheusText;

impl ResponseDoc for PrometheusText {
    fn document(_: &mut Schemas) -> Output {
        Output {
            status: 200,
            response: json!({ "description": "Every metric of the gateway.", "content": { "text/plain": { "schema": { "type": "string" } } } }),
            others: Vec::new(),
        }
    }
}

/// GET /metrics — Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> Result<Raw<PrometheusText>, ApiError> {
    portico_runtime::metrics::record_pool("gateway", state.db.status());
    Ok(Raw::new(
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(portico_runtime::metrics::render()),
    ))
}

/// A JSON Web Key Set (RFC 7517), outside the envelope.
pub struct Jwks;

impl ResponseDoc for Jwks {
    fn document(_: &mut Schemas) -> Output {
        Output {
            status: 200,
            response: json!({
                "description": "The public keys of access tokens: the signing key and retired keys whose tokens may still be valid.",
                "content": { "application/json": { "schema": {
                    "type": "object", "required": ["keys"],
                    "properties": { "keys": { "type": "array", "items": {
                        "type": "object", "required": ["kty", "crv", "x", "kid"],
                        "properties": {
                            "kty": { "const": "OKP" }, "crv": { "const": "Ed25519" }, "alg": { "const": "EdDSA" },
                            "use": { "const": "sig" }, "kid": { "type": "string" }, "x": { "type": "string" } } } } } } } },
            }),
            others: Vec::new(),
        }
    }
}

/// GET /.well-known/jwks.json
pub async fn jwks(state: web::Data<AppState>) -> Result<Raw<Jwks>, ApiError> {
    Ok(Raw::new(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .json(state.auth.jwks()),
    ))
}

/// One cache's counters, per layer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheView {
    /// The cache.
    name: String,
    /// Answers from process memory.
    l1_hits: u64,
    /// Misses there.
    l1_misses: u64,
    /// Entries there.
    l1_size: u64,
    /// Answers from Redis.
    l2_hits: u64,
    /// Misses there.
    l2_misses: u64,
    /// Failed Redis calls (served without it).
    l2_errors: u64,
    /// Whether Redis is configured.
    l2_enabled: bool,
    /// Answers computed by the loader.
    loads: u64,
    /// Share answered from a cache layer (absent before the first answer).
    hit_rate: Option<f64>,
}

impl From<ops::CacheStats> for CacheView {
    fn from(c: ops::CacheStats) -> Self {
        let total = c.l1_hits + c.l2_hits + c.loads;
        CacheView {
            hit_rate: (total > 0).then(|| (c.l1_hits + c.l2_hits) as f64 / total as f64),
            name: c.name,
            l1_hits: c.l1_hits,
            l1_misses: c.l1_misses,
            l1_size: c.l1_size,
            l2_hits: c.l2_hits,
            l2_misses: c.l2_misses,
            l2_errors: c.l2_errors,
            l2_enabled: c.l2_enabled,
            loads: c.loads,
        }
    }
}

/// One process's caches.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessCaches {
    /// `gateway` or a service.
    process: String,
    /// Its caches (absent when it did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    caches: Option<Vec<CacheView>>,
    /// Why it did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Every process's caches.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheReport {
    /// The gateway first, then each service.
    processes: Vec<ProcessCaches>,
}

/// GET /internal/cache-stats — operators: the gateway's and every service's caches, per layer.
pub async fn cache_stats(state: web::Data<AppState>, rid: Rid) -> Result<Reply<CacheReport>, ApiError> {
    let gateway = state
        .caches
        .stats()
        .into_iter()
        .map(|c| CacheView::from(ops::CacheStats::from(c)))
        .collect();
    let mut processes = vec![ProcessCaches {
        process: "gateway".into(),
        caches: Some(gateway),
        error: None,
    }];
    for (name, client) in &state.services {
        let answer = client.clone().info(outgoing(ops::InfoRequest {}, &rid.0)).await;
        processes.push(match answer {
            Ok(info) => ProcessCaches {
                process: (*name).to_string(),
                caches: Some(info.into_inner().caches.into_iter().map(CacheView::from).collect()),
                error: None,
            },
            Err(status) => ProcessCaches {
                process: (*name).to_string(),
                caches: None,
                error: Some(status.message().to_string()),
            },
        });
    }
    Ok(Reply(CacheReport { processes }))
}

/// The operations endpoints outside the API scopes, for the document (each names the answer
/// type its handler returns).
pub(crate) const OPS: &[OpsDoc] = &[
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/health",
        summary: "Liveness (status only)",
        operators: false,
        response: <Reply<Status> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/live",
        summary: "Liveness (status only)",
        operators: false,
        response: <Reply<Status> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/ready",
        summary: "Readiness: the gateway's own database, and not shutting down (status only)",
        operators: false,
        response: <Reply<Status> as ResponseDoc>::document,
        errors: &[ErrorCode::ServiceUnavailable],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/health/detailed",
        summary: "Every dependency and service: status, latency, version",
        operators: true,
        response: <Reply<HealthReport> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        operators: true,
        response: <Raw<PrometheusText> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/internal/cache-stats",
        summary: "Cache hit/miss/size per cache and layer, for the gateway and every service",
        operators: true,
        response: <Reply<CacheReport> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "get",
        tag: "operations",
        input: None,
        path: "/.well-known/jwks.json",
        summary: "Public keys of access tokens (JWKS)",
        operators: false,
        response: <Raw<Jwks> as ResponseDoc>::document,
        errors: &[],
    },
    OpsDoc {
        method: "post",
        tag: "billing",
        input: Some(super::billing::webhook_input),
        path: "/webhooks/stripe",
        summary: "Stripe webhook events: `Stripe-Signature` verified over the raw body (5-minute tolerance), each event id applied once; answers before processing",
        operators: false,
        response: <Reply<super::billing::WebhookAck> as ResponseDoc>::document,
        errors: &[
            ErrorCode::WebhookSignatureMissing,
            ErrorCode::WebhookSignatureInvalid,
            ErrorCode::WebhookSignatureExpired,
            ErrorCode::WebhookEventInvalid,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
        ],
    },
    OpsDoc {
        method: "post",
        tag: "monitoring",
        input: Some(super::monitoring::sentry_input),
        path: "/sentry/api/{projectId}/envelope/",
        summary: "What the official Sentry SDKs send (their DSN points here): an envelope's error events, grouped as Sentry groups them",
        operators: false,
        response: <super::monitoring::SentryAck as ResponseDoc>::document,
        errors: SENTRY_ERRORS,
    },
    OpsDoc {
        method: "post",
        tag: "monitoring",
        input: Some(super::monitoring::sentry_input),
        path: "/sentry/api/{projectId}/store/",
        summary: "The legacy Sentry store endpoint: one event object",
        operators: false,
        response: <super::monitoring::SentryAck as ResponseDoc>::document,
        errors: SENTRY_ERRORS,
    },
];

/// What the Sentry ingest answers besides 200.
const SENTRY_ERRORS: &[ErrorCode] = &[
    ErrorCode::SentryKeyInvalid,
    ErrorCode::EnvelopeInvalid,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::RateLimited,
    ErrorCode::ServiceUnavailable,
];

/// The OpenAPI 3.1 document of every public path, with the caps of `config`.
pub fn openapi(config: &crate::GatewayConfig) -> Value {
    crate::contract::openapi::document(OPS, limits(config))
}

/// The caps `/openapi.json` states.
pub fn limits(config: &crate::GatewayConfig) -> crate::contract::doc::Limits {
    crate::contract::doc::Limits {
        upload_bytes: config.upload_limit as u64,
        chunk_bytes: config.chunk_limit as u64,
        json_bytes: config.json_limit as u64,
    }
}

/// `/openapi.json`, serialised once at start.
pub struct OpenApiDocument(pub actix_web::web::Bytes);

/// GET /openapi.json
pub async fn openapi_json(document: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// Swagger UI's settings: it reads `/openapi.json`.
pub struct DocsConfig(pub std::sync::Arc<utoipa_swagger_ui::Config<'static>>);

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig(std::sync::Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")))
    }
}

/// GET /api-docs/{file}: Swagger UI's files, vendored in the binary.
pub async fn docs_file(file: web::Path<String>, config: web::Data<DocsConfig>) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&file, config.0.clone()) {
        Ok(Some(file)) => {
            let mut res = HttpResponse::Ok();
            if file.gzpipped {
                res.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(res.content_type(file.content_type).body(file.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::new(ErrorCode::NotFound, "no such file of the API docs")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// GET /api-docs → the UI.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/api-docs/"))
        .finish()
}

//! The request pipeline every call goes through, in order: request id and trace span,
//! authentication, rate limiting, the handler, then response headers (request id, rate-limit,
//! deprecation of `/api/*`, security headers) and metrics.

use std::{net::IpAddr, time::Instant};

use actix_web::{
    Error, HttpMessage,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use portico_runtime::{ErrorCode, Problem, telemetry};
use tracing::Instrument;

use crate::{
    AppState,
    auth::{Principal, Tier},
    envelope::{ApiError, problem_response},
    ratelimit::{Decision, Quota},
};

/// The docs page runs Swagger UI from the binary: scripts and styles from this origin only.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The authenticated caller, if any (in request extensions).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Principal>);

/// The request id (in request extensions).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn well_formed_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Paths that are rate limited and authenticated: the public API and its legacy alias.
fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/api/") || path.starts_with("/internal/")
}

fn client_ip(req: &ServiceRequest, trust_forwarded: bool) -> String {
    if trust_forwarded
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip.to_string();
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Runs the pipeline around the handler.
pub async fn pipeline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed_request_id(v))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let span = if telemetry::recording() {
        tracing::info_span!(
            "http.request",
            otel.name = %format!("{method} {route}"),
            http.method = %method,
            http.route = %route,
            http.status_code = tracing::field::Empty,
            request_id = %request_id,
            user_id = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    let carrier = req
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)));
    let context = telemetry::request_context(&span, request_id.clone(), carrier);
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let id = request_id.clone();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let fut = async move {
        let path = req.path().to_string();
        let legacy = path.starts_with("/api/");
        let mut rate: Option<Decision> = None;
        let mut tier_name = "anonymous";
        let result: Result<ServiceResponse<BoxBody>, Error> = 'done: {
            if is_api_path(&path) {
                let Some(state) = &state else {
                    break 'done Ok(req.error_response(ApiError::internal("application state missing")));
                };
                // Authentication and the limiter wait on caches and Redis, whose futures are
                // large; boxed, they keep this future small, and every middleware layer
                // around it moves (copies) it when it is created (measured in BENCHMARKS.md).
                let principal = match Box::pin(authenticate(state, &req)).await {
                    Ok(p) => p,
                    Err(e) => break 'done Ok(req.into_response(problem_response(&e.0, &id))),
                };
                if let Some(p) = &principal {
                    tracing::Span::current().record("user_id", p.user_id.as_str());
                }
                let (key, quota, tier) = match &principal {
                    Some(p) => (
                        format!("u:{}", p.user_id),
                        Quota::per_minute(state.rate_for(p.tier)),
                        Some(p.tier),
                    ),
                    None => (
                        format!("ip:{}", client_ip(&req, state.config.trust_forwarded)),
                        Quota::per_minute(state.config.rates.anonymous),
                        None,
                    ),
                };
                tier_name = tier.map(Tier::as_str).unwrap_or("anonymous");
                let decision = Box::pin(state.limiter.check(&key, quota)).await;
                rate = Some(decision);
                if !decision.allowed {
                    metrics::counter!("portico_rate_limited_total", "tier" => tier_name).increment(1);
                    let problem = rate_limited(state, tier, decision);
                    break 'done Ok(req.into_response(problem_response(&problem, &id)));
                }
                req.extensions_mut().insert(Caller(principal));
            }
            next.call(req).await.map(ServiceResponse::map_into_boxed_body)
        };
        let mut res = match result {
            Ok(res) => res,
            Err(e) => return Err(e),
        };
        let status = res.status().as_u16();
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id) {
            headers.insert(HeaderName::from_static("x-request-id"), v);
        }
        if let Some(d) = rate {
            insert_rate_headers(headers, d, tier_name);
        }
        if path.starts_with("/api-docs/") {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
        }
        if legacy && let Some(state) = &state {
            insert_deprecation(headers, state, &path);
        }
        // Small bodies are not worth compressing: mark them so the compressor leaves them be.
        if let actix_web::body::BodySize::Sized(n) = res.response().body().size()
            && n < 1024
            && !res.headers().contains_key(header::CONTENT_ENCODING)
        {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("identity"));
        }
        tracing::Span::current().record("http.status_code", status);
        let elapsed = started.elapsed().as_secs_f64();
        let status_class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics::histogram!("portico_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status_class)
            .record(elapsed);
        metrics::counter!("portico_http_requests_total", "method" => method, "route" => route, "status" => status.to_string()).increment(1);
        if status >= 500 {
            tracing::error!(status, elapsed_ms = elapsed * 1000.0, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms = elapsed * 1000.0, "request served");
        }
        Ok(res)
    };
    telemetry::with_request(context, fut.instrument(span)).await
}

async fn authenticate(state: &AppState, req: &ServiceRequest) -> Result<Option<Principal>, ApiError> {
    let headers = req.headers();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let value = auth
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::InvalidToken, "the Authorization header is not readable"))?;
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "use `Authorization: Bearer <access token>`",
            ));
        };
        return state.auth.authenticate_token(token.trim()).await.map(Some);
    }
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::InvalidToken, "the X-API-Key header is not readable"))?;
        return state.auth.authenticate_api_key(key.trim()).await.map(Some);
    }
    Ok(None)
}

fn rate_limited(state: &AppState, tier: Option<Tier>, d: Decision) -> Problem {
    let mut details = serde_json::json!({
        "limit": d.limit,
        "windowSeconds": 60,
        "retryAfterSeconds": d.retry_after_secs,
        "tier": tier.map(Tier::as_str).unwrap_or("anonymous"),
    });
    match tier {
        Some(Tier::Free) => {
            details["upgrade"] = serde_json::json!({
                "plan": "pro",
                "limitPerMinute": state.config.rates.pro,
                "message": format!(
                    "The free plan allows {} requests per minute. Upgrade to Pro for {} per minute.",
                    state.config.rates.free, state.config.rates.pro
                ),
                "url": "/v1/billing/plans",
            });
        }
        None => {
            details["hint"] = serde_json::json!("sign in for a higher limit");
        }
        _ => {}
    }
    Problem::new(
        ErrorCode::RateLimited,
        format!("rate limit of {} requests per minute exceeded", d.limit),
    )
    .with_details(details)
}

fn insert_rate_headers(headers: &mut actix_web::http::header::HeaderMap, d: Decision, policy: &str) {
    let policy_value = format!("\"{policy}\";q={};w=60", d.limit);
    let state_value = format!("\"{policy}\";r={};t={}", d.remaining, d.reset_secs);
    if let Ok(v) = HeaderValue::from_str(&policy_value) {
        headers.insert(HeaderName::from_static("ratelimit-policy"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&state_value) {
        headers.insert(HeaderName::from_static("ratelimit"), v);
    }
    if !d.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs.max(1)));
    }
}

fn insert_deprecation(headers: &mut actix_web::http::header::HeaderMap, state: &AppState, path: &str) {
    let successor = format!("/v1/{}", path.trim_start_matches("/api/"));
    let deprecation = format!("@{}", state.config.api_deprecated_at.timestamp());
    let sunset = state.config.api_sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let link = format!("<{successor}>; rel=\"successor-version\"");
    for (name, value) in [("deprecation", deprecation), ("sunset", sunset), ("link", link)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

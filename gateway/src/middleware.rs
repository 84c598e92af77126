//! The request pipeline.
//!
//! Two layers, each decided by the router rather than by looking at the path a second time:
//! - [`pipeline`] wraps the whole application: request id, the client's address (through
//!   trusted proxies only), trace context, the canonical-path check (non-canonical spellings
//!   are refused before routing), then response headers and metrics labelled with the route
//!   the router matched.
//! - [`gate`] wraps each API route (and the 404/405 answers of the API scopes) with that
//!   route's own [`RoutePolicy`]: limiting, authentication, who may call it, and the `/api`
//!   deprecation headers. A path only reaches a handler through its route, so it cannot reach
//!   one without the limiter.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use actix_web::{
    Error, HttpMessage,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderMap, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use portico_runtime::{ErrorCode, Problem, telemetry};
use tracing::Instrument;

use crate::{
    AppState,
    auth::{Credential, Principal, Role, Scope, Tier},
    client_ip,
    envelope::{ApiError, problem_response},
    paths,
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

/// The client's address (in request extensions): the peer, or the right-most untrusted
/// `X-Forwarded-For` hop when the peer is a trusted proxy.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (authenticated callers get their own rate tier).
    Anonymous,
    /// A signed-in user or an API key with the method's scope.
    User,
    /// A user who signed in with their password recently (not an API key, not a session
    /// kept alive by refreshing): account deletion, API-key creation, password change.
    Fresh,
    /// An admin (API keys need the `admin` scope).
    Admin,
}

/// Which budget a route's calls are counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// The caller's per-minute API budget (by plan tier, or per IP when anonymous).
    Api,
    /// Resumable-upload chunks: their own per-minute budget, so a slow network's many small
    /// chunks do not spend the API budget.
    Chunks,
    /// Provider webhooks: a generous per-IP budget of their own (`/webhooks/*`).
    Webhooks,
    /// Error reports from Sentry SDKs: a generous per-IP budget of their own
    /// (`/sentry/api/*`; each project has its own budget besides).
    Ingest,
}

/// What the gate of one route decides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Who may call it.
    pub access: Access,
    /// Which budget it spends.
    pub budget: Budget,
    /// Served under the deprecated `/api` alias: add Deprecation, Sunset and Link.
    pub legacy: bool,
}

impl RoutePolicy {
    /// An anonymous route on the API budget (the scopes' 404 and 405 answers).
    pub const fn anonymous(legacy: bool) -> Self {
        RoutePolicy {
            access: Access::Anonymous,
            budget: Budget::Api,
            legacy,
        }
    }

    /// A provider webhook: anonymous (the signature is the proof), on the webhook budget.
    pub const fn webhook() -> Self {
        RoutePolicy {
            access: Access::Anonymous,
            budget: Budget::Webhooks,
            legacy: false,
        }
    }

    /// Sentry SDK ingest: anonymous (the project key is the proof), on the ingest budget.
    pub const fn ingest() -> Self {
        RoutePolicy {
            access: Access::Anonymous,
            budget: Budget::Ingest,
            legacy: false,
        }
    }

    /// An admin-only route outside the API scopes (operations endpoints on the API port).
    pub const fn admin() -> Self {
        RoutePolicy {
            access: Access::Admin,
            budget: Budget::Api,
            legacy: false,
        }
    }
}

/// Whether a client's `X-Request-ID` is kept: 1 to 128 bytes of ASCII letters, digits and
/// `-_.:` (anything else is replaced by a fresh UUID, so ids stay safe in logs and headers).
pub fn well_formed_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Runs the outer pipeline around the router.
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
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let peer = req.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let (client, trusted_peer) = match &state {
        Some(s) if s.config.trusted_proxies.contains(peer) => {
            let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
            (s.config.trusted_proxies.client(peer, forwarded), true)
        }
        _ => (peer, false),
    };
    req.extensions_mut().insert(ClientIp(client));
    let method = req.method().to_string();
    let span = if telemetry::recording() {
        tracing::info_span!(
            "http.request",
            http.method = %method,
            http.route = tracing::field::Empty,
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
    // A client's own `traceparent` must not decide what is sampled: only a trusted proxy's is
    // continued; anyone else's is kept as a link of a new trace.
    let context = if trusted_peer {
        telemetry::request_context(&span, request_id.clone(), carrier)
    } else {
        telemetry::request_context_untrusted(&span, request_id.clone(), carrier)
    };
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let id = request_id;
    let fut = async move {
        let mut res = match paths::check(req.path()) {
            Err(why) => {
                let problem = Problem::new(ErrorCode::InvalidPath, why.message())
                    .with_details(serde_json::json!({ "path": "send the path as itself, without encoded letters, digits or slashes, empty or dot segments" }));
                req.into_response(problem_response(&problem, &id))
            }
            Ok(()) => next.call(req).await?.map_into_boxed_body(),
        };
        let route = res.request().match_pattern();
        let status = res.status().as_u16();
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id) {
            headers.insert(HeaderName::from_static("x-request-id"), v);
        }
        if route.as_deref().is_some_and(|r| r.starts_with("/api-docs/")) {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
        }
        // Small bodies are not worth compressing: mark them so the compressor leaves them be.
        if let actix_web::body::BodySize::Sized(n) = res.response().body().size()
            && n < 1024
            && !res.headers().contains_key(header::CONTENT_ENCODING)
        {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("identity"));
        }
        let route = route.unwrap_or_else(|| "unmatched".to_string());
        let span = tracing::Span::current();
        span.record("http.status_code", status);
        span.record("http.route", route.as_str());
        telemetry::rename(&span, format!("{method} {route}"));
        let elapsed = started.elapsed().as_secs_f64();
        let status_class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        if let Some(s) = &state {
            s.route_stats
                .record(&route, &method, status, elapsed * 1000.0, portico_runtime::db::now_ms());
        }
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

/// Sits outside the compressor: the pipeline marks small bodies `Content-Encoding: identity`
/// so the compressor leaves them be; the marker is dropped here, so no answer carries it.
pub async fn drop_identity_encoding(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    if res
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        res.headers_mut().remove(header::CONTENT_ENCODING);
    }
    Ok(res)
}

/// Limits, authenticates and authorises one route's calls, by that route's policy.
pub async fn gate(
    policy: RoutePolicy,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(ApiError::internal("application state missing")));
    };
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    // Authentication and the limiter wait on caches and Redis, whose futures are large;
    // boxed, they keep this future small (measured in BENCHMARKS.md).
    let admitted = Box::pin(admit(&state, &req, policy)).await;
    let (principal, decision, budget_name) = match admitted {
        Ok(a) => a,
        Err(refusal) => {
            let mut res = req.into_response(problem_response(&refusal.problem, &id));
            if let Some((d, name)) = refusal.decision {
                insert_rate_headers(res.headers_mut(), d, name);
            }
            if policy.legacy {
                let path = res.request().path().to_string();
                insert_deprecation(res.headers_mut(), &state, &path);
            }
            return Ok(res);
        }
    };
    if let Some(p) = &principal {
        tracing::Span::current().record("user_id", p.user_id.as_str());
    }
    req.extensions_mut().insert(Caller(principal));
    let mut res = next.call(req).await?;
    insert_rate_headers(res.headers_mut(), decision, budget_name);
    if policy.legacy {
        let path = res.request().path().to_string();
        insert_deprecation(res.headers_mut(), &state, &path);
    }
    Ok(res)
}

/// A call the gate turns away, with the limiter's decision when one was made.
struct Refusal {
    problem: Problem,
    decision: Option<(Decision, &'static str)>,
}

impl Refusal {
    fn new(problem: Problem, decision: Option<(Decision, &'static str)>) -> Self {
        Refusal { problem, decision }
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::new(e.0, None)
    }
}

/// Decides whether the call may proceed: who the caller is and which budget decision applies.
async fn admit(
    state: &AppState,
    req: &ServiceRequest,
    policy: RoutePolicy,
) -> Result<(Option<Principal>, Decision, &'static str), Refusal> {
    let client = req
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
    let ip_key = client_ip::limit_key(client);
    let anonymous = Quota::per_minute(state.config.rates.anonymous);
    let presented = match credentials(req) {
        Ok(None) => None,
        Ok(Some(c)) => Some(Ok(c)),
        // Unreadable credentials are a failed authentication like any other.
        Err(e) => Some(Err(e)),
    };
    let principal = match presented {
        None => {
            // Anonymous callers are limited before anything else is done for them.
            let (key, quota, name) = match policy.budget {
                Budget::Webhooks => (
                    format!("w:{ip_key}"),
                    Quota::per_minute(state.config.rates.webhooks),
                    "webhooks",
                ),
                Budget::Ingest => (
                    format!("i:{ip_key}"),
                    Quota::per_minute(state.config.rates.ingest),
                    "ingest",
                ),
                Budget::Api | Budget::Chunks => (ip_key.clone(), anonymous, "anonymous"),
            };
            let d = state.limiter.check(&key, quota).await;
            if !d.allowed {
                return Err(rate_limited(state, None, d, name));
            }
            return match authorise(None, policy, req.method()) {
                Ok(()) => Ok((None, d, name)),
                Err(mut refusal) => {
                    refusal.decision = Some((d, name));
                    Err(refusal)
                }
            };
        }
        Some(presented) => {
            // A client whose failed attempts spent its budget is turned away before its
            // credentials cost a lookup.
            if let Some(wait) = state.auth_failures.blocked(&ip_key) {
                let d = Decision::denied(state.config.rates.anonymous, wait);
                return Err(rate_limited(state, None, d, "anonymous"));
            }
            let outcome = match presented {
                Ok(credentials) => authenticate(state, credentials).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(p) => p,
                Err(e) => {
                    let d = state.limiter.check(&ip_key, anonymous).await;
                    if !d.allowed {
                        state
                            .auth_failures
                            .block(&ip_key, Duration::from_secs(d.retry_after_secs));
                        return Err(rate_limited(state, None, d, "anonymous"));
                    }
                    return Err(Refusal::new(e.0, Some((d, "anonymous"))));
                }
            }
        }
    };
    let (key, quota, name) = match policy.budget {
        Budget::Api => (
            format!("u:{}", principal.user_id),
            Quota::per_minute(state.rate_for(principal.tier)),
            principal.tier.as_str(),
        ),
        Budget::Chunks => (
            format!("c:{}", principal.user_id),
            Quota::per_minute(state.config.rates.upload_chunks),
            "upload-chunks",
        ),
        Budget::Webhooks => (
            format!("w:{ip_key}"),
            Quota::per_minute(state.config.rates.webhooks),
            "webhooks",
        ),
        Budget::Ingest => (
            format!("i:{ip_key}"),
            Quota::per_minute(state.config.rates.ingest),
            "ingest",
        ),
    };
    let d = state.limiter.check(&key, quota).await;
    if !d.allowed {
        metrics::counter!("portico_rate_limited_total", "tier" => name).increment(1);
        let tier = (policy.budget == Budget::Api).then_some(principal.tier);
        return Err(rate_limited(state, tier, d, name));
    }
    match authorise(Some(&principal), policy, req.method()) {
        Ok(()) => Ok((Some(principal), d, name)),
        Err(mut refusal) => {
            refusal.decision = Some((d, name));
            Err(refusal)
        }
    }
}

/// Whether the caller may call a route of `policy` with `method`.
fn authorise(principal: Option<&Principal>, policy: RoutePolicy, method: &Method) -> Result<(), Refusal> {
    let Some(p) = principal else {
        return match policy.access {
            Access::Anonymous => Ok(()),
            _ => Err(crate::routes::unauthorized().into()),
        };
    };
    let needed = match policy.access {
        Access::Admin => Scope::Admin,
        _ if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) => Scope::Read,
        _ => Scope::Write,
    };
    if let Credential::ApiKey { scopes, .. } = &p.credential
        && policy.access != Access::Anonymous
        && !scopes.contains(&needed)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this API key lacks the `{}` scope", needed.as_str()),
        )
        .into());
    }
    match policy.access {
        Access::Admin if p.role != Role::Admin => {
            Err(ApiError::new(ErrorCode::Forbidden, "this endpoint is for admins").into())
        }
        Access::Fresh if !p.fresh => Err(ApiError::new(
            ErrorCode::FreshLoginRequired,
            "sign in with your password again (within the last few minutes) to do this; API keys and refreshed sessions cannot",
        )
        .into()),
        _ => Ok(()),
    }
}

/// Credentials a request presents.
enum Credentials<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

fn credentials(req: &ServiceRequest) -> Result<Option<Credentials<'_>>, ApiError> {
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
        let token = token.trim();
        // Tools that can only send a static bearer token (Alertmanager's webhook receiver,
        // CI systems) present an API key that way.
        if token.starts_with(crate::auth::crypto::API_KEY_PREFIX) {
            return Ok(Some(Credentials::ApiKey(token)));
        }
        return Ok(Some(Credentials::Bearer(token)));
    }
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::InvalidToken, "the X-API-Key header is not readable"))?;
        return Ok(Some(Credentials::ApiKey(key.trim())));
    }
    Ok(None)
}

/// The caller, with the tier their entitlement (or complimentary plan) gives.
async fn authenticate(state: &AppState, credentials: Credentials<'_>) -> Result<Principal, ApiError> {
    let mut principal = match credentials {
        Credentials::Bearer(token) => state.auth.authenticate_token(token).await,
        Credentials::ApiKey(key) => state.auth.authenticate_api_key(key).await,
    }?;
    principal.tier = state.effective_tier(&principal.user_id, principal.tier).await;
    Ok(principal)
}

fn rate_limited(state: &AppState, tier: Option<Tier>, d: Decision, budget: &'static str) -> Refusal {
    let mut details = serde_json::json!({
        "limit": d.limit,
        "windowSeconds": 60,
        "retryAfterSeconds": d.retry_after_secs,
        "tier": tier.map(Tier::as_str).unwrap_or(budget),
    });
    match (tier, budget) {
        (Some(Tier::Free), _) => {
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
        (None, "anonymous") => {
            details["hint"] = serde_json::json!("sign in for a higher limit");
        }
        _ => {}
    }
    let problem = Problem::new(
        ErrorCode::RateLimited,
        format!("rate limit of {} requests per minute exceeded", d.limit),
    )
    .with_details(details);
    Refusal::new(problem, Some((d, budget)))
}

fn insert_rate_headers(headers: &mut HeaderMap, d: Decision, policy: &str) {
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

fn insert_deprecation(headers: &mut HeaderMap, state: &AppState, path: &str) {
    let successor = format!("/v1{}", path.strip_prefix("/api").unwrap_or(path));
    let deprecation = format!("@{}", state.config.api_deprecated_at.timestamp());
    let sunset = state.config.api_sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let link = format!("<{successor}>; rel=\"successor-version\"");
    for (name, value) in [("deprecation", deprecation), ("sunset", sunset), ("link", link)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// Clients whose failed authentications spent their budget, until when: their next attempts
/// are refused without looking their credentials up.
pub struct AuthFailures(moka::sync::Cache<String, Instant>);

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(120))
                .build(),
        )
    }
}

impl AuthFailures {
    /// How long `key` is still turned away, if it is.
    fn blocked(&self, key: &str) -> Option<Duration> {
        let until = self.0.get(key)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn block(&self, key: &str, wait: Duration) {
        self.0
            .insert(key.to_string(), Instant::now() + wait.max(Duration::from_secs(1)));
    }
}

//! Route modules: each handler authenticates (by extractor), validates, calls, shapes.
//!
//! The public API is declared once in [`api_routes!`]: the same table registers the routes
//! under `/v1` and `/api` and generates the OpenAPI document, so the docs cannot miss a path.

pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod beta;
pub mod billing;
pub mod jobs;
pub mod media;
pub mod monitoring;
pub mod ops;
pub mod workflow;

use actix_web::{
    FromRequest, HttpMessage, HttpRequest,
    body::BoxBody,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform},
    middleware::from_fn,
    web,
};
use futures_util::future::{Ready, ready};
use portico_runtime::ErrorCode;

pub use crate::middleware::{Access, Budget, RoutePolicy};
use crate::{
    auth::{Principal, Role},
    contract::{
        Created, Deleted, OptionalBody, Reply, Valid, ValidQuery,
        doc::{Input, Output, RequestDoc, ResponseDoc, Schemas},
    },
    envelope::{ApiError, ApiResult},
    middleware::{Caller, RequestId, gate},
};

/// One documented route.
#[derive(Clone, Copy)]
pub struct RouteDoc {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path under `/v1`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Which budget its calls spend.
    pub budget: Budget,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Its input (body, query) as the document shows it.
    pub request: fn(&mut Schemas) -> Input,
    /// Its answer as the document shows it.
    pub response: fn(&mut Schemas) -> Output,
    /// Error codes it answers besides the ones every route of its kind does.
    pub errors: &'static [ErrorCode],
}

impl std::fmt::Debug for RouteDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.to_ascii_uppercase(), self.path)
    }
}

/// The route of `method` on a path of the table: GET also serves HEAD (the body is dropped
/// on the wire) unless the path has a HEAD route of its own (tus).
fn route(method: &str, path: &str) -> actix_web::Route {
    use actix_web::{guard, http::Method};
    let own_head = || API_ROUTES.iter().any(|r| r.path == path && r.method == "head");
    let method = match method {
        "get" if !own_head() => return web::route().guard(guard::Any(guard::Get()).or(guard::Head())),
        "get" => Method::GET,
        "head" => Method::HEAD,
        "post" => Method::POST,
        "put" => Method::PUT,
        "patch" => Method::PATCH,
        "delete" => Method::DELETE,
        _ => Method::OPTIONS,
    };
    web::route().method(method)
}

/// The `Allow` header of a path of the table: its methods, HEAD with GET, and OPTIONS.
pub fn allow(path: &str) -> String {
    const ORDER: [&str; 7] = ["get", "head", "post", "put", "patch", "delete", "options"];
    let has = |m: &str| {
        m == "options"
            || API_ROUTES
                .iter()
                .any(|r| r.path == path && (r.method == m || (m == "head" && r.method == "get")))
    };
    ORDER
        .iter()
        .filter(|m| has(m))
        .map(|m| m.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a known path answers to a method it has no route for: OPTIONS gets 204 with
/// `Allow` (CORS preflights are answered before routing), anything else 405 with `Allow`.
pub fn other_methods(allow: String) -> actix_web::Route {
    web::route().to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move {
            let mut res = if req.method() == actix_web::http::Method::OPTIONS {
                actix_web::HttpResponse::NoContent().finish()
            } else {
                crate::envelope::problem_response(
                    &portico_runtime::Problem::new(
                        ErrorCode::MethodNotAllowed,
                        "this path does not accept that method",
                    ),
                    &crate::envelope::current_request_id(),
                )
            };
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
                res.headers_mut().insert(actix_web::http::header::ALLOW, v);
            }
            res
        }
    })
}

/// The gate of one route, by its policy.
pub fn gated<S>(
    policy: RoutePolicy,
) -> impl Transform<S, ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error, InitError = ()> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> + 'static,
{
    from_fn(move |req, next| gate(policy, req, next))
}

/// The API under `prefix` (`/v1`, or the deprecated `/api` alias when `legacy`): every route
/// behind its own gate, and so are the scope's 404 and 405 answers.
pub fn api_scope(prefix: &str, legacy: bool) -> actix_web::Scope {
    web::scope(prefix)
        .configure(move |cfg| configure_api(cfg, legacy))
        .default_service(web::to(not_found).wrap(gated(RoutePolicy::anonymous(legacy))))
}

macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:path, $access:ident, $budget:ident, $tag:literal, $req:ty, $res:ty, [$($err:ident),*], $summary:literal; )*) => {
        /// Registers every public route of one scope.
        fn configure_api(cfg: &mut web::ServiceConfig, legacy: bool) {
            $(
                // The table's response type is the handler's (checked here, at compile time).
                crate::contract::returns::<$res, _, _>(&$handler);
                cfg.route($path, route(stringify!($method), $path).to($handler).wrap(gated(RoutePolicy {
                    access: Access::$access,
                    budget: Budget::$budget,
                    legacy,
                })));
            )*
            // A known path with another method answers 405 with `Allow` (OPTIONS: 204), not
            // 404, through the gate too.
            let mut seen = std::collections::BTreeSet::new();
            $( if seen.insert($path) {
                cfg.route($path, other_methods(allow($path)).wrap(gated(RoutePolicy::anonymous(legacy))));
            } )*
        }

        /// The public routes, for the OpenAPI document.
        pub const API_ROUTES: &[RouteDoc] = &[
            $( RouteDoc {
                method: stringify!($method),
                path: $path,
                access: Access::$access,
                budget: Budget::$budget,
                tag: $tag,
                summary: $summary,
                request: <$req as RequestDoc>::document,
                response: <$res as ResponseDoc>::document,
                errors: &[$(ErrorCode::$err),*],
            }, )*
        ];
    };
}

api_routes! {
    post "/auth/signup" => auth::signup, Anonymous, Api, "auth", Valid<auth::SignupRequest>, Created<crate::auth::Issued>, [EmailTaken], "Create an account (email + password) and sign in";
    post "/auth/login" => auth::login, Anonymous, Api, "auth", Valid<auth::LoginRequest>, Reply<crate::auth::Issued>, [InvalidCredentials, LoginThrottled], "Sign in: access JWT (15 min) and refresh token";
    post "/auth/refresh" => auth::refresh, Anonymous, Api, "auth", Valid<auth::RefreshRequest>, Reply<crate::auth::Issued>, [RefreshTokenReused], "Rotate the refresh token; a replayed token revokes its session";
    post "/auth/logout" => auth::logout, User, Api, "auth", OptionalBody<auth::LogoutRequest>, Reply<auth::LoggedOut>, [], "Revoke the session and its access token";
    get "/auth/me" => auth::me, User, Api, "auth", (), Reply<auth::Me>, [], "The caller: id, email, role, plan tier, beta level";
    delete "/auth/me" => auth::delete_me, Fresh, Api, "auth", (), Reply<Deleted>, [NotFound], "Delete the caller's account and erase their data in every service (needs a fresh password sign-in)";
    post "/auth/verify-email" => auth::verify_email, Anonymous, Api, "auth", Valid<auth::TokenRequest>, Reply<crate::auth::UserView>, [LinkInvalid], "Verify the address with the mailed token (single use, 24 h)";
    post "/auth/resend-verification" => auth::resend_verification, User, Api, "auth", (), Reply<auth::Sent, 202>, [Conflict], "Mail a new verification link (at most once a minute)";
    post "/auth/forgot-password" => auth::forgot_password, Anonymous, Api, "auth", Valid<auth::ForgotPassword>, Reply<auth::Sent, 202>, [], "Mail a password-reset link; answers the same whether or not the address has an account";
    post "/auth/reset-password" => auth::reset_password, Anonymous, Api, "auth", Valid<auth::ResetPassword>, Reply<auth::PasswordReset>, [LinkInvalid], "Set a new password with the mailed token (single use, 1 h); ends every session";
    post "/auth/change-password" => auth::change_password, Fresh, Api, "auth", Valid<auth::ChangePassword>, Reply<auth::PasswordChanged>, [InvalidCredentials], "Change the password (needs a fresh password sign-in); ends every other session";
    post "/auth/api-keys" => auth::create_api_key, Fresh, Api, "auth", Valid<auth::CreateApiKey>, Created<crate::auth::NewApiKey>, [Conflict], "Create an API key with scopes read/write/admin (shown once; needs a fresh password sign-in)";
    get "/auth/api-keys" => auth::list_api_keys, User, Api, "auth", (), Reply<Vec<crate::auth::ApiKeyView>>, [], "List the caller's API keys";
    delete "/auth/api-keys/{id}" => auth::delete_api_key, User, Api, "auth", (), Reply<Deleted>, [], "Revoke an API key";
    put "/admin/users/{id}/tier" => auth::set_tier, Admin, Api, "admin", Valid<auth::SetTier>, Reply<crate::auth::UserView>, [], "Set a user's plan tier";
    put "/admin/users/{id}/role" => auth::set_role, Admin, Api, "admin", Valid<auth::SetRole>, Reply<crate::auth::UserView>, [Conflict], "Grant or revoke admin (the last admin cannot be demoted)";
    get "/admin/jobs" => jobs::list, Admin, Api, "admin", (), Reply<jobs::JobList>, [], "Every process's scheduled jobs: schedule, next run, last run and outcome, seconds since the last success";
    post "/admin/jobs/{name}/run" => jobs::run, Admin, Api, "admin", (), Reply<jobs::RunStarted, 202>, [NotFound, Conflict, ServiceUnavailable], "Run a job now (`<process>.<job>`, e.g. `media.retention_cleanup`); 409 while a run of it is going";

    post "/beta/validate-invite" => beta::validate_invite, Anonymous, Api, "beta", Valid<beta::InviteCodeRequest>, Reply<beta::InviteCheck>, [], "Check an invitation code without using it";
    post "/beta/join" => beta::join, User, Api, "beta", Valid<beta::InviteCodeRequest>, Reply<beta::Access>, [InviteNotFound, InviteExpired, InviteInactive, InviteExhausted], "Join the beta or raise the caller's level";
    get "/beta/user-access" => beta::user_access, User, Api, "beta", (), Reply<beta::Access>, [], "The caller's level, feature flags and join time";
    post "/beta/analytics" => beta::analytics, User, Api, "beta", Valid<beta::AnalyticsEvents>, Reply<Accepted, 202>, [], "Record one feature-usage event or a batch of up to 100";
    post "/admin/beta/invite-codes" => beta::create_code, Admin, Api, "beta-admin", Valid<beta::CreateInviteCode>, Created<beta::InviteCode>, [Conflict], "Create an invitation code (generated when omitted)";
    get "/admin/beta/invite-codes" => beta::list_codes, Admin, Api, "beta-admin", ValidQuery<PageQuery>, Reply<beta::InviteCodePage>, [], "List invitation codes (paginated)";
    get "/admin/beta/invite-codes/{code}" => beta::get_code, Admin, Api, "beta-admin", (), Reply<beta::InviteCode>, [InviteNotFound], "One invitation code";
    patch "/admin/beta/invite-codes/{code}" => beta::update_code, Admin, Api, "beta-admin", Valid<beta::UpdateInviteCode>, Reply<beta::InviteCode>, [InviteNotFound], "Deactivate a code or change its uses or expiry";
    get "/admin/beta/users" => beta::list_users, Admin, Api, "beta-admin", ValidQuery<PageQuery>, Reply<beta::MemberPage>, [], "List beta members (paginated)";
    put "/admin/beta/users/{userId}" => beta::set_user_level, Admin, Api, "beta-admin", Valid<beta::SetLevel>, Reply<beta::Member>, [], "Set a member's access level";
    get "/admin/beta/features" => beta::features, Admin, Api, "beta-admin", (), Reply<beta::FeatureTable>, [], "The feature → minimum level table";
    put "/admin/beta/features" => beta::set_features, Admin, Api, "beta-admin", Valid<beta::FeatureTable>, Reply<beta::FeatureTable>, [], "Replace the feature table";
    get "/admin/beta/analytics/summary" => beta::summary, Admin, Api, "beta-admin", ValidQuery<beta::RangeQuery>, Reply<beta::UsageSummary>, [], "Events per feature, unique users, per level";

    get "/mobile/upload-config" => media::upload_config, Anonymous, Api, "media", ValidQuery<media::UploadConfigQuery>, Reply<media::UploadConfig>, [], "Upload settings for a network: `?connection=slow-2g|2g|3g|4g|wifi[&downlinkMbps=&rttMs=]`";
    post "/mobile/upload-optimized" => media::upload_optimized, User, Api, "media", media::UploadFormDoc, Created<media::Media>, [NotAnImage, ImageTruncated, ImageCorrupt, ImageTooManyPixels], "Upload an image (multipart `file`): original plus thumbnail/small/medium/large in JPEG and WebP";
    get "/media/{id}" => media::get, User, Api, "media", (), Reply<media::Media>, [], "An uploaded image's metadata and variants";
    get "/media/{id}/{variant}" => media::variant, User, Api, "media", ValidQuery<media::VariantQuery>, crate::contract::Raw<media::ImageBytes>, [], "A variant's bytes (WebP when accepted, or `?format=jpeg|webp`); strong ETag, 304, immutable";
    delete "/media/{id}" => media::delete, User, Api, "media", (), Reply<Deleted>, [], "Delete an image and every variant";
    options "/mobile/uploads" => media::tus_options, Anonymous, Api, "uploads", (), crate::contract::Raw<media::TusDiscovery>, [], "tus 1.0 discovery: version, extensions, max size";
    post "/mobile/uploads" => media::tus_create, User, Api, "uploads", media::TusCreation, crate::contract::Raw<media::TusCreated>, [TusVersionUnsupported, PayloadTooLarge], "tus creation: `Upload-Length`, `Upload-Metadata` → 201 `Location`";
    head "/mobile/uploads/{id}" => media::tus_head, User, Api, "uploads", media::TusRequest, crate::contract::Raw<media::TusOffset>, [TusVersionUnsupported, UploadExpired], "tus: the stored `Upload-Offset`";
    get "/mobile/uploads/{id}" => media::tus_status, User, Api, "uploads", (), Reply<media::Upload>, [UploadExpired], "An upload's offset, length, expiry and (once complete) media id, as JSON";
    patch "/mobile/uploads/{id}" => media::tus_patch, User, Chunks, "uploads", media::TusChunk, crate::contract::Raw<media::TusAppended>, [TusVersionUnsupported, UploadOffsetMismatch, ChecksumMismatch, UploadExpired, PayloadTooLarge, UnsupportedMediaType, NotAnImage, ImageTruncated, ImageCorrupt, ImageTooManyPixels], "tus: append `application/offset+octet-stream` at `Upload-Offset` (optional `Upload-Checksum: sha256`)";
    delete "/mobile/uploads/{id}" => media::tus_delete, User, Api, "uploads", media::TusRequest, crate::contract::Raw<media::TusTerminated>, [TusVersionUnsupported], "tus termination";
    options "/mobile/uploads/{id}" => media::tus_options, Anonymous, Api, "uploads", (), crate::contract::Raw<media::TusDiscovery>, [], "tus 1.0 discovery";
    post "/mobile/analytics" => media::analytics, User, Api, "media", Valid<media::ClientEvents>, Reply<Accepted, 202>, [], "Record up to 100 client timing events (upload, screen, api)";
    get "/mobile/performance" => media::performance, User, Api, "media", ValidQuery<media::PerformanceQuery>, Reply<media::PerformanceReport>, [], "p50/p95/p99, count and success rate by connection or device (`?from&to&groupBy&type`)";

    post "/workflows/analyze" => workflow::analyze, User, Api, "workflows", workflow::WorkflowDocument, Reply<workflow::Analysis>, [InvalidXml, InvalidWorkflow, QuotaExceeded], "Analyse a workflow (JSON, or BPMN 2.0 XML): health score, grade, findings, stats";
    get "/workflows/history" => workflow::history, User, Api, "workflows", ValidQuery<workflow::HistoryQuery>, Reply<workflow::HistoryPage>, [], "The caller's analyses, newest first (`?limit=&cursor=`)";
    get "/workflows/analyses/{id}" => workflow::get, User, Api, "workflows", (), Reply<workflow::Analysis>, [], "One of the caller's analyses (plan tier applies)";
    delete "/workflows/analyses/{id}" => workflow::delete, User, Api, "workflows", (), Reply<Deleted>, [], "Delete one of the caller's analyses";
    get "/workflows/rules" => workflow::rules, Anonymous, Api, "workflows", (), Reply<workflow::RuleCatalogue>, [], "The rule catalogue: id, severity, title, description, score weight";
    get "/billing/plans" => billing::plans, Anonymous, Api, "billing", (), Reply<Vec<billing::Plan>>, [ServiceUnavailable], "The plans on sale: id, name, price (minor units) and limits";
    post "/billing/checkout" => billing::checkout, User, Api, "billing", Valid<billing::CheckoutRequest>, Reply<billing::CheckoutSession>, [PlanNotPurchasable, AlreadySubscribed, PaymentProviderError], "Start a hosted checkout for pro or enterprise: the session id and the URL to send the customer to";
    post "/billing/portal" => billing::portal, User, Api, "billing", (), Reply<billing::PortalSession>, [NoBillingAccount, PaymentProviderError], "A customer-portal session (payment methods, invoices, plan changes)";
    get "/billing/subscription" => billing::subscription, User, Api, "billing", (), Reply<billing::Subscription>, [], "The caller's subscription: plan, status, period end, cancel-at-period-end (free and no status when there is none)";
    post "/billing/cancel" => billing::cancel, User, Api, "billing", Valid<billing::CancelRequest>, Reply<billing::Subscription>, [NoSubscription, PaymentProviderError], "Cancel at the period end (`atPeriodEnd: true`) or now";
    get "/billing/local/checkout/{session}" => billing::local_checkout_page, Anonymous, Api, "billing", (), Reply<billing::LocalCheckout>, [], "The local provider's checkout (development): what it sells; the session id is the capability";
    post "/billing/local/checkout/{session}" => billing::local_checkout_confirm, Anonymous, Api, "billing", (), Reply<billing::LocalCheckout>, [], "Pay a local checkout (development): the events Stripe would send follow through the webhook handler";
    post "/monitoring/projects" => monitoring::create_project, Admin, Api, "monitoring", Valid<monitoring::CreateProject>, Created<monitoring::Project>, [], "Create a project: numeric id, 32-hex public key and the DSN a Sentry SDK's init takes";
    get "/monitoring/projects" => monitoring::list_projects, Admin, Api, "monitoring", (), Reply<Vec<monitoring::Project>>, [], "Every project with its DSN";
    post "/monitoring/errors" => monitoring::ingest_error, User, Api, "monitoring", Valid<monitoring::ErrorEvent>, Reply<monitoring::ErrorAccepted, 202>, [], "Report an error without a Sentry SDK: grouped as Sentry groups (fingerprint, in-app stack, message template)";
    get "/monitoring/errors" => monitoring::list_errors, Admin, Api, "monitoring", ValidQuery<monitoring::GroupsQuery>, Reply<monitoring::GroupPage>, [], "Error groups, most recently seen first (`?projectId&status&release&limit&cursor`)";
    get "/monitoring/errors/{groupId}" => monitoring::get_error, Admin, Api, "monitoring", (), Reply<monitoring::GroupDetail>, [], "One error group with its latest event";
    patch "/monitoring/errors/{groupId}" => monitoring::update_error, Admin, Api, "monitoring", Valid<monitoring::UpdateGroup>, Reply<monitoring::Group>, [], "Resolve, ignore or reopen a group (a resolved group that recurs reopens as a regression)";
    post "/monitoring/alert-rules" => alerts::create_rule, Admin, Api, "alerts", Valid<alerts::AlertRuleInput>, Created<alerts::AlertRule>, [], "Create an alert rule: a metric, a condition over a window, pending time, severity, reminders and where to notify (e-mail, https webhooks)";
    get "/monitoring/alert-rules" => alerts::list_rules, Admin, Api, "alerts", (), Reply<Vec<alerts::AlertRule>>, [], "Every alert rule (the defaults are seeded once)";
    get "/monitoring/alert-rules/{id}" => alerts::get_rule, Admin, Api, "alerts", (), Reply<alerts::AlertRule>, [NotFound], "One alert rule";
    patch "/monitoring/alert-rules/{id}" => alerts::update_rule, Admin, Api, "alerts", Valid<alerts::AlertRulePatch>, Reply<alerts::AlertRule>, [NotFound], "Change some fields of a rule (the result is checked whole)";
    delete "/monitoring/alert-rules/{id}" => alerts::delete_rule, Admin, Api, "alerts", (), Reply<Deleted>, [NotFound], "Delete a rule; its open alerts end";
    get "/monitoring/alerts" => alerts::list_alerts, Admin, Api, "alerts", ValidQuery<alerts::AlertsQuery>, Reply<alerts::AlertPage>, [], "Alerts, newest first (`?status=pending|firing|acknowledged|resolved&cursor&limit`)";
    get "/monitoring/alerts/{id}" => alerts::get_alert, Admin, Api, "alerts", (), Reply<alerts::Alert>, [NotFound], "One alert";
    post "/monitoring/alerts/{id}/acknowledge" => alerts::acknowledge, Admin, Api, "alerts", (), Reply<alerts::Alert>, [NotFound, Conflict], "Acknowledge a firing alert: no more reminders";
    post "/monitoring/alerts/{id}/resolve" => alerts::resolve, Admin, Api, "alerts", (), Reply<alerts::Alert>, [NotFound], "Resolve an alert (announced if it had fired)";
    get "/monitoring/alerts/{id}/acknowledge" => alerts::acknowledge_link, Anonymous, Api, "alerts", ValidQuery<alerts::LinkQuery>, crate::contract::Raw<alerts::ConfirmationPage>, [LinkInvalid, NotFound, Conflict], "The acknowledge link of a notice (signed, single-purpose, 7 days): acknowledges without signing in";
    get "/monitoring/alerts/{id}/resolve" => alerts::resolve_link, Anonymous, Api, "alerts", ValidQuery<alerts::LinkQuery>, crate::contract::Raw<alerts::ConfirmationPage>, [LinkInvalid, NotFound], "The resolve link of a notice (signed, single-purpose, 7 days): resolves without signing in";
    post "/monitoring/alertmanager" => alerts::alertmanager, Admin, Api, "alerts", Valid<alerts::AlertmanagerWebhook>, Reply<alerts::AlertmanagerAccepted>, [], "Alertmanager's webhook (version 4): firing alerts open in the inbox, resolved ones resolve (an admin API key as `Authorization: Bearer`)";
    post "/analytics/performance/alerts" => alerts::client_alert, User, Api, "analytics", Valid<alerts::ClientAlertReport>, Reply<alerts::ClientAlertAccepted, 202>, [], "Report a critical performance problem: raised as a firing alert (one per metric and page), resolved after 5 minutes without reports";
    get "/analytics/system/health" => ops::detailed, Admin, Api, "analytics", (), Reply<ops::HealthReport>, [], "Every service and dependency: status, latency, version, and each process's memory and CPU (what `/health/detailed` answers operators)";
    post "/analytics/performance/metrics" => analytics::metrics, User, Api, "analytics", Valid<analytics::MetricsBatch>, Reply<analytics::Ratings, 202>, [MetricInvalid], "Report up to 100 web vitals (LCP, INP, CLS, FCP, TTFB): each rated good / needs-improvement / poor by the web-vitals thresholds";
    post "/analytics/funnel" => analytics::funnel, User, Api, "analytics", Valid<analytics::FunnelStepEvent>, Reply<analytics::FunnelRecorded, 202>, [], "A session reached a step of the nine-step photo-effects funnel (a repeat counts once)";
    post "/analytics/events" => analytics::events, User, Api, "analytics", Valid<analytics::EventsBatch>, Reply<Accepted, 202>, [], "Record up to 100 product events";
    get "/analytics/dashboard/performance" => analytics::dashboard, Admin, Api, "analytics", ValidQuery<analytics::DashboardQuery>, Reply<analytics::PerformanceDashboard>, [], "Web vitals (p75, shares by rating) and the funnel (sessions, conversions, biggest drop-off) over `?from&to`";
    get "/workflows/schema" => workflow::schema, Anonymous, Api, "workflows", (), crate::contract::Raw<workflow::SchemaDocument>, [], "JSON Schema of the workflow document";
}

/// Unknown paths.
pub async fn not_found() -> ApiResult {
    Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}

fn caller(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Caller>().and_then(|c| c.0.clone())
}

/// The request id, for outgoing calls.
pub struct Rid(pub String);

impl FromRequest for Rid {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Rid(req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default())))
    }
}

/// A signed-in caller (401 otherwise).
pub struct User(pub Principal);

impl FromRequest for User {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req).map(User).ok_or_else(unauthorized))
    }
}

/// An admin (401 when anonymous, 403 for other users).
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match caller(req) {
            None => Err(unauthorized()),
            Some(p) if p.role == Role::Admin => Ok(Admin(p)),
            Some(_) => Err(ApiError::new(ErrorCode::Forbidden, "this endpoint is for admins")),
        })
    }
}

/// 401 for a route that needs a signed-in caller.
pub fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "sign in: send `Authorization: Bearer <access token>` or `X-API-Key`",
    )
}

/// `?limit=&offset=` of list endpoints.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[schema(minimum = 1, maximum = 200)]
    pub limit: Option<i32>,
    /// Where the page starts (default 0).
    #[schema(minimum = 0)]
    pub offset: Option<i32>,
}

impl PageQuery {
    /// The page asked for, with the defaults filled in (the schema checked the bounds).
    pub fn bounds(&self) -> (i32, i32) {
        (self.limit.unwrap_or(50), self.offset.unwrap_or(0))
    }
}

/// How many events a batch endpoint recorded (202).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Events recorded.
    pub accepted: u32,
}

/// Unix milliseconds as a time (`None` when out of range).
pub fn at(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}

/// Path errors as validation problems.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::fields([("path", err.to_string())]).into()
}

#[cfg(test)]
mod tests {
    fn test_config() -> crate::GatewayConfig {
        crate::GatewayConfig::from_vars(&portico_runtime::config::Vars::from_map::<[(&str, &str); 0], _, _>([]))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every route of the table has its row in SECURITY.md, so a new endpoint cannot land
    /// without saying who may call it and what keeps it safe.
    #[test]
    fn security_md_lists_every_route() {
        let security = include_str!("../../../SECURITY.md");
        let missing: Vec<String> = super::API_ROUTES
            .iter()
            .map(|r| format!("`{} /v1{}`", r.method.to_ascii_uppercase(), r.path))
            .filter(|row| !security.contains(row.as_str()))
            .collect();
        assert!(missing.is_empty(), "SECURITY.md has no row for {missing:?}");
    }

    /// Every error code of the catalogue is in the document, and every code but 405's (the
    /// answer to a method a path has no operation for) is named by some operation.
    #[test]
    fn every_error_code_is_documented() {
        let doc = super::ops::openapi(&test_config());
        let text = doc.to_string();
        let catalogue = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for code in portico_runtime::ErrorCode::ALL {
            assert!(
                catalogue.contains(&serde_json::json!(code.as_str())),
                "{code:?} is not in the catalogue"
            );
            if *code != portico_runtime::ErrorCode::MethodNotAllowed {
                let named = doc["paths"]
                    .as_object()
                    .into_iter()
                    .flat_map(|p| p.values())
                    .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
                    .flat_map(|op| op["responses"].as_object().into_iter().flat_map(|r| r.values()))
                    .any(|r| r["description"].as_str().is_some_and(|d| d.contains(code.as_str())));
                assert!(named, "no operation says it answers {}", code.as_str());
            }
        }
        assert!(!text.contains("x-untyped"));
    }

    /// Every operation has a typed success answer, and every operation with a body says what
    /// it is.
    #[test]
    fn every_operation_has_its_answer_and_input_typed() {
        let doc = super::ops::openapi(&test_config());
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let responses = op["responses"].as_object().cloned().unwrap_or_default();
                let success = responses.keys().find(|k| k.starts_with('2')).cloned();
                assert!(success.is_some(), "{method} {path} has no success answer");
                let answer = &responses[&success.unwrap_or_default()];
                let described = answer.get("content").is_some() || answer.get("headers").is_some();
                assert!(described, "{method} {path}: {answer}");
                if let Some(content) = answer.get("content").and_then(|c| c.get("application/json")) {
                    assert!(content["schema"].is_object(), "{method} {path} has no answer schema");
                }
                assert!(op["operationId"].is_string());
            }
        }
    }

    /// Every example the document gives, of a whole schema or of one field, is valid against
    /// the schema it illustrates (so a client copying one gets past validation).
    #[test]
    fn every_example_is_valid_against_its_schema() {
        fn examples(v: &serde_json::Value, at: String, out: &mut Vec<(String, serde_json::Value)>) {
            if let serde_json::Value::Object(m) = v {
                if let Some(example) = m.get("example") {
                    out.push((at.clone(), example.clone()));
                }
                for (k, child) in m {
                    if k != "example" {
                        examples(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
            } else if let serde_json::Value::Array(items) = v {
                for (i, child) in items.iter().enumerate() {
                    examples(child, format!("{at}/{i}"), out);
                }
            }
        }
        let doc = super::ops::openapi(&test_config());
        let components = doc["components"].clone();
        let mut found = Vec::new();
        examples(&components["schemas"], "/components/schemas".into(), &mut found);
        for (at, example) in &found {
            let root = serde_json::json!({ "$ref": format!("#{at}"), "components": components });
            let validator = match jsonschema::validator_for(&root) {
                Ok(v) => v,
                Err(e) => panic!("the schema at {at} does not compile: {e}"),
            };
            let errors: Vec<String> = validator.iter_errors(example).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "the example at {at} is invalid: {errors:?}");
        }
        assert!(found.len() >= 30, "only {} examples", found.len());
    }

    /// No two types file different schemas under one name (the second would vanish).
    #[test]
    fn no_two_schemas_share_a_name() {
        let (_, clashes) = crate::contract::openapi::assemble(super::ops::OPS, super::ops::limits(&test_config()));
        assert!(clashes.is_empty(), "rename with #[schema(as = ...)]: {clashes:?}");
    }

    /// Every `$ref` of the OpenAPI document points at a schema it defines.
    #[test]
    fn every_schema_reference_resolves() {
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = super::ops::openapi(&test_config());
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}

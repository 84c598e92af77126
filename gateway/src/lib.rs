//! Portico's public gateway: authenticates callers, applies rate tiers, answers the JSON
//! envelope and forwards to the services over gRPC.

pub mod admin;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod contract;
pub mod envelope;
pub mod middleware;
pub mod paths;
pub mod ratelimit;
pub mod route_stats;
pub mod routes;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use actix_cors::Cors;
use actix_web::{
    App, HttpServer, guard,
    http::header,
    middleware::{Compress, DefaultHeaders, from_fn},
    web,
};
use portico_proto::{
    beta::v1::beta_service_client::BetaServiceClient, billing::v1::billing_service_client::BillingServiceClient,
    media::v1::media_service_client::MediaServiceClient,
    monitoring::v1::monitoring_service_client::MonitoringServiceClient, ops::v1::ops_client::OpsClient,
    workflow::v1::workflow_service_client::WorkflowServiceClient,
};
use portico_runtime::{
    cache::{Cache, CacheRegistry},
    db::{Db, Migrations},
    grpc::{self, PresentInternalToken},
    jobs::{self, Job, Jobs, Scheduler},
    redis::SharedRedis,
};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use config::GatewayConfig;

use crate::{
    auth::{Auth, AuthSettings, Erasure, Tier, sealing::Kek},
    envelope::JsonLimit,
    middleware::{AuthFailures, RoutePolicy},
    ratelimit::RateLimiter,
};

/// The gateway's schema.
pub const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();

/// A gRPC client channel that presents the internal token.
type Authed = InterceptedService<Channel, PresentInternalToken>;

/// Everything handlers share.
pub struct AppState {
    /// Settings.
    pub config: GatewayConfig,
    /// The gateway's database.
    pub db: Db,
    /// Authentication.
    pub auth: Auth,
    /// Rate limiter.
    pub limiter: RateLimiter,
    /// Shared Redis, when configured.
    pub redis: Option<SharedRedis>,
    /// The gateway's caches.
    pub caches: CacheRegistry,
    /// The beta service.
    beta: Balanced<BetaServiceClient<Authed>>,
    /// The workflow service.
    workflow: Balanced<WorkflowServiceClient<Authed>>,
    /// The media service.
    media: Balanced<MediaServiceClient<Authed>>,
    /// The media service, for calls that run the image pipeline (their own deadline).
    media_processing: Balanced<MediaServiceClient<Authed>>,
    /// The billing service.
    billing: Balanced<BillingServiceClient<Authed>>,
    /// The monitoring service.
    monitoring: Balanced<MonitoringServiceClient<Authed>>,
    /// Entitlements loaded from billing, by user id (invalidated by billing through Redis).
    entitlements: Cache<Tier>,
    /// The last entitlement each user was seen with, for when billing cannot answer.
    last_entitlements: moka::sync::Cache<String, Tier>,
    /// Every service's Ops endpoint, by name.
    pub services: Vec<(&'static str, OpsClient<Authed>)>,
    /// When the gateway started.
    pub started: Instant,
    /// Clients whose failed authentications spent their budget.
    pub auth_failures: AuthFailures,
    /// The last dependency report, shared by callers for a second.
    pub health: routes::ops::HealthCache,
    /// Set at shutdown: `/ready` fails while in-flight requests drain.
    pub draining: AtomicBool,
    /// Per-route response times and status counts, shipped to the monitoring service.
    pub route_stats: route_stats::RouteStats,
    /// The gateway's scheduled jobs.
    pub jobs: Jobs,
}

/// Clients of one service, made per thread: each HTTP worker calls a service over its own
/// HTTP/2 connections (PORTICO_GRPC_CONNECTIONS of them, used round-robin), whose connection
/// tasks run on that worker's own runtime. A call, its framing and its reply then stay on one
/// thread: no cross-thread wake-up per request (measured in BENCHMARKS.md). A thread keeps
/// its clients for its life, so it must keep one runtime for its life, as HTTP workers and
/// the main runtime's threads do (a worker that dies is replaced by a new thread).
struct Balanced<C> {
    /// This set's key in each thread's table.
    id: u64,
    /// Makes one thread's clients (lazily connected, so it never waits).
    make: Box<dyn Fn() -> Result<Vec<C>, String> + Send + Sync>,
    /// Dropped with the set, so threads can forget their clients of a set that is gone.
    alive: Arc<()>,
}

/// One thread's clients of one [`Balanced`] set.
struct ThreadClients<C> {
    clients: Vec<C>,
    next: std::cell::Cell<usize>,
}

/// One thread's entry: its clients, and whether their set still exists.
struct ThreadEntry {
    clients: Box<dyn std::any::Any>,
    alive: std::sync::Weak<()>,
}

thread_local! {
    /// This thread's clients, by [`Balanced::id`].
    static THREAD_CLIENTS: std::cell::RefCell<std::collections::HashMap<u64, ThreadEntry>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl<C: Clone + 'static> Balanced<C> {
    /// Clients of the service at `url`, each built by `client` over its own channel; `var`
    /// names the URL's setting in errors, which are found here, before any thread needs one.
    fn connect(
        var: &'static str,
        url: &str,
        config: &GatewayConfig,
        client: impl Fn(Channel) -> C + Send + Sync + 'static,
    ) -> Result<Self, String> {
        Self::with(var, url, config.grpc_timeout, config.grpc_connections, client)
    }

    fn with(
        var: &'static str,
        url: &str,
        timeout: std::time::Duration,
        connections: usize,
        client: impl Fn(Channel) -> C + Send + Sync + 'static,
    ) -> Result<Self, String> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let url = url.to_string();
        let make = move || {
            (0..connections)
                .map(|_| grpc::channel(&url, timeout).map(&client))
                .collect::<Result<Vec<C>, String>>()
                .map_err(|e| format!("{var}: {e}"))
        };
        // Channels are checked by building them once; their connections open on first use.
        make()?;
        Ok(Balanced {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            make: Box::new(make),
            alive: Arc::new(()),
        })
    }

    /// A client, from this thread's set (made on the thread's first call).
    fn get(&self) -> Result<C, String> {
        THREAD_CLIENTS.with(|table| {
            let mut table = table.borrow_mut();
            if let Some(mine) = table
                .get(&self.id)
                .and_then(|e| e.clients.downcast_ref::<ThreadClients<C>>())
            {
                let i = mine.next.get();
                mine.next.set(i.wrapping_add(1));
                // A set holds at least one client: PORTICO_GRPC_CONNECTIONS is positive.
                return Ok(mine.clients[i % mine.clients.len()].clone());
            }
            let clients = (self.make)()?;
            let first = clients.first().cloned().ok_or("no gRPC connections configured")?;
            table.retain(|_, e| e.alive.strong_count() > 0);
            table.insert(
                self.id,
                ThreadEntry {
                    clients: Box::new(ThreadClients {
                        clients,
                        next: std::cell::Cell::new(1),
                    }),
                    alive: Arc::downgrade(&self.alive),
                },
            );
            Ok(first)
        })
    }
}

impl AppState {
    /// A beta service client.
    pub fn beta(&self) -> Result<BetaServiceClient<Authed>, envelope::ApiError> {
        self.beta.get().map_err(envelope::ApiError::internal)
    }

    /// A workflow service client.
    pub fn workflow(&self) -> Result<WorkflowServiceClient<Authed>, envelope::ApiError> {
        self.workflow.get().map_err(envelope::ApiError::internal)
    }

    /// A media service client.
    pub fn media(&self) -> Result<MediaServiceClient<Authed>, envelope::ApiError> {
        self.media.get().map_err(envelope::ApiError::internal)
    }

    /// A media service client whose calls may take `PORTICO_MEDIA_PROCESS_TIMEOUT_MS` (uploads
    /// and the last chunk of a resumable upload run the image pipeline).
    pub fn media_processing(&self) -> Result<MediaServiceClient<Authed>, envelope::ApiError> {
        self.media_processing.get().map_err(envelope::ApiError::internal)
    }

    /// A billing service client.
    pub fn billing(&self) -> Result<BillingServiceClient<Authed>, envelope::ApiError> {
        self.billing.get().map_err(envelope::ApiError::internal)
    }

    /// A monitoring service client.
    pub fn monitoring(&self) -> Result<MonitoringServiceClient<Authed>, envelope::ApiError> {
        self.monitoring.get().map_err(envelope::ApiError::internal)
    }

    /// The tier a caller's requests get: what billing entitles, or the complimentary plan an
    /// admin gave, whichever is higher. When billing cannot answer, the last entitlement seen
    /// stands (a billing outage never downgrades a paying customer mid-session).
    pub async fn effective_tier(&self, user_id: &str, complimentary: Tier) -> Tier {
        let loaded = self
            .entitlements
            .get_or_load(user_id, || async {
                let request = portico_proto::billing::v1::GetEntitlementRequest {
                    user_id: user_id.to_string(),
                };
                let e = self
                    .billing()?
                    .get_entitlement(grpc::outgoing(request, &envelope::current_request_id()))
                    .await
                    .map_err(envelope::ApiError::from)?
                    .into_inner();
                Ok::<_, envelope::ApiError>(routes::billing::tier_of(e.plan))
            })
            .await;
        let billed = match loaded {
            Ok(tier) => {
                self.last_entitlements.insert(user_id.to_string(), tier);
                tier
            }
            Err(e) => {
                tracing::warn!(error = %e.0.message, "billing did not answer an entitlement; the last one seen stands");
                let last = self.last_entitlements.get(user_id).unwrap_or(Tier::Free);
                // Cached like an answer, so an outage costs one attempt per user per
                // lifetime, not one per request.
                self.entitlements.set(user_id, last).await;
                last
            }
        };
        billed.max(complimentary)
    }

    /// Drops a user's entitlement from this replica (after a change made through it).
    pub async fn forget_entitlement(&self, user_id: &str) {
        self.entitlements.invalidate(user_id).await;
    }

    /// The services' names, in the order they are probed and erased.
    pub fn service_names(&self) -> Vec<&'static str> {
        self.services.iter().map(|(name, _)| *name).collect()
    }

    /// Requests per minute for a tier.
    pub fn rate_for(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.config.rates.free,
            Tier::Pro => self.config.rates.pro,
            Tier::Enterprise => self.config.rates.enterprise,
        }
    }
}

/// Connects to the database, Redis and the services (lazily) and builds the shared state, and
/// the scheduler of the gateway's jobs (to run until shutdown).
pub async fn build_state(config: GatewayConfig) -> Result<(Arc<AppState>, Scheduler), String> {
    let db = Db::connect(&config.database_url, MIGRATIONS, config.db_pool)
        .await
        .map_err(|e| format!("gateway database: {e}"))?;
    db.migrate(portico_runtime::outbox::MIGRATIONS)
        .await
        .map_err(|e| format!("gateway database: {e}"))?;
    let kek = match &config.key_encryption_key {
        Some(k) => Kek::from_base64(k.expose()).map_err(|e| format!("PORTICO_KEY_ENCRYPTION_KEY: {e}"))?,
        None => Kek::dev_key(&config.common.data_dir)?,
    };
    let redis = config.common.redis().map_err(|e| e.to_string())?;
    let limiter = match &redis {
        Some(r) => RateLimiter::with_redis(r.pool().clone(), format!("{}rl:", r.prefix())),
        None => RateLimiter::local(),
    };
    let caches = CacheRegistry::default();
    let settings = AuthSettings {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_ttl,
        refresh_ttl: config.refresh_ttl,
        key_rotation: config.key_rotation,
        fresh_login: config.fresh_login,
        links: config.links.clone(),
    };
    let auth = Auth::new(
        db.clone(),
        settings,
        kek,
        redis.clone(),
        config.common.cache_l1_ttl,
        config.common.cache_ttl,
        &caches,
    )
    .await?;
    let token = PresentInternalToken::new(config.common.internal_token.expose())?;
    let beta_token = token.clone();
    let beta = Balanced::connect("PORTICO_BETA_URL", &config.beta_url, &config, move |ch| {
        BetaServiceClient::with_interceptor(ch, beta_token.clone())
    })?;
    let workflow_token = token.clone();
    let workflow = Balanced::connect("PORTICO_WORKFLOW_URL", &config.workflow_url, &config, move |ch| {
        WorkflowServiceClient::with_interceptor(ch, workflow_token.clone())
    })?;
    // Uploads travel whole to the media service and variants whole back.
    let media_message = config.upload_limit + 1024 * 1024;
    let media_client = move |token: PresentInternalToken| {
        move |ch| {
            MediaServiceClient::with_interceptor(ch, token.clone())
                .max_encoding_message_size(media_message)
                .max_decoding_message_size(media_message)
        }
    };
    let media = Balanced::connect(
        "PORTICO_MEDIA_URL",
        &config.media_url,
        &config,
        media_client(token.clone()),
    )?;
    let media_processing = Balanced::with(
        "PORTICO_MEDIA_URL",
        &config.media_url,
        config.media_process_timeout,
        config.grpc_connections,
        media_client(token.clone()),
    )?;
    let billing_token = token.clone();
    let billing = Balanced::connect("PORTICO_BILLING_URL", &config.billing_url, &config, move |ch| {
        BillingServiceClient::with_interceptor(ch, billing_token.clone())
    })?;
    let monitoring_token = token.clone();
    let monitoring = Balanced::connect("PORTICO_MONITORING_URL", &config.monitoring_url, &config, move |ch| {
        MonitoringServiceClient::with_interceptor(ch, monitoring_token.clone())
    })?;
    let entitlement_ttl = config.entitlement_ttl;
    let entitlements = Cache::new(
        portico_proto::billing::ENTITLEMENTS_CACHE,
        100_000,
        entitlement_ttl.min(config.common.cache_l1_ttl.max(std::time::Duration::from_millis(1))),
        entitlement_ttl,
        redis.clone(),
        &caches,
    );
    let last_entitlements = moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(std::time::Duration::from_secs(24 * 3600))
        .build();
    let ops = |var: &str, url: &str| {
        grpc::channel(url, config.grpc_timeout)
            .map(|ch| OpsClient::with_interceptor(ch, token.clone()))
            .map_err(|e| format!("{var}: {e}"))
    };
    let services = vec![
        ("beta", ops("PORTICO_BETA_URL", &config.beta_url)?),
        ("workflow", ops("PORTICO_WORKFLOW_URL", &config.workflow_url)?),
        ("media", ops("PORTICO_MEDIA_URL", &config.media_url)?),
        ("billing", ops("PORTICO_BILLING_URL", &config.billing_url)?),
        ("monitoring", ops("PORTICO_MONITORING_URL", &config.monitoring_url)?),
    ];
    let (scheduler, jobs) = jobs::scheduler(db.clone(), jobs::this_replica(), gateway_jobs(&db, &auth, &config));
    let state = Arc::new(AppState {
        config,
        db,
        auth,
        limiter,
        redis,
        caches,
        beta,
        workflow,
        media,
        media_processing,
        billing,
        monitoring,
        entitlements,
        last_entitlements,
        services,
        started: Instant::now(),
        auth_failures: AuthFailures::default(),
        health: routes::ops::HealthCache::default(),
        draining: AtomicBool::new(false),
        route_stats: route_stats::RouteStats::default(),
        jobs,
    });
    Ok((state, scheduler))
}

/// The gateway's jobs: its `retention_cleanup` (ended sessions, mailed tokens, sign-in
/// throttles, and the runtime's job runs and delivered outbox rows).
fn gateway_jobs(db: &Db, auth: &Auth, config: &GatewayConfig) -> Vec<Job> {
    let auth = auth.clone();
    let purge = jobs::task(move || {
        let auth = auth.clone();
        async move {
            let removed = auth.purge_expired().await.map_err(|e| e.0.message)?;
            Ok(format!("{removed} expired sessions, tokens and throttles removed"))
        }
    });
    vec![jobs::retention_cleanup(
        db,
        config.common.retention_schedule.clone(),
        vec![("auth".to_string(), purge)],
    )]
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("x-api-key")
        .allowed_header("x-request-id")
        .allowed_headers([
            "tus-resumable",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-checksum",
        ])
        .allowed_header(header::IF_NONE_MATCH)
        .allowed_header("x-sentry-auth")
        .expose_headers([
            "x-request-id",
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
            "deprecation",
            "sunset",
            "link",
            "location",
            "etag",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
            "tus-checksum-algorithm",
            "upload-offset",
            "upload-length",
            "upload-expires",
            "portico-media-id",
            "x-sentry-rate-limits",
        ])
        // Browser SDKs report from whatever origin the app is served on; the project key
        // authorises the report, and nothing is read back.
        .allowed_origin_fn(|_, head| head.uri.path().starts_with("/sentry/api/"))
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Which listener an application serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The API port: the public API, with operations endpoints for admins only.
    Public,
    /// `PORTICO_ADMIN_ADDR`: operations endpoints without authentication (operators' network).
    Admin,
}

/// A path that serves GET (and HEAD) only: other methods get 405 with `Allow`, OPTIONS 204.
fn read_only<F, Args>(path: &str, handler: F, gate: Option<RoutePolicy>) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let get = web::route()
        .guard(guard::Any(guard::Get()).or(guard::Head()))
        .to(handler);
    let get = match gate {
        Some(policy) => get.wrap(routes::gated(policy)),
        None => get,
    };
    web::resource(path)
        .route(get)
        .route(routes::other_methods("GET, HEAD, OPTIONS".to_string()))
}

/// A Sentry ingest path: POST of a body up to `max_bytes` once decoded (gzip, deflate, br
/// and zstd `Content-Encoding`, see [`envelope::RawBody`]), on the ingest budget.
fn sentry_resource<F, Args>(path: &str, handler: F, max_bytes: usize) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .app_data(envelope::RawLimit(max_bytes))
        .route(web::post().to(handler).wrap(routes::gated(RoutePolicy::ingest())))
        .route(routes::other_methods("POST, OPTIONS".to_string()))
}

/// Builds the application (shared by the servers and the in-process tests).
pub fn configure(state: web::Data<AppState>, listener: Listener) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(routes::path_error))
            .service(read_only("/health", routes::ops::health, None))
            .service(read_only("/live", routes::ops::live, None))
            .service(read_only("/ready", routes::ops::ready, None));
        // On the operators' listener the operations endpoints are open; on the API port
        // they are for admins.
        let operators = match listener {
            Listener::Admin => None,
            Listener::Public => Some(RoutePolicy::admin()),
        };
        cfg.service(read_only("/health/detailed", routes::ops::detailed, operators))
            .service(read_only("/metrics", routes::ops::metrics, operators))
            .service(read_only("/internal/cache-stats", routes::ops::cache_stats, operators));
        if listener == Listener::Admin {
            cfg.default_service(web::to(routes::not_found));
            return;
        }
        let openapi = serde_json::to_vec(&routes::ops::openapi(&state.config)).unwrap_or_default();
        cfg.app_data(JsonLimit(state.config.json_limit))
            .app_data(web::PayloadConfig::new(state.config.json_limit))
            .app_data(web::Data::new(routes::ops::OpenApiDocument(openapi.into())))
            .app_data(web::Data::new(routes::ops::DocsConfig::default()))
            .service(read_only("/.well-known/jwks.json", routes::ops::jwks, None))
            .service(read_only("/openapi.json", routes::ops::openapi_json, None))
            .service(read_only("/api-docs", routes::ops::docs_redirect, None))
            .service(read_only("/api-docs/{file:.*}", routes::ops::docs_file, None))
            .service(
                web::resource("/webhooks/stripe")
                    .app_data(envelope::RawLimit(routes::billing::MAX_WEBHOOK_BYTES))
                    .route(
                        web::post()
                            .to(routes::billing::stripe_webhook)
                            .wrap(routes::gated(RoutePolicy::webhook())),
                    )
                    .route(routes::other_methods("POST, OPTIONS".to_string())),
            )
            .service(sentry_resource(
                "/sentry/api/{project}/envelope/",
                routes::monitoring::sentry_envelope,
                state.config.sentry.max_bytes,
            ))
            .service(sentry_resource(
                "/sentry/api/{project}/store/",
                routes::monitoring::sentry_store,
                state.config.sentry.max_bytes,
            ))
            .service(routes::api_scope("/v1", false))
            .service(routes::api_scope("/api", true))
            .default_service(web::to(routes::not_found));
    }
}

/// A running gateway.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the operators' listener is, if any.
    pub admin_addr: Option<SocketAddr>,
    /// Where mail goes (no credentials), for the start-up banner.
    pub mail: String,
    /// Resolves when the server has drained.
    pub task: tokio::task::JoinHandle<Result<(), String>>,
    /// Its state (tests reach into it).
    pub state: Arc<AppState>,
}

/// Starts the gateway on `config.http_addr`.
pub async fn start(config: GatewayConfig, shutdown: CancellationToken) -> Result<Running, String> {
    let listener = std::net::TcpListener::bind(config.http_addr)
        .map_err(|e| format!("PORTICO_HTTP_ADDR {}: {e}", config.http_addr))?;
    start_on(listener, config, shutdown).await
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("PORTICO_TLS_CERT {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("PORTICO_TLS_CERT {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("PORTICO_TLS_KEY {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("PORTICO_TLS_CERT/PORTICO_TLS_KEY: {e}"))
}

/// Starts the gateway on a bound listener (tests bind port 0).
pub async fn start_on(
    listener: std::net::TcpListener,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<Running, String> {
    portico_runtime::metrics::install();
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = config.tls.as_ref().map(|(c, k)| tls_config(c, k)).transpose()?;
    let admin_listener = config
        .admin_addr
        .map(|a| std::net::TcpListener::bind(a).map_err(|e| format!("PORTICO_ADMIN_ADDR {a}: {e}")))
        .transpose()?;
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr().map_err(|e| e.to_string()))
        .transpose()?;
    let workers = config.workers;
    let grace = config.common.shutdown_grace;
    let delay = config.shutdown_delay;
    let hsts = tls.is_some();
    let origins = config.cors_origins.clone();
    let mailer = Arc::new(portico_mail::Mailer::new(&config.mail)?);
    let mail_target = config.mail.describe();
    let (state, scheduler) = build_state(config).await?;
    tokio::spawn(scheduler.run(shutdown.clone()));
    if let Some(redis) = &state.redis {
        state.caches.follow_invalidations(redis.clone(), shutdown.clone());
    }
    let data = web::Data::from(Arc::clone(&state));
    let app_data = data.clone();
    let server = HttpServer::new(move || {
        let mut security = DefaultHeaders::new()
            .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .add((header::X_FRAME_OPTIONS, "DENY"))
            .add((header::REFERRER_POLICY, "no-referrer"))
            .add(("Cross-Origin-Opener-Policy", "same-origin"))
            .add(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"));
        if hsts {
            security = security.add((header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"));
        }
        App::new()
            .configure(configure(app_data.clone(), Listener::Public))
            .wrap(from_fn(middleware::pipeline))
            .wrap(Compress::default())
            .wrap(from_fn(middleware::drop_identity_encoding))
            .wrap(security)
            .wrap(cors(&origins))
    })
    .workers(workers)
    .shutdown_timeout(grace.as_secs())
    .disable_signals();
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls),
        None => server.listen(listener),
    }
    .map_err(|e| e.to_string())?
    .run();
    let admin = match admin_listener {
        Some(listener) => {
            let admin_data = data.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .configure(configure(admin_data.clone(), Listener::Admin))
                    .wrap(from_fn(middleware::pipeline))
            })
            .workers(1)
            .shutdown_timeout(grace.as_secs())
            .disable_signals()
            .listen(listener)
            .map_err(|e| e.to_string())?
            .run();
            Some(server)
        }
        None => None,
    };
    spawn_background(&state, mailer, &shutdown);
    route_stats::spawn_shipping(Arc::clone(&state), state.config.route_stats_every, shutdown.clone());
    let handle = server.handle();
    let admin_handle = admin.as_ref().map(actix_web::dev::Server::handle);
    let draining = state.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        // Readiness fails first, so load balancers stop sending; then the drain begins.
        draining.draining.store(true, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        handle.stop(true).await;
        if let Some(admin) = admin_handle {
            admin.stop(true).await;
        }
    });
    if let Some(admin) = admin {
        tokio::spawn(admin);
    }
    let db = state.db.clone();
    let task = tokio::spawn(async move {
        let served = server.await.map_err(|e| e.to_string());
        db.close();
        served
    });
    tracing::info!(%addr, admin = ?admin_addr, tls = hsts, mail = %mail_target, "gateway listening");
    Ok(Running {
        addr,
        admin_addr,
        mail: mail_target,
        task,
        state,
    })
}

/// The gateway's background work until `shutdown`: key rotation (checked every minute on every
/// replica: each reloads the published keys), and the outbox workers that send mail and carry
/// account erasures to every service. What has expired goes in its `retention_cleanup` job.
fn spawn_background(state: &Arc<AppState>, mailer: Arc<portico_mail::Mailer>, shutdown: &CancellationToken) {
    let outbox = state.auth.outbox();
    outbox.spawn(portico_mail::TOPIC, portico_mail::handler(mailer), shutdown.clone());
    outbox.spawn(auth::ERASE_TOPIC, erase_handler(Arc::clone(state)), shutdown.clone());
    let (me, stop) = (Arc::clone(state), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = me.auth.rotate_keys().await {
                        tracing::warn!(error = %e, "signing key rotation failed");
                    }
                }
            }
        }
    });
}

/// Delivers one queued erasure: the named service's `Ops/EraseUser`.
fn erase_handler(state: Arc<AppState>) -> portico_runtime::outbox::Handler {
    Arc::new(move |item| {
        let state = Arc::clone(&state);
        Box::pin(async move {
            let erasure: Erasure =
                serde_json::from_str(&item.payload).map_err(|e| format!("queued erasure is unreadable: {e}"))?;
            let client = state
                .services
                .iter()
                .find(|(name, _)| *name == erasure.service)
                .map(|(_, c)| c.clone())
                .ok_or_else(|| format!("no service named {}", erasure.service))?;
            let mut client = client;
            let request = grpc::outgoing(
                portico_proto::ops::v1::EraseUserRequest {
                    user_id: erasure.user_id.clone(),
                },
                &item.id,
            );
            let removed = client
                .erase_user(request)
                .await
                .map_err(|s| format!("{}: {:?}", erasure.service, s.code()))?
                .into_inner()
                .removed;
            tracing::info!(service = %erasure.service, removed, "deleted account erased");
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::{Balanced, THREAD_CLIENTS};

    /// A set whose clients are numbered in the order they were made.
    fn numbered(connections: usize, made: &Arc<AtomicUsize>) -> Balanced<usize> {
        let made = made.clone();
        Balanced::with(
            "PORTICO_BETA_URL",
            "http://127.0.0.1:1",
            std::time::Duration::from_secs(1),
            connections,
            move |_| made.fetch_add(1, Ordering::SeqCst),
        )
        .unwrap()
    }

    fn thread_entries() -> usize {
        THREAD_CLIENTS.with(|t| t.borrow().len())
    }

    #[tokio::test]
    async fn each_thread_makes_its_own_clients_once_and_uses_them_round_robin() {
        let made = Arc::new(AtomicUsize::new(0));
        let set = Arc::new(numbered(2, &made));
        // Checking the URL made one set of two.
        assert_eq!(made.load(Ordering::SeqCst), 2);
        let here: Vec<usize> = (0..4).map(|_| set.get().unwrap()).collect();
        assert_eq!(here, vec![2, 3, 2, 3]);
        assert_eq!(made.load(Ordering::SeqCst), 4);

        let other = set.clone();
        let there = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move { (0..3).map(|_| other.get().unwrap()).collect::<Vec<usize>>() })
        })
        .join()
        .unwrap();
        assert_eq!(there, vec![4, 5, 4]);
        // This thread still uses its own.
        assert_eq!(set.get().unwrap(), 2);
        assert_eq!(made.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn sets_are_kept_apart_and_forgotten_when_dropped() {
        let made = Arc::new(AtomicUsize::new(0));
        let before = thread_entries();
        let first = numbered(1, &made);
        let second = numbered(1, &made);
        assert_eq!((first.get().unwrap(), second.get().unwrap()), (2, 3));
        assert_eq!(thread_entries(), before + 2);
        drop(first);
        // The next set made on this thread sweeps out the dropped one's clients.
        let third = numbered(1, &made);
        assert_eq!(third.get().unwrap(), 5);
        assert_eq!(thread_entries(), before + 2);
        assert_eq!(second.get().unwrap(), 3);
    }
}

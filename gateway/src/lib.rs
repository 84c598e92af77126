//! Portico's public gateway: authenticates callers, applies rate tiers, answers the JSON
//! envelope and forwards to the services over gRPC.

pub mod auth;
pub mod config;
pub mod envelope;
pub mod middleware;
pub mod ratelimit;
pub mod routes;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    http::header,
    middleware::{Compress, DefaultHeaders, from_fn},
    web,
};
use portico_proto::{
    beta::v1::beta_service_client::BetaServiceClient, media::v1::media_service_client::MediaServiceClient,
    ops::v1::ops_client::OpsClient, workflow::v1::workflow_service_client::WorkflowServiceClient,
};
use portico_runtime::{
    cache::CacheRegistry,
    db::{Db, Migrations},
    grpc::{self, PresentInternalToken},
    redis::SharedRedis,
};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use config::GatewayConfig;

use crate::{
    auth::{Auth, AuthSettings, Tier},
    envelope::JsonLimit,
    ratelimit::RateLimiter,
};

const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
};

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
    /// Every service's Ops endpoint, by name.
    pub services: Vec<(&'static str, OpsClient<Authed>)>,
    /// When the gateway started.
    pub started: Instant,
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

    /// Requests per minute for a tier.
    pub fn rate_for(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.config.rates.free,
            Tier::Pro => self.config.rates.pro,
            Tier::Enterprise => self.config.rates.enterprise,
        }
    }
}

/// Connects to the database, Redis and the services (lazily) and builds the shared state.
pub async fn build_state(config: GatewayConfig) -> Result<Arc<AppState>, String> {
    let db = Db::connect(&config.database_url, MIGRATIONS, config.db_pool)
        .await
        .map_err(|e| format!("gateway database: {e}"))?;
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
        admin_emails: config.admin_emails.clone(),
    };
    let auth = Auth::new(
        db.clone(),
        settings,
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
    let media_token = token.clone();
    let media = Balanced::connect("PORTICO_MEDIA_URL", &config.media_url, &config, move |ch| {
        MediaServiceClient::with_interceptor(ch, media_token.clone())
            .max_encoding_message_size(media_message)
            .max_decoding_message_size(media_message)
    })?;
    let ops = |var: &str, url: &str| {
        grpc::channel(url, config.grpc_timeout)
            .map(|ch| OpsClient::with_interceptor(ch, token.clone()))
            .map_err(|e| format!("{var}: {e}"))
    };
    let services = vec![
        ("beta", ops("PORTICO_BETA_URL", &config.beta_url)?),
        ("workflow", ops("PORTICO_WORKFLOW_URL", &config.workflow_url)?),
        ("media", ops("PORTICO_MEDIA_URL", &config.media_url)?),
    ];
    Ok(Arc::new(AppState {
        config,
        db,
        auth,
        limiter,
        redis,
        caches,
        beta,
        workflow,
        media,
        services,
        started: Instant::now(),
    }))
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
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Builds the application (shared by the server and the in-process tests).
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let openapi = routes::ops::openapi();
        cfg.app_data(state.clone())
            .app_data(JsonLimit(state.config.json_limit))
            .app_data(web::QueryConfig::default().error_handler(routes::query_error))
            .app_data(web::PathConfig::default().error_handler(routes::path_error))
            .app_data(web::PayloadConfig::new(state.config.json_limit))
            .route("/health", web::get().to(routes::ops::health))
            .route("/live", web::get().to(routes::ops::live))
            .route("/ready", web::get().to(routes::ops::ready))
            .route("/health/detailed", web::get().to(routes::ops::detailed))
            .route("/metrics", web::get().to(routes::ops::metrics))
            .route("/.well-known/jwks.json", web::get().to(routes::ops::jwks))
            .route("/internal/cache-stats", web::get().to(routes::ops::cache_stats))
            .route("/api-docs", web::get().to(routes::ops::docs_redirect))
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/api-docs/{_:.*}").external_url_unchecked("/openapi.json", openapi),
            )
            .service(web::scope("/v1").configure(routes::configure_api))
            .service(web::scope("/api").configure(routes::configure_api))
            .default_service(web::to(routes::not_found));
    }
}

/// A running gateway.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
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
    let workers = config.workers;
    let grace = config.common.shutdown_grace;
    let hsts = tls.is_some();
    let origins = config.cors_origins.clone();
    let state = build_state(config).await?;
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
            .configure(configure(app_data.clone()))
            .wrap(from_fn(middleware::pipeline))
            .wrap(Compress::default())
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
    let handle = server.handle();
    let rotation = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = rotation.auth.reload_keys().await {
                        tracing::warn!(error = %e, "signing key reload failed");
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    let db = state.db.clone();
    let task = tokio::spawn(async move {
        let served = server.await.map_err(|e| e.to_string());
        db.close();
        served
    });
    tracing::info!(%addr, tls = hsts, "gateway listening");
    Ok(Running { addr, task, state })
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

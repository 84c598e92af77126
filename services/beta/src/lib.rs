//! The beta program service: access levels, invitation codes, feature flags and usage analytics.
//!
//! `domain` holds the rules (no I/O), `store` the tables and queries, `service` the gRPC API.

pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::{net::SocketAddr, time::Duration};

use portico_proto::beta::v1::beta_service_server::BetaServiceServer;
use portico_runtime::{
    cache::CacheRegistry,
    config::{CommonConfig, ConfigError, Environment, Vars, listen_addr},
    db::{Db, Migrations},
    grpc::{self, OpsInfo, RequireInternalToken},
    redis::SharedRedis,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use service::Beta;

const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
};

/// The beta service's settings.
#[derive(Clone, Debug)]
pub struct BetaConfig {
    /// Shared settings.
    pub common: CommonConfig,
    /// `PORTICO_BETA_GRPC_ADDR` (default `127.0.0.1:50051`).
    pub grpc_addr: SocketAddr,
    /// `PORTICO_BETA_DATABASE_URL` (default SQLite `beta.db` in the data dir).
    pub database_url: String,
    /// `PORTICO_BETA_DB_POOL` (default 16).
    pub db_pool: usize,
    /// `PORTICO_BETA_SEED_DEMO`: the demo invitation codes; default on in dev, off in production.
    pub seed_demo: bool,
}

impl BetaConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let seed_demo = vars.flag("PORTICO_BETA_SEED_DEMO", common.environment == Environment::Dev)?;
        Ok(BetaConfig {
            grpc_addr: listen_addr(vars, "PORTICO_BETA_GRPC_ADDR", "127.0.0.1:50051")?,
            database_url: common.database_url(vars, "beta"),
            db_pool: vars.positive("PORTICO_BETA_DB_POOL", 16)? as usize,
            seed_demo,
            common,
        })
    }
}

/// Cache settings shared by the service's caches.
#[derive(Clone)]
pub struct Caches {
    /// In-process lifetime.
    pub l1_ttl: Duration,
    /// Shared lifetime.
    pub ttl: Duration,
    /// Shared layer, when configured.
    pub redis: Option<SharedRedis>,
}

/// A started beta service.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Resolves when the server has drained after shutdown.
    pub task: JoinHandle<Result<(), String>>,
    /// Its database pool.
    pub db: Db,
}

/// Opens the database, seeds demo data where configured, and serves until `shutdown`.
pub async fn start(config: BetaConfig, shutdown: CancellationToken) -> Result<Running, String> {
    let listener = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|e| format!("PORTICO_BETA_GRPC_ADDR {}: {e}", config.grpc_addr))?;
    start_on(listener, config, shutdown).await
}

/// Like [`start`] on an already bound listener (tests bind port 0).
pub async fn start_on(
    listener: TcpListener,
    config: BetaConfig,
    shutdown: CancellationToken,
) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let db = Db::connect(&config.database_url, MIGRATIONS, config.db_pool)
        .await
        .map_err(|e| format!("beta database: {e}"))?;
    let redis = config.common.redis().map_err(|e| e.to_string())?;
    let registry = CacheRegistry::default();
    let caches = Caches {
        l1_ttl: config.common.cache_l1_ttl,
        ttl: config.common.cache_ttl,
        redis: redis.clone(),
    };
    let beta = Beta::new(db.clone(), &caches, &registry);
    if let Some(redis) = &redis {
        registry.follow_invalidations(redis.clone(), shutdown.clone());
    }
    if config.seed_demo {
        if config.common.environment == Environment::Production {
            tracing::warn!("PORTICO_BETA_SEED_DEMO is on in production: demo invitation codes are being created");
        }
        beta.seed_demo_codes()
            .await
            .map_err(|e| format!("seeding demo codes: {e}"))?;
    }
    let probe_db = db.clone();
    let mut ops = OpsInfo::new("beta", registry).probe(
        "database",
        std::sync::Arc::new(move || {
            let db = probe_db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        }),
    );
    if let Some(redis) = redis {
        ops = ops.probe(
            "redis",
            std::sync::Arc::new(move || {
                let redis = redis.clone();
                Box::pin(async move { redis.ping().await })
            }),
        );
    }
    let token = config.common.internal_token.expose().clone();
    let routes = tonic::service::Routes::new(BetaServiceServer::with_interceptor(
        beta,
        RequireInternalToken::new(&token),
    ));
    let gauges = db.clone();
    let gauges_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        while tokio::select! { _ = gauges_stop.cancelled() => false, _ = tick.tick() => true } {
            portico_runtime::metrics::record_pool("beta", gauges.status());
        }
    });
    let pool = db.clone();
    let task = tokio::spawn(async move {
        let served = grpc::serve(listener, routes, service::SERVICE_NAME, ops, &token, shutdown).await;
        pool.close();
        served
    });
    Ok(Running { addr, task, db })
}

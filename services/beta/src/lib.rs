//! The beta program service: access levels, invitation codes, feature flags and usage analytics.
//!
//! `domain` holds the rules (no I/O), `store` the tables and queries, `service` the gRPC API.

pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::{net::SocketAddr, sync::Arc};

use portico_proto::beta::v1::beta_service_server::BetaServiceServer;
use portico_runtime::{
    Problem,
    config::{CommonConfig, ConfigError, Environment, Vars, listen_addr},
    db::Migrations,
    grpc::{self, Eraser, Foundation, Launch, RequireInternalToken},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use portico_runtime::grpc::Running;
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

/// Opens the database, seeds demo data where configured, and serves until `shutdown`.
pub async fn start(config: BetaConfig, shutdown: CancellationToken) -> Result<Running, String> {
    let listener = grpc::bind("PORTICO_BETA_GRPC_ADDR", config.grpc_addr).await?;
    start_on(listener, config, shutdown).await
}

/// Like [`start`] on an already bound listener (tests bind port 0).
pub async fn start_on(
    listener: TcpListener,
    config: BetaConfig,
    shutdown: CancellationToken,
) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let Foundation {
        db,
        redis,
        registry,
        caches,
    } = Foundation::open(
        "beta",
        &config.common,
        &config.database_url,
        MIGRATIONS,
        config.db_pool,
        &shutdown,
    )
    .await?;
    let beta = Beta::new(db.clone(), &caches, &registry);
    if config.seed_demo {
        if config.common.environment == Environment::Production {
            tracing::warn!("PORTICO_BETA_SEED_DEMO is on in production: demo invitation codes are being created");
        }
        beta.seed_demo_codes()
            .await
            .map_err(|e| format!("seeding demo codes: {e}"))?;
    }
    let token = config.common.internal_token.expose().clone();
    let erasing = beta.clone();
    let eraser: Eraser = Arc::new(move |user_id: String| {
        let beta = erasing.clone();
        Box::pin(async move { beta.erase_user(&user_id).await.map_err(Problem::from) })
    });
    let routes = tonic::service::Routes::new(BetaServiceServer::with_interceptor(
        beta,
        RequireInternalToken::new(&token),
    ));
    let task = grpc::launch(Launch {
        listener,
        routes,
        service_name: service::SERVICE_NAME,
        short_name: "beta",
        caches: registry,
        db: db.clone(),
        redis,
        token,
        eraser,
        shutdown,
    });
    Ok(Running { addr, task, db })
}

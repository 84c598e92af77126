//! The workflow service: analyses marketing-automation workflows with
//! `portico-workflow-analyzer`, caches results by content hash, keeps each user's history, and
//! applies the plan tiers (what a free caller sees) and the hourly analysis quota.
//!
//! `domain` holds the rules (no I/O), `store` the tables and queries, `service` the gRPC API.

pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::net::SocketAddr;

use portico_proto::workflow::v1::workflow_service_server::WorkflowServiceServer;
use portico_runtime::{
    config::{CommonConfig, ConfigError, Vars, listen_addr},
    db::Migrations,
    grpc::{self, Foundation, Launch, RequireInternalToken},
};
use portico_workflow_analyzer::Limits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use domain::Quotas;
pub use portico_runtime::grpc::Running;
pub use service::Workflows;

const MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
};

/// Largest Analyze request accepted over gRPC: above any sensible gateway body cap (1 MiB by
/// default), so the gateway's cap, not tonic's 4 MiB default, is what clients meet.
const MAX_DOCUMENT_MESSAGE: usize = 32 * 1024 * 1024;

/// The workflow service's settings.
#[derive(Clone, Debug)]
pub struct WorkflowConfig {
    /// Shared settings.
    pub common: CommonConfig,
    /// `PORTICO_WORKFLOW_GRPC_ADDR` (default `127.0.0.1:50053`).
    pub grpc_addr: SocketAddr,
    /// `PORTICO_WORKFLOW_DATABASE_URL` (default SQLite `workflow.db` in the data dir).
    pub database_url: String,
    /// `PORTICO_WORKFLOW_DB_POOL` (default 16).
    pub db_pool: usize,
    /// `PORTICO_WORKFLOW_MAX_STEPS` (default 5,000): larger workflows are refused with 413. The
    /// BPMN reader's element cap scales with it (`Limits::for_steps`).
    pub max_steps: usize,
    /// Analyses per hour by tier.
    pub quotas: Quotas,
}

impl WorkflowConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        Ok(WorkflowConfig {
            grpc_addr: listen_addr(vars, "PORTICO_WORKFLOW_GRPC_ADDR", "127.0.0.1:50053")?,
            database_url: common.database_url(vars, "workflow"),
            db_pool: vars.positive("PORTICO_WORKFLOW_DB_POOL", 16)? as usize,
            max_steps: vars.positive("PORTICO_WORKFLOW_MAX_STEPS", 5000)? as usize,
            quotas: Quotas {
                free: vars.positive("PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR", 10)?,
                pro: vars.positive("PORTICO_QUOTA_ANALYSES_PRO_PER_HOUR", 100)?,
                enterprise: vars.positive("PORTICO_QUOTA_ANALYSES_ENTERPRISE_PER_HOUR", 1000)?,
            },
            common,
        })
    }
}

/// Opens the database and serves until `shutdown`.
pub async fn start(config: WorkflowConfig, shutdown: CancellationToken) -> Result<Running, String> {
    let listener = grpc::bind("PORTICO_WORKFLOW_GRPC_ADDR", config.grpc_addr).await?;
    start_on(listener, config, shutdown).await
}

/// Like [`start`] on an already bound listener (tests bind port 0).
pub async fn start_on(
    listener: TcpListener,
    config: WorkflowConfig,
    shutdown: CancellationToken,
) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let Foundation {
        db,
        redis,
        registry,
        caches,
    } = Foundation::open(
        "workflow",
        &config.common,
        &config.database_url,
        MIGRATIONS,
        config.db_pool,
        &shutdown,
    )
    .await?;
    let limits = Limits::for_steps(config.max_steps);
    let workflows = Workflows::new(db.clone(), &caches, &registry, limits, config.quotas);
    let erasing = workflows.clone();
    let token = config.common.internal_token.expose().clone();
    let server = WorkflowServiceServer::new(workflows).max_decoding_message_size(MAX_DOCUMENT_MESSAGE);
    let routes = tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
        server,
        RequireInternalToken::new(&token),
    ));
    let task = grpc::launch(Launch {
        listener,
        routes,
        service_name: service::SERVICE_NAME,
        short_name: "workflow",
        caches: registry,
        db: db.clone(),
        redis,
        token,
        eraser: std::sync::Arc::new(move |user_id| {
            let workflows = erasing.clone();
            Box::pin(async move {
                workflows
                    .erase_user(user_id)
                    .await
                    .map_err(portico_runtime::Problem::from)
            })
        }),
        shutdown,
    });
    Ok(Running { addr, task, db })
}

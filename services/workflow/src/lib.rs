//! The workflow service: analyses marketing-automation workflows with
//! `portico-workflow-analyzer`, caches results by content hash, keeps each user's history, and
//! applies the plan tiers (what a free caller sees) and the hourly analysis quota.
//!
//! `domain` holds the rules (no I/O), `store` the tables and queries, `service` the gRPC API.

pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use portico_proto::workflow::v1::workflow_service_server::WorkflowServiceServer;
use portico_runtime::{
    Problem,
    config::{ConfigError, Vars},
    db::Migrations,
    service::{EraseUser, Foundation, Service, ServiceConfig},
};
use portico_workflow_analyzer::Limits;

pub use domain::Quotas;
pub use portico_runtime::grpc::Running;
pub use service::Workflows;

/// Largest Analyze request accepted over gRPC: above any sensible gateway body cap (1 MiB by
/// default), so the gateway's cap, not tonic's 4 MiB default, is what clients meet.
const MAX_DOCUMENT_MESSAGE: usize = 32 * 1024 * 1024;

/// The workflow service's settings.
#[derive(Clone, Debug)]
pub struct WorkflowConfig {
    /// `PORTICO_WORKFLOW_GRPC_ADDR` (default `127.0.0.1:50053`), `PORTICO_WORKFLOW_DATABASE_URL`
    /// (default SQLite `workflow.db` in the data dir), `PORTICO_WORKFLOW_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// `PORTICO_WORKFLOW_MAX_STEPS` (default 5,000): larger workflows are refused with 413. The
    /// BPMN reader's element cap scales with it (`Limits::for_steps`).
    pub max_steps: usize,
    /// Analyses per hour by tier.
    pub quotas: Quotas,
}

impl WorkflowConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let [free, pro, enterprise] = portico_runtime::config::analyses_per_hour(vars)?;
        Ok(WorkflowConfig {
            service: ServiceConfig::from_vars(vars, "workflow", 50053)?,
            max_steps: vars.positive("PORTICO_WORKFLOW_MAX_STEPS", 5000)? as usize,
            quotas: Quotas { free, pro, enterprise },
        })
    }
}

impl Service for WorkflowConfig {
    const NAME: &'static str = "workflow";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = Workflows;

    async fn build(self, foundation: &Foundation) -> Result<(Workflows, tonic::service::Routes), String> {
        let limits = Limits::for_steps(self.max_steps);
        let workflows = Workflows::new(
            foundation.db.clone(),
            &foundation.caches,
            &foundation.registry,
            limits,
            self.quotas,
        );
        let server = WorkflowServiceServer::new(workflows.clone()).max_decoding_message_size(MAX_DOCUMENT_MESSAGE);
        let routes = tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
            server,
            foundation.guard(),
        ));
        Ok((workflows, routes))
    }

    fn service_config(&self) -> &ServiceConfig {
        &self.service
    }
}

impl EraseUser for Workflows {
    async fn erase_user_data(&self, user_id: String) -> Result<u64, Problem> {
        self.erase_user(user_id).await.map_err(Problem::from)
    }
}

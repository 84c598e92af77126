//! How every Portico service starts: the settings each reads the same way, its database and
//! Redis ([`Foundation`]), its gRPC server with Ops, health and reflection (`grpc::launch`).
//! A service says only what is its own: its name, migrations, and how to build its
//! application and routes on the foundation.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    cache::{CacheRegistry, CacheSettings},
    config::{CommonConfig, ConfigError, Vars, listen_addr},
    db::{Db, Migrations},
    error::Problem,
    grpc::{self, Eraser, Launch, RequireInternalToken, Running},
    jobs::{self, Job, Jobs, Schedule, Task},
    redis::SharedRedis,
};

/// The settings every service has, named after it: `PORTICO_<NAME>_GRPC_ADDR`,
/// `PORTICO_<NAME>_DATABASE_URL` (default SQLite `<name>.db` in the data dir) and
/// `PORTICO_<NAME>_DB_POOL` (default 16).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Shared settings.
    pub common: CommonConfig,
    /// Where its gRPC server listens.
    pub grpc_addr: SocketAddr,
    /// Its own database.
    pub database_url: String,
    /// Connections in its pool.
    pub db_pool: usize,
}

impl ServiceConfig {
    /// Reads the settings of service `name` (`beta`, `billing`...), listening on
    /// `127.0.0.1:<default_port>` unless told otherwise.
    pub fn from_vars(vars: &Vars, name: &str, default_port: u16) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_vars(vars)?;
        let upper = name.to_ascii_uppercase();
        Ok(ServiceConfig {
            grpc_addr: listen_addr(
                vars,
                &format!("PORTICO_{upper}_GRPC_ADDR"),
                &format!("127.0.0.1:{default_port}"),
            )?,
            database_url: common.database_url(vars, name),
            db_pool: vars.positive(&format!("PORTICO_{upper}_DB_POOL"), 16)? as usize,
            common,
        })
    }
}

/// What every service opens before it builds its application: its database (migrated),
/// Redis, its cache registry (following invalidations from other replicas when Redis is
/// configured), and what its routes and background work need from the runtime.
pub struct Foundation {
    /// The service's database, migrated.
    pub db: Db,
    /// Shared Redis, when configured.
    pub redis: Option<SharedRedis>,
    /// The service's caches, for Ops and metrics.
    pub registry: CacheRegistry,
    /// Settings for the caches the service creates.
    pub caches: CacheSettings,
    /// Stops background work with the server.
    pub shutdown: CancellationToken,
    internal_token: String,
    retention_schedule: Schedule,
    cache_warm_schedule: Schedule,
    planned: std::sync::Mutex<Planned>,
}

/// The jobs a service asked for while it was built.
#[derive(Default)]
struct Planned {
    jobs: Vec<Job>,
    retention: Vec<(String, Task)>,
    warmers: Vec<(String, Task)>,
}

impl Planned {
    /// Its own jobs, plus `retention_cleanup` (the service's parts and the runtime's own) and,
    /// when it has hot caches, `cache_warmer`.
    fn into_jobs(self, db: &Db, retention: Schedule, warm: Schedule) -> Vec<Job> {
        let mut jobs = self.jobs;
        jobs.push(jobs::retention_cleanup(db, retention, self.retention));
        if !self.warmers.is_empty() {
            jobs.push(Job::of_parts(jobs::CACHE_WARMER, warm, self.warmers));
        }
        jobs
    }
}

impl Foundation {
    async fn open<S: Service>(config: &ServiceConfig, shutdown: CancellationToken) -> Result<Foundation, String> {
        let db = Db::connect(&config.database_url, S::MIGRATIONS, config.db_pool)
            .await
            .map_err(|e| format!("{} database: {e}", S::NAME))?;
        // The runtime's own tables: outbox, leases, job runs.
        db.migrate(crate::outbox::MIGRATIONS)
            .await
            .map_err(|e| format!("{} database: {e}", S::NAME))?;
        let redis = config.common.redis().map_err(|e| e.to_string())?;
        let registry = CacheRegistry::default();
        if let Some(redis) = &redis {
            registry.follow_invalidations(redis.clone(), shutdown.clone());
        }
        let caches = CacheSettings::new(&config.common, redis.clone());
        Ok(Foundation {
            db,
            redis,
            registry,
            caches,
            shutdown,
            internal_token: config.common.internal_token.expose().clone(),
            retention_schedule: config.common.retention_schedule.clone(),
            cache_warm_schedule: config.common.cache_warm_schedule.clone(),
            planned: std::sync::Mutex::new(Planned::default()),
        })
    }

    fn plan(&self, f: impl FnOnce(&mut Planned)) {
        match self.planned.lock() {
            Ok(mut planned) => f(&mut planned),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Adds a scheduled job: it runs on one replica at a time (see [`crate::jobs`]), from when
    /// the service starts until it stops.
    pub fn schedule(&self, job: Job) {
        self.plan(|p| p.jobs.push(job));
    }

    /// Adds a part to the service's `retention_cleanup` job (`PORTICO_RETENTION_SCHEDULE`,
    /// daily at 02:00 UTC by default): what it drops once past its use.
    pub fn retain(&self, part: &str, work: Task) {
        self.plan(|p| p.retention.push((part.to_string(), work)));
    }

    /// Adds a hot cache to the service's `cache_warmer` job (`PORTICO_CACHE_WARM_SCHEDULE`,
    /// every 5 minutes by default): reloads it so callers do not wait for a cold load.
    pub fn warm(&self, part: &str, work: Task) {
        self.plan(|p| p.warmers.push((part.to_string(), work)));
    }

    /// The interceptor the service's routes wrap: calls without the internal token are refused.
    pub fn guard(&self) -> RequireInternalToken {
        RequireInternalToken::new(&self.internal_token)
    }
}

/// A service's application erases a deleted account's data (served as `Ops/EraseUser`):
/// called with the user id, answers how many rows and objects went. Idempotent: the gateway
/// retries until it succeeds.
pub trait EraseUser: Clone + Send + Sync + 'static {
    /// Erases everything the service holds for `user_id`.
    fn erase_user_data(&self, user_id: String) -> impl Future<Output = Result<u64, Problem>> + Send;
}

/// One service, as [`start`] runs it. Implemented by the service's settings type.
pub trait Service: Sized + Send + 'static {
    /// Short name: metrics, Ops, logs, the database file and the variables' prefix.
    const NAME: &'static str;
    /// Fully qualified gRPC service name, for health.
    const GRPC_NAME: &'static str;
    /// Its schema, for both backends.
    const MIGRATIONS: Migrations;
    /// The application the routes serve.
    type App: EraseUser;

    /// The settings every service has.
    fn service_config(&self) -> &ServiceConfig;

    /// Builds the application and its routes on the opened foundation. The routes must be
    /// wrapped in [`Foundation::guard`]; background work stops with [`Foundation::shutdown`].
    fn build(self, foundation: &Foundation) -> impl Future<Output = Result<(Self::App, Routes), String>> + Send;
}

/// A started service, its application and its scheduled jobs (tests drive them directly).
pub struct Started<A> {
    /// The server.
    pub running: Running,
    /// The application.
    pub app: A,
    /// Its scheduled jobs.
    pub jobs: Jobs,
}

/// Binds the service's configured address and serves until `shutdown`.
pub async fn start<S: Service>(service: S, shutdown: CancellationToken) -> Result<Started<S::App>, String> {
    let var = format!("PORTICO_{}_GRPC_ADDR", S::NAME.to_ascii_uppercase());
    let listener = grpc::bind(&var, service.service_config().grpc_addr).await?;
    start_on(listener, service, shutdown).await
}

/// Like [`start`] on an already bound listener (tests bind port 0).
pub async fn start_on<S: Service>(
    listener: TcpListener,
    service: S,
    shutdown: CancellationToken,
) -> Result<Started<S::App>, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let foundation = Foundation::open::<S>(service.service_config(), shutdown).await?;
    let (app, routes) = service.build(&foundation).await?;
    let erasing = app.clone();
    let eraser: Eraser = Arc::new(move |user_id: String| {
        let app = erasing.clone();
        Box::pin(async move { app.erase_user_data(user_id).await })
    });
    let Foundation {
        db,
        redis,
        registry,
        shutdown,
        internal_token,
        retention_schedule,
        cache_warm_schedule,
        planned,
        ..
    } = foundation;
    let planned = planned.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let scheduled = planned.into_jobs(&db, retention_schedule, cache_warm_schedule);
    let (scheduler, jobs) = jobs::scheduler(db.clone(), jobs::this_replica(), scheduled);
    tokio::spawn(scheduler.run(shutdown.clone()));
    let task = grpc::launch(Launch {
        listener,
        routes,
        service_name: S::GRPC_NAME,
        short_name: S::NAME,
        caches: registry,
        db: db.clone(),
        redis,
        token: internal_token,
        eraser,
        jobs: jobs.clone(),
        shutdown,
    });
    Ok(Started {
        running: Running { addr, task, db },
        app,
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_named_after_the_service() -> Result<(), ConfigError> {
        let vars = Vars::from_map([("PORTICO_DATA_DIR", "/srv/portico"), ("PORTICO_BILLING_DB_POOL", "4")]);
        let c = ServiceConfig::from_vars(&vars, "billing", 50054)?;
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50054");
        assert_eq!(c.database_url, "sqlite:///srv/portico/billing.db");
        assert_eq!(c.db_pool, 4);
        let bad = Vars::from_map([("PORTICO_BILLING_GRPC_ADDR", "nowhere")]);
        let e = ServiceConfig::from_vars(&bad, "billing", 50054).err().map(|e| e.var);
        assert_eq!(e.as_deref(), Some("PORTICO_BILLING_GRPC_ADDR"));
        Ok(())
    }
}

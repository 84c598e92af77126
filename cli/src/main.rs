//! The Portico binary.
//!
//! - `portico dev`: the whole stack in one process on embedded defaults (SQLite files, in-memory
//!   cache), every service on its own gRPC port, the gateway in front; prints the gateway URL.
//! - `portico serve <gateway|beta|media|workflow>`: one process alone, as compose and Kubernetes run it.
//! - `portico analyze FILE...`: the workflow analyser (JSON workflows, BPMN diagrams) for a
//!   customer's CI, with text, JSON or SARIF output.

mod analyze;
mod backup;
mod metrics_server;

/// Request handling allocates many short-lived buffers; mimalloc serves them markedly faster
/// than glibc's allocator under concurrency (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use portico_runtime::{
    config::Vars,
    grpc::Running,
    service::{self, Service},
    shutdown, telemetry,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "portico", version, about = "Portico backend platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and every service in one process (embedded defaults).
    Dev,
    /// Analyse exported workflows (JSON) or BPMN diagrams (.bpmn/.xml, or sniffed); exits 2
    /// when some file could not be analysed, else 1 when a finding is critical — for customers' CI.
    Analyze {
        /// The workflow or BPMN files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// How to print the findings.
        #[arg(long, value_enum, default_value_t = analyze::Format::Text)]
        format: analyze::Format,
        /// Print the analysis as JSON (the same as `--format json`).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Refuse workflows with more steps than this.
        #[arg(long, default_value_t = portico_workflow_analyzer::Limits::DEFAULT_MAX_STEPS)]
        max_steps: usize,
    },
    /// Run one component alone.
    Serve {
        /// Which component.
        #[arg(value_enum)]
        component: Component,
    },
    /// Back up every component's database and the media objects to a directory or
    /// `s3://bucket/prefix` (AWS_* variables for S3), then apply retention.
    Backup {
        /// Where backups go.
        #[arg(long)]
        to: String,
        /// Backups kept (the newest ones).
        #[arg(long, default_value_t = 7)]
        keep: usize,
        /// Backups older than this many days are removed (the newest is always kept).
        #[arg(long, default_value_t = 30)]
        max_age_days: u32,
    },
    /// Restore a backup (the newest complete one unless `--backup ID`) over every component's
    /// database and the media objects. Stop the services first. Everything is verified before
    /// anything changes; the databases are put in place together or not at all.
    Restore {
        /// Where backups are.
        #[arg(long)]
        from: String,
        /// Which backup (as `portico backups` lists them).
        #[arg(long)]
        backup: Option<String>,
    },
    /// List the backups in a target and whether each can be restored.
    Backups {
        /// Where backups are.
        #[arg(long = "in")]
        target: String,
    },
    /// Operator commands on the gateway's database (PORTICO_GATEWAY_DATABASE_URL).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make the account with this address an admin (how the first admin is made).
    Grant {
        /// The account's e-mail address.
        email: String,
    },
    /// Make an admin an ordinary user again.
    Revoke {
        /// The account's e-mail address.
        email: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Component {
    Gateway,
    Beta,
    Media,
    Workflow,
    Billing,
    Monitoring,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let threads = worker_threads(&Vars::from_env())?;
    runtime(threads)?.block_on(run(cli))
}

/// `PORTICO_WORKER_THREADS` (default: one per core the process may use): threads of the async
/// runtime the services (and the gateway's background work) run on.
fn worker_threads(vars: &Vars) -> anyhow::Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Ok(vars.positive("PORTICO_WORKER_THREADS", u32::try_from(cores).unwrap_or(1))? as usize)
}

/// The async runtime: with one thread, the current-thread scheduler. It runs woken tasks in
/// order, so a gRPC connection woken by each of a batch of finished calls writes them all at
/// once; the multi-thread scheduler on one thread runs it straight after each call instead
/// (its "LIFO slot"), one write per reply (measured in BENCHMARKS.md).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let component = match cli.command {
        Command::Analyze {
            files,
            format,
            json,
            max_steps,
        } => {
            let format = if json { analyze::Format::Json } else { format };
            return analyze::run(&files, format, max_steps);
        }
        Command::Admin { action } => return admin(action).await,
        Command::Backup { to, keep, max_age_days } => {
            return backup::backup(&to, portico_backup::Retention { keep, max_age_days }).await;
        }
        Command::Restore { from, backup } => return backup::restore(&from, backup.as_deref()).await,
        Command::Backups { target } => return backup::list(&target).await,
        Command::Dev => None,
        Command::Serve { component } => Some(component),
    };
    let vars = Vars::from_env();
    let common = portico_runtime::config::CommonConfig::from_vars(&vars)?;
    let service = match component {
        None => "portico",
        Some(Component::Gateway) => "gateway",
        Some(Component::Beta) => "beta",
        Some(Component::Media) => "media",
        Some(Component::Workflow) => "workflow",
        Some(Component::Billing) => "billing",
        Some(Component::Monitoring) => "monitoring",
    };
    let _telemetry = telemetry::init(service, &common).map_err(anyhow::Error::msg)?;
    portico_runtime::metrics::install();
    let stop = shutdown::on_signal();
    match component {
        None => {
            std::fs::create_dir_all(&common.data_dir)?;
            // Services outlive the gateway at shutdown so its in-flight requests can finish.
            let services_stop = CancellationToken::new();
            let beta = start(portico_beta::BetaConfig::from_vars(&vars)?, &services_stop).await?;
            let workflow = start(portico_workflow::WorkflowConfig::from_vars(&vars)?, &services_stop).await?;
            let media = start(portico_media::MediaConfig::from_vars(&vars)?, &services_stop).await?;
            let billing = start(portico_billing::BillingConfig::from_vars(&vars)?, &services_stop).await?;
            // Point the gateway (and the monitoring service's probes) at the services just
            // started unless told otherwise; alert webhooks may go to local receivers.
            let mut vars = vars;
            let point = |vars: Vars, var: &str, addr: std::net::SocketAddr| {
                if vars.raw(var).is_none() {
                    vars.set(var, format!("http://{addr}"))
                } else {
                    vars
                }
            };
            for (var, addr) in [
                ("PORTICO_BETA_URL", beta.addr),
                ("PORTICO_WORKFLOW_URL", workflow.addr),
                ("PORTICO_MEDIA_URL", media.addr),
                ("PORTICO_BILLING_URL", billing.addr),
            ] {
                vars = point(vars, var, addr);
            }
            if vars.raw("PORTICO_ALERT_WEBHOOKS_ALLOW_PRIVATE").is_none() {
                vars = vars.set("PORTICO_ALERT_WEBHOOKS_ALLOW_PRIVATE", "true".to_string());
            }
            let monitoring = start(portico_monitoring::MonitoringConfig::from_vars(&vars)?, &services_stop).await?;
            vars = point(vars, "PORTICO_MONITORING_URL", monitoring.addr);
            let gateway_config = portico_gateway::GatewayConfig::from_vars(&vars)?;
            let scheme = if gateway_config.tls.is_some() { "https" } else { "http" };
            let gateway = portico_gateway::start(gateway_config, stop.clone())
                .await
                .map_err(anyhow::Error::msg)?;
            println!(
                "Portico is running: {scheme}://{}  (API docs: {scheme}://{}/api-docs/)",
                gateway.addr, gateway.addr
            );
            if let Some(admin) = gateway.admin_addr {
                println!("Operators: http://{admin}/metrics, http://{admin}/health/detailed");
            }
            println!("Mail: {}", gateway.mail);
            println!(
                "Data in {}; make the first admin with `portico admin grant EMAIL`; stop with Ctrl-C.",
                common.data_dir.display()
            );
            let drained = gateway.task.await;
            services_stop.cancel();
            let services = [
                beta.task.await,
                workflow.task.await,
                media.task.await,
                billing.task.await,
                monitoring.task.await,
            ];
            drained?.map_err(anyhow::Error::msg)?;
            for service in services {
                service?.map_err(anyhow::Error::msg)?;
            }
        }
        Some(Component::Gateway) => {
            let gateway = portico_gateway::start(portico_gateway::GatewayConfig::from_vars(&vars)?, stop)
                .await
                .map_err(anyhow::Error::msg)?;
            gateway.task.await?.map_err(anyhow::Error::msg)?;
        }
        Some(Component::Beta) => serve_alone(portico_beta::BetaConfig::from_vars(&vars)?, &vars, stop).await?,
        Some(Component::Media) => serve_alone(portico_media::MediaConfig::from_vars(&vars)?, &vars, stop).await?,
        Some(Component::Workflow) => {
            serve_alone(portico_workflow::WorkflowConfig::from_vars(&vars)?, &vars, stop).await?
        }
        Some(Component::Billing) => serve_alone(portico_billing::BillingConfig::from_vars(&vars)?, &vars, stop).await?,
        Some(Component::Monitoring) => {
            serve_alone(portico_monitoring::MonitoringConfig::from_vars(&vars)?, &vars, stop).await?
        }
    }
    tracing::info!("stopped cleanly");
    Ok(std::process::ExitCode::SUCCESS)
}

async fn admin(action: AdminAction) -> anyhow::Result<std::process::ExitCode> {
    let (email, role) = match &action {
        AdminAction::Grant { email } => (email, portico_gateway::auth::Role::Admin),
        AdminAction::Revoke { email } => (email, portico_gateway::auth::Role::User),
    };
    let config = portico_gateway::GatewayConfig::from_vars(&Vars::from_env())?;
    match portico_gateway::admin::set_role(&config, email, role).await {
        Ok(id) => {
            println!("{email} (user {id}) is now {}", role.as_str());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("portico admin: {e}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

/// Starts one service of the stack; it stops with `stop`.
async fn start<S: Service>(config: S, stop: &CancellationToken) -> anyhow::Result<Running> {
    let started = service::start(config, stop.clone()).await.map_err(anyhow::Error::msg)?;
    Ok(started.running)
}

/// `portico serve <service>`: one service in its own process, serving its metrics on
/// `PORTICO_METRICS_ADDR` when set, until `stop` and the drain.
async fn serve_alone<S: Service>(config: S, vars: &Vars, stop: CancellationToken) -> anyhow::Result<()> {
    if let Some(addr) = vars.opt("PORTICO_METRICS_ADDR")? {
        metrics_server::spawn(addr, stop.clone())?;
    }
    let running = start(config, &stop).await?;
    running.task.await?.map_err(anyhow::Error::msg)
}

//! `portico backup` and `portico restore`: every component's database (as the components read
//! their `PORTICO_*_DATABASE_URL`) and the media objects, through `portico_backup`.

use std::{process::ExitCode, time::Instant};

use portico_backup::{Component, Plan, Retention, Target};
use portico_runtime::{
    config::{CommonConfig, SERVICES, Vars},
    db::{Migrations, is_postgres},
    service::Service,
};

/// The schema of each component.
fn migrations(component: &str) -> Option<Migrations> {
    Some(match component {
        "gateway" => portico_gateway::MIGRATIONS,
        "beta" => portico_beta::BetaConfig::MIGRATIONS,
        "media" => portico_media::MediaConfig::MIGRATIONS,
        "workflow" => portico_workflow::WorkflowConfig::MIGRATIONS,
        "billing" => portico_billing::BillingConfig::MIGRATIONS,
        "monitoring" => portico_monitoring::MonitoringConfig::MIGRATIONS,
        _ => return None,
    })
}

/// The deployment as the environment describes it.
fn plan(vars: &Vars) -> anyhow::Result<Plan> {
    let common = CommonConfig::from_vars(vars)?;
    let names = std::iter::once("gateway").chain(SERVICES.iter().map(|(name, ..)| *name));
    let mut components = Vec::new();
    for name in names {
        let url = common.database_url(vars, name);
        let postgres = is_postgres(&url);
        let own = migrations(name).ok_or_else(|| anyhow::anyhow!("no schema is known for {name}"))?;
        let mut known = own.versions(postgres)?;
        known.extend(portico_runtime::outbox::MIGRATIONS.versions(postgres)?);
        components.push(Component {
            name: name.to_string(),
            url,
            known_migrations: known,
        });
    }
    let media = portico_media::MediaConfig::from_vars(vars)?;
    let objects = portico_media::Objects::open(&media.storage).map_err(anyhow::Error::msg)?;
    Ok(Plan {
        components,
        media: Some(Target::from_store(objects.store(), "media objects")),
    })
}

/// `portico backup --to TARGET`.
pub async fn backup(to: &str, retention: Retention) -> anyhow::Result<ExitCode> {
    let plan = plan(&Vars::from_env())?;
    let target = Target::open(to)?;
    let started = Instant::now();
    match portico_backup::backup(&plan, &target, retention).await {
        Ok(m) => {
            let bytes: u64 = m.databases.iter().map(|d| d.bytes).sum();
            let objects = m.objects.as_ref().map_or(0, |o| o.count);
            println!(
                "backup {} to {to}: {} databases ({bytes} bytes), {objects} media objects, in {:.1} s",
                m.id,
                m.databases.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("portico backup: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `portico restore --from TARGET [--backup ID]`.
pub async fn restore(from: &str, id: Option<&str>) -> anyhow::Result<ExitCode> {
    let plan = plan(&Vars::from_env())?;
    let target = Target::open(from)?;
    let started = Instant::now();
    match portico_backup::restore(&plan, &target, id).await {
        Ok(r) => {
            println!(
                "restored backup {} from {from}: {}; {} media objects copied back, in {:.1} s",
                r.id,
                r.databases.join(", "),
                r.objects_copied,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("portico restore: {e} (the live databases are as they were)");
            Ok(ExitCode::from(1))
        }
    }
}

/// `portico backups --in TARGET`: every backup and whether it can be restored.
pub async fn list(target: &str) -> anyhow::Result<ExitCode> {
    let t = Target::open(target)?;
    for (id, m) in portico_backup::list(&t).await? {
        match m {
            Ok(m) => println!(
                "{id}  complete  {} databases, {} media objects, Portico {}",
                m.databases.len(),
                m.objects.as_ref().map_or(0, |o| o.count),
                m.portico
            ),
            Err(why) => println!("{id}  unusable  {why}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

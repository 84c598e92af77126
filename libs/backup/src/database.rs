//! One component's database, dumped and restored: PostgreSQL with `pg_dump --format=custom`
//! and `pg_restore` into a staging database that is renamed over the live one only once every
//! component restored; SQLite with `VACUUM INTO` and a staged copy renamed over the live file.

use std::path::{Path, PathBuf};

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection, sql_types::Text};
use portico_runtime::db::{is_postgres, sqlite_path};

use crate::{BackupError, manifest::DatabaseEntry};

/// A component whose database is backed up.
#[derive(Clone, Debug)]
pub struct Component {
    /// `gateway`, `beta`...
    pub name: String,
    /// Its database URL (as the component reads it).
    pub url: String,
    /// Every migration this build knows for it: a restore refuses a database migrated
    /// further (made by a newer Portico).
    pub known_migrations: Vec<String>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    value: String,
}

/// A PostgreSQL URL taken apart: the password goes to the tools by environment, never argv.
struct Pg {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
    url: url::Url,
}

fn pg(component: &str, raw: &str) -> Result<Pg, BackupError> {
    let bad = |why: &str| BackupError::Database(format!("{component}: the database URL {why}"));
    let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    let database = url.path().trim_start_matches('/').to_string();
    if database.is_empty() {
        return Err(bad("names no database"));
    }
    Ok(Pg {
        host: url.host_str().unwrap_or("localhost").to_string(),
        port: url.port().unwrap_or(5432),
        user: match url.username() {
            "" => "postgres".to_string(),
            u => u.to_string(),
        },
        password: url.password().map(str::to_string),
        database,
        url,
    })
}

impl Pg {
    /// The same server, another database (the maintenance database for CREATE/ALTER).
    fn on(&self, database: &str) -> String {
        let mut u = self.url.clone();
        u.set_path(&format!("/{database}"));
        u.to_string()
    }

    fn tool(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg("--host")
            .arg(&self.host)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--username")
            .arg(&self.user)
            .arg("--no-password")
            .kill_on_drop(true);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn run(component: &str, mut cmd: tokio::process::Command) -> Result<String, BackupError> {
    let out = cmd
        .output()
        .await
        .map_err(|e| BackupError::Database(format!("{component}: {e} (is the PostgreSQL client installed?)")))?;
    if !out.status.success() {
        return Err(BackupError::Database(format!(
            "{component}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Database(e.to_string()))?
}

fn db_err(component: &str) -> impl Fn(diesel::result::Error) -> BackupError + '_ {
    move |e| BackupError::Database(format!("{component}: {e}"))
}

/// A connection to a SQLite file that waits for writers instead of failing.
fn sqlite(component: &str, path: &str) -> Result<SqliteConnection, BackupError> {
    let mut conn = SqliteConnection::establish(path).map_err(conn_err(component))?;
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA busy_timeout = 10000")
        .map_err(db_err(component))?;
    Ok(conn)
}

fn conn_err(component: &str) -> impl Fn(diesel::ConnectionError) -> BackupError + '_ {
    move |e| BackupError::Database(format!("{component}: {e}"))
}

/// The migrations applied to a database, in order.
fn applied<C>(component: &str, conn: &mut C) -> Result<Vec<String>, BackupError>
where
    C: Connection,
    C::Backend: diesel::backend::Backend,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Row>,
{
    let rows: Vec<Row> = diesel::sql_query("SELECT version AS value FROM __diesel_schema_migrations ORDER BY version")
        .load(conn)
        .map_err(db_err(component))?;
    Ok(rows.into_iter().map(|r| r.value).collect())
}

fn one<C>(component: &str, conn: &mut C, sql: &str) -> Result<String, BackupError>
where
    C: Connection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Row>,
{
    let rows: Vec<Row> = diesel::sql_query(sql).load(conn).map_err(db_err(component))?;
    Ok(rows.into_iter().next().map(|r| r.value).unwrap_or_default())
}

/// A dump's manifest entry before its digest is known.
fn entry(
    name: &str,
    backend: &str,
    extension: &str,
    migrations: Vec<String>,
    server_version: String,
    tool: String,
) -> DatabaseEntry {
    DatabaseEntry {
        component: name.to_string(),
        backend: backend.to_string(),
        file: format!("{name}.{extension}"),
        bytes: 0,
        sha256: String::new(),
        migrations,
        server_version,
        tool,
    }
}

/// Dumps `c` into `dir`: the file and its manifest entry (digest left for the caller).
pub async fn dump(c: &Component, dir: &Path) -> Result<(PathBuf, DatabaseEntry), BackupError> {
    let name = c.name.clone();
    if is_postgres(&c.url) {
        let pg = pg(&name, &c.url)?;
        let file = dir.join(format!("{name}.pgdump"));
        let (url, n) = (c.url.clone(), name.clone());
        let (migrations, server_version) = blocking(move || {
            let mut conn = PgConnection::establish(&url).map_err(conn_err(&n))?;
            Ok((
                applied(&n, &mut conn)?,
                one(&n, &mut conn, "SELECT current_setting('server_version') AS value")?,
            ))
        })
        .await?;
        let mut cmd = pg.tool("pg_dump");
        cmd.arg("--format=custom")
            .arg("--no-owner")
            .arg("--no-privileges")
            .arg("--file")
            .arg(&file)
            .arg("--dbname")
            .arg(&pg.database);
        run(&name, cmd).await?;
        let mut version = tokio::process::Command::new("pg_dump");
        version.arg("--version");
        let tool = run(&name, version).await?;
        Ok((
            file,
            entry(&name, "postgresql", "pgdump", migrations, server_version, tool),
        ))
    } else {
        let path = sqlite_path(&c.url)
            .ok_or_else(|| BackupError::Database(format!("{name}: unsupported database URL")))?
            .to_string();
        let file = dir.join(format!("{name}.sqlite"));
        let (out, n) = (file.clone(), name.clone());
        let (migrations, server_version) = blocking(move || {
            let mut conn = sqlite(&n, &path)?;
            let into = out
                .to_str()
                .ok_or_else(|| BackupError::Io("temporary path is not UTF-8".into()))?;
            // A consistent copy of a live database, compacted, without stopping writers.
            diesel::sql_query(format!("VACUUM INTO {}", literal(into)))
                .execute(&mut conn)
                .map_err(db_err(&n))?;
            Ok((
                applied(&n, &mut conn)?,
                one(&n, &mut conn, "SELECT sqlite_version() AS value")?,
            ))
        })
        .await?;
        let tool = "VACUUM INTO".to_string();
        Ok((file, entry(&name, "sqlite", "sqlite", migrations, server_version, tool)))
    }
}

/// A database restored beside the live one, not yet in its place.
#[derive(Debug)]
pub enum Staged {
    Postgres {
        component: String,
        url: String,
        live: String,
        staging: String,
    },
    Sqlite {
        component: String,
        live: PathBuf,
        staging: PathBuf,
    },
}

/// A staged database put in place; the previous one kept aside until [`finish`].
#[derive(Debug)]
pub struct Swapped {
    staged: Staged,
    /// Where the previous database went (none when there was none).
    previous: Option<String>,
}

/// Restores `file` (checked against `entry` already) beside `c`'s live database, and checks
/// the result holds the migrations the manifest says.
pub async fn stage(c: &Component, entry: &DatabaseEntry, file: &Path) -> Result<Staged, BackupError> {
    let name = c.name.clone();
    let expected = entry.migrations.clone();
    match (entry.backend.as_str(), is_postgres(&c.url)) {
        ("postgresql", true) => {
            let pg = pg(&name, &c.url)?;
            let staging = format!("{}__restoring", pg.database);
            let maintenance = pg.on("postgres");
            let (n, s) = (name.clone(), staging.clone());
            blocking(move || {
                let mut conn = PgConnection::establish(&maintenance).map_err(conn_err(&n))?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&s)))
                    .execute(&mut conn)
                    .map_err(db_err(&n))?;
                diesel::sql_query(format!("CREATE DATABASE {}", quote(&s)))
                    .execute(&mut conn)
                    .map_err(db_err(&n))?;
                Ok(())
            })
            .await?;
            let staged = Staged::Postgres {
                component: name.clone(),
                url: c.url.clone(),
                live: pg.database.clone(),
                staging: staging.clone(),
            };
            let mut cmd = pg.tool("pg_restore");
            cmd.arg("--no-owner")
                .arg("--no-privileges")
                .arg("--exit-on-error")
                .arg("--single-transaction")
                .arg("--dbname")
                .arg(&staging)
                .arg(file);
            let checked = async {
                run(&name, cmd).await?;
                let (url, n) = (pg.on(&staging), name.clone());
                let got = blocking(move || {
                    let mut conn = PgConnection::establish(&url).map_err(conn_err(&n))?;
                    applied(&n, &mut conn)
                })
                .await?;
                check_migrations(&name, &got, &expected)
            }
            .await;
            kept(staged, checked).await
        }
        ("sqlite", false) => {
            let live = PathBuf::from(
                sqlite_path(&c.url)
                    .ok_or_else(|| BackupError::Database(format!("{name}: unsupported database URL")))?,
            );
            let staging = with_suffix(&live, ".restoring");
            if let Some(parent) = live.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| BackupError::Io(format!("{}: {e}", parent.display())))?;
            }
            tokio::fs::copy(file, &staging)
                .await
                .map_err(|e| BackupError::Io(format!("{}: {e}", staging.display())))?;
            let staged = Staged::Sqlite {
                component: name.clone(),
                live,
                staging: staging.clone(),
            };
            let n = name.clone();
            let checked = blocking(move || {
                let path = staging
                    .to_str()
                    .ok_or_else(|| BackupError::Io("path is not UTF-8".into()))?;
                let mut conn = sqlite(&n, path)?;
                let integrity = one(
                    &n,
                    &mut conn,
                    "SELECT integrity_check AS value FROM pragma_integrity_check",
                )?;
                if integrity != "ok" {
                    return Err(BackupError::Verify(format!("{n}: integrity check: {integrity}")));
                }
                check_migrations(&n, &applied(&n, &mut conn)?, &expected)
            })
            .await;
            kept(staged, checked).await
        }
        (backend, _) => Err(BackupError::Verify(format!(
            "{name}: the backup holds a {backend} database, but the component is configured for {}",
            if is_postgres(&c.url) { "postgresql" } else { "sqlite" }
        ))),
    }
}

/// The staged database when its checks passed; dropped otherwise.
async fn kept(staged: Staged, checked: Result<(), BackupError>) -> Result<Staged, BackupError> {
    match checked {
        Ok(()) => Ok(staged),
        Err(e) => {
            discard(staged).await;
            Err(e)
        }
    }
}

fn check_migrations(component: &str, got: &[String], expected: &[String]) -> Result<(), BackupError> {
    if got == expected {
        Ok(())
    } else {
        Err(BackupError::Verify(format!(
            "{component}: the restored database has migrations {got:?}, the manifest says {expected:?}"
        )))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// SQLite's companion files of a database.
fn companions(path: &Path) -> [PathBuf; 2] {
    [with_suffix(path, "-wal"), with_suffix(path, "-shm")]
}

/// Drops a staged database (a restore that did not go through).
pub async fn discard(staged: Staged) {
    match staged {
        Staged::Postgres {
            component,
            url,
            staging,
            ..
        } => {
            let dropped = blocking(move || {
                let maintenance = pg(&component, &url)?.on("postgres");
                let mut conn = PgConnection::establish(&maintenance).map_err(conn_err(&component))?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&staging)))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                Ok(())
            })
            .await;
            if let Err(e) = dropped {
                tracing::warn!(error = %e, "a staged database was not dropped");
            }
        }
        Staged::Sqlite { staging, .. } => {
            let _ = tokio::fs::remove_file(&staging).await;
        }
    }
}

/// Puts a staged database in place of the live one (the previous one is kept aside).
pub async fn swap(staged: Staged) -> Result<Swapped, (Staged, BackupError)> {
    match &staged {
        Staged::Postgres {
            component,
            url,
            live,
            staging,
        } => {
            let (component, url, live, staging) = (component.clone(), url.clone(), live.clone(), staging.clone());
            let done = blocking(move || {
                let maintenance = pg(&component, &url)?.on("postgres");
                let aside = format!("{live}__before_restore");
                let mut conn = PgConnection::establish(&maintenance).map_err(conn_err(&component))?;
                let exists = one(
                    &component,
                    &mut conn,
                    &format!(
                        "SELECT count(*)::text AS value FROM pg_database WHERE datname = {}",
                        literal(&live)
                    ),
                )? == "1";
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&aside)))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                if exists {
                    // Connections to the live database end here: the services reconnect to
                    // the restored one.
                    diesel::sql_query(format!(
                        "SELECT pg_terminate_backend(pid)::text AS value FROM pg_stat_activity \
                         WHERE datname = {} AND pid <> pg_backend_pid()",
                        literal(&live)
                    ))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                    diesel::sql_query(format!("ALTER DATABASE {} RENAME TO {}", quote(&live), quote(&aside)))
                        .execute(&mut conn)
                        .map_err(db_err(&component))?;
                }
                let renamed =
                    diesel::sql_query(format!("ALTER DATABASE {} RENAME TO {}", quote(&staging), quote(&live)))
                        .execute(&mut conn);
                if let Err(e) = renamed {
                    if exists {
                        let _ =
                            diesel::sql_query(format!("ALTER DATABASE {} RENAME TO {}", quote(&aside), quote(&live)))
                                .execute(&mut conn);
                    }
                    return Err(db_err(&component)(e));
                }
                Ok(exists.then_some(aside))
            })
            .await;
            match done {
                Ok(previous) => Ok(Swapped { staged, previous }),
                Err(e) => Err((staged, e)),
            }
        }
        Staged::Sqlite { live, staging, .. } => {
            let aside = with_suffix(live, ".before-restore");
            let swapped = async {
                let exists = tokio::fs::try_exists(live).await.unwrap_or(false);
                if exists {
                    tokio::fs::rename(live, &aside).await?;
                }
                // A stale write-ahead log would be replayed over the restored file.
                for companion in companions(live) {
                    match tokio::fs::remove_file(&companion).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                if let Err(e) = tokio::fs::rename(staging, live).await {
                    if exists {
                        let _ = tokio::fs::rename(&aside, live).await;
                    }
                    return Err(e);
                }
                Ok(exists)
            }
            .await;
            match swapped {
                Ok(exists) => Ok(Swapped {
                    previous: exists.then(|| aside.to_string_lossy().into_owned()),
                    staged,
                }),
                Err(e) => {
                    let e = BackupError::Io(format!("{}: {e}", live.display()));
                    Err((staged, e))
                }
            }
        }
    }
}

/// Puts the previous database back (another component's swap failed).
pub async fn undo(swapped: Swapped) {
    let outcome = match &swapped.staged {
        Staged::Postgres {
            component, url, live, ..
        } => {
            let (component, url, live, previous) =
                (component.clone(), url.clone(), live.clone(), swapped.previous.clone());
            blocking(move || {
                let maintenance = pg(&component, &url)?.on("postgres");
                let mut conn = PgConnection::establish(&maintenance).map_err(conn_err(&component))?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&live)))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                if let Some(previous) = previous {
                    diesel::sql_query(format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        quote(&previous),
                        quote(&live)
                    ))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                }
                Ok(())
            })
            .await
        }
        Staged::Sqlite { live, .. } => {
            let result = match &swapped.previous {
                Some(previous) => tokio::fs::rename(previous, live).await,
                None => tokio::fs::remove_file(live).await,
            };
            result.map_err(|e| BackupError::Io(e.to_string()))
        }
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, "a database could not be put back after a failed restore");
    }
}

/// Drops the previous database of a completed restore.
pub async fn finish(swapped: Swapped) -> Result<(), BackupError> {
    let Some(previous) = swapped.previous else {
        return Ok(());
    };
    match swapped.staged {
        Staged::Postgres { component, url, .. } => {
            blocking(move || {
                let maintenance = pg(&component, &url)?.on("postgres");
                let mut conn = PgConnection::establish(&maintenance).map_err(conn_err(&component))?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&previous)))
                    .execute(&mut conn)
                    .map_err(db_err(&component))?;
                Ok(())
            })
            .await
        }
        Staged::Sqlite { .. } => tokio::fs::remove_file(&previous)
            .await
            .map_err(|e| BackupError::Io(format!("{previous}: {e}"))),
    }
}

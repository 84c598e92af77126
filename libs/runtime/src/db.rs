//! The database: PostgreSQL in production, SQLite as the embedded default, chosen by URL.
//!
//! Services write diesel queries once against [`DbConnection`] (a diesel `MultiConnection`)
//! and run them through [`Db::run`] or [`Db::write`]; which backend answers is decided by the
//! URL at start. Migrations are embedded per backend and run when the pool opens.

use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_sync::SyncWrapper;
use diesel::{
    Connection, PgConnection, SqliteConnection,
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

/// Runs a query written once against the concrete connection of either backend, for the few
/// statements diesel's multi-connection cannot express (upserts): `on_backend!(conn, |c| …)`.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// One connection to either backend; diesel queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL (production).
    Postgresql(PgConnection),
    /// SQLite (embedded default).
    Sqlite(SqliteConnection),
}

/// Which database answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A service's embedded migrations, one set per backend (build it as a `const`, with
/// [`embed_migrations!`](crate::embed_migrations) for the usual layout).
pub struct Migrations {
    /// `migrations/postgres`.
    pub postgres: EmbeddedMigrations,
    /// `migrations/sqlite`.
    pub sqlite: EmbeddedMigrations,
}

impl Migrations {
    /// The versions of the migrations for one backend, in order (what a database of that
    /// backend records once migrated; backups check restores against them).
    pub fn versions(&self, postgres: bool) -> Result<Vec<String>, DbError> {
        use diesel::migration::MigrationSource;
        let names = if postgres {
            MigrationSource::<diesel::pg::Pg>::migrations(&self.postgres)
                .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect::<Vec<_>>())
        } else {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&self.sqlite)
                .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect::<Vec<_>>())
        };
        names.map_err(|e| DbError::Migration(e.to_string()))
    }
}

/// The calling crate's `migrations/postgres` and `migrations/sqlite`, embedded as
/// [`Migrations`] (the caller depends on `diesel_migrations`).
#[macro_export]
macro_rules! embed_migrations {
    () => {
        $crate::db::Migrations {
            postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
            sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
        }
    };
}

/// Failures of the database layer itself (queries report `diesel::result::Error`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("unsupported database url (use postgres://… or sqlite://…)")]
    UnsupportedUrl,
    /// A connection could not be opened.
    #[error("cannot connect to the {backend} database: {message}")]
    Connect {
        /// Which backend.
        backend: &'static str,
        /// Why.
        message: String,
    },
    /// No connection became free in time.
    #[error("database pool: {0}")]
    Pool(String),
    /// Migrations failed.
    #[error("database migrations: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    /// The closure panicked on the blocking thread.
    #[error("database task panicked")]
    Panicked,
    /// A background worker the call needed has stopped.
    #[error("{0}")]
    Stopped(String),
}

impl DbError {
    /// Whether a query failed on a unique constraint (a concurrent insert of the same key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// Whether the database could not be reached (down, restarting, every connection busy)
    /// rather than the query being wrong: worth a retry, not a bug.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect { .. } | DbError::Pool(_) => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            // PostgreSQL ending sessions for a shutdown or restart (SQLSTATE 57P01..57P03).
            DbError::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("terminating connection")
                    || m.contains("shutting down")
                    || m.contains("starting up")
                    || m.contains("server closed the connection")
            }
            _ => false,
        }
    }
}

impl From<DbError> for crate::Problem {
    /// An unreachable database is 503 (retry shortly); anything else is an internal error.
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "the database is unavailable");
            crate::Problem::new(
                crate::ErrorCode::ServiceUnavailable,
                "the database is unavailable; retry shortly",
            )
        } else {
            crate::Problem::internal(e)
        }
    }
}

enum Target {
    Postgres(String),
    Sqlite(String),
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file of a `sqlite://PATH` URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
}

fn parse_url(url: &str) -> Result<Target, DbError> {
    if is_postgres(url) {
        Ok(Target::Postgres(url.to_string()))
    } else if let Some(path) = sqlite_path(url) {
        Ok(Target::Sqlite(path.to_string()))
    } else if url == "sqlite::memory:" {
        Ok(Target::Sqlite(":memory:".to_string()))
    } else {
        Err(DbError::UnsupportedUrl)
    }
}

/// Opens connections of the right backend; SQLite ones get the pragmas that make concurrent
/// use safe (WAL, a busy timeout so writers queue instead of failing, foreign keys).
struct Manager {
    target: Target,
}

impl Manager {
    fn establish(&self) -> Result<DbConnection, DbError> {
        match &self.target {
            Target::Postgres(url) => {
                PgConnection::establish(url)
                    .map(DbConnection::Postgresql)
                    .map_err(|e| DbError::Connect {
                        backend: "postgres",
                        message: e.to_string(),
                    })
            }
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(|e| DbError::Connect {
                    backend: "sqlite",
                    message: e.to_string(),
                })?;
                // The timeout first: switching to WAL waits, too, for a connection that is
                // closing (its last checkpoint holds the database for a moment). SQLite answers
                // "database is locked" at once, without waiting, where waiting could deadlock:
                // when replicas open a new file together, one may switch to WAL while another
                // holds its migration transaction. That is retried for a while.
                const PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                                       PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
                let mut attempts = 0;
                loop {
                    match conn.batch_execute(PRAGMAS) {
                        Ok(()) => break,
                        Err(e) if attempts < 200 && e.to_string().contains("database is locked") => {
                            attempts += 1;
                            std::thread::sleep(std::time::Duration::from_millis(25));
                        }
                        Err(e) => {
                            return Err(DbError::Connect {
                                backend: "sqlite",
                                message: e.to_string(),
                            });
                        }
                    }
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl managed::Manager for Manager {
    type Type = SyncWrapper<DbConnection>;
    type Error = DbError;

    async fn create(&self) -> Result<Self::Type, DbError> {
        let target = match &self.target {
            Target::Postgres(u) => Target::Postgres(u.clone()),
            Target::Sqlite(p) => Target::Sqlite(p.clone()),
        };
        SyncWrapper::new(deadpool::Runtime::Tokio1, move || Manager { target }.establish()).await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<DbError> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("connection mutex poisoned"));
        }
        let healthy = conn
            .interact(|c| {
                !<DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(c)
                    && c.batch_execute("SELECT 1").is_ok()
            })
            .await
            .unwrap_or(false);
        if healthy {
            Ok(())
        } else {
            Err(RecycleError::message("connection unhealthy"))
        }
    }
}

/// A pool of connections to one service's database.
#[derive(Clone)]
pub struct Db {
    pool: managed::Pool<Manager>,
    backend: Backend,
    /// SQLite admits one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler (which sleeps and retries) keeps write latency flat under contention.
    write_lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish()
    }
}

/// Pool usage, for metrics and health.
#[derive(Clone, Copy, Debug)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Connections idle.
    pub available: usize,
    /// Maximum connections.
    pub max_size: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl Db {
    /// Opens a pool for `url` and brings the schema up to date.
    pub async fn connect(url: &str, migrations: Migrations, max_size: usize) -> Result<Db, DbError> {
        let target = parse_url(url)?;
        let backend = match target {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(ref path) => {
                if let Some(dir) = std::path::Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| DbError::Connect {
                        backend: "sqlite",
                        message: e.to_string(),
                    })?;
                }
                Backend::Sqlite
            }
        };
        let pool = managed::Pool::builder(Manager { target })
            .max_size(max_size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))?;
        let write_lock = (backend == Backend::Sqlite).then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        let db = Db {
            pool,
            backend,
            write_lock,
        };
        db.run(move |conn| run_migrations(conn, migrations)).await?;
        tracing::info!(backend = backend.as_str(), "database ready");
        Ok(db)
    }

    /// Brings a second set of tables up to date on this database (a shared component's own
    /// migrations, such as the outbox's; their versions never collide with a service's).
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), DbError> {
        self.run(move |conn| run_migrations(conn, migrations)).await
    }

    /// Which backend answers.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` on a pooled connection on a blocking thread. For reads: anything that writes
    /// goes through [`Db::write`], or on SQLite it meets other writers in SQLite's busy
    /// handler, which sleeps 1, 2, 5, 10 … ms between retries instead of queueing.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let started = Instant::now();
        let conn = self.pool.get().await.map_err(|e| E::from(pool_error(e)))?;
        metrics::histogram!("portico_db_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        conn.interact(f).await.map_err(|_| E::from(DbError::Panicked))?
    }

    /// Runs `f` in a write transaction. On SQLite the transaction takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout instead of
    /// failing when a read lock cannot be upgraded.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let _turn = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        self.run(move |conn| write_transaction(conn, f)).await
    }

    /// Pool usage now.
    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            size: s.size,
            available: s.available,
            max_size: s.max_size,
            waiting: s.waiting,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
    }

    /// Closes the pool: idle connections are dropped, new `run` calls fail.
    pub fn close(&self) {
        self.pool.close();
    }
}

fn pool_error(e: managed::PoolError<DbError>) -> DbError {
    match e {
        managed::PoolError::Backend(e) => e,
        other => DbError::Pool(other.to_string()),
    }
}

fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Postgresql(_) => conn.transaction(f),
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(value) => {
                    <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
                    Ok(value)
                }
                Err(e) => {
                    <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)?;
                    Err(e)
                }
            }
        }
    }
}

/// The advisory lock key migrations run under on PostgreSQL ("portico" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6f72_7469_636f;

fn run_migrations(conn: &mut DbConnection, migrations: Migrations) -> Result<(), DbError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    let applied = match conn {
        DbConnection::Postgresql(c) => {
            // Replicas that start together migrate one at a time: the others wait for this
            // session lock, then find nothing pending. It ends with the session if we die.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let applied = c.run_pending_migrations(migrations.postgres).map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            applied.map_err(failed)?
        }
        // Processes sharing a file migrate one at a time: the write lock is taken first (the
        // others wait in the busy timeout), each migration runs in a savepoint inside.
        DbConnection::Sqlite(c) => c.immediate_transaction(|c| {
            c.run_pending_migrations(migrations.sqlite)
                .map(|v| v.len())
                .map_err(failed)
        })?,
    };
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: every timestamp column stores this, on both backends.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_database_is_503_and_a_bad_query_is_500() {
        let dead = portico_testkit::DeadPort::new();
        let db = super::Db::connect(&dead.url("postgres"), crate::outbox::MIGRATIONS, 1).await;
        let e = db.err().unwrap_or_else(|| panic!("nothing listens there"));
        assert!(e.is_unavailable(), "{e}");
        assert_eq!(crate::Problem::from(e).code, crate::ErrorCode::ServiceUnavailable);
        let wrong = super::DbError::Query(diesel::result::Error::NotFound);
        assert!(!wrong.is_unavailable());
        assert_eq!(crate::Problem::from(wrong).code, crate::ErrorCode::Internal);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_starting_together_each_migrate_without_failing() {
        for backend in portico_testkit::backends() {
            let db = portico_testkit::TestDb::new(backend, "migrate_together");
            let starts = (0..6).map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    super::Db::connect(&url, crate::outbox::MIGRATIONS, 2)
                        .await
                        .map(|d| d.close())
                })
            });
            for started in futures_util::future::join_all(starts).await {
                let started = started
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                assert!(started.is_ok(), "{backend:?}: {started:?}");
            }
        }
    }
}

//! Real parts for tests: a fresh database per test on SQLite and (when
//! `PORTICO_TEST_PG_URL` is set) PostgreSQL, private `redis-server`s on ephemeral ports, and
//! free ports. Nothing here is a mock.

use std::{
    net::TcpListener as StdListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use diesel::{Connection, PgConnection, RunQueryDsl};

pub mod http;
pub mod otlp;
mod smtp;

pub use smtp::{Received, SmtpSink};

/// Runs a test body once per configured database backend (`backends()`), each with its
/// own fresh state; the caller depends on tokio.
#[macro_export]
macro_rules! each_backend {
    ($name:ident, |$backend:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for $backend in $crate::backends() {
                let run = async { $body };
                run.await;
                eprintln!("{} passed on {:?}", stringify!($name), $backend);
            }
        }
    };
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server named by `PORTICO_TEST_PG_URL`.
    Postgres,
}

/// The backends to run storage tests on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if pg_url().is_some() {
        b.push(Backend::Postgres);
    }
    b
}

fn pg_url() -> Option<String> {
    std::env::var("PORTICO_TEST_PG_URL").ok().filter(|s| !s.is_empty())
}

/// The Redis URL for tests that want the shared server (`PORTICO_TEST_REDIS_URL`).
pub fn redis_url() -> Option<String> {
    std::env::var("PORTICO_TEST_REDIS_URL").ok().filter(|s| !s.is_empty())
}

/// A database created for one test and dropped with it.
pub struct TestDb {
    /// URL to hand to the code under test.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Pg { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh, empty database on `backend`.
    pub fn new(backend: Backend, label: &str) -> TestDb {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("portico-test-{label}-{id}"));
                let _ = std::fs::create_dir_all(&dir);
                TestDb {
                    url: format!("sqlite://{}", dir.join("test.db").display()),
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = pg_url().unwrap_or_else(|| panic!("PORTICO_TEST_PG_URL is not set"));
                let name = format!("portico_test_{}_{}", label.replace('-', "_"), &id[..12]);
                let mut conn = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach PORTICO_TEST_PG_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("create test database: {e}"));
                let url = replace_db_name(&admin_url, &name);
                TestDb {
                    url,
                    cleanup: Cleanup::Pg { admin_url, name },
                }
            }
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Pg { admin_url, name } => {
                if let Ok(mut conn) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
                }
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A port on 127.0.0.1 where every connection is refused, for as long as this value lives.
/// The socket is bound but never listens, so no other test's server can be handed the same
/// port by the kernel (which [`free_port`] cannot promise once its listener is closed).
pub struct DeadPort {
    /// The port.
    pub port: u16,
    _socket: socket2::Socket,
}

impl DeadPort {
    /// Reserves one.
    pub fn new() -> Self {
        let reserve = || -> std::io::Result<(socket2::Socket, u16)> {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
            let port = socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .ok_or_else(|| std::io::Error::other("not an inet socket"))?;
            Ok((socket, port))
        };
        let (socket, port) = reserve().unwrap_or_else(|e| panic!("no port to reserve: {e}"));
        Self { port, _socket: socket }
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Default for DeadPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A `redis-server` of the test's own on an ephemeral port; killed on drop. Never the
/// machine's shared server, so tests may stop and restart it.
pub struct TestRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// Starts a server and waits until it answers.
    pub fn start() -> TestRedis {
        let port = free_port();
        let mut r = TestRedis { port, child: None };
        r.restart();
        r
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (connections drop at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server (is it installed?): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_keeping_credentials_and_query() {
        assert_eq!(
            replace_db_name("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(
            replace_db_name("postgres://h/db?sslmode=disable", "t2"),
            "postgres://h/t2?sslmode=disable"
        );
        assert_eq!(replace_db_name("postgres://h", "t3"), "postgres://h/t3");
    }
}

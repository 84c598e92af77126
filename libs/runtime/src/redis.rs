//! A shared Redis connection pool that degrades instead of failing.
//!
//! Every call is bounded by a short timeout; after a failure the pool is considered down for a
//! backoff period (growing to a cap) during which callers skip Redis entirely and use their
//! local fallback. The first success after an outage logs the recovery.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_redis::{Config, Connection, Runtime};

const MIN_BACKOFF_MS: u64 = 250;
const MAX_BACKOFF_MS: u64 = 5_000;

/// A Redis pool plus its health state; cheap to clone.
#[derive(Clone)]
pub struct SharedRedis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: deadpool_redis::Pool,
    url: String,
    prefix: String,
    timeout: Duration,
    base: Instant,
    down_until_ms: AtomicU64,
    backoff_ms: AtomicU64,
    down: AtomicBool,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis").field("up", &self.is_up()).finish()
    }
}

impl SharedRedis {
    /// A pool for `url` (not connected until first use); every key this process writes starts
    /// with `prefix`, so several deployments (or test runs) can share one server.
    pub fn new(url: &str, timeout: Duration, prefix: &str) -> Result<Self, String> {
        let mut cfg = Config::from_url(url);
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: 64,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..Default::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(|e| e.to_string())?;
        Ok(SharedRedis {
            inner: Arc::new(Inner {
                pool,
                url: url.to_string(),
                prefix: prefix.to_string(),
                timeout,
                base: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                backoff_ms: AtomicU64::new(MIN_BACKOFF_MS),
                down: AtomicBool::new(false),
            }),
        })
    }

    /// The key prefix of this deployment.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A dedicated subscriber connection (pub/sub cannot share the pool's connections).
    pub async fn subscriber(&self) -> redis::RedisResult<redis::aio::PubSub> {
        redis::Client::open(self.inner.url.as_str())?.get_async_pubsub().await
    }

    /// The underlying pool, for callers with their own fallback logic.
    pub fn pool(&self) -> &deadpool_redis::Pool {
        &self.inner.pool
    }

    /// Whether calls currently go to Redis (false during a backoff after a failure).
    pub fn is_up(&self) -> bool {
        self.elapsed_ms() >= self.inner.down_until_ms.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on a pooled connection within the timeout. `None` means Redis is down or
    /// failed: the caller falls back; the failure is already logged and counted.
    pub async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        let attempt = async {
            let conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
            f(conn).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(value)) => {
                self.mark_up();
                Some(value)
            }
            Ok(Err(e)) => {
                self.mark_down(op, &e);
                None
            }
            Err(_) => {
                self.mark_down(op, "timed out");
                None
            }
        }
    }

    /// Pings Redis now, ignoring any backoff (health checks).
    pub async fn ping(&self) -> Result<(), String> {
        let attempt = async {
            let mut conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timed out".to_string()),
        }
    }

    fn mark_up(&self) {
        if self.inner.down.swap(false, Ordering::Relaxed) {
            tracing::info!("redis reachable again; shared state resumed");
        }
        self.inner.backoff_ms.store(MIN_BACKOFF_MS, Ordering::Relaxed);
    }

    fn mark_down(&self, op: &'static str, error: &str) {
        let backoff = self.inner.backoff_ms.load(Ordering::Relaxed);
        self.inner
            .backoff_ms
            .store((backoff * 2).min(MAX_BACKOFF_MS), Ordering::Relaxed);
        self.inner
            .down_until_ms
            .store(self.elapsed_ms() + backoff, Ordering::Relaxed);
        metrics::counter!("portico_redis_failures_total", "op" => op).increment(1);
        if !self.inner.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(op, error, "redis unreachable; falling back to local state");
        }
    }
}

//! GCRA rate limiting shared across gateway replicas through Redis, with a local fallback.
//!
//! Redis holds one theoretical arrival time (TAT) per key so that every replica sees the same
//! bucket. Redis being down or slow must never fail a request, so each Redis call is bounded by
//! a short timeout and any failure turns into a local (per-replica) decision made by `governor`.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use governor::DefaultKeyedRateLimiter;
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;

/// Counter of Redis calls that failed or timed out and were answered locally instead.
pub const METRIC_REDIS_FALLBACK: &str = "portico_ratelimit_redis_fallback_total";
/// Counter of denied requests, labelled by `source` (`redis` or `local`).
pub const METRIC_REJECTIONS: &str = "portico_ratelimit_rejections_total";

/// Sweeping idle keys walks the whole map, so it is amortised over this many calls per quota.
const RETAIN_EVERY: u64 = 4096;

/// GCRA in one round trip; the server's own clock is used so replicas with skewed clocks agree.
///
/// KEYS[1] = bucket key, ARGV[1] = emission interval T (µs), ARGV[2] = tolerance tau = T * limit (µs).
/// Returns {allowed, remaining, reset_us, retry_after_us}.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local allow_at = tat + t - tau
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + t
-- %d because Lua would print a 16-digit microsecond timestamp as a lossy %.14g float.
redis.call('SET', KEYS[1], string.format('%d', new_tat),
  'PX', string.format('%d', math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now + tau - new_tat) / t), new_tat - now, 0}
";

/// A limit: `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window, which is also the burst size.
    pub limit: u32,
    /// Time over which `limit` requests replenish.
    pub window: std::time::Duration,
}

impl Quota {
    /// `limit` requests per minute, the gateway's usual window.
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(60),
        }
    }
}

/// Outcome of one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The quota's limit, for the RateLimit-Policy header.
    pub limit: u32,
    /// Requests still allowed right now after this one (0 when denied).
    pub remaining: u32,
    /// Seconds until the quota is fully replenished (for the RateLimit header's `t`), rounded up.
    pub reset_secs: u64,
    /// When denied: seconds until one request is allowed again (for Retry-After), rounded up, >= 1.
    pub retry_after_secs: u64,
    /// Which store decided.
    pub source: Source,
}

impl Decision {
    /// A refusal made without consulting a store (a client already known to be over its
    /// budget), for `wait` more.
    pub fn denied(limit: u32, wait: Duration) -> Self {
        let secs = ceil_secs(wait).max(1);
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_secs: secs,
            retry_after_secs: secs,
            source: Source::Local,
        }
    }
}

/// The store that made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The shared Redis bucket.
    Redis,
    /// This replica's in-memory bucket.
    Local,
}

impl Source {
    /// Metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Redis => "redis",
            Source::Local => "local",
        }
    }
}

/// Tuning of the Redis path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Upper bound on one Redis decision (pool checkout plus script) before falling back.
    pub timeout: Duration,
    /// How long Redis is skipped after the first failure of an outage.
    pub backoff_initial: Duration,
    /// Cap on the doubling backoff while Redis keeps failing.
    pub backoff_max: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Rate limiter deciding through Redis when it is healthy and locally otherwise; cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    local: Local,
    redis: Option<RedisBackend>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("redis", &self.inner.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Local only (no Redis configured).
    pub fn local() -> Self {
        Self {
            inner: Arc::new(Inner {
                local: Local::new(),
                redis: None,
            }),
        }
    }

    /// Redis-backed with local fallback. `key_prefix` namespaces keys, e.g. "portico:rl:".
    pub fn with_redis(pool: deadpool_redis::Pool, key_prefix: impl Into<String>) -> Self {
        Self::with_redis_options(pool, key_prefix, RedisOptions::default())
    }

    /// Redis-backed with local fallback and explicit timeout/backoff.
    pub fn with_redis_options(
        pool: deadpool_redis::Pool,
        key_prefix: impl Into<String>,
        options: RedisOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: Local::new(),
                redis: Some(RedisBackend {
                    pool,
                    prefix: key_prefix.into(),
                    script: redis::Script::new(GCRA_SCRIPT),
                    timeout: options.timeout,
                    health: Health::new(options),
                }),
            }),
        }
    }

    /// Decide for `key` under `quota`, consuming one cell if allowed.
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        let Some(redis) = &self.inner.redis else {
            return self.check_local(key, quota);
        };
        if quota.limit == 0 {
            return self.check_local(key, quota);
        }
        let probe = match redis.health.admit() {
            Admit::Healthy => false,
            Admit::Probe => true,
            Admit::Down => return self.check_local(key, quota),
        };
        match tokio::time::timeout(redis.timeout, redis.decide(key, quota)).await {
            Ok(Ok(decision)) => {
                if probe {
                    redis.health.recovered();
                }
                count_rejection(&decision);
                decision
            }
            Ok(Err(err)) => {
                redis.health.failed(probe, &err);
                self.check_local(key, quota)
            }
            Err(_elapsed) => {
                redis.health.failed(probe, &RedisFailure::Timeout(redis.timeout));
                self.check_local(key, quota)
            }
        }
    }

    /// The local decision alone (also used as fallback); must be fast (< 2 µs), no allocation on the hot path where avoidable.
    pub fn check_local(&self, key: &str, quota: Quota) -> Decision {
        let decision = self.inner.local.check(key, quota);
        count_rejection(&decision);
        decision
    }
}

fn count_rejection(decision: &Decision) {
    if !decision.allowed {
        metrics::counter!(METRIC_REJECTIONS, "source" => decision.source.as_str()).increment(1);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

fn ceil_secs_from_micros(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// A zero limit admits nothing; no store is consulted for it.
fn deny_all(quota: Quota) -> Decision {
    let wait = ceil_secs(quota.window);
    Decision {
        allowed: false,
        limit: 0,
        remaining: 0,
        reset_secs: wait,
        retry_after_secs: wait.max(1),
        source: Source::Local,
    }
}

type KeyedLimiter = DefaultKeyedRateLimiter<u64, StateInformationMiddleware>;

/// In-memory buckets, one governor limiter per distinct quota.
struct Local {
    /// Keys are stored as seeded 64-bit hashes so a lookup never allocates an owned key;
    /// the random seed keeps clients from crafting colliding keys.
    hasher: RandomState,
    /// Quotas are few (one per tier), so a linear scan under a read lock beats a map.
    buckets: RwLock<Vec<LocalBucket>>,
}

struct LocalBucket {
    quota: Quota,
    limit: NonZeroU32,
    interval: Duration,
    limiter: KeyedLimiter,
    calls: AtomicU64,
}

impl Local {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            buckets: RwLock::new(Vec::new()),
        }
    }

    fn check(&self, key: &str, quota: Quota) -> Decision {
        let Some(limit) = NonZeroU32::new(quota.limit) else {
            return deny_all(quota);
        };
        let hash = self.hasher.hash_one(key);
        {
            let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(bucket) = buckets.iter().find(|b| b.quota == quota) {
                return bucket.check(hash);
            }
        }
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have created it between dropping the read lock and getting this one.
        if let Some(bucket) = buckets.iter().find(|b| b.quota == quota) {
            return bucket.check(hash);
        }
        let bucket = LocalBucket::new(quota, limit);
        let decision = bucket.check(hash);
        buckets.push(bucket);
        decision
    }
}

impl LocalBucket {
    fn new(quota: Quota, limit: NonZeroU32) -> Self {
        // governor rejects a zero period; a sub-nanosecond interval means "practically unlimited".
        let interval = (quota.window / limit.get()).max(Duration::from_nanos(1));
        let gq = governor::Quota::with_period(interval)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
            .allow_burst(limit);
        Self {
            quota,
            limit,
            interval,
            limiter: DefaultKeyedRateLimiter::<u64>::keyed(gq).with_middleware::<StateInformationMiddleware>(),
            calls: AtomicU64::new(0),
        }
    }

    fn check(&self, hash: u64) -> Decision {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        if calls % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let limit = self.limit.get();
        match self.limiter.check_key(&hash) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit);
                // governor hides the exact TAT; (limit - remaining) intervals bounds it from
                // above by less than one interval, so clients are never told to come back early.
                let reset = self.interval.saturating_mul(limit - remaining);
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_secs: ceil_secs(reset),
                    retry_after_secs: 0,
                    source: Source::Local,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                // The bucket is full once the earliest conforming time plus the whole burst tolerance passes.
                let reset = wait.saturating_add(self.interval.saturating_mul(limit - 1));
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_secs: ceil_secs(reset),
                    retry_after_secs: ceil_secs(wait).max(1),
                    source: Source::Local,
                }
            }
        }
    }
}

struct RedisBackend {
    pool: deadpool_redis::Pool,
    prefix: String,
    script: redis::Script,
    timeout: Duration,
    health: Health,
}

#[derive(Debug)]
enum RedisFailure {
    Pool(deadpool_redis::PoolError),
    Redis(redis::RedisError),
    Timeout(Duration),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisFailure::Pool(e) => write!(f, "connection pool: {e}"),
            RedisFailure::Redis(e) => write!(f, "redis: {e}"),
            RedisFailure::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
        }
    }
}

impl RedisBackend {
    async fn decide(&self, key: &str, quota: Quota) -> Result<Decision, RedisFailure> {
        let limit = quota.limit.max(1);
        // Limit and window are part of the key so that changing a tier's quota starts a fresh
        // bucket instead of reinterpreting a TAT computed with another interval.
        let redis_key = if quota.window.subsec_nanos() == 0 {
            format!("{}{key}:{limit}:{}", self.prefix, quota.window.as_secs())
        } else {
            format!("{}{key}:{limit}:{}ms", self.prefix, quota.window.as_millis())
        };
        let window_us = u64::try_from(quota.window.as_micros()).unwrap_or(u64::MAX);
        let interval_us = (window_us / u64::from(limit)).max(1);
        let tau_us = interval_us.saturating_mul(u64::from(limit));

        let mut conn = self.pool.get().await.map_err(RedisFailure::Pool)?;
        let (allowed, remaining, reset_us, retry_us): (i64, i64, i64, i64) = self
            .script
            .key(redis_key)
            .arg(interval_us)
            .arg(tau_us)
            .invoke_async(&mut conn)
            .await
            .map_err(RedisFailure::Redis)?;

        let allowed = allowed == 1;
        let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Decision {
            allowed,
            limit,
            remaining: if allowed {
                u32::try_from(remaining).unwrap_or(0).min(limit)
            } else {
                0
            },
            reset_secs: ceil_secs_from_micros(to_u64(reset_us)),
            retry_after_secs: if allowed {
                0
            } else {
                ceil_secs_from_micros(to_u64(retry_us)).max(1)
            },
            source: Source::Redis,
        })
    }
}

enum Admit {
    /// Redis is believed up: use it.
    Healthy,
    /// Backoff elapsed and this caller won the right to test Redis.
    Probe,
    /// Within backoff, or another caller is probing: decide locally.
    Down,
}

/// Redis availability, lock-free so the hot path never waits on a mutex.
struct Health {
    base: Instant,
    /// Milliseconds since `base` before which Redis is skipped; 0 means healthy.
    down_until_ms: AtomicU64,
    backoff_ms: AtomicU64,
    initial_ms: u64,
    max_ms: u64,
    /// Long enough that a second probe does not start while the first is still in flight.
    probe_hold_ms: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Health {
    fn new(options: RedisOptions) -> Self {
        let initial_ms = millis(options.backoff_initial).max(1);
        Self {
            base: Instant::now(),
            down_until_ms: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(initial_ms),
            initial_ms,
            max_ms: millis(options.backoff_max).max(initial_ms),
            probe_hold_ms: millis(options.timeout).saturating_add(1),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.base.elapsed())
    }

    fn admit(&self) -> Admit {
        let until = self.down_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Healthy;
        }
        let now = self.now_ms();
        if now < until {
            return Admit::Down;
        }
        // Only one caller probes; the rest stay local instead of piling onto a dead server.
        let hold = now.saturating_add(self.probe_hold_ms).max(1);
        match self
            .down_until_ms
            .compare_exchange(until, hold, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Down,
        }
    }

    fn failed(&self, probe: bool, err: &RedisFailure) {
        metrics::counter!(METRIC_REDIS_FALLBACK).increment(1);
        let backoff = self.backoff_ms.load(Ordering::Relaxed);
        let until = self.now_ms().saturating_add(backoff).max(1);
        let next_backoff = backoff.saturating_mul(2).min(self.max_ms);
        if probe {
            self.down_until_ms.store(until, Ordering::Release);
            self.backoff_ms.store(next_backoff, Ordering::Relaxed);
            tracing::debug!(error = %err, backoff_ms = backoff, "rate limit: Redis still unavailable");
        } else if self
            .down_until_ms
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Only the caller that flips healthy -> down logs, so an outage warns once
            // however many requests were in flight when it began.
            self.backoff_ms.store(next_backoff, Ordering::Relaxed);
            tracing::warn!(
                error = %err,
                backoff_ms = backoff,
                "rate limit: Redis unavailable, deciding locally until it recovers"
            );
        }
    }

    fn recovered(&self) {
        self.backoff_ms.store(self.initial_ms, Ordering::Relaxed);
        self.down_until_ms.store(0, Ordering::Release);
        tracing::info!("rate limit: Redis reachable again, shared limits restored");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};

    fn quota(limit: u32, window_ms: u64) -> Quota {
        Quota {
            limit,
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn limiter_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<RateLimiter>();
    }

    #[test]
    fn local_burst_counts_down_then_denies() {
        let rl = RateLimiter::local();
        let q = Quota::per_minute(5);
        for expected in (0..5).rev() {
            let d = rl.check_local("user:a", q);
            assert!(d.allowed);
            assert_eq!(d.source, Source::Local);
            assert_eq!(d.limit, 5);
            assert_eq!(d.remaining, expected);
            assert_eq!(d.retry_after_secs, 0);
        }
        let denied = rl.check_local("user:a", q);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // One cell every 12 s.
        assert!((11..=12).contains(&denied.retry_after_secs), "{denied:?}");
        assert!((59..=60).contains(&denied.reset_secs), "{denied:?}");
    }

    #[test]
    fn local_first_request_resets_in_one_interval() {
        let rl = RateLimiter::local();
        let d = rl.check_local("ip:1.2.3.4", Quota::per_minute(60));
        assert!(d.allowed);
        assert_eq!(d.remaining, 59);
        assert_eq!(d.reset_secs, 1);
    }

    #[test]
    fn local_keys_are_independent() {
        let rl = RateLimiter::local();
        let q = Quota::per_minute(2);
        assert!(rl.check_local("user:a", q).allowed);
        assert!(rl.check_local("user:a", q).allowed);
        assert!(!rl.check_local("user:a", q).allowed);
        let b = rl.check_local("user:b", q);
        assert!(b.allowed);
        assert_eq!(b.remaining, 1);
    }

    #[test]
    fn local_quotas_are_independent() {
        let rl = RateLimiter::local();
        let small = Quota::per_minute(1);
        let big = Quota::per_minute(3);
        assert!(rl.check_local("user:a", small).allowed);
        assert!(!rl.check_local("user:a", small).allowed);
        let d = rl.check_local("user:a", big);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn local_zero_limit_denies() {
        let rl = RateLimiter::local();
        let d = rl.check_local("user:a", Quota::per_minute(0));
        assert!(!d.allowed);
        assert!(d.retry_after_secs >= 1);
    }

    #[test]
    fn local_replenishes_after_one_interval() {
        let rl = RateLimiter::local();
        let q = quota(10, 1000);
        for _ in 0..10 {
            assert!(rl.check_local("k", q).allowed);
        }
        let denied = rl.check_local("k", q);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs, 1);
        std::thread::sleep(Duration::from_millis(110));
        let again = rl.check_local("k", q);
        assert!(again.allowed, "{again:?}");
        assert_eq!(again.remaining, 0);
        assert!(!rl.check_local("k", q).allowed);
    }

    #[test]
    fn local_idle_keys_are_swept() {
        let rl = RateLimiter::local();
        let q = quota(1, 10);
        for i in 0..100 {
            rl.check_local(&format!("ip:10.0.0.{i}"), q);
        }
        let len = |rl: &RateLimiter| {
            let buckets = rl.inner.local.buckets.read().unwrap();
            buckets[0].limiter.len()
        };
        assert_eq!(len(&rl), 100);
        std::thread::sleep(Duration::from_millis(30));
        for _ in 0..RETAIN_EVERY {
            rl.check_local("hot", q);
        }
        assert!(len(&rl) <= 2, "{} keys kept", len(&rl));
    }

    /// A redis-server owned by the test, killed on drop.
    struct RedisServer {
        child: Option<Child>,
        port: u16,
    }

    impl RedisServer {
        fn start() -> Self {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            Self::start_on(port)
        }

        fn start_on(port: u16) -> Self {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let server = Self {
                child: Some(child),
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !server.answers_ping() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn answers_ping(&self) -> bool {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 7];
            s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
        }

        fn pool(&self) -> deadpool_redis::Pool {
            deadpool_redis::Config::from_url(format!("redis://127.0.0.1:{}", self.port))
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .unwrap()
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// Generous timeout: the machine may be busy and these tests are about Redis semantics.
    fn patient() -> RedisOptions {
        RedisOptions {
            timeout: Duration::from_secs(2),
            ..RedisOptions::default()
        }
    }

    #[tokio::test]
    async fn redis_admits_exactly_limit() {
        let server = RedisServer::start();
        let rl = RateLimiter::with_redis_options(server.pool(), "t:", patient());
        let q = Quota::per_minute(10);
        for expected in (0..10).rev() {
            let d = rl.check("user:a", q).await;
            assert_eq!(d.source, Source::Redis);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected);
        }
        let denied = rl.check("user:a", q).await;
        assert_eq!(denied.source, Source::Redis);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert!((5..=6).contains(&denied.retry_after_secs), "{denied:?}");
        assert!((59..=60).contains(&denied.reset_secs), "{denied:?}");
        // Another key and another quota get their own buckets.
        assert!(rl.check("user:b", q).await.allowed);
        assert!(rl.check("user:a", Quota::per_minute(11)).await.allowed);
    }

    #[tokio::test]
    async fn redis_replenishes_after_one_interval() {
        let server = RedisServer::start();
        let rl = RateLimiter::with_redis_options(server.pool(), "t:", patient());
        let q = quota(10, 1000);
        for _ in 0..10 {
            assert!(rl.check("k", q).await.allowed);
        }
        assert!(!rl.check("k", q).await.allowed);
        tokio::time::sleep(Duration::from_millis(110)).await;
        let d = rl.check("k", q).await;
        assert_eq!(d.source, Source::Redis);
        assert!(d.allowed, "{d:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_one_bucket() {
        let server = RedisServer::start();
        let a = RateLimiter::with_redis_options(server.pool(), "t:", patient());
        let b = RateLimiter::with_redis_options(server.pool(), "t:", patient());
        let q = Quota::per_minute(20);
        let mut tasks = Vec::new();
        for rl in [a, b] {
            for _ in 0..50 {
                let rl = rl.clone();
                tasks.push(tokio::spawn(async move { rl.check("user:shared", q).await }));
            }
        }
        let mut allowed = 0;
        for t in tasks {
            let d = t.await.unwrap();
            assert_eq!(d.source, Source::Redis);
            allowed += usize::from(d.allowed);
        }
        assert_eq!(allowed, 20);
    }

    #[tokio::test]
    async fn outage_falls_back_locally_and_recovers() {
        let mut server = RedisServer::start();
        let port = server.port;
        let options = RedisOptions {
            timeout: Duration::from_millis(300),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
        };
        let rl = RateLimiter::with_redis_options(server.pool(), "t:", options);
        let q = Quota::per_minute(3);
        assert_eq!(rl.check("user:a", q).await.source, Source::Redis);

        server.kill();
        let started = Instant::now();
        let mut allowed = 0;
        for _ in 0..10 {
            let d = rl.check("user:a", q).await;
            assert_eq!(d.source, Source::Local);
            allowed += u32::from(d.allowed);
        }
        // Only the first call may wait for Redis; the rest are local while backing off.
        assert!(started.elapsed() < Duration::from_millis(600));
        assert_eq!(allowed, 3, "local bucket enforces the same quota");

        let _server = RedisServer::start_on(port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = rl.check("user:b", q).await;
            if d.source == Source::Redis {
                break;
            }
            assert!(Instant::now() < deadline, "never went back to Redis");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rl.check("user:b", q).await.source, Source::Redis);
    }

    #[tokio::test]
    async fn unresponsive_redis_times_out_to_local() {
        // Accepts connections (kernel backlog) but never answers, like a hung server.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let pool = deadpool_redis::Config::from_url(format!("redis://127.0.0.1:{port}"))
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let rl = RateLimiter::with_redis(pool, "t:");
        let q = Quota::per_minute(5);

        let started = Instant::now();
        let d = rl.check("user:a", q).await;
        assert_eq!(d.source, Source::Local);
        assert!(d.allowed);
        assert!(started.elapsed() < Duration::from_millis(500));

        let started = Instant::now();
        let d = rl.check("user:a", q).await;
        assert_eq!(d.source, Source::Local);
        assert_eq!(d.remaining, 3);
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "marked down, so Redis is not tried"
        );
    }
}

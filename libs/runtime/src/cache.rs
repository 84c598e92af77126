//! Two-layer cache: an in-process L1 (moka) in front of a shared L2 (Redis) when configured.
//!
//! L1 entries live for a short TTL so replicas converge quickly after a change made elsewhere;
//! L2 holds entries for the longer shared TTL. When Redis fails, the cache keeps answering from
//! L1 and the loader: a cache outage costs latency, never a failed request.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::AsyncCommands;
use serde::{Serialize, de::DeserializeOwned};

use crate::redis::SharedRedis;

/// Hit and miss counters of one cache, per layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// The cache's name.
    pub name: String,
    /// Answers served from process memory.
    pub l1_hits: u64,
    /// L1 misses.
    pub l1_misses: u64,
    /// Entries in process memory.
    pub l1_size: u64,
    /// Answers served from Redis.
    pub l2_hits: u64,
    /// Redis misses.
    pub l2_misses: u64,
    /// Redis calls that failed (served without it).
    pub l2_errors: u64,
    /// Whether an L2 is configured.
    pub l2_enabled: bool,
    /// Answers computed by the loader.
    pub loads: u64,
}

impl From<CacheStats> for portico_proto::ops::v1::CacheStats {
    fn from(c: CacheStats) -> Self {
        portico_proto::ops::v1::CacheStats {
            name: c.name,
            l1_hits: c.l1_hits,
            l1_misses: c.l1_misses,
            l1_size: c.l1_size,
            l2_hits: c.l2_hits,
            l2_misses: c.l2_misses,
            l2_errors: c.l2_errors,
            l2_enabled: c.l2_enabled,
            loads: c.loads,
        }
    }
}

struct Counters {
    l1_hits: Tally,
    l1_misses: Tally,
    l2_hits: Tally,
    l2_misses: Tally,
    l2_errors: Tally,
    loads: Tally,
}

impl Counters {
    fn new(cache: &'static str) -> Self {
        // Handles taken before the recorder exists would count into nothing.
        crate::metrics::install();
        Counters {
            l1_hits: Tally::new(cache, "l1", "hit"),
            l1_misses: Tally::new(cache, "l1", "miss"),
            l2_hits: Tally::new(cache, "l2", "hit"),
            l2_misses: Tally::new(cache, "l2", "miss"),
            l2_errors: Tally::new(cache, "l2", "error"),
            loads: Tally::new(cache, "loader", "load"),
        }
    }
}

/// One outcome's count, kept for the stats endpoint and exported as
/// `portico_cache_requests_total` through a handle registered once (resolving the labels on
/// every lookup cost more than the lookup).
struct Tally {
    n: AtomicU64,
    metric: metrics::Counter,
}

impl Tally {
    fn new(cache: &'static str, layer: &'static str, result: &'static str) -> Self {
        Tally {
            n: AtomicU64::new(0),
            metric: metrics::counter!("portico_cache_requests_total", "cache" => cache, "layer" => layer, "result" => result),
        }
    }

    fn add(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
        self.metric.increment(1);
    }

    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

/// A named, typed cache. Clone it freely; clones share entries and counters.
#[derive(Clone)]
pub struct Cache<V> {
    name: &'static str,
    l1: moka::future::Cache<String, V>,
    l2: Option<SharedRedis>,
    ttl: Duration,
    counters: Arc<Counters>,
}

impl<V> Cache<V>
where
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A cache holding at most `capacity` entries in memory for `l1_ttl`, and in Redis for `ttl`.
    pub fn new(
        name: &'static str,
        capacity: u64,
        l1_ttl: Duration,
        ttl: Duration,
        l2: Option<SharedRedis>,
        registry: &CacheRegistry,
    ) -> Self {
        let l1 = moka::future::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(if l2.is_some() { l1_ttl } else { ttl })
            .build();
        let cache = Cache {
            name,
            l1,
            l2,
            ttl,
            counters: Arc::new(Counters::new(name)),
        };
        registry.register(Box::new(cache.clone()));
        cache
    }

    fn l2_key(&self, key: &str) -> String {
        let prefix = self.l2.as_ref().map(SharedRedis::prefix).unwrap_or_default();
        format!("{prefix}cache:{}:{key}", self.name)
    }

    /// The cached value, if any layer has it.
    pub async fn get(&self, key: &str) -> Option<V> {
        if let Some(v) = self.l1.get(key).await {
            self.counters.l1_hits.add();
            return Some(v);
        }
        self.counters.l1_misses.add();
        let l2 = self.l2.as_ref()?;
        let redis_key = self.l2_key(key);
        let raw: Option<Option<Vec<u8>>> = l2.run("cache_get", |mut c| async move { c.get(redis_key).await }).await;
        match raw {
            None => {
                self.counters.l2_errors.add();
                None
            }
            Some(None) => {
                self.counters.l2_misses.add();
                None
            }
            Some(Some(bytes)) => match serde_json::from_slice::<V>(&bytes) {
                Ok(v) => {
                    self.counters.l2_hits.add();
                    self.l1.insert(key.to_string(), v.clone()).await;
                    Some(v)
                }
                Err(_) => {
                    self.counters.l2_misses.add();
                    None
                }
            },
        }
    }

    /// Stores a value in both layers.
    pub async fn set(&self, key: &str, value: V) {
        if let Some(l2) = &self.l2
            && let Ok(bytes) = serde_json::to_vec(&value)
        {
            let redis_key = self.l2_key(key);
            let ttl = self.ttl.as_secs().max(1);
            if l2
                .run("cache_set", |mut c| async move {
                    c.set_ex::<_, _, ()>(redis_key, bytes, ttl).await
                })
                .await
                .is_none()
            {
                self.counters.l2_errors.add();
            }
        }
        self.l1.insert(key.to_string(), value).await;
    }

    /// Drops a key from both layers (after the underlying data changed) and tells the other
    /// processes sharing the Redis to drop their in-memory copy too.
    pub async fn invalidate(&self, key: &str) {
        self.l1.invalidate(key).await;
        if let Some(l2) = &self.l2 {
            let redis_key = self.l2_key(key);
            let channel = invalidation_channel(l2);
            let message = format!("{}\n{key}", self.name);
            let done = l2
                .run("cache_del", |mut c| async move {
                    c.del::<_, ()>(redis_key).await?;
                    c.publish::<_, _, ()>(channel, message).await
                })
                .await;
            if done.is_none() {
                self.counters.l2_errors.add();
            }
        }
    }

    /// The cached value, or the loader's answer (then cached). Loader errors are not cached.
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.get(key).await {
            return Ok(v);
        }
        self.counters.loads.add();
        let v = load().await?;
        self.set(key, v.clone()).await;
        Ok(v)
    }
}

fn invalidation_channel(redis: &SharedRedis) -> String {
    format!("{}cache:invalidate", redis.prefix())
}

/// Anything the registry can report on and invalidate.
trait StatsSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn stats(&self) -> CacheStats;
    fn drop_local(&self, key: &str);
}

impl<V> StatsSource for Cache<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn drop_local(&self, key: &str) {
        // The sync API avoids needing a runtime handle in the subscriber's callback.
        let l1 = self.l1.clone();
        let key = key.to_string();
        tokio::spawn(async move { l1.invalidate(&key).await });
    }

    fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            name: self.name.to_string(),
            l1_hits: c.l1_hits.get(),
            l1_misses: c.l1_misses.get(),
            l1_size: self.l1.entry_count(),
            l2_hits: c.l2_hits.get(),
            l2_misses: c.l2_misses.get(),
            l2_errors: c.l2_errors.get(),
            l2_enabled: self.l2.is_some(),
            loads: c.loads.get(),
        }
    }
}

/// Every cache of a process, for `/internal/cache-stats`.
#[derive(Clone, Default)]
pub struct CacheRegistry {
    caches: Arc<Mutex<Vec<Box<dyn StatsSource>>>>,
}

impl CacheRegistry {
    fn register(&self, cache: Box<dyn StatsSource>) {
        if let Ok(mut caches) = self.caches.lock() {
            caches.push(cache);
        }
    }

    /// Stats of every registered cache.
    pub fn stats(&self) -> Vec<CacheStats> {
        self.caches
            .lock()
            .map(|c| c.iter().map(|s| s.stats()).collect())
            .unwrap_or_default()
    }

    fn drop_local(&self, name: &str, key: &str) {
        if let Ok(caches) = self.caches.lock() {
            for cache in caches.iter().filter(|c| c.name() == name) {
                cache.drop_local(key);
            }
        }
    }

    /// Listens for invalidations published by other processes and drops their keys from this
    /// process's memory, until `stop`. Reconnects with backoff when Redis is unreachable; in
    /// the meantime the short L1 lifetime bounds staleness.
    pub fn follow_invalidations(&self, redis: SharedRedis, stop: tokio_util::sync::CancellationToken) {
        let registry = self.clone();
        tokio::spawn(async move {
            let channel = invalidation_channel(&redis);
            let mut backoff = std::time::Duration::from_millis(250);
            loop {
                let subscribed = async {
                    let mut pubsub = redis.subscriber().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                let pubsub = tokio::select! {
                    _ = stop.cancelled() => return,
                    p = subscribed => p,
                };
                match pubsub {
                    Ok(pubsub) => {
                        backoff = std::time::Duration::from_millis(250);
                        let mut messages = pubsub.into_on_message();
                        loop {
                            let msg = tokio::select! {
                                _ = stop.cancelled() => return,
                                m = futures_util::StreamExt::next(&mut messages) => m,
                            };
                            let Some(msg) = msg else { break };
                            if let Ok(payload) = msg.get_payload::<String>()
                                && let Some((name, key)) = payload.split_once('\n')
                            {
                                registry.drop_local(name, key);
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cache invalidation subscriber: redis unreachable"),
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
        });
    }
}

/// How a service's caches are set up: lifetimes from the common config, Redis when configured.
#[derive(Clone)]
pub struct CacheSettings {
    /// In-process lifetime.
    pub l1_ttl: Duration,
    /// Shared lifetime.
    pub ttl: Duration,
    /// Shared layer, when configured.
    pub redis: Option<SharedRedis>,
}

impl CacheSettings {
    /// Settings from the common config and its Redis connection.
    pub fn new(common: &crate::config::CommonConfig, redis: Option<SharedRedis>) -> Self {
        CacheSettings {
            l1_ttl: common.cache_l1_ttl,
            ttl: common.cache_ttl,
            redis,
        }
    }
}

//! Micro-benchmarks of the gateway's per-request work, each beside a baseline measured in the
//! same run: `cargo bench -p portico-gateway --bench gateway`.
//!
//! - JWT verification vs the bare Ed25519 signature check it contains.
//! - Local rate-limit decision vs governor's own keyed check.
//! - Redis rate-limit decision vs one Redis PING round trip (private redis-server).
//! - The success envelope vs serialising the bare data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, num::NonZeroU32, time::Duration};

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use criterion::{Criterion, criterion_group, criterion_main};
use portico_gateway::{
    auth::crypto::{KeyRing, SigningKey},
    envelope,
    ratelimit::{Quota, RateLimiter},
};
use serde_json::json;

fn jwt(c: &mut Criterion) {
    let key = SigningKey::generate().unwrap();
    let public = *key.public_key();
    let ring = KeyRing::new(key, vec![], "portico", "portico-api").unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = ring.new_claims("0190f1f0-0000-7000-8000-000000000000", "sid", "user", "free", now, 900);
    let token = ring.sign(&claims).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature).unwrap();
    let verifier = UnparsedPublicKey::new(&ED25519, public);
    let mut g = c.benchmark_group("jwt");
    g.bench_function("baseline_ed25519_verify", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(signing_input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    g.bench_function("keyring_verify", |b| {
        b.iter(|| ring.verify(black_box(&token), now).unwrap())
    });
    g.finish();
}

fn ratelimit_local(c: &mut Criterion) {
    let limiter = RateLimiter::local();
    let quota = Quota {
        limit: u32::MAX / 2,
        window: Duration::from_secs(60),
    };
    let keys: Vec<String> = (0..1000).map(|i| format!("u:{i:08}")).collect();
    let governor = governor::RateLimiter::keyed(governor::Quota::per_minute(NonZeroU32::new(u32::MAX / 2).unwrap()));
    let mut g = c.benchmark_group("ratelimit_local");
    let mut i = 0usize;
    g.bench_function("baseline_governor_keyed", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let _ = governor.check_key(black_box(&keys[i]));
        })
    });
    g.bench_function("decision", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check_local(black_box(&keys[i]), quota));
        })
    });
    g.finish();
}

fn ratelimit_redis(c: &mut Criterion) {
    let redis = portico_testkit::TestRedis::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = deadpool_redis::Config::from_url(redis.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let limiter = RateLimiter::with_redis(pool.clone(), "bench:rl:");
    let quota = Quota {
        limit: u32::MAX / 2,
        window: Duration::from_secs(60),
    };
    let mut g = c.benchmark_group("ratelimit_redis");
    g.bench_function("baseline_ping_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = pool.get().await.unwrap();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        })
    });
    g.bench_function("decision", |b| {
        b.to_async(&rt).iter(|| async {
            let d = limiter.check("u:bench", quota).await;
            assert_eq!(d.source, portico_gateway::ratelimit::Source::Redis);
        })
    });
    g.finish();
}

fn envelope_bench(c: &mut Criterion) {
    let data = json!({
        "accessLevel": "PREMIUM",
        "features": {"advanced_filters": false, "api_access": false, "batch_processing": true, "early_effects": true, "hd_export": true},
        "joinedAt": "2026-11-22T00:12:59.235Z",
    });
    let mut g = c.benchmark_group("envelope");
    g.bench_function("baseline_serialize_data", |b| {
        b.iter(|| serde_json::to_vec(black_box(&data)).unwrap())
    });
    g.bench_function("success_envelope", |b| b.iter(|| envelope::ok(black_box(&data))));
    g.finish();
}

criterion_group!(benches, jwt, ratelimit_local, ratelimit_redis, envelope_bench);
criterion_main!(benches);

//! Rate tiers: headers, 429s, shared state across replicas, and Redis outages.

use std::time::{Duration, Instant};

use portico_testkit::{Backend, TestRedis};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Options, Stack};

#[tokio::test]
async fn free_callers_get_headers_a_429_and_an_upgrade_prompt() {
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_FREE_PER_MIN", "5")).await;
    let (token, _, _) = s.signup("free@example.com").await;
    let first = s.get("/v1/beta/user-access", Some(&token)).await;
    assert_eq!(first.header("ratelimit-policy"), Some("\"free\";q=5;w=60"));
    assert!(
        first
            .header("ratelimit")
            .is_some_and(|v| v.starts_with("\"free\";r=4;t=")),
        "{:?}",
        first.header("ratelimit")
    );
    for _ in 0..4 {
        assert_eq!(s.get("/v1/beta/user-access", Some(&token)).await.status, StatusCode::OK);
    }
    let limited = s.get("/v1/beta/user-access", Some(&token)).await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "retry-after {retry}");
    assert_eq!(limited.body["error"]["details"]["upgrade"]["plan"], "pro");
    assert!(limited.header("ratelimit").is_some_and(|v| v.contains("r=0")));
}

#[tokio::test]
async fn anonymous_callers_are_limited_per_ip_and_paid_tiers_get_more() {
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .var("PORTICO_RATE_ANON_PER_MIN", "3")
            .var("PORTICO_RATE_FREE_PER_MIN", "3")
            .var("PORTICO_RATE_PRO_PER_MIN", "6"),
    )
    .await;
    // Signing up is itself anonymous and limited: do it first.
    let (user, _, user_id) = s.signup("pro@example.com").await;
    let (admin, _, _) = s.signup(crate::support::ADMIN).await;
    s.grant(crate::support::ADMIN).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(
            s.post("/v1/beta/validate-invite", None, json!({"code": "COSNAPBETA2025"}))
                .await
                .status,
        );
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let limited = s
        .post("/v1/beta/validate-invite", None, json!({"code": "COSNAPBETA2025"}))
        .await;
    assert!(
        limited.body["error"]["details"].get("upgrade").is_none(),
        "anonymous callers get no upgrade prompt"
    );

    let set = s
        .send(
            reqwest::Method::PUT,
            &format!("/v1/admin/users/{user_id}/tier"),
            Some(&admin),
            Some(json!({"tier": "pro"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let r = s.get("/v1/beta/user-access", Some(&user)).await;
    assert_eq!(r.header("ratelimit-policy"), Some("\"pro\";q=6;w=60"));
    let mut ok = 1;
    for _ in 0..10 {
        if s.get("/v1/beta/user-access", Some(&user)).await.status == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 6, "a pro caller gets the pro limit");
}

#[tokio::test]
async fn two_gateways_sharing_redis_admit_no_more_than_the_limit() {
    let redis = TestRedis::start();
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .gateways(2)
            .var("PORTICO_REDIS_URL", redis.url())
            .var("PORTICO_RATE_FREE_PER_MIN", "20"),
    )
    .await;
    let (token, _, _) = s.signup("shared@example.com").await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (http, url, token) = (s.http.clone(), s.url_on(i % 2, "/v1/beta/user-access"), token.clone());
        tasks.push(tokio::spawn(async move {
            http.get(url).bearer_auth(token).send().await.unwrap().status()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            admitted += 1;
        }
    }
    // One cell replenishes every 3 s; allow for those that elapsed during the burst.
    let replenished = (started.elapsed().as_secs() / 3) as usize;
    assert!(
        (20..=20 + replenished).contains(&admitted),
        "admitted {admitted} of 60 across two replicas"
    );
}

#[tokio::test]
async fn requests_keep_succeeding_when_redis_dies_and_use_it_again_when_it_returns() {
    let mut redis = TestRedis::start();
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .var("PORTICO_REDIS_URL", redis.url())
            .beta_var("PORTICO_REDIS_URL", redis.url())
            .var("PORTICO_RATE_FREE_PER_MIN", "1000"),
    )
    .await;
    let (token, _, _) = s.signup("resilient@example.com").await;
    let keys = |port: u16| -> usize {
        let client = redis_client(port);
        client.map(|mut c| redis_keys(&mut c)).unwrap_or(0)
    };
    assert_eq!(s.get("/v1/beta/user-access", Some(&token)).await.status, StatusCode::OK);
    assert!(keys(redis.port) > 0, "rate-limit and cache state lives in Redis");

    redis.stop();
    for _ in 0..20 {
        let r = s.get("/v1/beta/user-access", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert!(r.header("ratelimit").is_some());
    }
    assert_eq!(
        s.post("/v1/beta/join", Some(&token), json!({"code": "COSNAPBETA2025"}))
            .await
            .status,
        StatusCode::OK
    );

    redis.restart();
    assert_eq!(keys(redis.port), 0, "a fresh server starts empty");
    let deadline = Instant::now() + Duration::from_secs(15);
    while keys(redis.port) == 0 {
        assert!(Instant::now() < deadline, "the gateway never went back to Redis");
        assert_eq!(s.get("/v1/beta/user-access", Some(&token)).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn redis_client(port: u16) -> Option<std::net::TcpStream> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()
}

/// Counts keys with a raw RESP `DBSIZE` (no client library needed for one command).
fn redis_keys(stream: &mut std::net::TcpStream) -> usize {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    if stream.write_all(b"*1\r\n$6\r\nDBSIZE\r\n").is_err() {
        return 0;
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.trim().strip_prefix(':'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

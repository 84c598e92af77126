//! Gateway-owned endpoints and the conventions every response follows.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Options, Stack, reply};

#[tokio::test]
async fn public_probes_say_nothing_internal_and_details_are_for_operators() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    for path in ["/health", "/live", "/ready"] {
        let r = s.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        assert_eq!(
            r.data().as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["status".to_string()]),
            "{path} says only its status: {:?}",
            r.data()
        );
    }
    // On the API port the details are for admins only.
    let (user, _, _) = s.signup("user@example.com").await;
    let admin = s.admin().await;
    for path in ["/health/detailed", "/metrics", "/internal/cache-stats"] {
        assert_eq!(s.get(path, None).await.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(s.get(path, Some(&user)).await.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(s.get(path, Some(&admin)).await.status, StatusCode::OK, "{path}");
    }
    // The operators' listener answers without credentials.
    let detailed = reply(s.http.get(s.admin_url(0, "/health/detailed")).send().await.unwrap()).await;
    assert_eq!(detailed.status, StatusCode::OK);
    let deps = detailed.data()["dependencies"].as_array().unwrap().clone();
    let beta = deps.iter().find(|d| d["name"] == "beta").unwrap();
    assert_eq!(beta["status"], "up");
    assert_eq!(beta["detail"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(beta["latencyMs"].as_f64().unwrap() >= 0.0);
    assert!(deps.iter().any(|d| d["name"].as_str().unwrap().starts_with("database")));
    // It serves nothing of the API.
    let api = reply(s.http.get(s.admin_url(0, "/v1/auth/me")).send().await.unwrap()).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_service_outage_degrades_details_but_not_readiness() {
    let dead = portico_testkit::DeadPort::new();
    let s = Stack::with(Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_BETA_URL", dead.url("http"))).await;
    // Readiness is the gateway's own database: a dead service must not pull every replica.
    let ready = s.get("/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    let detailed = reply(s.http.get(s.admin_url(0, "/health/detailed")).send().await.unwrap()).await;
    assert_eq!(detailed.data()["status"], "degraded");
    let deps = detailed.data()["dependencies"].as_array().unwrap().clone();
    assert_eq!(deps.iter().find(|d| d["name"] == "beta").unwrap()["status"], "down");
    let (token, _, _) = s.signup("u@example.com").await;
    let r = s.get("/v1/beta/user-access", Some(&token)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    );
    assert!(
        !r.body.to_string().contains("127.0.0.1"),
        "5xx never leaks internals: {}",
        r.body
    );
}

#[tokio::test]
async fn readiness_fails_first_at_shutdown_then_the_drain_begins() {
    let s = Stack::with(Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_SHUTDOWN_DELAY_SECS", "2")).await;
    assert_eq!(s.get("/ready", None).await.status, StatusCode::OK);
    s.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let ready = s.get("/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["error"]["details"]["status"], "draining");
    // Still serving during the delay: requests in flight and stragglers are answered.
    assert_eq!(s.get("/live", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let res = s
        .http
        .get(s.url("/health"))
        .header("x-request-id", "client-id-123")
        .send()
        .await
        .unwrap();
    let r = reply(res).await;
    assert_eq!(r.header("x-request-id"), Some("client-id-123"));
    assert_eq!(r.body["meta"]["requestId"], "client-id-123");
    let res = s
        .http
        .get(s.url("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await;
    let r = reply(res.unwrap()).await;
    let generated = r.header("x-request-id").unwrap();
    assert!(
        uuid::Uuid::parse_str(generated).is_ok(),
        "malformed ids are replaced: {generated}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.header("strict-transport-security").is_none(), "HSTS only on TLS");

    let unknown = s.get("/v1/nothing-here", None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert_eq!(unknown.body["success"], false);
    let wrong_method = s.send(Method::DELETE, "/v1/beta/validate-invite", None, None).await;
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
}

#[tokio::test]
async fn the_legacy_api_alias_answers_with_deprecation_headers() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let (token, _, _) = s.signup("legacy@example.com").await;
    let r = s.get("/api/beta/user-access", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("deprecation").is_some_and(|v| v.starts_with('@')));
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("</v1/beta/user-access>; rel=\"successor-version\"")
    );
    let v1 = s.get("/v1/beta/user-access", Some(&token)).await;
    assert!(v1.header("deprecation").is_none());
    assert_eq!(v1.data(), r.data());
}

#[tokio::test]
async fn large_responses_are_compressed_and_small_ones_are_not() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    for encoding in ["gzip", "br"] {
        let res = s
            .http
            .get(s.url("/openapi.json"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers().get("content-encoding").and_then(|v| v.to_str().ok()),
            Some(encoding)
        );
    }
    let res = s
        .http
        .get(s.url("/health"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_ne!(
        res.headers().get("content-encoding").and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
}

#[tokio::test]
async fn openapi_documents_every_route_and_the_docs_page_is_served() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let spec = s.document(0, "/openapi.json").await;
    assert_eq!(spec["openapi"], "3.1.0");
    for route in portico_gateway::routes::API_ROUTES {
        let path = format!("/v1{}", route.path);
        assert!(
            spec["paths"][&path][route.method].is_object(),
            "{} {path} undocumented",
            route.method
        );
        assert_eq!(
            spec["paths"][format!("/api{}", route.path)][route.method]["deprecated"],
            true
        );
    }
    let redirect = s.http.get(s.url("/api-docs")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    let page = s.http.get(s.url("/api-docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "the UI is served from the binary");
    assert!(!html.contains("https://"), "no CDN");
}

#[tokio::test]
async fn metrics_and_cache_stats_are_exposed() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let admin = s.admin().await;
    s.get("/v1/auth/me", Some(&admin)).await;
    s.get("/v1/beta/user-access", Some(&admin)).await;
    s.get("/v1/beta/user-access", Some(&admin)).await;
    let text = s.metrics_text().await;
    for name in [
        "portico_http_requests_total",
        "portico_http_request_duration_seconds_bucket",
        "portico_cache_requests_total",
        "portico_db_pool_connections",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(
        text.contains("route=\"/v1/beta/user-access\""),
        "requests are labelled with the route the router matched"
    );
    let stats = s.get("/internal/cache-stats", Some(&admin)).await;
    assert_eq!(stats.status, StatusCode::OK);
    let processes = stats.data()["processes"].as_array().unwrap().clone();
    let beta = processes.iter().find(|p| p["process"] == "beta").unwrap();
    let membership = beta["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "beta.membership")
        .unwrap();
    assert!(membership["l1Hits"].as_u64().unwrap() >= 1, "{membership}");
    assert!(processes.iter().any(|p| p["process"] == "gateway"));
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let s = Stack::with(
        Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_CORS_ORIGINS", "https://app.example.com"),
    )
    .await;
    let preflight = |origin: &'static str| {
        s.http
            .request(Method::OPTIONS, s.url("/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let _ = json!({});
}

/// The path of a route of the table, with its parameters filled in.
fn concrete(path: &str) -> String {
    format!(
        "/v1{}",
        path.replace("{id}", "0192f0c2-7d3a-7e11-8000-000000000000")
            .replace("{userId}", "0192f0c2-7d3a-7e11-8000-000000000000")
            .replace("{code}", "COSNAPBETA2025")
            .replace("{variant}", "thumbnail")
    )
}

#[tokio::test]
async fn every_known_path_names_its_methods_and_serves_head_with_get() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let mut paths: Vec<(String, String)> = portico_gateway::routes::API_ROUTES
        .iter()
        .map(|r| (concrete(r.path), portico_gateway::routes::allow(r.path)))
        .collect();
    for p in [
        "/health",
        "/live",
        "/ready",
        "/metrics",
        "/health/detailed",
        "/internal/cache-stats",
        "/.well-known/jwks.json",
        "/openapi.json",
        "/api-docs",
        "/api-docs/",
        "/api-docs/swagger-ui.css",
    ] {
        paths.push((p.to_string(), "GET, HEAD, OPTIONS".to_string()));
    }
    paths.sort();
    paths.dedup();
    for (path, allow) in &paths {
        let methods: Vec<&str> = allow.split(", ").collect();
        for other in ["PUT", "PATCH", "DELETE", "TRACE", "POST"] {
            if methods.contains(&other) {
                continue;
            }
            let res = s
                .http
                .request(Method::from_bytes(other.as_bytes()).unwrap(), s.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
            assert_eq!(res.headers()["allow"], allow.as_str(), "{other} {path}");
        }
        let res = s.http.request(Method::OPTIONS, s.url(path)).send().await.unwrap();
        assert!(res.status().is_success(), "OPTIONS {path}: {}", res.status());
        if methods.contains(&"GET") {
            let get = s.http.get(s.url(path)).send().await.unwrap().status();
            let head = s.http.head(s.url(path)).send().await.unwrap();
            assert_eq!(head.status(), get, "HEAD {path} answers as GET does");
            assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
        }
    }
    // Uncompressed answers carry no `Content-Encoding: identity`.
    let res = s
        .http
        .get(s.url("/health"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none(), "{:?}", res.headers());
}

/// The job named `name` in a listing.
fn job<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"))
}

crate::each_backend!(admins_see_every_process_jobs_and_run_one_by_hand, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let list = s.get("/v1/admin/jobs", Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let list = list.data().clone();
    assert_eq!(list["unavailable"], json!([]), "{backend:?}");
    for process in ["gateway", "beta", "workflow", "media", "billing", "monitoring"] {
        let cleanup = job(&list, &format!("{process}.retention_cleanup"));
        assert_eq!(cleanup["process"], process);
        assert_eq!(cleanup["schedule"], "0 2 * * *", "{backend:?}: daily at 02:00 UTC");
        let next: chrono::DateTime<chrono::Utc> = cleanup["nextRunAt"].as_str().unwrap().parse().unwrap();
        let ahead = next - chrono::Utc::now();
        assert!(
            ahead > chrono::Duration::zero() && ahead <= chrono::Duration::hours(24),
            "{next}"
        );
        assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
        assert!(cleanup["lastRun"].is_null() && cleanup["secondsSinceSuccess"].is_null());
    }
    assert_eq!(job(&list, "beta.cache_warmer")["schedule"], "every 5m");
    assert_eq!(job(&list, "billing.billing_reconciliation")["schedule"], "every 1h");
    // The tests' stacks turn the evaluator and the probes off.
    for off in ["monitoring.alert_evaluation", "monitoring.health_probes"] {
        assert_eq!(job(&list, off)["schedule"], "off", "{off}");
        assert!(job(&list, off)["nextRunAt"].is_null(), "{off}");
    }

    for (name, says) in [
        ("beta.cache_warmer", "feature table: "),
        ("gateway.retention_cleanup", "auth: "),
        ("media.retention_cleanup", "media: "),
        ("monitoring.retention_cleanup", "monitoring: "),
    ] {
        let started = s
            .post(&format!("/v1/admin/jobs/{name}/run"), Some(&admin), json!({}))
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{name}: {:?}", started.body);
        assert_eq!(started.data()["name"], name);
        let run_id = started.data()["runId"].as_i64().unwrap();
        let mut seen = serde_json::Value::Null;
        for _ in 0..100 {
            let list = s.get("/v1/admin/jobs", Some(&admin)).await.data().clone();
            seen = job(&list, name).clone();
            if seen["lastRun"]["id"] == run_id && seen["lastRun"]["outcome"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let run = &seen["lastRun"];
        assert_eq!(run["outcome"], "succeeded", "{backend:?} {name}: {seen}");
        assert_eq!(
            (run["cause"].as_str(), run["attempt"].as_i64()),
            (Some("manual"), Some(1))
        );
        let detail = run["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{name}: {detail}");
        if name.ends_with("retention_cleanup") {
            assert!(
                detail.contains("runtime: "),
                "every cleanup drops old job runs too: {detail}"
            );
        }
        assert!(
            seen["secondsSinceSuccess"]
                .as_i64()
                .is_some_and(|s| (0..60).contains(&s)),
            "{seen}"
        );
        assert!(!run["runner"].as_str().unwrap().is_empty() && !run["finishedAt"].is_null());
    }

    for unknown in [
        "retention_cleanup",
        "nowhere.retention_cleanup",
        "beta.nope",
        "gateway.nope",
    ] {
        let r = s
            .post(&format!("/v1/admin/jobs/{unknown}/run"), Some(&admin), json!({}))
            .await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"), "{unknown}");
    }
});

#[tokio::test]
async fn a_service_that_does_not_answer_is_named_and_its_jobs_cannot_be_run() {
    let dead = portico_testkit::DeadPort::new();
    let s = Stack::with(Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_BETA_URL", dead.url("http"))).await;
    let admin = s.admin().await;
    let list = s.get("/v1/admin/jobs", Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let unavailable = list.data()["unavailable"].as_array().unwrap().clone();
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    assert_eq!(unavailable[0]["process"], "beta");
    assert!(!unavailable[0]["error"].as_str().unwrap().is_empty());
    job(list.data(), "media.retention_cleanup");
    assert!(
        !list.data()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["process"] == "beta"),
        "nothing is made up for beta"
    );
    let r = s
        .post("/v1/admin/jobs/beta.cache_warmer/run", Some(&admin), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    );
}

//! Alerting through the gateway: who may manage rules and alerts, bad rules named field by
//! field, the inbox, the links in notices (no sign-in, single-purpose), Alertmanager's webhook
//! with an admin API key as its bearer token, and client-reported alerts.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    each_backend,
    support::{Options, Stack},
};

each_backend!(alert_rules_are_for_admins_and_checked_field_by_field, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("dev@example.com").await;
    let rule = json!({"name": "Checkout slow", "metric": "api_p95_ms", "route": "/v1/billing/checkout",
        "condition": "gt", "threshold": 2000, "forSeconds": 60, "severity": "critical",
        "notify": ["oncall@example.com"]});
    for (method, path) in [
        (Method::POST, "/v1/monitoring/alert-rules"),
        (Method::GET, "/v1/monitoring/alert-rules"),
        (Method::GET, "/v1/monitoring/alerts"),
        (Method::POST, "/v1/monitoring/alertmanager"),
    ] {
        let body = (method == Method::POST).then(|| rule.clone());
        let anon = s.send(method.clone(), path, None, body.clone()).await;
        assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let not_admin = s.send(method.clone(), path, Some(&user), body).await;
        assert_eq!(not_admin.status, StatusCode::FORBIDDEN, "{method} {path}");
    }

    let seeded = s.get("/v1/monitoring/alert-rules", Some(&admin)).await;
    assert_eq!(seeded.status, StatusCode::OK);
    assert_eq!(
        seeded.data().as_array().map(Vec::len),
        Some(6),
        "the defaults: {:?}",
        seeded.body
    );
    assert_eq!(seeded.data()[5]["metric"], "service_down");

    let made = s.post("/v1/monitoring/alert-rules", Some(&admin), rule.clone()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let id = made.data()["id"].as_str().unwrap().to_string();
    assert_eq!(made.data()["windowSeconds"], 300, "defaults filled in");
    assert_eq!(made.data()["repeatIntervalSeconds"], 3600);
    assert_eq!(made.data()["enabled"], true);

    let schema_bad = s
        .post(
            "/v1/monitoring/alert-rules",
            Some(&admin),
            json!({"name": "", "metric": "p42", "condition": "gt", "threshold": 1}),
        )
        .await;
    assert_eq!(schema_bad.status, StatusCode::BAD_REQUEST);
    let mut named = schema_bad.fields();
    named.sort();
    assert_eq!(named, ["metric", "name"], "{:?}", schema_bad.body);
    let rule_bad = s
        .post(
            "/v1/monitoring/alert-rules",
            Some(&admin),
            json!({"name": "x", "metric": "vital_p75", "condition": "lt", "threshold": 1,
                   "notify": ["https://169.254.169.254/latest/meta-data", "ops@example.com"]}),
        )
        .await;
    assert_eq!(rule_bad.status, StatusCode::BAD_REQUEST);
    let mut named = rule_bad.fields();
    named.sort();
    assert_eq!(named, ["notify[0]", "vital"], "{:?}", rule_bad.body);

    let path = format!("/v1/monitoring/alert-rules/{id}");
    let patched = s
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"threshold": 2500, "enabled": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(
        (
            patched.data()["threshold"].as_f64(),
            patched.data()["enabled"].as_bool()
        ),
        (Some(2500.0), Some(false))
    );
    assert_eq!(patched.data()["route"], "/v1/billing/checkout", "untouched fields stay");
    let as_user = s
        .send(Method::PATCH, &path, Some(&user), Some(json!({"threshold": 1})))
        .await;
    assert_eq!(as_user.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&user), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&admin), None).await.status,
        StatusCode::OK
    );
    assert_eq!(s.get(&path, Some(&admin)).await.status, StatusCode::NOT_FOUND);
    let bad_status = s.get("/v1/monitoring/alerts?status=open", Some(&admin)).await;
    assert_eq!(
        (bad_status.status, bad_status.fields()),
        (StatusCode::BAD_REQUEST, vec!["status".to_string()])
    );
});

each_backend!(a_notice_links_acknowledge_without_signing_in, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("shopper@example.com").await;
    let r = s
        .post(
            "/v1/monitoring/alert-rules",
            Some(&admin),
            json!({"name": "Any error", "metric": "error_events", "condition": "gt", "threshold": 0,
                   "severity": "critical", "notify": ["oncall@example.com"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let e = s
        .post("/v1/monitoring/errors", Some(&user), json!({"message": "boom"}))
        .await;
    assert_eq!(e.status, StatusCode::ACCEPTED);
    let pass = s.monitoring.evaluate_at(portico_runtime::db::now_ms()).await.unwrap();
    assert_eq!(pass.fired, 1);

    let notice = (0..200)
        .find_map(|_| {
            let found = s
                .smtp
                .messages()
                .into_iter()
                .find(|m| m.header("Subject").is_some_and(|h| h.starts_with("[FIRING] Any error")));
            if found.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            found
        })
        .expect("the firing notice");
    let text = notice.text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/acknowledge?token="))
        .expect("an acknowledge link")
        .to_string();
    let path = link.split_once("/v1/").map(|(_, p)| format!("/v1/{p}")).unwrap();
    let (alert_path, token) = path.split_once('?').unwrap();
    let resolve_with_ack_token = s
        .http
        .get(s.url(&format!("{}?{token}", alert_path.replace("/acknowledge", "/resolve"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resolve_with_ack_token.status(),
        StatusCode::BAD_REQUEST,
        "a link does one thing"
    );

    let page = s.http.get(s.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Any error") && html.contains("acknowledged"), "{html}");

    let listed = s.get("/v1/monitoring/alerts?status=acknowledged", Some(&admin)).await;
    let alert = &listed.data()["alerts"][0];
    assert_eq!(alert["acknowledgedBy"], "e-mail link");
    assert_eq!(alert["severity"], "critical");
    let id = alert["id"].as_str().unwrap();
    // Another alert's id with this token is refused.
    let other = s
        .http
        .get(s.url(&format!(
            "/v1/monitoring/alerts/0190aaaa-0000-7000-8000-000000000000/acknowledge?{token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let no_token = s
        .http
        .get(s.url(&format!("/v1/monitoring/alerts/{id}/acknowledge")))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::BAD_REQUEST);
    let user_resolves = s
        .send(
            Method::POST,
            &format!("/v1/monitoring/alerts/{id}/resolve"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(user_resolves.status, StatusCode::FORBIDDEN);
    let resolved = s
        .send(
            Method::POST,
            &format!("/v1/monitoring/alerts/{id}/resolve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (resolved.status, resolved.data()["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let late = s
        .send(
            Method::POST,
            &format!("/v1/monitoring/alerts/{id}/acknowledge"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((late.status, late.code()), (StatusCode::CONFLICT, "CONFLICT"));
});

each_backend!(alertmanager_posts_with_an_admin_api_key_as_bearer, |backend| {
    let s = Stack::with(Options::new(backend)).await;
    let admin = s.admin().await;
    let key = s
        .post(
            "/v1/auth/api-keys",
            Some(&admin),
            json!({"name": "alertmanager", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
    let key = key.data()["key"].as_str().unwrap().to_string();
    let (user, _, _) = s.signup("member@example.com").await;
    let user_key = s
        .post(
            "/v1/auth/api-keys",
            Some(&user),
            json!({"name": "mine", "scopes": ["read", "write"]}),
        )
        .await;
    let user_key = user_key.data()["key"].as_str().unwrap().to_string();
    let payload = |status: &str| {
        json!({"version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": status, "receiver": "portico",
               "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {}, "commonAnnotations": {},
               "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
               "alerts": [{"status": status, "labels": {"alertname": "HighLatency", "severity": "critical", "job": "api"},
                           "annotations": {"summary": "p99 over 2 s"}, "startsAt": "2026-12-02T05:00:00Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                           "fingerprint": "c0ffee0123456789"}]})
    };
    let refused = s
        .post("/v1/monitoring/alertmanager", Some(&user_key), payload("firing"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a key without the admin scope");
    let fired = s
        .post("/v1/monitoring/alertmanager", Some(&key), payload("firing"))
        .await;
    assert_eq!(fired.status, StatusCode::OK, "{:?}", fired.body);
    assert_eq!(fired.data()["opened"], 1);
    let inbox = s.get("/v1/monitoring/alerts?status=firing", Some(&admin)).await;
    assert_eq!(inbox.data()["alerts"][0]["source"], "alertmanager");
    assert_eq!(inbox.data()["alerts"][0]["labels"]["job"], "api");
    let resolved = s
        .post("/v1/monitoring/alertmanager", Some(&key), payload("resolved"))
        .await;
    assert_eq!(resolved.data()["resolved"], 1, "{:?}", resolved.body);
    let empty = s.get("/v1/monitoring/alerts?status=firing", Some(&admin)).await;
    assert_eq!(empty.data()["alerts"].as_array().map(Vec::len), Some(0));
    let bad = s
        .post(
            "/v1/monitoring/alertmanager",
            Some(&key),
            json!({"alerts": [{"status": "burning", "labels": {}}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
});

each_backend!(clients_report_performance_alerts, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("app@example.com").await;
    let report = json!({"metric": "LCP", "page": "/checkout", "value": 9100, "message": "checkout paints in 9 s"});
    assert_eq!(
        s.post("/v1/analytics/performance/alerts", None, report.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let a = s
        .post("/v1/analytics/performance/alerts", Some(&user), report.clone())
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    let b = s.post("/v1/analytics/performance/alerts", Some(&user), report).await;
    assert_eq!(
        a.data()["alertId"],
        b.data()["alertId"],
        "one alert per metric and page"
    );
    assert_eq!(a.data()["status"], "firing");
    let bad = s
        .post(
            "/v1/analytics/performance/alerts",
            Some(&user),
            json!({"metric": "", "message": ""}),
        )
        .await;
    let mut named = bad.fields();
    named.sort();
    assert_eq!(
        (bad.status, named),
        (
            StatusCode::BAD_REQUEST,
            vec!["message".to_string(), "metric".to_string()]
        )
    );
    let inbox = s.get("/v1/monitoring/alerts", Some(&admin)).await;
    let alert = &inbox.data()["alerts"][0];
    assert_eq!(
        (alert["source"].as_str(), alert["labels"]["page"].as_str()),
        (Some("client"), Some("/checkout"))
    );
    assert_eq!(alert["annotations"]["summary"], "checkout paints in 9 s");
});

each_backend!(the_gateway_ships_its_route_times_to_the_dashboard, |backend| {
    let s = Stack::with(Options::new(backend).var("PORTICO_ROUTE_STATS_FLUSH_SECS", "1")).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("measured@example.com").await;
    for _ in 0..5 {
        assert_eq!(s.get("/v1/auth/me", Some(&user)).await.status, StatusCode::OK);
    }
    assert_eq!(
        s.get("/v1/monitoring/alert-rules/nope", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
    let mut me = serde_json::Value::Null;
    for _ in 0..100 {
        let d = s
            .get("/v1/analytics/dashboard/performance?bucket=300", Some(&admin))
            .await;
        assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
        let routes = d.data()["api"]["routes"].as_array().cloned().unwrap_or_default();
        let found = routes
            .iter()
            .find(|r| r["route"] == "/v1/auth/me" && r["requests"].as_i64() >= Some(5));
        let rule = routes.iter().find(|r| r["route"] == "/v1/monitoring/alert-rules/{id}");
        if let (Some(found), Some(rule)) = (found, rule) {
            assert_eq!(rule["clientErrors"], 1, "the 404 counts as a client error: {rule}");
            assert_eq!(d.data()["api"]["bucketSeconds"], 300);
            me = found.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(me["method"], "GET", "the route's times reached the dashboard: {me}");
    assert!(me["latency"]["p50"].as_f64() > Some(0.0), "{me}");
    assert_eq!(me["serverErrors"], 0);
    let bad = s
        .get("/v1/analytics/dashboard/performance?bucket=90", Some(&admin))
        .await;
    assert_eq!(
        (bad.status, bad.fields()),
        (StatusCode::BAD_REQUEST, vec!["bucket".to_string()])
    );
});

each_backend!(system_health_reports_every_process_memory_and_cpu, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("curious@example.com").await;
    assert_eq!(
        s.get("/v1/analytics/system/health", Some(&user)).await.status,
        StatusCode::FORBIDDEN
    );
    let r = s.get("/v1/analytics/system/health", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let gateway = &r.data()["gateway"]["process"];
    assert!(gateway["rssBytes"].as_u64() > Some(0), "{gateway}");
    assert!(gateway["memoryPercent"].as_f64() > Some(0.0), "{gateway}");
    let deps = r.data()["dependencies"].as_array().cloned().unwrap_or_default();
    for service in ["beta", "media", "workflow", "billing", "monitoring"] {
        let d = deps
            .iter()
            .find(|d| d["name"] == service)
            .unwrap_or_else(|| panic!("{service} in {deps:?}"));
        assert_eq!(d["status"], "up", "{d}");
        assert!(!d["detail"]["version"].as_str().unwrap_or_default().is_empty(), "{d}");
        assert!(d["detail"]["process"]["memoryLimitBytes"].as_u64() > Some(0), "{d}");
        assert!(d["detail"]["process"]["cpuPercent"].as_f64() >= Some(0.0), "{d}");
    }
});

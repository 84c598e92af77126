//! Monitoring through the gateway: projects and DSNs, the Sentry ingest as the SDKs send it
//! (compressed bodies, keys in the header, the query or the DSN, CORS, the size cap, each
//! project's budget), native errors, the group lifecycle, and who may call what.

use std::io::Write;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    each_backend,
    support::{Options, Stack, reply},
};

fn envelope(event: &Value) -> Vec<u8> {
    let payload = event.to_string();
    format!(
        "{}\n{}\n{payload}\n{}\n{}\n",
        json!({"event_id": event["event_id"], "sdk": {"name": "sentry.python", "version": "2.19.0"}}),
        json!({"type": "event", "length": payload.len(), "content_type": "application/json"}),
        json!({"type": "client_report"}),
        json!({"discarded_events": []}),
    )
    .into_bytes()
}

fn error_event(id: &str, value: &str) -> Value {
    json!({
        "event_id": id, "timestamp": "2026-12-02T01:02:03.250Z", "platform": "python", "level": "error",
        "exception": {"values": [{"type": "ValueError", "value": value, "stacktrace": {"frames": [
            {"module": "shop.orders", "function": "place", "context_line": "raise ValueError(msg)", "in_app": true, "lineno": 10}
        ]}}]}
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn br(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(body).unwrap();
    }
    out
}

/// POSTs to a Sentry ingest path as an SDK does.
async fn sentry(
    s: &Stack,
    path: &str,
    auth: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> crate::support::Reply {
    let mut req = s
        .http
        .post(s.url(path))
        .header("content-type", "application/x-sentry-envelope")
        .body(body);
    if let Some(a) = auth {
        req = req.header("x-sentry-auth", a);
    }
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    reply(req.send().await.unwrap()).await
}

async fn new_project(s: &Stack, admin: &str, name: &str) -> (i64, String, String) {
    let r = s
        .post("/v1/monitoring/projects", Some(admin), json!({"name": name}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let d = r.data();
    (
        d["id"].as_i64().unwrap(),
        d["publicKey"].as_str().unwrap().to_string(),
        d["dsn"].as_str().unwrap().to_string(),
    )
}

each_backend!(projects_are_for_admins_and_their_dsn_points_at_the_gateway, |backend| {
    let s = Stack::with(Options::new(backend).var("PORTICO_PUBLIC_URL", "https://portico.example.com")).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("dev@example.com").await;
    let anon = s.post("/v1/monitoring/projects", None, json!({"name": "x"})).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let not_admin = s
        .post("/v1/monitoring/projects", Some(&user), json!({"name": "x"}))
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("/v1/monitoring/projects", Some(&user)).await.status,
        StatusCode::FORBIDDEN
    );
    let bad = s
        .post("/v1/monitoring/projects", Some(&admin), json!({"name": ""}))
        .await;
    assert_eq!(
        (bad.status, bad.fields()),
        (StatusCode::BAD_REQUEST, vec!["name".to_string()])
    );
    let (id, key, dsn) = new_project(&s, &admin, "shop").await;
    assert_eq!(dsn, format!("https://{key}@portico.example.com/sentry/{id}"));
    let list = s.get("/v1/monitoring/projects", Some(&admin)).await;
    assert_eq!(list.data()[0]["dsn"], dsn.as_str());
});

each_backend!(the_sentry_ingest_takes_what_the_sdks_send, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (id, key, _) = new_project(&s, &admin, "shop").await;
    let path = format!("/sentry/api/{id}/envelope/");
    let auth = format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.19.0");
    // gzip (the Python SDK), br (with the brotli module), and plain.
    let first = "0a".repeat(16);
    let r = sentry(
        &s,
        &path,
        Some(&auth),
        Some("gzip"),
        gzip(&envelope(&error_event(&first, "bad qty 3"))),
    )
    .await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"id": first})));
    let r = sentry(
        &s,
        &path,
        Some(&auth),
        Some("br"),
        br(&envelope(&error_event(&"0b".repeat(16), "bad qty 4"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = sentry(
        &s,
        &path,
        Some(&auth),
        None,
        envelope(&error_event(&"0c".repeat(16), "bad qty 5")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The browser SDK's way: the key in the query string.
    let r = sentry(
        &s,
        &format!("{path}?sentry_key={key}&sentry_version=7"),
        None,
        None,
        envelope(&error_event(&"0d".repeat(16), "bad qty 6")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The legacy store endpoint.
    let r = sentry(
        &s,
        &format!("/sentry/api/{id}/store/"),
        Some(&auth),
        Some("gzip"),
        gzip(error_event(&"0e".repeat(16), "bad qty 7").to_string().as_bytes()),
    )
    .await;
    assert_eq!(r.body, json!({"id": "0e".repeat(16)}));
    // One group of five, as Sentry would group them.
    let groups = s
        .get(&format!("/v1/monitoring/errors?projectId={id}"), Some(&admin))
        .await;
    let items = groups.data()["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", groups.body);
    assert_eq!(items[0]["count"], 5);
    assert_eq!(items[0]["culprit"], "shop.orders in place");
    // A wrong key, a project that does not exist, a non-numeric project: 401, nothing stored.
    for (p, a) in [
        (path.clone(), format!("Sentry sentry_key={}", "f".repeat(32))),
        ("/sentry/api/999/envelope/".to_string(), auth.clone()),
        ("/sentry/api/abc/envelope/".to_string(), auth.clone()),
    ] {
        let r = sentry(&s, &p, Some(&a), None, envelope(&error_event(&"1f".repeat(16), "x"))).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "SENTRY_KEY_INVALID"),
            "{p}"
        );
    }
    // Not an envelope.
    let r = sentry(
        &s,
        &path,
        Some(&auth),
        None,
        b"{}\n{\"type\":\"event\",\"length\":99}\n{}".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "ENVELOPE_INVALID"));
    let groups = s
        .get(&format!("/v1/monitoring/errors?projectId={id}"), Some(&admin))
        .await;
    assert_eq!(groups.data()["items"][0]["count"], 5);
    // CORS for browsers from any origin, exposing what the SDK reads.
    let pre = s
        .http
        .request(Method::OPTIONS, s.url(&path))
        .header("origin", "https://shop.example.net")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-sentry-auth")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://shop.example.net")
    );
    let post = s
        .http
        .post(s.url(&format!("{path}?sentry_key={key}")))
        .header("origin", "https://shop.example.net")
        .body(envelope(&json!({"message": "from a browser"})))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::OK);
    let exposed = post
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-sentry-rate-limits") && exposed.contains("retry-after"),
        "{exposed}"
    );
    // The API itself stays closed to origins it was not told about.
    let api = s
        .http
        .request(Method::OPTIONS, s.url("/v1/monitoring/projects"))
        .header("origin", "https://shop.example.net")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(api.headers().get("access-control-allow-origin").is_none());
});

each_backend!(the_ingest_has_a_size_cap_and_a_budget_per_project, |backend| {
    let s = Stack::with(
        Options::new(backend)
            .var("PORTICO_SENTRY_EVENTS_PER_MIN", "3")
            .var("PORTICO_SENTRY_MAX_BYTES", "4096"),
    )
    .await;
    let admin = s.admin().await;
    let (a, key_a, _) = new_project(&s, &admin, "a").await;
    let (b, key_b, _) = new_project(&s, &admin, "b").await;
    // Over the cap once decompressed (a small gzip of a large body): 413.
    let big = envelope(&json!({"message": "x".repeat(10_000)}));
    let r = sentry(
        &s,
        &format!("/sentry/api/{a}/envelope/"),
        Some(&format!("Sentry sentry_key={key_a}")),
        Some("gzip"),
        gzip(&big),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        "{:?}",
        r.body
    );
    // A body that does not decode as its Content-Encoding says: a 400 in the envelope.
    let r = sentry(
        &s,
        &format!("/sentry/api/{a}/envelope/"),
        Some(&format!("Sentry sentry_key={key_a}")),
        Some("br"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
        "{:?}",
        r.body
    );
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..4 {
        let r = sentry(
            &s,
            &format!("/sentry/api/{a}/envelope/"),
            Some(&format!("Sentry sentry_key={key_a}")),
            None,
            envelope(&json!({"message": format!("m{i}")})),
        )
        .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let limited = limited.unwrap();
    let secs: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(secs >= 1);
    assert_eq!(
        limited.header("x-sentry-rate-limits"),
        Some(format!("{secs}:error:key").as_str())
    );
    // Another project has its own budget.
    let r = sentry(
        &s,
        &format!("/sentry/api/{b}/envelope/"),
        Some(&format!("Sentry sentry_key={key_b}")),
        None,
        envelope(&json!({"message": "b"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
});

each_backend!(native_errors_and_the_group_lifecycle, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("app@example.com").await;
    let event = json!({"message": "payment declined for order 1234", "type": "PaymentError",
        "frames": [{"module": "app.checkout", "function": "pay", "lineno": 88}], "release": "app@2.3.0"});
    let anon = s.post("/v1/monitoring/errors", None, event.clone()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let r = s.post("/v1/monitoring/errors", Some(&user), event.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let group = r.data()["groupId"].as_str().unwrap().to_string();
    let bad = s
        .post(
            "/v1/monitoring/errors",
            Some(&user),
            json!({"level": "loud", "frames": [{"lineno": -1}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.fields().iter().any(|f| f.starts_with("level")), "{:?}", bad.body);
    // Groups are for admins.
    assert_eq!(
        s.get("/v1/monitoring/errors", Some(&user)).await.status,
        StatusCode::FORBIDDEN
    );
    let path = format!("/v1/monitoring/errors/{group}");
    assert_eq!(s.get(&path, Some(&user)).await.status, StatusCode::FORBIDDEN);
    let patch = s
        .send(Method::PATCH, &path, Some(&user), Some(json!({"status": "resolved"})))
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);
    let detail = s.get(&path, Some(&admin)).await;
    assert_eq!(detail.status, StatusCode::OK, "{:?}", detail.body);
    assert_eq!(detail.data()["title"], "PaymentError: payment declined for order 1234");
    assert_eq!(detail.data()["usersAffected"], 1);
    assert_eq!(detail.data()["latestEvent"]["release"], "app@2.3.0");
    let resolved = s
        .send(Method::PATCH, &path, Some(&admin), Some(json!({"status": "resolved"})))
        .await;
    assert_eq!(resolved.data()["status"], "resolved");
    let filtered = s.get("/v1/monitoring/errors?status=resolved", Some(&admin)).await;
    assert_eq!(filtered.data()["items"].as_array().unwrap().len(), 1);
    // It recurs (another order number, the same template): reopened as a regression.
    let again = json!({"message": "payment declined for order 98", "type": "PaymentError",
        "frames": [{"module": "app.checkout", "function": "pay", "lineno": 91}]});
    let r = s.post("/v1/monitoring/errors", Some(&user), again).await;
    assert_eq!(r.data()["groupId"], group.as_str());
    let detail = s.get(&path, Some(&admin)).await;
    assert_eq!(
        (detail.data()["status"].as_str(), detail.data()["regressed"].as_bool()),
        (Some("open"), Some(true))
    );
    assert_eq!(detail.data()["count"], 2);
    let missing = s.get("/v1/monitoring/errors/nope", Some(&admin)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad_status = s
        .send(Method::PATCH, &path, Some(&admin), Some(json!({"status": "done"})))
        .await;
    assert_eq!(bad_status.fields(), ["status"]);
});

each_backend!(vitals_funnel_and_events_reach_the_dashboard, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, _) = s.signup("web@example.com").await;
    let anon = s
        .post(
            "/v1/analytics/performance/metrics",
            None,
            json!({"metrics": [{"name": "LCP", "value": 1.0}]}),
        )
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let r = s
        .post(
            "/v1/analytics/performance/metrics",
            Some(&user),
            json!({"metrics": [{"name": "LCP", "value": 2500}, {"name": "INP", "value": 501, "page": "/effects"}, {"name": "CLS", "value": 0.1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.data()["ratings"], json!(["good", "poor", "good"]));
    let bad = s
        .post(
            "/v1/analytics/performance/metrics",
            Some(&user),
            json!({"metrics": [{"name": "LCP", "value": 1}, {"name": "FID", "value": 3}, {"name": "TTFB", "value": -2}]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "METRIC_INVALID")
    );
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["metrics[1].name", "metrics[2].value"]);
    for (session, step) in [
        ("a", "effect_discovery"),
        ("b", "effect_discovery"),
        ("a", "effect_viewing"),
        ("a", "effect_viewing"),
    ] {
        let r = s
            .post(
                "/v1/analytics/funnel",
                Some(&user),
                json!({"sessionId": session, "step": step}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    }
    let unknown = s
        .post(
            "/v1/analytics/funnel",
            Some(&user),
            json!({"sessionId": "a", "step": "checkout"}),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.fields()),
        (StatusCode::BAD_REQUEST, vec!["step".to_string()])
    );
    let events = s
        .post(
            "/v1/analytics/events",
            Some(&user),
            json!({"events": [{"name": "effect_shared", "properties": {"effect": "oil"}}]}),
        )
        .await;
    assert_eq!(
        (events.status, &events.data()["accepted"]),
        (StatusCode::ACCEPTED, &json!(1))
    );
    assert_eq!(
        s.get("/v1/analytics/dashboard/performance", Some(&user)).await.status,
        StatusCode::FORBIDDEN
    );
    let d = s.get("/v1/analytics/dashboard/performance", Some(&admin)).await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    let inp = d.data()["vitals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "INP")
        .unwrap()
        .clone();
    assert_eq!(
        (inp["count"].as_u64(), inp["ratings"]["poor"].as_f64()),
        (Some(1), Some(1.0))
    );
    let steps = d.data()["funnel"]["steps"].as_array().unwrap();
    assert_eq!(
        (steps[0]["sessions"].as_u64(), steps[1]["sessions"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        d.data()["funnel"]["biggestDropOff"],
        json!({"step": "effect_viewing", "sessions": 1})
    );
    let range = s
        .get(
            "/v1/analytics/dashboard/performance?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            Some(&admin),
        )
        .await;
    assert_eq!(
        (range.status, range.fields()),
        (StatusCode::BAD_REQUEST, vec!["from".to_string()])
    );
});

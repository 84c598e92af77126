//! Billing through the gateway on the local provider: plans, the checkout → confirmation →
//! signed events → tier change → receipt path, the webhook endpoint, who may call what.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    each_backend,
    support::{Options, Stack},
};

/// The tier the gateway applies to `token`'s caller, as `/auth/me` shows it.
async fn tier(s: &Stack, token: &str) -> String {
    s.get("/v1/auth/me", Some(token)).await.data()["tier"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

each_backend!(a_local_checkout_changes_the_tier_and_mails_one_receipt, |backend| {
    let s = Stack::start(backend).await;
    let plans = s.get("/v1/billing/plans", None).await;
    assert_eq!(plans.status, StatusCode::OK, "{:?}", plans.body);
    let ids: Vec<&str> = plans
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["free", "pro", "enterprise"]);
    assert_eq!(
        plans.data()[1]["price"],
        json!({"amount": 2900, "currency": "usd", "interval": "month"})
    );
    assert_eq!(plans.data()[1]["limits"]["analysesPerHour"], 100);
    assert!(plans.data()[1]["limits"]["requestsPerMinute"].as_u64().unwrap() > 0);

    let (token, _, _) = s.signup("payer@example.com").await;
    assert_eq!(tier(&s, &token).await, "free");
    let none = s.get("/v1/billing/subscription", Some(&token)).await;
    assert_eq!(
        none.data(),
        &json!({"plan": "free", "status": null, "currentPeriodEnd": null, "cancelAtPeriodEnd": false})
    );
    let portal = s.post("/v1/billing/portal", Some(&token), json!({})).await;
    assert_eq!(
        (portal.status, portal.code()),
        (StatusCode::CONFLICT, "NO_BILLING_ACCOUNT")
    );

    for (plan, code) in [("free", "PLAN_NOT_PURCHASABLE"), ("platinum", "PLAN_NOT_PURCHASABLE")] {
        let r = s
            .post("/v1/billing/checkout", Some(&token), json!({"plan": plan}))
            .await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{plan}");
        assert_eq!(r.fields(), ["plan"]);
    }
    let bad = s.post("/v1/billing/checkout", Some(&token), json!({"plan": 3})).await;
    assert_eq!(
        (bad.status, bad.fields()),
        (StatusCode::BAD_REQUEST, vec!["plan".to_string()])
    );

    let checkout = s
        .post("/v1/billing/checkout", Some(&token), json!({"plan": "pro"}))
        .await;
    assert_eq!(checkout.status, StatusCode::OK, "{:?}", checkout.body);
    let url = checkout.data()["url"].as_str().unwrap();
    let path = &url[url.find("/v1/billing/local/checkout/").unwrap()..];
    let page = s.get(path, None).await;
    assert_eq!(
        (page.data()["plan"].as_str(), page.data()["status"].as_str()),
        (Some("pro"), Some("open"))
    );
    let paid = s.post(path, None, json!({})).await;
    assert_eq!(paid.data()["status"], "complete", "{:?}", paid.body);

    // The signed events go through the webhook path; the gateway sees the plan within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tier(&s, &token).await != "pro" {
        assert!(Instant::now() < deadline, "the tier never changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sub = s.get("/v1/billing/subscription", Some(&token)).await;
    assert_eq!(
        (sub.data()["plan"].as_str(), sub.data()["status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert!(sub.data()["currentPeriodEnd"].is_string());
    let receipts = s.smtp.wait_for(2, Duration::from_secs(10));
    let receipt = receipts
        .iter()
        .find(|m| m.header("Subject").is_some_and(|h| h.contains("receipt")))
        .unwrap();
    assert!(receipt.text().contains("29.00 USD"), "{}", receipt.text());

    let again = s
        .post("/v1/billing/checkout", Some(&token), json!({"plan": "pro"}))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "ALREADY_SUBSCRIBED")
    );
    let portal = s.post("/v1/billing/portal", Some(&token), json!({})).await;
    assert_eq!(portal.status, StatusCode::OK);

    let ended = s
        .post("/v1/billing/cancel", Some(&token), json!({"atPeriodEnd": false}))
        .await;
    assert_eq!(ended.data()["status"], "canceled", "{:?}", ended.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tier(&s, &token).await != "free" {
        assert!(Instant::now() < deadline, "the tier never went back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nothing = s
        .post("/v1/billing/cancel", Some(&token), json!({"atPeriodEnd": true}))
        .await;
    assert_eq!(
        (nothing.status, nothing.code()),
        (StatusCode::CONFLICT, "NO_SUBSCRIPTION")
    );
});

each_backend!(billing_endpoints_need_a_caller_and_show_only_theirs, |backend| {
    let s = Stack::start(backend).await;
    for (method, path) in [
        (Method::POST, "/v1/billing/checkout"),
        (Method::POST, "/v1/billing/portal"),
        (Method::GET, "/v1/billing/subscription"),
        (Method::POST, "/v1/billing/cancel"),
    ] {
        let r = s
            .send(
                method.clone(),
                path,
                None,
                Some(json!({"plan": "pro", "atPeriodEnd": true})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            "{method} {path}"
        );
    }
    // Another user's paid subscription is invisible and cannot be cancelled by them.
    let (alice, _, _) = s.signup("alice@example.com").await;
    let (mallory, _, _) = s.signup("mallory@example.com").await;
    let checkout = s
        .post("/v1/billing/checkout", Some(&alice), json!({"plan": "enterprise"}))
        .await;
    let url = checkout.data()["url"].as_str().unwrap().to_string();
    let path = &url[url.find("/v1/billing/local/checkout/").unwrap()..];
    s.post(path, None, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tier(&s, &alice).await != "enterprise" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.get("/v1/billing/subscription", Some(&mallory)).await.data()["plan"],
        "free"
    );
    let r = s
        .post("/v1/billing/cancel", Some(&mallory), json!({"atPeriodEnd": false}))
        .await;
    assert_eq!(r.code(), "NO_SUBSCRIPTION");
    assert_eq!(tier(&s, &alice).await, "enterprise");
    assert_eq!(tier(&s, &mallory).await, "free");
    let unknown = s.get("/v1/billing/local/checkout/cs_local_nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
});

each_backend!(an_admins_complimentary_plan_stands_beside_billing, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (token, _, id) = s.signup("guest@example.com").await;
    let r = s
        .send(
            Method::PUT,
            &format!("/v1/admin/users/{id}/tier"),
            Some(&admin),
            Some(json!({"tier": "pro"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(tier(&s, &token).await, "pro");
    // Billing knows nothing of it: the subscription is still free.
    assert_eq!(
        s.get("/v1/billing/subscription", Some(&token)).await.data()["plan"],
        "free"
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_endpoint_verifies_and_records_once() {
    let s = Stack::with(Options::new(portico_testkit::Backend::Sqlite)).await;
    let event = json!({"id": "evt_gw_1", "object": "event", "type": "customer.created", "created": 1,
        "data": {"object": {"id": "cus_1"}}});
    let body = event.to_string().into_bytes();
    let send = |signature: Option<String>, body: Vec<u8>| {
        let mut req = s
            .http
            .post(s.url("/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        async move { crate::support::reply(req.send().await.unwrap()).await }
    };
    let now = chrono::Utc::now().timestamp();
    let missing = send(None, body.clone()).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::BAD_REQUEST, "WEBHOOK_SIGNATURE_MISSING")
    );
    let forged = send(
        Some(portico_billing::signature::sign(&body, "whsec_forged", now)),
        body.clone(),
    )
    .await;
    assert_eq!(
        (forged.status, forged.code()),
        (StatusCode::BAD_REQUEST, "WEBHOOK_SIGNATURE_INVALID")
    );
    let stale = send(
        Some(portico_billing::signature::sign(
            &body,
            "whsec_portico_local",
            now - 600,
        )),
        body.clone(),
    )
    .await;
    assert_eq!(stale.code(), "WEBHOOK_SIGNATURE_EXPIRED");
    let signed = portico_billing::signature::sign(&body, "whsec_portico_local", now);
    let first = send(Some(signed.clone()), body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(
        first.data(),
        &json!({"received": true, "id": "evt_gw_1", "duplicate": false})
    );
    let again = send(Some(signed), body.clone()).await;
    assert_eq!(again.data()["duplicate"], true);
    let big = vec![b' '; 1024 * 1024 + 1];
    let too_big = send(
        Some(portico_billing::signature::sign(&big, "whsec_portico_local", now)),
        big,
    )
    .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let get = s.get("/webhooks/stripe", None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST, OPTIONS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_reaches_every_gateway_replica_within_seconds() {
    // Two gateways; with Redis configured (CI) billing's invalidation reaches both at once,
    // without it each trusts what it loaded for PORTICO_ENTITLEMENT_TTL_SECS.
    let s = Stack::with(Options::new(portico_testkit::Backend::Sqlite).gateways(2)).await;
    let (token, _, _) = s.signup("replicas@example.com").await;
    let me = |gw: usize| {
        let t = token.clone();
        let s = &s;
        async move {
            let r = s.send_on(gw, Method::GET, "/v1/auth/me", Some(&t), None).await;
            r.data()["tier"].as_str().unwrap_or_default().to_string()
        }
    };
    // Both replicas have loaded (and cached) the free entitlement.
    assert_eq!((me(0).await, me(1).await), ("free".to_string(), "free".to_string()));
    let checkout = s
        .post("/v1/billing/checkout", Some(&token), json!({"plan": "pro"}))
        .await;
    let url = checkout.data()["url"].as_str().unwrap().to_string();
    s.post(
        &url[url.find("/v1/billing/local/checkout/").unwrap()..],
        None,
        json!({}),
    )
    .await;
    let started = Instant::now();
    while me(1).await != "pro" {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "replica 1 never saw the plan"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(me(0).await, "pro");
    eprintln!("replica 1 saw the plan {:?} after the confirmation", started.elapsed());
}

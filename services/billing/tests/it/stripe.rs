//! The Stripe provider against the fake: requests as Stripe documents them, retries with one
//! idempotency key, the whole checkout → events → entitlement → receipt path, cancellation.

use std::time::Duration;

use portico_proto::billing::v1 as pb;
use serde_json::json;

use crate::{
    Service, each_backend,
    fake_stripe::{FakeStripe, event},
};

async fn checkout(s: &Service, user: &str, plan: pb::Plan) -> pb::CheckoutSession {
    s.client
        .clone()
        .create_checkout(pb::CreateCheckoutRequest {
            user_id: user.into(),
            email: format!("{user}@example.com"),
            plan: plan as i32,
        })
        .await
        .unwrap()
        .into_inner()
}

each_backend!(checkout_events_entitlement_and_one_receipt, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let session = checkout(&s, "u1", pb::Plan::Pro).await;
    assert!(session.url.starts_with("https://checkout.stripe.test/"), "{session:?}");

    // The customer, then the session, as Stripe documents the calls.
    let requests = stripe.fake.requests();
    let customer = &requests[0];
    assert_eq!(
        (customer.method.as_str(), customer.path.as_str()),
        ("POST", "/v1/customers")
    );
    assert_eq!(customer.field("email"), Some("u1@example.com"));
    assert_eq!(customer.field("metadata[user_id]"), Some("u1"));
    let create = &requests[1];
    assert_eq!(create.path, "/v1/checkout/sessions");
    for (k, v) in [
        ("mode", "subscription"),
        ("client_reference_id", "u1"),
        ("line_items[0][price]", "price_pro"),
        ("line_items[0][quantity]", "1"),
        ("subscription_data[metadata][user_id]", "u1"),
    ] {
        assert_eq!(create.field(k), Some(v), "{k}");
    }
    assert!(create.field("customer").is_some_and(|c| c.starts_with("cus_")));
    assert!(
        create
            .field("success_url")
            .is_some_and(|u| u.starts_with("https://portico.test/"))
    );
    for r in &requests {
        assert_eq!(r.header("authorization"), Some("Bearer sk_test_fake"));
        assert_eq!(r.header("stripe-version"), Some("2026-10-28.endive"));
        assert!(r.header("idempotency-key").is_some_and(|k| k.len() > 10));
        assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    }

    // A second checkout reuses the customer.
    checkout(&s, "u1", pb::Plan::Enterprise).await;
    let customers = stripe
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/customers")
        .count();
    assert_eq!(customers, 1);

    // Paid: the events arrive in Stripe's usual disorder, each delivered several times.
    let sub = stripe.fake.complete_checkout(&session.session_id);
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let session_obj = stripe.fake.session(&session.session_id);
    let t = chrono::Utc::now().timestamp();
    let invoice = json!({"id": "in_1", "object": "invoice", "number": "PRTC-0001", "customer": sub["customer"],
        "amount_paid": 2900, "currency": "usd", "hosted_invoice_url": "https://invoice.stripe.test/in_1",
        "parent": {"subscription_details": {"subscription": sub_id}},
        "lines": {"data": [{"period": {"start": t, "end": t + 30 * 86_400}}]}});
    let events = [
        event("evt_inv", "invoice.paid", t, invoice),
        event("evt_sub", "customer.subscription.created", t, sub.clone()),
        event("evt_cs", "checkout.session.completed", t + 1, session_obj),
    ];
    let mut deliveries: Vec<&serde_json::Value> = events.iter().cycle().take(30).collect();
    deliveries.reverse();
    deliveries.rotate_left(7);
    let mut firsts = 0;
    for e in deliveries {
        let (_, duplicate) = s.deliver(e).await.unwrap();
        firsts += usize::from(!duplicate);
    }
    assert_eq!(firsts, 3, "each event is new once");
    s.settled().await;
    let ent = s
        .client
        .clone()
        .get_entitlement(pb::GetEntitlementRequest { user_id: "u1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ent.plan(), ent.status.as_str()), (pb::Plan::Pro, "active"));

    // Exactly one receipt, however often the invoice came.
    let mail = s.smtp.wait_for(1, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.smtp.messages().len(), 1, "one receipt");
    let text = mail[0].text();
    for part in ["PRTC-0001", "29.00 USD", "https://invoice.stripe.test/in_1"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    assert_eq!(mail[0].to, vec!["u1@example.com".to_string()]);
    assert!(mail[0].header("Message-ID").is_some());

    // Already on pro: a second checkout for pro is refused.
    let again = s
        .client
        .clone()
        .create_checkout(pb::CreateCheckoutRequest {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            plan: pb::Plan::Pro as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(
        portico_runtime::Problem::from_status(&again).code.as_str(),
        "ALREADY_SUBSCRIBED"
    );

    // Cancel at the period end: still entitled, flagged; then now: free.
    let after = s
        .client
        .clone()
        .cancel_subscription(pb::CancelSubscriptionRequest {
            user_id: "u1".into(),
            at_period_end: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after.cancel_at_period_end);
    assert_eq!((after.plan(), after.status.as_str()), (pb::Plan::Pro, "active"));
    let cancel = stripe.fake.requests().into_iter().last().unwrap();
    assert_eq!(
        (cancel.method.as_str(), cancel.field("cancel_at_period_end")),
        ("POST", Some("true"))
    );
    let now = s
        .client
        .clone()
        .cancel_subscription(pb::CancelSubscriptionRequest {
            user_id: "u1".into(),
            at_period_end: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status, "canceled");
    let ent = s.app.entitlement("u1").await.unwrap();
    assert_eq!(ent.0, portico_billing::domain::Plan::Free);
    assert_eq!(stripe.fake.requests().into_iter().last().unwrap().method, "DELETE");
});

each_backend!(a_failed_request_is_retried_with_the_same_idempotency_key, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    stripe.fake.fail_next(2);
    checkout(&s, "u2", pb::Plan::Pro).await;
    let requests = stripe.fake.requests();
    let customers: Vec<_> = requests.iter().filter(|r| r.path == "/v1/customers").collect();
    assert_eq!(customers.len(), 3, "two 500s, then the answer");
    let keys: Vec<_> = customers.iter().map(|r| r.header("idempotency-key").unwrap()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    // A new operation gets a new key.
    let sessions: Vec<_> = requests.iter().filter(|r| r.path == "/v1/checkout/sessions").collect();
    assert_ne!(sessions[0].header("idempotency-key"), Some(keys[0]));

    // `Stripe-Should-Retry: false` is final even on a status that is usually retried, and
    // Stripe's error body reaches the caller mapped to the catalogue.
    let before = stripe.fake.requests().len();
    stripe.fake.refuse_next(1);
    let e = s
        .client
        .clone()
        .create_portal(pb::CreatePortalRequest { user_id: "u2".into() })
        .await
        .unwrap_err();
    assert_eq!(stripe.fake.requests().len(), before + 1, "not retried");
    let problem = portico_runtime::Problem::from_status(&e);
    assert_eq!(problem.code.as_str(), "PAYMENT_PROVIDER_ERROR");
    let provider = &problem.details.unwrap()["provider"];
    assert_eq!(
        (
            provider["status"].as_u64(),
            provider["type"].as_str(),
            provider["code"].as_str(),
            provider["param"].as_str()
        ),
        (
            Some(409),
            Some("invalid_request_error"),
            Some("resource_missing"),
            Some("customer")
        )
    );

    // Past the retry budget the caller gets the provider's error, named.
    stripe.fake.fail_next(10);
    let e = s
        .client
        .clone()
        .create_portal(pb::CreatePortalRequest { user_id: "u2".into() })
        .await
        .unwrap_err();
    let problem = portico_runtime::Problem::from_status(&e);
    assert_eq!(problem.code.as_str(), "PAYMENT_PROVIDER_ERROR");
    assert_eq!(problem.details.unwrap()["provider"]["type"], "api_error");
    assert_eq!(
        stripe.fake.requests().len(),
        before + 1 + 4,
        "the first try and three retries"
    );
    assert!(
        !format!("{e:?}").contains("sk_test_fake"),
        "the key is never in an error"
    );
    stripe.fake.fail_next(0);
});

each_backend!(portal_needs_an_account_and_plans_are_listed, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let e = s
        .client
        .clone()
        .create_portal(pb::CreatePortalRequest {
            user_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        portico_runtime::Problem::from_status(&e).code.as_str(),
        "NO_BILLING_ACCOUNT"
    );
    for plan in [pb::Plan::Free as i32, 0, 42] {
        let e = s
            .client
            .clone()
            .create_checkout(pb::CreateCheckoutRequest {
                user_id: "u3".into(),
                email: "u3@example.com".into(),
                plan,
            })
            .await
            .unwrap_err();
        assert_eq!(
            portico_runtime::Problem::from_status(&e).code.as_str(),
            "PLAN_NOT_PURCHASABLE",
            "{plan}"
        );
    }
    assert!(stripe.fake.requests().is_empty(), "nothing reached Stripe");
    checkout(&s, "u3", pb::Plan::Pro).await;
    let portal = s
        .client
        .clone()
        .create_portal(pb::CreatePortalRequest { user_id: "u3".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(portal.url, "https://billing.stripe.test/p/session");
    let plans = s
        .client
        .clone()
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap()
        .into_inner()
        .plans;
    let ids: Vec<_> = plans
        .iter()
        .map(|p| (p.plan(), p.price.as_ref().unwrap().amount))
        .collect();
    assert_eq!(
        ids,
        vec![
            (pb::Plan::Free, 0),
            (pb::Plan::Pro, 2900),
            (pb::Plan::Enterprise, 29900)
        ]
    );
});

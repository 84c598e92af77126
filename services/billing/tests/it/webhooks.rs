//! Webhooks as Stripe delivers them: signatures, redeliveries, disorder, concurrency, the
//! reconciliation pass, payment-failure notices.

use std::time::{Duration, Instant};

use portico_billing::{
    domain::{Plan, Status},
    error::BillingError,
    signature,
    store::{EventRow, SubscriptionRow},
};
use portico_proto::billing::v1 as pb;
use serde_json::json;

use crate::{
    SECRET, Service, each_backend,
    fake_stripe::{FakeStripe, event},
};

async fn events_stored(s: &Service) -> i64 {
    use diesel::prelude::*;
    s.app
        .db()
        .run(|conn| {
            portico_billing::store::schema::events::table
                .count()
                .get_result::<i64>(conn)
                .map_err(portico_runtime::db::DbError::from)
        })
        .await
        .unwrap()
}

/// A paid subscription for `user` on the fake, known to the service.
async fn subscribed(s: &Service, stripe: &FakeStripe, user: &str) -> serde_json::Value {
    let session = s
        .client
        .clone()
        .create_checkout(pb::CreateCheckoutRequest {
            user_id: user.into(),
            email: format!("{user}@example.com"),
            plan: pb::Plan::Pro as i32,
        })
        .await
        .unwrap()
        .into_inner();
    stripe.fake.complete_checkout(&session.session_id)
}

each_backend!(
    bad_signatures_and_non_events_are_refused_and_nothing_is_stored,
    |backend| {
        let stripe = FakeStripe::start().await;
        let s = Service::stripe(backend, &stripe.url).await;
        let body = event("evt_x", "invoice.paid", 1, json!({"id": "in_x"}))
            .to_string()
            .into_bytes();
        let now = chrono::Utc::now().timestamp();
        let cases: Vec<(String, Vec<u8>, &str)> = vec![
            ("".into(), body.clone(), "WEBHOOK_SIGNATURE_MISSING"),
            ("t=1,v0=abc".into(), body.clone(), "WEBHOOK_SIGNATURE_MISSING"),
            (
                signature::sign(&body, "whsec_wrong", now),
                body.clone(),
                "WEBHOOK_SIGNATURE_INVALID",
            ),
            (
                signature::sign(b"{}", SECRET, now),
                body.clone(),
                "WEBHOOK_SIGNATURE_INVALID",
            ),
            (
                signature::sign(&body, SECRET, now - 301),
                body.clone(),
                "WEBHOOK_SIGNATURE_EXPIRED",
            ),
            (
                signature::sign(b"not json", SECRET, now),
                b"not json".to_vec(),
                "WEBHOOK_EVENT_INVALID",
            ),
            (
                signature::sign(b"{\"id\":\"evt\"}", SECRET, now),
                b"{\"id\":\"evt\"}".to_vec(),
                "WEBHOOK_EVENT_INVALID",
            ),
        ];
        for (header, payload, code) in cases {
            let e = s
                .client
                .clone()
                .receive_webhook(pb::ReceiveWebhookRequest {
                    payload: payload.into(),
                    signature: header.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                portico_runtime::Problem::from_status(&e).code.as_str(),
                code,
                "{header}"
            );
        }
        assert_eq!(events_stored(&s).await, 0);
        // A signature Stripe would send with a rolled secret beside it still verifies.
        let good = signature::sign(&body, SECRET, now);
        let rolled = format!(
            "{},v1={}",
            signature::sign(&body, "whsec_old", now),
            good.split("v1=").nth(1).unwrap()
        );
        assert!(matches!(s.app.receive_webhook(&body, &rolled).await, Ok((_, false))));
        // An unknown type is recorded and acknowledged, once.
        let odd = event("evt_odd", "customer.tax_id.created", now, json!({"id": "txi_1"}));
        assert_eq!(s.deliver(&odd).await.unwrap(), ("evt_odd".to_string(), false));
        assert_eq!(s.deliver(&odd).await.unwrap(), ("evt_odd".to_string(), true));
        s.settled().await;
        assert_eq!(events_stored(&s).await, 2);
    }
);

each_backend!(an_older_event_after_a_newer_one_does_not_win, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let sub = subscribed(&s, &stripe, "u1").await;
    let id = sub["id"].as_str().unwrap().to_string();
    let t = chrono::Utc::now().timestamp();
    s.deliver(&event("evt_1", "customer.subscription.created", t, sub.clone()))
        .await
        .unwrap();
    s.settled().await;
    // Stripe cancels it; the deletion is delivered, then the stale "active" update straggles in.
    let canceled = stripe
        .fake
        .update_subscription(&id, |v| v["status"] = json!("canceled"));
    s.deliver(&event("evt_3", "customer.subscription.deleted", t + 2, canceled))
        .await
        .unwrap();
    s.settled().await;
    s.deliver(&event("evt_2", "customer.subscription.updated", t + 1, sub))
        .await
        .unwrap();
    s.settled().await;
    let state = s.app.subscription("u1").await.unwrap();
    assert_eq!(state.status, Some(Status::Canceled));
    assert_eq!(s.app.entitlement("u1").await.unwrap().0, Plan::Free);
});

each_backend!(a_view_fetched_earlier_never_overwrites_a_later_one, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let row = |status: &str, fetched_at: i64| SubscriptionRow {
        id: "sub_1".into(),
        user_id: "u1".into(),
        customer_id: "cus_1".into(),
        plan: "pro".into(),
        price: "price_pro".into(),
        status: status.into(),
        current_period_end: None,
        cancel_at_period_end: false,
        fetched_at,
        updated_at: fetched_at,
    };
    let app = s.app.clone();
    let stored = |r: SubscriptionRow| {
        let app = app.clone();
        async move {
            app.db()
                .write(move |conn| r.upsert_if_newer(conn).map_err(BillingError::from))
                .await
                .unwrap()
        }
    };
    assert!(stored(row("active", 200)).await);
    assert!(!stored(row("past_due", 100)).await, "older fetch refused");
    assert!(stored(row("canceled", 300)).await);
    assert_eq!(s.app.subscription("u1").await.unwrap().status, Some(Status::Canceled));
});

each_backend!(
    concurrent_deliveries_for_one_subscription_leave_the_provider_state,
    |backend| {
        let stripe = FakeStripe::start().await;
        let s = Service::stripe(backend, &stripe.url).await;
        let sub = subscribed(&s, &stripe, "u1").await;
        let id = sub["id"].as_str().unwrap().to_string();
        stripe
            .fake
            .update_subscription(&id, |v| v["status"] = json!("past_due"));
        let t = chrono::Utc::now().timestamp();
        let deliveries = (0..20).map(|i| {
            let e = event(
                &format!("evt_c{}", i % 10),
                "customer.subscription.updated",
                t + i,
                sub.clone(),
            );
            let app = s.app.clone();
            tokio::spawn(async move {
                let payload = e.to_string().into_bytes();
                let header = signature::sign(&payload, SECRET, chrono::Utc::now().timestamp());
                app.receive_webhook(&payload, &header).await.map(|(_, dup)| !dup)
            })
        });
        let mut new = 0;
        for d in deliveries.collect::<Vec<_>>() {
            new += usize::from(d.await.unwrap().unwrap());
        }
        assert_eq!(new, 10, "ten distinct events, each recorded once");
        s.settled().await;
        assert_eq!(s.app.subscription("u1").await.unwrap().status, Some(Status::PastDue));
        // Within the grace period past_due still entitles.
        assert_eq!(s.app.entitlement("u1").await.unwrap().0, Plan::Pro);
    }
);

each_backend!(reconciliation_repairs_a_lost_webhook, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let sub = subscribed(&s, &stripe, "u1").await;
    // No event ever arrived: reconciliation finds the subscription at Stripe.
    assert_eq!(s.app.entitlement("u1").await.unwrap().0, Plan::Free);
    assert_eq!(s.app.reconcile().await.unwrap(), 1);
    assert_eq!(s.app.entitlement("u1").await.unwrap().0, Plan::Pro);
    // A cancellation whose webhook was lost is repaired too.
    stripe
        .fake
        .update_subscription(sub["id"].as_str().unwrap(), |v| v["status"] = json!("unpaid"));
    s.app.reconcile().await.unwrap();
    assert_eq!(s.app.entitlement("u1").await.unwrap(), (Plan::Free, None));
});

each_backend!(payment_failures_notify_once_per_attempt, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    let sub = subscribed(&s, &stripe, "u1").await;
    let t = chrono::Utc::now().timestamp();
    let failed = |attempt: i64| {
        json!({"id": "in_9", "object": "invoice", "number": "PRTC-0009", "customer": sub["customer"],
            "amount_due": 2900, "currency": "usd", "attempt_count": attempt,
            "hosted_invoice_url": "https://invoice.stripe.test/in_9",
            "subscription": sub["id"]})
    };
    for (n, attempt) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)] {
        s.deliver(&event(
            &format!("evt_f{n}"),
            "invoice.payment_failed",
            t,
            failed(attempt),
        ))
        .await
        .unwrap();
    }
    s.settled().await;
    let mail = s.smtp.wait_for(2, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.smtp.messages().len(), 2, "one notice per attempt");
    assert!(mail[0].text().contains("billing portal"), "{}", mail[0].text());
    assert!(s.app.notice_taken("payment_failed:in_9:2").await.unwrap());
    let row = {
        let app = s.app.clone();
        app.db()
            .run(|conn| EventRow::find(conn, "evt_f5").map_err(BillingError::from))
            .await
            .unwrap()
            .unwrap()
    };
    assert!(row.processed_at.is_some());
});

each_backend!(reconciliation_is_a_scheduled_job_recorded_per_run, |backend| {
    let stripe = FakeStripe::start().await;
    let s = Service::stripe(backend, &stripe.url).await;
    subscribed(&s, &stripe, "u1").await;
    let listed = s.jobs.list().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|j| (j.name.as_str(), j.schedule.as_str()))
            .collect::<Vec<_>>(),
        [
            ("billing_reconciliation", "every 1h"),
            ("retention_cleanup", "0 2 * * *")
        ]
    );
    assert!(
        listed.iter().all(|j| j.last_run.is_none()),
        "{backend:?}: a fresh database waits for the next period"
    );
    let id = s.jobs.run_now("billing_reconciliation").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let runs = s.jobs.runs("billing_reconciliation", 5).await.unwrap();
        if runs[0].outcome != "running" || Instant::now() > deadline {
            break runs[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (run.id, run.cause.as_str(), run.outcome.as_str(), run.detail.as_deref()),
        (id, "manual", "succeeded", Some("1 subscriptions re-fetched")),
        "{backend:?}"
    );
    let listed = s.jobs.list().await.unwrap();
    assert_eq!(listed[0].last_success_at, run.finished_at);
});

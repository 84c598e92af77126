//! The local provider: checkout, confirmation, the same signed events through the same
//! handler, and cancellation, with no network.

use std::time::{Duration, Instant};

use portico_billing::domain::{Plan, Status};
use portico_proto::billing::v1 as pb;

use crate::{Service, each_backend};

each_backend!(a_local_checkout_runs_the_real_code_path, |backend| {
    let s = Service::local(backend).await;
    let session = s
        .client
        .clone()
        .create_checkout(pb::CreateCheckoutRequest {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            plan: pb::Plan::Enterprise as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        session.url,
        format!("https://portico.test/v1/billing/local/checkout/{}", session.session_id)
    );
    let page = s
        .client
        .clone()
        .get_local_checkout(pb::GetLocalCheckoutRequest {
            session_id: session.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.plan(), page.status.as_str()), (pb::Plan::Enterprise, "open"));
    assert_eq!(page.price.unwrap().amount, 29_900);
    for _ in 0..2 {
        let done = s
            .client
            .clone()
            .confirm_local_checkout(pb::ConfirmLocalCheckoutRequest {
                session_id: session.session_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(done.status, "complete");
    }
    // The events come through the signed webhook path; the entitlement follows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.app.entitlement("u1").await.unwrap().0 != Plan::Enterprise {
        assert!(Instant::now() < deadline, "the local events never applied");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let receipts = s.smtp.wait_for(1, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.smtp.messages().len(), 1, "confirming twice sells once: {receipts:?}");
    assert!(receipts[0].text().contains("299.00 USD"));

    let canceled = s.app.cancel("u1", false).await.unwrap();
    assert_eq!(canceled.status, Some(Status::Canceled));
    s.settled().await;
    assert_eq!(s.app.entitlement("u1").await.unwrap().0, Plan::Free);

    let missing = s
        .client
        .clone()
        .get_local_checkout(pb::GetLocalCheckoutRequest {
            session_id: "cs_nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
});

each_backend!(an_erased_user_leaves_nothing_behind, |backend| {
    let s = Service::local(backend).await;
    let session = s.app.checkout("gone", "gone@example.com", "pro").await.unwrap();
    s.app.local().unwrap().confirm(&session.id, 2900, "usd").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.app.entitlement("gone").await.unwrap().0 != Plan::Pro {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.settled().await;
    let removed = s.app.erase_user("gone").await.unwrap();
    assert!(removed >= 2, "customer and subscription: {removed}");
    assert_eq!(s.app.subscription("gone").await.unwrap().status, None);
    assert_eq!(s.app.erase_user("gone").await.unwrap(), 0, "idempotent");
    let e = s.app.portal("gone").await.unwrap_err();
    assert!(matches!(e, portico_billing::error::BillingError::NoAccount));
});

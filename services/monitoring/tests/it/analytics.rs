//! Vitals, funnel steps and events over real gRPC: ratings at the thresholds, every bad item
//! named with nothing recorded, a session counted once per step (also under concurrency),
//! and the dashboard's percentiles and conversions read from what was stored.

use portico_proto::monitoring::v1 as pb;
use tonic::Code;

use crate::{Service, each_backend};

fn metric(name: &str, value: f64) -> pb::Metric {
    pb::Metric {
        name: name.into(),
        value,
        page: "/effects".into(),
        device: "mobile".into(),
        ..Default::default()
    }
}

async fn dashboard(s: &Service) -> pb::PerformanceDashboard {
    let now = chrono::Utc::now().timestamp_millis();
    s.client
        .clone()
        .performance_dashboard(pb::PerformanceDashboardRequest {
            from_ms: now - 3_600_000,
            to_ms: now + 60_000,
            bucket_ms: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

each_backend!(metrics_are_rated_at_the_thresholds_and_summarised, |backend| {
    let s = Service::start(backend).await;
    let r = s
        .client
        .clone()
        .record_metrics(pb::RecordMetricsRequest {
            metrics: vec![
                metric("LCP", 2500.0),
                metric("LCP", 2501.0),
                metric("LCP", 4001.0),
                metric("CLS", 0.1),
                metric("CLS", 0.25),
                metric("INP", 90.0),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.ratings,
        ["good", "needs-improvement", "poor", "good", "needs-improvement", "good"]
    );
    // 100 LCP values 1..=100 ms more: p75 within the sketch's 1 %.
    for chunk in (1..=100).collect::<Vec<i32>>().chunks(50) {
        s.client
            .clone()
            .record_metrics(pb::RecordMetricsRequest {
                metrics: chunk.iter().map(|v| metric("LCP", f64::from(*v))).collect(),
            })
            .await
            .unwrap();
    }
    let d = dashboard(&s).await;
    let lcp = d.vitals.iter().find(|v| v.name == "LCP").unwrap();
    assert_eq!(lcp.count, 103);
    assert!((lcp.p75 - 77.0).abs() / 77.0 <= 0.01, "p75 {}", lcp.p75);
    assert!((lcp.good - 101.0 / 103.0).abs() < 1e-9);
    assert!((lcp.poor - 1.0 / 103.0).abs() < 1e-9);
    let cls = d.vitals.iter().find(|v| v.name == "CLS").unwrap();
    assert_eq!((cls.count, cls.good, cls.needs_improvement), (2, 0.5, 0.5));
    let fcp = d.vitals.iter().find(|v| v.name == "FCP").unwrap();
    assert_eq!((fcp.count, fcp.p75), (0, 0.0));
});

each_backend!(bad_metrics_are_all_named_and_none_is_recorded, |backend| {
    let s = Service::start(backend).await;
    let err = s
        .client
        .clone()
        .record_metrics(pb::RecordMetricsRequest {
            metrics: vec![metric("LCP", 100.0), metric("FID", 10.0), metric("TTFB", -1.0)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let problem = portico_runtime::Problem::from_status(&err);
    assert_eq!(problem.code.http_status(), 422);
    let fields = problem.details.unwrap()["fields"].clone();
    assert!(
        fields.get("metrics[1].name").is_some() && fields.get("metrics[2].value").is_some(),
        "{fields}"
    );
    assert!(fields.get("metrics[0].name").is_none());
    let d = dashboard(&s).await;
    assert!(
        d.vitals.iter().all(|v| v.count == 0),
        "nothing recorded: {:?}",
        d.vitals
    );
    let too_many = s
        .client
        .clone()
        .record_metrics(pb::RecordMetricsRequest {
            metrics: vec![metric("LCP", 1.0); 101],
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
});

each_backend!(a_session_counts_once_per_step_and_the_funnel_converts, |backend| {
    let s = Service::start(backend).await;
    let step = |session: String, step: &'static str| {
        let mut c = s.client.clone();
        async move {
            c.record_funnel_step(pb::RecordFunnelStepRequest {
                session_id: session,
                step: step.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .first
        }
    };
    // Ten sessions discover, eight view, two upload (skipping a step is allowed).
    for i in 0..10 {
        assert!(step(format!("s{i}"), "effect_discovery").await);
    }
    for i in 0..8 {
        step(format!("s{i}"), "effect_viewing").await;
    }
    // The same session repeating a step, concurrently: counted once.
    let repeats: Vec<_> = (0..6)
        .map(|_| tokio::spawn(step("s0".into(), "image_upload")))
        .collect();
    let mut firsts = 0;
    for r in repeats {
        firsts += usize::from(r.await.unwrap());
    }
    assert_eq!(firsts, 1);
    step("s1".into(), "image_upload").await;
    let d = dashboard(&s).await;
    let sessions: Vec<u64> = d.funnel.iter().map(|f| f.sessions).collect();
    assert_eq!(sessions, [10, 8, 0, 2, 0, 0, 0, 0, 0]);
    assert_eq!(d.funnel[1].from_previous, 0.8);
    assert_eq!(d.funnel[3].from_first, 0.2);
    assert_eq!(
        (d.biggest_drop_off.as_str(), d.biggest_drop_off_sessions),
        ("effect_start", 8)
    );
    let bad = s
        .client
        .clone()
        .record_funnel_step(pb::RecordFunnelStepRequest {
            session_id: String::new(),
            step: "checkout".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let problem = portico_runtime::Problem::from_status(&bad);
    let fields = problem.details.unwrap()["fields"].clone();
    assert!(
        fields.get("sessionId").is_some() && fields.get("step").is_some(),
        "{fields}"
    );
});

each_backend!(events_are_checked_item_by_item, |backend| {
    let s = Service::start(backend).await;
    let event = |name: &str, properties: &str| pb::ProductEvent {
        name: name.into(),
        session_id: "s1".into(),
        properties_json: properties.into(),
        ..Default::default()
    };
    let ok = s
        .client
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![event("effect_shared", r#"{"effect":"oil"}"#), event("app_open", "")],
            user_id: "u1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.accepted, 2);
    let bad = s
        .client
        .clone()
        .record_events(pb::RecordEventsRequest {
            events: vec![event("ok", "{}"), event("", "[1]")],
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    let fields = portico_runtime::Problem::from_status(&bad).details.unwrap()["fields"].clone();
    assert!(
        fields.get("events[1].name").is_some() && fields.get("events[1].properties").is_some(),
        "{fields}"
    );
    assert!(s.app.erase_user("u1").await.unwrap() >= 2);
    let range = s
        .client
        .clone()
        .performance_dashboard(pb::PerformanceDashboardRequest {
            from_ms: 10,
            to_ms: 5,
            bucket_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(range.code(), Code::InvalidArgument);
});

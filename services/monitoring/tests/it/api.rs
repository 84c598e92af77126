//! The gateway's per-route measurements: shipments add up per minute, the dashboard answers
//! per-route percentiles, counts over time buckets and the error rate, and the API rules fire
//! on them.

use portico_proto::monitoring::v1 as pb;
use portico_runtime::db::now_ms;
use portico_sketch::bucket_of;
use tonic::Code;

use crate::{Service, each_backend};

const MINUTE: i64 = 60_000;

fn stat(minute: i64, route: &str, requests: i64, errors: i64, latency_ms: f64) -> pb::RouteStat {
    pb::RouteStat {
        minute_ms: minute,
        route: route.into(),
        method: "GET".into(),
        requests,
        server_errors: errors,
        client_errors: 0,
        buckets: vec![pb::HistogramBucket {
            bucket: bucket_of(latency_ms),
            count: requests,
        }],
    }
}

async fn dashboard(s: &Service, from: i64, to: i64, bucket_ms: i64) -> Result<pb::PerformanceDashboard, tonic::Status> {
    s.client
        .clone()
        .performance_dashboard(pb::PerformanceDashboardRequest {
            from_ms: from,
            to_ms: to,
            bucket_ms,
        })
        .await
        .map(|r| r.into_inner())
}

each_backend!(
    route_stats_add_up_and_answer_percentiles_counts_and_error_rates,
    |backend| {
        let s = Service::start(backend).await;
        // On the 10-minute grid, so the 5-minute buckets start at t0.
        let t0 = (now_ms() - 3_600_000) / (10 * MINUTE) * (10 * MINUTE);
        let mut client = s.client.clone();
        // Two gateways ship the same minute; a slow route with errors, a fast one without.
        for _ in 0..2 {
            client
                .record_route_stats(pb::RecordRouteStatsRequest {
                    stats: vec![
                        stat(t0, "/v1/slow", 50, 5, 900.0),
                        stat(t0 + 5 * MINUTE, "/v1/slow", 50, 0, 1100.0),
                        stat(t0 + 5 * MINUTE, "/v1/fast", 300, 0, 3.0),
                    ],
                })
                .await
                .unwrap();
        }
        let d = dashboard(&s, t0, t0 + 10 * MINUTE, 5 * MINUTE).await.unwrap();
        assert_eq!(
            (d.bucket_ms, d.requests, d.server_errors),
            (5 * MINUTE, 800, 10),
            "{backend:?}"
        );
        assert_eq!(
            d.routes.iter().map(|r| r.route.as_str()).collect::<Vec<_>>(),
            ["/v1/fast", "/v1/slow"],
            "busiest first"
        );
        let slow = &d.routes[1];
        assert_eq!((slow.requests, slow.server_errors), (200, 10));
        let l = slow.latency.unwrap_or_default();
        assert!(
            (l.p50 - 900.0).abs() < 20.0 && (l.p99 - 1100.0).abs() < 25.0,
            "{backend:?}: {l:?}"
        );
        assert_eq!(
            slow.series.iter().map(|p| (p.requests, p.errors)).collect::<Vec<_>>(),
            [(100, 10), (100, 0)]
        );
        assert_eq!(d.series.len(), 2);
        assert_eq!((d.series[1].start_ms, d.series[1].requests), (t0 + 5 * MINUTE, 700));
        let p95 = d.series[0].latency.unwrap_or_default().p95;
        assert!(
            (p95 - 900.0).abs() < 20.0,
            "{backend:?}: the first bucket holds only the slow route: {p95}"
        );

        let bad = dashboard(&s, t0, t0 + 10 * MINUTE, 90_000).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(format!("{bad:?}").contains("bucket"));
        let refused = client
            .record_route_stats(pb::RecordRouteStatsRequest {
                stats: vec![pb::RouteStat {
                    requests: -1,
                    ..stat(t0, "", 1, 0, 1.0)
                }],
            })
            .await
            .unwrap_err();
        assert!(format!("{refused:?}").contains("stats[0].route"), "{refused:?}");
    }
);

each_backend!(api_rules_fire_on_the_gateways_measurements, |backend| {
    let s = Service::start(backend).await;
    let mut client = s.client.clone();
    for (name, metric, threshold, route) in [
        ("Slow API", "api_p95_ms", 1000.0, ""),
        ("Errors on /v1/slow", "api_error_rate", 5.0, "/v1/slow"),
    ] {
        client
            .create_alert_rule(pb::AlertRuleInput {
                name: name.into(),
                metric: metric.into(),
                route: route.into(),
                condition: "gt".into(),
                threshold,
                window_seconds: 300,
                severity: "critical".into(),
                enabled: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let now = now_ms();
    assert_eq!(
        s.app.evaluate_at(now).await.unwrap(),
        Default::default(),
        "{backend:?}: no traffic, no alert"
    );
    client
        .record_route_stats(pb::RecordRouteStatsRequest {
            stats: vec![
                stat(now, "/v1/slow", 100, 10, 2500.0),
                stat(now, "/v1/fast", 100, 0, 2500.0),
            ],
        })
        .await
        .unwrap();
    assert_eq!(s.app.evaluate_at(now).await.unwrap().fired, 2, "{backend:?}");
    let firing = client
        .list_alerts(pb::ListAlertsRequest {
            status: "firing".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let rate = firing
        .iter()
        .find(|a| a.name == "Errors on /v1/slow")
        .and_then(|a| a.value);
    assert_eq!(rate, Some(10.0), "{backend:?}: 10 of 100 on that route");
    // Ten minutes later the window is empty: both clear.
    assert_eq!(
        s.app.evaluate_at(now + 10 * MINUTE).await.unwrap().resolved,
        2,
        "{backend:?}"
    );
});

each_backend!(
    a_range_reads_whole_hours_from_the_rollup_and_its_edges_from_minutes,
    |backend| {
        let s = Service::start(backend).await;
        let mut client = s.client.clone();
        let hour = 60 * MINUTE;
        let h0 = (now_ms() - 6 * hour) / hour * hour;
        // One request a minute for four hours, each a minute's worth of one route; one LCP and one
        // funnel step a minute.
        let stats: Vec<pb::RouteStat> = (0..240)
            .map(|m| stat(h0 + m * MINUTE, "/v1/x", 1, i64::from(m % 10 == 0), 10.0))
            .collect();
        client
            .record_route_stats(pb::RecordRouteStatsRequest { stats })
            .await
            .unwrap();
        for chunk in (0..240).collect::<Vec<i64>>().chunks(100) {
            let metrics = chunk
                .iter()
                .map(|m| pb::Metric {
                    name: "LCP".into(),
                    value: 1000.0,
                    occurred_at_ms: h0 + m * MINUTE,
                    ..Default::default()
                })
                .collect();
            client
                .record_metrics(pb::RecordMetricsRequest { metrics })
                .await
                .unwrap();
        }
        for m in 0..240 {
            client
                .record_funnel_step(pb::RecordFunnelStepRequest {
                    session_id: format!("s{m}"),
                    step: "effect_discovery".into(),
                    occurred_at_ms: h0 + m * MINUTE,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        // 00:30 to 03:15: two whole hours and 45 minutes of edges = 165 minutes.
        let (from, to) = (h0 + 30 * MINUTE, h0 + 3 * hour + 15 * MINUTE);
        let d = dashboard(&s, from, to, hour).await.unwrap();
        assert_eq!(d.requests, 165, "{backend:?}");
        let errors = (30..195).filter(|m| m % 10 == 0).count() as i64;
        assert_eq!(d.server_errors, errors, "{backend:?}");
        assert_eq!(
            d.series.iter().map(|p| p.requests).collect::<Vec<_>>(),
            [30, 60, 60, 15],
            "{backend:?}: hour buckets"
        );
        assert_eq!(d.routes[0].requests, 165);
        let lcp = d.vitals.iter().find(|v| v.name == "LCP").map(|v| v.count);
        assert_eq!(lcp, Some(165), "{backend:?}");
        assert_eq!(d.funnel[0].sessions, 165, "{backend:?}");
        // The same range in 5-minute buckets reads minutes only and agrees.
        let fine = dashboard(&s, from, to, 5 * MINUTE).await.unwrap();
        assert_eq!(
            (fine.requests, fine.server_errors, fine.series.len()),
            (165, errors, 33),
            "{backend:?}"
        );
    }
);

each_backend!(
    a_range_reads_whole_days_then_hours_then_minutes_and_agrees_with_the_minutes,
    |backend| {
        let s = Service::start(backend).await;
        let mut client = s.client.clone();
        let (hour, day) = (60 * MINUTE, 1_440 * MINUTE);
        let d0 = (now_ms() - 5 * day) / day * day;
        // A request every 10 minutes for four days on two routes, the second twice as slow.
        let stats: Vec<pb::RouteStat> = (0..4 * 144)
            .flat_map(|i| {
                let m = d0 + i * 10 * MINUTE;
                [
                    stat(m, "/v1/a", 1, i64::from(i % 7 == 0), 10.0),
                    stat(m, "/v1/b", 2, 0, 20.0),
                ]
            })
            .collect();
        client
            .record_route_stats(pb::RecordRouteStatsRequest { stats })
            .await
            .unwrap();
        // 20:05 on day 0 to 03:30 on day 3: 3h55 of edges, two whole days, 3h30 of edges.
        let (from, to) = (d0 + 20 * hour + 5 * MINUTE, d0 + 3 * day + 3 * hour + 30 * MINUTE);
        let daily = dashboard(&s, from, to, day).await.unwrap();
        let fine = dashboard(&s, from, to, 10 * MINUTE).await.unwrap();
        // 10-minute marks in [20:05, day 3 03:30): 20:10 … 03:20.
        let marks: Vec<i64> = (0..4 * 144)
            .filter(|i| (from..to).contains(&(d0 + i * 10 * MINUTE)))
            .collect();
        let errors = marks.iter().filter(|i| *i % 7 == 0).count() as i64;
        let n = marks.len() as i64;
        for d in [&daily, &fine] {
            assert_eq!(
                (d.requests, d.server_errors),
                (3 * n, errors),
                "{backend:?}: bucket {}",
                d.bucket_ms
            );
            let per_route: Vec<(&str, i64)> = d.routes.iter().map(|r| (r.route.as_str(), r.requests)).collect();
            assert_eq!(per_route, [("/v1/b", 2 * n), ("/v1/a", n)], "{backend:?}");
            let b = d.routes[0].latency.unwrap_or_default();
            assert!((b.p50 - 20.0).abs() < 0.5, "{backend:?}: {b:?}");
        }
        // Day buckets: the edge of day 0 (23 marks), days 1 and 2 (144 each), 21 marks of day 3.
        assert_eq!(
            daily.series.iter().map(|p| p.requests).collect::<Vec<_>>(),
            [3 * 23, 3 * 144, 3 * 144, 3 * 21],
            "{backend:?}"
        );
        assert_eq!(daily.series[1].start_ms, d0 + day);
        let p50 = daily.series[1].latency.unwrap_or_default().p50;
        assert!(
            (p50 - 20.0).abs() < 0.5,
            "{backend:?}: two of three requests are /v1/b: {p50}"
        );
        assert_eq!(daily.routes[1].series.iter().map(|p| p.errors).sum::<i64>(), errors);
    }
);

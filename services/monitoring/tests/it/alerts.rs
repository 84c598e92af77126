//! Alerts: rules, the lifecycle on a clock of the test's own with exactly the expected mail,
//! signed links, Alertmanager's payload, client-reported alerts, webhooks, health probes
//! raising and clearing `service_down`, and one evaluator across two replicas.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use portico_proto::monitoring::v1 as pb;
use portico_runtime::db::now_ms;
use portico_testkit::{SmtpSink, TestDb};
use serde_json::Value;
use tonic::Code;

use crate::{Service, each_backend};

fn rule(name: &str, metric: &str, threshold: f64, notify: &[&str]) -> pb::AlertRuleInput {
    pb::AlertRuleInput {
        name: name.into(),
        metric: metric.into(),
        condition: "gt".into(),
        threshold,
        window_seconds: 300,
        for_seconds: 60,
        severity: "critical".into(),
        repeat_interval_seconds: 300,
        notify: notify.iter().map(|s| s.to_string()).collect(),
        enabled: true,
        ..Default::default()
    }
}

async fn alerts(s: &Service, status: &str) -> Vec<pb::Alert> {
    s.client
        .clone()
        .list_alerts(pb::ListAlertsRequest {
            status: status.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts
}

async fn lcp(s: &Service, value: f64, at: i64) {
    s.client
        .clone()
        .record_metrics(pb::RecordMetricsRequest {
            metrics: vec![pb::Metric {
                name: "LCP".into(),
                value,
                occurred_at_ms: at,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
}

/// The token of the `action` link in a notice.
fn link_token(text: &str, action: &str) -> String {
    let marker = format!("/{action}?token=");
    let at = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {action} link in:\n{text}"))
        + marker.len();
    text[at..].split_whitespace().next().unwrap_or_default().to_string()
}

fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect()
}

each_backend!(defaults_are_seeded_once_and_rules_are_checked, |backend| {
    let db = Arc::new(TestDb::new(backend, "alert_rules"));
    let s = Service::start_with(db.clone(), &[]).await;
    let mut client = s.client.clone();
    let rules = client
        .list_alert_rules(pb::ListAlertRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    let names: Vec<&str> = rules
        .iter()
        .filter_map(|r| r.rule.as_ref())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "API p95 above 3 s",
            "API p95 above 5 s",
            "API error rate above 5 %",
            "Memory above 80 %",
            "Cache hit rate below 60 %",
            "Service down"
        ],
        "{backend:?}"
    );
    // A deleted default stays deleted when the service starts again.
    client
        .delete_alert_rule(pb::AlertRuleRef {
            id: rules[0].id.clone(),
        })
        .await
        .unwrap();
    drop(s);
    let again = Service::start_with(db, &[]).await;
    let left = again
        .client
        .clone()
        .list_alert_rules(pb::ListAlertRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(left.len(), 5, "{backend:?}");

    let bad = again
        .client
        .clone()
        .create_alert_rule(pb::AlertRuleInput {
            metric: "vital_p75".into(),
            notify: vec!["not-an-address".into(), "ftp://x".into()],
            ..rule("", "vital_p75", 1.0, &[])
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{backend:?}");
    for field in ["name", "vital", "notify[0]", "notify[1]"] {
        assert!(
            bad.message().contains(field) || format!("{bad:?}").contains(field),
            "{backend:?}: {field} in {bad:?}"
        );
    }
    let made = again
        .client
        .clone()
        .create_alert_rule(pb::AlertRuleInput {
            vital: "LCP".into(),
            ..rule("LCP slow", "vital_p75", 4000.0, &["ops@example.com"])
        })
        .await
        .unwrap()
        .into_inner();
    let patched = again
        .client
        .clone()
        .update_alert_rule(pb::UpdateAlertRuleRequest {
            id: made.id.clone(),
            threshold: Some(3000.0),
            enabled: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let r = patched.rule.unwrap_or_default();
    assert_eq!(
        (r.threshold, r.enabled, r.name.as_str()),
        (3000.0, false, "LCP slow"),
        "{backend:?}"
    );
    let refused = again
        .client
        .clone()
        .update_alert_rule(pb::UpdateAlertRuleRequest {
            id: made.id.clone(),
            metric: Some("api_p95_ms".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("vital"),
        "{backend:?}: a patch is checked whole: {refused:?}"
    );
    let missing = again
        .client
        .clone()
        .get_alert_rule(pb::AlertRuleRef { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{backend:?}");
});

each_backend!(
    the_lifecycle_on_a_test_clock_sends_exactly_the_expected_mail,
    |backend| {
        let sink = SmtpSink::start();
        let smtp = sink.url();
        let s = Service::start_with(
            Arc::new(TestDb::new(backend, "alert_life")),
            &[("PORTICO_SMTP_URL", smtp.as_str())],
        )
        .await;
        s.client
            .clone()
            .create_alert_rule(pb::AlertRuleInput {
                vital: "LCP".into(),
                ..rule("LCP poor", "vital_p75", 4000.0, &["ops@example.com"])
            })
            .await
            .unwrap();
        // The clock: two hours ago, so every data point is in the past.
        let t0 = now_ms() - 2 * 3_600_000;
        let sec = 1000;
        for at in [0, 120, 240, 360, 600] {
            lcp(&s, 5000.0, t0 + at * sec).await;
        }

        let pass = s.app.evaluate_at(t0).await.unwrap();
        assert_eq!(pass.pended, 1, "{backend:?}");
        assert_eq!(alerts(&s, "pending").await.len(), 1, "{backend:?}");
        assert_eq!(s.app.evaluate_at(t0 + 30 * sec).await.unwrap().fired, 0, "{backend:?}");

        assert_eq!(
            s.app.evaluate_at(t0 + 60 * sec).await.unwrap().fired,
            1,
            "{backend:?}: fires after forSeconds"
        );
        let firing = alerts(&s, "firing").await;
        assert_eq!(firing.len(), 1, "{backend:?}");
        assert_eq!(
            firing[0].labels.get("vital").map(String::as_str),
            Some("LCP"),
            "{backend:?}"
        );
        assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1, "{backend:?}");

        assert_eq!(
            s.app.evaluate_at(t0 + 120 * sec).await.unwrap(),
            Default::default(),
            "{backend:?}"
        );
        assert_eq!(
            s.app.evaluate_at(t0 + 360 * sec).await.unwrap().repeated,
            1,
            "{backend:?}: a reminder"
        );
        let mails = sink.wait_for(2, Duration::from_secs(10));
        assert_eq!(mails.len(), 2, "{backend:?}");

        // Acknowledged through the reminder's link: no more reminders while it still breaches.
        let token = link_token(&mails[1].text(), "acknowledge");
        let id = firing[0].id.clone();
        let wrong = s
            .client
            .clone()
            .resolve_alert(pb::AlertActionRequest {
                id: id.clone(),
                token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            wrong.code(),
            Code::InvalidArgument,
            "{backend:?}: an acknowledge link cannot resolve"
        );
        let acked = s
            .client
            .clone()
            .acknowledge_alert(pb::AlertActionRequest {
                id: id.clone(),
                token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (acked.status.as_str(), acked.acknowledged_by.as_str()),
            ("acknowledged", "e-mail link"),
            "{backend:?}"
        );
        assert_eq!(
            s.app.evaluate_at(t0 + 700 * sec).await.unwrap(),
            Default::default(),
            "{backend:?}"
        );

        // The data stops: it resolves by itself, announced.
        assert_eq!(
            s.app.evaluate_at(t0 + 1000 * sec).await.unwrap().resolved,
            1,
            "{backend:?}"
        );
        let resolved = s
            .client
            .clone()
            .get_alert(pb::AlertRef { id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (resolved.status.as_str(), resolved.resolved_by.as_str()),
            ("resolved", "cleared"),
            "{backend:?}"
        );
        sink.wait_for(3, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            subjects(&sink),
            [
                "[FIRING] LCP poor (critical)",
                "[FIRING, reminder] LCP poor (critical)",
                "[RESOLVED] LCP poor (critical)"
            ],
            "{backend:?}"
        );
        let last = sink.messages()[2].text();
        assert!(
            !last.contains("token="),
            "{backend:?}: a resolved notice carries no action links"
        );

        // A breach that clears while pending is dropped unannounced.
        let t1 = t0 + 3_000 * sec;
        lcp(&s, 9000.0, t1).await;
        assert_eq!(s.app.evaluate_at(t1).await.unwrap().pended, 1, "{backend:?}");
        assert_eq!(
            s.app.evaluate_at(t1 + 400 * sec).await.unwrap().forgotten,
            1,
            "{backend:?}"
        );
        assert!(alerts(&s, "pending").await.is_empty(), "{backend:?}");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(sink.messages().len(), 3, "{backend:?}");
    }
);

each_backend!(acknowledging_and_resolving_by_hand, |backend| {
    let s = Service::start(backend).await;
    let mut client = s.client.clone();
    let project = client
        .create_project(pb::CreateProjectRequest { name: "shop".into() })
        .await
        .unwrap()
        .into_inner();
    client
        .create_alert_rule(pb::AlertRuleInput {
            project_id: project.id,
            for_seconds: 0,
            ..rule("Errors in shop", "error_events", 0.0, &[])
        })
        .await
        .unwrap();
    let now = now_ms();
    assert_eq!(
        s.app.evaluate_at(now).await.unwrap(),
        Default::default(),
        "{backend:?}: no errors, no alert"
    );
    client
        .ingest_error(pb::IngestErrorRequest {
            project_id: project.id,
            message: "boom".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        s.app.evaluate_at(now_ms()).await.unwrap().fired,
        1,
        "{backend:?}: forSeconds 0 fires at once"
    );
    let a = alerts(&s, "firing").await.remove(0);
    assert_eq!(a.value, Some(1.0), "{backend:?}");
    let action = |actor: &str| pb::AlertActionRequest {
        id: a.id.clone(),
        actor: actor.into(),
        token: String::new(),
    };
    let acked = client.acknowledge_alert(action("admin-1")).await.unwrap().into_inner();
    assert_eq!(
        (acked.status.as_str(), acked.acknowledged_by.as_str()),
        ("acknowledged", "admin-1")
    );
    let again = client.acknowledge_alert(action("admin-2")).await.unwrap().into_inner();
    assert_eq!(
        again.acknowledged_by, "admin-1",
        "{backend:?}: acknowledging twice changes nothing"
    );
    let resolved = client.resolve_alert(action("admin-2")).await.unwrap().into_inner();
    assert_eq!(resolved.status, "resolved", "{backend:?}");
    let late = client.acknowledge_alert(action("admin-1")).await.unwrap_err();
    assert_eq!(
        late.code(),
        Code::AlreadyExists,
        "{backend:?}: a resolved alert cannot be acknowledged"
    );
    let forged = client
        .acknowledge_alert(pb::AlertActionRequest {
            id: a.id.clone(),
            token: "9999999999.00ff".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::InvalidArgument, "{backend:?}");
    let bad_status = client
        .list_alerts(pb::ListAlertsRequest {
            status: "open".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_status.code(), Code::InvalidArgument, "{backend:?}");
});

each_backend!(alertmanager_alerts_land_in_the_inbox_and_resolve, |backend| {
    let s = Service::start(backend).await;
    let mut client = s.client.clone();
    let labels: HashMap<String, String> = [("alertname", "HighLatency"), ("severity", "critical"), ("job", "api")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let am = |status: &str| pb::AlertmanagerAlert {
        status: status.into(),
        labels: labels.clone(),
        annotations: [("summary".to_string(), "p99 over 2s".to_string())]
            .into_iter()
            .collect(),
        starts_at_ms: now_ms() - 60_000,
        ends_at_ms: 0,
        fingerprint: "c0ffee".into(),
    };
    let r = client
        .receive_alertmanager(pb::AlertmanagerRequest {
            alerts: vec![am("firing")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.opened, r.resolved), (1, 0), "{backend:?}");
    // Alertmanager resends firing alerts every group interval: still one alert.
    let r = client
        .receive_alertmanager(pb::AlertmanagerRequest {
            alerts: vec![am("firing")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.opened, r.resolved), (0, 0), "{backend:?}");
    let open = alerts(&s, "firing").await;
    assert_eq!(open.len(), 1, "{backend:?}");
    assert_eq!(
        (
            open[0].source.as_str(),
            open[0].name.as_str(),
            open[0].severity.as_str()
        ),
        ("alertmanager", "HighLatency", "critical")
    );
    assert_eq!(
        open[0].annotations.get("summary").map(String::as_str),
        Some("p99 over 2s")
    );
    let r = client
        .receive_alertmanager(pb::AlertmanagerRequest {
            alerts: vec![am("resolved")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.opened, r.resolved), (0, 1), "{backend:?}");
    assert!(alerts(&s, "firing").await.is_empty(), "{backend:?}");
    let nameless = client
        .receive_alertmanager(pb::AlertmanagerRequest {
            alerts: vec![pb::AlertmanagerAlert {
                status: "firing".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert!(
        format!("{nameless:?}").contains("alerts[0].labels.alertname"),
        "{backend:?}: {nameless:?}"
    );
});

/// A webhook receiver on loopback: the bodies it was posted.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                store
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            let mut out = stream;
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

each_backend!(
    client_alerts_notify_webhooks_in_alertmanagers_shape_and_expire,
    |backend| {
        let (url, got) = receiver();
        let s = Service::start_with(
            Arc::new(TestDb::new(backend, "client_alerts")),
            &[("PORTICO_ALERT_NOTIFY", url.as_str())],
        )
        .await;
        let mut client = s.client.clone();
        let report = pb::ClientAlertRequest {
            metric: "LCP".into(),
            page: "/checkout".into(),
            value: Some(9100.0),
            message: "checkout paints in 9 s".into(),
            user_id: "u1".into(),
            ..Default::default()
        };
        let a = client.report_client_alert(report.clone()).await.unwrap().into_inner();
        let b = client.report_client_alert(report).await.unwrap().into_inner();
        assert_eq!(a.id, b.id, "{backend:?}: one alert per metric and page");
        assert_eq!((a.status.as_str(), a.severity.as_str()), ("firing", "critical"));
        for _ in 0..200 {
            if !got.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let bodies = got.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1, "{backend:?}: one notice");
        let body = &bodies[0];
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["alerts"][0]["labels"]["page"], "/checkout");
        assert_eq!(body["alerts"][0]["annotations"]["summary"], "checkout paints in 9 s");
        assert_eq!(body["alerts"][0]["fingerprint"], a.fingerprint.as_str());
        // Nobody reports it for five minutes: it resolves, announced.
        let pass = s
            .app
            .evaluate_at(now_ms() + portico_monitoring::alerts::RESOLVE_TIMEOUT_MS + 1)
            .await
            .unwrap();
        assert_eq!(pass.resolved, 1, "{backend:?}");
        for _ in 0..200 {
            if got.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            got.lock().unwrap().get(1).map(|b| b["status"].clone()),
            Some(Value::from("resolved"))
        );
        let bad = client
            .report_client_alert(pb::ClientAlertRequest {
                severity: "page".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let text = format!("{bad:?}");
        assert!(
            text.contains("metric") && text.contains("message") && text.contains("severity"),
            "{text}"
        );
    }
);

each_backend!(health_probes_raise_and_clear_service_down, |backend| {
    // The probed "beta" is a real gRPC server serving Ops (another monitoring process).
    let beta = Service::start(backend).await;
    let beta_addr = beta.addr;
    let sink = SmtpSink::start();
    let (smtp, beta_url) = (sink.url(), format!("http://{beta_addr}"));
    let s = Service::start_with(
        Arc::new(TestDb::new(backend, "probes")),
        &[
            ("PORTICO_SMTP_URL", smtp.as_str()),
            ("PORTICO_BETA_URL", beta_url.as_str()),
            ("PORTICO_MONITORING_PROBE_SERVICES", "beta"),
            ("PORTICO_ALERT_EVAL_INTERVAL_SECS", "1"),
            ("PORTICO_MONITORING_PROBE_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    s.client
        .clone()
        .create_alert_rule(pb::AlertRuleInput {
            for_seconds: 0,
            window_seconds: 60,
            ..rule("Beta down", "service_down", 0.0, &["oncall@example.com"])
        })
        .await
        .unwrap();
    let health = |s: &Service| {
        let mut c = s.client.clone();
        async move {
            c.system_health(pb::SystemHealthRequest {})
                .await
                .unwrap()
                .into_inner()
                .targets
        }
    };
    let mut up = Vec::new();
    for _ in 0..100 {
        up = health(&s).await;
        if up.iter().any(|t| t.target == "beta" && t.healthy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let beta_row = up.iter().find(|t| t.target == "beta").cloned().unwrap_or_default();
    assert!(beta_row.healthy && !beta_row.version.is_empty(), "{backend:?}: {up:?}");
    assert!(
        up.iter().any(|t| t.target == "beta/database" && t.healthy),
        "{backend:?}: dependencies too: {up:?}"
    );
    assert!(sink.messages().is_empty(), "{backend:?}: nothing down, no mail");

    drop(beta);
    let mails = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1, "{backend:?}: beta went down");
    assert_eq!(
        mails[0].header("Subject").unwrap_or_default(),
        "[FIRING] Beta down (critical)"
    );
    assert!(mails[0].text().contains("service=beta"), "{backend:?}");

    // Beta back on the same address: the alert clears by itself.
    let mut back = None;
    for _ in 0..50 {
        let addr = beta_addr.to_string();
        let restarted = tokio::spawn(async move {
            Service::start_with(
                Arc::new(TestDb::new(backend, "beta_again")),
                &[("PORTICO_MONITORING_GRPC_ADDR", addr.as_str())],
            )
            .await
        })
        .await;
        if let Ok(svc) = restarted {
            back = Some(svc);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "{backend:?}: beta restarts on its address");
    let mails = sink.wait_for(2, Duration::from_secs(20));
    assert_eq!(
        mails.get(1).and_then(|m| m.header("Subject")).unwrap_or_default(),
        "[RESOLVED] Beta down (critical)",
        "{backend:?}: {:?}",
        mails.iter().map(|m| m.text()).collect::<Vec<_>>()
    );
});

each_backend!(two_replicas_run_one_evaluator, |backend| {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let db = Arc::new(TestDb::new(backend, "two_replicas"));
    let vars = [
        ("PORTICO_SMTP_URL", smtp.as_str()),
        ("PORTICO_ALERT_EVAL_INTERVAL_SECS", "1"),
    ];
    let a = Service::start_with(db.clone(), &vars).await;
    let b = Service::start_with(db.clone(), &vars).await;
    a.client
        .clone()
        .create_alert_rule(pb::AlertRuleInput {
            for_seconds: 0,
            repeat_interval_seconds: 0,
            ..rule("Any error", "error_events", 0.0, &["oncall@example.com"])
        })
        .await
        .unwrap();
    b.client
        .clone()
        .ingest_error(pb::IngestErrorRequest {
            message: "boom".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sink.wait_for(1, Duration::from_secs(15)).len(), 1, "{backend:?}");
    // Several more passes of both replicas: still one alert, one notice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sink.messages().len(), 1, "{backend:?}");
    let all = alerts(&a, "").await;
    assert_eq!(all.len(), 1, "{backend:?}");
    assert_eq!(all[0].notifications, 1, "{backend:?}");

    // The leader stops (whichever it was): the other takes over and keeps evaluating.
    drop(a);
    b.client
        .clone()
        .create_alert_rule(pb::AlertRuleInput {
            for_seconds: 0,
            threshold: 0.5,
            ..rule("Any error, again", "error_events", 0.0, &["oncall@example.com"])
        })
        .await
        .unwrap();
    assert_eq!(
        sink.wait_for(2, Duration::from_secs(20)).len(),
        2,
        "{backend:?}: the survivor evaluates"
    );
});

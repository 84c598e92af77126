//! Error ingest: envelopes and store bodies as the SDKs send them, keys, grouping, counts,
//! duplicates, regressions, paging and erasure.

use portico_proto::monitoring::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::{Service, each_backend};

async fn project(s: &Service, name: &str) -> pb::Project {
    s.client
        .clone()
        .create_project(pb::CreateProjectRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

fn envelope(event: &Value) -> Vec<u8> {
    let payload = event.to_string();
    format!(
        "{}\n{}\n{payload}\n{}\n{}\n",
        json!({"event_id": event["event_id"], "sent_at": "2026-12-02T00:00:00Z"}),
        json!({"type": "event", "length": payload.len()}),
        json!({"type": "session"}),
        json!({"sid": "s1", "status": "ok"}),
    )
    .into_bytes()
}

fn python_error(id: &str, value: &str, function: &str, user: &str) -> Value {
    json!({
        "event_id": id,
        "timestamp": 1764637323.5,
        "platform": "python",
        "level": "error",
        "release": "shop@1.0.0",
        "user": {"id": user},
        "exception": {"values": [{
            "type": "KeyError", "value": value,
            "stacktrace": {"frames": [
                {"module": "flask.app", "function": "dispatch", "filename": "/venv/lib/python3.12/site-packages/flask/app.py", "in_app": false, "lineno": 880},
                {"module": "shop.cart", "function": function, "context_line": "return items[key]", "in_app": true, "lineno": 42}
            ]}
        }]}
    })
}

async fn ingest(s: &Service, p: &pb::Project, body: Vec<u8>) -> Result<pb::IngestResponse, tonic::Status> {
    s.client
        .clone()
        .ingest_sentry(pb::IngestSentryRequest {
            project_id: p.id,
            auth: format!(
                "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.19.0",
                p.public_key
            ),
            body: body.into(),
            store: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn groups(s: &Service, project_id: i64) -> Vec<pb::Group> {
    s.client
        .clone()
        .list_groups(pb::ListGroupsRequest {
            project_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups
}

each_backend!(projects_get_numeric_ids_and_32_hex_keys, |backend| {
    let s = Service::start(backend).await;
    let a = project(&s, "shop").await;
    let b = project(&s, "admin").await;
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!(a.dsn, format!("https://{}@portico.test/sentry/1", a.public_key));
    for p in [&a, &b] {
        assert_eq!(p.public_key.len(), 32);
        assert!(p.public_key.bytes().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(a.public_key, b.public_key);
    let err = s
        .client
        .clone()
        .create_project(pb::CreateProjectRequest { name: "  ".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let all = s
        .client
        .clone()
        .list_projects(pb::ListProjectsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.projects.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["shop", "admin"]
    );
});

each_backend!(
    an_envelope_is_grouped_counted_once_per_event_id_and_users_counted_once,
    |backend| {
        let s = Service::start(backend).await;
        let p = project(&s, "shop").await;
        let first = ingest(
            &s,
            &p,
            envelope(&python_error("a".repeat(32).as_str(), "'k1'", "total", "u1")),
        )
        .await
        .unwrap();
        assert_eq!(first.event_id, "a".repeat(32));
        // Another value, another line, the same code path: the same group.
        let mut other = python_error(&"b".repeat(32), "'k2'", "total", "u2");
        other["exception"]["values"][0]["stacktrace"]["frames"][1]["lineno"] = json!(57);
        let second = ingest(&s, &p, envelope(&other)).await.unwrap();
        assert_eq!(second.group_id, first.group_id);
        // The SDK retried a send: not counted again.
        let again = ingest(&s, &p, envelope(&other)).await.unwrap();
        assert_eq!(again.group_id, first.group_id);
        ingest(&s, &p, envelope(&python_error(&"c".repeat(32), "'k3'", "total", "u1")))
            .await
            .unwrap();
        // Another in-app function: another group.
        let third = ingest(
            &s,
            &p,
            envelope(&python_error(&"d".repeat(32), "'k1'", "checkout", "u1")),
        )
        .await
        .unwrap();
        assert_ne!(third.group_id, first.group_id);
        let listed = groups(&s, p.id).await;
        assert_eq!(listed.len(), 2);
        let g = listed.iter().find(|g| g.id == first.group_id).unwrap();
        assert_eq!((g.count, g.users_affected), (3, 2));
        assert_eq!(g.title, "KeyError: 'k3'");
        assert_eq!(g.culprit, "shop.cart in total");
        assert_eq!(g.first_release, "shop@1.0.0");
        assert_eq!(g.status, pb::GroupStatus::Open as i32);
        let detail = s
            .client
            .clone()
            .get_group(pb::GetGroupRequest {
                group_id: first.group_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(detail.latest_event_id, "c".repeat(32));
        let latest: Value = serde_json::from_str(&detail.latest_event_json).unwrap();
        assert_eq!(latest["exception"]["values"][0]["value"], "'k3'");
    }
);

each_backend!(keys_are_checked_from_the_request_or_the_envelope_dsn, |backend| {
    let s = Service::start(backend).await;
    let p = project(&s, "shop").await;
    let other = project(&s, "other").await;
    let body = envelope(&json!({"message": "boom"}));
    // Another project's key, a made-up key, and an unknown project all answer the same.
    for (project_id, key) in [
        (p.id, other.public_key.as_str()),
        (p.id, "0".repeat(32).as_str()),
        (99, p.public_key.as_str()),
    ] {
        let err = s
            .client
            .clone()
            .ingest_sentry(pb::IngestSentryRequest {
                project_id,
                auth: format!("sentry_version=7&sentry_key={key}"),
                body: body.clone().into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{project_id} {key}");
    }
    assert!(groups(&s, p.id).await.is_empty());
    // No key in the request: the envelope header's DSN carries it.
    let with_dsn = format!(
        "{}\n{}\n{}\n",
        json!({"dsn": format!("https://{}@portico.test/sentry/{}", p.public_key, p.id)}),
        json!({"type": "event"}),
        json!({"message": "from the dsn"})
    );
    let ok = s
        .client
        .clone()
        .ingest_sentry(pb::IngestSentryRequest {
            project_id: p.id,
            body: with_dsn.into_bytes().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.event_id.len(), 32);
    // The legacy store endpoint: the body is the event.
    let stored = s
        .client
        .clone()
        .ingest_sentry(pb::IngestSentryRequest {
            project_id: p.id,
            auth: format!("Sentry sentry_key={}", p.public_key),
            body: json!({"message": "stored 1", "event_id": "e".repeat(32)})
                .to_string()
                .into_bytes()
                .into(),
            store: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.event_id, "e".repeat(32));
    // Two events in one envelope (Sentry allows one): refused, nothing stored.
    let two = format!(
        "{{}}\n{}\n{}\n{}\n{}\n",
        json!({"type": "event"}),
        json!({"message": "one"}),
        json!({"type": "event"}),
        json!({"message": "two"})
    );
    let refused = ingest(&s, &p, two.into_bytes()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("at most one event"), "{}", refused.message());
    // Not an envelope: a clear 400, nothing stored.
    let bad = ingest(&s, &p, b"{}\n{\"type\":\"event\",\"length\":500}\n{}".to_vec())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("length"), "{}", bad.message());
    assert_eq!(groups(&s, p.id).await.len(), 2);
});

each_backend!(a_resolved_group_reopens_as_a_regression_once, |backend| {
    let s = Service::start(backend).await;
    let p = project(&s, "shop").await;
    let g = ingest(&s, &p, envelope(&python_error(&"1".repeat(32), "x", "f", "u")))
        .await
        .unwrap();
    let resolved = s
        .client
        .clone()
        .update_group(pb::UpdateGroupRequest {
            group_id: g.group_id.clone(),
            status: pb::GroupStatus::Resolved as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, pb::GroupStatus::Resolved as i32);
    // Concurrent recurrences: the group reopens once, every event is counted.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s_client, p) = (s.client.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let body = envelope(&python_error(&format!("{i:032x}"), "y", "f", "u"));
            s_client
                .clone()
                .ingest_sentry(pb::IngestSentryRequest {
                    project_id: p.id,
                    auth: format!("Sentry sentry_key={}", p.public_key),
                    body: body.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let listed = groups(&s, p.id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].count, 9);
    assert_eq!(listed[0].status, pb::GroupStatus::Open as i32);
    assert!(listed[0].regressed);
    // Ignored groups stay ignored when they recur.
    s.client
        .clone()
        .update_group(pb::UpdateGroupRequest {
            group_id: g.group_id.clone(),
            status: pb::GroupStatus::Ignored as i32,
        })
        .await
        .unwrap();
    ingest(&s, &p, envelope(&python_error(&"2".repeat(32), "z", "f", "u")))
        .await
        .unwrap();
    let listed = groups(&s, p.id).await;
    assert_eq!(
        (listed[0].status, listed[0].regressed),
        (pb::GroupStatus::Ignored as i32, false)
    );
    let missing = s
        .client
        .clone()
        .update_group(pb::UpdateGroupRequest {
            group_id: "nope".into(),
            status: pb::GroupStatus::Resolved as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
});

each_backend!(native_errors_go_to_a_default_project_and_page_by_cursor, |backend| {
    let s = Service::start(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s
            .client
            .clone()
            .ingest_error(pb::IngestErrorRequest {
                message: format!("checkout step {i} failed"),
                r#type: format!("Error{i}"),
                frames: vec![pb::StackFrame {
                    module: "app.checkout".into(),
                    function: format!("step{i}"),
                    in_app: true,
                    ..Default::default()
                }],
                level: "warning".into(),
                user_id: "user-1".into(),
                tags: [("region".to_string(), "eu".to_string())].into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(r.group_id);
    }
    let projects = s
        .client
        .clone()
        .list_projects(pb::ListProjectsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(projects.projects.len(), 1, "one default project, made once");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .client
            .clone()
            .list_groups(pb::ListGroupsRequest {
                cursor: cursor.clone(),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.groups.len() <= 2);
        seen.extend(page.groups.into_iter().map(|g| g.id));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    // Bad input names its field; an unknown project is refused.
    let bad = s
        .client
        .clone()
        .ingest_error(pb::IngestErrorRequest {
            level: "loud".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown = s
        .client
        .clone()
        .ingest_error(pb::IngestErrorRequest {
            project_id: 77,
            message: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    // Erasure removes the user's events and their place among affected users.
    assert!(s.app.erase_user("user-1").await.unwrap() >= 10);
    let after = groups(&s, 0).await;
    assert!(after.iter().all(|g| g.users_affected == 0 && g.count == 1));
});

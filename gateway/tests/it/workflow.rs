//! The workflow analyser through the gateway: shapes, tiers, quota, cache, history, bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    each_backend,
    support::{Options, Stack},
};

/// The issue's reference workflow: clean but for nothing.
fn reference() -> Value {
    json!({"name": "Welcome series",
    "triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
    "steps": [
      {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": true}, "next": "s2"},
      {"id": "s2", "type": "wait", "config": {"duration": "P1D"}, "next": "s3"},
      {"id": "s3", "type": "if_else", "config": {"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]},
       "branches": {"yes": "s4", "no": "s5"}},
      {"id": "s4", "type": "webhook", "config": {"url": "https://x.example/hook", "retry": {"maxAttempts": 3}}, "next": null},
      {"id": "s5", "type": "goto", "config": {"target": "s1"}}
    ]})
}

/// A workflow with many findings of several severities.
fn troubled() -> Value {
    json!({"name": "Troubled",
    "triggers": [{"id": "t1", "type": "signup", "next": "a"}],
    "steps": [
      {"id": "a", "type": "send_email", "config": {"subject": "Hi"}, "next": "b"},
      {"id": "b", "type": "webhook", "config": {"url": "http://x.example/hook"}, "next": "c"},
      {"id": "c", "type": "send_sms", "config": {"text": "Sale today"}, "next": "d"},
      {"id": "d", "type": "if_else", "config": {"conditions": [
          {"field": "age", "op": "gt", "value": 5}, {"field": "age", "op": "lt", "value": 3}]},
       "branches": {"yes": "e"}},
      {"id": "e", "type": "wait_for_event", "config": {"event": "clicked"}, "next": "ghost"},
      {"id": "orphan", "type": "add_tag", "config": {"tag": "x"}, "next": null}
    ]})
}

async fn user_with_tier(s: &Stack, admin: &str, email: &str, tier: &str) -> String {
    let (token, _, id) = s.signup(email).await;
    if tier != "free" {
        let r = s
            .send(
                Method::PUT,
                &format!("/v1/admin/users/{id}/tier"),
                Some(admin),
                Some(json!({"tier": tier})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    token
}

fn rules(data: &Value) -> Vec<String> {
    data["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap().to_string())
        .collect()
}

each_backend!(analysis_has_the_documented_shape, |backend| {
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup("shape@example.com").await;
    let r = s.post("/v1/workflows/analyze", Some(&token), reference()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = r.data();
    assert!(uuid::Uuid::parse_str(d["analysisId"].as_str().unwrap()).is_ok());
    assert_eq!(d["healthScore"], 100, "{d}");
    assert_eq!(d["grade"], "Excellent");
    assert_eq!(d["issues"], json!([]));
    assert_eq!(d["hiddenIssues"], 0);
    assert_eq!(
        d["stats"],
        json!({"steps": 5, "triggers": 1, "branches": 1, "maxDepth": d["stats"]["maxDepth"]})
    );
    assert!(d["stats"]["maxDepth"].as_u64().unwrap() >= 3);
    assert_eq!(d["name"], "Welcome series");
    assert_eq!(d["cached"], false);
    assert_eq!(d["quota"]["limit"], 10);
    assert_eq!(d["quota"]["remaining"], 9);

    let r = s.post("/v1/workflows/analyze", Some(&token), troubled()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let issue = &r.data()["issues"][0];
    for key in ["rule", "severity", "title", "message", "stepId", "suggestion"] {
        assert!(issue.get(key).is_some(), "{key} missing in {issue}");
    }
    assert_eq!(issue["severity"], "critical");
});

each_backend!(free_callers_see_three_findings_and_pro_sees_all, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let free = user_with_tier(&s, &admin, "free@example.com", "free").await;
    let pro = user_with_tier(&s, &admin, "pro@example.com", "pro").await;
    let enterprise = user_with_tier(&s, &admin, "ent@example.com", "enterprise").await;

    let all = s.post("/v1/workflows/analyze", Some(&pro), troubled()).await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    let all_rules = rules(all.data());
    assert!(all_rules.len() > 5, "{all_rules:?}");
    assert_eq!(all.data()["hiddenIssues"], 0);
    assert!(all.data().get("upgrade").is_none());
    for expected in [
        "broken-reference",
        "email-no-unsubscribe",
        "webhook-insecure-url",
        "webhook-no-retry",
        "sms-no-opt-out",
        "contradictory-condition",
        "missing-branch",
        "wait-without-timeout",
        "unreachable-step",
    ] {
        assert!(
            all_rules.contains(&expected.to_string()),
            "{expected} not in {all_rules:?}"
        );
    }
    let severities: Vec<&str> = all.data()["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["severity"].as_str().unwrap())
        .collect();
    let rank = |s: &str| {
        ["critical", "high", "medium", "low", "info"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(
        severities.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{severities:?}"
    );

    let gated = s.post("/v1/workflows/analyze", Some(&free), troubled()).await;
    assert_eq!(gated.status, StatusCode::OK, "{:?}", gated.body);
    let d = gated.data();
    assert_eq!(rules(d), all_rules[..3].to_vec(), "free sees the three most severe");
    assert_eq!(d["hiddenIssues"].as_u64().unwrap() as usize, all_rules.len() - 3);
    assert_eq!(
        d["healthScore"],
        all.data()["healthScore"],
        "the score counts every finding"
    );
    assert_eq!(d["upgrade"]["plan"], "pro");
    assert!(d["upgrade"]["message"].as_str().unwrap().contains("hidden"));

    let full = s.post("/v1/workflows/analyze", Some(&enterprise), troubled()).await;
    assert_eq!(rules(full.data()), all_rules);

    // Reading a stored analysis applies the reader's tier too.
    let id = d["analysisId"].as_str().unwrap();
    let again = s.get(&format!("/v1/workflows/analyses/{id}"), Some(&free)).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(rules(again.data()), all_rules[..3].to_vec());
    assert_eq!(again.data()["hiddenIssues"], d["hiddenIssues"]);
});

each_backend!(repeat_analyses_come_from_the_cache_and_are_still_recorded, |backend| {
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup("cache@example.com").await;
    let first = s.post("/v1/workflows/analyze", Some(&token), troubled()).await;
    assert_eq!(first.data()["cached"], false);
    // Same workflow: keys reordered, renamed. The result is the same and comes from the cache.
    let mut twin = troubled();
    twin["name"] = json!("Renamed");
    let reordered: Value = serde_json::from_str(&twin.to_string().replace(
        r#"{"config":{"subject":"Hi"},"id":"a","next":"b","type":"send_email"}"#,
        r#"{"type":"send_email","next":"b","id":"a","config":{"subject":"Hi"}}"#,
    ))
    .unwrap();
    let second = s.post("/v1/workflows/analyze", Some(&token), reordered).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert_eq!(second.data()["cached"], true);
    assert_eq!(second.data()["contentHash"], first.data()["contentHash"]);
    assert_eq!(second.data()["issues"], first.data()["issues"]);
    assert_ne!(second.data()["analysisId"], first.data()["analysisId"]);
    assert_eq!(second.data()["name"], "Renamed");
    // A changed workflow is analysed afresh.
    let changed = s.post("/v1/workflows/analyze", Some(&token), reference()).await;
    assert_eq!(changed.data()["cached"], false);

    let history = s.get("/v1/workflows/history", Some(&token)).await;
    let items = history.data()["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["cached"], true);
    assert_eq!(items[1]["analysisId"], second.data()["analysisId"]);
});

each_backend!(the_hourly_quota_holds_under_concurrency, |backend| {
    let s = Stack::with(Options::new(backend).workflow_var("PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR", "5")).await;
    let (token, _, _) = s.signup("quota@example.com").await;
    // Bad documents cost nothing.
    let bad = s
        .post_raw(
            "/v1/workflows/analyze",
            Some(&token),
            "application/json",
            b"{nope".to_vec(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let calls = (0..20).map(|i| {
        let mut w = troubled();
        w["name"] = json!(format!("run {i}"));
        s.post("/v1/workflows/analyze", Some(&token), w)
    });
    let replies = futures_util::future::join_all(calls).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let limited: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(ok, 5, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(limited.len(), 15);
    let r = limited[0];
    assert_eq!(r.code(), "QUOTA_EXCEEDED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(r.body["error"]["details"]["limit"], 5);
    assert_eq!(r.body["error"]["details"]["upgrade"]["plan"], "pro");
    let history = s.get("/v1/workflows/history", Some(&token)).await;
    assert_eq!(
        history.data()["items"].as_array().unwrap().len(),
        5,
        "refused analyses are not recorded"
    );

    // Another user's quota is their own.
    let (other, _, _) = s.signup("other@example.com").await;
    let r = s.post("/v1/workflows/analyze", Some(&other), reference()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data()["quota"]["remaining"], 4);

    // An upgrade lifts the limit at once, within the same hour.
    let admin = s.admin().await;
    let me = s.get("/v1/auth/me", Some(&token)).await;
    let id = me.data()["id"].as_str().unwrap().to_string();
    let r = s
        .send(
            Method::PUT,
            &format!("/v1/admin/users/{id}/tier"),
            Some(&admin),
            Some(json!({"tier": "pro"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = s.post("/v1/workflows/analyze", Some(&token), reference()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.data()["quota"]["limit"], 100);
    assert_eq!(r.data()["quota"]["remaining"], 94);
});

each_backend!(history_is_private_paginated_and_deletable, |backend| {
    let s = Stack::start(backend).await;
    let (alice, _, _) = s.signup("alice@example.com").await;
    let (bob, _, _) = s.signup("bob@example.com").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut w = reference();
        w["name"] = json!(format!("v{i}"));
        let r = s.post("/v1/workflows/analyze", Some(&alice), w).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        ids.push(r.data()["analysisId"].as_str().unwrap().to_string());
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/workflows/history?limit=2&cursor={c}"),
            None => "/v1/workflows/history?limit=2".to_string(),
        };
        let r = s.get(&path, Some(&alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        pages += 1;
        for item in r.data()["items"].as_array().unwrap() {
            seen.push(item["analysisId"].as_str().unwrap().to_string());
        }
        match r.data()["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every analysis once, newest first");

    // Bob sees none of it and can touch none of it.
    let r = s.get("/v1/workflows/history", Some(&bob)).await;
    assert_eq!(r.data()["items"], json!([]));
    let path = format!("/v1/workflows/analyses/{}", ids[0]);
    assert_eq!(s.get(&path, Some(&bob)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&bob), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get(&path, Some(&alice)).await.status, StatusCode::OK);

    let r = s.send(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(s.get(&path, Some(&alice)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&alice), None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = s.get("/v1/workflows/history", Some(&alice)).await;
    assert_eq!(r.data()["items"].as_array().unwrap().len(), 4);

    // Bad paging input is named.
    let r = s.get("/v1/workflows/history?cursor=garbage", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), vec!["cursor"]);
    let r = s.get("/v1/workflows/history?limit=0", Some(&alice)).await;
    assert_eq!(r.fields(), vec!["limit"]);
    let r = s.get("/v1/workflows/analyses/not-a-uuid", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Without credentials, nothing.
    assert_eq!(
        s.get("/v1/workflows/history", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.post("/v1/workflows/analyze", None, reference()).await.status,
        StatusCode::UNAUTHORIZED
    );
});

each_backend!(malformed_workflows_are_located_and_not_stored, |backend| {
    let s = Stack::with(
        Options::new(backend)
            .workflow_var("PORTICO_WORKFLOW_MAX_STEPS", "10")
            .var("PORTICO_JSON_LIMIT_BYTES", "4096"),
    )
    .await;
    let (token, _, _) = s.signup("bad@example.com").await;
    let analyze = |content_type: &'static str, body: Vec<u8>| {
        let token = token.clone();
        let s = &s;
        async move {
            s.post_raw("/v1/workflows/analyze", Some(&token), content_type, body)
                .await
        }
    };
    let pointers = |r: &crate::support::Reply| -> Vec<String> {
        r.body["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pointer"].as_str().unwrap().to_string())
            .collect()
    };

    let r = analyze("application/json", b"this is not json".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "INVALID_JSON");

    let r = analyze(
        "application/json",
        br#"{"triggers": {}, "steps": [{"id": 7, "type": "send_email"}]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "INVALID_WORKFLOW");
    let p = pointers(&r);
    assert!(p.contains(&"/triggers".to_string()), "{p:?}");
    assert!(p.contains(&"/steps/0/id".to_string()), "{p:?}");
    assert!(r.fields().contains(&"/triggers".to_string()), "{:?}", r.fields());

    let mut dup = reference();
    dup["steps"][1]["id"] = json!("s1");
    let r = analyze("application/json", dup.to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(pointers(&r).contains(&"/steps/1/id".to_string()), "{:?}", r.body);

    let mut unknown = reference();
    unknown["steps"][0]["type"] = json!("send_pigeon");
    let r = analyze("application/json", unknown.to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(pointers(&r).contains(&"/steps/0/type".to_string()), "{:?}", r.body);

    let steps: Vec<Value> = (0..11).map(|i| json!({"id": format!("s{i}"), "type": "end"})).collect();
    let r = analyze(
        "application/json",
        json!({"triggers": [], "steps": steps}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.body["error"]["details"]["maxSteps"], 10);

    let mut big = reference();
    big["description"] = json!("x".repeat(5000));
    let r = analyze("application/json", big.to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);

    let r = analyze("text/plain", reference().to_string().into_bytes()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", r.body);

    let r = analyze("application/json", Vec::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);

    // Nothing was stored and no quota was used.
    let r = s.get("/v1/workflows/history", Some(&token)).await;
    assert_eq!(r.data()["items"], json!([]));
    let r = s.post("/v1/workflows/analyze", Some(&token), reference()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.data()["quota"]["remaining"], 9);
});

each_backend!(rules_and_schema_are_public, |backend| {
    let s = Stack::start(backend).await;
    let r = s.get("/v1/workflows/rules", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let rules = r.data()["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for id in [
        "no-trigger",
        "broken-reference",
        "infinite-loop",
        "loop-without-wait",
        "unreachable-step",
        "missing-branch",
        "wait-without-timeout",
        "webhook-no-retry",
        "webhook-insecure-url",
        "email-no-unsubscribe",
        "sms-no-opt-out",
        "duplicate-action",
        "contradictory-condition",
        "empty-workflow",
        "goal-unreachable",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let infinite = rules.iter().find(|r| r["id"] == "infinite-loop").unwrap();
    assert_eq!(infinite["severity"], "critical");
    assert_eq!(infinite["weight"], 25);

    let r = s.get("/v1/workflows/schema", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data()["type"], "object");
    assert!(r.data()["properties"]["steps"].is_object(), "{}", r.data());
    let bare = s
        .http
        .get(s.url("/v1/workflows/schema"))
        .header("accept", "application/schema+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bare.headers()["content-type"].to_str().unwrap(),
        "application/schema+json"
    );
    let schema: Value = bare.json().await.unwrap();
    assert_eq!(&schema, r.data());
});

/// The reference workflow as a BPMN modeler would save it, with an insecure webhook.
const BPMN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:portico="https://portico.dev/schema/bpmn" id="d" targetNamespace="https://example.com">
  <bpmn:process id="welcome" name="Welcome series (BPMN)" isExecutable="true">
    <bpmn:startEvent id="t1" portico:type="form_submitted"/>
    <bpmn:sequenceFlow id="f1" sourceRef="t1" targetRef="s1"/>
    <bpmn:sendTask id="s1" name="Welcome email">
      <bpmn:extensionElements><portico:config>{"subject": "Hi", "unsubscribeLink": true}</portico:config></bpmn:extensionElements>
    </bpmn:sendTask>
    <bpmn:sequenceFlow id="f2" sourceRef="s1" targetRef="s2"/>
    <bpmn:intermediateCatchEvent id="s2">
      <bpmn:timerEventDefinition><bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="s2" targetRef="s3"/>
    <bpmn:exclusiveGateway id="s3" default="f5">
      <bpmn:extensionElements><portico:config>{"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]}</portico:config></bpmn:extensionElements>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f4" name="yes" sourceRef="s3" targetRef="s4"/>
    <bpmn:sequenceFlow id="f5" sourceRef="s3" targetRef="s1"/>
    <bpmn:serviceTask id="s4">
      <bpmn:extensionElements><portico:config>{"url": "http://x.example/hook", "retry": {"maxAttempts": 3}}</portico:config></bpmn:extensionElements>
    </bpmn:serviceTask>
  </bpmn:process>
</bpmn:definitions>"#;

each_backend!(bpmn_documents_are_analysed_like_json, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let pro = user_with_tier(&s, &admin, "bpmn@example.com", "pro").await;
    let r = s
        .post_raw(
            "/v1/workflows/analyze",
            Some(&pro),
            "application/xml",
            BPMN.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.data()["name"], "Welcome series (BPMN)");
    let found = rules(r.data());
    let own: Vec<&String> = found.iter().filter(|r| !r.starts_with("bpmnlint/")).collect();
    assert_eq!(own, vec!["webhook-insecure-url"]);
    // bpmnlint's rules run on the same diagram: no end event, flows Portico labels rather
    // than conditions, elements without names, and a loop back into the email.
    for lint in [
        "bpmnlint/end-event-required",
        "bpmnlint/conditional-flows",
        "bpmnlint/label-required",
        "bpmnlint/fake-join",
    ] {
        assert!(found.iter().any(|r| r == lint), "{lint} missing from {found:?}");
    }
    let end = r.data()["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "bpmnlint/end-event-required")
        .unwrap()
        .clone();
    assert_eq!(
        (end["severity"].as_str(), end["stepId"].as_str()),
        (Some("high"), Some("welcome"))
    );
    assert_eq!(r.data()["stats"]["triggers"], 1);

    let r = s
        .post_raw(
            "/v1/workflows/analyze",
            Some(&pro),
            "text/xml",
            b"<bpmn:definitions".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "INVALID_XML");
    let r = s
        .post_raw(
            "/v1/workflows/analyze",
            Some(&pro),
            "application/xml",
            br#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:portico="https://portico.dev/schema/bpmn"><process id="p"><task id="x" portico:type="fax"/></process></definitions>"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let pointer = r.body["error"]["details"]["problems"][0]["pointer"].as_str().unwrap();
    assert!(pointer.contains("task"), "{pointer}");
});

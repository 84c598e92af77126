use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{each_backend, support::Stack};

each_backend!(beta_program_end_to_end, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (user, _, user_id) = s.signup("tester@example.com").await;

    let v = s
        .post("/v1/beta/validate-invite", None, json!({"code": "COSNAPBETA2025"}))
        .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.data()["valid"], true);
    assert_eq!(v.data()["accessLevel"], "BASIC");
    assert_eq!(v.data()["remainingUses"], 100);
    assert!(v.data()["expiresAt"].is_null());
    let v = s
        .post("/v1/beta/validate-invite", None, json!({"code": "NO_SUCH_CODE"}))
        .await;
    assert_eq!(v.data(), &json!({"valid": false, "reason": "not_found"}));

    let empty = s.get("/v1/beta/user-access", Some(&user)).await;
    assert_eq!(empty.data()["accessLevel"], "NONE");
    assert!(
        empty.data()["features"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == false)
    );
    assert!(empty.data()["joinedAt"].is_null());

    let join = s
        .post("/v1/beta/join", Some(&user), json!({"code": "COSNAPBETA2025"}))
        .await;
    assert_eq!(join.status, StatusCode::OK);
    assert_eq!(
        (join.data()["accessLevel"].as_str(), join.data()["upgraded"].as_bool()),
        (Some("BASIC"), Some(true))
    );
    assert_eq!(join.data()["features"]["early_effects"], true);
    assert_eq!(join.data()["features"]["hd_export"], false);
    let again = s
        .post("/v1/beta/join", Some(&user), json!({"code": "COSNAPBETA2025"}))
        .await;
    assert_eq!(again.data()["upgraded"], false);
    let up = s
        .post("/v1/beta/join", Some(&user), json!({"code": "DEV_ACCESS_2025"}))
        .await;
    assert_eq!(up.data()["accessLevel"], "DEVELOPER");
    let access = s.get("/v1/beta/user-access", Some(&user)).await;
    assert_eq!(access.data()["accessLevel"], "DEVELOPER");
    assert!(access.data()["joinedAt"].is_string());
    assert_eq!(s.get("/v1/auth/me", Some(&user)).await.data()["betaLevel"], "DEVELOPER");

    let anon = s.post("/v1/beta/join", None, json!({"code": "COSNAPBETA2025"})).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let missing = s.post("/v1/beta/join", Some(&user), json!({"code": "NOPE_NOPE"})).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "INVITE_NOT_FOUND")
    );

    let created = s
        .post(
            "/v1/admin/beta/invite-codes",
            Some(&admin),
            json!({"accessLevel": "PREMIUM", "maxUses": 1}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let code = created.data()["code"].as_str().unwrap().to_string();
    for k in ["code", "accessLevel", "maxUses", "uses", "expiresAt", "active"] {
        assert!(created.data().get(k).is_some(), "created code lacks {k}");
    }
    let (other, _, _) = s.signup("other@example.com").await;
    assert_eq!(
        s.post("/v1/beta/join", Some(&other), json!({"code": code}))
            .await
            .status,
        StatusCode::OK
    );
    let (third, _, _) = s.signup("third@example.com").await;
    let exhausted = s.post("/v1/beta/join", Some(&third), json!({"code": code})).await;
    assert_eq!(
        (exhausted.status, exhausted.code()),
        (StatusCode::CONFLICT, "INVITE_EXHAUSTED")
    );
    let v = s.post("/v1/beta/validate-invite", None, json!({"code": code})).await;
    assert_eq!(v.data()["reason"], "exhausted");

    let patched = s
        .send(
            Method::PATCH,
            "/v1/admin/beta/invite-codes/PREMIUM_BETA_2025",
            Some(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(
        (patched.status, patched.data()["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let inactive = s
        .post("/v1/beta/join", Some(&third), json!({"code": "PREMIUM_BETA_2025"}))
        .await;
    assert_eq!(
        (inactive.status, inactive.code()),
        (StatusCode::GONE, "INVITE_INACTIVE")
    );
    let past = s
        .post(
            "/v1/admin/beta/invite-codes",
            Some(&admin),
            json!({"accessLevel": "BASIC", "maxUses": 5, "code": "LATE_CODE", "expiresAt": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(past.fields(), vec!["expiresAt"]);

    let page = s
        .get("/v1/admin/beta/invite-codes?limit=2&offset=0", Some(&admin))
        .await;
    assert_eq!(
        (
            page.data()["items"].as_array().unwrap().len(),
            page.data()["total"].as_i64()
        ),
        (2, Some(4))
    );
    let one = s
        .get(&format!("/v1/admin/beta/invite-codes/{code}"), Some(&admin))
        .await;
    assert_eq!(one.data()["uses"], 1);
    assert_eq!(
        s.get("/v1/admin/beta/invite-codes/NOPE_NOPE", Some(&admin))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let users = s.get("/v1/admin/beta/users", Some(&admin)).await;
    assert_eq!(users.data()["total"], 2);
    let set = s
        .send(
            Method::PUT,
            &format!("/v1/admin/beta/users/{user_id}"),
            Some(&admin),
            Some(json!({"accessLevel": "ADVANCED"})),
        )
        .await;
    assert_eq!(set.data()["accessLevel"], "ADVANCED");
    assert_eq!(
        s.get("/v1/beta/user-access", Some(&user)).await.data()["accessLevel"],
        "ADVANCED"
    );
    let ghost = s
        .send(
            Method::PUT,
            "/v1/admin/beta/users/ghost",
            Some(&admin),
            Some(json!({"accessLevel": "BASIC"})),
        )
        .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);

    let features = s.get("/v1/admin/beta/features", Some(&admin)).await;
    assert!(features.data()["features"].as_array().unwrap().len() >= 5);
    let replaced = s
        .send(
            Method::PUT,
            "/v1/admin/beta/features",
            Some(&admin),
            Some(json!({"features": [{"name": "only_one", "minLevel": "BASIC"}]})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(
        s.get("/v1/beta/user-access", Some(&user)).await.data()["features"],
        json!({"only_one": true})
    );

    let one = s
        .post(
            "/v1/beta/analytics",
            Some(&user),
            json!({"feature": "only_one", "action": "open", "properties": {"screen": "home"}}),
        )
        .await;
    assert_eq!(
        (one.status, one.data()["accepted"].as_i64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    let batch = json!({"events": [{"feature": "only_one", "action": "use"}, {"feature": "export", "action": "click", "occurredAt": "2026-01-01T00:00:00Z"}]});
    assert_eq!(
        s.post("/v1/beta/analytics", Some(&other), batch).await.data()["accepted"],
        2
    );
    let too_many = json!({"events": (0..101).map(|_| json!({"feature": "a", "action": "b"})).collect::<Vec<_>>()});
    assert_eq!(
        s.post("/v1/beta/analytics", Some(&user), too_many).await.fields(),
        vec!["events"]
    );
    let bad = s
        .post(
            "/v1/beta/analytics",
            Some(&user),
            json!({"events": [{"feature": "", "action": "b"}, {"feature": "a"}]}),
        )
        .await;
    assert_eq!(bad.fields(), vec!["events[0].feature", "events[1].action"]);
    let summary = s.get("/v1/admin/beta/analytics/summary", Some(&admin)).await;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(
        summary.data()["totalEvents"],
        2,
        "the January event is outside the default week"
    );
    let summary = s
        .get(
            "/v1/admin/beta/analytics/summary?from=2025-12-31T00:00:00Z",
            Some(&admin),
        )
        .await;
    assert_eq!(summary.data()["totalEvents"], 3);
    let only = summary.data()["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "only_one")
        .unwrap()
        .clone();
    assert_eq!(
        (only["events"].as_i64(), only["uniqueUsers"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(only["byLevel"]["ADVANCED"], 1);
    let bad_range = s
        .get("/v1/admin/beta/analytics/summary?from=yesterday", Some(&admin))
        .await;
    assert_eq!(bad_range.fields(), vec!["from"]);
});

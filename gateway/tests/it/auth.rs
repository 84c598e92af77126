use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    each_backend,
    support::{ADMIN, Stack},
};

each_backend!(signup_login_refresh_and_logout, |backend| {
    let s = Stack::start(backend).await;
    let r = s
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "Ada@Example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let d = r.data();
    assert_eq!(d["user"]["email"], "ada@example.com");
    assert_eq!(
        (d["user"]["role"].as_str(), d["user"]["tier"].as_str()),
        (Some("user"), Some("free"))
    );
    assert_eq!(d["expiresIn"], 900);
    assert!(r.body["meta"]["requestId"].is_string() && r.body["meta"]["timestamp"].is_string());

    let dup = s
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "ada@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (StatusCode::CONFLICT, "EMAIL_TAKEN"));

    let wrong = s
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
    let nobody = s
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        nobody.code(),
        "INVALID_CREDENTIALS",
        "unknown emails look the same as wrong passwords"
    );

    let login = s
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let access = login.data()["accessToken"].as_str().unwrap().to_string();
    let refresh = login.data()["refreshToken"].as_str().unwrap().to_string();

    let me = s.get("/v1/auth/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.data()["email"], "ada@example.com");
    assert_eq!(me.data()["betaLevel"], "NONE");
    for key in ["id", "email", "role", "tier", "betaLevel"] {
        assert!(me.data().get(key).is_some(), "me lacks {key}");
    }

    let rotated = s.post("/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_refresh = rotated.data()["refreshToken"].as_str().unwrap().to_string();
    let new_access = rotated.data()["accessToken"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, refresh);
    assert_eq!(s.get("/v1/auth/me", Some(&new_access)).await.status, StatusCode::OK);

    // Replaying the used token revokes the whole family: the new tokens die too.
    let replay = s.post("/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED")
    );
    let after = s
        .post("/v1/auth/refresh", None, json!({"refreshToken": new_refresh}))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let me = s.get("/v1/auth/me", Some(&new_access)).await;
    assert_eq!((me.status, me.code()), (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"));

    // Logout revokes the session's refresh token and its access token.
    let (access, refresh, _) = s.signup("grace@example.com").await;
    let out = s.post("/v1/auth/logout", Some(&access), json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        s.get("/v1/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = s.post("/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .post("/v1/auth/refresh", None, json!({"refreshToken": "prt_made_up"}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"));
});

each_backend!(api_keys_are_shown_once_and_belong_to_their_owner, |backend| {
    let s = Stack::start(backend).await;
    let (alice, _, _) = s.signup("alice@example.com").await;
    let (bob, _, _) = s.signup("bob@example.com").await;
    let created = s.post("/v1/auth/api-keys", Some(&alice), json!({"name": "ci"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.data()["key"].as_str().unwrap().to_string();
    let id = created.data()["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("pk_live_"));

    let list = s.get("/v1/auth/api-keys", Some(&alice)).await;
    assert_eq!(list.data().as_array().unwrap().len(), 1);
    assert!(list.data()[0].get("key").is_none(), "the key is never shown again");
    assert!(
        s.get("/v1/auth/api-keys", Some(&bob))
            .await
            .data()
            .as_array()
            .unwrap()
            .is_empty()
    );

    let me = s
        .http
        .get(s.url("/v1/auth/me"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let me = crate::support::reply(me).await;
    assert_eq!(me.data()["email"], "alice@example.com");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.get("/v1/auth/api-keys", Some(&alice)).await.data()[0]["lastUsedAt"].is_null() {
        assert!(std::time::Instant::now() < deadline, "the key's last use is recorded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let theft = s
        .send(Method::DELETE, &format!("/v1/auth/api-keys/{id}"), Some(&bob), None)
        .await;
    assert_eq!(theft.status, StatusCode::NOT_FOUND, "bob cannot delete alice's key");
    let del = s
        .send(Method::DELETE, &format!("/v1/auth/api-keys/{id}"), Some(&alice), None)
        .await;
    assert_eq!(del.status, StatusCode::OK);
    let me = s
        .http
        .get(s.url("/v1/auth/me"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let bad = s
        .http
        .get(s.url("/v1/auth/me"))
        .header("x-api-key", "pk_live_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let nameless = s.post("/v1/auth/api-keys", Some(&alice), json!({"name": ""})).await;
    assert_eq!(nameless.fields(), vec!["name"]);
});

each_backend!(admin_paths_refuse_users_and_admins_set_tiers, |backend| {
    let s = Stack::start(backend).await;
    let (user, _, user_id) = s.signup("user@example.com").await;
    let admin = s.admin().await;
    let path = format!("/v1/admin/users/{user_id}/tier");
    let anon = s.send(Method::PUT, &path, None, Some(json!({"tier": "pro"}))).await;
    assert_eq!((anon.status, anon.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    let forbidden = s
        .send(Method::PUT, &path, Some(&user), Some(json!({"tier": "pro"})))
        .await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (StatusCode::FORBIDDEN, "FORBIDDEN")
    );
    for p in [
        "/v1/admin/beta/invite-codes",
        "/v1/admin/beta/users",
        "/v1/admin/beta/features",
        "/internal/cache-stats",
    ] {
        assert_eq!(s.get(p, Some(&user)).await.status, StatusCode::FORBIDDEN, "{p}");
    }
    let bad = s
        .send(Method::PUT, &path, Some(&admin), Some(json!({"tier": "platinum"})))
        .await;
    assert_eq!(bad.fields(), vec!["tier"]);
    let set = s
        .send(Method::PUT, &path, Some(&admin), Some(json!({"tier": "pro"})))
        .await;
    assert_eq!((set.status, set.data()["tier"].as_str()), (StatusCode::OK, Some("pro")));
    assert_eq!(
        s.get("/v1/auth/me", Some(&user)).await.data()["tier"],
        "pro",
        "the new tier applies at once"
    );
    let missing = s
        .send(
            Method::PUT,
            "/v1/admin/users/nope/tier",
            Some(&admin),
            Some(json!({"tier": "pro"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/auth/me", Some(&admin)).await.data()["role"], "admin");
    assert_eq!(ADMIN, "admin@example.com");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_reaches_the_others_memory_at_once() {
    let redis = portico_testkit::TestRedis::start();
    let s = Stack::with(
        crate::support::Options::new(portico_testkit::Backend::Sqlite)
            .gateways(2)
            .var("PORTICO_REDIS_URL", redis.url())
            // Without cross-replica invalidation the other replica would serve its copy for a minute.
            .var("PORTICO_CACHE_L1_TTL_MS", "60000"),
    )
    .await;
    let (user, _, user_id) = s.signup("replicated@example.com").await;
    let admin = s.admin().await;
    let me_on_1 = s.send_on(1, Method::GET, "/v1/auth/me", Some(&user), None).await;
    assert_eq!(me_on_1.data()["tier"], "free");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // subscribers are up
    let set = s
        .send(
            Method::PUT,
            &format!("/v1/admin/users/{user_id}/tier"),
            Some(&admin),
            Some(json!({"tier": "enterprise"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let tier = s.send_on(1, Method::GET, "/v1/auth/me", Some(&user), None).await.data()["tier"].clone();
        if tier == "enterprise" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica 1 still says {tier}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

//! Accounts and roles an attacker cannot claim: stored roles, mailed verification and reset
//! links (through a real SMTP listener), fresh sign-ins for sensitive actions, scoped API
//! keys, per-account sign-in throttling, and account deletion that reaches every service.

use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use portico_testkit::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    each_backend,
    support::{ADMIN, Options, Stack},
};

const PASSWORD: &str = "correct horse battery";

async fn login(s: &Stack, email: &str, password: &str) -> crate::support::Reply {
    s.post("/v1/auth/login", None, json!({"email": email, "password": password}))
        .await
}

each_backend!(no_address_makes_an_admin_by_signing_up, |backend| {
    // Fails on the old gateway: signing up with an address in PORTICO_ADMIN_EMAILS made an
    // admin, with no proof of owning the address, even after the real admin left.
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup(ADMIN).await;
    let me = s.get("/v1/auth/me", Some(&token)).await;
    assert_eq!(me.data()["role"], "user");
    assert_eq!(
        s.get("/v1/admin/beta/features", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );
    // The operator makes the first admin.
    s.grant(ADMIN).await;
    assert_eq!(s.get("/v1/auth/me", Some(&token)).await.data()["role"], "admin");
    // The admin leaves; whoever signs up with the address next is an ordinary user.
    assert_eq!(
        s.send(Method::DELETE, "/v1/auth/me", Some(&token), None).await.status,
        StatusCode::OK
    );
    let (again, _, _) = s.signup(ADMIN).await;
    assert_eq!(s.get("/v1/auth/me", Some(&again)).await.data()["role"], "user");
});

#[test]
fn the_old_admin_list_is_refused_at_start() {
    let vars = portico_runtime::config::Vars::from_map([("PORTICO_ADMIN_EMAILS", "boss@example.com")]);
    let e = portico_gateway::GatewayConfig::from_vars(&vars).unwrap_err();
    assert_eq!(e.var, "PORTICO_ADMIN_EMAILS");
    assert!(e.message.contains("portico admin grant"), "{}", e.message);
}

each_backend!(admins_grant_and_revoke_admin_and_the_last_one_stays, |backend| {
    let s = Stack::start(backend).await;
    let (user, _, user_id) = s.signup("next@example.com").await;
    let admin = s.admin().await;
    let admin_id = s.get("/v1/auth/me", Some(&admin)).await.data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/admin/users/{user_id}/role");
    let body = || Some(json!({"role": "admin"}));
    assert_eq!(
        s.send(Method::PUT, &path, None, body()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = s.send(Method::PUT, &path, Some(&user), body()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "users cannot promote themselves"
    );
    let bad = s
        .send(Method::PUT, &path, Some(&admin), Some(json!({"role": "root"})))
        .await;
    assert_eq!(bad.fields(), vec!["role"]);
    let missing = s
        .send(Method::PUT, "/v1/admin/users/nobody/role", Some(&admin), body())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let granted = s.send(Method::PUT, &path, Some(&admin), body()).await;
    assert_eq!(
        (granted.status, granted.data()["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    assert_eq!(
        s.get("/v1/admin/beta/features", Some(&user)).await.status,
        StatusCode::OK,
        "the new role applies at once"
    );
    // The first admin steps down; the second cannot, being the last.
    let own = format!("/v1/admin/users/{admin_id}/role");
    let down = s
        .send(Method::PUT, &own, Some(&admin), Some(json!({"role": "user"})))
        .await;
    assert_eq!(down.status, StatusCode::OK);
    let last = s
        .send(Method::PUT, &path, Some(&user), Some(json!({"role": "user"})))
        .await;
    assert_eq!((last.status, last.code()), (StatusCode::CONFLICT, "CONFLICT"));
});

each_backend!(signup_mails_a_single_use_verification_link, |backend| {
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup("verify@example.com").await;
    assert_eq!(s.get("/v1/auth/me", Some(&token)).await.data()["emailVerified"], false);
    let (mail, link) = s.mailed_token(0);
    assert_eq!(mail.to, vec!["verify@example.com".to_string()]);
    assert!(mail.header("Subject").unwrap().contains("Verify"), "{mail:?}");
    assert!(
        mail.text().contains(&format!("/verify-email?token={link}")),
        "{}",
        mail.text()
    );
    // Too soon for another one.
    let resend = s.post("/v1/auth/resend-verification", Some(&token), json!({})).await;
    assert_eq!(
        (resend.status, resend.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    assert!(resend.header("retry-after").is_some());

    let garbage = s
        .post("/v1/auth/verify-email", None, json!({"token": "pmt_nope"}))
        .await;
    assert_eq!(
        (garbage.status, garbage.code()),
        (StatusCode::BAD_REQUEST, "LINK_INVALID")
    );
    let missing = s.post("/v1/auth/verify-email", None, json!({})).await;
    assert_eq!(missing.fields(), vec!["token"]);
    let verified = s.post("/v1/auth/verify-email", None, json!({"token": link})).await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
    assert_eq!(verified.data()["emailVerified"], true);
    assert_eq!(s.get("/v1/auth/me", Some(&token)).await.data()["emailVerified"], true);
    let again = s.post("/v1/auth/verify-email", None, json!({"token": link})).await;
    assert_eq!(again.code(), "LINK_INVALID", "single use");
    let resend = s.post("/v1/auth/resend-verification", Some(&token), json!({})).await;
    assert_eq!(resend.status, StatusCode::CONFLICT, "already verified");
    // The database holds only the token's hash.
    use portico_gateway::auth::store::schema::email_tokens::dsl::*;
    let hashes: Vec<String> = email_tokens.select(token_hash).load(&mut s.gateway_conn()).unwrap();
    assert!(!hashes.is_empty() && hashes.iter().all(|h| h.len() == 64 && !h.starts_with("pmt_")));
});

each_backend!(a_mailed_reset_sets_a_new_password_and_ends_every_session, |backend| {
    let s = Stack::start(backend).await;
    let (access, refresh, _) = s.signup("reset@example.com").await;
    s.mailed_token(0); // the verification mail
    let unknown = s
        .post("/v1/auth/forgot-password", None, json!({"email": "nobody@example.com"}))
        .await;
    let known = s
        .post("/v1/auth/forgot-password", None, json!({"email": "Reset@Example.com"}))
        .await;
    assert_eq!(unknown.status, StatusCode::ACCEPTED);
    assert_eq!(
        (known.status, known.data()),
        (unknown.status, unknown.data()),
        "the same answer whether or not the address has an account"
    );
    let (mail, link) = s.mailed_token(1);
    assert_eq!(mail.to, vec!["reset@example.com".to_string()]);
    // A second request within the cooldown queues no second mail (and answers the same).
    let again = s
        .post("/v1/auth/forgot-password", None, json!({"email": "reset@example.com"}))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let backlog = s.gateways[0]
        .state
        .auth
        .outbox()
        .backlog(portico_mail::TOPIC)
        .await
        .unwrap();
    assert_eq!(backlog.pending + backlog.delivered, 2, "verification + one reset");

    let weak = s
        .post(
            "/v1/auth/reset-password",
            None,
            json!({"token": link, "password": "short"}),
        )
        .await;
    assert_eq!(weak.fields(), vec!["password"]);
    let reset = s
        .post(
            "/v1/auth/reset-password",
            None,
            json!({"token": link, "password": "a brand new password"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
    assert_eq!(
        s.get("/v1/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED,
        "the old session's access token is dead"
    );
    let old_refresh = s.post("/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!(old_refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&s, "reset@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = login(&s, "reset@example.com", "a brand new password").await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.data()["user"]["emailVerified"], true, "the mailbox was proven");
    let reused = s
        .post(
            "/v1/auth/reset-password",
            None,
            json!({"token": link, "password": "yet another password"}),
        )
        .await;
    assert_eq!(reused.code(), "LINK_INVALID", "single use");
});

each_backend!(an_expired_reset_link_is_refused, |backend| {
    let s = Stack::start(backend).await;
    s.signup("late@example.com").await;
    s.post("/v1/auth/forgot-password", None, json!({"email": "late@example.com"}))
        .await;
    let (_, link) = s.mailed_token(1);
    {
        use portico_gateway::auth::store::schema::email_tokens::dsl::*;
        diesel::update(email_tokens.filter(purpose.eq("reset")))
            .set(expires_at.eq(1_i64))
            .execute(&mut s.gateway_conn())
            .unwrap();
    }
    let r = s
        .post(
            "/v1/auth/reset-password",
            None,
            json!({"token": link, "password": "a brand new password"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "LINK_INVALID"));
    assert_eq!(login(&s, "late@example.com", PASSWORD).await.status, StatusCode::OK);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_actions_need_a_fresh_password_sign_in() {
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_FRESH_LOGIN_SECS", "2")).await;
    let (access, refresh, _) = s.signup("fresh@example.com").await;
    let key = s.post("/v1/auth/api-keys", Some(&access), json!({"name": "ci"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "right after signing up: fresh");
    let key = key.data()["key"].as_str().unwrap().to_string();
    let with_key = |method: Method, path: &'static str, body: serde_json::Value| {
        let req = s
            .http
            .request(method, s.url(path))
            .header("x-api-key", &key)
            .json(&body);
        async move { crate::support::reply(req.send().await.unwrap()).await }
    };
    for (method, path) in [
        (Method::POST, "/v1/auth/api-keys"),
        (Method::DELETE, "/v1/auth/me"),
        (Method::POST, "/v1/auth/change-password"),
    ] {
        let r = with_key(
            method.clone(),
            path,
            json!({"name": "more", "currentPassword": PASSWORD, "newPassword": "x y z w v u"}),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "FRESH_LOGIN_REQUIRED"),
            "an API key never counts as a sign-in: {method} {path}"
        );
    }
    // Whole seconds are compared: 3.5 s is more than 2 however the clock rounds.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // A session kept alive by refreshing is not a fresh sign-in.
    let refreshed = s.post("/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    let refreshed = refreshed.data()["accessToken"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/v1/auth/change-password",
            Some(&refreshed),
            json!({"currentPassword": PASSWORD, "newPassword": "a newer password"}),
        )
        .await;
    assert_eq!(r.code(), "FRESH_LOGIN_REQUIRED");
    assert_eq!(
        s.send(Method::DELETE, "/v1/auth/me", Some(&refreshed), None)
            .await
            .code(),
        "FRESH_LOGIN_REQUIRED"
    );
    // Signing in again is.
    let again = login(&s, "fresh@example.com", PASSWORD).await;
    let fresh = again.data()["accessToken"].as_str().unwrap().to_string();
    let wrong = s
        .post(
            "/v1/auth/change-password",
            Some(&fresh),
            json!({"currentPassword": "not it", "newPassword": "a newer password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.fields(), vec!["currentPassword"]);
    let changed = s
        .post(
            "/v1/auth/change-password",
            Some(&fresh),
            json!({"currentPassword": PASSWORD, "newPassword": "a newer password"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        s.get("/v1/auth/me", Some(&fresh)).await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        s.get("/v1/auth/me", Some(&refreshed)).await.status,
        StatusCode::UNAUTHORIZED,
        "every other session ends"
    );
    assert_eq!(
        login(&s, "fresh@example.com", "a newer password").await.status,
        StatusCode::OK
    );
}

async fn create_key(s: &Stack, token: &str, body: serde_json::Value) -> crate::support::Reply {
    s.post("/v1/auth/api-keys", Some(token), body).await
}

each_backend!(api_keys_act_only_within_their_scopes, |backend| {
    let s = Stack::start(backend).await;
    let (user, _, _) = s.signup("scoped@example.com").await;
    let admin = s.admin().await;
    let read_only = create_key(&s, &user, json!({"name": "dashboards", "scopes": ["read"]})).await;
    assert_eq!(read_only.status, StatusCode::CREATED);
    assert_eq!(read_only.data()["scopes"], json!(["read"]));
    let read_only = read_only.data()["key"].as_str().unwrap().to_string();
    let default = create_key(&s, &user, json!({"name": "ci"})).await;
    assert_eq!(
        default.data()["scopes"],
        json!(["read", "write"]),
        "admin is never a default"
    );
    let refused = create_key(&s, &user, json!({"name": "sneaky", "scopes": ["admin"]})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let bad = create_key(&s, &user, json!({"name": "typo", "scopes": ["raed"]})).await;
    assert_eq!(bad.fields(), vec!["scopes[0]"], "the bad item is named");

    let call = |key: &str, method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = s.http.request(method, s.url(path)).header("x-api-key", key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { crate::support::reply(req.send().await.unwrap()).await }
    };
    assert_eq!(
        call(&read_only, Method::GET, "/v1/auth/me", None).await.status,
        StatusCode::OK
    );
    let write = call(
        &read_only,
        Method::POST,
        "/v1/beta/join",
        Some(json!({"code": "COSNAPBETA2025"})),
    )
    .await;
    assert_eq!((write.status, write.code()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    assert!(write.body["error"]["message"].as_str().unwrap().contains("write"));

    let admin_key = create_key(&s, &admin, json!({"name": "ops", "scopes": ["read", "admin"]})).await;
    assert_eq!(admin_key.status, StatusCode::CREATED, "{:?}", admin_key.body);
    let admin_key = admin_key.data()["key"].as_str().unwrap().to_string();
    let plain_admin_key = create_key(&s, &admin, json!({"name": "plain"})).await.data()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        call(&admin_key, Method::GET, "/v1/admin/beta/features", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&plain_admin_key, Method::GET, "/v1/admin/beta/features", None)
            .await
            .status,
        StatusCode::FORBIDDEN,
        "an admin's key without the admin scope is not an admin"
    );
});

each_backend!(
    sign_ins_are_throttled_per_address_and_alike_for_unknown_ones,
    |backend| {
        let s = Stack::start(backend).await;
        s.signup("target@example.com").await;
        for email in ["target@example.com", "ghost@example.com"] {
            for attempt in 1..=5 {
                let r = login(&s, email, "wrong guess").await;
                assert_eq!(
                    (r.status, r.code()),
                    (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
                    "{email} attempt {attempt}"
                );
            }
            // Locked now, even with the right password, and the same for an unknown address.
            let r = login(&s, email, PASSWORD).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::TOO_MANY_REQUESTS, "LOGIN_THROTTLED"),
                "{email}"
            );
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=30).contains(&retry), "{retry}");
        }
        // Another address is not affected.
        s.signup("bystander@example.com").await;
        assert_eq!(
            login(&s, "bystander@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
        // The lock ends; the next failure locks for longer.
        {
            use portico_gateway::auth::store::schema::login_failures::dsl::*;
            diesel::update(login_failures)
                .set(locked_until.eq(0_i64))
                .execute(&mut s.gateway_conn())
                .unwrap();
        }
        assert_eq!(
            login(&s, "target@example.com", "wrong again").await.status,
            StatusCode::UNAUTHORIZED
        );
        let r = login(&s, "target@example.com", PASSWORD).await;
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(
            (31..=60).contains(&retry),
            "the sixth failure locks for a minute: {retry}"
        );
    }
);

async fn wait_for_erasures(s: &Stack, delivered: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let b = s.gateways[0]
            .state
            .auth
            .outbox()
            .backlog(portico_gateway::auth::ERASE_TOPIC)
            .await
            .unwrap();
        if b.delivered == delivered && b.pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "erasures still pending: {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

each_backend!(deleting_an_account_erases_it_in_every_service, |backend| {
    // Fails on the old gateway: only the gateway's own rows went; the beta membership, the
    // photos (with their GPS data) and the analyses stayed.
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (token, _, user_id) = s.signup("leaving@example.com").await;
    assert_eq!(
        s.post("/v1/beta/join", Some(&token), json!({"code": "COSNAPBETA2025"}))
            .await
            .status,
        StatusCode::OK
    );
    let up = crate::support::upload(&s, &token, crate::support::png(64, 48), &[]).await;
    assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
    assert!(s.media_files() > 0);
    let members = s.get("/v1/admin/beta/users", Some(&admin)).await;
    assert!(members.body.to_string().contains(&user_id));
    let reported = s
        .post(
            "/v1/monitoring/errors",
            Some(&token),
            json!({"message": "crash on checkout"}),
        )
        .await;
    let group = reported.data()["groupId"].as_str().unwrap().to_string();

    let gone = s.send(Method::DELETE, "/v1/auth/me", Some(&token), None).await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    // Beta, workflow, media, billing and monitoring.
    wait_for_erasures(&s, 5, Duration::from_secs(10)).await;
    let errors = s.get(&format!("/v1/monitoring/errors/{group}"), Some(&admin)).await;
    assert_eq!(
        (&errors.data()["usersAffected"], &errors.data()["latestEvent"]),
        (&json!(0), &Value::Null),
        "the user's error events are gone, the count stays: {:?}",
        errors.body
    );
    let members = s.get("/v1/admin/beta/users", Some(&admin)).await;
    assert!(!members.body.to_string().contains(&user_id), "{}", members.body);
    assert_eq!(
        s.media_files(),
        0,
        "the photos and their originals are gone from the store"
    );
    assert_eq!(
        s.get("/v1/auth/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_waits_for_a_service_that_is_down() {
    let dead = portico_testkit::DeadPort::new();
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_BETA_URL", dead.url("http"))).await;
    let (token, _, _) = s.signup("patient@example.com").await;
    assert_eq!(
        s.send(Method::DELETE, "/v1/auth/me", Some(&token), None).await.status,
        StatusCode::OK
    );
    // Media, workflow, billing and monitoring answer; beta is down, so its erasure stays queued.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = s.gateways[0]
            .state
            .auth
            .outbox()
            .backlog(portico_gateway::auth::ERASE_TOPIC)
            .await
            .unwrap();
        if b.delivered == 4 {
            assert_eq!(b.pending, 1);
            break;
        }
        assert!(Instant::now() < deadline, "{b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Beta comes back on its address: the queued erasure reaches it.
    let db = TestDb::new(Backend::Sqlite, "late-beta");
    let config = portico_beta::BetaConfig::from_vars(&portico_runtime::config::Vars::from_map([
        ("PORTICO_BETA_DATABASE_URL", db.url.clone()),
        ("PORTICO_INTERNAL_TOKEN", crate::support::TOKEN.to_string()),
    ]))
    .unwrap();
    let port = dead.port;
    drop(dead);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let _beta = portico_runtime::service::start_on(listener, config, stop.clone())
        .await
        .unwrap();
    wait_for_erasures(&s, 5, Duration::from_secs(20)).await;
    stop.cancel();
}

each_backend!(expired_sessions_and_mailed_tokens_are_purged, |backend| {
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup("old@example.com").await;
    s.post("/v1/auth/logout", Some(&token), json!({})).await;
    {
        use portico_gateway::auth::store::schema::{email_tokens, sessions};
        let mut conn = s.gateway_conn();
        diesel::update(sessions::table)
            .set(sessions::revoked_at.eq(1_i64))
            .execute(&mut conn)
            .unwrap();
        diesel::update(email_tokens::table)
            .set(email_tokens::expires_at.eq(1_i64))
            .execute(&mut conn)
            .unwrap();
    }
    let removed = s.gateways[0].state.auth.purge_expired().await.unwrap();
    assert!(
        removed >= 3,
        "a session, its refresh token and the verification token: {removed}"
    );
    use portico_gateway::auth::store::schema::{email_tokens, refresh_tokens, sessions};
    let mut conn = s.gateway_conn();
    let left: i64 = sessions::table.count().get_result(&mut conn).unwrap();
    let tokens: i64 = refresh_tokens::table.count().get_result(&mut conn).unwrap();
    let mailed: i64 = email_tokens::table.count().get_result(&mut conn).unwrap();
    assert_eq!((left, tokens, mailed), (0, 0, 0));
});

//! Authorisation, table-driven from the route table itself: every admin route refuses users,
//! every signed-in route refuses strangers, every sensitive route refuses API keys, and every
//! resource type is invisible to other users. A route added without its protection fails
//! here (SECURITY.md maps these to the OWASP API Top 10).

use std::time::Duration;

use portico_gateway::routes::{API_ROUTES, Access};
use portico_testkit::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    each_backend,
    support::{Stack, png, reply, upload},
};

const SOME_ID: &str = "0192f0c2-7d3a-7e11-8000-000000000000";

fn concrete(path: &str) -> String {
    format!(
        "/v1{}",
        path.replace("{id}", SOME_ID)
            .replace("{userId}", SOME_ID)
            .replace("{code}", "COSNAPBETA2025")
            .replace("{variant}", "thumbnail")
            .replace("{name}", "media.retention_cleanup")
    )
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.to_ascii_uppercase().as_bytes()).unwrap()
}

async fn call(s: &Stack, method: Method, path: &str, auth: Option<(&str, &str)>) -> (StatusCode, String) {
    let mut req = s.http.request(method, s.url(path)).json(&json!({}));
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    let r = reply(req.send().await.unwrap()).await;
    (r.status, r.code().to_string())
}

#[tokio::test]
async fn every_admin_route_refuses_strangers_and_users() {
    let s = Stack::start(Backend::Sqlite).await;
    let (user, _, _) = s.signup("plain@example.com").await;
    let bearer = format!("Bearer {user}");
    let mut admin_routes: Vec<(Method, String)> = API_ROUTES
        .iter()
        .filter(|r| r.access == Access::Admin)
        .map(|r| (method(r.method), concrete(r.path)))
        .collect();
    // The operations endpoints on the API port.
    for path in ["/metrics", "/health/detailed", "/internal/cache-stats"] {
        admin_routes.push((Method::GET, path.to_string()));
    }
    assert!(admin_routes.len() >= 14, "{admin_routes:?}");
    for (m, path) in &admin_routes {
        assert_eq!(
            call(&s, m.clone(), path, None).await,
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()),
            "{m} {path} without credentials"
        );
        assert_eq!(
            call(&s, m.clone(), path, Some(("authorization", &bearer))).await,
            (StatusCode::FORBIDDEN, "FORBIDDEN".into()),
            "{m} {path} as a user"
        );
    }
}

#[tokio::test]
async fn every_signed_in_route_refuses_strangers() {
    let s = Stack::start(Backend::Sqlite).await;
    let routes: Vec<_> = API_ROUTES
        .iter()
        .filter(|r| matches!(r.access, Access::User | Access::Fresh))
        .collect();
    assert!(routes.len() >= 20);
    for r in routes {
        let (status, code) = call(&s, method(r.method), &concrete(r.path), None).await;
        // HEAD answers carry no body to read the code from.
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {}", r.method, r.path);
        if r.method != "head" {
            assert_eq!(code, "UNAUTHORIZED", "{} {}", r.method, r.path);
        }
        let (status, _) = call(
            &s,
            method(r.method),
            &concrete(r.path),
            Some(("x-api-key", "pk_live_forged")),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {} with a forged key",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn every_sensitive_route_refuses_api_keys() {
    let s = Stack::start(Backend::Sqlite).await;
    let (user, _, _) = s.signup("keyholder@example.com").await;
    let key = s.post("/v1/auth/api-keys", Some(&user), json!({"name": "k"})).await;
    let key = key.data()["key"].as_str().unwrap().to_string();
    let fresh: Vec<_> = API_ROUTES.iter().filter(|r| r.access == Access::Fresh).collect();
    assert_eq!(fresh.len(), 3, "delete account, create API key, change password");
    for r in fresh {
        assert_eq!(
            call(&s, method(r.method), &concrete(r.path), Some(("x-api-key", &key))).await,
            (StatusCode::FORBIDDEN, "FRESH_LOGIN_REQUIRED".into()),
            "{} {}",
            r.method,
            r.path
        );
    }
}

each_backend!(every_resource_type_is_invisible_to_other_users, |backend| {
    let s = Stack::start(backend).await;
    let (owner, _, _) = s.signup("owner@example.com").await;
    let (other, _, _) = s.signup("other@example.com").await;
    // One of each kind of object.
    let media = upload(&s, &owner, png(64, 48), &[]).await;
    assert_eq!(media.status, StatusCode::CREATED, "{:?}", media.body);
    let media_id = media.data()["mediaId"].as_str().unwrap().to_string();
    let tus = s
        .http
        .post(s.url("/v1/mobile/uploads"))
        .bearer_auth(&owner)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "100")
        .send()
        .await
        .unwrap();
    let upload_path = tus.headers()["location"].to_str().unwrap().to_string();
    let analysis = s
        .post(
            "/v1/workflows/analyze",
            Some(&owner),
            json!({"name": "w", "triggers": [{"id": "t", "type": "form_submitted", "next": "e"}],
                   "steps": [{"id": "e", "type": "end"}]}),
        )
        .await;
    assert_eq!(analysis.status, StatusCode::OK, "{:?}", analysis.body);
    let analysis_id = analysis.data()["analysisId"].as_str().unwrap().to_string();
    let key = s.post("/v1/auth/api-keys", Some(&owner), json!({"name": "mine"})).await;
    let key_id = key.data()["id"].as_str().unwrap().to_string();

    let tus_req = |m: Method| {
        s.http
            .request(m, s.url(&upload_path))
            .bearer_auth(&other)
            .header("tus-resumable", "1.0.0")
    };
    let objects: Vec<(Method, String)> = vec![
        (Method::GET, format!("/v1/media/{media_id}")),
        (Method::GET, format!("/v1/media/{media_id}/thumbnail")),
        (Method::DELETE, format!("/v1/media/{media_id}")),
        (Method::GET, upload_path.clone()),
        (Method::GET, format!("/v1/workflows/analyses/{analysis_id}")),
        (Method::DELETE, format!("/v1/workflows/analyses/{analysis_id}")),
        (Method::DELETE, format!("/v1/auth/api-keys/{key_id}")),
    ];
    for (m, path) in &objects {
        let r = s.send(m.clone(), path, Some(&other), None).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{m} {path} as another user: {:?}",
            r.body
        );
    }
    assert_eq!(
        tus_req(Method::HEAD).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        tus_req(Method::DELETE).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let patch = tus_req(Method::PATCH)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::NOT_FOUND);
    // Lists show only the caller's own.
    for path in ["/v1/workflows/history", "/v1/auth/api-keys"] {
        let r = s.get(path, Some(&other)).await;
        let text = r.body.to_string();
        assert!(
            !text.contains(&analysis_id) && !text.contains(&key_id),
            "{path}: {text}"
        );
    }
    let perf = s
        .get(&format!("/v1/mobile/performance?userId={SOME_ID}"), Some(&other))
        .await;
    assert_eq!(
        (perf.status, perf.code()),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "only admins may ask for another user's data: {}",
        perf.body
    );
    let own_id = s.get("/v1/auth/me", Some(&other)).await.data()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let own = s
        .get(&format!("/v1/mobile/performance?userId={own_id}"), Some(&other))
        .await;
    assert_eq!(own.status, StatusCode::OK, "naming oneself is allowed: {}", own.body);
    assert_eq!(own.data()["scope"], "user");
    // And everything is still there for its owner.
    for (m, path) in objects.iter().filter(|(m, _)| *m == Method::GET) {
        assert_eq!(
            s.send(m.clone(), path, Some(&owner), None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
});

each_backend!(
    properties_a_client_may_not_set_are_refused_and_secrets_never_shown,
    |backend| {
        let s = Stack::start(backend).await;
        // Mass assignment: fields that are the server's to set are refused by name.
        for (field, value) in [
            ("role", json!("admin")),
            ("tier", json!("enterprise")),
            ("emailVerified", json!(true)),
        ] {
            let mut body = json!({"email": format!("{field}@example.com"), "password": "correct horse battery"});
            body[field] = value;
            let r = s.post("/v1/auth/signup", None, body).await;
            assert_eq!(
                (r.status, r.fields()),
                (StatusCode::BAD_REQUEST, vec![field.to_string()]),
                "{field}"
            );
        }
        let (token, _, _) = s.signup("props@example.com").await;
        let r = s
            .post(
                "/v1/auth/api-keys",
                Some(&token),
                json!({"name": "k", "userId": SOME_ID}),
            )
            .await;
        assert_eq!(r.fields(), vec!["userId"]);
        // No answer carries a password hash, a key's hash or a stored token.
        let key = s.post("/v1/auth/api-keys", Some(&token), json!({"name": "k"})).await;
        let answers: Vec<Value> = vec![
            s.get("/v1/auth/me", Some(&token)).await.body,
            s.get("/v1/auth/api-keys", Some(&token)).await.body,
            s.post(
                "/v1/auth/login",
                None,
                json!({"email": "props@example.com", "password": "correct horse battery"}),
            )
            .await
            .body,
        ];
        let key = key.data()["key"].as_str().unwrap().to_string();
        for body in answers {
            let text = body.to_string();
            for secret in [
                "argon2",
                "passwordHash",
                "password_hash",
                "keyHash",
                "key_hash",
                "tokenHash",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(!text.contains(&key), "the key is shown once only: {text}");
        }
    }
);

#[tokio::test]
async fn no_user_supplied_url_is_ever_fetched() {
    // SSRF: workflows name webhook URLs, uploads name files; the server must never fetch
    // what a client names. A listener the URLs point at must see no connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    let s = Stack::start(Backend::Sqlite).await;
    let (token, _, _) = s.signup("ssrf@example.com").await;
    let r = s
        .post(
            "/v1/workflows/analyze",
            Some(&token),
            json!({"name": "w", "triggers": [{"id": "t", "type": "form_submitted", "next": "h"}],
                   "steps": [{"id": "h", "type": "webhook", "config": {"url": target}, "next": "e"},
                             {"id": "e", "type": "end"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text(target.clone()).file_name("x.jpg"),
    );
    let r = s.post_form("/v1/mobile/upload-optimized", &token, form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a URL is not an image: {:?}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "something connected to the URL a client named"
    );
}

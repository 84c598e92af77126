//! Bad input gets a clear 4xx naming what is wrong, and nothing is stored.

use reqwest::StatusCode;
use serde_json::json;

use crate::{each_backend, support::Stack};

async fn raw(s: &Stack, path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> crate::support::Reply {
    let mut req = s.http.post(s.url(path)).header("content-type", content_type).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    crate::support::reply(req.send().await.unwrap()).await
}

each_backend!(malformed_bodies_are_refused_and_nothing_is_stored, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;

    let r = raw(
        &s,
        "/v1/auth/signup",
        None,
        "application/json",
        b"{\"email\": ".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "INVALID_JSON"));
    assert!(r.body["error"]["details"]["line"].is_number());

    let r = raw(&s, "/v1/auth/signup", None, "text/plain", b"email=a".to_vec()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
    );

    let r = s
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": 42, "password": ["x"], "nickname": "n"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(
        r.fields(),
        vec!["email", "nickname", "password"],
        "every bad field is named"
    );

    let r = s.post("/v1/auth/signup", None, json!({})).await;
    assert_eq!(r.fields(), vec!["email", "password"], "every missing field is named");
    let r = s
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "not-an-email", "password": "short"}),
        )
        .await;
    assert_eq!(r.fields(), vec!["email", "password"]);
    let r = raw(&s, "/v1/auth/signup", None, "application/json", b"[]".to_vec()).await;
    assert_eq!(r.fields(), vec!["body"]);

    let huge = format!(
        "{{\"email\": \"a@example.com\", \"password\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = raw(&s, "/v1/auth/signup", None, "application/json", huge.into_bytes()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );

    // None of the above created an account.
    let login = s
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "a@example.com", "password": "x".repeat(10)}),
        )
        .await;
    assert_eq!(login.code(), "INVALID_CREDENTIALS");

    let r = s
        .post(
            "/v1/admin/beta/invite-codes",
            Some(&admin),
            json!({"accessLevel": "GOLD", "maxUses": "ten", "expiresAt": "soon"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fields(),
        vec!["accessLevel", "expiresAt", "maxUses"],
        "type and value errors are named in one answer"
    );
    let r = s
        .post(
            "/v1/admin/beta/invite-codes",
            Some(&admin),
            json!({"accessLevel": "GOLD", "maxUses": 0, "expiresAt": "soon"}),
        )
        .await;
    assert_eq!(r.fields(), vec!["accessLevel", "expiresAt", "maxUses"]);
    let r = s
        .post(
            "/v1/admin/beta/invite-codes",
            Some(&admin),
            json!({"code": "x y", "accessLevel": "BASIC", "maxUses": 0}),
        )
        .await;
    assert_eq!(r.fields(), vec!["code", "maxUses"]);
    let list = s.get("/v1/admin/beta/invite-codes", Some(&admin)).await;
    assert_eq!(list.data()["total"], 3, "only the three demo codes exist");

    let r = s
        .get("/v1/admin/beta/invite-codes?limit=0&offset=-1", Some(&admin))
        .await;
    assert_eq!(r.fields(), vec!["limit", "offset"]);
    let r = s.get("/v1/admin/beta/invite-codes?limit=abc", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
});

#[tokio::test]
async fn the_body_cap_is_configurable() {
    let s = Stack::with(
        crate::support::Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_JSON_LIMIT_BYTES", "64"),
    )
    .await;
    let r = s
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "a@example.com", "password": "x".repeat(100)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"]["details"]["limitBytes"], 64);
}

#[tokio::test]
async fn compressed_json_bodies_are_decoded_and_held_to_the_cap() {
    use std::io::Write;

    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let send = |encoding: &'static str, body: Vec<u8>| {
        let req = s
            .http
            .post(s.url("/v1/auth/signup"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body);
        async move { crate::support::reply(req.send().await.unwrap()).await }
    };
    let gzip = |body: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    };
    let signup = |email: &str| json!({"email": email, "password": "correct horse battery staple"}).to_string();

    let r = send("gzip", gzip(signup("gzip@example.com").as_bytes())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let mut br = Vec::new();
    brotli::BrotliCompress(&mut signup("br@example.com").as_bytes(), &mut br, &Default::default()).unwrap();
    let r = send("br", br).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // A coding the gateway cannot decode is named, not guessed at.
    let r = send("compress", signup("lzw@example.com").into_bytes()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
    );
    assert_eq!(r.fields(), vec!["Content-Encoding"]);
    // A small body that inflates past the 1 MiB cap is refused while it inflates.
    let bomb = format!(
        r#"{{"email": "bomb@example.com", "password": "{}"}}"#,
        "x".repeat(4 << 20)
    );
    let compressed = gzip(bomb.as_bytes());
    assert!(compressed.len() < 64 * 1024);
    let r = send("gzip", compressed).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    // A body that does not decode as its coding says.
    let r = send("gzip", b"not gzip at all".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // None of the refused ones made an account.
    for email in ["lzw@example.com", "bomb@example.com"] {
        let r = s
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "correct horse battery staple"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{email}");
    }
}

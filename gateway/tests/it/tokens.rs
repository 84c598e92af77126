//! Hostile and stale access tokens.

use base64::Engine;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use portico_gateway::auth::crypto::{AccessClaims, KeyRing, SigningKey};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{each_backend, support::Stack};

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The gateway's active signing key, read from its database and opened with the test KEK
/// (an attacker with the database alone cannot: see `signing_keys_are_sealed_at_rest`).
fn active_key(s: &Stack) -> SigningKey {
    use portico_gateway::auth::store::schema::signing_keys::dsl::*;
    let (k, private, created): (String, String, i64) = signing_keys
        .filter(retired_at.is_null())
        .select((kid, private_key, created_at))
        .first(&mut s.gateway_conn())
        .unwrap();
    let der = crate::support::kek().open(&k, &private).unwrap();
    SigningKey::from_pkcs8(k, &der, created).unwrap()
}

each_backend!(signing_keys_are_sealed_at_rest, |backend| {
    // Fails on the old code: keys were stored as hex-encoded PKCS#8, so a dump of this table
    // was enough to mint a token for any user.
    use portico_gateway::auth::store::schema::signing_keys::dsl::*;
    let s = Stack::start(backend).await;
    let rows: Vec<(String, String)> = signing_keys
        .select((kid, private_key))
        .load(&mut s.gateway_conn())
        .unwrap();
    assert!(!rows.is_empty());
    for (k, private) in &rows {
        assert!(private.starts_with("v1."), "sealed: {private}");
        assert!(hex::decode(private).is_err(), "not plaintext hex");
        let other = portico_gateway::auth::sealing::Kek::from_bytes(&[9u8; 32]).unwrap();
        assert!(other.open(k, private).is_err(), "another KEK cannot open it");
        let der = crate::support::kek().open(k, private).unwrap();
        assert!(SigningKey::from_pkcs8(k.clone(), &der, 0).is_ok());
    }
});

fn claims(sub: &str, sid: &str, exp_offset: i64) -> AccessClaims {
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        sub: sub.into(),
        jti: "t".into(),
        iat: now - 100,
        exp: now + exp_offset,
        iss: "portico".into(),
        aud: "portico-api".into(),
        role: "admin".into(),
        tier: "enterprise".into(),
        sid: sid.into(),
        auth_time: now - 100,
    }
}

each_backend!(forged_expired_and_stale_tokens_are_refused, |backend| {
    let s = Stack::start(backend).await;
    let (good, _, user_id) = s.signup("victim@example.com").await;
    let payload = good.split('.').nth(1).unwrap().to_string();
    let sid: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&payload)
            .unwrap(),
    )
    .unwrap();
    let sid = sid["sid"].as_str().unwrap().to_string();
    let key = active_key(&s);

    // alg none with the real kid.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": key.kid})),
        payload
    );
    // Signed by a stranger's key that claims the real kid.
    let stranger = SigningKey::from_pkcs8(key.kid.clone(), SigningKey::generate().unwrap().pkcs8_der(), 0).unwrap();
    let stranger = KeyRing::new(stranger, vec![], "portico", "portico-api").unwrap();
    let wrong_key = stranger.sign(&claims(&user_id, &sid, 600)).unwrap();
    // Properly signed but expired.
    let ring = KeyRing::new(key, vec![], "portico", "portico-api").unwrap();
    let expired = ring.sign(&claims(&user_id, &sid, -60)).unwrap();
    // A valid signature over a tampered payload.
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = b64(&json!(claims(&user_id, &sid, 600)));
    let tampered = parts.join(".");

    for (name, token, code) in [
        ("alg none", none.as_str(), "INVALID_TOKEN"),
        ("wrong key", wrong_key.as_str(), "INVALID_TOKEN"),
        ("expired", expired.as_str(), "TOKEN_EXPIRED"),
        ("tampered", tampered.as_str(), "INVALID_TOKEN"),
        ("garbage", "not.a.jwt", "INVALID_TOKEN"),
    ] {
        let r = s.get("/v1/auth/me", Some(token)).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, code), "{name}");
    }
    let basic = s
        .http
        .get(s.url("/v1/auth/me"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // A real token whose user was deleted.
    assert_eq!(s.get("/v1/auth/me", Some(&good)).await.status, StatusCode::OK);
    let del = s.send(Method::DELETE, "/v1/auth/me", Some(&good), None).await;
    assert_eq!(del.status, StatusCode::OK);
    let gone = s.get("/v1/auth/me", Some(&good)).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"));
});

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let (token, _, _) = s.signup("k@example.com").await;
    let header = crate::support::jwt_header(&token);
    let jwks = s.document(0, "/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["kid"] == header["kid"] && k["kty"] == "OKP" && k["alg"] == "EdDSA")
    );
    assert!(keys.iter().all(|k| k.get("d").is_none()), "no private material");
}

each_backend!(
    rotated_keys_keep_old_tokens_valid_and_replicas_learn_new_keys,
    |backend| {
        let s = Stack::with(
            crate::support::Options::new(backend)
                .gateways(2)
                .var("PORTICO_JWT_ROTATION_SECS", "1"),
        )
        .await;
        let (old_token, _, _) = s.signup("rotate@example.com").await;
        let kid = |t: &str| crate::support::jwt_header(t)["kid"].as_str().unwrap().to_string();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        // Replica 1 rotates; replica 0 has not reloaded yet.
        s.gateways[1].state.auth.rotate_keys().await.unwrap();
        let login = s
            .send_on(
                1,
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": "rotate@example.com", "password": "correct horse battery"})),
            )
            .await;
        let new_token = login.data()["accessToken"].as_str().unwrap().to_string();
        assert_ne!(kid(&new_token), kid(&old_token), "the new key signs");

        let jwks = s.document(1, "/.well-known/jwks.json").await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(
            kids.contains(&kid(&old_token).as_str()) && kids.contains(&kid(&new_token).as_str()),
            "{kids:?}"
        );

        assert_eq!(
            s.get("/v1/auth/me", Some(&old_token)).await.status,
            StatusCode::OK,
            "old tokens stay valid"
        );
        let on_other = s.send_on(0, Method::GET, "/v1/auth/me", Some(&new_token), None).await;
        assert_eq!(
            on_other.status,
            StatusCode::OK,
            "a replica learns a key another replica created"
        );
    }
);

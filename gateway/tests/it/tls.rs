//! HTTPS with the operator's certificate, HSTS on TLS only, and graceful shutdown.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{Options, Stack};

#[tokio::test]
async fn the_gateway_serves_https_with_hsts_when_given_a_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("portico-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s = Stack::with(
        Options::new(portico_testkit::Backend::Sqlite)
            .var("PORTICO_TLS_CERT", cert_path.display().to_string())
            .var("PORTICO_TLS_KEY", key_path.display().to_string()),
    )
    .await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let port = s.gateways[0].addr.port();
    let res = client
        .get(format!("https://localhost:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("strict-transport-security").is_some());
    let plain = s.http.get(format!("http://localhost:{port}/health")).send().await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP is not served on the TLS port"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_missing_key_file_is_named_at_start() {
    let vars = portico_runtime::config::Vars::from_map([("PORTICO_TLS_CERT", "/nonexistent/cert.pem")]);
    let err = portico_gateway::GatewayConfig::from_vars(&vars).unwrap_err();
    assert_eq!(err.var, "PORTICO_TLS_KEY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_then_stops_accepting() {
    let s = Stack::start(portico_testkit::Backend::Sqlite).await;
    let (token, _, _) = s.signup("drain@example.com").await;
    // Eight clients keep requests in flight until the gateway stops taking them.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, url, token) = (s.http.clone(), s.url("/v1/beta/user-access"), token.clone());
        clients.push(tokio::spawn(async move {
            let mut answered = 0;
            loop {
                match http.get(&url).bearer_auth(&token).send().await.map(|r| r.status()) {
                    Ok(status) => {
                        assert_eq!(status, StatusCode::OK, "a request that got in is answered in full");
                        answered += 1;
                    }
                    Err(e) => {
                        assert!(e.is_connect() || e.is_request(), "only refused, never cut: {e}");
                        return answered;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = s.url("/health");
    s.shutdown();
    let mut answered = 0;
    for c in clients {
        answered += c.await.unwrap();
    }
    assert!(answered > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(&url).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway kept accepting after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

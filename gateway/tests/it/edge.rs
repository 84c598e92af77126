//! The holes a hostile client looks for at the edge: other spellings of a path, forged
//! forwarding headers, budgets per IPv6 address, failed authentication without a limit, and
//! bodies read before they are checked. Each test here fails on the gateway as it was before
//! the edge-security work (the commit says which hole each closes).

use std::net::SocketAddr;

use portico_testkit::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Options, Stack};

/// A response read off the wire.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with the path exactly as given (an HTTP client library would
/// normalise dot segments away before sending).
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Other spellings of `/v1{path}` that decode to it.
fn variants(path: &str) -> Vec<String> {
    let (head, last) = path.rsplit_once('/').unwrap();
    vec![
        format!("/v%31{path}"),
        format!("/%761{path}"),
        format!("//v1{path}"),
        format!("/v1/.{path}"),
        format!("/v1/x/..{path}"),
        format!("/v1{head}//{last}"),
        format!("/v1{path}%2F"),
        format!("/v1{path}/."),
        format!(
            "/v1{head}/%2e%2e/{}{path}",
            head.trim_start_matches('/').split('/').next().unwrap_or("")
        ),
    ]
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0192f0c2-7d3a-7e11-8000-000000000000")
        .replace("{userId}", "0192f0c2-7d3a-7e11-8000-000000000000")
        .replace("{code}", "COSNAPBETA2025")
        .replace("{variant}", "thumbnail")
}

#[tokio::test]
async fn no_route_is_reached_through_another_spelling_of_its_path() {
    // Fails on the old gateway: `/v%31/auth/login` was routed to the login handler while
    // the limiter, deciding on the raw path, took it for a non-API path.
    let s = Stack::start(Backend::Sqlite).await;
    let addr = s.gateways[0].addr;
    for route in portico_gateway::routes::API_ROUTES {
        let path = concrete(route.path);
        let method = route.method.to_ascii_uppercase();
        for spelled in variants(&path) {
            let r = raw(addr, &method, &spelled, &[], "{}").await;
            // A HEAD answer has no body to name the code.
            let code = if method == "HEAD" { "INVALID_PATH" } else { r.code() };
            assert_eq!(
                (r.status, code),
                (400, "INVALID_PATH"),
                "{method} {spelled} must be refused before routing: {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn the_login_limit_holds_through_encoded_paths() {
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_ANON_PER_MIN", "5")).await;
    let addr = s.gateways[0].addr;
    let body = json!({"email": "victim@example.com", "password": "guess-guess"}).to_string();
    // Forty tries through other spellings: none reaches the handler, none is a login attempt.
    for i in 0..40 {
        let spelled = &variants("/auth/login")[i % 9];
        let r = raw(addr, "POST", spelled, &[], &body).await;
        assert_eq!(r.status, 400, "{spelled}");
    }
    // The plain path meets its limit after five.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(raw(addr, "POST", "/v1/auth/login", &[], &body).await.status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429, 429], "{statuses:?}");
}

#[tokio::test]
async fn encoded_characters_in_a_parameter_still_pass_the_gate() {
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_ANON_PER_MIN", "2")).await;
    let addr = s.gateways[0].addr;
    // `%3A` decodes to `:` inside the id segment: the route is matched, so the route's gate
    // decides: authentication first, and the anonymous budget.
    let r = raw(addr, "GET", "/v1/media/a%3Ab", &[], "").await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
    assert!(r.header("ratelimit").is_some(), "limited like any API call");
    let r = raw(addr, "GET", "/api/media/a%20b", &[], "").await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
    assert!(
        r.header("deprecation").is_some(),
        "the legacy alias is still the legacy alias"
    );
    let r = raw(addr, "GET", "/v1/media/x", &[], "").await;
    assert_eq!(r.status, 429, "the three calls shared one budget");
    // 404 and 405 answers of the API scopes are limited too.
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_ANON_PER_MIN", "1")).await;
    let addr = s.gateways[0].addr;
    let r = raw(addr, "GET", "/v1/no-such-thing", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.header("ratelimit").is_some());
    let r = raw(addr, "DELETE", "/v1/beta/validate-invite", &[], "").await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn a_made_up_forwarded_address_buys_no_fresh_budget() {
    // Fails on the old gateway: with PORTICO_TRUST_FORWARDED the left-most (client-written)
    // X-Forwarded-For entry was the key, so each new value was a new budget.
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .var("PORTICO_RATE_ANON_PER_MIN", "3")
            .var("PORTICO_TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"),
    )
    .await;
    let addr = s.gateways[0].addr;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let xff = format!("198.18.0.{i}, 203.0.113.5, 10.1.2.3");
        let r = raw(addr, "GET", "/v1/workflows/rules", &[("x-forwarded-for", &xff)], "").await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429, 429],
        "one client behind two proxies"
    );
    // Another real client (right-most untrusted hop) has its own budget.
    let r = raw(
        addr,
        "GET",
        "/v1/workflows/rules",
        &[("x-forwarded-for", "203.0.113.6, 10.1.2.3")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);

    // Without trusted proxies the header is ignored: every value shares the peer's budget.
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_ANON_PER_MIN", "2")).await;
    let addr = s.gateways[0].addr;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let xff = format!("203.0.113.{i}");
        statuses.push(
            raw(addr, "GET", "/v1/workflows/rules", &[("x-forwarded-for", &xff)], "")
                .await
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64() {
    // Fails on the old gateway: one bucket per /128 gave a /64 subscriber 2^64 budgets.
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .var("PORTICO_RATE_ANON_PER_MIN", "3")
            .var("PORTICO_TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await;
    let addr = s.gateways[0].addr;
    let mut statuses = Vec::new();
    for i in 1..=5 {
        let xff = format!("2001:db8:1:2::{i:x}");
        statuses.push(
            raw(addr, "GET", "/v1/workflows/rules", &[("x-forwarded-for", &xff)], "")
                .await
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let neighbour = raw(
        addr,
        "GET",
        "/v1/workflows/rules",
        &[("x-forwarded-for", "2001:db8:1:3::1")],
        "",
    )
    .await;
    assert_eq!(neighbour.status, 200, "the next /64 is someone else");
}

#[tokio::test]
async fn failed_authentication_is_limited_before_any_lookup() {
    // Fails on the old gateway: a bad credential answered 401 without spending any budget,
    // so API keys could be tried (each a cache and database lookup) without limit.
    let s = Stack::with(Options::new(Backend::Sqlite).var("PORTICO_RATE_ANON_PER_MIN", "3")).await;
    let addr = s.gateways[0].addr;
    let key_lookups = || async {
        s.metrics_text()
            .await
            .lines()
            .filter(|l| l.starts_with("portico_cache_requests_total") && l.contains("gateway.api_keys"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let mut statuses = Vec::new();
    for i in 0..2 {
        let key = format!("pk_live_{i:0>43}");
        statuses.push(raw(addr, "GET", "/v1/auth/me", &[("x-api-key", &key)], "").await.status);
    }
    // An unreadable credential is a failure like any other.
    statuses.push(
        raw(
            addr,
            "GET",
            "/v1/auth/me",
            &[("authorization", "Basic Zm9vOmJhcg==")],
            "",
        )
        .await
        .status,
    );
    assert_eq!(statuses, [401, 401, 401]);
    // The fourth failure spends the last of the budget: 429, and the client is now known.
    let r = raw(addr, "GET", "/v1/auth/me", &[("x-api-key", "pk_live_fourth")], "").await;
    assert_eq!(r.status, 429);
    let before = key_lookups().await;
    assert!(
        before > 0.0,
        "the first attempts were looked up (the counter is read right)"
    );
    for i in 0..20 {
        let key = format!("pk_live_more{i}");
        let r = raw(addr, "GET", "/v1/auth/me", &[("x-api-key", &key)], "").await;
        assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"));
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(
        key_lookups().await,
        before,
        "no API-key lookup was made for a blocked client"
    );
    // Bearer tokens are turned away alike.
    let r = raw(addr, "GET", "/v1/auth/me", &[("authorization", "Bearer not.a.jwt")], "").await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn tus_chunks_are_checked_before_their_body_is_read() {
    let s = Stack::with(
        Options::new(Backend::Sqlite)
            .var("PORTICO_MEDIA_MAX_CHUNK_BYTES", "1024")
            .var("PORTICO_RATE_FREE_PER_MIN", "5")
            .var("PORTICO_RATE_UPLOAD_CHUNKS_PER_MIN", "1000"),
    )
    .await;
    let (token, _, _) = s.signup("chunks@example.com").await;
    let (other, _, _) = s.signup("stranger@example.com").await;
    let created = s
        .http
        .post(s.url("/v1/mobile/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "4000")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let patch = |who: &str, offset: usize, body: Vec<u8>| {
        s.http
            .patch(s.url(&location))
            .bearer_auth(who.to_string())
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(body)
            .send()
    };
    // A stranger's PATCH: 404, and nothing appended.
    let r = patch(&other, 0, vec![1; 100]).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Over the chunk cap: 413 (declared by Content-Length, refused before reading).
    let r = patch(&token, 0, vec![1; 2048]).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    // A wrong offset: 409 with the offset to resume from.
    let r = patch(&token, 10, vec![1; 100]).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["upload-offset"], "0");
    // Chunks have their own budget: many more than the per-minute API limit of 5.
    for i in 0..3 {
        let r = patch(&token, i * 1000, vec![1; 1000]).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(
            r.headers()["ratelimit-policy"]
                .to_str()
                .unwrap()
                .starts_with("\"upload-chunks\""),
            "{:?}",
            r.headers()["ratelimit-policy"]
        );
    }
    // Past the upload's length: 413 naming what remains, nothing stored.
    let r = patch(&token, 3000, vec![1; 1001]).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let state = s.get(&location, Some(&token)).await;
    assert_eq!(state.data()["offset"], 3000, "{:?}", state.body);
    // The API budget was not spent by the chunks.
    for _ in 0..3 {
        assert_eq!(s.get("/v1/auth/me", Some(&token)).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn unknown_multipart_parts_are_refused_unread() {
    let s = Stack::start(Backend::Sqlite).await;
    let (token, _, _) = s.signup("parts@example.com").await;
    // A 20 MiB unknown part before the file: refused by name at once.
    let form = reqwest::multipart::Form::new()
        .part("padding", reqwest::multipart::Part::bytes(vec![0u8; 20 * 1024 * 1024]))
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("a.jpg"),
        );
    let res = s
        .http
        .request(Method::POST, s.url("/v1/mobile/upload-optimized"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await;
    // The gateway may answer before the client has sent the whole body, and close.
    if let Ok(res) = res {
        let r = crate::support::reply(res).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.fields(), vec!["padding"]);
    }
    // Two file parts: refused at the second.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("a.jpg"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("b.jpg"),
        );
    let r = s.post_form("/v1/mobile/upload-optimized", &token, form).await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["file".to_string()])
    );
}

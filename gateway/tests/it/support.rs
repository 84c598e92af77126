//! A whole stack per test: the services and the gateway on ephemeral ports, fresh databases.

use std::collections::HashMap;

use portico_runtime::config::Vars;
use portico_testkit::{Backend, TestDb};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-internal-token-0123456789";
pub const ADMIN: &str = "admin@example.com";
/// The key-encryption key of every test gateway (32 bytes of 0x2a, base64).
pub const KEK: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The tests' key-encryption key.
pub fn kek() -> portico_gateway::auth::sealing::Kek {
    portico_gateway::auth::sealing::Kek::from_base64(KEK).unwrap()
}

pub struct Stack {
    pub gateways: Vec<portico_gateway::Running>,
    /// The SMTP server the gateways mail to.
    pub smtp: portico_testkit::SmtpSink,
    _beta: portico_beta::Running,
    _workflow: portico_workflow::Running,
    _media: portico_media::Running,
    _billing: portico_runtime::grpc::Running,
    _monitoring: portico_runtime::grpc::Running,
    /// The monitoring service's application (tests run its evaluator on their own clock).
    pub monitoring: portico_monitoring::Monitoring,
    media_dir: std::path::PathBuf,
    pub http: reqwest::Client,
    pub gateway_db: String,
    stop: CancellationToken,
    services_stop: CancellationToken,
    _dbs: Vec<TestDb>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn fields(&self) -> Vec<String> {
        self.body["error"]["details"]["fields"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Options {
    pub backend: Backend,
    pub gateways: usize,
    pub vars: Vec<(&'static str, String)>,
    pub beta_vars: Vec<(&'static str, String)>,
    pub workflow_vars: Vec<(&'static str, String)>,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Options {
            backend,
            gateways: 1,
            vars: Vec::new(),
            beta_vars: Vec::new(),
            workflow_vars: Vec::new(),
        }
    }
    pub fn var(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.vars.push((k, v.into()));
        self
    }
    pub fn beta_var(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.beta_vars.push((k, v.into()));
        self
    }
    pub fn workflow_var(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.workflow_vars.push((k, v.into()));
        self
    }
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateways = n;
        self
    }
}

impl Stack {
    pub async fn start(backend: Backend) -> Stack {
        Stack::with(Options::new(backend)).await
    }

    pub async fn with(opts: Options) -> Stack {
        let beta_db = TestDb::new(opts.backend, "gwbeta");
        let workflow_db = TestDb::new(opts.backend, "gwworkflow");
        let gw_db = TestDb::new(opts.backend, "gateway");
        let stop = CancellationToken::new();
        let services_stop = CancellationToken::new();
        // With a shared Redis configured (CI), every stack uses it, under its own key prefix.
        let shared_redis =
            portico_testkit::redis_url().filter(|_| !opts.vars.iter().any(|(k, _)| *k == "PORTICO_REDIS_URL"));
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let mut shared: Vec<(&str, String)> = vec![("PORTICO_REDIS_KEY_PREFIX", prefix)];
        if let Some(url) = shared_redis {
            shared.push(("PORTICO_REDIS_URL", url));
        }
        let mut beta_vars: HashMap<&str, String> = HashMap::from([
            ("PORTICO_BETA_DATABASE_URL", beta_db.url.clone()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
            ("PORTICO_BETA_SEED_DEMO", "true".to_string()),
        ]);
        beta_vars.extend(shared.iter().cloned());
        beta_vars.extend(opts.beta_vars.iter().cloned());
        let config = portico_beta::BetaConfig::from_vars(&Vars::from_map(beta_vars)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let beta = portico_runtime::service::start_on(listener, config, services_stop.clone())
            .await
            .unwrap()
            .running;
        let mut workflow_vars: HashMap<&str, String> = HashMap::from([
            ("PORTICO_WORKFLOW_DATABASE_URL", workflow_db.url.clone()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
        ]);
        workflow_vars.extend(shared.iter().cloned());
        workflow_vars.extend(opts.workflow_vars.iter().cloned());
        let config = portico_workflow::WorkflowConfig::from_vars(&Vars::from_map(workflow_vars)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let workflow = portico_runtime::service::start_on(listener, config, services_stop.clone())
            .await
            .unwrap()
            .running;
        let media_db = TestDb::new(opts.backend, "gwmedia");
        let media_dir = std::env::temp_dir().join(format!("portico-gw-media-{}", uuid::Uuid::new_v4().simple()));
        let mut media_vars: HashMap<&str, String> = HashMap::from([
            ("PORTICO_MEDIA_DATABASE_URL", media_db.url.clone()),
            ("PORTICO_MEDIA_DIR", media_dir.display().to_string()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
        ]);
        media_vars.extend(shared.iter().cloned());
        // The gateway and the media service share the byte cap, as in every deployment.
        media_vars.extend(
            opts.vars
                .iter()
                .filter(|(k, _)| k.starts_with("PORTICO_MEDIA_"))
                .cloned(),
        );
        let config = portico_media::MediaConfig::from_vars(&Vars::from_map(media_vars)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let media = portico_runtime::service::start_on(listener, config, services_stop.clone())
            .await
            .unwrap()
            .running;
        let smtp = portico_testkit::SmtpSink::start();
        let billing_db = TestDb::new(opts.backend, "gwbilling");
        let mut billing_vars: HashMap<&str, String> = HashMap::from([
            ("PORTICO_BILLING_DATABASE_URL", billing_db.url.clone()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
            ("PORTICO_SMTP_URL", smtp.url()),
        ]);
        billing_vars.extend(shared.iter().cloned());
        billing_vars.extend(
            opts.vars
                .iter()
                .filter(|(k, _)| k.starts_with("PORTICO_BILLING_") || k.starts_with("PORTICO_STRIPE_"))
                .cloned(),
        );
        let config = portico_billing::BillingConfig::from_vars(&Vars::from_map(billing_vars)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let billing = portico_runtime::service::start_on(listener, config, services_stop.clone())
            .await
            .unwrap()
            .running;
        let monitoring_db = TestDb::new(opts.backend, "gwmonitoring");
        let mut monitoring_vars: HashMap<&str, String> = HashMap::from([
            ("PORTICO_MONITORING_DATABASE_URL", monitoring_db.url.clone()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
            // Evaluated by the tests' own calls; nothing here to probe.
            ("PORTICO_ALERT_EVAL_INTERVAL_SECS", "0".to_string()),
            ("PORTICO_SMTP_URL", smtp.url()),
            ("PORTICO_MONITORING_PROBE_INTERVAL_SECS", "0".to_string()),
        ]);
        monitoring_vars.extend(shared.iter().cloned());
        monitoring_vars.extend(
            opts.vars
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("PORTICO_MONITORING_")
                        || k.starts_with("PORTICO_ALERT_")
                        || *k == "PORTICO_PUBLIC_URL"
                })
                .cloned(),
        );
        let config = portico_monitoring::MonitoringConfig::from_vars(&Vars::from_map(monitoring_vars)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = portico_runtime::service::start_on(listener, config, services_stop.clone())
            .await
            .unwrap();
        let (monitoring, monitoring_app) = (started.running, started.app);
        let mut gateways = Vec::new();
        for _ in 0..opts.gateways {
            let mut vars: HashMap<&str, String> = HashMap::from([
                ("PORTICO_GATEWAY_DATABASE_URL", gw_db.url.clone()),
                ("PORTICO_INTERNAL_TOKEN", TOKEN.to_string()),
                ("PORTICO_BETA_URL", format!("http://{}", beta.addr)),
                ("PORTICO_WORKFLOW_URL", format!("http://{}", workflow.addr)),
                ("PORTICO_MEDIA_URL", format!("http://{}", media.addr)),
                ("PORTICO_BILLING_URL", format!("http://{}", billing.addr)),
                ("PORTICO_MONITORING_URL", format!("http://{}", monitoring.addr)),
                ("PORTICO_KEY_ENCRYPTION_KEY", KEK.to_string()),
                ("PORTICO_ADMIN_ADDR", "127.0.0.1:0".to_string()),
                ("PORTICO_SMTP_URL", smtp.url()),
                ("PORTICO_HTTP_WORKERS", "2".to_string()),
                // Generous limits unless a test sets its own.
                ("PORTICO_RATE_ANON_PER_MIN", "100000".to_string()),
                ("PORTICO_RATE_FREE_PER_MIN", "100000".to_string()),
                ("PORTICO_RATE_PRO_PER_MIN", "100000".to_string()),
                ("PORTICO_RATE_ENTERPRISE_PER_MIN", "100000".to_string()),
            ]);
            vars.extend(shared.iter().cloned());
            vars.extend(opts.vars.iter().cloned());
            let config = portico_gateway::GatewayConfig::from_vars(&Vars::from_map(vars)).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gateways.push(portico_gateway::start_on(listener, config, stop.clone()).await.unwrap());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let gateway_db = gw_db.url.clone();
        Stack {
            gateways,
            smtp,
            _beta: beta,
            _workflow: workflow,
            _media: media,
            _billing: billing,
            _monitoring: monitoring,
            monitoring: monitoring_app,
            media_dir,
            http,
            gateway_db,
            stop,
            services_stop,
            _dbs: vec![beta_db, workflow_db, media_db, billing_db, monitoring_db, gw_db],
        }
    }

    /// Starts a graceful shutdown of the gateways (services stay up to answer their drain).
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        self.url_on(0, path)
    }

    pub fn url_on(&self, gateway: usize, path: &str) -> String {
        format!("http://{}{path}", self.gateways[gateway].addr)
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.send_on(0, method, path, token, body).await
    }

    pub async fn send_on(
        &self,
        gw: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url_on(gw, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.unwrap()).await
    }

    /// A document served outside the envelope (OpenAPI, JWKS), from gateway `gw`.
    pub async fn document(&self, gw: usize, path: &str) -> Value {
        self.http
            .get(self.url_on(gw, path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs raw bytes with a Content-Type.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Reply {
        let mut req = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        reply(req.send().await.unwrap()).await
    }

    /// POSTs a multipart form as `token`.
    pub async fn post_form(&self, path: &str, token: &str, form: reqwest::multipart::Form) -> Reply {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        reply(res).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, path, token, Some(body)).await
    }

    /// Signs up `email` and returns (access token, refresh token, user id).
    pub async fn signup(&self, email: &str) -> (String, String, String) {
        let r = self
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let d = r.data();
        (
            d["accessToken"].as_str().unwrap().to_string(),
            d["refreshToken"].as_str().unwrap().to_string(),
            d["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Signs up the admin and makes them one as an operator would (`portico admin grant`).
    pub async fn admin(&self) -> String {
        let token = self.signup(ADMIN).await.0;
        self.grant(ADMIN).await;
        token
    }

    /// Grants admin to an existing account, on the gateway database, as `portico admin grant` does.
    pub async fn grant(&self, email: &str) {
        let config = &self.gateways[0].state.config;
        portico_gateway::admin::set_role(config, email, portico_gateway::auth::Role::Admin)
            .await
            .unwrap();
        // Without Redis the running gateways hold the old record in memory for a while.
        for gw in &self.gateways {
            gw.state.auth.forget_user(email).await;
        }
    }

    /// The gateway's Prometheus text, from the operators' listener.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.admin_url(0, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A direct connection to the gateway's database (what an attacker with a dump sees, or
    /// a test moving time forward).
    pub fn gateway_conn(&self) -> portico_runtime::db::DbConnection {
        use diesel::Connection;
        match self.gateway_db.strip_prefix("sqlite://") {
            Some(path) => portico_runtime::db::DbConnection::Sqlite(diesel::SqliteConnection::establish(path).unwrap()),
            None => portico_runtime::db::DbConnection::Postgresql(
                diesel::PgConnection::establish(&self.gateway_db).unwrap(),
            ),
        }
    }

    /// The mailed token (`pmt_…`) of the `n`-th message the gateways sent, waiting for it.
    pub fn mailed_token(&self, n: usize) -> (portico_testkit::Received, String) {
        let messages = self.smtp.wait_for(n + 1, std::time::Duration::from_secs(10));
        let message = messages
            .get(n)
            .cloned()
            .unwrap_or_else(|| panic!("mail {n} never came: {messages:?}"));
        let text = message.text();
        let start = text.find("pmt_").unwrap_or_else(|| panic!("no token in {text}"));
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        (message, token)
    }

    /// How many files the media service's object store holds.
    pub fn media_files(&self) -> usize {
        fn count(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 })
                        .sum()
                })
                .unwrap_or(0)
        }
        count(&self.media_dir)
    }

    /// The URL of gateway `gw`'s operators' listener.
    pub fn admin_url(&self, gw: usize, path: &str) -> String {
        format!("http://{}{path}", self.gateways[gw].admin_addr.unwrap())
    }
}

/// A PNG of `w` × `h` pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 200, 30, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// Uploads `file` as the multipart `file` part, with `extra` text parts.
pub async fn upload(s: &Stack, token: &str, file: Vec<u8>, extra: &[(&str, &str)]) -> Reply {
    let mut form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(file).file_name("photo.jpg"));
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    s.post_form("/v1/mobile/upload-optimized", token, form).await
}

/// The decoded header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

pub async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
        self.services_stop.cancel();
        let _ = std::fs::remove_dir_all(&self.media_dir);
    }
}

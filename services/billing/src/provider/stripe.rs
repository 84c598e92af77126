//! Stripe's REST API as Stripe documents it: form-encoded bodies with bracketed keys,
//! `Authorization: Bearer`, a pinned `Stripe-Version`, an `Idempotency-Key` on every POST that
//! stays the same across the retries of one operation, and bounded retries with backoff on
//! connection errors, 409, 429 and 5xx (`Stripe-Should-Retry` decides when present).

use std::time::Duration;

use portico_runtime::config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{NewCheckout, Provider, ProviderError, ProviderResult, Session};

/// The Stripe API version requests pin unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "2026-10-28.endive";

/// Settings of the Stripe client.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `PORTICO_STRIPE_API_BASE` (default `https://api.stripe.com`).
    pub api_base: String,
    /// `PORTICO_STRIPE_SECRET_KEY`.
    pub secret_key: Secret<String>,
    /// `PORTICO_STRIPE_API_VERSION` (default [`DEFAULT_API_VERSION`]).
    pub api_version: String,
    /// Retries after the first attempt (default 3).
    pub max_retries: u32,
    /// First backoff; doubled each retry, capped at 5 s (default 500 ms).
    pub retry_base: Duration,
    /// Whole-request timeout (default 30 s).
    pub timeout: Duration,
}

/// The Stripe provider.
pub struct Stripe {
    http: reqwest::Client,
    config: StripeConfig,
}

impl Stripe {
    /// A client for `config` (no network until the first call).
    pub fn new(config: StripeConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .user_agent(concat!("portico-billing/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("Stripe client: {e}"))?;
        Ok(Stripe { http, config })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.config.secret_key.expose())
                .header("Stripe-Version", &self.config.api_version);
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            if !form.is_empty() {
                req = req.form(form);
            }
            let outcome = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let should_retry = res
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let body = res.bytes().await.map_err(|e| ProviderError::connection(e.to_string()));
                    match body {
                        Ok(body) if status.is_success() => {
                            return serde_json::from_slice(&body)
                                .map_err(|e| ProviderError::connection(format!("Stripe answered non-JSON: {e}")));
                        }
                        Ok(body) => {
                            let retry = should_retry.unwrap_or(
                                status == StatusCode::CONFLICT
                                    || status == StatusCode::TOO_MANY_REQUESTS
                                    || status.is_server_error(),
                            );
                            (retry, stripe_error(status, &body))
                        }
                        Err(e) => (true, e),
                    }
                }
                Err(e) => (true, ProviderError::connection(without_url(&e))),
            };
            let (retry, error) = outcome;
            if !retry || attempt >= self.config.max_retries {
                tracing::warn!(
                    path,
                    status = error.status,
                    kind = %error.kind,
                    code = error.code.as_deref().unwrap_or(""),
                    attempts = attempt + 1,
                    "Stripe request failed"
                );
                return Err(error);
            }
            let backoff = self
                .config
                .retry_base
                .saturating_mul(1 << attempt.min(4))
                .min(Duration::from_secs(5));
            let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis().min(250) as u64));
            tokio::time::sleep(backoff + jitter).await;
            attempt += 1;
        }
    }

    async fn post(&self, path: &str, form: Vec<(String, String)>, key: String) -> Result<Value, ProviderError> {
        self.call(Method::POST, path, &form, Some(&key)).await
    }
}

/// reqwest's error text names the URL; the message keeps only what went wrong.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("Stripe {kind}")
}

/// Stripe's error body (`{"error": {"type", "message", "code", "param"}}`).
fn stripe_error(status: StatusCode, body: &[u8]) -> ProviderError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let text = |k: &str| e[k].as_str().map(str::to_string);
    ProviderError {
        status: Some(status.as_u16()),
        kind: text("type").unwrap_or_else(|| "api_error".into()),
        code: text("code"),
        param: text("param"),
        message: text("message").unwrap_or_else(|| format!("Stripe answered {status}")),
    }
}

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// A fresh key for one operation (kept across its retries).
fn operation_key(kind: &str) -> String {
    format!("portico-{kind}-{}", uuid::Uuid::new_v4().simple())
}

impl Provider for Stripe {
    fn create_customer<'a>(&'a self, user_id: &'a str, email: &'a str) -> ProviderResult<'a, String> {
        Box::pin(async move {
            let form = vec![pair("email", email), pair("metadata[user_id]", user_id)];
            let customer = self
                .post("/v1/customers", form, format!("portico-customer-{user_id}"))
                .await?;
            customer["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ProviderError::connection("Stripe's customer has no id"))
        })
    }

    fn create_checkout<'a>(&'a self, c: &'a NewCheckout) -> ProviderResult<'a, Session> {
        Box::pin(async move {
            let form = vec![
                pair("mode", "subscription"),
                pair("customer", &c.customer),
                pair("client_reference_id", &c.user_id),
                pair("line_items[0][price]", &c.price),
                pair("line_items[0][quantity]", "1"),
                pair("subscription_data[metadata][user_id]", &c.user_id),
                pair("success_url", &c.success_url),
                pair("cancel_url", &c.cancel_url),
            ];
            let session = self
                .post("/v1/checkout/sessions", form, operation_key("checkout"))
                .await?;
            match (session["id"].as_str(), session["url"].as_str()) {
                (Some(id), Some(url)) => Ok(Session {
                    id: id.to_string(),
                    url: url.to_string(),
                }),
                _ => Err(ProviderError::connection("Stripe's checkout session has no id or url")),
            }
        })
    }

    fn create_portal<'a>(&'a self, customer: &'a str, return_url: &'a str) -> ProviderResult<'a, String> {
        Box::pin(async move {
            let form = vec![pair("customer", customer), pair("return_url", return_url)];
            let portal = self
                .post("/v1/billing_portal/sessions", form, operation_key("portal"))
                .await?;
            portal["url"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ProviderError::connection("Stripe's portal session has no url"))
        })
    }

    fn subscription<'a>(&'a self, id: &'a str) -> ProviderResult<'a, Value> {
        Box::pin(async move {
            self.call(Method::GET, &format!("/v1/subscriptions/{id}"), &[], None)
                .await
        })
    }

    fn cancel<'a>(&'a self, id: &'a str, at_period_end: bool) -> ProviderResult<'a, Value> {
        Box::pin(async move {
            let path = format!("/v1/subscriptions/{id}");
            if at_period_end {
                let form = vec![pair("cancel_at_period_end", "true")];
                self.post(&path, form, operation_key("cancel")).await
            } else {
                self.call(Method::DELETE, &path, &[], Some(&operation_key("cancel-now")))
                    .await
            }
        })
    }

    fn live_subscriptions(&self) -> ProviderResult<'_, Vec<String>> {
        Box::pin(async move {
            let list = self
                .call(Method::GET, "/v1/subscriptions?status=all&limit=100", &[], None)
                .await?;
            Ok(list["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect())
        })
    }
}

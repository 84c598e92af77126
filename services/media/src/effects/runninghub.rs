//! RunningHub's HTTP API as it documents it: every call a `POST` whose JSON body carries
//! `apiKey`, every answer the envelope `{"code": 0, "msg": "success", "data": …}` (a non-zero
//! `code` is a refusal with its message). Each call has its own timeout and is repeated with
//! backoff and full jitter only where `portico_effects::run::retryable` says repeating is safe:
//! a run whose answer was lost is handed back to the caller to reconcile, never resubmitted.
//! Outputs are downloaded only from the configured hosts, without following redirects, and
//! only up to a cap.

use std::time::Duration;

use portico_effects::{
    params::NodeValue,
    run::{self, Call, Failure, RunStatus},
};
use portico_runtime::config::Secret;

use super::provider::{Output, ProviderError, Task};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Where RunningHub's API answers unless configured otherwise.
pub const DEFAULT_API_BASE: &str = "https://www.runninghub.ai";

/// Settings of the RunningHub client.
#[derive(Clone, Debug)]
pub struct RunningHubConfig {
    /// `PORTICO_RUNNINGHUB_API_BASE`.
    pub api_base: String,
    /// `PORTICO_RUNNINGHUB_API_KEY`.
    pub api_key: Secret<String>,
    /// Each call's whole timeout (45 s).
    pub timeout: Duration,
    /// Repeats after the first attempt, where repeating is safe (3).
    pub retries: u32,
    /// The first backoff ceiling, doubled each repeat (500 ms).
    pub retry_base: Duration,
    /// The largest backoff ceiling (8 s).
    pub retry_cap: Duration,
    /// Hosts outputs may be downloaded from: each matches itself and its subdomains (the
    /// API's own host is always allowed).
    pub output_hosts: Vec<String>,
    /// The largest output accepted.
    pub max_output_bytes: usize,
}

impl RunningHubConfig {
    /// The defaults around an API base and key.
    pub fn new(api_base: &str, api_key: Secret<String>) -> Self {
        RunningHubConfig {
            api_base: api_base.trim_end_matches('/').to_string(),
            api_key,
            timeout: Duration::from_secs(45),
            retries: 3,
            retry_base: Duration::from_millis(500),
            retry_cap: Duration::from_secs(8),
            output_hosts: vec!["runninghub.ai".into(), "runninghub.cn".into()],
            max_output_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The RunningHub client.
pub struct RunningHub {
    http: reqwest::Client,
    config: RunningHubConfig,
    api_host: String,
}

impl RunningHub {
    /// A client for `config` (no network until the first call).
    pub fn new(config: RunningHubConfig) -> Result<Self, String> {
        let api_host = url::Url::parse(&config.api_base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .ok_or_else(|| {
                format!(
                    "PORTICO_RUNNINGHUB_API_BASE is not a URL with a host: {}",
                    config.api_base
                )
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .timeout(config.timeout)
            // An output URL must not lead anywhere the allow-list did not approve.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portico-media/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("RunningHub client: {e}"))?;
        Ok(RunningHub { http, config, api_host })
    }

    /// Runs `attempt` until it succeeds, fails in a way that may not be repeated, or the
    /// repeats are spent.
    async fn with_retries<T, F, Fut>(&self, call: Call, mut attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut n = 0;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if n < self.config.retries && run::retryable(call, e.failure) => {
                    metrics::counter!("portico_effects_provider_retries_total", "call" => call.as_str()).increment(1);
                    let delay = run::backoff(n, self.config.retry_base, self.config.retry_cap, rand::random::<f64>());
                    tracing::debug!(call = call.as_str(), attempt = n + 1, error = %e.message, "retrying a RunningHub call");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One `POST` of a JSON body with the key, answered by the envelope: its `data`.
    async fn post(&self, call: Call, path: &str, mut body: Value) -> Result<Value, ProviderError> {
        body["apiKey"] = Value::String(self.config.api_key.expose().clone());
        let url = format!("{}{path}", self.config.api_base);
        self.with_retries(call, || async {
            let res = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| sent(call, &e))?;
            envelope(call, res).await
        })
        .await
    }

    /// Uploads the photo; the name RunningHub gives it is what the image node's field takes.
    pub async fn upload(&self, bytes: &[u8], file_name: &str, content_type: &str) -> Result<String, ProviderError> {
        let url = format!("{}/task/openapi/upload", self.config.api_base);
        let data = self
            .with_retries(Call::Upload, || async {
                let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(file_name.to_string())
                    .mime_str(content_type)
                    .map_err(|e| ProviderError::new(Call::Upload, Failure::Rejected, None, e.to_string()))?;
                let form = reqwest::multipart::Form::new()
                    .text("apiKey", self.config.api_key.expose().clone())
                    .text("fileType", "image")
                    .part("file", part);
                let res = self
                    .http
                    .post(&url)
                    .multipart(form)
                    .send()
                    .await
                    .map_err(|e| sent(Call::Upload, &e))?;
                envelope(Call::Upload, res).await
            })
            .await?;
        data["fileName"].as_str().map(str::to_string).ok_or_else(|| {
            ProviderError::new(
                Call::Upload,
                Failure::AnswerLost,
                None,
                "the upload's answer has no data.fileName",
            )
        })
    }

    /// Starts the app `webapp_id` with `nodes`; the provider calls `webhook_url` when done,
    /// if given. A lost answer comes back as [`Failure::AnswerLost`]: the task may exist.
    pub async fn start(
        &self,
        webapp_id: &str,
        nodes: &[NodeValue],
        webhook_url: Option<&str>,
    ) -> Result<Task, ProviderError> {
        let mut body = json!({"webappId": webapp_id, "nodeInfoList": nodes});
        if let Some(url) = webhook_url {
            body["webhookUrl"] = Value::String(url.to_string());
        }
        let data = self.post(Call::Run, "/task/openapi/ai-app/run", body).await?;
        let task_id = match &data["taskId"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ProviderError::new(
                    Call::Run,
                    Failure::AnswerLost,
                    None,
                    "the run's answer has no data.taskId",
                ));
            }
        };
        Ok(Task {
            task_id,
            status: data["taskStatus"].as_str().and_then(RunStatus::from_provider),
        })
    }

    /// The task's status.
    pub async fn status(&self, task_id: &str) -> Result<RunStatus, ProviderError> {
        let data = self
            .post(Call::Status, "/task/openapi/status", json!({"taskId": task_id}))
            .await?;
        data.as_str().and_then(RunStatus::from_provider).ok_or_else(|| {
            ProviderError::new(
                Call::Status,
                Failure::Rejected,
                None,
                format!("unknown task status {data}"),
            )
        })
    }

    /// A finished task's outputs.
    pub async fn outputs(&self, task_id: &str) -> Result<Vec<Output>, ProviderError> {
        let data = self
            .post(Call::Outputs, "/task/openapi/outputs", json!({"taskId": task_id}))
            .await?;
        Ok(data
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|o| {
                        Some(Output {
                            file_url: o["fileUrl"].as_str()?.to_string(),
                            file_type: o["fileType"].as_str().unwrap_or_default().to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Cancels the task.
    pub async fn cancel(&self, task_id: &str) -> Result<(), ProviderError> {
        self.post(Call::Cancel, "/task/openapi/cancel", json!({"taskId": task_id}))
            .await
            .map(|_| ())
    }

    /// Whether outputs may be downloaded from `url`: http(s), and a host that is the API's or
    /// one of the configured output hosts (or a subdomain of one).
    pub fn may_download(&self, url: &str) -> bool {
        let Ok(url) = url::Url::parse(url) else {
            return false;
        };
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        matches!(url.scheme(), "https" | "http")
            && url.username().is_empty()
            && (host == self.api_host
                || self
                    .config
                    .output_hosts
                    .iter()
                    .any(|h| host == *h || host.strip_suffix(h.as_str()).is_some_and(|rest| rest.ends_with('.'))))
    }

    /// Downloads an output, refused unless [`Self::may_download`] allows its URL, and
    /// refused past the size cap without reading the rest.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        if !self.may_download(url) {
            return Err(ProviderError::new(
                Call::Download,
                Failure::Rejected,
                None,
                "the output is not on the provider's host: not downloaded",
            ));
        }
        let cap = self.config.max_output_bytes;
        self.with_retries(Call::Download, || async {
            let mut res = self.http.get(url).send().await.map_err(|e| sent(Call::Download, &e))?;
            let status = res.status();
            if !status.is_success() {
                return Err(answered(Call::Download, status, "the output could not be downloaded"));
            }
            if res.content_length().is_some_and(|n| n > cap as u64) {
                return Err(ProviderError::new(
                    Call::Download,
                    Failure::Rejected,
                    Some(status.as_u16()),
                    format!("the output is over the cap of {cap} bytes"),
                ));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(|e| sent(Call::Download, &e))? {
                if bytes.len() + chunk.len() > cap {
                    return Err(ProviderError::new(
                        Call::Download,
                        Failure::Rejected,
                        Some(status.as_u16()),
                        format!("the output is over the cap of {cap} bytes"),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        })
        .await
    }
}

/// A request that got no usable answer: never connected (safe to repeat), or sent and lost.
fn sent(call: Call, e: &reqwest::Error) -> ProviderError {
    if e.is_connect() {
        ProviderError::new(call, Failure::Connect, None, "could not connect")
    } else if e.is_timeout() {
        ProviderError::new(call, Failure::AnswerLost, None, "no answer within the timeout")
    } else {
        // reqwest's text names the URL; what went wrong is enough.
        ProviderError::new(
            call,
            Failure::AnswerLost,
            None,
            "the connection failed before the answer",
        )
    }
}

/// An answer other than 2xx: 429 and 5xx did nothing (repeatable), any other status is a
/// refusal.
fn answered(call: Call, status: StatusCode, message: &str) -> ProviderError {
    let failure = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Failure::Refused
    } else {
        Failure::Rejected
    };
    ProviderError::new(
        call,
        failure,
        Some(status.as_u16()),
        format!("{message} (HTTP {})", status.as_u16()),
    )
}

/// The envelope's `data`, or the refusal its `code` and `msg` say.
async fn envelope(call: Call, res: reqwest::Response) -> Result<Value, ProviderError> {
    let status = res.status();
    if !status.is_success() {
        return Err(answered(call, status, "RunningHub refused the call"));
    }
    let body = res.bytes().await.map_err(|e| sent(call, &e))?;
    let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
        return Err(ProviderError::new(
            call,
            Failure::AnswerLost,
            Some(status.as_u16()),
            "the answer is not JSON",
        ));
    };
    match answer["code"].as_i64() {
        Some(0) => Ok(answer["data"].clone()),
        code => Err(ProviderError::new(
            call,
            Failure::Rejected,
            Some(status.as_u16()),
            format!(
                "code {}: {}",
                code.map_or_else(|| "missing".to_string(), |c| c.to_string()),
                answer["msg"].as_str().unwrap_or("no message")
            ),
        )),
    }
}

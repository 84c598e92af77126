//! The JSON envelope every endpoint answers with, the gateway's error type, and the JSON body
//! extractor that names every bad field.
//!
//! Success: `{"success": true, "data": …, "meta": {"timestamp", "requestId"}}`.
//! Error: `{"success": false, "error": {"code", "message", "details"}, "meta": {…}}`.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError,
    dev::Payload,
    http::{StatusCode, header},
};
use futures_util::{StreamExt, future::LocalBoxFuture};
use portico_runtime::{ErrorCode, Problem};
use serde::Serialize;
use serde_json::{Value, json};

pub use portico_runtime::telemetry::current_request_id;

/// `meta` of every envelope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    timestamp: String,
    request_id: &'a str,
}

impl<'a> Meta<'a> {
    fn now(request_id: &'a str) -> Self {
        Meta {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id,
        }
    }
}

/// The success envelope, serialised straight from the handler's data (no `Value` tree).
#[derive(Serialize)]
struct Success<'a, T> {
    success: bool,
    data: T,
    meta: Meta<'a>,
}

/// The error envelope.
#[derive(Serialize)]
struct Failure<'a> {
    success: bool,
    error: ErrorBody<'a>,
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

/// A success envelope with `status`.
pub fn success<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(Success {
        success: true,
        data,
        meta: Meta::now(&current_request_id()),
    })
}

/// 200 with `data`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    success(StatusCode::OK, data)
}

/// The error envelope for a problem, for `request_id`.
pub fn problem_response(problem: &Problem, request_id: &str) -> HttpResponse {
    let status = StatusCode::from_u16(problem.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    // A 429 from a service (a spent quota) says when to come back, as the rate limiter's do.
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(secs) = problem
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
    {
        response.insert_header((header::RETRY_AFTER, secs.max(1)));
    }
    response.json(Failure {
        success: false,
        error: ErrorBody {
            code: problem.code.as_str(),
            message: &problem.message,
            details: problem.details.as_ref(),
        },
        meta: Meta::now(request_id),
    })
}

/// The gateway's error: a catalogue problem, answered as the error envelope.
#[derive(Debug)]
pub struct ApiError(pub Problem);

impl ApiError {
    /// A problem with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Problem::new(code, message))
    }

    /// One or more invalid fields.
    pub fn fields<I, K, V>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        ApiError(Problem::validation(fields))
    }

    /// 404 for a resource that does not exist or is not the caller's.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// An internal failure; the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError(Problem::internal(cause))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(p)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        ApiError(Problem::from_status(&s))
    }
}

impl From<portico_runtime::db::DbError> for ApiError {
    /// 503 when the database is unreachable, 500 otherwise.
    fn from(e: portico_runtime::db::DbError) -> Self {
        ApiError(Problem::from(e))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::internal(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        problem_response(&self.0, &current_request_id())
    }
}

/// Result of a handler.
pub type ApiResult = Result<HttpResponse, ApiError>;

/// The JSON body cap, in app data.
#[derive(Clone, Copy, Debug)]
pub struct JsonLimit(pub usize);

/// Reads a JSON body (415 for another Content-Type, 413 over the cap) as bytes.
pub fn read_json_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<bytes::Bytes, ApiError>> {
    let body = read_body(
        req,
        payload,
        |m| is_json(m).then_some(()),
        "Content-Type must be application/json",
    );
    Box::pin(async move { body.await.map(|(bytes, ())| bytes) })
}

/// A body as a JSON object: empty → 400 `INVALID_JSON` naming `body`; not JSON → 400
/// `INVALID_JSON` with the line and column; another JSON value → 400 naming `body`.
pub fn json_value(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError(
            Problem::new(ErrorCode::InvalidJson, "the body is empty; send a JSON object")
                .with_details(json!({ "fields": { "body": "is required" } })),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError(
            Problem::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}"))
                .with_details(json!({ "line": e.line(), "column": e.column() })),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::fields([("body", "must be a JSON object")]));
    }
    Ok(value)
}

/// Whether a media type (lower case, without parameters) is JSON.
fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// The format of a [`Document`] body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentFormat {
    /// `application/json` or `application/*+json`.
    Json,
    /// `application/xml`, `text/xml` or `application/*+xml` (BPMN 2.0).
    Xml,
}

/// A document body passed on as bytes, JSON or XML by Content-Type (415 otherwise), under the
/// JSON body cap (413). Parsing is left to the service that understands the document.
pub struct Document {
    /// The body.
    pub bytes: bytes::Bytes,
    /// Its format.
    pub format: DocumentFormat,
}

impl FromRequest for Document {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(
            req,
            payload,
            |m| {
                if is_json(m) {
                    Some(DocumentFormat::Json)
                } else if m == "application/xml"
                    || m == "text/xml"
                    || (m.starts_with("application/") && m.ends_with("+xml"))
                {
                    Some(DocumentFormat::Xml)
                } else {
                    None
                }
            },
            "Content-Type must be application/json, or application/xml for BPMN 2.0",
        );
        Box::pin(async move {
            let (bytes, format) = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError(
                    Problem::new(ErrorCode::InvalidJson, "the body is empty; send a workflow document")
                        .with_details(json!({ "fields": { "body": "is required" } })),
                ));
            }
            Ok(Document { bytes, format })
        })
    }
}

/// Reads a body whose Content-Type `accept` recognises (415 otherwise) up to the JSON cap (413,
/// refused from Content-Length before reading when it is declared), decoded per its
/// `Content-Encoding` as [`RawBody`] is: the cap holds for the decoded bytes.
fn read_body<K: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    accept: impl Fn(&str) -> Option<K>,
    wrong_type: &'static str,
) -> LocalBoxFuture<'static, Result<(bytes::Bytes, K), ApiError>> {
    let limit = req.app_data::<JsonLimit>().map(|l| l.0).unwrap_or(1024 * 1024);
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|m| accept(&m.trim().to_ascii_lowercase()));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let encoding = content_coding(req);
    let stream = actix_web::dev::Decompress::from_headers(payload.take(), req.headers());
    Box::pin(async move {
        let Some(kind) = kind else {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, wrong_type));
        };
        encoding?;
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let body = collect(stream, limit, declared.unwrap_or(0)).await?;
        Ok((body, kind))
    })
}

/// The request's `Content-Encoding` is one `Decompress` decodes (one coding of gzip, deflate,
/// br, zstd or identity); any other is 415 naming the header.
fn content_coding(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let coding = value.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    if matches!(coding.as_str(), "gzip" | "deflate" | "br" | "zstd" | "identity") {
        return Ok(());
    }
    Err(ApiError(
        Problem::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Encoding must be one of gzip, deflate, br, zstd or identity",
        )
        .with_details(json!({ "fields": { "Content-Encoding": "is not a supported content coding" } })),
    ))
}

/// Gathers a decoded body, refusing it as soon as it passes `limit` bytes.
async fn collect<S, E>(mut stream: S, limit: usize, capacity: usize) -> Result<bytes::Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    let mut body = bytes::BytesMut::with_capacity(capacity.min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                ErrorCode::ValidationError,
                "the request body could not be read: it ended early or does not decode as its Content-Encoding says",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The cap of a [`RawBody`] once decoded (an endpoint's `app_data`; 1 MiB without one).
#[derive(Clone, Copy, Debug)]
pub struct RawLimit(pub usize);

/// A request body as bytes, decoded per its `Content-Encoding` (gzip, deflate, br, zstd) and
/// held to [`RawLimit`] as it decodes, so a small compressed body cannot inflate past the cap.
/// Its failures answer in the envelope like every other error: 413 over the cap, 400 for a
/// body that ends early or does not decode as its encoding says.
pub struct RawBody(pub bytes::Bytes);

impl actix_web::FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<RawLimit>().map_or(1024 * 1024, |l| l.0);
        let encoding = content_coding(req);
        let stream = actix_web::dev::Decompress::from_headers(payload.take(), req.headers());
        Box::pin(async move {
            encoding?;
            collect(stream, limit, 0).await.map(RawBody)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError(
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is over the {limit}-byte cap"),
        )
        .with_details(json!({ "limitBytes": limit })),
    )
}

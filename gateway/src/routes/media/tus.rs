//! tus 1.0 resumable uploads at `/v1/mobile/uploads` (core, creation, termination,
//! expiration, checksum with sha256): creation, offsets, chunks checked before their body is
//! read, and the last chunk processed under its own deadline.

use std::collections::BTreeMap;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use portico_proto::media::v1 as pb;
use portico_runtime::{ErrorCode, Problem, grpc::outgoing};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::upload::upload_too_large;
use crate::{
    AppState,
    auth::Principal,
    contract::{
        Raw, Reply,
        doc::{Input, Output, RequestDoc, ResponseDoc, Schemas, envelope},
    },
    envelope::ApiError,
    routes::{Rid, User, at},
};

fn header_param(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "header", "required": required, "schema": schema, "description": description })
}

fn tus_resumable() -> Value {
    header_param(
        "Tus-Resumable",
        true,
        // A pattern rather than `const`: client generators take it as a plain string.
        json!({ "type": "string", "pattern": "^1\\.0\\.0$", "example": TUS_VERSION }),
        "The tus version spoken: `1.0.0` (412 otherwise).",
    )
}

/// A tus request: `Tus-Resumable: 1.0.0`.
pub struct TusRequest;

impl RequestDoc for TusRequest {
    fn document(_: &mut Schemas) -> Input {
        Input {
            body: None,
            parameters: vec![tus_resumable()],
        }
    }
}

/// One `Upload-Metadata` pair: a key of visible ASCII but `,`, then optionally a space and
/// canonical base64 (its last digit carries no stray bits).
macro_rules! metadata_pair {
    () => {
        "[!-+\\--~]{1,64}(?: (?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?)?"
    };
}

/// `Upload-Metadata` as the document states it and [`parse_metadata`] checks it first; that
/// each key comes once and each value is UTF-8 is checked after.
const METADATA_PATTERN: &str = concat!("^", metadata_pair!(), "(?:,", metadata_pair!(), ")*$");

/// [`METADATA_PATTERN`], compiled by the engine that checks request bodies (a constant: the
/// tests hold it to compiling).
fn metadata_shape() -> Option<&'static jsonschema::Validator> {
    static SHAPE: std::sync::OnceLock<Option<jsonschema::Validator>> = std::sync::OnceLock::new();
    SHAPE
        .get_or_init(|| jsonschema::validator_for(&json!({ "type": "string", "pattern": METADATA_PATTERN })).ok())
        .as_ref()
}

/// tus creation: `Upload-Length`, optional `Upload-Metadata`.
pub struct TusCreation;

impl RequestDoc for TusCreation {
    fn document(schemas: &mut Schemas) -> Input {
        Input {
            body: None,
            parameters: vec![
                tus_resumable(),
                header_param(
                    "Upload-Length",
                    true,
                    json!({ "type": "integer", "minimum": 1, "maximum": schemas.limits.upload_bytes }),
                    "Bytes in all (at most PORTICO_MEDIA_MAX_BYTES; 413 beyond it).",
                ),
                header_param(
                    "Upload-Metadata",
                    false,
                    json!({ "type": "string", "pattern": METADATA_PATTERN }),
                    "`key base64,key2 base64`: keys of visible ASCII but `,` (at most 64 bytes, each once), values base64 of UTF-8.",
                ),
            ],
        }
    }
}

/// A tus chunk: `Upload-Offset`, optional `Upload-Checksum`, the bytes.
pub struct TusChunk;

impl RequestDoc for TusChunk {
    fn document(schemas: &mut Schemas) -> Input {
        Input {
            body: Some(json!({
                "required": true,
                "content": { "application/offset+octet-stream": { "schema": { "type": "string", "format": "binary" } } },
            })),
            parameters: vec![
                tus_resumable(),
                header_param(
                    "Upload-Offset",
                    true,
                    json!({ "type": "integer", "minimum": 0, "maximum": schemas.limits.upload_bytes }),
                    "Where the chunk goes: the upload's current offset (409 otherwise).",
                ),
                header_param(
                    "Upload-Checksum",
                    false,
                    // 32 bytes are 43 base64 digits and a pad; the last digit carries 4 bits.
                    json!({ "type": "string", "pattern": "^sha256 [A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$" }),
                    "`sha256 <base64 digest>` of the chunk (460 when it does not match).",
                ),
            ],
        }
    }
}

fn upload_state_headers() -> Value {
    json!({
        "Tus-Resumable": { "schema": { "type": "string", "const": "1.0.0" } },
        "Upload-Offset": { "description": "Bytes stored.", "schema": { "type": "integer" } },
        "Upload-Length": { "description": "Bytes in all.", "schema": { "type": "integer" } },
        "Upload-Expires": { "description": "When an unfinished upload is gone (HTTP date).", "schema": { "type": "string" } },
        "Portico-Media-Id": { "description": "The image, once the last chunk is processed.", "schema": { "type": "string" } },
    })
}

fn headers_only(status: u16, description: &str, headers: Value) -> Output {
    Output {
        status,
        response: json!({ "description": description, "headers": headers }),
        others: Vec::new(),
    }
}

/// tus discovery: 204 with the `Tus-*` headers.
pub struct TusDiscovery;

impl ResponseDoc for TusDiscovery {
    fn document(_: &mut Schemas) -> Output {
        headers_only(
            204,
            "What the server supports.",
            json!({
                "Tus-Resumable": { "schema": { "type": "string", "const": "1.0.0" } },
                "Tus-Version": { "schema": { "type": "string" } },
                "Tus-Extension": { "schema": { "type": "string" } },
                "Tus-Checksum-Algorithm": { "schema": { "type": "string", "const": "sha256" } },
                "Tus-Max-Size": { "schema": { "type": "integer" } },
            }),
        )
    }
}

/// tus creation: 201 with `Location` and the upload.
pub struct TusCreated;

impl ResponseDoc for TusCreated {
    fn document(schemas: &mut Schemas) -> Output {
        let mut headers = upload_state_headers();
        headers["Location"] = json!({ "description": "The upload's URL.", "schema": { "type": "string" } });
        Output {
            status: 201,
            response: json!({
                "description": "Created.",
                "headers": headers,
                "content": { "application/json": { "schema": envelope(schemas.add::<Upload>()) } },
            }),
            others: Vec::new(),
        }
    }
}

/// tus HEAD: 200 with the offset headers.
pub struct TusOffset;

impl ResponseDoc for TusOffset {
    fn document(_: &mut Schemas) -> Output {
        headers_only(200, "The stored offset.", upload_state_headers())
    }
}

/// tus PATCH: 204 with the new offset.
pub struct TusAppended;

impl ResponseDoc for TusAppended {
    fn document(_: &mut Schemas) -> Output {
        headers_only(
            204,
            "Appended; `Upload-Offset` is the new offset.",
            upload_state_headers(),
        )
    }
}

/// tus termination: 204.
pub struct TusTerminated;

impl ResponseDoc for TusTerminated {
    fn document(_: &mut Schemas) -> Output {
        headers_only(
            204,
            "Terminated.",
            json!({ "Tus-Resumable": { "schema": { "type": "string", "const": "1.0.0" } } }),
        )
    }
}

const TUS_VERSION: &str = "1.0.0";
const TUS_EXTENSIONS: &str = "creation,termination,expiration,checksum";

fn tus_headers(res: &mut actix_web::HttpResponseBuilder) {
    res.insert_header(("Tus-Resumable", TUS_VERSION))
        .insert_header((header::CACHE_CONTROL, "no-store"));
}

/// A tus request must speak 1.0.0: the 412 (listing the version we speak) when it does not.
fn tus_rejection(req: &HttpRequest) -> Option<HttpResponse> {
    match req.headers().get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim() == TUS_VERSION => None,
        _ => {
            let problem = Problem::new(ErrorCode::TusVersionUnsupported, "send `Tus-Resumable: 1.0.0`")
                .with_details(json!({ "fields": { "Tus-Resumable": "must be 1.0.0" } }));
            let mut res = crate::envelope::problem_response(&problem, &crate::envelope::current_request_id());
            let headers = res.headers_mut();
            for (name, value) in [("tus-resumable", TUS_VERSION), ("tus-version", TUS_VERSION)] {
                headers.insert(header::HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Some(res)
        }
    }
}

fn header_u64(req: &HttpRequest, name: &str) -> Result<Option<u64>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::fields([(name.to_string(), "must be a non-negative integer".to_string())])),
    }
}

/// `Upload-Checksum: sha256 <base64>`: the 32-byte SHA-256 digest a tus chunk must match
/// (only sha256 is offered, in `Tus-Checksum-Algorithm`).
pub fn parse_checksum(raw: &str) -> Result<Vec<u8>, ApiError> {
    let raw = raw.trim();
    let (algorithm, digest) = raw.split_once(' ').unwrap_or((raw, ""));
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(ApiError(
            Problem::new(ErrorCode::ValidationError, "only sha256 checksums are supported")
                .with_details(json!({ "fields": { "Upload-Checksum": "algorithm must be sha256" } })),
        ));
    }
    match STANDARD.decode(digest.trim()) {
        Ok(d) if d.len() == 32 => Ok(d),
        _ => Err(ApiError::fields([(
            "Upload-Checksum",
            "must be `sha256 <base64 of 32 bytes>`",
        )])),
    }
}

/// `Upload-Metadata: key base64,key2 base64` (values optional): keys of visible ASCII, at
/// most 64 bytes and each once; values base64 of UTF-8.
pub fn parse_metadata(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    if metadata_shape().is_some_and(|shape| !shape.is_valid(&Value::String(raw.to_string()))) {
        return Err(ApiError::fields([(
            "Upload-Metadata",
            "must be `key base64` pairs (keys of visible ASCII but `,`, at most 64 bytes) separated by `,`",
        )]));
    }
    let mut out = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default().trim();
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::fields([(
                "Upload-Metadata",
                format!("`{key}` is not a valid key"),
            )]));
        }
        let value = match it.next().map(str::trim) {
            None | Some("") => String::new(),
            Some(v) => STANDARD
                .decode(v)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::fields([("Upload-Metadata", format!("the value of `{key}` is not base64 UTF-8"))])
                })?,
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(ApiError::fields([(
                "Upload-Metadata",
                format!("`{key}` appears twice"),
            )]));
        }
    }
    Ok(out)
}

fn expires(res: &mut actix_web::HttpResponseBuilder, expires_at_ms: i64) {
    if let Some(at) = chrono::DateTime::from_timestamp_millis(expires_at_ms) {
        res.insert_header(("Upload-Expires", at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()));
    }
}

fn upload_headers(res: &mut actix_web::HttpResponseBuilder, s: &pb::UploadState) {
    tus_headers(res);
    res.insert_header(("Upload-Offset", s.offset.to_string()))
        .insert_header(("Upload-Length", s.length.to_string()));
    expires(res, s.expires_at_ms);
    if let Some(media) = &s.media_id {
        res.insert_header(("Portico-Media-Id", media.as_str()));
    }
}

/// OPTIONS /mobile/uploads[/{id}]: what the server supports.
pub async fn tus_options(state: web::Data<AppState>) -> Result<Raw<TusDiscovery>, ApiError> {
    let mut res = HttpResponse::NoContent();
    res.insert_header(("Tus-Resumable", TUS_VERSION))
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header(("Tus-Checksum-Algorithm", "sha256"))
        .insert_header(("Tus-Max-Size", state.config.upload_limit.to_string()));
    Ok(Raw::new(res.finish()))
}

/// POST /mobile/uploads: creation. `Upload-Length` is required (deferred length is not
/// offered); 201 with `Location`.
pub async fn tus_create(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
) -> Result<Raw<TusCreated>, ApiError> {
    if let Some(res) = tus_rejection(&req) {
        return Ok(Raw::new(res));
    }
    let length =
        header_u64(&req, "Upload-Length")?.ok_or_else(|| ApiError::fields([("Upload-Length", "is required")]))?;
    if length == 0 {
        return Err(ApiError::fields([("Upload-Length", "must be greater than 0")]));
    }
    if length > state.config.upload_limit as u64 {
        return Err(upload_too_large(state.config.upload_limit));
    }
    let metadata = match req.headers().get("upload-metadata") {
        None => BTreeMap::new(),
        Some(v) => parse_metadata(
            v.to_str()
                .map_err(|_| ApiError::fields([("Upload-Metadata", "must be ASCII")]))?,
        )?,
    };
    let s = state
        .media()?
        .create_upload(outgoing(
            pb::CreateUploadRequest {
                user_id: user.0.user_id,
                length,
                metadata: metadata.into_iter().collect(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let mut res = HttpResponse::Created();
    upload_headers(&mut res, &s);
    res.insert_header((header::LOCATION, format!("/v1/mobile/uploads/{}", s.id)));
    let mut answer = crate::envelope::success(StatusCode::CREATED, Upload::from(s));
    for (name, value) in res.finish().headers() {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(Raw::new(answer))
}

/// A resumable upload, as JSON.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// Its id.
    upload_id: String,
    /// Bytes stored so far.
    offset: u64,
    /// Bytes in all (`Upload-Length`).
    length: u64,
    /// When an unfinished upload is gone.
    expires_at: Option<DateTime<Utc>>,
    /// `Upload-Metadata`, decoded.
    metadata: BTreeMap<String, String>,
    /// The image, once the last chunk is processed.
    media_id: Option<String>,
}

impl From<pb::UploadState> for Upload {
    fn from(s: pb::UploadState) -> Self {
        Upload {
            upload_id: s.id,
            offset: s.offset,
            length: s.length,
            expires_at: at(s.expires_at_ms),
            metadata: s.metadata.into_iter().collect(),
            media_id: s.media_id,
        }
    }
}

async fn upload_state(state: &AppState, user: &Principal, rid: &str, id: String) -> Result<pb::UploadState, ApiError> {
    Ok(state
        .media()?
        .get_upload(outgoing(
            pb::GetUploadRequest {
                user_id: user.user_id.clone(),
                id,
            },
            rid,
        ))
        .await?
        .into_inner())
}

/// HEAD /mobile/uploads/{id}: the stored offset.
pub async fn tus_head(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<Raw<TusOffset>, ApiError> {
    if let Some(res) = tus_rejection(&req) {
        return Ok(Raw::new(res));
    }
    let s = upload_state(&state, &user.0, &rid.0, id.into_inner()).await?;
    let mut res = HttpResponse::Ok();
    upload_headers(&mut res, &s);
    Ok(Raw::new(res.finish()))
}

/// GET /mobile/uploads/{id}: the same as HEAD, as JSON, for clients that are not tus clients.
pub async fn tus_status(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    id: web::Path<String>,
) -> Result<Reply<Upload>, ApiError> {
    let s = upload_state(&state, &user.0, &rid.0, id.into_inner()).await?;
    Ok(Reply(s.into()))
}

/// PATCH /mobile/uploads/{id}: appends the body at `Upload-Offset`. When the client drops
/// mid-chunk, the bytes that arrived are still appended (without a checksum they cannot be
/// verified against, so only when none was sent), and the client resumes from the offset HEAD
/// reports: nothing is lost or written twice.
pub async fn tus_patch(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<Raw<TusAppended>, ApiError> {
    if let Some(res) = tus_rejection(&req) {
        return Ok(Raw::new(res));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/offset+octet-stream") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let offset =
        header_u64(&req, "Upload-Offset")?.ok_or_else(|| ApiError::fields([("Upload-Offset", "is required")]))?;
    let sha256 = match req.headers().get("upload-checksum") {
        // An empty header names no checksum, as if it were absent.
        None => Vec::new(),
        Some(v) if v.is_empty() => Vec::new(),
        // A value that is not visible ASCII is no algorithm we know.
        Some(v) => parse_checksum(v.to_str().unwrap_or_default())?,
    };
    // Ownership, offset and the remaining length are checked before a byte of the body is
    // read: a stranger's PATCH, a stale offset or an oversized chunk costs no upload bandwidth.
    let id = id.into_inner();
    let current = match upload_state(&state, &user.0, &rid.0, id.clone()).await {
        Ok(s) => s,
        Err(e) => return Ok(Raw::new(tus_problem(&e.0, &rid.0))),
    };
    if current.offset != offset {
        let problem = Problem::new(
            ErrorCode::UploadOffsetMismatch,
            format!(
                "Upload-Offset {offset} does not match the upload's offset {}",
                current.offset
            ),
        )
        .with_details(json!({ "offset": current.offset, "requested": offset }));
        return Ok(Raw::new(tus_problem(&problem, &rid.0)));
    }
    let remaining = current.length.saturating_sub(current.offset);
    let chunk_limit = state.config.chunk_limit as u64;
    let declared = header_u64(&req, "Content-Length")?;
    if let Some(n) = declared.filter(|n| *n > chunk_limit) {
        return Ok(Raw::new(tus_problem(&chunk_over_cap(n, chunk_limit), &rid.0)));
    }
    if let Some(n) = declared.filter(|n| *n > remaining) {
        return Ok(Raw::new(tus_problem(&past_length(offset, current.length, n), &rid.0)));
    }
    let cap = usize::try_from(chunk_limit.min(remaining)).unwrap_or(usize::MAX);
    let mut body = bytes::BytesMut::new();
    let mut dropped = false;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => {
                if body.len() + chunk.len() > cap {
                    let problem = if remaining < chunk_limit {
                        past_length(offset, current.length, (body.len() + chunk.len()) as u64)
                    } else {
                        chunk_over_cap((body.len() + chunk.len()) as u64, chunk_limit)
                    };
                    return Ok(Raw::new(tus_problem(&problem, &rid.0)));
                }
                body.extend_from_slice(&chunk);
            }
            Err(_) => {
                dropped = true;
                break;
            }
        }
    }
    if dropped && !sha256.is_empty() {
        // The chunk cannot be verified; keep nothing and let the client resend it.
        return Err(ApiError::fields([(
            "body",
            "the connection dropped before the checksummed chunk arrived",
        )]));
    }
    // The last chunk runs the image pipeline: it gets the processing deadline, not the
    // usual one.
    let completes = offset + body.len() as u64 == current.length;
    let client = if completes {
        state.media_processing()?
    } else {
        state.media()?
    };
    let r = client
        .clone()
        .append_upload(outgoing(
            pb::AppendUploadRequest {
                user_id: user.0.user_id,
                id,
                offset,
                content: body.freeze(),
                sha256: sha256.into(),
            },
            &rid.0,
        ))
        .await;
    let r = match r {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(Raw::new(tus_problem(&Problem::from_status(&status), &rid.0))),
    };
    let s = r.state.unwrap_or_default();
    let mut res = HttpResponse::NoContent();
    upload_headers(&mut res, &s);
    Ok(Raw::new(res.finish()))
}

/// A tus error: the envelope, with `Tus-Resumable` and, when the problem names it, the
/// offset to resume from.
fn tus_problem(problem: &Problem, rid: &str) -> HttpResponse {
    let mut res = crate::envelope::problem_response(problem, rid);
    let headers = res.headers_mut();
    headers.insert(
        header::HeaderName::from_static("tus-resumable"),
        HeaderValue::from_static(TUS_VERSION),
    );
    if let Some(current) = problem
        .details
        .as_ref()
        .and_then(|d| d.get("currentOffset").or_else(|| d.get("offset")))
        .and_then(Value::as_u64)
        && let Ok(v) = HeaderValue::from_str(&current.to_string())
    {
        headers.insert(header::HeaderName::from_static("upload-offset"), v);
    }
    res
}

fn chunk_over_cap(chunk: u64, max: u64) -> Problem {
    Problem::new(
        ErrorCode::PayloadTooLarge,
        format!("a chunk of {chunk} bytes is over the cap of {max} bytes per append; send smaller chunks"),
    )
    .with_details(json!({ "chunk": chunk, "maxChunkBytes": max }))
}

fn past_length(offset: u64, length: u64, chunk: u64) -> Problem {
    Problem::new(
        ErrorCode::PayloadTooLarge,
        format!("{chunk} bytes at offset {offset} run past the Upload-Length of {length}"),
    )
    .with_details(json!({ "offset": offset, "length": length, "remaining": length.saturating_sub(offset) }))
}

/// DELETE /mobile/uploads/{id}: termination.
pub async fn tus_delete(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<Raw<TusTerminated>, ApiError> {
    if let Some(res) = tus_rejection(&req) {
        return Ok(Raw::new(res));
    }
    state
        .media()?
        .delete_upload(outgoing(
            pb::DeleteUploadRequest {
                user_id: user.0.user_id,
                id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?;
    let mut res = HttpResponse::NoContent();
    tus_headers(&mut res);
    Ok(Raw::new(res.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tus_metadata_decodes_and_rejects_garbage() {
        let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap_or_default();
        assert_eq!(m.get("filename").map(String::as_str), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential").map(String::as_str), Some(""));
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata("a,a").is_err());
        assert!(metadata_shape().is_some(), "the pattern compiles");
        // The shape the document states: no stray spaces, empty pairs, commas or tabs in keys,
        // no base64 with stray bits.
        for bad in [" a", "a,,b", "a  ,b", "a\tb", "k YQ", "k YR==", "k YWJ", "k YWK="] {
            assert!(parse_metadata(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a,b", "k YQ==", "k YWI=", "k YWJj", "k ", "名"] {
            assert_eq!(parse_metadata(good).is_ok(), good.is_ascii(), "{good:?}");
        }
    }
}

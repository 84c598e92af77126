//! `/v1/mobile/*` and `/v1/media/*`: uploads, variants, tus resumable uploads and mobile
//! performance, answered by the media service.

use std::{cell::Cell, collections::BTreeMap, rc::Rc, task::Poll};

use actix_multipart::{Multipart, MultipartError};
use actix_web::{
    HttpRequest, HttpResponse,
    error::PayloadError,
    http::{
        StatusCode,
        header::{self, HeaderMap, HeaderValue},
    },
    web,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use portico_proto::media::v1 as pb;
use portico_runtime::{ErrorCode, Problem, grpc::outgoing};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Rid, User, rfc3339};
use crate::{
    AppState,
    auth::{Principal, Role},
    envelope::{ApiError, ApiResult, Json, ok, success},
};

/// The connection names of the public API, in order.
const CONNECTIONS: [(&str, pb::Connection); 5] = [
    ("slow-2g", pb::Connection::Slow2g),
    ("2g", pb::Connection::Connection2g),
    ("3g", pb::Connection::Connection3g),
    ("4g", pb::Connection::Connection4g),
    ("wifi", pb::Connection::Wifi),
];

const CONNECTION_HINT: &str = "must be one of slow-2g, 2g, 3g, 4g, wifi";

fn parse_connection(name: &str) -> Option<pb::Connection> {
    let name = name.trim().to_ascii_lowercase();
    CONNECTIONS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

fn connection_name(value: i32) -> &'static str {
    CONNECTIONS
        .iter()
        .find(|(_, c)| *c as i32 == value)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

/// `?connection=&downlinkMbps=&rttMs=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadConfigQuery {
    connection: Option<String>,
    downlink_mbps: Option<f64>,
    rtt_ms: Option<u32>,
}

/// GET /mobile/upload-config
pub async fn upload_config(state: web::Data<AppState>, rid: Rid, query: web::Query<UploadConfigQuery>) -> ApiResult {
    let q = query.into_inner();
    let mut bad = Vec::new();
    let connection = match q.connection.as_deref() {
        None => {
            bad.push(("connection", format!("is required; {CONNECTION_HINT}")));
            None
        }
        Some(raw) => {
            let c = parse_connection(raw);
            if c.is_none() {
                bad.push((
                    "connection",
                    format!("`{raw}` is not a connection type; {CONNECTION_HINT}"),
                ));
            }
            c
        }
    };
    if q.downlink_mbps
        .is_some_and(|d| !d.is_finite() || d <= 0.0 || d > 100_000.0)
    {
        bad.push((
            "downlinkMbps",
            "must be a positive number of megabits per second".to_string(),
        ));
    }
    if q.rtt_ms.is_some_and(|r| r > 60_000) {
        bad.push(("rttMs", "must be at most 60000".to_string()));
    }
    let Some(connection) = connection.filter(|_| bad.is_empty()) else {
        return Err(ApiError::fields(bad));
    };
    let c = state
        .media()?
        .get_upload_config(outgoing(
            pb::GetUploadConfigRequest {
                connection: connection as i32,
                downlink_mbps: q.downlink_mbps,
                rtt_ms: q.rtt_ms,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(ok(json!({
        "connection": connection_name(c.connection),
        "maxFileBytes": c.max_file_bytes,
        "maxDimension": c.max_dimension,
        "jpegQuality": c.jpeg_quality,
        "chunkBytes": c.chunk_bytes,
        "parallelChunks": c.parallel_chunks,
        "timeoutMs": c.timeout_ms,
        "preferredFormat": c.preferred_format,
        "resumable": c.resumable,
    })))
}

fn media_json(m: pb::Media) -> Value {
    let id = m.id;
    let original = m.original.unwrap_or_default();
    let variants: Vec<Value> = m
        .variants
        .into_iter()
        .map(|v| {
            json!({
                "url": format!("/v1/media/{id}/{}?format={}", v.name, v.format),
                "name": v.name,
                "format": v.format,
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
            })
        })
        .collect();
    let estimates: BTreeMap<&str, u64> = m
        .estimated_upload_ms
        .iter()
        .map(|e| (connection_name(e.connection), e.millis))
        .collect();
    json!({
        "mediaId": id,
        "original": {
            "bytes": original.bytes,
            "width": original.width,
            "height": original.height,
            "format": original.format,
        },
        "variants": variants,
        "compressionRatio": m.compression_ratio,
        "estimatedUploadMs": estimates,
        "processingMs": m.processing_ms,
        "createdAt": rfc3339(m.created_at_ms),
    })
}

/// POST /mobile/upload-optimized: multipart with a `file` part and an optional
/// `connection` part. The file is read up to the upload cap (413 beyond) and processed by the
/// media service; parts other than these two are refused by name.
pub async fn upload_optimized(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let form = read_upload_form(req.headers(), payload, state.config.upload_limit).await?;
    let media = state
        .media_processing()?
        .upload(outgoing(
            pb::UploadRequest {
                user_id: user.0.user_id,
                content: form.content,
                filename: form.filename,
                connection: form.connection as i32,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(success(StatusCode::CREATED, media_json(media)))
}

/// What an upload form carried, checked: a non-empty file within the cap, its filename and
/// the client's connection type.
#[derive(Debug)]
pub struct UploadForm {
    /// The file's bytes (never empty).
    pub content: Bytes,
    /// The file part's filename (empty when the part names none).
    pub filename: String,
    /// The `connection` part (unspecified when absent).
    pub connection: pb::Connection,
}

/// Reads the upload form of `POST /mobile/upload-optimized`: the Content-Type must be
/// multipart/form-data (415), the `file` part is read up to `limit` bytes (413 beyond) and
/// the `connection` part up to 64; an unknown or repeated part is refused by name, unread.
pub async fn read_upload_form(
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
    limit: usize,
) -> Result<UploadForm, ApiError> {
    let multipart_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart_type {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be multipart/form-data with a `file` part",
        ));
    }
    // The parser can wait for more bytes after the body has ended (a part whose data ends in
    // `\r` or in a cut-off boundary: actix/actix-web#3202), when nothing will ever wake it.
    let ended = Rc::new(Cell::new(false));
    let end = Rc::clone(&ended);
    let payload = payload.chain(futures_util::stream::poll_fn(move |_| {
        end.set(true);
        Poll::Ready(None)
    }));
    let mut form = Multipart::new(headers, payload);
    let mut file: Option<(Bytes, String)> = None;
    let mut connection = pb::Connection::Unspecified;
    let mut bad: Vec<(String, String)> = Vec::new();
    while let Some(part) = next_or_incomplete(&ended, &mut form).await {
        let mut part = part.map_err(|e| ApiError::fields([("body", format!("malformed multipart body: {e}"))]))?;
        let name = part.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" if file.is_some() => {
                return Err(ApiError::fields([("file", "send exactly one file part")]));
            }
            "file" => {
                let filename = part
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or_default()
                    .to_string();
                let mut buf = bytes::BytesMut::new();
                while let Some(chunk) = next_or_incomplete(&ended, &mut part).await {
                    let chunk = chunk.map_err(|e| ApiError::fields([("file", format!("could not be read: {e}"))]))?;
                    if buf.len() + chunk.len() > limit {
                        return Err(upload_too_large(limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
                file = Some((buf.freeze(), filename));
            }
            "connection" => {
                let mut raw = Vec::new();
                while let Some(chunk) = next_or_incomplete(&ended, &mut part).await {
                    let chunk = chunk.map_err(|e| ApiError::fields([("connection", e.to_string())]))?;
                    if raw.len() + chunk.len() > 64 {
                        return Err(ApiError::fields([("connection", CONNECTION_HINT)]));
                    }
                    raw.extend_from_slice(&chunk);
                }
                let text = String::from_utf8_lossy(&raw).to_string();
                match parse_connection(&text) {
                    Some(c) => connection = c,
                    None => bad.push(("connection".into(), CONNECTION_HINT.into())),
                }
            }
            // Refused at once, unread: an unknown part is never drained (it could be of any
            // size).
            other => {
                let field = if other.is_empty() { "body" } else { other };
                return Err(ApiError::fields([(
                    field.to_string(),
                    "is not a known part; send `file` and optionally `connection`".to_string(),
                )]));
            }
        }
    }
    let file = match file {
        Some((content, _)) if content.is_empty() => {
            bad.push(("file".into(), "is empty".into()));
            None
        }
        Some(f) => Some(f),
        None => {
            bad.push(("file".into(), "is required: a multipart part named `file`".into()));
            None
        }
    };
    let Some((content, filename)) = file.filter(|_| bad.is_empty()) else {
        return Err(ApiError::fields(bad));
    };
    Ok(UploadForm {
        content,
        filename,
        connection,
    })
}

/// The next item of the form or of one of its parts; once the body has ended, a parser that
/// still waits for more of it has an incomplete body.
async fn next_or_incomplete<S, T>(ended: &Cell<bool>, stream: &mut S) -> Option<Result<T, MultipartError>>
where
    S: Stream<Item = Result<T, MultipartError>> + Unpin,
{
    futures_util::future::poll_fn(|cx| match stream.poll_next_unpin(cx) {
        Poll::Pending if ended.get() => Poll::Ready(Some(Err(MultipartError::Incomplete))),
        next => next,
    })
    .await
}

fn upload_too_large(limit: usize) -> ApiError {
    ApiError(
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is over the {limit}-byte cap"),
        )
        .with_details(json!({ "limitBytes": limit })),
    )
}

/// GET /media/{id}
pub async fn get(state: web::Data<AppState>, user: User, rid: Rid, id: web::Path<String>) -> ApiResult {
    let media = state
        .media()?
        .get_media(outgoing(
            pb::GetMediaRequest {
                user_id: user.0.user_id,
                id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(ok(media_json(media)))
}

/// `?format=` of a variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantQuery {
    format: Option<String>,
}

/// Whether an `Accept` header admits WebP (an explicit `q=0` refuses it).
fn accepts_webp(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        media_type == "image/webp" && !refused
    })
}

/// Whether `If-None-Match` lists `etag` (or `*`); weak comparison, as RFC 9110 asks for it.
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// GET /media/{id}/{variant}: the bytes, outside the envelope. WebP when `Accept` admits it,
/// unless `?format=` asks for one; strong ETag; 304 on a matching `If-None-Match`; cached by
/// the client for a year (variants never change: a new upload is a new id).
pub async fn variant(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<VariantQuery>,
) -> ApiResult {
    let (id, name) = path.into_inner();
    let format = match query.into_inner().format.as_deref().map(str::to_ascii_lowercase) {
        Some(f) if f == "jpeg" || f == "jpg" => "jpeg",
        Some(f) if f == "webp" => "webp",
        Some(_) => return Err(ApiError::fields([("format", "must be jpeg or webp")])),
        None => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            if accept.is_some_and(accepts_webp) {
                "webp"
            } else {
                "jpeg"
            }
        }
    };
    // The metadata carries every variant's ETag, so a revalidation costs no bytes.
    let media = state
        .media()?
        .get_media(outgoing(
            pb::GetMediaRequest {
                user_id: user.0.user_id.clone(),
                id: id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let Some(meta) = media.variants.iter().find(|v| v.name == name && v.format == format) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no variant `{name}`; use thumbnail, small, medium or large"),
        ));
    };
    let cache_headers = |res: &mut actix_web::HttpResponseBuilder, etag: &str| {
        res.insert_header((header::ETAG, etag.to_string()))
            .insert_header((header::CACHE_CONTROL, "private, max-age=31536000, immutable"))
            .insert_header((header::VARY, "Accept"));
    };
    if none_match(&req, &meta.etag) {
        let mut res = HttpResponse::NotModified();
        cache_headers(&mut res, &meta.etag);
        return Ok(res.finish());
    }
    let content = state
        .media()?
        .get_variant(outgoing(
            pb::GetVariantRequest {
                user_id: user.0.user_id,
                id,
                variant: name,
                format: format.to_string(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let mut res = HttpResponse::Ok();
    cache_headers(&mut res, &content.etag);
    // Images are compressed already.
    res.insert_header((header::CONTENT_ENCODING, "identity"));
    Ok(res.content_type(content.content_type).body(content.content))
}

/// DELETE /media/{id}
pub async fn delete(state: web::Data<AppState>, user: User, rid: Rid, id: web::Path<String>) -> ApiResult {
    state
        .media()?
        .delete_media(outgoing(
            pb::DeleteMediaRequest {
                user_id: user.0.user_id,
                id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?;
    Ok(ok(json!({ "deleted": true })))
}

// --- tus 1.0 ---------------------------------------------------------------------------

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
            // The usual envelope (with its meta), under tus's own status for a version mismatch.
            let problem = Problem::validation([("Tus-Resumable", "must be 1.0.0")]);
            let mut res = crate::envelope::problem_response(&problem, &crate::envelope::current_request_id());
            *res.status_mut() = StatusCode::PRECONDITION_FAILED;
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
pub async fn tus_options(state: web::Data<AppState>) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    res.insert_header(("Tus-Resumable", TUS_VERSION))
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header(("Tus-Checksum-Algorithm", "sha256"))
        .insert_header(("Tus-Max-Size", state.config.upload_limit.to_string()));
    res.finish()
}

/// POST /mobile/uploads: creation. `Upload-Length` is required (deferred length is not
/// offered); 201 with `Location`.
pub async fn tus_create(state: web::Data<AppState>, user: User, rid: Rid, req: HttpRequest) -> ApiResult {
    if let Some(res) = tus_rejection(&req) {
        return Ok(res);
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
    Ok(res.json(json!({ "success": true, "data": upload_json(&s) })))
}

fn upload_json(s: &pb::UploadState) -> Value {
    json!({
        "uploadId": s.id,
        "offset": s.offset,
        "length": s.length,
        "expiresAt": rfc3339(s.expires_at_ms),
        "metadata": s.metadata.iter().collect::<BTreeMap<_, _>>(),
        "mediaId": s.media_id,
    })
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
) -> ApiResult {
    if let Some(res) = tus_rejection(&req) {
        return Ok(res);
    }
    let s = upload_state(&state, &user.0, &rid.0, id.into_inner()).await?;
    let mut res = HttpResponse::Ok();
    upload_headers(&mut res, &s);
    Ok(res.finish())
}

/// GET /mobile/uploads/{id}: the same as HEAD, as JSON, for clients that are not tus clients.
pub async fn tus_status(state: web::Data<AppState>, user: User, rid: Rid, id: web::Path<String>) -> ApiResult {
    let s = upload_state(&state, &user.0, &rid.0, id.into_inner()).await?;
    Ok(ok(upload_json(&s)))
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
) -> ApiResult {
    if let Some(res) = tus_rejection(&req) {
        return Ok(res);
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
        None => Vec::new(),
        // A value that is not visible ASCII is no algorithm we know.
        Some(v) => parse_checksum(v.to_str().unwrap_or_default())?,
    };
    // Ownership, offset and the remaining length are checked before a byte of the body is
    // read: a stranger's PATCH, a stale offset or an oversized chunk costs no upload bandwidth.
    let id = id.into_inner();
    let current = match upload_state(&state, &user.0, &rid.0, id.clone()).await {
        Ok(s) => s,
        Err(e) => return Ok(tus_problem(&e.0, &rid.0)),
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
        return Ok(tus_problem(&problem, &rid.0));
    }
    let remaining = current.length.saturating_sub(current.offset);
    let chunk_limit = state.config.chunk_limit as u64;
    let declared = header_u64(&req, "Content-Length")?;
    if let Some(n) = declared.filter(|n| *n > chunk_limit) {
        return Ok(tus_problem(&chunk_over_cap(n, chunk_limit), &rid.0));
    }
    if let Some(n) = declared.filter(|n| *n > remaining) {
        return Ok(tus_problem(&past_length(offset, current.length, n), &rid.0));
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
                    return Ok(tus_problem(&problem, &rid.0));
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
        Err(status) => return Ok(tus_problem(&Problem::from_status(&status), &rid.0)),
    };
    let s = r.state.unwrap_or_default();
    let mut res = HttpResponse::NoContent();
    upload_headers(&mut res, &s);
    Ok(res.finish())
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
) -> ApiResult {
    if let Some(res) = tus_rejection(&req) {
        return Ok(res);
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
    Ok(res.finish())
}

// --- mobile analytics ------------------------------------------------------------------

/// One client event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientEvent {
    #[serde(rename = "type")]
    event_type: Option<String>,
    duration_ms: Option<f64>,
    bytes: Option<u64>,
    connection: Option<String>,
    device: Option<String>,
    os: Option<String>,
    app_version: Option<String>,
    success: Option<bool>,
    occurred_at: Option<String>,
}

/// `{events: [...]}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEvents {
    events: Option<Vec<ClientEvent>>,
}

/// Most events in one batch.
const MAX_EVENTS: usize = 100;

/// POST /mobile/analytics → 202
pub async fn analytics(state: web::Data<AppState>, user: User, rid: Rid, body: Json<ClientEvents>) -> ApiResult {
    let events = body
        .0
        .events
        .ok_or_else(|| ApiError::fields([("events", "is required")]))?;
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::fields([("events", "must hold 1 to 100 events")]));
    }
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    let now = chrono::Utc::now().timestamp_millis();
    for (i, e) in events.into_iter().enumerate() {
        let at = |f: &str| format!("events[{i}].{f}");
        match e.event_type.as_deref() {
            Some("upload" | "screen" | "api") => {}
            _ => bad.push((at("type"), "must be upload, screen or api".into())),
        }
        match e.duration_ms {
            Some(d) if d.is_finite() && (0.0..86_400_000.0).contains(&d) => {}
            _ => bad.push((at("durationMs"), "is required: milliseconds, 0 to 86400000".into())),
        }
        let connection = match e.connection.as_deref() {
            None => pb::Connection::Unspecified,
            Some(c) => parse_connection(c).unwrap_or_else(|| {
                bad.push((at("connection"), CONNECTION_HINT.into()));
                pb::Connection::Unspecified
            }),
        };
        for (name, value) in [("device", &e.device), ("os", &e.os), ("appVersion", &e.app_version)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 64) {
                bad.push((at(name), "must be at most 64 characters".into()));
            }
        }
        let occurred_at_ms = match e.occurred_at.as_deref() {
            None => 0,
            Some(raw) => match chrono::DateTime::parse_from_rfc3339(raw) {
                Ok(t) if t.timestamp_millis() <= now + 300_000 => t.timestamp_millis(),
                Ok(_) => {
                    bad.push((at("occurredAt"), "is in the future".into()));
                    0
                }
                Err(_) => {
                    bad.push((at("occurredAt"), "must be an RFC 3339 date-time".into()));
                    0
                }
            },
        };
        out.push(pb::ClientEvent {
            r#type: e.event_type.unwrap_or_default(),
            duration_ms: e.duration_ms.unwrap_or_default(),
            bytes: e.bytes.unwrap_or_default(),
            connection: connection as i32,
            device: e.device.unwrap_or_default(),
            os: e.os.unwrap_or_default(),
            app_version: e.app_version.unwrap_or_default(),
            success: e.success.unwrap_or(true),
            occurred_at_ms,
        });
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let r = state
        .media()?
        .record_events(outgoing(
            pb::RecordEventsRequest {
                user_id: user.0.user_id,
                events: out,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(success(StatusCode::ACCEPTED, json!({ "accepted": r.accepted })))
}

/// `?from=&to=&groupBy=&type=` (and `userId=` for admins).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PerformanceQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    user_id: Option<String>,
}

/// GET /mobile/performance: the caller's own events; an admin sees everyone's (or one
/// user's with `userId`).
pub async fn performance(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    query: web::Query<PerformanceQuery>,
) -> ApiResult {
    let q = query.into_inner();
    let mut bad: Vec<(&str, String)> = Vec::new();
    let now = chrono::Utc::now().timestamp_millis();
    let mut time = |name: &'static str, raw: Option<&str>, default: i64| match raw {
        None => default,
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|_| {
                bad.push((name, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z".into()));
                0
            }),
    };
    let to = time("to", q.to.as_deref(), now);
    let from = time("from", q.from.as_deref(), to - 7 * 86_400_000);
    if from > to {
        bad.push(("from", "must not be after `to`".into()));
    }
    let group_by = match q.group_by.as_deref() {
        None | Some("connection") => pb::GroupBy::Connection,
        Some("device") => pb::GroupBy::Device,
        Some(_) => {
            bad.push(("groupBy", "must be connection or device".into()));
            pb::GroupBy::Connection
        }
    };
    if let Some(t) = q.event_type.as_deref()
        && !matches!(t, "upload" | "screen" | "api")
    {
        bad.push(("type", "must be upload, screen or api".into()));
    }
    let is_admin = user.0.role == Role::Admin;
    let scope = if is_admin && q.user_id.is_none() { "all" } else { "user" };
    let user_id = match (is_admin, q.user_id) {
        (true, Some(u)) => u,
        (true, None) => String::new(),
        (false, Some(_)) => {
            bad.push(("userId", "only admins may ask for another user's data".into()));
            String::new()
        }
        (false, None) => user.0.user_id.clone(),
    };
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let r = state
        .media()?
        .get_performance(outgoing(
            pb::GetPerformanceRequest {
                user_id,
                from_ms: from,
                to_ms: to,
                group_by: group_by as i32,
                r#type: q.event_type.unwrap_or_default(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let groups: Vec<Value> = r
        .groups
        .into_iter()
        .map(|g| {
            json!({
                "key": g.key,
                "count": g.count,
                "successRate": g.success_rate,
                "p50": g.p50_ms,
                "p95": g.p95_ms,
                "p99": g.p99_ms,
            })
        })
        .collect();
    Ok(ok(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "groupBy": if group_by == pb::GroupBy::Device { "device" } else { "connection" },
        "scope": scope,
        "groups": groups,
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const BOUNDARY: &str = "portico-fuzz-boundary";

    /// Reads `body` as the upload form, delivered in chunks of `chunk` bytes; a reader that
    /// waits forever fails the test instead of hanging it.
    async fn read_form(body: &[u8], chunk: usize, limit: usize) -> Result<UploadForm, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        );
        let chunks: Vec<Result<Bytes, PayloadError>> = body
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let read = read_upload_form(&headers, futures_util::stream::iter(chunks), limit);
        tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("the form is read to an answer, not awaited forever")
    }

    fn part(name: &str, filename: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut out = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").into_bytes();
        if let Some(f) = filename {
            out.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(data);
        out
    }

    #[tokio::test]
    async fn a_well_formed_upload_form_is_read() {
        let mut body = part("file", Some("photo.jpg"), b"\x89PNG\r\n\x1a\n-- data");
        body.extend_from_slice(b"\r\n");
        body.extend(part("connection", None, b" WiFi "));
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        for chunk in [1, 7, body.len()] {
            let form = read_form(&body, chunk, 1024).await.unwrap();
            assert_eq!(&form.content[..], b"\x89PNG\r\n\x1a\n-- data");
            assert_eq!(form.filename, "photo.jpg");
            assert_eq!(form.connection, pb::Connection::Wifi);
        }
        let over = read_form(&body, 7, 8).await.unwrap_err();
        assert_eq!(over.0.code, ErrorCode::PayloadTooLarge);
    }

    /// Found by the `multipart` fuzz target: a body that ends inside a part whose data ends
    /// in `\r`, `\r\n` or a cut-off boundary left the parser waiting for bytes after the end of
    /// the body, so the request was never answered (and kept what it had read until the client
    /// gave up).
    #[tokio::test]
    async fn an_upload_form_that_ends_inside_a_part_is_refused() {
        let found = include_bytes!("../../fuzz/corpus/multipart/seed-regression-ends-after-crlf").to_vec();
        for (what, body, field) in [
            ("the fuzzer's input", found, "file"),
            ("a file ending in CR", part("file", Some("a.jpg"), b"abc\r"), "file"),
            ("a file ending in CRLF", part("file", Some("a.jpg"), b"abc\r\n"), "file"),
            (
                "a cut-off boundary",
                part("file", Some("a.jpg"), b"abc\r\n--portico-fu"),
                "file",
            ),
            (
                "a connection ending in CRLF",
                part("connection", None, b"wifi\r\n"),
                "connection",
            ),
        ] {
            for chunk in [1, 3, body.len()] {
                let e = read_form(&body, chunk, 1024).await.unwrap_err();
                assert_eq!(e.0.code, ErrorCode::ValidationError, "{what}, {chunk}-byte chunks: {e}");
                let fields = e.0.details.as_ref().and_then(|d| d.get("fields")).unwrap();
                assert!(fields.get(field).is_some(), "{what}, {chunk}-byte chunks: {fields}");
            }
        }
    }

    #[test]
    fn webp_is_chosen_only_when_accepted() {
        assert!(accepts_webp("image/avif,image/webp,*/*"));
        assert!(accepts_webp("image/webp;q=0.8"));
        assert!(!accepts_webp("image/webp;q=0"));
        assert!(!accepts_webp("image/jpeg,*/*"));
    }

    #[test]
    fn tus_metadata_decodes_and_rejects_garbage() {
        let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap_or_default();
        assert_eq!(m.get("filename").map(String::as_str), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential").map(String::as_str), Some(""));
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata("a,a").is_err());
    }
}

//! `POST /mobile/upload-optimized`: the multipart form, read with every cap checked while
//! reading, then processed by the media service.

use std::{cell::Cell, rc::Rc, task::Poll};

use actix_multipart::{Multipart, MultipartError};
use actix_web::{
    HttpRequest,
    error::PayloadError,
    http::header::{self, HeaderMap},
    web,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use portico_proto::media::v1 as pb;
use portico_runtime::{ErrorCode, Problem, grpc::outgoing};
use serde_json::json;

use super::{CONNECTION_HINT, Media, parse_connection};
use crate::{
    AppState,
    contract::{
        Created, Reply,
        doc::{Input, RequestDoc, Schemas},
    },
    envelope::ApiError,
    routes::{Rid, User},
};

/// The form, as the document shows it.
pub struct UploadFormDoc;

impl RequestDoc for UploadFormDoc {
    fn document(_: &mut Schemas) -> Input {
        Input {
            body: Some(json!({
                "required": true,
                "content": { "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "additionalProperties": false,
                        "properties": {
                            "file": { "type": "string", "format": "binary", "minLength": 1, "description": "A JPEG, PNG or WebP image (at most PORTICO_MEDIA_MAX_BYTES)." },
                            "connection": { "type": "string", "enum": ["slow-2g", "2g", "3g", "4g", "wifi"], "description": "The network it was sent over." },
                        },
                    },
                    "encoding": { "file": { "contentType": "image/jpeg, image/png, image/webp" } },
                } },
            })),
            parameters: Vec::new(),
        }
    }
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
) -> Result<Created<Media>, ApiError> {
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
    Ok(Reply(media.into()))
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

pub(super) fn upload_too_large(limit: usize) -> ApiError {
    ApiError(
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is over the {limit}-byte cap"),
        )
        .with_details(json!({ "limitBytes": limit })),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use actix_web::http::header::HeaderValue;

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
        let found = include_bytes!("../../../fuzz/corpus/multipart/seed-regression-ends-after-crlf").to_vec();
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
}

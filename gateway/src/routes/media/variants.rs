//! Stored images: their metadata, their variants' bytes (content-negotiated, with strong
//! ETags and 304s) and their deletion.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use portico_proto::media::v1 as pb;
use portico_runtime::{ErrorCode, grpc::outgoing};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::connection_name;
use crate::{
    AppState,
    contract::{
        Deleted, Raw, Reply, ValidQuery,
        doc::{Output, ResponseDoc, Schemas},
    },
    envelope::ApiError,
    routes::{Rid, User, at},
};

/// The original as uploaded (kept, never served: it still carries its metadata).
#[derive(Debug, Serialize, ToSchema)]
pub struct Original {
    /// Its size.
    bytes: u64,
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
    /// `jpeg`, `png` or `webp`.
    format: String,
}

/// One variant.
#[derive(Debug, Serialize, ToSchema)]
pub struct Variant {
    /// Where to fetch it.
    #[schema(example = "/v1/media/0192f0c2-7d3a-7e11-8000-000000000000/thumbnail?format=webp")]
    url: String,
    /// `thumbnail` (150 px), `small` (320), `medium` (640) or `large` (1280).
    name: String,
    /// `jpeg` or `webp`.
    format: String,
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
    /// Its size.
    bytes: u64,
}

/// An uploaded image.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    /// Its id.
    media_id: String,
    /// The original.
    original: Original,
    /// Every variant in both formats.
    variants: Vec<Variant>,
    /// 1 − large JPEG bytes / original bytes.
    compression_ratio: f64,
    /// Estimated time to upload the large JPEG on each network.
    estimated_upload_ms: BTreeMap<String, u64>,
    /// Time the pipeline took.
    processing_ms: u64,
    /// When it was uploaded.
    created_at: Option<DateTime<Utc>>,
}

impl From<pb::Media> for Media {
    fn from(m: pb::Media) -> Self {
        let id = m.id;
        let original = m.original.unwrap_or_default();
        let variants = m
            .variants
            .into_iter()
            .map(|v| Variant {
                url: format!("/v1/media/{id}/{}?format={}", v.name, v.format),
                name: v.name,
                format: v.format,
                width: v.width,
                height: v.height,
                bytes: v.bytes,
            })
            .collect();
        Media {
            original: Original {
                bytes: original.bytes,
                width: original.width,
                height: original.height,
                format: original.format,
            },
            variants,
            compression_ratio: m.compression_ratio,
            estimated_upload_ms: m
                .estimated_upload_ms
                .iter()
                .map(|e| (connection_name(e.connection).to_string(), e.millis))
                .collect(),
            processing_ms: m.processing_ms,
            created_at: at(m.created_at_ms),
            media_id: id,
        }
    }
}

/// A variant's format.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// JPEG (alias).
    Jpg,
    /// WebP.
    Webp,
}

/// `?format=` of a variant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantQuery {
    /// The format (default: WebP when `Accept` admits it, else JPEG).
    format: Option<ImageFormat>,
}

/// A variant's bytes, outside the envelope.
pub struct ImageBytes;

impl ResponseDoc for ImageBytes {
    fn document(_: &mut Schemas) -> Output {
        let headers = json!({
            "ETag": { "description": "Strong validator: the quoted SHA-256 of the bytes.", "schema": { "type": "string" } },
            "Cache-Control": { "schema": { "type": "string", "const": "private, max-age=31536000, immutable" } },
            "Vary": { "description": "Names `Accept` (the format follows it).", "schema": { "type": "string" } },
        });
        Output {
            status: 200,
            response: json!({
                "description": "The image (WebP when `Accept` admits it or `?format=webp`, else JPEG).",
                "headers": headers,
                "content": {
                    "image/webp": { "schema": { "type": "string", "format": "binary" } },
                    "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
                },
            }),
            others: vec![(
                304,
                json!({ "description": "Not Modified: `If-None-Match` names this variant's ETag.", "headers": headers }),
            )],
        }
    }
}

/// GET /media/{id}
pub async fn get(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    id: web::Path<String>,
) -> Result<Reply<Media>, ApiError> {
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
    Ok(Reply(media.into()))
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
    query: ValidQuery<VariantQuery>,
) -> Result<Raw<ImageBytes>, ApiError> {
    let (id, name) = path.into_inner();
    let format = match query.0.format {
        Some(ImageFormat::Jpeg | ImageFormat::Jpg) => "jpeg",
        Some(ImageFormat::Webp) => "webp",
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
        return Ok(Raw::new(res.finish()));
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
    Ok(Raw::new(res.content_type(content.content_type).body(content.content)))
}

/// DELETE /media/{id}
pub async fn delete(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    id: web::Path<String>,
) -> Result<Reply<Deleted>, ApiError> {
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
    Ok(Reply(Deleted::YES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webp_is_chosen_only_when_accepted() {
        assert!(accepts_webp("image/avif,image/webp,*/*"));
        assert!(accepts_webp("image/webp;q=0.8"));
        assert!(!accepts_webp("image/webp;q=0"));
        assert!(!accepts_webp("image/jpeg,*/*"));
    }
}

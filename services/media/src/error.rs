//! The media service's errors, converted once into the public catalogue.

use portico_media_pipeline::PipelineError;
use portico_runtime::{ErrorCode, Problem, db::DbError};
use serde_json::json;

/// Everything a media operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Bad request fields, per field.
    #[error("invalid input")]
    Invalid(Vec<(String, String)>),
    /// No such media, variant or upload for this caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The image was refused by the pipeline (or the pipeline failed).
    #[error(transparent)]
    Image(#[from] PipelineError),
    /// A tus upload declared a length over the byte cap.
    #[error("upload length {length} over the cap of {max}")]
    UploadTooLarge { length: u64, max: u64 },
    /// An append carried more than the per-chunk cap (`PORTICO_MEDIA_MAX_CHUNK_BYTES`).
    #[error("chunk of {chunk} bytes over the cap of {max}")]
    ChunkOverCap { chunk: u64, max: u64 },
    /// An append would run past the declared upload length.
    #[error("chunk runs past the upload length")]
    ChunkTooLarge { offset: u64, length: u64, chunk: u64 },
    /// An append named an offset other than the stored one.
    #[error("offset {requested} does not match the upload offset {offset}")]
    OffsetMismatch { offset: u64, requested: u64 },
    /// The chunk's SHA-256 is not the one the client sent.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// The upload expired.
    #[error("upload expired")]
    Expired { expired_at_ms: i64 },
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The object store failed.
    #[error("object store: {0}")]
    Objects(#[from] object_store::Error),
    /// A worker task failed.
    #[error("media task failed: {0}")]
    Task(String),
    /// The caller's plan allows no more effect runs now.
    #[error("effect run allowance spent")]
    EffectsSpent {
        /// Whether the concurrent limit (else the hourly one) was hit.
        concurrent: bool,
        limit: u32,
        retry_after_secs: u64,
        resets_at_ms: Option<i64>,
    },
}

impl MediaError {
    /// One invalid field.
    pub fn field(name: &str, message: &str) -> Self {
        MediaError::Invalid(vec![(name.to_string(), message.to_string())])
    }

    /// Whether the caller sent something unusable (a retry with the same input fails again).
    pub fn is_client_error(&self) -> bool {
        match self {
            MediaError::Image(e) => e.is_client_error(),
            MediaError::Db(_) | MediaError::Objects(_) | MediaError::Task(_) => false,
            _ => true,
        }
    }
}

impl From<diesel::result::Error> for MediaError {
    fn from(e: diesel::result::Error) -> Self {
        MediaError::Db(DbError::Query(e))
    }
}

fn image_problem(e: PipelineError) -> Problem {
    let message = e.to_string();
    match e {
        PipelineError::NotAnImage => Problem::new(ErrorCode::NotAnImage, message),
        PipelineError::Truncated => Problem::new(ErrorCode::ImageTruncated, message),
        PipelineError::Corrupt(_) => Problem::new(ErrorCode::ImageCorrupt, message),
        PipelineError::TooLarge { bytes, max } => {
            Problem::new(ErrorCode::PayloadTooLarge, message).with_details(json!({ "bytes": bytes, "maxBytes": max }))
        }
        PipelineError::TooManyPixels { width, height, max } => Problem::new(ErrorCode::ImageTooManyPixels, message)
            .with_details(json!({ "width": width, "height": height, "maxPixels": max })),
        PipelineError::Unsupported { format } => Problem::new(
            ErrorCode::UnsupportedMediaType,
            format!("unsupported image format: {format}; send JPEG, PNG or WebP"),
        )
        .with_details(json!({ "format": format, "accepted": ["jpeg", "png", "webp"] })),
        other => Problem::internal(other),
    }
}

impl From<MediaError> for Problem {
    fn from(e: MediaError) -> Problem {
        match e {
            MediaError::Invalid(fields) => Problem::validation(fields),
            MediaError::NotFound(what) => Problem::new(ErrorCode::NotFound, format!("{what} not found")),
            MediaError::Image(e) => image_problem(e),
            MediaError::UploadTooLarge { length, max } => Problem::new(
                ErrorCode::PayloadTooLarge,
                format!("Upload-Length {length} is over the cap of {max} bytes"),
            )
            .with_details(json!({
                "fields": { "Upload-Length": format!("must be at most {max}") },
                "maxBytes": max,
            })),
            MediaError::ChunkOverCap { chunk, max } => Problem::new(
                ErrorCode::PayloadTooLarge,
                format!("a chunk of {chunk} bytes is over the cap of {max} bytes per append; send smaller chunks"),
            )
            .with_details(json!({ "chunk": chunk, "maxChunkBytes": max })),
            MediaError::ChunkTooLarge { offset, length, chunk } => Problem::new(
                ErrorCode::PayloadTooLarge,
                format!("{chunk} bytes at offset {offset} run past the Upload-Length of {length}"),
            )
            .with_details(json!({
                "offset": offset,
                "length": length,
                "remaining": length.saturating_sub(offset),
            })),
            MediaError::OffsetMismatch { offset, requested } => Problem::new(
                ErrorCode::UploadOffsetMismatch,
                format!("Upload-Offset {requested} does not match the upload's offset {offset}"),
            )
            .with_details(json!({ "offset": offset, "requested": requested })),
            MediaError::ChecksumMismatch => Problem::new(
                ErrorCode::ChecksumMismatch,
                "the chunk's sha256 does not match Upload-Checksum; nothing was stored",
            )
            .with_details(json!({ "algorithm": "sha256" })),
            MediaError::Expired { expired_at_ms } => {
                Problem::new(ErrorCode::UploadExpired, "the upload has expired; start a new one")
                    .with_details(json!({ "expiredAtMs": expired_at_ms }))
            }
            MediaError::EffectsSpent {
                concurrent,
                limit,
                retry_after_secs,
                resets_at_ms,
            } => {
                let message = if concurrent {
                    format!("the plan allows {limit} effect runs at once; wait for one to finish or cancel one")
                } else {
                    format!("the plan's quota of {limit} effect runs per hour is spent")
                };
                Problem::new(ErrorCode::QuotaExceeded, message).with_details(json!({
                    "limit": limit,
                    "kind": if concurrent { "concurrent" } else { "hourly" },
                    "retryAfterSeconds": retry_after_secs,
                    "resetsAtMs": resets_at_ms,
                }))
            }
            MediaError::Db(e) => e.into(),
            MediaError::Objects(e) => Problem::internal(e),
            MediaError::Task(e) => Problem::internal(e),
        }
    }
}

//! The media service: the image pipeline, object storage, tus uploads and performance
//! histograms, served over gRPC.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use bytes::Bytes;
use portico_media_pipeline::{Limits, Options, OutputFormat, VARIANTS};
use portico_proto::media::v1::{self as pb, media_service_server::MediaService};
use portico_runtime::{
    Problem,
    db::{Db, now_ms},
    grpc,
};
use portico_sketch::{self as sketch, Histogram};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Measured, Network},
    error::MediaError,
    objects::Objects,
    store::{self, ChunkRow, Dimension, MediaRow, PENDING, PerfBucket, PerfQuery, UploadRow, VariantRow},
};

/// Fully qualified gRPC name, for health reporting.
pub const SERVICE_NAME: &str = "portico.media.v1.MediaService";
const SVC: &str = "media";
/// A pending media row (or an object with no row) older than this was left by a crash.
pub const PENDING_GRACE_MS: i64 = domain::HOUR_MS;
/// Performance histograms are kept this long.
pub const PERF_RETENTION_MS: i64 = 90 * domain::DAY_MS;
/// Rows the cleanup job handles per kind and run; the rest wait for the next run.
const CLEANUP_BATCH: i64 = 1000;
/// Ids per `IN (…)` list, well under both backends' parameter limits.
const ID_BATCH: usize = 500;

/// The media application: pipeline limits, object store, database and a bound on concurrent
/// image processing.
#[derive(Clone)]
pub struct MediaApp {
    db: Db,
    objects: Objects,
    limits: Limits,
    /// Largest body of one tus append.
    max_chunk_bytes: u64,
    upload_ttl_ms: i64,
    /// One permit per core: images are decoded and encoded on the blocking pool, and more of
    /// them at once than there are cores only adds memory, not throughput.
    cpu: Arc<Semaphore>,
}

/// Hour, event type, connection, device and histogram bucket of a batch's events.
type BucketKey = (i64, &'static str, &'static str, String, i32);

/// What one cleanup run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Pending media rows (left by a crash) removed with their objects.
    pub pending_media: usize,
    /// Expired uploads removed with their chunks.
    pub expired_uploads: usize,
    /// Objects with no row removed.
    pub stray_objects: usize,
    /// Histogram rows past retention removed.
    pub perf_rows: usize,
}

impl MediaApp {
    /// The application over `db` and `objects`.
    pub fn new(db: Db, objects: Objects, limits: Limits, max_chunk_bytes: u64, upload_ttl_ms: i64) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        MediaApp {
            db,
            objects,
            limits,
            max_chunk_bytes,
            upload_ttl_ms,
            cpu: Arc::new(Semaphore::new(cores)),
        }
    }

    fn upload_config(&self, req: pb::GetUploadConfigRequest) -> Result<pb::UploadConfig, MediaError> {
        let Some(network) = Network::from_proto(req.connection) else {
            return Err(MediaError::field("connection", "must be slow-2g, 2g, 3g, 4g or wifi"));
        };
        let measured = Measured {
            downlink_mbps: req.downlink_mbps,
            rtt_ms: req.rtt_ms,
        };
        let problems = domain::validate_measured(&measured);
        if !problems.is_empty() {
            return Err(MediaError::Invalid(problems));
        }
        Ok(domain::upload_config(
            network,
            measured,
            self.limits.max_bytes,
            self.max_chunk_bytes,
        ))
    }

    async fn upload(&self, req: pb::UploadRequest) -> Result<pb::Media, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let filename = Some(req.filename.trim().chars().take(255).collect::<String>()).filter(|f| !f.is_empty());
        self.ingest(&user_id, req.content, filename).await
    }

    /// Validates and processes an image, then stores it crash-safely: the rows go in as
    /// pending, the objects are written, and one update makes the item visible. A crash in
    /// between leaves a pending row no reader sees, which the cleanup job removes with its
    /// objects.
    pub(crate) async fn ingest(
        &self,
        user_id: &str,
        content: Bytes,
        filename: Option<String>,
    ) -> Result<pb::Media, MediaError> {
        let started = Instant::now();
        let limits = self.limits;
        // Header checks are cheap: refuse hostile input before queueing for a CPU slot.
        portico_media_pipeline::probe(&content, &limits)?;
        let permit = self
            .cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| MediaError::Task(e.to_string()))?;
        let input = content.clone();
        let processed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let out = portico_media_pipeline::process(&input, &limits, &Options::default())?;
            let etags: Vec<String> = out.variants.iter().map(|v| domain::etag(&v.bytes)).collect();
            Ok::<_, MediaError>((out, etags))
        })
        .await
        .map_err(|e| MediaError::Task(e.to_string()))?;
        let (out, etags) = match processed {
            Ok(done) => done,
            Err(e) => {
                let code = match &e {
                    MediaError::Image(p) => p.code(),
                    _ => "TASK",
                };
                metrics::counter!("portico_media_rejected_total", "code" => code).increment(1);
                return Err(e);
            }
        };

        let id = uuid::Uuid::now_v7().to_string();
        let format = out.original.format.as_str();
        let row = MediaRow {
            id: id.clone(),
            user_id: user_id.to_string(),
            status: PENDING.to_string(),
            filename,
            original_format: format.to_string(),
            original_bytes: i64::try_from(content.len()).unwrap_or(i64::MAX),
            original_width: i32::try_from(out.oriented_width).unwrap_or(i32::MAX),
            original_height: i32::try_from(out.oriented_height).unwrap_or(i32::MAX),
            original_key: domain::original_key(user_id, &id, format),
            processing_ms: 0,
            created_at: now_ms(),
        };
        let mut variants = Vec::with_capacity(out.variants.len());
        let mut objects = Vec::with_capacity(out.variants.len() + 1);
        objects.push((row.original_key.clone(), content));
        for (v, etag) in out.variants.into_iter().zip(etags) {
            let key = domain::variant_key(user_id, &id, v.name, v.format.extension());
            variants.push(VariantRow {
                media_id: id.clone(),
                name: v.name.to_string(),
                format: v.format.as_str().to_string(),
                width: i32::try_from(v.width).unwrap_or(i32::MAX),
                height: i32::try_from(v.height).unwrap_or(i32::MAX),
                bytes: i64::try_from(v.bytes.len()).unwrap_or(i64::MAX),
                etag,
                object_key: key.clone(),
            });
            objects.push((key, Bytes::from(v.bytes)));
        }

        let (pending, pending_variants) = (row.clone(), variants.clone());
        self.db
            .write(move |conn| Ok::<_, MediaError>(pending.insert_pending(&pending_variants, conn)?))
            .await?;
        if let Err(e) = self.objects.put_all(objects).await {
            self.discard(user_id, &id).await;
            return Err(e.into());
        }
        let processing_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let ready_id = id.clone();
        let ready = self
            .db
            .write(move |conn| Ok::<_, MediaError>(MediaRow::mark_ready(conn, &ready_id, processing_ms)?))
            .await?;
        if !ready {
            self.discard(user_id, &id).await;
            return Err(MediaError::Task("media row vanished before it was ready".to_string()));
        }
        metrics::counter!("portico_media_uploads_total", "format" => format).increment(1);
        metrics::histogram!("portico_media_processing_seconds").record(started.elapsed().as_secs_f64());
        let row = MediaRow {
            status: store::READY.to_string(),
            processing_ms,
            ..row
        };
        Ok(media_to_proto(&row, variants))
    }

    /// Best-effort removal of a half-stored item; whatever fails here the cleanup job removes.
    async fn discard(&self, user_id: &str, media_id: &str) {
        if let Err(e) = self
            .objects
            .delete_prefix(&domain::media_prefix(user_id, media_id))
            .await
        {
            tracing::warn!(error = %e, media_id, "could not delete the objects of a failed upload");
        }
        let id = media_id.to_string();
        if let Err(e) = self
            .db
            .write(move |conn| Ok::<_, MediaError>(MediaRow::delete_any(conn, &id)?))
            .await
        {
            tracing::warn!(error = %e, media_id, "could not delete the rows of a failed upload");
        }
    }

    pub(crate) async fn get_media(&self, req: pb::GetMediaRequest) -> Result<pb::Media, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("media"))?;
        let (row, variants) = self
            .db
            .run(move |conn| Ok::<_, MediaError>(MediaRow::find(conn, &user_id, &id)?))
            .await?
            .ok_or(MediaError::NotFound("media"))?;
        Ok(media_to_proto(&row, variants))
    }

    pub(crate) async fn get_variant(&self, req: pb::GetVariantRequest) -> Result<pb::VariantContent, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let format = match req.format.trim().to_ascii_lowercase().as_str() {
            "" | "jpeg" | "jpg" => OutputFormat::Jpeg,
            "webp" => OutputFormat::Webp,
            _ => return Err(MediaError::field("format", "must be jpeg or webp")),
        };
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("media"))?;
        let name = req.variant.trim().to_ascii_lowercase();
        if !VARIANTS.iter().any(|v| v.name == name) {
            return Err(MediaError::NotFound("variant"));
        }
        let row = self
            .db
            .run(move |conn| Ok::<_, MediaError>(VariantRow::find(conn, &user_id, &id, &name, format.as_str())?))
            .await?
            .ok_or(MediaError::NotFound("media"))?;
        let content = self.objects.get(&row.object_key).await?;
        Ok(pb::VariantContent {
            content,
            content_type: format.mime().to_string(),
            etag: row.etag,
        })
    }

    pub(crate) async fn delete_media(
        &self,
        req: pb::DeleteMediaRequest,
    ) -> Result<pb::DeleteMediaResponse, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("media"))?;
        let (uid, mid) = (user_id.clone(), id.clone());
        let deleted = self
            .db
            .write(move |conn| Ok::<_, MediaError>(MediaRow::delete(conn, &uid, &mid)?))
            .await?;
        if deleted.is_none() {
            return Err(MediaError::NotFound("media"));
        }
        // The rows are gone, so the item is gone for every reader; objects that fail to delete
        // now are strays the cleanup job removes.
        if let Err(e) = self.objects.delete_prefix(&domain::media_prefix(&user_id, &id)).await {
            tracing::warn!(error = %e, media_id = %id, "could not delete media objects; cleanup will");
        }
        metrics::counter!("portico_media_deleted_total").increment(1);
        Ok(pb::DeleteMediaResponse {})
    }

    async fn create_upload(&self, req: pb::CreateUploadRequest) -> Result<pb::UploadState, MediaError> {
        let user_id = require_user(&req.user_id)?;
        if req.length == 0 {
            return Err(MediaError::field("Upload-Length", "must be greater than 0"));
        }
        if req.length > self.limits.max_bytes {
            return Err(MediaError::UploadTooLarge {
                length: req.length,
                max: self.limits.max_bytes,
            });
        }
        let problems = domain::validate_metadata(&req.metadata);
        if !problems.is_empty() {
            return Err(MediaError::Invalid(problems));
        }
        let now = now_ms();
        let row = UploadRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id,
            upload_length: i64::try_from(req.length).unwrap_or(i64::MAX),
            upload_offset: 0,
            metadata: serde_json::to_string(&req.metadata).map_err(|e| MediaError::Task(e.to_string()))?,
            media_id: None,
            expires_at: now.saturating_add(self.upload_ttl_ms),
            created_at: now,
        };
        let insert = row.clone();
        self.db
            .write(move |conn| Ok::<_, MediaError>(insert.insert(conn)?))
            .await?;
        metrics::counter!("portico_media_tus_created_total").increment(1);
        Ok(upload_to_proto(&row))
    }

    /// One of `user_id`'s uploads that has not expired.
    async fn live_upload(&self, user_id: &str, raw_id: &str) -> Result<UploadRow, MediaError> {
        let id = domain::parse_id(raw_id).ok_or(MediaError::NotFound("upload"))?;
        let uid = user_id.to_string();
        let row = self
            .db
            .run(move |conn| Ok::<_, MediaError>(UploadRow::find(conn, &uid, &id)?))
            .await?
            .ok_or(MediaError::NotFound("upload"))?;
        if row.expires_at <= now_ms() {
            return Err(MediaError::Expired {
                expired_at_ms: row.expires_at,
            });
        }
        Ok(row)
    }

    async fn get_upload(&self, req: pb::GetUploadRequest) -> Result<pb::UploadState, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let row = self.live_upload(&user_id, &req.id).await?;
        Ok(upload_to_proto(&row))
    }

    async fn append_upload(&self, req: pb::AppendUploadRequest) -> Result<pb::AppendUploadResponse, MediaError> {
        let user_id = require_user(&req.user_id)?;
        // Before anything is read or stored: the cap bounds what one append can make us hold.
        let chunk = req.content.len() as u64;
        if chunk > self.max_chunk_bytes {
            return Err(MediaError::ChunkOverCap {
                chunk,
                max: self.max_chunk_bytes,
            });
        }
        if !req.sha256.is_empty() && req.sha256.len() != 32 {
            return Err(MediaError::field("sha256", "must be a 32-byte SHA-256 digest"));
        }
        let row = self.live_upload(&user_id, &req.id).await?;
        let offset = u64::try_from(row.upload_offset).unwrap_or(0);
        let length = u64::try_from(row.upload_length).unwrap_or(0);
        if req.offset != offset {
            return Err(MediaError::OffsetMismatch {
                offset,
                requested: req.offset,
            });
        }
        if offset.saturating_add(chunk) > length {
            return Err(MediaError::ChunkTooLarge { offset, length, chunk });
        }
        if !req.sha256.is_empty() && Sha256::digest(&req.content).as_slice() != req.sha256.as_ref() {
            metrics::counter!("portico_media_tus_checksum_mismatches_total").increment(1);
            return Err(MediaError::ChecksumMismatch);
        }
        if chunk == 0 {
            // Nothing to store. An upload that is complete but has no media yet (its
            // processing failed on our side) is processed again.
            if offset == length && row.media_id.is_none() {
                let media = self.complete(&user_id, &row).await?;
                return self.append_response(&user_id, &row.id, Some(media)).await;
            }
            return Ok(pb::AppendUploadResponse {
                state: Some(upload_to_proto(&row)),
                media: None,
            });
        }

        // The chunk is written under a key of its own, then claimed by moving the offset in one
        // conditional UPDATE: of two appends at the same offset exactly one moves it, and the
        // other deletes its object and answers 409.
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let chunk_row = ChunkRow {
            upload_id: row.id.clone(),
            chunk_offset: row.upload_offset,
            chunk_length: i64::try_from(chunk).unwrap_or(i64::MAX),
            object_key: domain::chunk_key(&row.id, offset, &attempt),
        };
        self.objects.put(&chunk_row.object_key, req.content).await?;
        let claim = chunk_row.clone();
        let expected = row.upload_offset;
        let advanced = self
            .db
            .write(move |conn| Ok::<_, MediaError>(UploadRow::advance(conn, &claim, expected, now_ms())?))
            .await;
        match advanced {
            Ok(true) => {}
            Ok(false) => {
                self.forget_chunk(&chunk_row.object_key).await;
                metrics::counter!("portico_media_tus_offset_conflicts_total").increment(1);
                // Report where the upload is now (or that it is gone).
                let current = self.live_upload(&user_id, &row.id).await?;
                return Err(MediaError::OffsetMismatch {
                    offset: u64::try_from(current.upload_offset).unwrap_or(0),
                    requested: req.offset,
                });
            }
            Err(e) => {
                self.forget_chunk(&chunk_row.object_key).await;
                return Err(e);
            }
        }
        metrics::counter!("portico_media_tus_bytes_total").increment(chunk);
        if offset + chunk < length {
            return self.append_response(&user_id, &row.id, None).await;
        }
        let done = UploadRow {
            upload_offset: row.upload_length,
            ..row
        };
        let media = self.complete(&user_id, &done).await?;
        self.append_response(&user_id, &done.id, Some(media)).await
    }

    async fn append_response(
        &self,
        user_id: &str,
        upload_id: &str,
        media: Option<pb::Media>,
    ) -> Result<pb::AppendUploadResponse, MediaError> {
        let (uid, id) = (user_id.to_string(), upload_id.to_string());
        let row = self
            .db
            .run(move |conn| Ok::<_, MediaError>(UploadRow::find(conn, &uid, &id)?))
            .await?
            .ok_or(MediaError::NotFound("upload"))?;
        Ok(pb::AppendUploadResponse {
            state: Some(upload_to_proto(&row)),
            media,
        })
    }

    async fn forget_chunk(&self, key: &str) {
        if let Err(e) = self.objects.delete_all(vec![key.to_string()]).await {
            tracing::warn!(error = %e, key, "could not delete an unclaimed chunk; cleanup will");
        }
    }

    /// Joins a complete upload's chunks and processes them like an Upload. A refused image
    /// ends the upload (its chunks are deleted: retrying cannot help); a failure on our side
    /// keeps it, so an empty append at the final offset retries.
    async fn complete(&self, user_id: &str, upload: &UploadRow) -> Result<pb::Media, MediaError> {
        let id = upload.id.clone();
        let chunks = self
            .db
            .run(move |conn| Ok::<_, MediaError>(UploadRow::chunks(conn, &id)?))
            .await?;
        let length = usize::try_from(upload.upload_length).unwrap_or(0);
        let mut content = Vec::with_capacity(length);
        for c in &chunks {
            if usize::try_from(c.chunk_offset).ok() != Some(content.len()) {
                return Err(MediaError::Task(format!(
                    "upload {} has a gap at {}",
                    upload.id,
                    content.len()
                )));
            }
            let bytes = self.objects.get(&c.object_key).await?;
            content.extend_from_slice(&bytes);
        }
        if content.len() != length {
            return Err(MediaError::Task(format!(
                "upload {} holds {} of {length} bytes",
                upload.id,
                content.len()
            )));
        }
        let metadata: HashMap<String, String> = serde_json::from_str(&upload.metadata).unwrap_or_default();
        let filename = ["filename", "name"]
            .iter()
            .find_map(|k| metadata.get(*k))
            .map(|f| f.trim().chars().take(255).collect::<String>())
            .filter(|f| !f.is_empty());
        let chunk_keys: Vec<String> = chunks.into_iter().map(|c| c.object_key).collect();
        let media = match self.ingest(user_id, Bytes::from(content), filename).await {
            Ok(media) => media,
            Err(e) if e.is_client_error() => {
                let id = upload.id.clone();
                self.db
                    .write(move |conn| Ok::<_, MediaError>(UploadRow::delete(conn, &id)?))
                    .await?;
                if let Err(err) = self.objects.delete_prefix(&domain::upload_prefix(&upload.id)).await {
                    tracing::warn!(error = %err, upload_id = %upload.id, "could not delete a refused upload's chunks");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let (id, media_id) = (upload.id.clone(), media.id.clone());
        let won = self
            .db
            .write(move |conn| Ok::<_, MediaError>(UploadRow::complete(conn, &id, &media_id)?))
            .await?;
        if !won {
            // A concurrent completion of the same upload won: keep its media, drop ours.
            self.discard(user_id, &media.id).await;
            let (uid, id) = (user_id.to_string(), upload.id.clone());
            let winner = self
                .db
                .run(move |conn| Ok::<_, MediaError>(UploadRow::find(conn, &uid, &id)?))
                .await?
                .and_then(|u| u.media_id)
                .ok_or(MediaError::NotFound("upload"))?;
            return self
                .get_media(pb::GetMediaRequest {
                    user_id: user_id.to_string(),
                    id: winner,
                })
                .await;
        }
        if let Err(e) = self.objects.delete_all(chunk_keys).await {
            tracing::warn!(error = %e, upload_id = %upload.id, "could not delete a finished upload's chunks; cleanup will");
        }
        metrics::counter!("portico_media_tus_completed_total").increment(1);
        Ok(media)
    }

    async fn delete_upload(&self, req: pb::DeleteUploadRequest) -> Result<pb::DeleteUploadResponse, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let id = domain::parse_id(&req.id).ok_or(MediaError::NotFound("upload"))?;
        let (uid, uplid) = (user_id, id.clone());
        let deleted = self
            .db
            .write(move |conn| {
                if UploadRow::find(conn, &uid, &uplid)?.is_none() {
                    return Ok::<_, MediaError>(false);
                }
                Ok(UploadRow::delete(conn, &uplid)?)
            })
            .await?;
        if !deleted {
            return Err(MediaError::NotFound("upload"));
        }
        if let Err(e) = self.objects.delete_prefix(&domain::upload_prefix(&id)).await {
            tracing::warn!(error = %e, upload_id = %id, "could not delete a terminated upload's chunks; cleanup will");
        }
        Ok(pb::DeleteUploadResponse {})
    }

    async fn record_events(&self, req: pb::RecordEventsRequest) -> Result<pb::RecordEventsResponse, MediaError> {
        let user_id = require_user(&req.user_id)?;
        let events = domain::validate_events(&req.events, now_ms()).map_err(MediaError::Invalid)?;
        let accepted = u32::try_from(events.len()).unwrap_or(u32::MAX);
        // One row per distinct bucket of the batch: the database adds them to stored counts.
        let mut sums: HashMap<BucketKey, (i32, i32)> = HashMap::new();
        for e in events {
            let key = (
                e.hour,
                e.event_type,
                e.connection,
                e.device,
                sketch::bucket_of(e.duration_ms),
            );
            let entry = sums.entry(key).or_default();
            entry.0 += 1;
            entry.1 += i32::from(e.success);
        }
        let rows: Vec<PerfBucket> = sums
            .into_iter()
            .map(
                |((hour, event_type, connection, device, bucket), (events, successes))| PerfBucket {
                    user_id: user_id.clone(),
                    hour,
                    event_type: event_type.to_string(),
                    connection: connection.to_string(),
                    device,
                    bucket,
                    events,
                    successes,
                },
            )
            .collect();
        let mut attempts = 0;
        loop {
            let batch = rows.clone();
            match self
                .db
                .write(move |conn| Ok::<_, MediaError>(store::add_buckets(conn, &batch)?))
                .await
            {
                // A concurrent batch created one of the same new buckets first (PostgreSQL);
                // the whole batch was rolled back, and now finds that row to update.
                Err(MediaError::Db(e)) if e.is_unique_violation() && attempts < 3 => attempts += 1,
                other => {
                    other?;
                    break;
                }
            }
        }
        metrics::counter!("portico_media_client_events_total").increment(u64::from(accepted));
        Ok(pb::RecordEventsResponse { accepted })
    }

    async fn performance(&self, req: pb::GetPerformanceRequest) -> Result<pb::PerformanceReport, MediaError> {
        let mut problems = Vec::new();
        let user_id = match req.user_id.trim() {
            "" => None,
            id if domain::valid_user_id(id) => Some(id.to_string()),
            _ => {
                problems.push(("userId".to_string(), "is not a user id".to_string()));
                None
            }
        };
        let range = domain::report_range(req.from_ms, req.to_ms, now_ms());
        if let Err(p) = &range {
            problems.extend(p.iter().cloned());
        }
        let group_by = match pb::GroupBy::try_from(req.group_by) {
            Ok(pb::GroupBy::Unspecified | pb::GroupBy::Connection) => Dimension::Connection,
            Ok(pb::GroupBy::Device) => Dimension::Device,
            Err(_) => {
                problems.push(("groupBy".to_string(), "must be connection or device".to_string()));
                Dimension::Connection
            }
        };
        let event_type = match req.r#type.trim() {
            "" => None,
            t => match domain::EVENT_TYPES.into_iter().find(|x| *x == t) {
                Some(t) => Some(t.to_string()),
                None => {
                    problems.push(("type".to_string(), "must be upload, screen or api".to_string()));
                    None
                }
            },
        };
        let (from_hour, to_hour) = match range {
            Ok(r) if problems.is_empty() => r,
            _ => return Err(MediaError::Invalid(problems)),
        };
        let query = PerfQuery {
            user_id,
            from_hour,
            to_hour,
            event_type,
            group_by,
        };
        let sums = self
            .db
            .run(move |conn| Ok::<_, MediaError>(store::bucket_sums(conn, &query)?))
            .await?;
        Ok(pb::PerformanceReport {
            groups: report_groups(sums, group_by),
        })
    }

    /// Erases everything stored about a user (account deletion, served as `Ops/EraseUser`):
    /// every media item in any status with its original (which holds the GPS data) and all
    /// variants, every tus upload with its chunks, and the user's performance histogram rows
    /// — rows and objects. Returns how many rows and objects went; erasing again removes
    /// nothing and answers 0.
    ///
    /// Crash-safe because every step is an idempotent delete and the order leaves a retry
    /// (the gateway retries until it succeeds) something to find:
    /// 1. Chunk objects first, then rows: chunks are keyed by upload id alone, so the upload
    ///    rows are the only link from the user to them. A crash after step 1 leaves the rows;
    ///    the retry deletes the (already missing) chunks again, then the rows.
    /// 2. All rows in one write transaction, media included: readers go from the whole item to
    ///    NOT_FOUND in one commit, never to a row whose bytes are gone.
    /// 3. Media objects last, by the user's prefix `media/<user>/`, which needs no rows: a
    ///    crash after step 2 is finished by the retry listing the prefix, and without a retry
    ///    the cleanup job removes them as objects no row names after [`PENDING_GRACE_MS`].
    ///
    /// An upload in flight meanwhile cannot resurrect an erased item: `ingest` finds its
    /// pending row gone when it marks it ready and discards its objects, and an append whose
    /// chunk row went with the upload leaves a stray chunk the cleanup job removes. (The
    /// gateway revokes the account before erasing, so no new calls arrive.)
    pub async fn erase_user(&self, user_id: &str) -> Result<u64, MediaError> {
        let user_id = user_id.trim().to_string();
        if !domain::valid_user_id(&user_id) {
            // Every call that stores something checks the id the same way: nothing to erase.
            return Ok(0);
        }
        let mut removed = 0u64;
        let uid = user_id.clone();
        let uploads = self
            .db
            .run(move |conn| Ok::<_, MediaError>(UploadRow::ids_of_user(conn, &uid)?))
            .await?;
        for id in uploads {
            removed += self.delete_objects_under(&domain::upload_prefix(&id)).await?;
        }
        let uid = user_id.clone();
        removed += self
            .db
            .write(move |conn| {
                let effects = crate::effects::store::erase_user_rows(conn, &uid)?;
                Ok::<_, MediaError>(store::erase_user_rows(conn, &uid)? + effects)
            })
            .await?;
        removed += self.delete_objects_under(&domain::user_media_prefix(&user_id)).await?;
        metrics::counter!("portico_media_erasures_total").increment(1);
        tracing::info!(removed, "erased a user's media");
        Ok(removed)
    }

    /// Deletes every object under `prefix`; returns how many there were.
    async fn delete_objects_under(&self, prefix: &str) -> Result<u64, MediaError> {
        let keys: Vec<String> = self.objects.list(prefix).await?.into_iter().map(|o| o.key).collect();
        let n = keys.len() as u64;
        if n > 0 {
            self.objects.delete_all(keys).await?;
        }
        Ok(n)
    }

    /// Removes what crashes, expiries and failed deletes leave behind, as of `now`: pending
    /// media older than [`PENDING_GRACE_MS`] with their objects, expired uploads with their
    /// chunks, objects under `media/` and `uploads/` that no row names (once older than the
    /// same grace, so an upload in flight is never touched), and histograms past retention.
    /// Safe to run on several replicas at once: every step is an idempotent delete.
    pub async fn cleanup(&self, now: i64) -> Result<CleanupReport, MediaError> {
        let mut report = CleanupReport::default();
        let cutoff = now - PENDING_GRACE_MS;

        let pending = self
            .db
            .run(move |conn| Ok::<_, MediaError>(MediaRow::pending_before(conn, cutoff, CLEANUP_BATCH)?))
            .await?;
        for (id, user_id) in pending {
            self.objects.delete_prefix(&domain::media_prefix(&user_id, &id)).await?;
            let mid = id.clone();
            self.db
                .write(move |conn| Ok::<_, MediaError>(MediaRow::delete_any(conn, &mid)?))
                .await?;
            tracing::info!(media_id = %id, "removed media left pending by a crash");
            report.pending_media += 1;
        }

        let expired = self
            .db
            .run(move |conn| Ok::<_, MediaError>(UploadRow::expired(conn, now, CLEANUP_BATCH)?))
            .await?;
        for id in expired {
            self.objects.delete_prefix(&domain::upload_prefix(&id)).await?;
            let uid = id.clone();
            self.db
                .write(move |conn| Ok::<_, MediaError>(UploadRow::delete(conn, &uid)?))
                .await?;
            report.expired_uploads += 1;
        }

        report.stray_objects += self.stray_media(cutoff).await?;
        report.stray_objects += self.stray_chunks(cutoff).await?;

        let retention = now - PERF_RETENTION_MS;
        report.perf_rows = self
            .db
            .write(move |conn| Ok::<_, MediaError>(store::prune_buckets(conn, retention)?))
            .await?;
        Ok(report)
    }

    async fn stray_media(&self, cutoff: i64) -> Result<usize, MediaError> {
        let old: Vec<_> = self
            .objects
            .list("media")
            .await?
            .into_iter()
            .filter(|o| o.modified_ms < cutoff)
            .collect();
        let ids: Vec<String> = old
            .iter()
            .filter_map(|o| domain::media_id_of_key(&o.key))
            .collect::<HashSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        let mut known = HashSet::new();
        for batch in ids.chunks(ID_BATCH) {
            let batch = batch.to_vec();
            let found = self
                .db
                .run(move |conn| Ok::<_, MediaError>(MediaRow::existing(conn, &batch)?))
                .await?;
            known.extend(found);
        }
        let strays: Vec<String> = old
            .into_iter()
            .filter(|o| domain::media_id_of_key(&o.key).is_none_or(|id| !known.contains(id)))
            .map(|o| o.key)
            .collect();
        let n = strays.len();
        if n > 0 {
            tracing::info!(objects = n, "removing media objects no row names");
            self.objects.delete_all(strays).await?;
        }
        Ok(n)
    }

    async fn stray_chunks(&self, cutoff: i64) -> Result<usize, MediaError> {
        let old: Vec<String> = self
            .objects
            .list("uploads")
            .await?
            .into_iter()
            .filter(|o| o.modified_ms < cutoff)
            .map(|o| o.key)
            .collect();
        let mut known = HashSet::new();
        for batch in old.chunks(ID_BATCH) {
            let batch = batch.to_vec();
            let found = self
                .db
                .run(move |conn| Ok::<_, MediaError>(UploadRow::known_chunks(conn, &batch)?))
                .await?;
            known.extend(found);
        }
        let strays: Vec<String> = old.into_iter().filter(|k| !known.contains(k)).collect();
        let n = strays.len();
        if n > 0 {
            tracing::info!(objects = n, "removing upload chunks no row names");
            self.objects.delete_all(strays).await?;
        }
        Ok(n)
    }
}

/// Percentiles, count and success rate per group from summed bucket counts.
fn report_groups(sums: Vec<(String, i32, i64, i64)>, group_by: Dimension) -> Vec<pb::PerformanceGroup> {
    let mut groups: BTreeMap<String, (Vec<(i32, u64)>, u64)> = BTreeMap::new();
    for (key, bucket, events, successes) in sums {
        let g = groups.entry(key).or_default();
        g.0.push((bucket, u64::try_from(events).unwrap_or(0)));
        g.1 += u64::try_from(successes).unwrap_or(0);
    }
    let mut out: Vec<pb::PerformanceGroup> = groups
        .into_iter()
        .filter_map(|(key, (buckets, successes))| {
            let h = Histogram::new(buckets);
            let count = h.count();
            (count > 0).then(|| pb::PerformanceGroup {
                key,
                count,
                success_rate: successes as f64 / count as f64,
                p50_ms: h.quantile(0.50),
                p95_ms: h.quantile(0.95),
                p99_ms: h.quantile(0.99),
            })
        })
        .collect();
    if group_by == Dimension::Connection {
        // Slowest network first, unreported last.
        let rank = |k: &str| {
            Network::ALL
                .iter()
                .position(|n| n.as_str() == k)
                .unwrap_or(Network::ALL.len())
        };
        out.sort_by_key(|g| rank(&g.key));
    }
    out
}

pub(crate) fn require_user(user_id: &str) -> Result<String, MediaError> {
    let user_id = user_id.trim();
    if user_id.is_empty() {
        return Err(MediaError::field("userId", "is required"));
    }
    if !domain::valid_user_id(user_id) {
        return Err(MediaError::field("userId", "is not a user id"));
    }
    Ok(user_id.to_string())
}

fn format_rank(format: &str) -> usize {
    match format {
        "jpeg" => 0,
        _ => 1,
    }
}

fn media_to_proto(row: &MediaRow, mut variants: Vec<VariantRow>) -> pb::Media {
    variants.sort_by_key(|v| {
        (
            VARIANTS.iter().position(|s| s.name == v.name).unwrap_or(VARIANTS.len()),
            format_rank(&v.format),
        )
    });
    let original_bytes = u64::try_from(row.original_bytes).unwrap_or(0);
    let large_jpeg = variants
        .iter()
        .find(|v| v.name == "large" && v.format == "jpeg")
        .map(|v| u64::try_from(v.bytes).unwrap_or(0))
        .unwrap_or(original_bytes);
    pb::Media {
        id: row.id.clone(),
        original: Some(pb::Original {
            bytes: original_bytes,
            width: u32::try_from(row.original_width).unwrap_or(0),
            height: u32::try_from(row.original_height).unwrap_or(0),
            format: row.original_format.clone(),
        }),
        variants: variants
            .into_iter()
            .map(|v| pb::Variant {
                name: v.name,
                format: v.format,
                width: u32::try_from(v.width).unwrap_or(0),
                height: u32::try_from(v.height).unwrap_or(0),
                bytes: u64::try_from(v.bytes).unwrap_or(0),
                etag: v.etag,
            })
            .collect(),
        compression_ratio: domain::compression_ratio(large_jpeg, original_bytes),
        estimated_upload_ms: domain::upload_estimates(large_jpeg),
        processing_ms: u64::try_from(row.processing_ms).unwrap_or(0),
        created_at_ms: row.created_at,
    }
}

fn upload_to_proto(row: &UploadRow) -> pb::UploadState {
    pb::UploadState {
        id: row.id.clone(),
        offset: u64::try_from(row.upload_offset).unwrap_or(0),
        length: u64::try_from(row.upload_length).unwrap_or(0),
        expires_at_ms: row.expires_at,
        metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
        media_id: row.media_id.clone(),
    }
}

/// Implements `MediaService` by routing each RPC through [`grpc::handle`] to a method.
macro_rules! media_rpcs {
    ($($name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr;)*) => {
        #[tonic::async_trait]
        impl MediaService for MediaApp {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

media_rpcs! {
    get_upload_config, "GetUploadConfig", pb::GetUploadConfigRequest => pb::UploadConfig, |app, m| async { app.upload_config(m) };
    upload, "Upload", pb::UploadRequest => pb::Media, |app, m| app.upload(m);
    get_media, "GetMedia", pb::GetMediaRequest => pb::Media, |app, m| app.get_media(m);
    get_variant, "GetVariant", pb::GetVariantRequest => pb::VariantContent, |app, m| app.get_variant(m);
    delete_media, "DeleteMedia", pb::DeleteMediaRequest => pb::DeleteMediaResponse, |app, m| app.delete_media(m);
    create_upload, "CreateUpload", pb::CreateUploadRequest => pb::UploadState, |app, m| app.create_upload(m);
    get_upload, "GetUpload", pb::GetUploadRequest => pb::UploadState, |app, m| app.get_upload(m);
    append_upload, "AppendUpload", pb::AppendUploadRequest => pb::AppendUploadResponse, |app, m| app.append_upload(m);
    delete_upload, "DeleteUpload", pb::DeleteUploadRequest => pb::DeleteUploadResponse, |app, m| app.delete_upload(m);
    record_events, "RecordEvents", pb::RecordEventsRequest => pb::RecordEventsResponse, |app, m| app.record_events(m);
    get_performance, "GetPerformance", pb::GetPerformanceRequest => pb::PerformanceReport, |app, m| app.performance(m);
}

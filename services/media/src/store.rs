//! The media service's tables and the queries on them, written once for both backends.

use diesel::prelude::*;
use portico_runtime::db::DbConnection;

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        media (id) {
            id -> Text,
            user_id -> Text,
            status -> Text,
            filename -> Nullable<Text>,
            original_format -> Text,
            original_bytes -> BigInt,
            original_width -> Integer,
            original_height -> Integer,
            original_key -> Text,
            processing_ms -> BigInt,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        media_variants (media_id, name, format) {
            media_id -> Text,
            name -> Text,
            format -> Text,
            width -> Integer,
            height -> Integer,
            bytes -> BigInt,
            etag -> Text,
            object_key -> Text,
        }
    }

    diesel::table! {
        uploads (id) {
            id -> Text,
            user_id -> Text,
            upload_length -> BigInt,
            upload_offset -> BigInt,
            metadata -> Text,
            media_id -> Nullable<Text>,
            expires_at -> BigInt,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        upload_chunks (upload_id, chunk_offset) {
            upload_id -> Text,
            chunk_offset -> BigInt,
            chunk_length -> BigInt,
            object_key -> Text,
        }
    }

    diesel::table! {
        perf_buckets (user_id, hour, event_type, connection, device, bucket) {
            user_id -> Text,
            hour -> BigInt,
            event_type -> Text,
            connection -> Text,
            device -> Text,
            bucket -> Integer,
            events -> Integer,
            successes -> Integer,
        }
    }

    diesel::joinable!(media_variants -> media (media_id));
    diesel::allow_tables_to_appear_in_same_query!(media, media_variants);
    diesel::allow_tables_to_appear_in_same_query!(uploads, upload_chunks);
}

use schema::{media, media_variants, perf_buckets, upload_chunks, uploads};

/// A media row's status before its objects are all written.
pub const PENDING: &str = "pending";
/// A media row's status once its objects are all written: the only one readers see.
pub const READY: &str = "ready";

/// One uploaded image.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = media)]
pub struct MediaRow {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub filename: Option<String>,
    pub original_format: String,
    pub original_bytes: i64,
    pub original_width: i32,
    pub original_height: i32,
    pub original_key: String,
    pub processing_ms: i64,
    pub created_at: i64,
}

/// One variant of a media item in one format.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = media_variants)]
pub struct VariantRow {
    pub media_id: String,
    pub name: String,
    pub format: String,
    pub width: i32,
    pub height: i32,
    pub bytes: i64,
    pub etag: String,
    pub object_key: String,
}

impl MediaRow {
    /// Records a media item and its variants as pending, before any object is written.
    pub fn insert_pending(&self, variants: &[VariantRow], conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(media::table).values(self).execute(conn)?;
        // One statement per row: batch inserts are not available through the MultiConnection.
        for v in variants {
            diesel::insert_into(media_variants::table).values(v).execute(conn)?;
        }
        Ok(())
    }

    /// Makes a pending item visible, recording how long it took to process and store; false
    /// if it is gone (the cleanup job took it).
    pub fn mark_ready(conn: &mut DbConnection, id: &str, processing_ms: i64) -> QueryResult<bool> {
        let n = diesel::update(media::table.filter(media::id.eq(id)).filter(media::status.eq(PENDING)))
            .set((media::status.eq(READY), media::processing_ms.eq(processing_ms)))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// One of `user_id`'s ready items with its variants; another user's id reads as absent.
    pub fn find(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<(MediaRow, Vec<VariantRow>)>> {
        let Some(row) = media::table
            .filter(media::id.eq(id))
            .filter(media::user_id.eq(user_id))
            .filter(media::status.eq(READY))
            .select(MediaRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let variants = media_variants::table
            .filter(media_variants::media_id.eq(id))
            .select(VariantRow::as_select())
            .load(conn)?;
        Ok(Some((row, variants)))
    }

    /// Deletes one of `user_id`'s ready items with its variants; returns the row, `None` when
    /// there is no such item.
    pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<MediaRow>> {
        let row = media::table
            .filter(media::id.eq(id))
            .filter(media::user_id.eq(user_id))
            .filter(media::status.eq(READY))
            .select(MediaRow::as_select())
            .first(conn)
            .optional()?;
        if row.is_some() {
            Self::delete_any(conn, id)?;
        }
        Ok(row)
    }

    /// Deletes an item in any status with its variants.
    pub fn delete_any(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
        diesel::delete(media_variants::table.filter(media_variants::media_id.eq(id))).execute(conn)?;
        diesel::delete(media::table.filter(media::id.eq(id))).execute(conn)?;
        Ok(())
    }

    /// Items still pending that were created before `cutoff`: left behind by a crash.
    pub fn pending_before(conn: &mut DbConnection, cutoff: i64, limit: i64) -> QueryResult<Vec<(String, String)>> {
        media::table
            .filter(media::status.eq(PENDING))
            .filter(media::created_at.lt(cutoff))
            .select((media::id, media::user_id))
            .limit(limit)
            .load(conn)
    }

    /// Which of `ids` have a row (in any status).
    pub fn existing(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<String>> {
        media::table.filter(media::id.eq_any(ids)).select(media::id).load(conn)
    }
}

impl VariantRow {
    /// One variant of one of `user_id`'s ready items.
    pub fn find(
        conn: &mut DbConnection,
        user_id: &str,
        media_id: &str,
        name: &str,
        format: &str,
    ) -> QueryResult<Option<VariantRow>> {
        media_variants::table
            .inner_join(media::table)
            .filter(media::id.eq(media_id))
            .filter(media::user_id.eq(user_id))
            .filter(media::status.eq(READY))
            .filter(media_variants::name.eq(name))
            .filter(media_variants::format.eq(format))
            .select(VariantRow::as_select())
            .first(conn)
            .optional()
    }
}

/// A tus upload.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = uploads)]
pub struct UploadRow {
    pub id: String,
    pub user_id: String,
    pub upload_length: i64,
    pub upload_offset: i64,
    /// Upload-Metadata as a JSON object of strings.
    pub metadata: String,
    pub media_id: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// One appended chunk of an upload.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq)]
#[diesel(table_name = upload_chunks)]
pub struct ChunkRow {
    pub upload_id: String,
    pub chunk_offset: i64,
    pub chunk_length: i64,
    pub object_key: String,
}

impl UploadRow {
    /// Records a new upload.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(uploads::table)
            .values(self)
            .execute(conn)
            .map(|_| ())
    }

    /// One of `user_id`'s uploads (expired ones included); another user's id reads as absent.
    pub fn find(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<UploadRow>> {
        uploads::table
            .filter(uploads::id.eq(id))
            .filter(uploads::user_id.eq(user_id))
            .select(UploadRow::as_select())
            .first(conn)
            .optional()
    }

    /// Moves the offset from `expected` past `chunk` and records the chunk, if the offset is
    /// still `expected` and the upload has not expired by `now`. False when another append got
    /// there first (or the upload expired or went away): the caller's chunk is not part of the
    /// upload. Call inside a write transaction.
    pub fn advance(conn: &mut DbConnection, chunk: &ChunkRow, expected: i64, now: i64) -> QueryResult<bool> {
        let n = diesel::update(
            uploads::table
                .filter(uploads::id.eq(&chunk.upload_id))
                .filter(uploads::upload_offset.eq(expected))
                .filter(uploads::expires_at.gt(now)),
        )
        .set(uploads::upload_offset.eq(expected + chunk.chunk_length))
        .execute(conn)?;
        if n != 1 {
            return Ok(false);
        }
        diesel::insert_into(upload_chunks::table).values(chunk).execute(conn)?;
        Ok(true)
    }

    /// The upload's chunks in offset order.
    pub fn chunks(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<ChunkRow>> {
        upload_chunks::table
            .filter(upload_chunks::upload_id.eq(id))
            .order(upload_chunks::chunk_offset.asc())
            .select(ChunkRow::as_select())
            .load(conn)
    }

    /// Records the media a complete upload became and forgets its chunks; false when the
    /// upload already has one (a concurrent completion won) or is gone.
    pub fn complete(conn: &mut DbConnection, id: &str, media_id: &str) -> QueryResult<bool> {
        let n = diesel::update(
            uploads::table
                .filter(uploads::id.eq(id))
                .filter(uploads::media_id.is_null()),
        )
        .set(uploads::media_id.eq(media_id))
        .execute(conn)?;
        if n == 1 {
            diesel::delete(upload_chunks::table.filter(upload_chunks::upload_id.eq(id))).execute(conn)?;
        }
        Ok(n == 1)
    }

    /// Deletes an upload and its chunk rows; false when there was none.
    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        diesel::delete(upload_chunks::table.filter(upload_chunks::upload_id.eq(id))).execute(conn)?;
        let n = diesel::delete(uploads::table.filter(uploads::id.eq(id))).execute(conn)?;
        Ok(n == 1)
    }

    /// Uploads that expired before `now`.
    pub fn expired(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<String>> {
        uploads::table
            .filter(uploads::expires_at.le(now))
            .select(uploads::id)
            .limit(limit)
            .load(conn)
    }

    /// The ids of `user_id`'s uploads, in any state (expired and completed ones included).
    pub fn ids_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
        uploads::table
            .filter(uploads::user_id.eq(user_id))
            .select(uploads::id)
            .load(conn)
    }

    /// Which of `keys` are chunks of some upload.
    pub fn known_chunks(conn: &mut DbConnection, keys: &[String]) -> QueryResult<Vec<String>> {
        upload_chunks::table
            .filter(upload_chunks::object_key.eq_any(keys))
            .select(upload_chunks::object_key)
            .load(conn)
    }
}

/// Deletes every row about `user_id` (account erasure): their media in any status with all
/// variants, their tus uploads with their chunk rows, and their performance histogram rows
/// (which carry the user id, so they are personal data, not anonymous aggregates: reports can
/// be asked for one user). Returns the rows removed. Call inside a write transaction so the
/// rows go together; the objects they name are the caller's to delete (see
/// `MediaApp::erase_user` for the order).
pub fn erase_user_rows(conn: &mut DbConnection, user_id: &str) -> QueryResult<u64> {
    let user_uploads = uploads::table.filter(uploads::user_id.eq(user_id)).select(uploads::id);
    let chunks =
        diesel::delete(upload_chunks::table.filter(upload_chunks::upload_id.eq_any(user_uploads))).execute(conn)?;
    let uploads = diesel::delete(uploads::table.filter(uploads::user_id.eq(user_id))).execute(conn)?;
    let user_media = media::table.filter(media::user_id.eq(user_id)).select(media::id);
    let variants =
        diesel::delete(media_variants::table.filter(media_variants::media_id.eq_any(user_media))).execute(conn)?;
    let media = diesel::delete(media::table.filter(media::user_id.eq(user_id))).execute(conn)?;
    let perf = diesel::delete(perf_buckets::table.filter(perf_buckets::user_id.eq(user_id))).execute(conn)?;
    Ok((chunks + uploads + variants + media + perf) as u64)
}

/// Events and successes of one histogram bucket.
#[derive(Clone, Debug, Insertable, PartialEq)]
#[diesel(table_name = perf_buckets)]
pub struct PerfBucket {
    pub user_id: String,
    pub hour: i64,
    pub event_type: String,
    pub connection: String,
    pub device: String,
    pub bucket: i32,
    pub events: i32,
    pub successes: i32,
}

/// Adds a batch's bucket counts to the stored ones inside the caller's write transaction:
/// per bucket an `UPDATE … SET events = events + n`, and an INSERT where no row exists yet, so
/// counts are summed by the database and never read into Rust. (`ON CONFLICT` is not available
/// through the MultiConnection.) Two PostgreSQL transactions inserting the same new bucket at
/// once make one fail on the primary key; the caller retries the batch, whose UPDATE then finds
/// the row.
pub fn add_buckets(conn: &mut DbConnection, rows: &[PerfBucket]) -> QueryResult<()> {
    for row in rows {
        let updated = diesel::update(
            perf_buckets::table
                .filter(perf_buckets::user_id.eq(&row.user_id))
                .filter(perf_buckets::hour.eq(row.hour))
                .filter(perf_buckets::event_type.eq(&row.event_type))
                .filter(perf_buckets::connection.eq(&row.connection))
                .filter(perf_buckets::device.eq(&row.device))
                .filter(perf_buckets::bucket.eq(row.bucket)),
        )
        .set((
            perf_buckets::events.eq(perf_buckets::events + row.events),
            perf_buckets::successes.eq(perf_buckets::successes + row.successes),
        ))
        .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(perf_buckets::table).values(row).execute(conn)?;
        }
    }
    Ok(())
}

/// Dimension a performance report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Connection,
    Device,
}

/// What a performance report reads: hours in `[from_hour, to_hour)`, one user's or everyone's
/// events, of one type or all.
#[derive(Clone, Debug)]
pub struct PerfQuery {
    pub user_id: Option<String>,
    pub from_hour: i64,
    pub to_hour: i64,
    pub event_type: Option<String>,
    pub group_by: Dimension,
}

/// Summed `(group key, bucket, events, successes)` for `query`: the summing and grouping are
/// done by the database, so a report reads one row per group and bucket, however many events
/// were recorded.
pub fn bucket_sums(conn: &mut DbConnection, query: &PerfQuery) -> QueryResult<Vec<(String, i32, i64, i64)>> {
    use diesel::dsl::sum;
    macro_rules! grouped {
        ($key:expr) => {{
            let mut q = perf_buckets::table
                .filter(perf_buckets::hour.ge(query.from_hour))
                .filter(perf_buckets::hour.lt(query.to_hour))
                .group_by(($key, perf_buckets::bucket))
                .select((
                    $key,
                    perf_buckets::bucket,
                    sum(perf_buckets::events),
                    sum(perf_buckets::successes),
                ))
                .into_boxed();
            if let Some(user_id) = &query.user_id {
                q = q.filter(perf_buckets::user_id.eq(user_id.clone()));
            }
            if let Some(event_type) = &query.event_type {
                q = q.filter(perf_buckets::event_type.eq(event_type.clone()));
            }
            q.load::<(String, i32, Option<i64>, Option<i64>)>(conn)?
        }};
    }
    let rows = match query.group_by {
        Dimension::Connection => grouped!(perf_buckets::connection),
        Dimension::Device => grouped!(perf_buckets::device),
    };
    Ok(rows
        .into_iter()
        .map(|(key, bucket, events, successes)| (key, bucket, events.unwrap_or(0), successes.unwrap_or(0)))
        .collect())
}

/// Deletes histogram rows of hours before `cutoff`.
pub fn prune_buckets(conn: &mut DbConnection, cutoff: i64) -> QueryResult<usize> {
    diesel::delete(perf_buckets::table.filter(perf_buckets::hour.lt(cutoff))).execute(conn)
}

-- Timestamps are Unix milliseconds on both backends.
-- Ids are UUIDv7 text: ordering by id is ordering by creation time.

-- One uploaded image. A row is inserted as 'pending' before its objects are written and turns
-- 'ready' in one update once they all are; readers only ever see 'ready' rows, and the cleanup
-- job removes pending rows (and their objects) left behind by a crash.
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready')),
    filename TEXT,
    original_format TEXT NOT NULL,
    original_bytes BIGINT NOT NULL CHECK (original_bytes >= 0),
    original_width INTEGER NOT NULL CHECK (original_width > 0),
    original_height INTEGER NOT NULL CHECK (original_height > 0),
    original_key TEXT NOT NULL,
    processing_ms BIGINT NOT NULL CHECK (processing_ms >= 0),
    created_at BIGINT NOT NULL
);
CREATE INDEX media_user_id ON media (user_id, id);
CREATE INDEX media_pending ON media (status, created_at);

-- Each variant of a media item in each format.
CREATE TABLE media_variants (
    media_id TEXT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    -- Quoted hex SHA-256 of the bytes: the strong ETag.
    etag TEXT NOT NULL,
    object_key TEXT NOT NULL,
    PRIMARY KEY (media_id, name, format)
);

-- tus resumable uploads. upload_offset only ever moves forward, by a conditional UPDATE
-- (WHERE upload_offset = the offset the client sent), so two appends at one offset cannot
-- both land.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    upload_length BIGINT NOT NULL CHECK (upload_length > 0),
    upload_offset BIGINT NOT NULL CHECK (upload_offset >= 0 AND upload_offset <= upload_length),
    -- Upload-Metadata as a JSON object of strings.
    metadata TEXT NOT NULL,
    media_id TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX uploads_expires_at ON uploads (expires_at);

-- The chunks that make up an upload, in offset order. A chunk object not listed here (the
-- loser of a race, a crash before the row) is a stray the cleanup job removes.
CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    chunk_offset BIGINT NOT NULL CHECK (chunk_offset >= 0),
    chunk_length BIGINT NOT NULL CHECK (chunk_length > 0),
    object_key TEXT NOT NULL,
    PRIMARY KEY (upload_id, chunk_offset)
);

-- Client performance events as log-bucketed histograms (see src/sketch.rs): one row per user,
-- clock hour, event type, connection, device and bucket, counting events and successes.
CREATE TABLE perf_buckets (
    user_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    connection TEXT NOT NULL,
    device TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    events INTEGER NOT NULL CHECK (events >= 0),
    successes INTEGER NOT NULL CHECK (successes >= 0 AND successes <= events),
    PRIMARY KEY (user_id, hour, event_type, connection, device, bucket)
);
CREATE INDEX perf_buckets_hour ON perf_buckets (hour);

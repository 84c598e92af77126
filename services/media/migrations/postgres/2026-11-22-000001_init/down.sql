DROP TABLE perf_buckets;
DROP TABLE upload_chunks;
DROP TABLE uploads;
DROP TABLE media_variants;
DROP TABLE media;

//! Object storage through the `object_store` crate: a local directory by default, any
//! S3-compatible store in production. Keys are `/`-separated paths (see `domain`).

use std::{path::Path as FsPath, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, local::LocalFileSystem, path::Path};

/// Objects written or deleted at once by one call.
const CONCURRENCY: usize = 8;

/// Where objects go.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageConfig {
    /// A directory on local disk.
    Local(std::path::PathBuf),
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket (AWS, MinIO, R2, …).
#[derive(Clone, Debug, PartialEq)]
pub struct S3Config {
    /// `PORTICO_S3_BUCKET`.
    pub bucket: String,
    /// `PORTICO_S3_ENDPOINT`: for stores other than AWS (path-style requests are used).
    pub endpoint: Option<String>,
    /// `PORTICO_S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `PORTICO_S3_ACCESS_KEY_ID`; with the secret, else the AWS environment and instance
    /// credentials apply.
    pub access_key_id: Option<String>,
    /// `PORTICO_S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<portico_runtime::config::Secret<String>>,
    /// `PORTICO_S3_ALLOW_HTTP` (default false): plain-HTTP endpoints, for a local MinIO.
    pub allow_http: bool,
}

/// A listed object.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Last write, Unix ms.
    pub modified_ms: i64,
}

/// The media service's object store.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl Objects {
    /// Opens the store `config` names (a local directory is created if missing).
    pub fn open(config: &StorageConfig) -> Result<Objects, String> {
        let store: Arc<dyn ObjectStore> = match config {
            StorageConfig::Local(dir) => Arc::new(local(dir)?),
            StorageConfig::S3(s3) => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret.expose());
                }
                Arc::new(b.build().map_err(|e| format!("PORTICO_S3_BUCKET: {e}"))?)
            }
        };
        Ok(Objects { store })
    }

    /// The store itself (backups copy its objects).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes one object.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), object_store::Error> {
        self.store
            .put(&Path::from(key), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
    }

    /// Writes several objects concurrently; the first failure is returned (others may have
    /// been written: the caller cleans up by prefix).
    pub async fn put_all(&self, objects: Vec<(String, Bytes)>) -> Result<(), object_store::Error> {
        stream::iter(objects)
            .map(|(key, bytes)| async move { self.put(&key, bytes).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Reads one object.
    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        self.store.get(&Path::from(key)).await?.bytes().await
    }

    /// Deletes objects; missing ones are not an error.
    pub async fn delete_all(&self, keys: Vec<String>) -> Result<(), object_store::Error> {
        stream::iter(keys)
            .map(|key| async move {
                match self.store.delete(&Path::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Every object under `prefix` (a key prefix ending at a `/` boundary).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, object_store::Error> {
        let prefix = Path::from(prefix);
        self.store
            .list(Some(&prefix))
            .map_ok(|meta| Listed {
                key: meta.location.to_string(),
                modified_ms: meta.last_modified.timestamp_millis(),
            })
            .try_collect()
            .await
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), object_store::Error> {
        let keys = self.list(prefix).await?.into_iter().map(|o| o.key).collect();
        self.delete_all(keys).await
    }
}

fn local(dir: &FsPath) -> Result<LocalFileSystem, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("media directory {}: {e}", dir.display()))?;
    LocalFileSystem::new_with_prefix(dir)
        .map(|fs| fs.with_automatic_cleanup(true))
        .map_err(|e| format!("media directory {}: {e}", dir.display()))
}

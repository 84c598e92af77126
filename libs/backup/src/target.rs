//! Where backups go: a directory, or `s3://bucket/prefix` (credentials, region and endpoint
//! from the standard `AWS_*` variables), both through `object_store`. Files stream in and out
//! while their checksum is computed; nothing is held whole in memory.

use std::{path::Path as FsPath, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, buffered::BufWriter, local::LocalFileSystem, path::Path,
    prefix::PrefixStore,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BackupError;

/// A backup location.
#[derive(Clone, Debug)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// As given, for messages.
    pub describe: String,
}

/// A file as it was written or read: size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digested {
    pub bytes: u64,
    pub sha256: String,
}

const CHUNK: usize = 1 << 20;

fn store_err(what: &str) -> impl Fn(object_store::Error) -> BackupError + '_ {
    move |e| BackupError::Target(format!("{what}: {e}"))
}

impl Target {
    /// Opens `spec`: `s3://bucket[/prefix]` or a directory (created if missing).
    pub fn open(spec: &str) -> Result<Target, BackupError> {
        let store: Arc<dyn ObjectStore> = if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BackupError::Target(format!("{spec}: no bucket")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| BackupError::Target(format!("{spec}: {e}")))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            std::fs::create_dir_all(spec).map_err(|e| BackupError::Target(format!("{spec}: {e}")))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(spec)
                    .map_err(|e| BackupError::Target(format!("{spec}: {e}")))?
                    .with_automatic_cleanup(true),
            )
        };
        Ok(Target {
            store,
            describe: spec.to_string(),
        })
    }

    /// Over an already open store (the media service's, for its objects).
    pub fn from_store(store: Arc<dyn ObjectStore>, describe: &str) -> Target {
        Target {
            store,
            describe: describe.to_string(),
        }
    }

    /// Streams a local file to `key`.
    pub async fn put_file(&self, key: &str, file: &FsPath) -> Result<Digested, BackupError> {
        let mut input = tokio::fs::File::open(file)
            .await
            .map_err(|e| BackupError::Io(format!("{}: {e}", file.display())))?;
        let mut out = BufWriter::new(self.store.clone(), Path::from(key));
        let (mut hash, mut bytes) = (Sha256::new(), 0_u64);
        let mut buf = vec![0_u8; CHUNK];
        loop {
            let n = input
                .read(&mut buf)
                .await
                .map_err(|e| BackupError::Io(format!("{}: {e}", file.display())))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            bytes += n as u64;
            out.write_all(&buf[..n])
                .await
                .map_err(|e| BackupError::Target(format!("{key}: {e}")))?;
        }
        out.shutdown()
            .await
            .map_err(|e| BackupError::Target(format!("{key}: {e}")))?;
        Ok(Digested {
            bytes,
            sha256: hex::encode(hash.finalize()),
        })
    }

    /// Streams `key` into a local file.
    pub async fn get_file(&self, key: &str, file: &FsPath) -> Result<Digested, BackupError> {
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| BackupError::Io(format!("{}: {e}", file.display())))?;
        let digested = self.read_through(key, Some(&mut out)).await?;
        out.sync_all()
            .await
            .map_err(|e| BackupError::Io(format!("{}: {e}", file.display())))?;
        Ok(digested)
    }

    /// Size and checksum of `key`, read through.
    pub async fn digest(&self, key: &str) -> Result<Digested, BackupError> {
        self.read_through(key, None).await
    }

    async fn read_through(&self, key: &str, mut out: Option<&mut tokio::fs::File>) -> Result<Digested, BackupError> {
        let mut stream = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(store_err(key))?
            .into_stream();
        let (mut hash, mut bytes) = (Sha256::new(), 0_u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_err(key))?;
            hash.update(&chunk);
            bytes += chunk.len() as u64;
            if let Some(out) = out.as_mut() {
                out.write_all(&chunk)
                    .await
                    .map_err(|e| BackupError::Io(format!("{key}: {e}")))?;
            }
        }
        Ok(Digested {
            bytes,
            sha256: hex::encode(hash.finalize()),
        })
    }

    /// Writes a small object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(store_err(key))
    }

    /// Reads a small object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BackupError> {
        match self.store.get(&Path::from(key)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(store_err(key)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(key)(e)),
        }
    }

    /// Copies `from_key` of `from` to `key` here (an object's bytes pass through memory:
    /// media objects are bounded by the upload cap).
    pub async fn copy_from(&self, from: &Target, from_key: &str, key: &str) -> Result<Digested, BackupError> {
        let bytes = from
            .store
            .get(&Path::from(from_key))
            .await
            .map_err(store_err(from_key))?
            .bytes()
            .await
            .map_err(store_err(from_key))?;
        let digested = Digested {
            bytes: bytes.len() as u64,
            sha256: crate::manifest::sha256_hex(&bytes),
        };
        self.store
            .put(&Path::from(key), PutPayload::from_bytes(bytes))
            .await
            .map_err(store_err(key))?;
        Ok(digested)
    }

    /// Every object under `prefix` with its size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
        self.store
            .list(prefix.as_ref())
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .map_err(store_err("listing"))
    }

    /// The "directories" directly under `prefix`.
    pub async fn children(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from(prefix)))
            .await
            .map_err(store_err(prefix))?;
        Ok(listed
            .common_prefixes
            .into_iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes keys; missing ones are not an error.
    pub async fn delete(&self, keys: Vec<String>) -> Result<(), BackupError> {
        futures_util::stream::iter(keys)
            .map(|key| async move {
                match self.store.delete(&Path::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(store_err(&key)(e)),
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

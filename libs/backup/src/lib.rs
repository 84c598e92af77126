//! Backups of a whole Portico deployment and their restore (`portico backup` / `portico
//! restore`).
//!
//! A backup is `backups/<id>/` in the target: one dump per component's database
//! (`pg_dump --format=custom` for PostgreSQL, `VACUUM INTO` for SQLite), `objects.json` (every
//! media object's key, size and SHA-256), and `manifest.json` with its checksum file
//! `manifest.sha256`, written last: a backup without them is incomplete and never restored.
//! Media objects live once under `objects/` and are shared by backups: each backup copies only
//! the objects the previous one lacks.
//!
//! A restore verifies everything before it touches anything (the manifest against its
//! checksum, every dump and object against theirs, every component named, no migration newer
//! than this build), restores every database beside the live one, and only when all of them
//! restored puts them in place; if one fails, the others are put back. Run it with the
//! services stopped.

pub mod database;
pub mod manifest;
pub mod target;

use std::{collections::HashMap, path::PathBuf};

pub use database::Component;
pub use target::Target;

use crate::manifest::{DatabaseEntry, FORMAT, Manifest, ObjectEntry, ObjectsEntry};

/// What went wrong; every message names the component, file or object at fault.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database: {0}")]
    Database(String),
    #[error("backup target: {0}")]
    Target(String),
    #[error("refused: {0}")]
    Verify(String),
    #[error("{0}")]
    Io(String),
}

/// What is backed up: every component's database, and the media objects.
#[derive(Clone, Debug)]
pub struct Plan {
    pub components: Vec<Component>,
    /// The media service's object store.
    pub media: Option<Target>,
}

/// Which backups are kept after a new one: the newest `keep`, and none older than
/// `max_age_days` (the newest is always kept).
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub keep: usize,
    pub max_age_days: u32,
}

const BACKUPS: &str = "backups";
const OBJECTS: &str = "objects";

fn key(id: &str, file: &str) -> String {
    format!("{BACKUPS}/{id}/{file}")
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(id: &str) -> Result<Scratch, BackupError> {
        let dir = std::env::temp_dir().join(format!("portico-backup-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| BackupError::Io(format!("{}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn new_id() -> String {
    let now = chrono::Utc::now();
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &tail[..6])
}

/// Backs up `plan` to `target`, then applies `retention`: the manifest written.
pub async fn backup(plan: &Plan, target: &Target, retention: Retention) -> Result<Manifest, BackupError> {
    let id = new_id();
    let scratch = Scratch::new(&id)?;
    let mut databases = Vec::new();
    for c in &plan.components {
        let (file, mut entry) = database::dump(c, &scratch.0).await?;
        let digest = target.put_file(&key(&id, &entry.file), &file).await?;
        entry.bytes = digest.bytes;
        entry.sha256 = digest.sha256;
        tracing::info!(component = %c.name, bytes = entry.bytes, "database backed up");
        let _ = tokio::fs::remove_file(&file).await;
        databases.push(entry);
    }
    let objects = match &plan.media {
        Some(media) => Some(copy_objects(media, target, &id).await?),
        None => None,
    };
    let manifest = Manifest {
        format: FORMAT,
        id: id.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        portico: env!("CARGO_PKG_VERSION").to_string(),
        databases,
        objects,
    };
    let (body, sum) = manifest.encode().map_err(|e| BackupError::Io(e.to_string()))?;
    target.put(&key(&id, "manifest.json"), body).await?;
    // The checksum file is the commit point: until it exists the backup is incomplete.
    target.put(&key(&id, "manifest.sha256"), sum.into_bytes()).await?;
    prune(target, retention, &id).await?;
    Ok(manifest)
}

/// Copies the media objects the target lacks (same key and size means copied before).
async fn copy_objects(media: &Target, target: &Target, id: &str) -> Result<ObjectsEntry, BackupError> {
    let previous: HashMap<String, ObjectEntry> = match latest(target).await? {
        Some(m) => load_index(target, &m)
            .await?
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect(),
        None => HashMap::new(),
    };
    let stored: HashMap<String, u64> = target
        .list(OBJECTS)
        .await?
        .into_iter()
        .filter_map(|(k, size)| k.strip_prefix("objects/").map(|k| (k.to_string(), size)))
        .collect();
    let mut index = Vec::new();
    let (mut copied, mut bytes) = (0_u64, 0_u64);
    for (k, size) in media.list("").await? {
        let known = previous
            .get(&k)
            .filter(|p| p.bytes == size && stored.get(&k) == Some(&size));
        let entry = match known {
            Some(p) => p.clone(),
            None => {
                let d = target.copy_from(media, &k, &format!("{OBJECTS}/{k}")).await?;
                copied += 1;
                ObjectEntry {
                    key: k,
                    bytes: d.bytes,
                    sha256: d.sha256,
                }
            }
        };
        bytes += entry.bytes;
        index.push(entry);
    }
    tracing::info!(objects = index.len(), copied, "media objects backed up");
    let body = serde_json::to_vec(&index).map_err(|e| BackupError::Io(e.to_string()))?;
    let index_sha256 = manifest::sha256_hex(&body);
    target.put(&key(id, "objects.json"), body).await?;
    Ok(ObjectsEntry {
        count: index.len() as u64,
        bytes,
        index: "objects.json".into(),
        index_sha256,
    })
}

async fn load_index(target: &Target, m: &Manifest) -> Result<Vec<ObjectEntry>, BackupError> {
    let Some(o) = &m.objects else {
        return Ok(Vec::new());
    };
    let body = target
        .get(&key(&m.id, &o.index))
        .await?
        .ok_or_else(|| BackupError::Verify(format!("{}: {} is missing", m.id, o.index)))?;
    if manifest::sha256_hex(&body) != o.index_sha256 {
        return Err(BackupError::Verify(format!(
            "{}: {} does not match its checksum",
            m.id, o.index
        )));
    }
    let index: Vec<ObjectEntry> =
        serde_json::from_slice(&body).map_err(|e| BackupError::Verify(format!("{}: {e}", o.index)))?;
    if let Some(bad) = index.iter().find(|o| !manifest::safe_key(&o.key)) {
        return Err(BackupError::Verify(format!(
            "object key {:?} leaves the store",
            bad.key
        )));
    }
    Ok(index)
}

/// Every backup in the target, oldest first: its id and its manifest, or why it cannot be
/// restored.
pub async fn list(target: &Target) -> Result<Vec<(String, Result<Manifest, String>)>, BackupError> {
    let mut ids = target.children(BACKUPS).await?;
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let read = read_manifest(target, &id).await;
        out.push((id, read));
    }
    Ok(out)
}

async fn read_manifest(target: &Target, id: &str) -> Result<Manifest, String> {
    let body = target.get(&key(id, "manifest.json")).await.map_err(|e| e.to_string())?;
    let sum = target
        .get(&key(id, "manifest.sha256"))
        .await
        .map_err(|e| e.to_string())?;
    match (body, sum) {
        (Some(body), Some(sum)) => {
            let m = Manifest::decode(&body, &String::from_utf8_lossy(&sum))?;
            if m.id != id {
                return Err(format!("the manifest in {id} is of backup {}", m.id));
            }
            Ok(m)
        }
        _ => Err("incomplete: no manifest and checksum".into()),
    }
}

/// The newest complete backup.
pub async fn latest(target: &Target) -> Result<Option<Manifest>, BackupError> {
    Ok(list(target).await?.into_iter().rev().find_map(|(_, m)| m.ok()))
}

/// Keeps the newest `keep` backups and none older than `max_age_days` (never `current`),
/// then deletes the objects no kept backup refers to.
async fn prune(target: &Target, retention: Retention, current: &str) -> Result<(), BackupError> {
    let all = list(target).await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention.max_age_days));
    let cutoff_id = cutoff.format("%Y%m%dT%H%M%SZ").to_string();
    let complete: Vec<&String> = all.iter().filter(|(_, m)| m.is_ok()).map(|(id, _)| id).collect();
    let newest: Vec<&String> = complete.iter().rev().take(retention.keep.max(1)).copied().collect();
    let mut kept = Vec::new();
    for (id, m) in &all {
        let keep = id == current || (newest.contains(&id) && id.as_str() >= cutoff_id.as_str());
        // Incomplete backups newer than the current one may still be being written.
        let in_progress = m.is_err() && id.as_str() > current;
        if keep || in_progress {
            if let Ok(m) = m {
                kept.push(m.clone());
            }
            continue;
        }
        let keys: Vec<String> = target
            .list(&format!("{BACKUPS}/{id}"))
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        target.delete(keys).await?;
        tracing::info!(backup = %id, "backup removed by retention");
    }
    let mut referenced = std::collections::HashSet::new();
    for m in &kept {
        for o in load_index(target, m).await? {
            referenced.insert(format!("{OBJECTS}/{}", o.key));
        }
    }
    let unreferenced: Vec<String> = target
        .list(OBJECTS)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !referenced.contains(k))
        .collect();
    if !unreferenced.is_empty() {
        tracing::info!(objects = unreferenced.len(), "objects no kept backup refers to removed");
        target.delete(unreferenced).await?;
    }
    Ok(())
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Restored {
    pub id: String,
    pub databases: Vec<String>,
    pub objects_copied: u64,
}

/// Restores backup `id` (the newest complete one when `None`) from `target` over `plan`.
pub async fn restore(plan: &Plan, target: &Target, id: Option<&str>) -> Result<Restored, BackupError> {
    let manifest = match id {
        Some(id) => read_manifest(target, id).await.map_err(BackupError::Verify)?,
        None => latest(target)
            .await?
            .ok_or_else(|| BackupError::Verify(format!("{} holds no complete backup", target.describe)))?,
    };
    let id = manifest.id.clone();
    // Every component is in the backup and none is newer than this build.
    let mut pairs: Vec<(&Component, &DatabaseEntry)> = Vec::new();
    for c in &plan.components {
        let entry = manifest
            .databases
            .iter()
            .find(|d| d.component == c.name)
            .ok_or_else(|| BackupError::Verify(format!("backup {id} has no database for {}", c.name)))?;
        if let Some(unknown) = entry.migrations.iter().find(|m| !c.known_migrations.contains(m)) {
            return Err(BackupError::Verify(format!(
                "{}: migration {unknown} is unknown to this build (made by a newer Portico)",
                c.name
            )));
        }
        pairs.push((c, entry));
    }
    if let Some(extra) = manifest
        .databases
        .iter()
        .find(|d| !plan.components.iter().any(|c| c.name == d.component))
    {
        return Err(BackupError::Verify(format!(
            "backup {id} holds {}, which this deployment does not have",
            extra.component
        )));
    }
    // Every file fetched and checked before anything changes.
    let scratch = Scratch::new(&format!("restore-{id}"))?;
    let mut files = Vec::new();
    for (c, entry) in &pairs {
        let file = scratch.0.join(&entry.file);
        let got = target.get_file(&key(&id, &entry.file), &file).await?;
        if got.bytes != entry.bytes || got.sha256 != entry.sha256 {
            return Err(BackupError::Verify(format!(
                "{}: {} does not match the manifest ({} bytes, sha256 {}; expected {} bytes, {})",
                c.name, entry.file, got.bytes, got.sha256, entry.bytes, entry.sha256
            )));
        }
        files.push(file);
    }
    let index = load_index(target, &manifest).await?;
    if plan.media.is_some() {
        for o in &index {
            let got = target.digest(&format!("{OBJECTS}/{}", o.key)).await?;
            if got.bytes != o.bytes || got.sha256 != o.sha256 {
                return Err(BackupError::Verify(format!(
                    "object {} does not match the index",
                    o.key
                )));
            }
        }
    }
    // Every database restored beside the live one...
    let mut staged = Vec::new();
    for ((c, entry), file) in pairs.iter().zip(&files) {
        match database::stage(c, entry, file).await {
            Ok(s) => staged.push(s),
            Err(e) => {
                for s in staged {
                    database::discard(s).await;
                }
                return Err(e);
            }
        }
    }
    // Objects the live store lacks are copied back before any database changes: extra
    // objects are harmless (stray ones are cleaned up), missing ones are not.
    let mut objects_copied = 0;
    if let Some(media) = &plan.media {
        let present: HashMap<String, u64> = media.list("").await?.into_iter().collect();
        for o in &index {
            if present.get(&o.key) != Some(&o.bytes) {
                if let Err(e) = media.copy_from(target, &format!("{OBJECTS}/{}", o.key), &o.key).await {
                    for s in staged {
                        database::discard(s).await;
                    }
                    return Err(e);
                }
                objects_copied += 1;
            }
        }
    }
    // ...then all put in place, or none.
    let mut swapped = Vec::new();
    let mut pending = staged.into_iter();
    while let Some(s) = pending.next() {
        match database::swap(s).await {
            Ok(done) => swapped.push(done),
            Err((failed, e)) => {
                database::discard(failed).await;
                for rest in pending {
                    database::discard(rest).await;
                }
                for done in swapped.into_iter().rev() {
                    database::undo(done).await;
                }
                return Err(e);
            }
        }
    }
    for done in swapped {
        if let Err(e) = database::finish(done).await {
            tracing::warn!(error = %e, "the database replaced by the restore was not removed");
        }
    }
    Ok(Restored {
        id,
        databases: pairs.iter().map(|(c, _)| c.name.clone()).collect(),
        objects_copied,
    })
}

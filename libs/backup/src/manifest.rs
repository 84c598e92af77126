//! What a backup holds, written last: a backup without a manifest (or whose manifest does not
//! match its checksum file) is incomplete and never restored.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest layout this build writes and reads.
pub const FORMAT: u32 = 1;

/// One backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `YYYYMMDDTHHMMSSZ-xxxxxx`: sorts by time.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// The Portico version that made it.
    pub portico: String,
    /// One database per component.
    pub databases: Vec<DatabaseEntry>,
    /// The media objects, when a store was backed up.
    pub objects: Option<ObjectsEntry>,
}

/// One component's database dump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseEntry {
    /// `gateway`, `beta`...
    pub component: String,
    /// `postgresql` (a `pg_dump --format=custom` archive) or `sqlite` (a `VACUUM INTO` copy).
    pub backend: String,
    /// Its file, beside the manifest.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// The migrations applied to it, in order (its schema level).
    pub migrations: Vec<String>,
    /// The server's (PostgreSQL) or library's (SQLite) version, and the dump tool's.
    pub server_version: String,
    pub tool: String,
}

/// The media objects: shared between backups under `objects/`, each copied once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectsEntry {
    pub count: u64,
    pub bytes: u64,
    /// The index file beside the manifest: every object's key, size and checksum.
    pub index: String,
    pub index_sha256: String,
}

/// One media object of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEntry {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// The manifest as stored, and the checksum file's content beside it.
    pub fn encode(&self) -> Result<(Vec<u8>, String), serde_json::Error> {
        let body = serde_json::to_vec_pretty(self)?;
        let sum = sha256_hex(&body);
        Ok((body, format!("{sum}  manifest.json\n")))
    }

    /// Reads a stored manifest, refusing it unless its checksum file matches and its format,
    /// names and checksums are ones this build understands.
    pub fn decode(body: &[u8], sum_file: &str) -> Result<Manifest, String> {
        let expected = sum_file.split_whitespace().next().unwrap_or_default();
        if expected.is_empty() || expected != sha256_hex(body) {
            return Err("manifest.json does not match manifest.sha256 (damaged or incomplete)".into());
        }
        let m: Manifest = serde_json::from_slice(body).map_err(|e| format!("manifest.json: {e}"))?;
        if m.format != FORMAT {
            return Err(format!(
                "manifest format {} is not {FORMAT}: made by another Portico version",
                m.format
            ));
        }
        let files = m
            .databases
            .iter()
            .map(|d| (d.file.as_str(), d.sha256.as_str()))
            .chain(m.objects.iter().map(|o| (o.index.as_str(), o.index_sha256.as_str())));
        for (file, sum) in files {
            if !plain_name(file) {
                return Err(format!("manifest names a file outside the backup: {file:?}"));
            }
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{file}: {sum:?} is not a SHA-256"));
            }
        }
        Ok(m)
    }
}

/// A file name without directories, dots or anything a path could be built from.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// An object key a restore may write: relative, no `..`, no empty or dot segments.
pub fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            id: "20261202T020000Z-abcdef".into(),
            created_at: "2026-12-02T02:00:00Z".into(),
            portico: "0.1.0".into(),
            databases: vec![DatabaseEntry {
                component: "gateway".into(),
                backend: "sqlite".into(),
                file: "gateway.sqlite".into(),
                bytes: 10,
                sha256: sha256_hex(b"x"),
                migrations: vec!["00000000000001".into()],
                server_version: "3.50".into(),
                tool: "VACUUM INTO".into(),
            }],
            objects: None,
        }
    }

    #[test]
    fn a_manifest_is_read_back_only_when_it_matches_its_checksum() -> Result<(), String> {
        let (body, sum) = manifest().encode().map_err(|e| e.to_string())?;
        assert_eq!(Manifest::decode(&body, &sum)?, manifest());
        let mut damaged = body.clone();
        damaged[10] ^= 1;
        assert!(Manifest::decode(&damaged, &sum).is_err());
        assert!(Manifest::decode(&body, "").is_err());
        let mut newer = manifest();
        newer.format = FORMAT + 1;
        let (body, sum) = newer.encode().map_err(|e| e.to_string())?;
        assert!(Manifest::decode(&body, &sum).is_err_and(|e| e.contains("format")));
        let mut escaping = manifest();
        escaping.databases[0].file = "../../etc/passwd".into();
        let (body, sum) = escaping.encode().map_err(|e| e.to_string())?;
        assert!(Manifest::decode(&body, &sum).is_err_and(|e| e.contains("outside")));
        Ok(())
    }

    #[test]
    fn object_keys_stay_inside_the_store() {
        assert!(safe_key("u/0192/abc/thumbnail.webp"));
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(!safe_key(bad), "{bad}");
        }
    }
}

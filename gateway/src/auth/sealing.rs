//! Signing keys at rest: sealed with AES-256-GCM under a key-encryption key that never enters
//! the database (`PORTICO_KEY_ENCRYPTION_KEY`), so a dump or backup of the gateway's
//! database is not enough to mint tokens.
//!
//! A sealed key is `v1.<nonce>.<ciphertext and tag>` (base64url); the key id is the
//! associated data, so a sealed key moved to another row does not open.

use std::path::Path;

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};

const VERSION: &str = "v1";
const KEY_LEN: usize = 32;

/// The key-encryption key.
pub struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(***)")
    }
}

impl Kek {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!("must be {KEY_LEN} bytes, base64-encoded (got {})", bytes.len()));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key".to_string())?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    /// From its base64 form (standard or URL-safe alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "is not base64".to_string())?;
        Self::from_bytes(&bytes)
    }

    /// The development key of a data directory: read from `gateway.kek`, or made there
    /// (readable by the owner only) on first start.
    pub fn dev_key(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("gateway.kek");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| "no randomness for the development key".to_string())?;
                std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
                write_private(&path, &STANDARD.encode(bytes)).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "made a development key-encryption key");
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Seals `secret` for the row of key id `kid`.
    pub fn seal(&self, kid: &str, secret: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce".to_string())?;
        let mut sealed = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| "sealing failed".to_string())?;
        Ok(format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Opens what [`Kek::seal`] made for `kid`.
    pub fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>, String> {
        let mut parts = stored.split('.');
        let (Some(VERSION), Some(nonce), Some(sealed), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a sealed key".into());
        };
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or("bad nonce")?;
        let mut sealed = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| "bad ciphertext")?;
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| "cannot open the signing key: is PORTICO_KEY_ENCRYPTION_KEY the one it was sealed with?")?;
        Ok(plain.to_vec())
    }
}

/// Whether a stored private key is sealed (older rows hold hex-encoded plaintext).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with("v1.")
}

/// The associated data of a key id's sealed key.
fn aad(kid: &str) -> String {
    format!("portico-signing-key:{kid}")
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_kid() {
        let secret = b"pkcs8 bytes of a signing key";
        let sealed = kek(1).seal("kid-a", secret).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&hex::encode(secret)));
        assert_eq!(kek(1).open("kid-a", &sealed).unwrap(), secret);
        assert!(kek(2).open("kid-a", &sealed).is_err(), "another KEK");
        assert!(kek(1).open("kid-b", &sealed).is_err(), "moved to another row");
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(sealed, kek(1).seal("kid-a", secret).unwrap());
    }

    #[test]
    fn keks_are_32_bytes_of_base64() {
        assert!(Kek::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(Kek::from_base64(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        assert!(
            Kek::from_base64(&STANDARD.encode([7u8; 16]))
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(Kek::from_base64("not base64 at all!").is_err());
        assert_eq!(format!("{:?}", kek(1)), "Kek(***)");
    }

    #[test]
    fn the_dev_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("portico-kek-{}", uuid::Uuid::new_v4().simple()));
        let first = Kek::dev_key(&dir).unwrap();
        let sealed = first.seal("k", b"s").unwrap();
        let again = Kek::dev_key(&dir).unwrap();
        assert_eq!(again.open("k", &sealed).unwrap(), b"s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("gateway.kek")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The media service: validates uploaded images and turns them into JPEG and WebP variants with
//! `portico-media-pipeline`, stores originals and variants in an object store (local disk or
//! S3-compatible) with their metadata in the database, takes tus 1.0 resumable uploads, and
//! keeps mobile performance events as mergeable latency histograms.
//!
//! `effects` runs AI effects at an outside provider (the rules are `portico-effects`);
//! `domain` holds the rules (no I/O), `store` the tables and queries, `objects` the object
//! store, `service` the gRPC API and the cleanup job; the histogram is `portico-sketch`,
//! shared with the monitoring service.

pub mod domain;
pub mod effects;
pub mod error;
pub mod objects;
pub mod service;
pub mod store;

use std::time::Duration;

use portico_media_pipeline::Limits;
use portico_proto::media::v1::{effect_service_server::EffectServiceServer, media_service_server::MediaServiceServer};
use portico_runtime::{
    Problem,
    config::{ConfigError, Secret, Vars},
    db::{Migrations, now_ms},
    jobs,
    service::{EraseUser, Foundation, Service, ServiceConfig},
};

pub use effects::EffectsApp;
pub use objects::{Objects, S3Config, StorageConfig};
pub use portico_runtime::grpc::Running;
pub use service::{CleanupReport, MediaApp};

/// Room above the byte cap for the rest of a gRPC message (ids, metadata, framing).
const MESSAGE_HEADROOM: usize = 1024 * 1024;

/// Default of `PORTICO_MEDIA_MAX_CHUNK_BYTES`: the largest chunk an upload config recommends.
pub const DEFAULT_MAX_CHUNK_BYTES: u64 = domain::MAX_CHUNK_BYTES;

/// The media service's settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// `PORTICO_MEDIA_GRPC_ADDR` (default `127.0.0.1:50052`), `PORTICO_MEDIA_DATABASE_URL`
    /// (default SQLite `media.db` in the data dir), `PORTICO_MEDIA_DB_POOL` (default 16).
    pub service: ServiceConfig,
    /// `PORTICO_MEDIA_MAX_BYTES` (default 25 MiB): largest image or tus upload.
    pub max_bytes: u64,
    /// `PORTICO_MEDIA_MAX_CHUNK_BYTES` (default 8 MiB, or `PORTICO_MEDIA_MAX_BYTES` when that
    /// is smaller; 1 to `PORTICO_MEDIA_MAX_BYTES`): the largest body one tus append
    /// (`PATCH`) may carry. The service refuses a longer chunk with `PAYLOAD_TOO_LARGE` before
    /// storing anything; the gateway reads the same variable to refuse it with 413 before
    /// reading the body, and upload configs never recommend chunks above it.
    pub max_chunk_bytes: u64,
    /// `PORTICO_MEDIA_MAX_PIXELS` (default 50,000,000): largest declared width × height,
    /// checked before decoding.
    pub max_pixels: u64,
    /// `PORTICO_MEDIA_UPLOAD_TTL_SECS` (default 86,400): how long a tus upload lives.
    pub upload_ttl: Duration,
    /// Where objects go: `PORTICO_MEDIA_DIR` (default `<PORTICO_DATA_DIR>/media`), or an
    /// S3-compatible bucket when `PORTICO_S3_BUCKET` is set.
    pub storage: StorageConfig,
    /// AI effects: the provider, the tiers' allowances, the run policy.
    pub effects: effects::EffectsConfig,
}

impl MediaConfig {
    /// Reads the settings.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_vars(vars, "media", 50052)?;
        let max_bytes: u64 = vars.get("PORTICO_MEDIA_MAX_BYTES", 25 * 1024 * 1024)?;
        if max_bytes == 0 || max_bytes > 1024 * 1024 * 1024 {
            return Err(ConfigError {
                var: "PORTICO_MEDIA_MAX_BYTES".to_string(),
                message: "must be between 1 and 1073741824 (1 GiB)".to_string(),
            });
        }
        let max_chunk_bytes: u64 = vars.get("PORTICO_MEDIA_MAX_CHUNK_BYTES", DEFAULT_MAX_CHUNK_BYTES.min(max_bytes))?;
        if max_chunk_bytes == 0 || max_chunk_bytes > max_bytes {
            return Err(ConfigError {
                var: "PORTICO_MEDIA_MAX_CHUNK_BYTES".to_string(),
                message: format!("must be between 1 and PORTICO_MEDIA_MAX_BYTES ({max_bytes})"),
            });
        }
        let max_pixels: u64 = vars.get("PORTICO_MEDIA_MAX_PIXELS", 50_000_000)?;
        if max_pixels == 0 {
            return Err(ConfigError {
                var: "PORTICO_MEDIA_MAX_PIXELS".to_string(),
                message: "must be greater than 0".to_string(),
            });
        }
        let storage = match vars.raw("PORTICO_S3_BUCKET") {
            Some(bucket) => StorageConfig::S3(S3Config {
                bucket,
                endpoint: vars.raw("PORTICO_S3_ENDPOINT"),
                region: vars.string("PORTICO_S3_REGION", "us-east-1"),
                access_key_id: vars.raw("PORTICO_S3_ACCESS_KEY_ID"),
                secret_access_key: vars.raw("PORTICO_S3_SECRET_ACCESS_KEY").map(Secret::new),
                allow_http: vars.flag("PORTICO_S3_ALLOW_HTTP", false)?,
            }),
            None => StorageConfig::Local(
                vars.raw("PORTICO_MEDIA_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| service.common.data_dir.join("media")),
            ),
        };
        Ok(MediaConfig {
            service,
            max_bytes,
            max_chunk_bytes,
            max_pixels,
            upload_ttl: positive_secs(vars, "PORTICO_MEDIA_UPLOAD_TTL_SECS", 24 * 3600)?,
            storage,
            effects: effects::EffectsConfig::from_vars(vars)?,
        })
    }

    /// The pipeline's caps.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_bytes,
            max_pixels: self.max_pixels,
        }
    }
}

fn positive_secs(vars: &Vars, var: &str, default: u64) -> Result<Duration, ConfigError> {
    let d = vars.secs(var, Duration::from_secs(default))?;
    if d.is_zero() {
        return Err(ConfigError {
            var: var.to_string(),
            message: "must be greater than 0".to_string(),
        });
    }
    Ok(d)
}

impl Service for MediaConfig {
    const NAME: &'static str = "media";
    const GRPC_NAME: &'static str = service::SERVICE_NAME;
    const MIGRATIONS: Migrations = portico_runtime::embed_migrations!();
    type App = MediaApp;

    /// Opens the object store; its cleanup is part of `retention_cleanup`.
    async fn build(self, foundation: &Foundation) -> Result<(MediaApp, tonic::service::Routes), String> {
        let objects = Objects::open(&self.storage)?;
        let ttl_ms = i64::try_from(self.upload_ttl.as_millis()).unwrap_or(i64::MAX);
        let app = MediaApp::new(
            foundation.db.clone(),
            objects,
            self.limits(),
            self.max_chunk_bytes,
            ttl_ms,
        );
        foundation.retain("media", cleanup_task(app.clone()));
        let max_message = usize::try_from(self.max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(MESSAGE_HEADROOM);
        let server = MediaServiceServer::new(app.clone())
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let provider = self.effects.open_provider()?;
        let effects = EffectsApp::new(
            foundation.db.clone(),
            app.clone(),
            provider,
            self.effects,
            &self.service.common.internal_token.expose().clone(),
            foundation.redis.clone(),
            &foundation.registry,
        );
        effects::runs::spawn(effects.clone(), foundation.shutdown.clone());
        let routes = tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
            server,
            foundation.guard(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            EffectServiceServer::new(effects),
            foundation.guard(),
        ));
        Ok((app, routes))
    }

    fn service_config(&self) -> &ServiceConfig {
        &self.service
    }
}

impl EraseUser for MediaApp {
    async fn erase_user_data(&self, user_id: String) -> Result<u64, Problem> {
        self.erase_user(&user_id).await.map_err(Problem::from)
    }
}

/// [`MediaApp::cleanup`], as the media part of `retention_cleanup`: pending media never
/// completed, expired tus uploads, stray objects and old histogram rows.
fn cleanup_task(app: MediaApp) -> jobs::Task {
    jobs::task(move || {
        let app = app.clone();
        async move {
            let r = app.cleanup(now_ms()).await.map_err(|e| e.to_string())?;
            Ok(format!(
                "{} pending media, {} expired uploads, {} stray objects, {} histogram rows removed",
                r.pending_media, r.expired_uploads, r.stray_objects, r.perf_rows
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<MediaConfig, ConfigError> {
        MediaConfig::from_vars(&Vars::from_map(vars.iter().copied()))
    }

    #[test]
    fn defaults_store_media_on_local_disk() -> Result<(), ConfigError> {
        let c = config(&[("PORTICO_DATA_DIR", "/srv/portico")])?;
        assert_eq!(c.service.grpc_addr.to_string(), "127.0.0.1:50052");
        assert_eq!(c.service.database_url, "sqlite:///srv/portico/media.db");
        assert_eq!((c.max_bytes, c.max_pixels), (25 * 1024 * 1024, 50_000_000));
        assert_eq!(c.max_chunk_bytes, 8 * 1024 * 1024);
        assert_eq!(c.upload_ttl, Duration::from_secs(86_400));
        assert_eq!(c.storage, StorageConfig::Local("/srv/portico/media".into()));
        Ok(())
    }

    #[test]
    fn a_bucket_selects_s3_and_its_secret_does_not_print() -> Result<(), ConfigError> {
        let c = config(&[
            ("PORTICO_S3_BUCKET", "media"),
            ("PORTICO_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("PORTICO_S3_ACCESS_KEY_ID", "minio"),
            ("PORTICO_S3_SECRET_ACCESS_KEY", "minio-secret"),
            ("PORTICO_S3_ALLOW_HTTP", "true"),
        ])?;
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("expected S3, got {:?}", c.storage);
        };
        assert_eq!(s3.bucket, "media");
        assert_eq!(s3.region, "us-east-1");
        assert!(s3.allow_http);
        assert!(!format!("{c:?}").contains("minio-secret"));
        // Building the client needs no network.
        assert!(Objects::open(&c.storage).is_ok());
        Ok(())
    }

    #[test]
    fn the_chunk_cap_defaults_within_the_byte_cap() -> Result<(), ConfigError> {
        let small = config(&[("PORTICO_MEDIA_MAX_BYTES", "1000000")])?;
        assert_eq!(small.max_chunk_bytes, 1_000_000, "never above the byte cap by default");
        let set = config(&[("PORTICO_MEDIA_MAX_CHUNK_BYTES", "65536")])?;
        assert_eq!(set.max_chunk_bytes, 65_536);
        let over = config(&[
            ("PORTICO_MEDIA_MAX_BYTES", "1000000"),
            ("PORTICO_MEDIA_MAX_CHUNK_BYTES", "1000001"),
        ]);
        let e = over.err().map(|e| (e.var, e.message));
        assert_eq!(
            e,
            Some((
                "PORTICO_MEDIA_MAX_CHUNK_BYTES".to_string(),
                "must be between 1 and PORTICO_MEDIA_MAX_BYTES (1000000)".to_string()
            ))
        );
        Ok(())
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORTICO_MEDIA_MAX_BYTES", "0"),
            ("PORTICO_MEDIA_MAX_BYTES", "lots"),
            ("PORTICO_MEDIA_MAX_PIXELS", "0"),
            ("PORTICO_MEDIA_MAX_CHUNK_BYTES", "0"),
            ("PORTICO_MEDIA_MAX_CHUNK_BYTES", "big"),
            ("PORTICO_MEDIA_MAX_CHUNK_BYTES", "26214401"),
            ("PORTICO_MEDIA_UPLOAD_TTL_SECS", "0"),
            ("PORTICO_S3_ALLOW_HTTP", "maybe"),
        ] {
            let vars = [(var, value), ("PORTICO_S3_BUCKET", "b")];
            let used = if var.starts_with("PORTICO_S3") {
                &vars[..]
            } else {
                &vars[..1]
            };
            assert_eq!(config(used).err().map(|e| e.var).as_deref(), Some(var), "{var}={value}");
        }
    }
}

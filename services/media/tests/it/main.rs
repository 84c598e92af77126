//! The media service over real gRPC, on SQLite and (when configured) PostgreSQL, storing
//! objects as real files in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod effects;
mod erasure;
mod fake_runninghub;
mod images;
mod media;
mod performance;
mod runninghub;
mod s3;
mod tus;

use std::path::{Path, PathBuf};

use portico_media::{MediaApp, MediaConfig, error::MediaError};
use portico_proto::{
    media::v1::{effect_service_client::EffectServiceClient, media_service_client::MediaServiceClient},
    ops::v1::ops_client::OpsClient,
};
use portico_runtime::{
    config::Vars,
    db::Db,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

const TOKEN: &str = "test-internal-token-0123456789";
const BIG: usize = 64 * 1024 * 1024;

type Client = MediaServiceClient<InterceptedService<Channel, PresentInternalToken>>;
/// The effects API the gateway calls.
pub type Effects = EffectServiceClient<InterceptedService<Channel, PresentInternalToken>>;
/// The Ops client the gateway uses (erasure, info), with the internal token.
type Ops = OpsClient<InterceptedService<Channel, PresentInternalToken>>;

/// A media service on an ephemeral port with its own fresh database and media directory.
pub struct Service {
    pub client: Client,
    pub ops: Ops,
    pub app: MediaApp,
    pub db: Db,
    pub effects: Effects,
    pub url: String,
    pub media_dir: PathBuf,
    config: MediaConfig,
    stop: CancellationToken,
    test_db: Option<TestDb>,
}

impl Service {
    pub async fn start(backend: Backend, extra: &[(&str, &str)]) -> Service {
        Self::start_with(backend, extra, |_| {}).await
    }

    /// A service whose settings `tweak` adjusts after they are read (timings no variable
    /// sets, a provider pointed at a fake).
    pub async fn start_with(backend: Backend, extra: &[(&str, &str)], tweak: impl FnOnce(&mut MediaConfig)) -> Service {
        let test_db = TestDb::new(backend, "media");
        let media_dir = std::env::temp_dir().join(format!("portico-test-media-{}", uuid::Uuid::new_v4().simple()));
        let dir = media_dir.display().to_string();
        let mut vars = vec![
            ("PORTICO_MEDIA_DATABASE_URL", test_db.url.as_str()),
            ("PORTICO_MEDIA_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_MEDIA_DIR", dir.as_str()),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
            ("PORTICO_EFFECTS_LOCAL_DELAY_MS", "100"),
        ];
        vars.extend_from_slice(extra);
        let mut config = MediaConfig::from_vars(&Vars::from_map(vars)).unwrap();
        config.effects.tick = std::time::Duration::from_millis(20);
        config.effects.poll_first = std::time::Duration::from_millis(50);
        config.effects.poll_cap = std::time::Duration::from_millis(200);
        config.effects.retry_base = std::time::Duration::from_millis(20);
        config.effects.retry_cap = std::time::Duration::from_millis(100);
        tweak(&mut config);
        Self::open(config, test_db, media_dir).await
    }

    async fn open(config: MediaConfig, test_db: TestDb, media_dir: PathBuf) -> Service {
        let listener = tokio::net::TcpListener::bind(config.service.grpc_addr).await.unwrap();
        let stop = CancellationToken::new();
        let started = portico_runtime::service::start_on(listener, config.clone(), stop.clone())
            .await
            .unwrap();
        let url = format!("http://{}", started.running.addr);
        let ch = channel(&url, std::time::Duration::from_secs(60)).unwrap();
        let client = MediaServiceClient::with_interceptor(ch.clone(), PresentInternalToken::new(TOKEN).unwrap())
            .max_decoding_message_size(BIG)
            .max_encoding_message_size(BIG);
        let effects = EffectServiceClient::with_interceptor(ch.clone(), PresentInternalToken::new(TOKEN).unwrap());
        let ops = OpsClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service {
            client,
            effects,
            ops,
            app: started.app,
            db: started.running.db,
            url,
            media_dir,
            config,
            stop,
            test_db: Some(test_db),
        }
    }

    /// Stops this process and starts another on the same database and media directory (the
    /// state a restart keeps).
    pub async fn restart(mut self) -> Service {
        self.stop.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let test_db = self.test_db.take().unwrap();
        let media_dir = std::mem::take(&mut self.media_dir);
        let config = self.config.clone();
        drop(self);
        Self::open(config, test_db, media_dir).await
    }

    /// Every file under the media directory, as paths relative to it.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.media_dir, &self.media_dir, &mut out);
        out.sort();
        out
    }

    /// Files under `media/<user>/<id>/`.
    pub fn media_files(&self, user: &str, id: &str) -> Vec<String> {
        let prefix = format!("media/{user}/{id}/");
        self.files().into_iter().filter(|f| f.starts_with(&prefix)).collect()
    }

    /// Files under `uploads/<id>/`.
    pub fn chunk_files(&self, upload_id: &str) -> Vec<String> {
        let prefix = format!("uploads/{upload_id}/");
        self.files().into_iter().filter(|f| f.starts_with(&prefix)).collect()
    }

    /// Rows in a table.
    pub async fn rows(&self, table: &'static str) -> i64 {
        use diesel::{QueryDsl, RunQueryDsl};
        use portico_media::{effects::store::schema::*, store::schema::*};
        self.db
            .run(move |conn| {
                let n: i64 = match table {
                    "media" => media::table.count().get_result(conn)?,
                    "media_variants" => media_variants::table.count().get_result(conn)?,
                    "uploads" => uploads::table.count().get_result(conn)?,
                    "upload_chunks" => upload_chunks::table.count().get_result(conn)?,
                    "perf_buckets" => perf_buckets::table.count().get_result(conn)?,
                    "effects" => effects::table.count().get_result(conn)?,
                    "effect_runs" => effect_runs::table.count().get_result(conn)?,
                    _ => unreachable!("no table {table}"),
                };
                Ok::<_, MediaError>(n)
            })
            .await
            .unwrap()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
        if !self.media_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.media_dir);
        }
    }
}

/// The catalogue code a status carries.
pub fn code(err: &Status) -> String {
    err.metadata()
        .get("x-portico-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The JSON details a status carries.
pub fn details(err: &Status) -> serde_json::Value {
    serde_json::from_slice(err.details()).unwrap_or(serde_json::Value::Null)
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_internal_token_are_refused() {
    use portico_proto::media::v1 as pb;
    let svc = Service::start(Backend::Sqlite, &[]).await;
    let ch = channel(&svc.url, std::time::Duration::from_secs(5)).unwrap();
    let mut anonymous = MediaServiceClient::new(ch);
    let err = anonymous
        .get_upload_config(pb::GetUploadConfigRequest {
            connection: pb::Connection::Wifi as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

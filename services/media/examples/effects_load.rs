//! Effects under a flaky provider, measured: `RUNS` (100) runs started at once against a fake
//! RunningHub over HTTP that answers `FAILING_SHARE` (0.3) of calls with 500 and adds 200 ms to
//! every answer, with the service's default policy (timeouts, repeats, backoff, polling).
//! Prints the share that succeeded, provider calls per run, and the p50/p95 time to a result
//! beside the fake's own latency; `FAILING_SHARE` 0 is the baseline of the same run.
//!
//! `cargo run -p portico-media --example effects_load [-- RUNS [FAILING_SHARE]]` (it waits on
//! the provider, so a debug build measures the same; SQLite, or PostgreSQL when
//! `PORTICO_TEST_PG_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/fake_runninghub.rs"]
#[allow(dead_code)]
mod fake_runninghub;

use std::time::{Duration, Instant};

use fake_runninghub::{FakeRunningHub, Flaky, KEY};
use portico_media::{
    MediaConfig,
    effects::{ProviderConfig, runninghub::RunningHubConfig},
};
use portico_proto::{
    beta::v1::AccessLevel,
    media::v1::{self as pb, effect_service_client::EffectServiceClient, media_service_client::MediaServiceClient},
    workflow::v1::Tier,
};
use portico_runtime::{
    config::{Secret, Vars},
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-internal-token-0123456789";
const LATENCY: Duration = Duration::from_millis(200);

fn photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(800, 600, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100);
    let fail: f64 = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0.3);
    let backend = if std::env::var("PORTICO_TEST_PG_URL").is_ok() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let rh = FakeRunningHub::start(0, photo()).await;
    *rh.fake.flaky.lock().unwrap() = Some(Flaky {
        fail,
        hang: 0.0,
        hang_for: Duration::ZERO,
        latency: LATENCY,
    });
    let db = TestDb::new(backend, "effects-load");
    let dir = std::env::temp_dir().join(format!("portico-effects-load-{}", uuid::Uuid::new_v4().simple()));
    let dir_s = dir.display().to_string();
    let limit = runs.to_string();
    let vars = Vars::from_map([
        ("PORTICO_MEDIA_DATABASE_URL", db.url.as_str()),
        ("PORTICO_MEDIA_GRPC_ADDR", "127.0.0.1:0"),
        ("PORTICO_MEDIA_DIR", dir_s.as_str()),
        ("PORTICO_INTERNAL_TOKEN", TOKEN),
        ("PORTICO_EFFECTS_ENTERPRISE_CONCURRENT", limit.as_str()),
    ]);
    let mut config = MediaConfig::from_vars(&vars).unwrap();
    config.effects.provider = ProviderConfig::RunningHub(RunningHubConfig::new(&rh.url, Secret::new(KEY.to_string())));
    let listener = tokio::net::TcpListener::bind(config.service.grpc_addr).await.unwrap();
    let stop = CancellationToken::new();
    let started = portico_runtime::service::start_on(listener, config, stop.clone())
        .await
        .unwrap();
    let ch = channel(&format!("http://{}", started.running.addr), Duration::from_secs(60)).unwrap();
    let mut media = MediaServiceClient::with_interceptor(ch.clone(), PresentInternalToken::new(TOKEN).unwrap())
        .max_encoding_message_size(64 << 20);
    let mut effects = EffectServiceClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());

    let user = "user-bench";
    let media_id = media
        .upload(pb::UploadRequest {
            user_id: user.into(),
            content: photo().into(),
            filename: "photo.jpg".into(),
            connection: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let effect = effects
        .create_effect(pb::CreateEffectRequest {
            name: "Oil painting".into(),
            description: String::new(),
            webapp_id: "1877265245566922753".into(),
            image_node: Some(pb::NodeField {
                node_id: "12".into(),
                field_name: "image".into(),
            }),
            parameters_json: "[]".into(),
            min_level: AccessLevel::None as i32,
            enabled: true,
            region: None,
        })
        .await
        .unwrap()
        .into_inner();
    let calls_before = rh.fake.total();

    let began = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for _ in 0..runs {
        let run = effects
            .start_run(pb::StartRunRequest {
                caller: Some(pb::EffectCaller {
                    user_id: user.into(),
                    tier: Tier::Enterprise as i32,
                    level: AccessLevel::Basic as i32,
                    region: None,
                }),
                effect_id: effect.id.clone(),
                media_id: media_id.clone(),
                params_json: "{}".into(),
            })
            .await
            .unwrap()
            .into_inner();
        ids.push((run.id, began.elapsed()));
    }
    let mut took = Vec::with_capacity(runs);
    let mut succeeded = 0;
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for (id, _) in &ids {
        loop {
            let run = effects
                .get_run(pb::GetRunRequest {
                    user_id: user.into(),
                    id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if run.status == "succeeded" || run.status == "failed" {
                let finished = Duration::from_millis(
                    u64::try_from(run.finished_at_ms.unwrap_or(0) - run.created_at_ms).unwrap_or(0),
                );
                took.push(finished);
                if run.status == "succeeded" {
                    succeeded += 1;
                } else {
                    *reasons.entry(run.error.unwrap_or_default()).or_default() += 1;
                }
                break;
            }
            assert!(Instant::now() < deadline, "run {id} never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let calls = rh.fake.total() - calls_before;
    took.sort();
    let pct = |p: f64| {
        took[((took.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(took.len() - 1)]
    };
    println!(
        "backend {backend:?}: {runs} runs, fake provider: {:.0} % of calls answer 500, {} ms added to every answer",
        fail * 100.0,
        LATENCY.as_millis()
    );
    println!(
        "succeeded {succeeded}/{runs} ({:.1} %)",
        100.0 * succeeded as f64 / runs as f64
    );
    println!("provider calls {calls}, {:.2} per run", calls as f64 / runs as f64);
    println!(
        "time to result p50 {:.2} s, p95 {:.2} s, max {:.2} s (the fake's latency per call {:.2} s)",
        pct(0.5).as_secs_f64(),
        pct(0.95).as_secs_f64(),
        took.last().copied().unwrap_or_default().as_secs_f64(),
        LATENCY.as_secs_f64()
    );
    for (why, n) in reasons {
        println!("failed {n}: {why}");
    }
    stop.cancel();
    let _ = std::fs::remove_dir_all(dir);
}

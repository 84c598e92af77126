//! AI effects over real gRPC on both databases: the catalogue and its gating, runs driven to a
//! result by the local provider and by a fake RunningHub over HTTP (happy path, webhook only,
//! an output on another host, a flaky provider, the breaker, a restart), cancellation, the
//! tier limits under concurrency, ownership, and bad input that stores nothing.

use std::time::{Duration, Instant};

use portico_media::{
    MediaConfig,
    effects::{ProviderConfig, runninghub::RunningHubConfig},
};
use portico_proto::{beta::v1::AccessLevel, media::v1 as pb, workflow::v1::Tier};
use portico_runtime::config::Secret;
use portico_testkit::Backend;
use serde_json::{Value, json};
use tonic::Code;

use crate::{
    Service, code, details,
    fake_runninghub::{FakeRunningHub, Flaky, KEY},
    images,
    media::upload,
};

const ALICE: &str = "user-alice";
const BOB: &str = "user-bob";

fn caller(user: &str, tier: Tier, level: AccessLevel) -> Option<pb::EffectCaller> {
    Some(pb::EffectCaller {
        user_id: user.to_string(),
        tier: tier as i32,
        level: level as i32,
        region: None,
    })
}

fn effect(webapp: &str, parameters: Value, level: AccessLevel) -> pb::CreateEffectRequest {
    pb::CreateEffectRequest {
        name: "Oil painting".into(),
        description: "Brush strokes".into(),
        webapp_id: webapp.into(),
        image_node: Some(pb::NodeField {
            node_id: "12".into(),
            field_name: "image".into(),
        }),
        parameters_json: parameters.to_string(),
        min_level: level as i32,
        enabled: true,
        region: None,
    }
}

fn strength() -> Value {
    json!([{"name": "strength", "type": "number", "min": 0, "max": 1, "default": 0.6, "nodeId": "30", "fieldName": "value"}])
}

async fn photo(svc: &mut Service, user: &str) -> String {
    svc.client
        .upload(upload(user, images::jpeg(800, 600)))
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn start(
    svc: &mut Service,
    user: &str,
    effect_id: &str,
    media_id: &str,
    params: Value,
) -> Result<pb::EffectRun, tonic::Status> {
    svc.effects
        .start_run(pb::StartRunRequest {
            caller: caller(user, Tier::Free, AccessLevel::Basic),
            effect_id: effect_id.into(),
            media_id: media_id.into(),
            params_json: params.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get(svc: &mut Service, user: &str, id: &str) -> Result<pb::EffectRun, tonic::Status> {
    svc.effects
        .get_run(pb::GetRunRequest {
            user_id: user.into(),
            id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Polls the run until it is over.
async fn finished(svc: &mut Service, user: &str, id: &str, within: Duration) -> pb::EffectRun {
    let until = Instant::now() + within;
    loop {
        let run = get(svc, user, id).await.unwrap();
        if run.status == "succeeded" || run.status == "failed" {
            return run;
        }
        assert!(
            Instant::now() < until,
            "run still {} after {within:?}: {run:?}",
            run.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The service pointed at a fake RunningHub, with the client's timings shortened.
fn runninghub(url: String, timeout: Duration) -> impl FnOnce(&mut MediaConfig) {
    move |c| {
        let mut rh = RunningHubConfig::new(&url, Secret::new(KEY.to_string()));
        rh.timeout = timeout;
        rh.retry_base = Duration::from_millis(10);
        rh.retry_cap = Duration::from_millis(50);
        c.effects.provider = ProviderConfig::RunningHub(rh);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_effect_turns_a_photo_into_the_callers_new_media() {
    for backend in portico_testkit::backends() {
        let mut svc = Service::start(backend, &[]).await;
        let e = svc
            .effects
            .create_effect(effect("1", strength(), AccessLevel::Basic))
            .await
            .unwrap()
            .into_inner();
        let media_id = photo(&mut svc, ALICE).await;
        let run = start(&mut svc, ALICE, &e.id, &media_id, json!({"strength": 0.3}))
            .await
            .unwrap();
        assert_eq!(run.status, "queued");
        let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(30)).await;
        assert_eq!(done.status, "succeeded", "{backend:?}: {done:?}");
        assert_eq!(done.progress, Some(90), "the last step's progress stays");
        let result_id = done.result_media_id.clone().unwrap();
        assert_ne!(result_id, media_id);
        let result = done.result.unwrap();
        assert_eq!(result.id, result_id);
        assert!(
            result.variants.iter().any(|v| v.name == "large"),
            "stored through the pipeline"
        );
        // The caller's media, nobody else's.
        let mine = svc
            .client
            .get_media(pb::GetMediaRequest {
                user_id: ALICE.into(),
                id: result_id.clone(),
            })
            .await;
        assert!(mine.is_ok());
        let theirs = svc
            .client
            .get_media(pb::GetMediaRequest {
                user_id: BOB.into(),
                id: result_id,
            })
            .await;
        assert_eq!(theirs.unwrap_err().code(), Code::NotFound);
        // Another user's run reads as absent, listing and cancelling included.
        assert_eq!(get(&mut svc, BOB, &run.id).await.unwrap_err().code(), Code::NotFound);
        let cancel = svc
            .effects
            .cancel_run(pb::CancelRunRequest {
                user_id: BOB.into(),
                id: run.id.clone(),
            })
            .await;
        assert_eq!(cancel.unwrap_err().code(), Code::NotFound);
        let bobs = svc
            .effects
            .list_runs(pb::ListRunsRequest {
                user_id: BOB.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(bobs.into_inner().runs.is_empty());
        let alices = svc
            .effects
            .list_runs(pb::ListRunsRequest {
                user_id: ALICE.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(alices.into_inner().runs.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_shows_each_caller_what_their_level_and_region_allow() {
    for backend in portico_testkit::backends() {
        let mut svc = Service::start(backend, &[]).await;
        let basic = svc
            .effects
            .create_effect(effect("1", json!([]), AccessLevel::Basic))
            .await
            .unwrap()
            .into_inner();
        let premium = svc
            .effects
            .create_effect(effect("2", json!([]), AccessLevel::Premium))
            .await
            .unwrap()
            .into_inner();
        let mut eu = effect("3", json!([]), AccessLevel::None);
        eu.region = Some("eu".into());
        let eu = svc.effects.create_effect(eu).await.unwrap().into_inner();
        let mut off = effect("1", json!([]), AccessLevel::None);
        off.enabled = false;
        svc.effects.create_effect(off).await.unwrap();

        let ids = |r: pb::ListEffectsResponse| r.effects.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let seen = |level: AccessLevel, region: Option<&str>| pb::ListEffectsRequest {
            caller: Some(pb::EffectCaller {
                user_id: ALICE.into(),
                tier: Tier::Free as i32,
                level: level as i32,
                region: region.map(str::to_string),
            }),
            all: false,
        };
        let none = svc
            .effects
            .list_effects(seen(AccessLevel::None, None))
            .await
            .unwrap()
            .into_inner();
        assert!(ids(none).is_empty(), "{backend:?}");
        let b = svc
            .effects
            .list_effects(seen(AccessLevel::Basic, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(b), vec![basic.id.clone()]);
        let p = svc
            .effects
            .list_effects(seen(AccessLevel::Premium, Some("eu")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(p), vec![basic.id.clone(), premium.id.clone(), eu.id.clone()]);
        let all = svc
            .effects
            .list_effects(pb::ListEffectsRequest {
                caller: None,
                all: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.effects.len(), 4);

        // An effect the caller may not see cannot be run either: it reads as absent.
        let media_id = photo(&mut svc, ALICE).await;
        let hidden = start(&mut svc, ALICE, &premium.id, &media_id, json!({})).await;
        assert_eq!(hidden.unwrap_err().code(), Code::NotFound);

        // Edits are checked whole and seen at once (the cache is invalidated).
        let bad = svc
            .effects
            .update_effect(pb::UpdateEffectRequest {
                id: premium.id.clone(),
                webapp_id: Some("not-digits".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(details(&bad)["fields"]["webappId"].is_string(), "{:?}", details(&bad));
        let edited = svc
            .effects
            .update_effect(pb::UpdateEffectRequest {
                id: premium.id.clone(),
                min_level: Some(AccessLevel::Basic as i32),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(edited.webapp_id, "2", "the refused edit changed nothing");
        let b = svc
            .effects
            .list_effects(seen(AccessLevel::Basic, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids(b), vec![basic.id.clone(), premium.id.clone()]);
        svc.effects
            .delete_effect(pb::DeleteEffectRequest { id: basic.id.clone() })
            .await
            .unwrap();
        let gone = svc
            .effects
            .get_effect(pb::GetEffectRequest { id: basic.id })
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_and_runs_name_every_field_and_store_nothing() {
    let mut svc = Service::start(Backend::Sqlite, &[]).await;
    let mut bad = effect(
        "12ab",
        json!([{"name": "9x", "type": "number", "min": 2, "max": 1, "nodeId": "", "fieldName": "value"}]),
        AccessLevel::Basic,
    );
    bad.name = " ".into();
    bad.min_level = AccessLevel::Unspecified as i32;
    let err = svc.effects.create_effect(bad).await.unwrap_err();
    assert_eq!(code(&err), "VALIDATION_ERROR");
    let fields = details(&err)["fields"].clone();
    for f in [
        "name",
        "webappId",
        "minLevel",
        "parameters[0].name",
        "parameters[0].nodeId",
        "parameters[0].max",
    ] {
        assert!(fields.get(f).is_some(), "{f} not named: {fields}");
    }
    let unknown = effect(
        "1",
        json!([{"name": "x", "type": "number", "colour": "red", "nodeId": "1", "fieldName": "v"}]),
        AccessLevel::Basic,
    );
    let err = svc.effects.create_effect(unknown).await.unwrap_err();
    assert!(
        details(&err)["fields"]["parameters"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    assert_eq!(svc.rows("effects").await, 0);

    let e = svc
        .effects
        .create_effect(effect(
            "1",
            json!([{"name": "strength", "type": "number", "min": 0, "max": 1, "nodeId": "30", "fieldName": "value"},
                   {"name": "style", "type": "choice", "choices": ["warm", "cool"], "nodeId": "31", "fieldName": "text"}]),
            AccessLevel::Basic,
        ))
        .await
        .unwrap()
        .into_inner();
    let bobs = photo(&mut svc, BOB).await;
    let err = start(
        &mut svc,
        ALICE,
        &e.id,
        &bobs,
        json!({"strength": 2, "style": "hot", "extra": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "VALIDATION_ERROR");
    let fields = details(&err)["fields"].clone();
    for f in ["mediaId", "params.strength", "params.style", "params.extra"] {
        assert!(fields.get(f).is_some(), "{f} not named: {fields}");
    }
    let mine = photo(&mut svc, ALICE).await;
    let err = start(&mut svc, ALICE, &e.id, &mine, json!({"style": "warm"}))
        .await
        .unwrap_err();
    assert!(
        details(&err)["fields"]["params.strength"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    let err = start(&mut svc, ALICE, &e.id, &mine, json!([1])).await.unwrap_err();
    assert!(details(&err)["fields"]["params"].is_string());
    assert_eq!(svc.rows("effect_runs").await, 0, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_never_pass_the_tiers_limits() {
    for backend in portico_testkit::backends() {
        // Slow local tasks keep runs unfinished while the starts race.
        let mut svc = Service::start(
            backend,
            &[
                ("PORTICO_EFFECTS_LOCAL_DELAY_MS", "60000"),
                ("PORTICO_EFFECTS_FREE_PER_HOUR", "3"),
            ],
        )
        .await;
        let e = svc
            .effects
            .create_effect(effect("1", json!([]), AccessLevel::Basic))
            .await
            .unwrap()
            .into_inner();
        let media_id = photo(&mut svc, ALICE).await;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let mut client = svc.effects.clone();
            let (eid, mid) = (e.id.clone(), media_id.clone());
            tasks.push(tokio::spawn(async move {
                client
                    .start_run(pb::StartRunRequest {
                        caller: caller(ALICE, Tier::Free, AccessLevel::Basic),
                        effect_id: eid,
                        media_id: mid,
                        params_json: "{}".into(),
                    })
                    .await
            }));
        }
        let mut started = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => started.push(r.into_inner().id),
                Err(e) => {
                    assert_eq!(code(&e), "QUOTA_EXCEEDED", "{backend:?}: {e:?}");
                    let runs = svc
                        .effects
                        .list_runs(pb::ListRunsRequest {
                            user_id: ALICE.into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .runs;
                    let runs: Vec<_> = runs.iter().map(|r| (r.status.clone(), r.error.clone())).collect();
                    assert_eq!(details(&e)["kind"], "concurrent", "{backend:?}: {e:?} {runs:?}");
                    assert_eq!(details(&e)["limit"], 2);
                }
            }
        }
        assert_eq!(started.len(), 2, "{backend:?}: the free plan runs 2 at once");

        // Cancelling gives the slot back; the hour's count stays.
        let cancelled = svc
            .effects
            .cancel_run(pb::CancelRunRequest {
                user_id: ALICE.into(),
                id: started[0].clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (cancelled.status.as_str(), cancelled.error.as_deref()),
            ("failed", Some("cancelled"))
        );
        let again = svc
            .effects
            .cancel_run(pb::CancelRunRequest {
                user_id: ALICE.into(),
                id: started[0].clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.status, "failed", "a second cancel changes nothing");
        start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
        svc.effects
            .cancel_run(pb::CancelRunRequest {
                user_id: ALICE.into(),
                id: started[1].clone(),
            })
            .await
            .unwrap();
        let err = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap_err();
        assert_eq!(details(&err)["kind"], "hourly", "3 per hour on this plan");
        assert!(details(&err)["retryAfterSeconds"].as_u64().unwrap() >= 1);
        // Pro has its own allowance.
        let bobs = photo(&mut svc, BOB).await;
        let pro = svc
            .effects
            .start_run(pb::StartRunRequest {
                caller: caller(BOB, Tier::Pro, AccessLevel::Basic),
                effect_id: e.id.clone(),
                media_id: bobs,
                params_json: "{}".into(),
            })
            .await;
        assert!(pro.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runninghub_run_goes_through_the_documented_calls() {
    for backend in portico_testkit::backends() {
        let rh = FakeRunningHub::start(1, images::noise_png(64, 64)).await;
        let mut svc = Service::start_with(backend, &[], runninghub(rh.url.clone(), Duration::from_secs(5))).await;
        let e = svc
            .effects
            .create_effect(effect("1877265245566922753", strength(), AccessLevel::Basic))
            .await
            .unwrap()
            .into_inner();
        let media_id = photo(&mut svc, ALICE).await;
        let run = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
        let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(30)).await;
        assert_eq!(done.status, "succeeded", "{backend:?}: {done:?}");
        let sent: Value = serde_json::from_str(&rh.fake.bodies("/task/openapi/ai-app/run")[0]).unwrap();
        assert_eq!(sent["webappId"], "1877265245566922753");
        assert_eq!(
            sent["nodeInfoList"],
            json!([{"nodeId": "12", "fieldName": "image", "fieldValue": "api/uploaded-photo.png"},
                   {"nodeId": "30", "fieldName": "value", "fieldValue": 0.6}])
        );
        assert!(sent.get("webhookUrl").is_none(), "no webhook base configured");
        for path in [
            "/task/openapi/upload",
            "/task/openapi/ai-app/run",
            "/task/openapi/outputs",
            "/files/output.png",
        ] {
            assert_eq!(rh.fake.count(path), 1, "{path}");
        }
        assert!(rh.fake.count("/task/openapi/status") >= 2, "polled until it succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_answered_only_by_the_webhook_finishes_and_a_forged_call_is_refused() {
    let rh = FakeRunningHub::start(u32::MAX, images::noise_png(32, 32)).await;
    let mut svc = Service::start_with(
        Backend::Sqlite,
        &[("PORTICO_EFFECTS_WEBHOOK_BASE", "https://api.portico.example")],
        {
            let url = rh.url.clone();
            move |c| {
                runninghub(url, Duration::from_secs(5))(c);
                c.effects.poll_first = Duration::from_secs(20);
                c.effects.poll_cap = Duration::from_secs(60);
            }
        },
    )
    .await;
    let e = svc
        .effects
        .create_effect(effect("1", json!([]), AccessLevel::Basic))
        .await
        .unwrap()
        .into_inner();
    let media_id = photo(&mut svc, ALICE).await;
    let run = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while rh.fake.count("/task/openapi/ai-app/run") == 0
        || get(&mut svc, ALICE, &run.id).await.unwrap().progress < Some(25)
    {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent: Value = serde_json::from_str(&rh.fake.bodies("/task/openapi/ai-app/run")[0]).unwrap();
    let hook = url::Url::parse(sent["webhookUrl"].as_str().unwrap()).unwrap();
    assert_eq!(hook.path(), format!("/webhooks/effects/{}", run.id));
    let token = hook.query_pairs().find(|(k, _)| k == "token").unwrap().1.to_string();
    let body = |task: &str| json!({"event": "TASK_END", "taskId": task, "eventData": json!({"code": 0, "msg": "success", "data": []}).to_string()});
    let status = get(&mut svc, ALICE, &run.id).await.unwrap();
    assert_eq!(status.status, "queued", "the fake's task never finishes by polling");

    let forged = svc
        .effects
        .receive_webhook(pb::EffectWebhookRequest {
            run_id: run.id.clone(),
            token: "00".repeat(32),
            payload: body("x").to_string().into_bytes().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::NotFound);
    let task = "1900000000000000001";
    let wrong_task = svc
        .effects
        .receive_webhook(pb::EffectWebhookRequest {
            run_id: run.id.clone(),
            token: token.clone(),
            payload: body("42").to_string().into_bytes().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&wrong_task), "VALIDATION_ERROR");
    let accepted = svc
        .effects
        .receive_webhook(pb::EffectWebhookRequest {
            run_id: run.id.clone(),
            token,
            payload: body(task).to_string().into_bytes().into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(accepted.accepted);
    let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, "succeeded", "{done:?}");
    assert!(
        rh.fake.count("/task/openapi/status") <= 1,
        "with a webhook, polling is a slow fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_on_another_host_is_never_downloaded() {
    let rh = FakeRunningHub::start(0, images::noise_png(32, 32)).await;
    *rh.fake.output_url.lock().unwrap() = Some("http://169.254.169.254/latest/meta-data/".into());
    let mut svc = Service::start_with(Backend::Sqlite, &[], runninghub(rh.url.clone(), Duration::from_secs(5))).await;
    let e = svc
        .effects
        .create_effect(effect("1", json!([]), AccessLevel::Basic))
        .await
        .unwrap()
        .into_inner();
    let media_id = photo(&mut svc, ALICE).await;
    let run = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
    let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, "failed");
    assert!(done.error.unwrap().contains("not on the provider's host"));
    assert_eq!(svc.rows("media").await, 1, "only the photo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_flaky_provider_every_run_ends_and_almost_all_succeed() {
    let rh = FakeRunningHub::start(1, images::noise_png(32, 32)).await;
    *rh.fake.flaky.lock().unwrap() = Some(Flaky {
        fail: 0.3,
        hang: 0.05,
        hang_for: Duration::from_millis(600),
        latency: Duration::from_millis(5),
    });
    let mut svc = Service::start_with(
        Backend::Sqlite,
        &[
            ("PORTICO_EFFECTS_FREE_CONCURRENT", "50"),
            ("PORTICO_EFFECTS_BREAKER_FAILURES", "50"),
        ],
        runninghub(rh.url.clone(), Duration::from_millis(300)),
    )
    .await;
    let e = svc
        .effects
        .create_effect(effect("1", json!([]), AccessLevel::Basic))
        .await
        .unwrap()
        .into_inner();
    let media_id = photo(&mut svc, ALICE).await;
    let mut runs = Vec::new();
    for _ in 0..20 {
        runs.push(start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap().id);
    }
    let mut succeeded = 0;
    for id in &runs {
        let done = finished(&mut svc, ALICE, id, Duration::from_secs(60)).await;
        match done.status.as_str() {
            "succeeded" => succeeded += 1,
            _ => assert!(
                done.error.as_deref().is_some_and(|e| !e.is_empty()),
                "a failure says why: {done:?}"
            ),
        }
    }
    // A start whose answer was lost (a hang) fails rather than running twice; the rest succeed.
    assert!(succeeded >= 15, "{succeeded} of 20 succeeded");
    assert!(
        rh.fake.count("/task/openapi/ai-app/run") <= runs.len() * 4,
        "starts are not resubmitted blindly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_a_failing_provider_and_recovers() {
    let rh = FakeRunningHub::start(0, images::noise_png(32, 32)).await;
    *rh.fake.flaky.lock().unwrap() = Some(Flaky {
        fail: 1.0,
        hang: 0.0,
        hang_for: Duration::ZERO,
        latency: Duration::ZERO,
    });
    let mut svc = Service::start_with(
        Backend::Sqlite,
        &[
            ("PORTICO_EFFECTS_BREAKER_FAILURES", "3"),
            ("PORTICO_EFFECTS_RUN_ATTEMPTS", "1000"),
        ],
        {
            let url = rh.url.clone();
            move |c| {
                runninghub(url, Duration::from_secs(5))(c);
                c.effects.breaker.cool_down = Duration::from_millis(400);
            }
        },
    )
    .await;
    let fake = rh.fake.clone();
    let e = svc
        .effects
        .create_effect(effect("1", json!([]), AccessLevel::Basic))
        .await
        .unwrap()
        .into_inner();
    let media_id = photo(&mut svc, ALICE).await;
    let run = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each failed call is 4 attempts (the client's repeats); three open the breaker, then
    // only a probe per cool-down reaches the provider.
    let calls = fake.total();
    assert!((12..=40).contains(&calls), "{calls} calls while failing");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = fake.total() - calls;
    assert!(later <= 16, "the open breaker held calls back: {later} more in 1 s");
    assert_eq!(
        get(&mut svc, ALICE, &run.id).await.unwrap().status,
        "queued",
        "deferred, not failed"
    );
    // The provider recovers: the next probe closes the breaker and the run finishes.
    *fake.flaky.lock().unwrap() = None;
    let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, "succeeded", "{done:?}");
    drop(rh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_a_restart_of_the_service() {
    for backend in portico_testkit::backends() {
        let rh = FakeRunningHub::start(3, images::noise_png(32, 32)).await;
        let url = rh.url.clone();
        let mut svc = Service::start_with(backend, &[], move |c| {
            runninghub(url, Duration::from_secs(5))(c);
            c.effects.poll_first = Duration::from_millis(400);
            c.effects.poll_cap = Duration::from_millis(400);
        })
        .await;
        let e = svc
            .effects
            .create_effect(effect("1", json!([]), AccessLevel::Basic))
            .await
            .unwrap()
            .into_inner();
        let media_id = photo(&mut svc, ALICE).await;
        let run = start(&mut svc, ALICE, &e.id, &media_id, json!({})).await.unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while get(&mut svc, ALICE, &run.id).await.unwrap().progress < Some(25) {
            assert!(Instant::now() < until);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut svc = svc.restart().await;
        let done = finished(&mut svc, ALICE, &run.id, Duration::from_secs(30)).await;
        assert_eq!(done.status, "succeeded", "{backend:?}: {done:?}");
    }
}

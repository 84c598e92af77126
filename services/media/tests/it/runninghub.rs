//! The RunningHub client against a fake RunningHub over real HTTP: the documented calls and
//! envelope, retries only where repeating is safe, and downloads held to the provider's host
//! and the size cap.

use std::time::Duration;

use portico_effects::{
    params::NodeValue,
    run::{Call, Failure, RunStatus},
};
use portico_media::effects::runninghub::{RunningHub, RunningHubConfig};
use portico_runtime::config::Secret;
use serde_json::{Value, json};

use crate::fake_runninghub::{FakeRunningHub, Fault, KEY};

fn client(url: &str, key: &str) -> RunningHub {
    let mut config = RunningHubConfig::new(url, Secret::new(key.to_string()));
    config.timeout = Duration::from_millis(500);
    config.retry_base = Duration::from_millis(5);
    config.retry_cap = Duration::from_millis(20);
    config.max_output_bytes = 1024;
    RunningHub::new(config).unwrap()
}

fn nodes() -> Vec<NodeValue> {
    vec![
        NodeValue {
            node_id: "12".into(),
            field_name: "image".into(),
            field_value: json!("api/uploaded-photo.png"),
        },
        NodeValue {
            node_id: "30".into(),
            field_name: "value".into(),
            field_value: json!(0.6),
        },
    ]
}

#[tokio::test]
async fn a_task_goes_from_upload_to_downloaded_output() {
    let rh = FakeRunningHub::start(2, vec![7; 100]).await;
    let c = client(&rh.url, KEY);
    let name = c.upload(b"\x89PNG fake", "photo.png", "image/png").await.unwrap();
    assert_eq!(name, "api/uploaded-photo.png");
    let upload = &rh.fake.bodies("/task/openapi/upload")[0];
    assert!(upload.contains("name=\"fileType\"") && upload.contains("image") && upload.contains(KEY));

    let task = c
        .start(
            "1877265245566922753",
            &nodes(),
            Some("https://portico.example/webhooks/effects/r1?token=t"),
        )
        .await
        .unwrap();
    assert_eq!(task.status, Some(RunStatus::Queued));
    let sent: Value = serde_json::from_str(&rh.fake.bodies("/task/openapi/ai-app/run")[0]).unwrap();
    assert_eq!(
        sent,
        json!({"apiKey": KEY, "webappId": "1877265245566922753", "webhookUrl": "https://portico.example/webhooks/effects/r1?token=t",
               "nodeInfoList": [{"nodeId": "12", "fieldName": "image", "fieldValue": "api/uploaded-photo.png"},
                                {"nodeId": "30", "fieldName": "value", "fieldValue": 0.6}]})
    );

    assert_eq!(c.status(&task.task_id).await.unwrap(), RunStatus::Running);
    assert_eq!(c.status(&task.task_id).await.unwrap(), RunStatus::Running);
    assert_eq!(c.status(&task.task_id).await.unwrap(), RunStatus::Succeeded);
    let outputs = c.outputs(&task.task_id).await.unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].file_type, "png");
    assert_eq!(c.download(&outputs[0].file_url).await.unwrap(), vec![7; 100]);
    c.cancel(&task.task_id).await.unwrap();
    for body in rh.fake.bodies("/task/openapi/status") {
        assert!(body.contains(KEY), "every call carries apiKey");
    }
}

#[tokio::test]
async fn a_refusal_in_the_envelope_is_not_repeated() {
    let rh = FakeRunningHub::start(0, vec![]).await;
    let e = client(&rh.url, "wrong-key").status("1").await.unwrap_err();
    assert_eq!((e.call, e.failure), (Call::Status, Failure::Rejected));
    assert!(e.message.contains("412") && e.message.contains("TOKEN_INVALID"), "{e}");
    assert!(!e.to_string().contains("wrong-key"), "the key is never in an error");
    assert_eq!(rh.fake.count("/task/openapi/status"), 1);
}

#[tokio::test]
async fn reads_are_repeated_through_500s_and_lost_answers() {
    let rh = FakeRunningHub::start(0, vec![]).await;
    let c = client(&rh.url, KEY);
    let task = c.start("1", &nodes(), None).await.unwrap();
    rh.fake.fail(
        "/task/openapi/status",
        &[
            Fault::Status(500),
            Fault::HangAfter(Duration::from_secs(2)),
            Fault::Status(503),
        ],
    );
    assert_eq!(c.status(&task.task_id).await.unwrap(), RunStatus::Succeeded);
    assert_eq!(rh.fake.count("/task/openapi/status"), 4);

    // Past the repeats (3), the failure comes back.
    rh.fake.fail("/task/openapi/outputs", &[Fault::Status(502); 4]);
    let e = c.outputs(&task.task_id).await.unwrap_err();
    assert_eq!((e.failure, e.status), (Failure::Refused, Some(502)));
    assert_eq!(rh.fake.count("/task/openapi/outputs"), 4);
}

#[tokio::test]
async fn a_run_is_repeated_after_a_500_but_never_after_a_lost_answer() {
    let rh = FakeRunningHub::start(0, vec![]).await;
    let c = client(&rh.url, KEY);
    rh.fake
        .fail("/task/openapi/ai-app/run", &[Fault::Status(500), Fault::Status(429)]);
    c.start("1", &nodes(), None).await.unwrap();
    assert_eq!(rh.fake.count("/task/openapi/ai-app/run"), 3, "500 and 429 made no task");

    rh.fake
        .fail("/task/openapi/ai-app/run", &[Fault::HangAfter(Duration::from_secs(2))]);
    let e = c.start("1", &nodes(), None).await.unwrap_err();
    assert_eq!((e.call, e.failure), (Call::Run, Failure::AnswerLost));
    assert_eq!(
        rh.fake.count("/task/openapi/ai-app/run"),
        4,
        "the task may exist: not submitted again"
    );
}

#[tokio::test]
async fn outputs_come_only_from_the_providers_host_and_under_the_cap() {
    let rh = FakeRunningHub::start(0, vec![1; 2048]).await;
    let c = client(&rh.url, KEY);
    let port = rh.url.rsplit(':').next().unwrap().to_string();
    for url in [
        format!("http://localhost:{port}/files/output.png"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "file:///etc/passwd".to_string(),
        format!("http://user@127.0.0.1:{port}/files/output.png"),
        "https://runninghub.ai.evil.example/x.png".to_string(),
        "https://evilrunninghub.ai/x.png".to_string(),
    ] {
        assert!(!c.may_download(&url), "{url}");
        let e = c.download(&url).await.unwrap_err();
        assert_eq!(e.failure, Failure::Rejected, "{url}");
    }
    assert_eq!(rh.fake.count("/files/output.png"), 0, "nothing was fetched");
    assert!(c.may_download("https://rh-images.runninghub.ai/output/1.png"));
    assert!(c.may_download("https://runninghub.cn/1.png"));

    let e = c.download(&format!("{}/files/output.png", rh.url)).await.unwrap_err();
    assert_eq!(e.failure, Failure::Rejected);
    assert!(e.message.contains("over the cap"), "{e}");
}

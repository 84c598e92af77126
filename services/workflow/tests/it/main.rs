//! The workflow service over real gRPC, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod caps;
mod erasure;

use portico_proto::{
    ops::v1::ops_client::OpsClient,
    workflow::v1::{self as pb, workflow_service_client::WorkflowServiceClient},
};
use portico_runtime::{
    config::Vars,
    grpc::{PresentInternalToken, channel},
};
use portico_testkit::{Backend, TestDb, TestRedis};
use tokio_util::sync::CancellationToken;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

const TOKEN: &str = "test-internal-token-0123456789";

type Client = WorkflowServiceClient<InterceptedService<Channel, PresentInternalToken>>;

/// The Ops client the gateway uses (erasure, info), with the internal token.
type Ops = OpsClient<InterceptedService<Channel, PresentInternalToken>>;

/// A workflow service on an ephemeral port with its own fresh database.
struct Service {
    client: Client,
    ops: Ops,
    url: String,
    stop: CancellationToken,
}

impl Service {
    async fn start(db: &TestDb, extra: &[(&str, &str)]) -> Service {
        let mut vars = vec![
            ("PORTICO_WORKFLOW_DATABASE_URL", db.url.as_str()),
            ("PORTICO_WORKFLOW_GRPC_ADDR", "127.0.0.1:0"),
            ("PORTICO_INTERNAL_TOKEN", TOKEN),
        ];
        vars.extend_from_slice(extra);
        let config = portico_workflow::WorkflowConfig::from_vars(&Vars::from_map(vars)).unwrap();
        let listener = tokio::net::TcpListener::bind(config.service.grpc_addr).await.unwrap();
        let stop = CancellationToken::new();
        let running = portico_runtime::service::start_on(listener, config, stop.clone())
            .await
            .unwrap()
            .running;
        let url = format!("http://{}", running.addr);
        let ch = channel(&url, std::time::Duration::from_secs(30)).unwrap();
        let client = WorkflowServiceClient::with_interceptor(ch.clone(), PresentInternalToken::new(TOKEN).unwrap());
        let ops = OpsClient::with_interceptor(ch, PresentInternalToken::new(TOKEN).unwrap());
        Service { client, ops, url, stop }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn caller(user: &str, tier: pb::Tier) -> Option<pb::Caller> {
    Some(pb::Caller {
        user_id: user.to_string(),
        tier: tier as i32,
    })
}

/// The history of `user`, newest first (one page of up to 100).
async fn history(client: &mut Client, user: &str) -> Vec<pb::AnalysisSummary> {
    client
        .list_analyses(pb::ListAnalysesRequest {
            caller: caller(user, pb::Tier::Pro),
            limit: 100,
            cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .items
}

/// The catalogue code a failed call carries.
fn error_code(status: &tonic::Status) -> &str {
    status.metadata().get("x-portico-error-code").unwrap().to_str().unwrap()
}

fn request(user: &str, document: String) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        caller: caller(user, pb::Tier::Pro),
        document: document.into(),
        format: pb::InputFormat::Json as i32,
    }
}

/// A chain of `n` steps with a loop back every 50 steps through an if_else.
fn generated(n: usize) -> String {
    let steps: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            if i % 50 == 49 {
                serde_json::json!({"id": format!("s{i}"), "type": "if_else",
                    "config": {"conditions": [{"field": "n", "op": "gt", "value": i}]},
                    "branches": {"yes": format!("s{}", i + 1), "no": format!("s{}", i - 10)}})
            } else {
                serde_json::json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": format!("t{i}")},
                    "next": if i + 1 < n { serde_json::json!(format!("s{}", i + 1)) } else { serde_json::Value::Null }})
            }
        })
        .collect();
    serde_json::json!({"triggers": [{"id": "t", "type": "signup", "next": "s0"}], "steps": steps}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_internal_token_are_refused() {
    let db = TestDb::new(Backend::Sqlite, "workflow");
    let svc = Service::start(&db, &[]).await;
    let ch = channel(&svc.url, std::time::Duration::from_secs(5)).unwrap();
    let mut anonymous = WorkflowServiceClient::new(ch);
    let err = anonymous.list_rules(pb::ListRulesRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let rules = svc.client.clone().list_rules(pb::ListRulesRequest {}).await.unwrap();
    assert!(rules.into_inner().rules.len() >= 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_acts_for_a_named_user() {
    for backend in portico_testkit::backends() {
        let db = TestDb::new(backend, "workflow");
        let svc = Service::start(&db, &[]).await;
        let mut client = svc.client.clone();
        let mut req = request("", generated(3));
        let err = client.analyze(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(String::from_utf8_lossy(err.details()).contains("caller.userId"));
        req.caller = None;
        let err = client.analyze(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let err = client
            .list_analyses(pb::ListAnalysesRequest {
                caller: caller("u", pb::Tier::Free),
                limit: 101,
                cursor: String::new(),
            })
            .await
            .unwrap_err();
        assert!(String::from_utf8_lossy(err.details()).contains("limit"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_workflows_are_analysed_up_to_the_step_cap() {
    for backend in portico_testkit::backends() {
        let db = TestDb::new(backend, "workflow");
        let svc = Service::start(&db, &[]).await;
        let mut client = svc.client.clone();
        let r = client
            .analyze(request("big", generated(5000)))
            .await
            .unwrap()
            .into_inner();
        let a = r.analysis.unwrap();
        assert_eq!(a.stats.unwrap().steps, 5000);
        assert!(a.issues.iter().any(|f| f.rule == "loop-without-wait"), "{:?}", a.issues);
        let err = client.analyze(request("big", generated(5001))).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.metadata().get("x-portico-error-code").unwrap().to_str().unwrap(),
            "PAYLOAD_TOO_LARGE"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_results_through_redis() {
    let redis = TestRedis::start();
    let url = redis.url();
    let db = TestDb::new(Backend::Sqlite, "workflow");
    let shared = [("PORTICO_REDIS_URL", url.as_str()), ("PORTICO_REDIS_KEY_PREFIX", "wf:")];
    let a = Service::start(&db, &shared).await;
    let b = Service::start(&db, &shared).await;
    let doc = generated(120);
    let first = a
        .client
        .clone()
        .analyze(request("u1", doc.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.analysis.unwrap().cached);
    let second = b.client.clone().analyze(request("u2", doc)).await.unwrap().into_inner();
    assert!(
        second.analysis.unwrap().cached,
        "replica b found replica a's result in Redis"
    );
}

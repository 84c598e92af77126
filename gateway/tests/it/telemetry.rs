//! One trace per request across gateway and service, exported over OTLP to a real receiver.

use std::time::Duration;

use portico_runtime::config::{CommonConfig, Vars};
use portico_testkit::otlp::Receiver;
use reqwest::StatusCode;

use crate::support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_from_the_client_through_the_service() {
    let (receiver, addr) = Receiver::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let common = CommonConfig::from_vars(&Vars::from_map([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("PORTICO_LOG", "info".to_string()),
    ]))
    .unwrap();
    let guard = portico_runtime::telemetry::init("portico-test", &common).unwrap();

    // Behind a trusted proxy the caller's trace is continued.
    let proxied = Stack::with(
        crate::support::Options::new(portico_testkit::Backend::Sqlite).var("PORTICO_TRUSTED_PROXIES", "127.0.0.1/32"),
    )
    .await;
    // Straight from a public client it is not: a client must not decide what is sampled.
    let public = Stack::start(portico_testkit::Backend::Sqlite).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let untrusted_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    for (s, trace) in [(&proxied, trace_id), (&public, untrusted_trace)] {
        let (token, _, _) = s.signup("traced@example.com").await;
        let res = s
            .http
            .get(s.url("/v1/beta/user-access"))
            .bearer_auth(&token)
            .header("traceparent", format!("00-{trace}-{client_span}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    drop(guard); // flushes the batch exporter

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<_> = receiver.spans().into_iter().map(|r| r.span).collect();
        let ours: Vec<_> = spans.iter().filter(|s| hex::encode(&s.trace_id) == trace_id).collect();
        let http = ours.iter().find(|s| s.name == "GET /v1/beta/user-access");
        let grpc = ours.iter().find(|s| s.name == "beta/GetUserAccess");
        let linked = spans.iter().find(|s| {
            s.name == "GET /v1/beta/user-access" && s.links.iter().any(|l| hex::encode(&l.trace_id) == untrusted_trace)
        });
        if let (Some(http), Some(grpc), Some(linked)) = (http, grpc, linked) {
            assert_eq!(
                hex::encode(&http.parent_span_id),
                client_span,
                "the gateway continues a trusted proxy's trace"
            );
            assert_eq!(
                grpc.parent_span_id, http.span_id,
                "the service's span is a child of the gateway's"
            );
            assert_ne!(
                hex::encode(&linked.trace_id),
                untrusted_trace,
                "a public caller starts no trace of ours"
            );
            assert!(linked.parent_span_id.is_empty(), "the gateway's span is a root");
            assert!(
                !spans.iter().any(|s| hex::encode(&s.trace_id) == untrusted_trace),
                "nothing is recorded under the public caller's trace id"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans never arrived: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

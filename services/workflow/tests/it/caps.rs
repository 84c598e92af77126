//! Hostile documents are refused by the reader's caps before anything is stored or counted.

use std::fmt::Write;

use tonic::Code;

use crate::{Service, caller, error_code, history, pb};

/// One root element carrying 40,000 `xmlns:pN="urn:x"` declarations, one per line, padded with
/// spaces inside the tag to exactly 1 MiB.
fn namespace_flood() -> String {
    const SIZE: usize = 1 << 20;
    let mut xml = String::with_capacity(SIZE);
    xml.push_str(r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL""#);
    for i in 0..40_000 {
        write!(xml, "\n    xmlns:p{i}=\"urn:x\"").unwrap();
    }
    let tail = r#"><process id="p"/></definitions>"#;
    xml.extend(std::iter::repeat_n(' ', SIZE - xml.len() - tail.len()));
    xml.push_str(tail);
    xml
}

const SMALL_BPMN: &str = r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="p"><startEvent id="t"/><sequenceFlow sourceRef="t" targetRef="e"/><endEvent id="e"/></process>
</definitions>"#;

fn bpmn(user: &str, document: String) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        caller: caller(user, pb::Tier::Free),
        document: document.into(),
        format: pb::InputFormat::Bpmn as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_of_namespace_declarations_is_refused_and_nothing_is_stored() {
    for backend in portico_testkit::backends() {
        let db = portico_testkit::TestDb::new(backend, "workflow");
        let svc = Service::start(&db, &[("PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR", "3")]).await;
        let mut client = svc.client.clone();
        let flood = namespace_flood();
        assert_eq!(flood.len(), 1 << 20);

        let err = client.analyze(bpmn("hostile", flood)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(error_code(&err), "PAYLOAD_TOO_LARGE");
        let details: serde_json::Value = serde_json::from_slice(err.details()).unwrap();
        let problem = &details["problems"][0];
        assert_eq!(problem["pointer"], "", "{details}");
        let message = problem["message"].as_str().unwrap();
        assert!(message.contains("maxXmlNamespaces = 64"), "{message}");
        assert!(message.contains("line 65, column 5"), "{message}");
        assert!(err.message().contains("maxXmlNamespaces"), "{}", err.message());
        assert_eq!(details["limits"]["maxXmlNamespaces"], 64);

        // No history row, and the whole quota is still there: the next analysis is the first.
        assert!(history(&mut client, "hostile").await.is_empty());
        let ok = client
            .analyze(bpmn("hostile", SMALL_BPMN.to_owned()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.quota.unwrap().remaining, 2, "the refused document used no quota");
        assert_eq!(history(&mut client, "hostile").await.len(), 1);
        drop(svc);
        eprintln!("a_megabyte_of_namespace_declarations_is_refused_and_nothing_is_stored passed on {backend:?}");
    }
}

//! Account erasure over the Ops service, called as the gateway calls it.

use portico_proto::ops::v1 as ops;
use portico_testkit::TestDb;
use tonic::Code;

use crate::{Ops, Service, caller, error_code, generated, history, pb, request};

async fn erase(ops: &mut Ops, user_id: &str) -> u64 {
    ops.erase_user(ops::EraseUserRequest {
        user_id: user_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .removed
}

fn free(user: &str, document: String) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        caller: caller(user, pb::Tier::Free),
        ..request(user, document)
    }
}

// Erasure removes the user's analyses and quota row (and the cached "quota spent" refusal),
// leaves another user's alone, and is idempotent: the second erase is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_analyses_and_quota_once() {
    for backend in portico_testkit::backends() {
        let db = TestDb::new(backend, "workflow");
        let svc = Service::start(&db, &[("PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR", "3")]).await;
        let (mut client, mut ops) = (svc.client.clone(), svc.ops.clone());
        for n in 1..=3 {
            client.analyze(free("gone", generated(n))).await.unwrap();
        }
        // The fourth is refused, and the refusal is now remembered in memory.
        let spent = client.analyze(free("gone", generated(4))).await.unwrap_err();
        assert_eq!(error_code(&spent), "QUOTA_EXCEEDED");
        for n in 1..=2 {
            client.analyze(free("kept", generated(n))).await.unwrap();
        }
        let kept_before = history(&mut client, "kept").await;
        let first = history(&mut client, "gone").await;
        assert_eq!(first.len(), 3);

        // Three analyses and one quota row.
        assert_eq!(erase(&mut ops, "gone").await, 4);

        assert!(history(&mut client, "gone").await.is_empty());
        let gone = client
            .get_analysis(pb::GetAnalysisRequest {
                caller: caller("gone", pb::Tier::Pro),
                id: first[0].id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
        assert_eq!(history(&mut client, "kept").await, kept_before);
        // Neither the quota row nor the in-memory refusal survived.
        let again = client.analyze(free("gone", generated(4))).await.unwrap().into_inner();
        assert_eq!(again.quota.unwrap().remaining, 2);

        // The analysis just made is the only thing left to erase; after that, nothing.
        assert_eq!(erase(&mut ops, "gone").await, 2);
        assert_eq!(erase(&mut ops, "gone").await, 0, "a second erase finds nothing");
        assert_eq!(erase(&mut ops, "never-seen").await, 0);
        let bad = ops
            .erase_user(ops::EraseUserRequest { user_id: String::new() })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(history(&mut client, "kept").await, kept_before);
        drop(svc);
        eprintln!("erasure_removes_analyses_and_quota_once passed on {backend:?}");
    }
}

//! Account erasure over the Ops service, called as the gateway calls it.

use std::time::{Duration, Instant};

use portico_proto::{beta::v1 as pb, ops::v1 as ops};
use portico_runtime::db::now_ms;
use portico_testkit::TestDb;

use crate::{Client, Ops, Service, invites::create, on_every_backend};

async fn erase(ops: &mut Ops, user_id: &str) -> u64 {
    ops.erase_user(ops::EraseUserRequest {
        user_id: user_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .removed
}

async fn join(c: &mut Client, user_id: &str, code: &str) {
    c.join(pb::JoinRequest {
        user_id: user_id.into(),
        code: code.into(),
    })
    .await
    .unwrap();
}

async fn events(c: &mut Client, user_id: &str, n: usize) {
    let ev = pb::AnalyticsEvent {
        feature: "hd_export".into(),
        action: "open".into(),
        properties_json: "{}".into(),
        occurred_at_ms: None,
    };
    c.record_events(pb::RecordEventsRequest {
        user_id: user_id.into(),
        events: vec![ev; n],
    })
    .await
    .unwrap();
}

async fn access(c: &mut Client, user_id: &str) -> pb::UserAccess {
    c.get_user_access(pb::GetUserAccessRequest {
        user_id: user_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn uses(c: &mut Client, code: &str) -> i32 {
    c.get_invite_code(pb::GetInviteCodeRequest { code: code.into() })
        .await
        .unwrap()
        .into_inner()
        .uses
}

// Erasure removes the user's membership, redemptions and events (and the cached access), leaves
// another user's alone, keeps the codes' use counts, and is idempotent: the second erase is 0.
on_every_backend!(erasure_removes_membership_redemptions_and_events_once, |svc| {
    let (mut c, mut ops) = (svc.client.clone(), svc.ops.clone());
    create(&mut c, "ERASE_BASIC", pb::AccessLevel::Basic, 10).await;
    create(&mut c, "ERASE_DEV", pb::AccessLevel::Developer, 10).await;
    join(&mut c, "gone", "ERASE_BASIC").await;
    join(&mut c, "gone", "ERASE_DEV").await;
    events(&mut c, "gone", 3).await;
    join(&mut c, "kept", "ERASE_BASIC").await;
    events(&mut c, "kept", 2).await;
    // Cached before the erasure, so a stale entry would show.
    assert_eq!(
        access(&mut c, "gone").await.access_level,
        pb::AccessLevel::Developer as i32
    );

    // 1 membership + 2 redemptions + 3 events.
    assert_eq!(erase(&mut ops, "gone").await, 6);

    let gone = access(&mut c, "gone").await;
    assert_eq!(gone.access_level, pb::AccessLevel::None as i32);
    assert_eq!(gone.joined_at_ms, None);
    assert!(gone.features.iter().all(|f| !f.enabled));
    let kept = access(&mut c, "kept").await;
    assert_eq!(kept.access_level, pb::AccessLevel::Basic as i32);
    let users = c
        .list_users(pb::ListUsersRequest { limit: 50, offset: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        users.users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        vec!["kept"]
    );
    let summary = c
        .analytics_summary(pb::AnalyticsSummaryRequest {
            from_ms: now_ms() - 60_000,
            to_ms: now_ms() + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.total_events, summary.unique_users), (2, 1));
    assert_eq!(
        (uses(&mut c, "ERASE_BASIC").await, uses(&mut c, "ERASE_DEV").await),
        (2, 1),
        "the uses happened; erasure does not give them back"
    );

    assert_eq!(erase(&mut ops, "gone").await, 0, "a second erase finds nothing");
    assert_eq!(erase(&mut ops, "never-seen").await, 0);
    assert_eq!(erase(&mut ops, "   ").await, 0, "not a user id: it cannot own anything");
    let bad = ops
        .erase_user(ops::EraseUserRequest { user_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(access(&mut c, "kept").await.access_level, pb::AccessLevel::Basic as i32);
});

// With Redis, an erasure on one replica drops the cached access on the others at once (not
// after the in-memory lifetime, which is set far beyond the test's patience here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_drops_the_cached_access_on_every_replica() {
    let Some(redis) = portico_testkit::redis_url() else {
        eprintln!("skipped: PORTICO_TEST_REDIS_URL is not set");
        return;
    };
    for backend in portico_testkit::backends() {
        let db = TestDb::new(backend, "beta");
        let url = db.url.clone();
        let prefix = format!("portico-test-{}:", uuid::Uuid::new_v4().simple());
        let extra = [
            ("PORTICO_REDIS_URL", redis.as_str()),
            ("PORTICO_REDIS_KEY_PREFIX", prefix.as_str()),
            ("PORTICO_CACHE_L1_TTL_MS", "600000"),
        ];
        let a = Service::start_with(&url, Some(db), &extra).await;
        let b = Service::start_with(&url, None, &extra).await;
        let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
        create(&mut ca, "REPLICA_PREM", pb::AccessLevel::Premium, 10).await;

        // Wait until replica B follows invalidations: a level change made on A must reach it.
        assert_eq!(
            access(&mut cb, "probe").await.access_level,
            pb::AccessLevel::None as i32
        );
        ca.set_user_level(pb::SetUserLevelRequest {
            user_id: "probe".into(),
            access_level: pb::AccessLevel::Basic as i32,
        })
        .await
        .unwrap();
        eventually(&mut cb, "probe", pb::AccessLevel::Basic).await;

        join(&mut ca, "gone", "REPLICA_PREM").await;
        eventually(&mut cb, "gone", pb::AccessLevel::Premium).await;
        let mut ops = a.ops.clone();
        assert_eq!(erase(&mut ops, "gone").await, 2);
        eventually(&mut cb, "gone", pb::AccessLevel::None).await;
        drop(b);
        drop(a);
        eprintln!("erasure_drops_the_cached_access_on_every_replica passed on {backend:?}");
    }
}

/// Polls `user_id`'s access on a replica until it shows `level` (5 s at most).
async fn eventually(c: &mut Client, user_id: &str, level: pb::AccessLevel) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = access(c, user_id).await.access_level;
        if now == level as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user_id} still at {now}, expected {level:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

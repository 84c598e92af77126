use portico_proto::beta::v1::{self as pb, beta_service_client::BetaServiceClient};
use portico_runtime::{ErrorCode, Problem, db::now_ms};
use tonic::{Code, Request};

use crate::{Client, on_every_backend};

pub(crate) async fn create(client: &mut Client, code: &str, level: pb::AccessLevel, max_uses: i32) -> pb::InviteCode {
    client
        .create_invite_code(pb::CreateInviteCodeRequest {
            code: code.into(),
            access_level: level as i32,
            max_uses,
            expires_at_ms: None,
            created_by: "admin".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn code_of(status: &tonic::Status) -> ErrorCode {
    Problem::from_status(status).code
}

on_every_backend!(exactly_max_uses_of_1000_concurrent_joins_succeed, |svc| {
    let mut client = svc.client.clone();
    create(&mut client, "TEN_USES", pb::AccessLevel::Basic, 10).await;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let mut c = svc.client.clone();
        tasks.push(tokio::spawn(async move {
            c.join(pb::JoinRequest {
                user_id: format!("user-{i}"),
                code: "TEN_USES".into(),
            })
            .await
        }));
    }
    let (mut ok, mut exhausted, mut other) = (0, 0, Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) if code_of(&s) == ErrorCode::InviteExhausted => exhausted += 1,
            Err(s) => other.push(s.to_string()),
        }
    }
    assert!(
        other.is_empty(),
        "unexpected failures: {:?}",
        &other[..other.len().min(3)]
    );
    assert_eq!((ok, exhausted), (10, 990));
    let code = client
        .get_invite_code(pb::GetInviteCodeRequest {
            code: "TEN_USES".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code.uses, 10);
    let users = client
        .list_users(pb::ListUsersRequest { limit: 200, offset: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.total, 10);
});

on_every_backend!(joining_twice_is_idempotent_and_levels_never_drop, |svc| {
    let mut c = svc.client.clone();
    create(&mut c, "BASIC_2", pb::AccessLevel::Basic, 2).await;
    create(&mut c, "DEV_1", pb::AccessLevel::Developer, 5).await;
    let first = c
        .join(pb::JoinRequest {
            user_id: "u1".into(),
            code: "basic_2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.upgraded);
    let again = c
        .join(pb::JoinRequest {
            user_id: "u1".into(),
            code: "BASIC_2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.upgraded);
    let code = c
        .get_invite_code(pb::GetInviteCodeRequest { code: "BASIC_2".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code.uses, 1, "a repeated join consumes no use");

    let up = c
        .join(pb::JoinRequest {
            user_id: "u1".into(),
            code: "DEV_1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(up.upgraded);
    assert_eq!(up.access.unwrap().access_level, pb::AccessLevel::Developer as i32);
    create(&mut c, "BASIC_B", pb::AccessLevel::Basic, 2).await;
    let down = c
        .join(pb::JoinRequest {
            user_id: "u1".into(),
            code: "BASIC_B".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!down.upgraded);
    let access = down.access.unwrap();
    assert_eq!(
        access.access_level,
        pb::AccessLevel::Developer as i32,
        "a lower code never lowers"
    );
    assert!(
        access.features.iter().all(|f| f.enabled),
        "developers see every feature"
    );
});

on_every_backend!(unusable_codes_are_refused_with_their_reason, |svc| {
    let mut c = svc.client.clone();
    let v = c
        .validate_invite(pb::ValidateInviteRequest { code: "NOPE".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!v.valid);
    assert_eq!(v.problem, pb::InviteProblem::NotFound as i32);
    let e = c
        .join(pb::JoinRequest {
            user_id: "u".into(),
            code: "NOPE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InviteNotFound);

    create(&mut c, "ONE_USE", pb::AccessLevel::Premium, 1).await;
    let v = c
        .validate_invite(pb::ValidateInviteRequest { code: "ONE_USE".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    assert_eq!((v.remaining_uses, v.access_level), (1, pb::AccessLevel::Premium as i32));
    c.join(pb::JoinRequest {
        user_id: "a".into(),
        code: "ONE_USE".into(),
    })
    .await
    .unwrap();
    let v = c
        .validate_invite(pb::ValidateInviteRequest { code: "ONE_USE".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.problem, pb::InviteProblem::Exhausted as i32);
    let e = c
        .join(pb::JoinRequest {
            user_id: "b".into(),
            code: "ONE_USE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InviteExhausted);

    create(&mut c, "OFF_CODE", pb::AccessLevel::Basic, 5).await;
    c.update_invite_code(pb::UpdateInviteCodeRequest {
        code: "OFF_CODE".into(),
        active: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = c
        .join(pb::JoinRequest {
            user_id: "b".into(),
            code: "OFF_CODE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InviteInactive);

    create(&mut c, "SOON", pb::AccessLevel::Basic, 5).await;
    c.update_invite_code(pb::UpdateInviteCodeRequest {
        code: "SOON".into(),
        expires_at_ms: Some(now_ms() + 150),
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = c
        .join(pb::JoinRequest {
            user_id: "b".into(),
            code: "SOON".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::InviteExpired);
    let v = c
        .validate_invite(pb::ValidateInviteRequest { code: "SOON".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.problem, pb::InviteProblem::Expired as i32);
});

on_every_backend!(admin_inputs_are_validated_and_nothing_is_stored, |svc| {
    let mut c = svc.client.clone();
    let e = c
        .create_invite_code(pb::CreateInviteCodeRequest {
            code: "bad code!".into(),
            access_level: pb::AccessLevel::None as i32,
            max_uses: 0,
            expires_at_ms: Some(1),
            created_by: "a".into(),
        })
        .await
        .unwrap_err();
    let p = Problem::from_status(&e);
    assert_eq!(p.code, ErrorCode::ValidationError);
    let fields = p.details.unwrap()["fields"].clone();
    for f in ["code", "accessLevel", "maxUses", "expiresAt"] {
        assert!(fields.get(f).is_some(), "{f} not named in {fields}");
    }
    let list = c
        .list_invite_codes(pb::ListInviteCodesRequest { limit: 10, offset: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total, 0);

    let generated = create(&mut c, "", pb::AccessLevel::Advanced, 3).await;
    assert!(generated.code.starts_with("BETA-"));
    let dup = c
        .create_invite_code(pb::CreateInviteCodeRequest {
            code: generated.code.clone(),
            access_level: pb::AccessLevel::Basic as i32,
            max_uses: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&dup), ErrorCode::Conflict);
    c.join(pb::JoinRequest {
        user_id: "x".into(),
        code: generated.code.clone(),
    })
    .await
    .unwrap();
    let below = c
        .update_invite_code(pb::UpdateInviteCodeRequest {
            code: generated.code.clone(),
            max_uses: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&below), ErrorCode::ValidationError);
});

on_every_backend!(feature_table_changes_reach_cached_user_access, |svc| {
    let mut c = svc.client.clone();
    create(&mut c, "PREM", pb::AccessLevel::Premium, 5).await;
    c.join(pb::JoinRequest {
        user_id: "u".into(),
        code: "PREM".into(),
    })
    .await
    .unwrap();
    let before = c
        .get_user_access(pb::GetUserAccessRequest { user_id: "u".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(before.features.iter().any(|f| f.name == "hd_export" && f.enabled));
    c.set_features(pb::SetFeaturesRequest {
        features: vec![
            pb::Feature {
                name: "hd_export".into(),
                min_level: pb::AccessLevel::Developer as i32,
                description: String::new(),
            },
            pb::Feature {
                name: "new_thing".into(),
                min_level: pb::AccessLevel::Basic as i32,
                description: "x".into(),
            },
        ],
    })
    .await
    .unwrap();
    let after = c
        .get_user_access(pb::GetUserAccessRequest { user_id: "u".into() })
        .await
        .unwrap()
        .into_inner();
    let flags: Vec<(String, bool)> = after.features.into_iter().map(|f| (f.name, f.enabled)).collect();
    assert_eq!(
        flags,
        vec![("hd_export".to_string(), false), ("new_thing".to_string(), true)]
    );

    c.set_user_level(pb::SetUserLevelRequest {
        user_id: "u".into(),
        access_level: pb::AccessLevel::Developer as i32,
    })
    .await
    .unwrap();
    let raised = c
        .get_user_access(pb::GetUserAccessRequest { user_id: "u".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        raised.access_level,
        pb::AccessLevel::Developer as i32,
        "a level change invalidates the cache"
    );

    let dup = c
        .set_features(pb::SetFeaturesRequest {
            features: vec![
                pb::Feature {
                    name: "a".into(),
                    min_level: 2,
                    description: String::new(),
                },
                pb::Feature {
                    name: "a".into(),
                    min_level: 9,
                    description: String::new(),
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&dup), ErrorCode::ValidationError);
});

on_every_backend!(analytics_summary_counts_events_users_and_levels, |svc| {
    let mut c = svc.client.clone();
    create(&mut c, "BASIC_CODE", pb::AccessLevel::Basic, 5).await;
    c.join(pb::JoinRequest {
        user_id: "member".into(),
        code: "BASIC_CODE".into(),
    })
    .await
    .unwrap();
    let ev = |feature: &str| pb::AnalyticsEvent {
        feature: feature.into(),
        action: "open".into(),
        properties_json: "{}".into(),
        occurred_at_ms: None,
    };
    c.record_events(pb::RecordEventsRequest {
        user_id: "member".into(),
        events: vec![ev("hd_export"), ev("hd_export"), ev("api_access")],
    })
    .await
    .unwrap();
    c.record_events(pb::RecordEventsRequest {
        user_id: "outsider".into(),
        events: vec![ev("hd_export")],
    })
    .await
    .unwrap();
    let too_many = c
        .record_events(pb::RecordEventsRequest {
            user_id: "x".into(),
            events: (0..101).map(|_| ev("a")).collect(),
        })
        .await;
    assert_eq!(too_many.unwrap_err().code(), Code::InvalidArgument);
    let s = c
        .analytics_summary(pb::AnalyticsSummaryRequest {
            from_ms: now_ms() - 60_000,
            to_ms: now_ms() + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.total_events, s.unique_users), (4, 2));
    let hd = s.features.iter().find(|f| f.feature == "hd_export").unwrap();
    assert_eq!((hd.events, hd.unique_users), (3, 2));
    let basic = hd
        .by_level
        .iter()
        .find(|l| l.access_level == pb::AccessLevel::Basic as i32)
        .unwrap();
    let none = hd
        .by_level
        .iter()
        .find(|l| l.access_level == pb::AccessLevel::None as i32)
        .unwrap();
    assert_eq!((basic.events, none.events), (2, 1));
});

#[tokio::test]
async fn calls_without_the_internal_token_are_refused_but_health_answers() {
    let svc = crate::Service::start(portico_testkit::Backend::Sqlite).await;
    let ch = portico_runtime::grpc::channel(&svc.url, std::time::Duration::from_secs(5)).unwrap();
    let mut anonymous = BetaServiceClient::new(ch.clone());
    let e = anonymous
        .get_user_access(Request::new(pb::GetUserAccessRequest { user_id: "u".into() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = BetaServiceClient::with_interceptor(
        ch.clone(),
        portico_runtime::grpc::PresentInternalToken::new("wrong-token-0123456789").unwrap(),
    );
    let e = wrong
        .get_user_access(pb::GetUserAccessRequest { user_id: "u".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: portico_beta::service::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

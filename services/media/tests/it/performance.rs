//! Mobile performance events: histograms per connection and device, percentiles within 2 %.

use portico_proto::media::v1 as pb;
use portico_runtime::db::now_ms;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{Client, Service, code, details};

pub(crate) fn event(
    t: &str,
    duration_ms: f64,
    connection: pb::Connection,
    device: &str,
    success: bool,
) -> pb::ClientEvent {
    pb::ClientEvent {
        r#type: t.to_string(),
        duration_ms,
        bytes: 1000,
        connection: connection as i32,
        device: device.to_string(),
        os: "Android 15".to_string(),
        app_version: "3.2.1".to_string(),
        success,
        occurred_at_ms: 0,
    }
}

pub(crate) async fn record(client: &mut Client, user: &str, events: &[pb::ClientEvent]) {
    for batch in events.chunks(100) {
        let r = client
            .record_events(pb::RecordEventsRequest {
                user_id: user.to_string(),
                events: batch.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted as usize, batch.len());
    }
}

pub(crate) async fn report(
    client: &mut Client,
    user: &str,
    group_by: pb::GroupBy,
    t: &str,
) -> Vec<pb::PerformanceGroup> {
    client
        .get_performance(pb::GetPerformanceRequest {
            user_id: user.to_string(),
            from_ms: now_ms() - 3_600_000,
            to_ms: now_ms() + 1000,
            group_by: group_by as i32,
            r#type: t.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups
}

fn exact(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= want * 0.02, "{what}: {got} vs exact {want}");
}

fn check(group: &pb::PerformanceGroup, durations: &[f64], successes: usize) {
    assert_eq!(group.count as usize, durations.len(), "{}", group.key);
    assert!((group.success_rate - successes as f64 / durations.len() as f64).abs() < 1e-9);
    assert_close(group.p50_ms, exact(durations, 0.50), &format!("{} p50", group.key));
    assert_close(group.p95_ms, exact(durations, 0.95), &format!("{} p95", group.key));
    assert_close(group.p99_ms, exact(durations, 0.99), &format!("{} p99", group.key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_per_connection_and_device_match_the_exact_ones() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let mut rng = StdRng::seed_from_u64(42);
        let mut latency = |lo: f64, hi: f64| 10f64.powf(rng.random_range(lo.log10()..hi.log10()));

        // Alice: uploads on 4G (one in four fails) and on wifi, screens on 4G.
        let alice_4g: Vec<f64> = (0..300).map(|_| latency(50.0, 8000.0)).collect();
        let alice_wifi: Vec<f64> = (0..200).map(|_| latency(5.0, 900.0)).collect();
        let alice_screens: Vec<f64> = (0..50).map(|_| latency(1.0, 100.0)).collect();
        let mut events = Vec::new();
        events.extend(
            alice_4g
                .iter()
                .enumerate()
                .map(|(i, d)| event("upload", *d, pb::Connection::Connection4g, "Pixel 8", i % 4 != 0)),
        );
        events.extend(
            alice_wifi
                .iter()
                .map(|d| event("upload", *d, pb::Connection::Wifi, "iPhone 15", true)),
        );
        events.extend(
            alice_screens
                .iter()
                .map(|d| event("screen", *d, pb::Connection::Connection4g, "Pixel 8", true)),
        );
        record(&mut client, "alice", &events).await;
        // Bob: slow uploads on 4G.
        let bob_4g: Vec<f64> = (0..100).map(|_| latency(10_000.0, 60_000.0)).collect();
        let bob: Vec<_> = bob_4g
            .iter()
            .map(|d| event("upload", *d, pb::Connection::Connection4g, "Pixel 8", false))
            .collect();
        record(&mut client, "bob", &bob).await;

        // Alice's uploads by connection: slowest network first.
        let groups = report(&mut client, "alice", pb::GroupBy::Connection, "upload").await;
        let keys: Vec<&str> = groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["4g", "wifi"]);
        check(&groups[0], &alice_4g, 225);
        check(&groups[1], &alice_wifi, 200);

        // Every type together.
        let groups = report(&mut client, "alice", pb::GroupBy::Connection, "").await;
        let all_4g: Vec<f64> = alice_4g.iter().chain(&alice_screens).copied().collect();
        check(&groups[0], &all_4g, 275);

        // By device.
        let groups = report(&mut client, "alice", pb::GroupBy::Device, "upload").await;
        let keys: Vec<&str> = groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["Pixel 8", "iPhone 15"]);
        check(&groups[1], &alice_wifi, 200);

        // Everyone's (the admin view) mixes Bob in; Bob's view has only his.
        let groups = report(&mut client, "", pb::GroupBy::Connection, "upload").await;
        let everyone_4g: Vec<f64> = alice_4g.iter().chain(&bob_4g).copied().collect();
        check(&groups[0], &everyone_4g, 225);
        let groups = report(&mut client, "bob", pb::GroupBy::Connection, "upload").await;
        assert_eq!(groups.len(), 1);
        check(&groups[0], &bob_4g, 0);
        assert!(
            report(&mut client, "carol", pb::GroupBy::Connection, "")
                .await
                .is_empty()
        );

        // A range before any event is empty.
        let old = client
            .get_performance(pb::GetPerformanceRequest {
                user_id: "alice".to_string(),
                from_ms: now_ms() - 10 * 3_600_000,
                to_ms: now_ms() - 5 * 3_600_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(old.groups.is_empty());

        // Histogram rows, not events, are stored: far fewer rows than the 650 events.
        assert!(svc.rows("perf_buckets").await < 650);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_any_bad_event_is_refused_whole_naming_each_field() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let events = vec![
            event("upload", 120.0, pb::Connection::Connection3g, "Pixel 8", true),
            event("upload", -5.0, pb::Connection::Connection3g, "Pixel 8", true),
            event("tap", 1.0, pb::Connection::Unspecified, &"d".repeat(65), true),
            event("api", f64::NAN, pb::Connection::Wifi, "", true),
        ];
        let e = client
            .record_events(pb::RecordEventsRequest {
                user_id: "alice".to_string(),
                events,
            })
            .await
            .unwrap_err();
        assert_eq!(code(&e), "VALIDATION_ERROR");
        let fields = details(&e)["fields"].as_object().cloned().unwrap();
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "events[1].durationMs",
                "events[2].device",
                "events[2].type",
                "events[3].durationMs"
            ]
        );
        assert_eq!(svc.rows("perf_buckets").await, 0);

        let e = client
            .record_events(pb::RecordEventsRequest {
                user_id: "alice".to_string(),
                events: vec![event("api", 1.0, pb::Connection::Wifi, "x", true); 101],
            })
            .await
            .unwrap_err();
        assert!(details(&e)["fields"]["events"].is_string());

        let e = client
            .get_performance(pb::GetPerformanceRequest {
                user_id: "alice".to_string(),
                from_ms: 10,
                to_ms: 5,
                group_by: 9,
                r#type: "tap".to_string(),
            })
            .await
            .unwrap_err();
        let fields = details(&e)["fields"].as_object().cloned().unwrap();
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["from", "groupBy", "type"]);

        // Unreported connection and device are grouped as "unknown".
        client
            .record_events(pb::RecordEventsRequest {
                user_id: "alice".to_string(),
                events: vec![event("api", 30.0, pb::Connection::Unspecified, "", true)],
            })
            .await
            .unwrap();
        let groups = report(&mut client, "alice", pb::GroupBy::Device, "api").await;
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].key.as_str(), groups[0].count), ("unknown", 1));
        assert_close(groups[0].p99_ms, 30.0, "single event");
    }
}

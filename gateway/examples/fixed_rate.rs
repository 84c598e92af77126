//! Open-loop latency at a fixed request rate: the same question (`user-access` of one user)
//! asked of the beta service's gRPC API directly, then through the gateway over HTTP, so the
//! difference is what the gateway adds (auth, rate limit, envelope, the hop).
//!
//!   fixed_rate <gateway base url> <beta grpc url> <access token> <user id> [rate/s] [seconds]
//!
//! Requests start on schedule whether or not earlier ones finished (no coordinated omission).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use portico_proto::beta::v1::{GetUserAccessRequest, beta_service_client::BetaServiceClient};
use portico_runtime::grpc::{PresentInternalToken, channel, outgoing};

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn run<F, Fut>(rate: u64, seconds: u64, call: F) -> (Vec<u64>, usize)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let fut = call();
        tasks.push(tokio::spawn(async move {
            let ok = fut.await;
            (due.elapsed().as_micros() as u64, ok)
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for t in tasks {
        let (us, ok) = t.await.unwrap();
        if ok {
            lat.push(us);
        } else {
            failed += 1;
        }
    }
    lat.sort_unstable();
    (lat, failed)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (gateway, beta, token, user) = (args[1].clone(), args[2].clone(), args[3].clone(), args[4].clone());
    let rate: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(10);
    let internal =
        std::env::var("PORTICO_INTERNAL_TOKEN").unwrap_or_else(|_| portico_runtime::config::DEV_INTERNAL_TOKEN.into());

    let ch = channel(&beta, Duration::from_secs(5)).unwrap();
    let client = BetaServiceClient::with_interceptor(ch, PresentInternalToken::new(&internal).unwrap());
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
    let url = format!("{gateway}/v1/beta/user-access");

    // Warm both paths (connections, caches) before measuring.
    for _ in 0..200 {
        client
            .clone()
            .get_user_access(outgoing(GetUserAccessRequest { user_id: user.clone() }, "warm"))
            .await
            .unwrap();
        http.get(&url).bearer_auth(&token).send().await.unwrap();
    }
    let grpc = run(rate, seconds, || {
        let mut c = client.clone();
        let user = user.clone();
        async move {
            c.get_user_access(outgoing(GetUserAccessRequest { user_id: user }, "bench"))
                .await
                .is_ok()
        }
    })
    .await;
    let gw = run(rate, seconds, || {
        let req = http.get(&url).bearer_auth(&token);
        async move { req.send().await.map(|r| r.status().is_success()).unwrap_or(false) }
    })
    .await;
    println!("{rate} req/s for {seconds}s, open loop");
    for (name, (lat, failed)) in [("beta gRPC direct", &grpc), ("gateway full path", &gw)] {
        println!(
            "{name:<20} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  failed {failed}",
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            percentile(lat, 1.0)
        );
    }
    println!(
        "gateway adds at p99: {:.3} ms",
        percentile(&gw.0, 0.99) - percentile(&grpc.0, 0.99)
    );
}

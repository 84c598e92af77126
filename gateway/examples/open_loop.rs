//! Open-loop latency of one endpoint over a fixed number of connections, in the manner of
//! wrk2: requests are due on a fixed schedule and latency is measured from when each was
//! due, so a stalled server is charged for the requests it delayed (no coordinated omission).
//! Each connection carries one request at a time (HTTP/1.1, no pipelining).
//!
//!   open_loop <url> <access token | -> <body file | -> <rate/s> <seconds> <connections> [vary | stripe=<whsec>]
//!
//! A token of `-` sends no `Authorization` (anonymous endpoints). A body file makes POSTs, `-` GETs. With `vary`, every request replaces `TAG_PLACEHOLDER`
//! in the body with a unique value. With `stripe=<secret>`, every request is a webhook: a
//! unique `TAG_PLACEHOLDER` (the event id) and a `Stripe-Signature` made with the secret, as
//! Stripe signs (no bearer token).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args[1].clone();
    let token = args[2].clone();
    let body = (args[3] != "-").then(|| std::fs::read_to_string(&args[3]).unwrap());
    let rate: u64 = args[4].parse().unwrap();
    let seconds: u64 = args[5].parse().unwrap();
    let connections: u64 = args[6].parse().unwrap();
    let stripe = args.get(7).and_then(|a| a.strip_prefix("stripe=")).map(str::to_string);
    let vary = args.get(7).is_some_and(|a| a == "vary") || stripe.is_some();

    // Unique across runs too (a repeated webhook event id would be a cheaper duplicate).
    let run = chrono::Utc::now().timestamp_millis();
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    // Every client is built before the clock starts: building one takes a millisecond or so
    // (its TLS configuration), which for 1,000 connections would make the last ones start a
    // second late and count that second against the server.
    let clients: Vec<reqwest::Client> = (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap()
        })
        .collect();
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for (c, client) in (0..connections).zip(clients) {
        let (url, token, body, stripe) = (url.clone(), token.clone(), body.clone(), stripe.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            let mut i = c;
            while i < total {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let authed = |r: reqwest::RequestBuilder| if token == "-" { r } else { r.bearer_auth(&token) };
                let request = match &body {
                    None => authed(client.get(&url)),
                    Some(body) => {
                        let payload = if vary {
                            body.replace("TAG_PLACEHOLDER", &format!("v{run}-{i}"))
                        } else {
                            body.replace("TAG_PLACEHOLDER", "fixed")
                        };
                        let request = client.post(&url).header("content-type", "application/json");
                        match &stripe {
                            Some(secret) => {
                                let now = chrono::Utc::now().timestamp();
                                let signature = portico_billing::signature::sign(payload.as_bytes(), secret, now);
                                request.header("stripe-signature", signature).body(payload)
                            }
                            None => authed(request).body(payload),
                        }
                    }
                };
                let ok = request.send().await.map(|r| r.status().is_success()).unwrap_or(false);
                if ok {
                    latencies.push(due.elapsed().as_micros() as u64);
                } else {
                    failed += 1;
                }
                i += connections;
            }
            (latencies, failed)
        }));
    }
    let mut all = Vec::with_capacity(total as usize);
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    all.sort_unstable();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{rate} req/s over {connections} connections for {seconds}s ({}): p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  achieved {:.0} req/s  failed {failed}",
        match (&body, &stripe, vary) {
            (None, _, _) => "GET",
            (_, Some(_), _) => "signed webhooks, every event new",
            (_, None, true) => "every body different",
            _ => "same body",
        },
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        all.len() as f64 / elapsed,
    );
}

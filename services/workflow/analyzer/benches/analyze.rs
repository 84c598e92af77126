//! Criterion benchmarks: parsing and analysis of generated workflows from 10 to 100,000 steps.
//! Throughput is reported per step, so linear growth shows as a flat per-element time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portico_workflow_analyzer::{Limits, analyze, parse};

const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];

/// Blocks of ten steps: an email, a wait, an if_else whose yes side loops back through a tag and a
/// goto (a loop that waits), and a no side through a webhook, an SMS, a wait_for_event, a tag
/// removal and a goal that leads to the next block.
fn workflow_json(steps: usize) -> String {
    let mut json = String::from(
        r#"{"name": "bench", "triggers": [{"id": "t1", "type": "form_submitted", "next": "s0"}], "steps": ["#,
    );
    let blocks = steps / 10;
    for k in 0..blocks {
        let b = k * 10;
        let s = |offset: usize| b + offset;
        let next_block = if k + 1 < blocks {
            format!("\"s{}\"", b + 10)
        } else {
            "null".to_owned()
        };
        if k > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"id": "s{}", "type": "send_email", "config": {{"subject": "Hello {k}", "unsubscribeLink": true}}, "next": "s{}"}},
{{"id": "s{}", "type": "wait", "config": {{"duration": "P1D"}}, "next": "s{}"}},
{{"id": "s{}", "type": "if_else", "config": {{"conditions": [{{"field": "score", "op": "gte", "value": {k}}}, {{"field": "tag", "op": "neq", "value": "churned"}}]}}, "branches": {{"yes": "s{}", "no": "s{}"}}}},
{{"id": "s{}", "type": "add_tag", "config": {{"tag": "engaged-{k}"}}, "next": "s{}"}},
{{"id": "s{}", "type": "goto", "config": {{"target": "s{}"}}}},
{{"id": "s{}", "type": "webhook", "config": {{"url": "https://hooks.example/{k}", "retry": {{"maxAttempts": 3}}}}, "next": "s{}"}},
{{"id": "s{}", "type": "send_sms", "config": {{"text": "Offer {k}. Reply STOP to opt out"}}, "next": "s{}"}},
{{"id": "s{}", "type": "wait_for_event", "config": {{"event": "clicked", "timeout": "P3D"}}, "next": "s{}"}},
{{"id": "s{}", "type": "remove_tag", "config": {{"tag": "engaged-{k}"}}, "next": "s{}"}},
{{"id": "s{}", "type": "goal", "next": {next_block}}}"#,
            s(0), s(1),
            s(1), s(2),
            s(2), s(3), s(5),
            s(3), s(4),
            s(4), s(0),
            s(5), s(6),
            s(6), s(7),
            s(7), s(8),
            s(8), s(9),
            s(9),
        )
        .unwrap();
    }
    json.push_str("]}");
    json
}

fn limits() -> Limits {
    Limits { max_steps: 100_000 }
}

fn sample_size(steps: usize) -> usize {
    if steps >= 10_000 { 20 } else { 100 }
}

fn bench_analyze(c: &mut Criterion) {
    let mut group = c.benchmark_group("analyze");
    for steps in SIZES {
        let workflow = parse(workflow_json(steps).as_bytes(), limits()).expect("generated workflow parses");
        let analysis = analyze(&workflow);
        assert_eq!(analysis.health_score, 100, "{:?}", analysis.issues.first());
        group.throughput(Throughput::Elements(steps as u64));
        group.sample_size(sample_size(steps));
        group.bench_with_input(BenchmarkId::from_parameter(steps), &workflow, |b, workflow| {
            b.iter(|| analyze(black_box(workflow)));
        });
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for steps in SIZES {
        let json = workflow_json(steps);
        group.throughput(Throughput::Elements(steps as u64));
        group.sample_size(sample_size(steps));
        group.bench_with_input(BenchmarkId::from_parameter(steps), &json, |b, json| {
            b.iter(|| parse(black_box(json.as_bytes()), limits()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_analyze, bench_parse);
criterion_main!(benches);

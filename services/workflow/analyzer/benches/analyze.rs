//! Criterion benchmarks: parsing and analysis of generated workflows from 10 to 100,000 steps,
//! parsing the same workflow written as BPMN 2.0 XML at 1,000 steps, and refusing a hostile
//! 1 MiB BPMN document (40,000 namespace declarations on the root) at the reader's cap.
//! Throughput is reported per step, so linear growth shows as a flat per-element time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portico_workflow_analyzer::{Limits, ProblemKind, analyze, bpmn, parse};

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

/// The workflow of [`workflow_json`] as BPMN: the same steps, with flows for `next`, `branches`
/// and goto targets, a timer catch event for each wait and a boundary timer for each timeout.
fn workflow_bpmn(steps: usize) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:portico="https://portico.dev/schema/bpmn" id="defs">
<bpmn:process id="bench" name="bench" isExecutable="true">
<bpmn:startEvent id="t1" portico:type="form_submitted"/>
<bpmn:sequenceFlow id="ft" sourceRef="t1" targetRef="s0"/>
"#,
    );
    let blocks = steps / 10;
    for k in 0..blocks {
        let b = k * 10;
        let s = |offset: usize| b + offset;
        let config = |json: &str| {
            format!("<bpmn:extensionElements><portico:config>{json}</portico:config></bpmn:extensionElements>")
        };
        write!(
            xml,
            r#"<bpmn:sendTask id="s{}">{}</bpmn:sendTask>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:intermediateCatchEvent id="s{}"><bpmn:timerEventDefinition><bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:exclusiveGateway id="s{}" default="n{k}">{}</bpmn:exclusiveGateway>
<bpmn:sequenceFlow id="y{k}" sourceRef="s{}" targetRef="s{}" portico:branch="yes"/>
<bpmn:sequenceFlow id="n{k}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:task id="s{}" portico:type="add_tag">{}</bpmn:task>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:task id="s{}" portico:type="goto"/>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:serviceTask id="s{}">{}</bpmn:serviceTask>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:task id="s{}" portico:type="send_sms">{}</bpmn:task>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:receiveTask id="s{}" messageRef="clicked"/>
<bpmn:boundaryEvent id="b{k}" attachedToRef="s{}"><bpmn:timerEventDefinition><bpmn:timeDuration>P3D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:task id="s{}" portico:type="remove_tag">{}</bpmn:task>
<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>
<bpmn:intermediateThrowEvent id="s{}" portico:type="goal"/>
"#,
            s(0), config(&format!(r#"{{"subject": "Hello {k}", "unsubscribeLink": true}}"#)),
            s(0), s(0), s(1),
            s(1),
            s(1), s(1), s(2),
            s(2), config(&format!(r#"{{"conditions": [{{"field": "score", "op": "gte", "value": {k}}}, {{"field": "tag", "op": "neq", "value": "churned"}}]}}"#)),
            s(2), s(3),
            s(2), s(5),
            s(3), config(&format!(r#"{{"tag": "engaged-{k}"}}"#)),
            s(3), s(3), s(4),
            s(4),
            s(4), s(4), s(0),
            s(5), config(&format!(r#"{{"url": "https://hooks.example/{k}", "retry": {{"maxAttempts": 3}}}}"#)),
            s(5), s(5), s(6),
            s(6), config(&format!(r#"{{"text": "Offer {k}. Reply STOP to opt out"}}"#)),
            s(6), s(6), s(7),
            s(7),
            s(7),
            s(7), s(7), s(8),
            s(8), config(&format!(r#"{{"tag": "engaged-{k}"}}"#)),
            s(8), s(8), s(9),
            s(9),
        )
        .unwrap();
        if k + 1 < blocks {
            writeln!(
                xml,
                r#"<bpmn:sequenceFlow id="f{}" sourceRef="s{}" targetRef="s{}"/>"#,
                s(9),
                s(9),
                b + 10
            )
            .unwrap();
        }
    }
    xml.push_str("</bpmn:process>\n</bpmn:definitions>\n");
    xml
}

fn limits() -> Limits {
    Limits::for_steps(100_000)
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

fn bench_parse_bpmn(c: &mut Criterion) {
    const STEPS: usize = 1_000;
    let xml = workflow_bpmn(STEPS);
    let from_json = parse(workflow_json(STEPS).as_bytes(), limits()).expect("generated workflow parses");
    assert_eq!(
        bpmn::parse(xml.as_bytes(), limits()),
        Ok(from_json),
        "BPMN and JSON twins differ"
    );
    let mut group = c.benchmark_group("parse_bpmn");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.sample_size(sample_size(STEPS));
    group.bench_with_input(BenchmarkId::from_parameter(STEPS), &xml, |b, xml| {
        b.iter(|| bpmn::parse(black_box(xml.as_bytes()), limits()));
    });
    group.finish();
}

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

fn bench_refuse_namespace_flood(c: &mut Criterion) {
    let xml = namespace_flood();
    let refused = bpmn::parse(xml.as_bytes(), Limits::default()).unwrap_err();
    assert_eq!(refused[0].kind, ProblemKind::TooLarge, "{refused:?}");
    let mut group = c.benchmark_group("refuse_bpmn");
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_with_input(BenchmarkId::from_parameter("namespace_flood_1MiB"), &xml, |b, xml| {
        b.iter(|| bpmn::parse(black_box(xml.as_bytes()), Limits::default()));
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_analyze,
    bench_parse,
    bench_parse_bpmn,
    bench_refuse_namespace_flood
);
criterion_main!(benches);

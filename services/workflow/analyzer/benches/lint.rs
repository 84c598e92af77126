//! Criterion benchmark of what Portico does with a modeler's BPMN diagram: read it, map it,
//! run bpmnlint's rules and Portico's own, on generated diagrams of 100, 1,000 and 10,000
//! elements (`support/diagram.rs`). `bench/bpmnlint-bench.sh` times bpmnlint on the same files in the
//! same run. Throughput is per element, so linear growth shows as a flat per-element time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/diagram.rs"]
mod diagram;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portico_workflow_analyzer::{Limits, analyze, bpmn};

/// Sizes in flow nodes.
pub const SIZES: [usize; 3] = [100, 1_000, 10_000];

fn bench_lint(c: &mut Criterion) {
    let mut group = c.benchmark_group("lint_bpmn");
    for n in SIZES {
        let xml = diagram::diagram(n);
        let limits = Limits::for_steps(n);
        // The diagram is analysed in full (seven steps per block: the joins are merges) and is
        // clean, for Portico as for bpmnlint.
        let workflow = bpmn::parse(xml.as_bytes(), limits).expect("the generated diagram parses");
        assert_eq!(workflow.steps.len(), (n - 2) / 8 * 7 + 1);
        assert_eq!(analyze(&workflow).issues, vec![]);
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(if n >= 10_000 { 20 } else { 50 });
        group.bench_with_input(BenchmarkId::from_parameter(n), &xml, |b, xml| {
            b.iter(|| {
                let workflow = bpmn::parse(black_box(xml.as_bytes()), limits).unwrap();
                black_box(analyze(&workflow))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lint);
criterion_main!(benches);

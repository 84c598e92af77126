#!/usr/bin/env bash
# Reading and linting generated BPMN diagrams of 100, 1,000 and 10,000 elements: Portico (the
# criterion benchmark `lint_bpmn` of services/workflow/analyzer/benches/lint.rs: read, map,
# bpmnlint's rules and Portico's own) against bpmnlint 11.13.0's Node API on the same files in
# the same run (bpmn-moddle's fromXML plus lint with the same rules, timed inside node,
# start-up excluded; bench/bpmnlint/time.mjs).
#
#   bench/bpmnlint-bench.sh
#
# Prints the medians, the ratio and the time per element; exits 1 when Portico is not at least
# 10x faster at 1,000 elements or grows worse than linearly (per-element time at 10,000 more
# than twice that at 100).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/bpmnlint/tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=(100 1000 10000)
cargo run -q --release --locked -p portico-workflow-analyzer --example bpmn_diagram -- "$work" "${sizes[@]}"
files=()
for n in "${sizes[@]}"; do files+=("$work/diagram-$n.bpmn"); done
node "$BPMNLINT_TOOLS/time.mjs" "$BPMNLINT_RULES" "${files[@]}" > "$work/bpmnlint.json"
cargo bench -q --locked -p portico-workflow-analyzer --bench lint -- --output-format bencher 2>/dev/null \
  | grep '^test lint_bpmn/' > "$work/portico.txt"
python3 - "$work" "${sizes[@]}" <<'PY'
import json, re, sys
work, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
theirs = json.load(open(f"{work}/bpmnlint.json"))
ours = {}
for line in open(f"{work}/portico.txt"):
    m = re.match(r"test lint_bpmn/(\d+) \.\.\. bench:\s+([\d,]+) ns/iter", line)
    if m:
        ours[int(m.group(1))] = int(m.group(2).replace(",", "")) / 1e6
print("| elements | Portico (read + lint + analyse) | bpmnlint (fromXML + lint) | bpmnlint / Portico | Portico per element | bpmnlint per element | bpmnlint reports |")
print("|---|---|---|---|---|---|---|")
for n in sizes:
    t = theirs[f"{work}/diagram-{n}.bpmn"]
    print(f"| {n:,} | {ours[n]:.3f} ms | {t['median_ms']:.3f} ms | {t['median_ms'] / ours[n]:.1f}x | {1000 * ours[n] / n:.2f} µs | {1000 * t['median_ms'] / n:.2f} µs | {t['reports']} |")
ratio = theirs[f"{work}/diagram-1000.bpmn"]["median_ms"] / ours[1000]
growth = (ours[10000] / 10000) / (ours[100] / 100)
print(f"\nat 1,000 elements Portico is {ratio:.1f}x faster (target 10x); per-element time 10,000 vs 100: {growth:.2f}x (linear: about 1)")
sys.exit(0 if ratio >= 10 and growth <= 2 else 1)
PY

#!/usr/bin/env bash
# Runs every BPMN fixture of bpmnlint's test suite through Portico's analyser and through
# bpmnlint itself, and prints per rule how many fixtures agree: the rule reported by both or by
# neither, with the same element ids.
#
#   bench/bpmnlint-agreement.sh BPMNLINT_CHECKOUT
#
# BPMNLINT_CHECKOUT is a checkout of bpmn-io/bpmnlint (v11.13.0); its test/rules/*/*.bpmn are the
# fixtures. bpmnlint itself comes from npm, pinned in bench/bpmnlint/package-lock.json, and is
# installed under $PORTICO_BPMNLINT_TOOLS (default ~/.cache/portico/bpmnlint). A fixture Portico
# refuses disagrees on every rule bpmnlint reports for it. Exits 1 when a target is missed
# (95 % of the fixtures analysed, 95 % agreement on every rule).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=${1:?usage: bench/bpmnlint-agreement.sh BPMNLINT_CHECKOUT}
[ -d "$checkout/test/rules" ] || { echo "bpmnlint-agreement: no test/rules in $checkout" >&2; exit 2; }
source bench/bpmnlint/tools.sh
mapfile -t fixtures < <(find "$checkout/test/rules" -name '*.bpmn' | sort)
rules=$BPMNLINT_RULES
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node "$BPMNLINT_TOOLS/lint.mjs" "$rules" "${fixtures[@]}" > "$work/bpmnlint.json"
cargo run -q --release --locked -p portico-workflow-analyzer --example lint_ids -- "${fixtures[@]}" > "$work/portico.json"
python3 - "$rules" "$checkout/test/rules/" "$work/bpmnlint.json" "$work/portico.json" "${VERBOSE:-}" <<'PY'
import json, sys
rules, prefix, theirs, ours, verbose = sys.argv[1].split(","), sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4])), sys.argv[5]
files = sorted(theirs)
refused = [f for f in files if "refused" in ours[f]]
print(f"fixtures: {len(files)}, analysed by Portico: {len(files) - len(refused)} ({100 * (len(files) - len(refused)) / len(files):.1f} %)")
for f in refused:
    print(f"  refused {f[len(prefix):]}: {ours[f]['refused'][:160]}")
print()
print("| rule | fixtures agreeing | agreement |")
print("|---|---|---|")
missed = (len(files) - len(refused)) / len(files) < 0.95
for rule in rules:
    agree = 0
    for f in files:
        want = sorted({i for i in theirs[f][rule] if i is not None})
        got = sorted(set(ours[f].get("rules", {}).get("bpmnlint/" + rule, []))) if "rules" in ours[f] else None
        if (got if got is not None else []) == want and (got is not None or not want):
            agree += 1
        elif verbose:
            print(f"  {rule} {f[len(prefix):]}: bpmnlint {want}, portico {got}")
    share = 100 * agree / len(files)
    missed |= share < 95
    print(f"| bpmnlint/{rule} | {agree} / {len(files)} | {share:.1f} % |")
sys.exit(1 if missed else 0)
PY

#!/usr/bin/env bash
# Runs BPMN files through Portico's analyser and through bpmnlint itself, and prints per rule
# how many files agree: the rule reported by both or by neither, with the same element ids.
#
#   bench/bpmnlint-agreement.sh BPMNLINT_CHECKOUT     # bpmnlint's own fixtures
#   bench/bpmnlint-agreement.sh --files DIR [MIN]     # every *.bpmn under DIR
#
# BPMNLINT_CHECKOUT is a checkout of bpmn-io/bpmnlint (v11.13.0); its test/rules/*/*.bpmn are the
# fixtures. CI runs the second form on bench/bpmnlint/corpus with MIN 100 (every file analysed,
# every rule agreeing on every file). bpmnlint itself comes from npm, pinned in
# bench/bpmnlint/package-lock.json, and is installed under $PORTICO_BPMNLINT_TOOLS (default
# ~/.cache/portico/bpmnlint). A file Portico refuses disagrees on every rule bpmnlint reports for
# it. Exits 1 when a target is missed (MIN %, by default 95 %, of the files analysed and of
# agreement on every rule).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/bpmnlint-agreement.sh BPMNLINT_CHECKOUT | --files DIR [MIN]"
if [ "${1:-}" = --files ]; then
  dir=${2:?$usage}
  min=${3:-95}
else
  dir=${1:?$usage}/test/rules
  min=95
fi
[ -d "$dir" ] || { echo "bpmnlint-agreement: no directory $dir" >&2; exit 2; }
source bench/bpmnlint/tools.sh
mapfile -t fixtures < <(find "$dir" -name '*.bpmn' | sort)
[ "${#fixtures[@]}" -gt 0 ] || { echo "bpmnlint-agreement: no .bpmn files under $dir" >&2; exit 2; }
rules=$BPMNLINT_RULES
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node "$BPMNLINT_TOOLS/lint.mjs" "$rules" "${fixtures[@]}" > "$work/bpmnlint.json"
cargo run -q --release --locked -p portico-workflow-analyzer --example lint_ids -- "${fixtures[@]}" > "$work/portico.json"
python3 - "$rules" "${dir%/}/" "$work/bpmnlint.json" "$work/portico.json" "$min" "${VERBOSE:-}" <<'PY'
import json, sys
rules, prefix, theirs, ours = sys.argv[1].split(","), sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
target, verbose = float(sys.argv[5]), sys.argv[6]
files = sorted(theirs)
refused = [f for f in files if "refused" in ours[f]]
print(f"files: {len(files)}, analysed by Portico: {len(files) - len(refused)} ({100 * (len(files) - len(refused)) / len(files):.1f} %)")
for f in refused:
    print(f"  refused {f[len(prefix):]}: {ours[f]['refused'][:160]}")
print()
print("| rule | files where bpmnlint reports it | files agreeing | agreement |")
print("|---|---|---|---|")
missed = 100 * (len(files) - len(refused)) / len(files) < target
for rule in rules:
    agree = 0
    reported = sum(1 for f in files if theirs[f][rule])
    for f in files:
        want = sorted({i for i in theirs[f][rule] if i is not None})
        got = sorted(set(ours[f].get("rules", {}).get("bpmnlint/" + rule, []))) if "rules" in ours[f] else None
        if (got if got is not None else []) == want and (got is not None or not want):
            agree += 1
        elif verbose:
            print(f"  {rule} {f[len(prefix):]}: bpmnlint {want}, portico {got}")
    share = 100 * agree / len(files)
    missed |= share < target
    print(f"| bpmnlint/{rule} | {reported} | {agree} / {len(files)} | {share:.1f} % |")
sys.exit(1 if missed else 0)
PY

# Sourced by bench/bpmnlint-agreement.sh and bench/bpmnlint-bench.sh: installs bpmnlint and
# bpmn-moddle (pinned in bench/bpmnlint/package-lock.json) under $PORTICO_BPMNLINT_TOOLS
# (default ~/.cache/portico/bpmnlint) with the node scripts beside them, and sets
#   BPMNLINT_TOOLS  where they are
#   BPMNLINT_RULES  the bpmnlint rules Portico implements, comma-separated (from the analyser)
BPMNLINT_TOOLS=${PORTICO_BPMNLINT_TOOLS:-$HOME/.cache/portico/bpmnlint}
command -v node >/dev/null && command -v npm >/dev/null || { echo "bpmnlint: node and npm are required" >&2; exit 2; }
mkdir -p "$BPMNLINT_TOOLS"
if ! cmp -s bench/bpmnlint/package-lock.json "$BPMNLINT_TOOLS/package-lock.json"; then
  cp bench/bpmnlint/package.json bench/bpmnlint/package-lock.json "$BPMNLINT_TOOLS/"
  (cd "$BPMNLINT_TOOLS" && npm ci -q --no-audit --no-fund) || { echo "bpmnlint: npm ci failed" >&2; exit 2; }
fi
for pkg in bpmnlint bpmn-moddle; do
  pinned=$(python3 -c "import json,sys; print(json.load(open('bench/bpmnlint/package.json'))['dependencies'][sys.argv[1]])" "$pkg")
  have=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" \
    "$BPMNLINT_TOOLS/node_modules/$pkg/package.json" 2>/dev/null || true)
  [ "$have" = "$pinned" ] || { echo "bpmnlint: npm $pkg $pinned is required, found '${have:-nothing}'" >&2; exit 2; }
done
cp bench/bpmnlint/*.mjs "$BPMNLINT_TOOLS/"
BPMNLINT_RULES=$(cargo run -q --release --locked -p portico-workflow-analyzer --example lint_ids -- --rules)

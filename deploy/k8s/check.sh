#!/usr/bin/env bash
# Renders the base and the production overlay with kustomize (kubectl's or the standalone
# binary) and checks every manifest with kubernetes-validate (the Kubernetes version's schemas,
# strict: unknown fields fail) and checkov (no failed check; each skip is an annotation with
# its reason beside the resource).
#
#   deploy/k8s/check.sh      (K8S_TOOLS: a venv holding the pinned tools, see deploy/k8s/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")"
die() { printf 'k8s-check: %s\n' "$*" >&2; exit 1; }
TOOLS=${K8S_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/portico/k8s-tools}
VALIDATE="$TOOLS/bin/kubernetes-validate"
CHECKOV="$TOOLS/bin/checkov"
[ -x "$VALIDATE" ] && [ -x "$CHECKOV" ] || die "kubernetes-validate and checkov are not installed in $TOOLS (deploy/k8s/requirements.txt)"
# The newest schemas kubernetes-validate carries unless told otherwise.
K8S_VERSION=${K8S_VERSION:-$("$VALIDATE" --help | sed -n 's/.*Defaults to \([0-9.]*\).*/\1/p')}
if command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null; then
  render() { kubectl kustomize "$1"; }
else
  die "kustomize or kubectl is required to render the manifests"
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for dir in base overlays/production; do
  name=${dir//\//-}
  render "$dir" > "$OUT/$name.yaml"
  echo "== $dir: $(grep -c '^kind:' "$OUT/$name.yaml") resources"
  "$VALIDATE" --strict --kubernetes-version "$K8S_VERSION" --quiet "$OUT/$name.yaml" \
    || die "$dir: kubernetes-validate found invalid resources"
  "$CHECKOV" --quiet --compact --skip-download --framework kubernetes --file "$OUT/$name.yaml" \
    || die "$dir: checkov found failed checks"
done
echo "kubernetes-validate ($K8S_VERSION schemas) and checkov: no failures"

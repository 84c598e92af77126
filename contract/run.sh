#!/usr/bin/env bash
# The API contract checked by outside tools, against a running `portico dev`:
#
#   1. the OpenAPI document linted by Redocly's CLI (0 errors),
#   2. schemathesis `--checks all` with a signed-in user and an admin (0 failures),
#   3. a Python client generated from the document by openapi-python-client, used to sign
#      up, join the beta and analyse a workflow,
#   4. webhooks signed by Stripe's own Node library, and errors reported by the official
#      Python Sentry SDK.
#
#   contract/run.sh [path/to/portico]     (default: builds the debug binary)
#
# The tools are pinned in contract/requirements.txt and contract/package.json; `.ci/run`
# installs them. SCHEMATHESIS_EXAMPLES (default 10) bounds the examples per operation.
set -euo pipefail
SCRIPT=contract
source "$(dirname "$0")/../deploy/lib.sh"
portico_binary "${1:-}"
ROOT=$PWD
TOOLS=${PORTICO_CONTRACT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/portico/contract-tools}
REDOCLY="$TOOLS/node_modules/.bin/redocly"
[ -f "$TOOLS/node_modules/stripe/package.json" ] \
  || die "stripe-node is missing: (cd $TOOLS && cp $ROOT/contract/package*.json . && npm ci)"
command -v schemathesis >/dev/null || die "schemathesis is missing: pip install -r contract/requirements.txt"
command -v openapi-python-client >/dev/null || die "openapi-python-client is missing: pip install -r contract/requirements.txt"
python3 -c 'import sentry_sdk' 2>/dev/null || die "sentry-sdk is missing: pip install -r contract/requirements.txt"
[ -x "$REDOCLY" ] || die "redocly is missing: npm ci --prefix $TOOLS (contract/package.json)"

WORK=$(mktemp -d)
STACK_PID=
cleanup() {
  [ -n "$STACK_PID" ] && kill "$STACK_PID" 2>/dev/null && wait "$STACK_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

say "portico dev (data in a fresh directory, rate limits raised for the fuzzer)"
export PORTICO_DATA_DIR="$WORK/data"
export PORTICO_HTTP_ADDR=127.0.0.1:0
export PORTICO_LOG=${PORTICO_LOG:-warn}
for tier in ANON FREE PRO ENTERPRISE; do export "PORTICO_RATE_${tier}_PER_MIN=1000000"; done
export PORTICO_QUOTA_ANALYSES_ENTERPRISE_PER_HOUR=1000000
"$PORTICO" dev > "$WORK/stack.log" 2>&1 &
STACK_PID=$!
URL=
for _ in $(seq 1 300); do
  URL=$(sed -n 's/^Portico is running: \(http[^ ]*\).*/\1/p' "$WORK/stack.log")
  [ -n "$URL" ] && break
  kill -0 "$STACK_PID" 2>/dev/null || { cat "$WORK/stack.log"; die "portico dev exited"; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/stack.log"; die "portico dev never said where it listens"; }
echo "gateway at $URL"
curl -fsS "$URL/openapi.json" -o "$WORK/openapi.json" || die "no /openapi.json"

token() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])'; }
account() { # account ENDPOINT EMAIL PASSWORD: the access token it answers
  curl -fsS -X POST "$URL/v1/auth/$1" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"$3\"}" | token
}
USER_TOKEN=$(account signup user@contract.test "user-password-$RANDOM$RANDOM")
account signup admin@contract.test "admin-password-$$" > /dev/null
"$PORTICO" admin grant admin@contract.test
ADMIN_TOKEN=$(account login admin@contract.test "admin-password-$$")
# The user is on the enterprise plan, so the analysis quota leaves the analyser to be tested.
USER_ID=$(curl -fsS "$URL/v1/auth/me" -H "authorization: Bearer $USER_TOKEN" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
curl -fsS -X PUT "$URL/v1/admin/users/$USER_ID/tier" -H "authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/json' -d '{"tier":"enterprise"}' > /dev/null
# Operations that end a session or an account, or demote an admin, run as accounts of their own.
ERASED_TOKEN=$(account signup erased@contract.test "erased-password-$$")
LOGOUT_TOKEN=$(account signup logout@contract.test "logout-password-$$")
PASSWORD_TOKEN=$(account signup password@contract.test "password-password-$$")
account signup role@contract.test "role-password-$$" > /dev/null
"$PORTICO" admin grant role@contract.test
ROLE_ADMIN_TOKEN=$(account login role@contract.test "role-password-$$")
export USER_TOKEN ADMIN_TOKEN ERASED_TOKEN LOGOUT_TOKEN PASSWORD_TOKEN ROLE_ADMIN_TOKEN

say "OpenAPI lint (Redocly CLI, contract/package.json)"
"$REDOCLY" lint --config contract/redocly.yaml "$WORK/openapi.json"

say "a generated client (openapi-python-client $(openapi-python-client --version | awk '{print $NF}'))"
openapi-python-client generate --path "$WORK/openapi.json" --output-path "$WORK/pkg/portico_client" \
  --config contract/client.yaml --meta none > "$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log"; die "the client generator failed"; }
# Image answers come back as bytes (the generator has no model for image/*); any endpoint it
# cannot generate at all is a defect of the document.
if grep -B2 -A3 "Endpoint will not be generated" "$WORK/generate.log"; then
  die "the client generator left endpoints out"
fi
PYTHONPATH="$WORK/pkg" PORTICO_URL="$URL" python3 contract/client_test.py

say "webhooks signed by Stripe's own library (stripe-node $(node -p "require('$TOOLS/node_modules/stripe/package.json').version"))"
PORTICO_URL="$URL" WEBHOOK_SECRET=whsec_portico_local STRIPE_MODULE_DIR="$TOOLS/node_modules" \
  node contract/stripe_webhooks.mjs
say "errors from the official Python Sentry SDK (sentry-sdk $(python3 -c 'import sentry_sdk; print(sentry_sdk.VERSION)'))"
PORTICO_URL="$URL" ADMIN_TOKEN="$ADMIN_TOKEN" python3 contract/sentry_report.py
# One worker: Python 3.11's `ast` is not thread-safe (CPython gh-106905), and hypothesis
# parses lambdas with it, so parallel workers fail now and then inside the tool.
say "schemathesis $(schemathesis --version | awk '{print $NF}') --checks all"
SCHEMATHESIS_HOOKS=contract.hooks PYTHONPATH="$ROOT" \
  schemathesis --config-file contract/schemathesis.toml run "$URL/openapi.json" \
  --checks all --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 --no-color

say "contract checked"

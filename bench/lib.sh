# Shared by the load scripts: build the release binaries, start the whole stack
# (`portico dev`, SQLite) on SERVER_CPU with one HTTP worker and every rate limit raised,
# and run the open-loop load generator on LOAD_CPU. Source it after `set -euo pipefail`.
#
#   stack_start <gateway port> [VAR=value …]   extra variables for `portico dev`
#   signup EMAIL                                prints an access token
#   grant_admin EMAIL                           makes the account an admin, prints a new token
#   load <open_loop arguments…>                 the load generator, pinned
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d)
BENCH_PASSWORD="correct horse battery"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -q -p portico
cargo build --release -q -p portico-gateway --example open_loop

wait_port() {
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

stack_start() {
  GW_PORT=$1
  shift
  env PORTICO_DATA_DIR="$WORK/data" PORTICO_HTTP_ADDR="127.0.0.1:$GW_PORT" \
    PORTICO_BETA_GRPC_ADDR=127.0.0.1:0 PORTICO_WORKFLOW_GRPC_ADDR=127.0.0.1:0 \
    PORTICO_MEDIA_GRPC_ADDR=127.0.0.1:0 PORTICO_BILLING_GRPC_ADDR=127.0.0.1:0 \
    PORTICO_MONITORING_GRPC_ADDR=127.0.0.1:0 PORTICO_ADMIN_ADDR=off PORTICO_HTTP_WORKERS=1 \
    PORTICO_RATE_FREE_PER_MIN=1000000000 PORTICO_RATE_ANON_PER_MIN=1000000000 PORTICO_LOG=warn \
    "$@" taskset -c "$SERVER_CPU" "$TARGET/release/portico" dev > "$WORK/portico.log" 2>&1 &
  wait_port "$GW_PORT"
}

access_token() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])'; }

signup() {
  curl -s "127.0.0.1:$GW_PORT/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$BENCH_PASSWORD\"}" | access_token
}

grant_admin() {
  PORTICO_DATA_DIR="$WORK/data" "$TARGET/release/portico" admin grant "$1" > /dev/null
  curl -s "127.0.0.1:$GW_PORT/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$BENCH_PASSWORD\"}" | access_token
}

load() { taskset -c "$LOAD_CPU" "$TARGET/release/examples/open_loop" "$@"; }

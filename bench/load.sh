#!/usr/bin/env bash
# Load test: authenticated GET /v1/beta/user-access through the whole stack, beside two
# baselines under the same load and CPU budget: a bare actix-web handler, and nginx
# reverse-proxying to that handler. Servers share CPU 1; the load generator (wrk) runs on
# CPU 0. The three targets are measured in alternation for several rounds and the median
# of each is reported, because a shared machine's noise moves single runs by ±30 %.
#
#   bench/load.sh [seconds per run] [connections] [rounds]
#
# Then open-loop fixed-rate runs (FIXED_RUNS, default 3) compare the gateway with calling the beta service's
# gRPC API directly (RATE, default 1000 req/s). Installs wrk and nginx from Debian's
# packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-256}
ROUNDS=${3:-3}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p portico
cargo build --release -q -p portico-gateway --example bare_upstream --example fixed_rate
TARGET=${CARGO_TARGET_DIR:-target}
BARE_PORT=18081 NGINX_PORT=18082 GW_PORT=18083 BETA_PORT=18084

wait_port() {
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

# The three servers, all on the server CPU.
taskset -c "$SERVER_CPU" "$TARGET/release/examples/bare_upstream" "127.0.0.1:$BARE_PORT" 1 &
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream bare { server 127.0.0.1:$BARE_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://bare; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK"
PORTICO_DATA_DIR="$WORK/data" PORTICO_HTTP_ADDR="127.0.0.1:$GW_PORT" PORTICO_BETA_GRPC_ADDR="127.0.0.1:$BETA_PORT" \
PORTICO_HTTP_WORKERS=1 PORTICO_RATE_FREE_PER_MIN=1000000000 \
  taskset -c "$SERVER_CPU" "$TARGET/release/portico" dev > "$WORK/portico.log" 2>&1 &
wait_port $BARE_PORT; wait_port $NGINX_PORT; wait_port $GW_PORT
SIGNUP=$(curl -s "127.0.0.1:$GW_PORT/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"load@example.com","password":"correct horse battery"}')
TOKEN=$(echo "$SIGNUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
USER_ID=$(echo "$SIGNUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["user"]["id"])')

run_wrk() { # name round url [wrk args]
  local name=$1 round=$2 url=$3; shift 3
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" > "$WORK/$name.$round.txt"
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.$round.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$name.$round.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$name.$round.txt")
  bad=$(awk '/Non-2xx/ {print $5}' "$WORK/$name.$round.txt")
  printf '  %-20s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${bad:-0}"
  echo "$rps" >> "$WORK/$name.rps"
}

echo "servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU; $ROUNDS rounds of ${DURATION}s at $CONNS connections"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  run_wrk bare_actix "$round" "http://127.0.0.1:$BARE_PORT/v1/beta/user-access"
  run_wrk nginx_proxy "$round" "http://127.0.0.1:$NGINX_PORT/v1/beta/user-access"
  run_wrk portico_full_path "$round" "http://127.0.0.1:$GW_PORT/v1/beta/user-access" -H "Authorization: Bearer $TOKEN"
done

python3 - "$WORK" <<'PY'
import sys, pathlib, statistics
w = pathlib.Path(sys.argv[1])
r = {n: [float(x) for x in (w / f"{n}.rps").read_text().split()] for n in ["bare_actix", "nginx_proxy", "portico_full_path"]}
med = {n: statistics.median(v) for n, v in r.items()}
for n, v in r.items():
    print(f"median {n:<20} {med[n]:>10.0f} req/s   (runs: {', '.join(f'{x:.0f}' for x in v)})")
per_round = [p / n for p, n in zip(r["portico_full_path"], r["nginx_proxy"])]
print(f"ratio full path / nginx proxy: median {statistics.median(per_round):.2f}  (per round: {', '.join(f'{x:.2f}' for x in per_round)})")
print(f"ratio nginx proxy / bare actix: {med['nginx_proxy'] / med['bare_actix']:.2f}")
PY

echo
# Tails on a shared machine move by milliseconds between identical runs: repeat the
# fixed-rate comparison and report the median of what the gateway adds.
FIXED_RUNS=${FIXED_RUNS:-3}
echo "fixed rate (${RATE:-1000} req/s, $FIXED_RUNS runs): gateway vs calling the beta service's gRPC directly"
for run in $(seq 1 "$FIXED_RUNS"); do
  taskset -c "$LOAD_CPU" "$TARGET/release/examples/fixed_rate" "http://127.0.0.1:$GW_PORT" "http://127.0.0.1:$BETA_PORT" \
    "$TOKEN" "$USER_ID" "${RATE:-1000}" "${DURATION}" | tee "$WORK/fixed.$run.txt"
done
cat "$WORK"/fixed.*.txt | awk '/gateway adds at p99/ {print $(NF-1)}' | sort -g | awk '
  { v[NR] = $1 } END { if (NR) printf "median the gateway adds at p99 over %d runs: %.3f ms (runs: %s)\n", NR, v[int((NR + 1) / 2)], list }
  { list = list (NR > 1 ? ", " : "") $1 }'

#!/usr/bin/env bash
# Load test of POST /v1/workflows/analyze through the whole stack (gateway → workflow service
# → SQLite history), at a fixed number of connections (default 64), beside a baseline under
# the same load and CPU budget: GET /v1/beta/user-access, the gateway's lightest
# authenticated round trip to a service. The server runs on CPU 1, wrk on CPU 0; the three
# targets alternate for several rounds and the median of each is reported.
#
#   bench/workflow-load.sh [seconds per run] [connections] [rounds]
#
# Closed loop (wrk) measures what one server CPU sustains, where the latency is all queueing
# (64 connections ÷ throughput). Then an open-loop run at fixed rates (RATES, default
# "250 500 1000" req/s) over the same connections, timed from when each request was due,
# answers the latency question below saturation.
# - analyze_cached: the same 100-step workflow every time (served from the result cache,
#   still recorded in history and counted against the quota);
# - analyze_fresh: every request a different 100-step workflow (one tag value changes), so
#   each is parsed, hashed, analysed and recorded.
# Installs wrk from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p portico
cargo build --release -q -p portico-gateway --example open_loop
TARGET=${CARGO_TARGET_DIR:-target}
GW_PORT=18093

wait_port() {
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

PORTICO_DATA_DIR="$WORK/data" PORTICO_HTTP_ADDR="127.0.0.1:$GW_PORT" \
PORTICO_BETA_GRPC_ADDR=127.0.0.1:0 PORTICO_WORKFLOW_GRPC_ADDR=127.0.0.1:0 \
PORTICO_HTTP_WORKERS=1 PORTICO_RATE_FREE_PER_MIN=1000000000 PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR=1000000000 \
PORTICO_LOG=warn \
  taskset -c "$SERVER_CPU" "$TARGET/release/portico" dev > "$WORK/portico.log" 2>&1 &
wait_port $GW_PORT
TOKEN=$(curl -s "127.0.0.1:$GW_PORT/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"load@example.com","password":"correct horse battery"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')

# A 100-step workflow: a chain of actions with a decision every 10 steps whose "no" branch
# loops back through a wait, a goto, and a goal at the end. TAG_PLACEHOLDER varies per request
# in the fresh scenario.
python3 - "$WORK/workflow.json" <<'PY'
import json, sys
steps = []
kinds = ["send_email", "add_tag", "webhook", "send_sms", "remove_tag", "wait", "add_tag", "send_email", "wait_for_event"]
for i in range(100):
    sid, nxt = f"s{i}", (f"s{i+1}" if i < 98 else None)
    if i == 99:
        steps.append({"id": sid, "type": "goal", "config": {"name": "converted"}, "next": None}); continue
    if i == 98:
        steps.append({"id": sid, "type": "goto", "config": {"target": "s99"}}); continue
    if i % 10 == 9:
        steps.append({"id": sid, "type": "if_else",
                      "config": {"conditions": [{"field": "score", "op": "gt", "value": i}]},
                      "branches": {"yes": nxt, "no": f"s{i-4}"}}); continue
    k = kinds[i % len(kinds)]
    cfg = {"send_email": {"subject": "Hello", "unsubscribeLink": True},
           "add_tag": {"tag": "TAG_PLACEHOLDER" if i == 1 else f"tag{i}"},
           "remove_tag": {"tag": f"tag{i}"},
           "webhook": {"url": "https://hooks.example.com/x", "retry": {"maxAttempts": 3}},
           "send_sms": {"text": "News! Reply STOP to opt out"},
           "wait": {"duration": "PT1H"},
           "wait_for_event": {"event": "opened", "timeout": "P2D"}}[k]
    steps.append({"id": sid, "type": k, "config": cfg, "next": nxt})
json.dump({"name": "Load test", "triggers": [{"id": "t1", "type": "signup", "next": "s0"}], "steps": steps},
          open(sys.argv[1], "w"))
PY

cat > "$WORK/analyze.lua" <<'LUA'
local f = assert(io.open(os.getenv("WORKFLOW_FILE"), "r"))
local template = f:read("*a")
f:close()
local fresh = os.getenv("FRESH") == "1"
local n = 0
local cached_body = template:gsub("TAG_PLACEHOLDER", "fixed")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
request = function()
  if fresh then
    n = n + 1
    return wrk.format(nil, nil, nil, (template:gsub("TAG_PLACEHOLDER", "t" .. n .. "-" .. math.random(1, 1e9))))
  end
  return wrk.format(nil, nil, nil, cached_body)
end
done = function(summary, latency, requests)
  io.write(string.format("P95 %.3fms\n", latency:percentile(95) / 1000))
end
LUA
cat > "$WORK/get.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("P95 %.3fms\n", latency:percentile(95) / 1000))
end
LUA

run_wrk() { # name round script url [wrk args]
  local name=$1 round=$2 script=$3 url=$4; shift 4
  TOKEN=$TOKEN FRESH=${FRESH:-0} WORKFLOW_FILE="$WORK/workflow.json" taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$@" "$url" > "$WORK/$name.$round.txt"
  local rps p50 p95 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.$round.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$name.$round.txt")
  p95=$(awk '$1=="P95" {print $2}' "$WORK/$name.$round.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$name.$round.txt")
  bad=$(awk '/Non-2xx/ {print $5}' "$WORK/$name.$round.txt")
  printf '  %-16s %9s req/s   p50 %-9s p95 %-10s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p95" "$p99" "${bad:-0}"
  echo "$rps ${p95%ms}" >> "$WORK/$name.runs"
}

echo "server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU; $ROUNDS rounds of ${DURATION}s at $CONNS connections"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  run_wrk user_access "$round" "$WORK/get.lua" "http://127.0.0.1:$GW_PORT/v1/beta/user-access" -H "Authorization: Bearer $TOKEN"
  run_wrk analyze_cached "$round" "$WORK/analyze.lua" "http://127.0.0.1:$GW_PORT/v1/workflows/analyze"
  FRESH=1 run_wrk analyze_fresh "$round" "$WORK/analyze.lua" "http://127.0.0.1:$GW_PORT/v1/workflows/analyze"
done

python3 - "$WORK" <<'PY'
import sys, pathlib, statistics
w = pathlib.Path(sys.argv[1])
names = ["user_access", "analyze_cached", "analyze_fresh"]
runs = {n: [tuple(map(float, l.split())) for l in (w / f"{n}.runs").read_text().splitlines()] for n in names}
for n in names:
    rps = statistics.median(r[0] for r in runs[n]); p95 = statistics.median(r[1] for r in runs[n])
    print(f"median {n:<16} {rps:>9.0f} req/s   p95 {p95:.2f} ms")
base = runs["user_access"]
for n in names[1:]:
    ratios = [r[0] / b[0] for r, b in zip(runs[n], base)]
    print(f"throughput {n} / user_access: median {statistics.median(ratios):.2f} (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
PY

echo
echo "open loop over $CONNS connections (latency from when each request was due):"
for rate in ${RATES:-250 500 1000}; do
  for vary in same vary; do
    taskset -c "$LOAD_CPU" "$TARGET/release/examples/open_loop" "http://127.0.0.1:$GW_PORT/v1/workflows/analyze" \
      "$TOKEN" "$WORK/workflow.json" "$rate" "$DURATION" "$CONNS" "$vary"
  done
done

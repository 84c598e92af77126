#!/usr/bin/env bash
# The production shape, run for real on this machine: each of the six components as its own
# `portico serve …` process on PostgreSQL (a database each) and Redis, with the variables
# docker-compose.yml sets, an S3 server (moto) standing in for MinIO and an OTLP receiver
# standing in for Jaeger. Then:
#
#   1. one request through every service, each its own trace (sent by a trusted proxy with a
#      traceparent), in which the gateway's span is the parent of every service span;
#   2. every process's /metrics scraped;
#   3. SIGTERM while requests are in flight: every process exits 0 within its grace, every
#      request that was answered 202 is stored, none failed half-way.
#
#   deploy/smoke.sh [path/to/portico]      exit 0 when all of it holds
#
# PORTICO_SMOKE_PG_URL (default PORTICO_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres)
# may create and drop databases named portico_smoke_*; Redis on 127.0.0.1:6379 (a key prefix
# of its own); moto_server from PyPI (PORTICO_TEST_S3_SERVER or on the PATH).
set -euo pipefail
SCRIPT=smoke
source "$(dirname "$0")/lib.sh"
portico_binary "${1:-}"
cargo build -q -p portico-testkit --bin otlp_sink --locked
SINK="$TARGET/debug/otlp_sink"
MOTO=${PORTICO_TEST_S3_SERVER:-$(command -v moto_server || true)}
[ -n "$MOTO" ] || die "moto_server (pip install 'moto[server]') is required as the S3 server"
for tool in psql curl python3 redis-cli; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || die "Redis is not reachable on 127.0.0.1:6379"

ADMIN_URL=${PORTICO_SMOKE_PG_URL:-${PORTICO_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
SERVER=${ADMIN_URL%/*}
export PGOPTIONS='--client-min-messages=warning'
COMPONENTS="gateway beta media workflow billing monitoring"
WORK=$(mktemp -d)
declare -A PIDS
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in $COMPONENTS; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_smoke_$c WITH (FORCE)" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  die "nothing listens on port $1 ($2; see $WORK/$2.log): $(tail -5 "$WORK/$2.log" 2>/dev/null)"
}

say "PostgreSQL databases, the S3 server, the OTLP receiver"
for c in $COMPONENTS; do
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_smoke_$c WITH (FORCE)" -c "CREATE DATABASE portico_smoke_$c" \
    || die "cannot create databases on $SERVER"
done
S3_PORT=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$S3_PORT" > "$WORK/s3.log" 2>&1 &
PIDS[s3]=$!
wait_port "$S3_PORT" s3
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/portico-media" >/dev/null || die "cannot create the bucket"
OTLP_PORT=$(free_port)
"$SINK" "127.0.0.1:$OTLP_PORT" "$WORK/spans.jsonl" > "$WORK/otlp.log" 2>&1 &
PIDS[otlp]=$!
wait_port "$OTLP_PORT" otlp

# What docker-compose.yml's x-portico-env sets, on this machine's ports.
declare -A PORT METRICS
PORT[beta]=$(free_port); PORT[media]=$(free_port); PORT[workflow]=$(free_port)
PORT[billing]=$(free_port); PORT[monitoring]=$(free_port); PORT[gateway]=$(free_port)
for c in $COMPONENTS; do METRICS[$c]=$(free_port); done
export PORTICO_ENV=production PORTICO_LOG=info PORTICO_LOG_FORMAT=json \
  PORTICO_INTERNAL_TOKEN="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(16))')" \
  PORTICO_REDIS_URL=redis://127.0.0.1:6379 PORTICO_REDIS_KEY_PREFIX="smoke-$$:" \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" \
  PORTICO_DATA_DIR="$WORK/data" PORTICO_PUBLIC_URL="http://127.0.0.1:${PORT[gateway]}" \
  PORTICO_BETA_URL="http://127.0.0.1:${PORT[beta]}" PORTICO_MEDIA_URL="http://127.0.0.1:${PORT[media]}" \
  PORTICO_WORKFLOW_URL="http://127.0.0.1:${PORT[workflow]}" PORTICO_BILLING_URL="http://127.0.0.1:${PORT[billing]}" \
  PORTICO_MONITORING_URL="http://127.0.0.1:${PORT[monitoring]}"
for c in $COMPONENTS; do
  upper=$(echo "$c" | tr a-z A-Z)
  export "PORTICO_${upper}_DATABASE_URL=$SERVER/portico_smoke_$c"
done

start() {
  local c=$1
  shift
  env "$@" "$PORTICO" serve "$c" > "$WORK/$c.log" 2>&1 &
  PIDS[$c]=$!
}
say "six processes"
for c in beta workflow; do
  upper=$(echo "$c" | tr a-z A-Z)
  start "$c" "PORTICO_${upper}_GRPC_ADDR=127.0.0.1:${PORT[$c]}" "PORTICO_METRICS_ADDR=127.0.0.1:${METRICS[$c]}"
done
start media "PORTICO_MEDIA_GRPC_ADDR=127.0.0.1:${PORT[media]}" "PORTICO_METRICS_ADDR=127.0.0.1:${METRICS[media]}" \
  PORTICO_S3_BUCKET=portico-media "PORTICO_S3_ENDPOINT=http://127.0.0.1:$S3_PORT" PORTICO_S3_ALLOW_HTTP=true \
  PORTICO_S3_REGION=us-east-1 PORTICO_S3_ACCESS_KEY_ID=smoke PORTICO_S3_SECRET_ACCESS_KEY=smoke-secret
start billing "PORTICO_BILLING_GRPC_ADDR=127.0.0.1:${PORT[billing]}" "PORTICO_METRICS_ADDR=127.0.0.1:${METRICS[billing]}" \
  PORTICO_BILLING_PROVIDER=local
start monitoring "PORTICO_MONITORING_GRPC_ADDR=127.0.0.1:${PORT[monitoring]}" "PORTICO_METRICS_ADDR=127.0.0.1:${METRICS[monitoring]}"
for c in beta workflow media billing monitoring; do wait_port "${PORT[$c]}" "$c"; done
# Behind a load balancer on this host: it may speak for clients (traceparent, X-Forwarded-For).
start gateway "PORTICO_HTTP_ADDR=127.0.0.1:${PORT[gateway]}" "PORTICO_ADMIN_ADDR=127.0.0.1:${METRICS[gateway]}" \
  PORTICO_KEY_ENCRYPTION_KEY="$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')" \
  PORTICO_TRUSTED_PROXIES=127.0.0.1/32 PORTICO_SHUTDOWN_DELAY_SECS=1 \
  PORTICO_RATE_FREE_PER_MIN=6000  # the shutdown burst below is not a rate-limit test
wait_port "${PORT[gateway]}" gateway
URL="http://127.0.0.1:${PORT[gateway]}"
for _ in $(seq 1 100); do curl -sf "$URL/ready" >/dev/null && break; sleep 0.1; done
curl -sf "$URL/ready" >/dev/null || die "the gateway is not ready"
echo "gateway $URL; services on ${PORT[beta]} ${PORT[media]} ${PORT[workflow]} ${PORT[billing]} ${PORT[monitoring]}"

say "one request through every service, one trace each"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
CLIENT_SPAN=00f067aa0ba902b7
TRACES=()
# traced NAME SERVICE METHOD PATH [curl args…]: the request under a trace of its own.
traced() {
  local name=$1 service=$2 method=$3 path=$4
  shift 4
  local trace
  trace=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  TRACES+=("$trace:$service:$name")
  curl -sf -X "$method" "$URL$path" -H "traceparent: 00-$trace-$CLIENT_SPAN-01" ${TOKEN:+-H "authorization: Bearer $TOKEN"} "$@"
}
TOKEN=
traced signup gateway POST /v1/auth/signup -H 'content-type: application/json' \
  -d '{"email":"smoke@example.com","password":"smoke horse battery staple"}' > "$WORK/signup.json"
TOKEN=$(json 'd["data"]["accessToken"]' < "$WORK/signup.json")
traced user-access beta GET /v1/beta/user-access >/dev/null
python3 -c 'import sys,struct,zlib
w,h=32,24; raw=b"".join(b"\0"+bytes(v for x in range(w) for v in (x*8%256,y*10%256,90)) for y in range(h))
c=lambda t,d: struct.pack(">I",len(d))+t+d+struct.pack(">I",zlib.crc32(t+d)&0xFFFFFFFF)
open(sys.argv[1],"wb").write(b"\x89PNG\r\n\x1a\n"+c(b"IHDR",struct.pack(">IIBBBBB",w,h,8,2,0,0,0))+c(b"IDAT",zlib.compress(raw))+c(b"IEND",b""))' "$WORK/p.png"
traced upload media POST /v1/mobile/upload-optimized -F "file=@$WORK/p.png;type=image/png" >/dev/null
traced analyze workflow POST /v1/workflows/analyze -H 'content-type: application/json' \
  -d @services/workflow/analyzer/fuzz/corpus/workflow_json/seed-reference.json >/dev/null
traced subscription billing GET /v1/billing/subscription >/dev/null
traced error monitoring POST /v1/monitoring/errors -H 'content-type: application/json' \
  -d '{"message":"smoke error","type":"SmokeError"}' >/dev/null
echo "${#TRACES[@]} requests answered"

say "every process's /metrics"
for c in $COMPONENTS; do
  body=$(curl -sf "http://127.0.0.1:${METRICS[$c]}/metrics") || die "$c: /metrics does not answer"
  lines=$(grep -c '^portico_' <<< "$body" || true)
  [ "$lines" -gt 0 ] || die "$c: /metrics has no portico_ series"
  echo "$c: $lines portico_ samples"
done

say "SIGTERM with requests in flight"
CURLS=()
for i in $(seq 1 40); do
  curl -s -o /dev/null -w '%{http_code}\n' -X POST "$URL/v1/beta/analytics" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d "{\"feature\":\"smoke_$i\",\"action\":\"used\"}" >> "$WORK/codes.txt" &
  CURLS+=($!)
done
sleep 0.2
kill -TERM "${PIDS[gateway]}"
wait "${PIDS[gateway]}" || die "the gateway did not exit cleanly: $(tail -5 "$WORK/gateway.log")"
unset 'PIDS[gateway]'
wait "${CURLS[@]}" || true
for c in beta media workflow billing monitoring; do
  kill -TERM "${PIDS[$c]}"
done
for c in beta media workflow billing monitoring; do
  wait "${PIDS[$c]}" || die "$c did not exit cleanly: $(tail -5 "$WORK/$c.log")"
  unset "PIDS[$c]"
done
accepted=$(grep -c '^202$' "$WORK/codes.txt" || true)
refused=$(grep -c '^000$' "$WORK/codes.txt" || true)
other=$(grep -v -c -e '^202$' -e '^000$' "$WORK/codes.txt" || true)
stored=$(psql -tA "$SERVER/portico_smoke_beta" -c "SELECT count(*) FROM analytics_events WHERE feature LIKE 'smoke_%'")
echo "40 in flight: $accepted answered 202 and $stored stored; $refused refused before they were read; $other other answers"
[ "$other" = 0 ] || die "requests failed half-way: $(sort "$WORK/codes.txt" | uniq -c | tr '\n' ' ')"
[ "$accepted" = "$stored" ] || die "answered $accepted but stored $stored"
[ "$accepted" -gt 0 ] || die "no request was answered before the shutdown"
echo "every process exited 0"

say "traces (flushed at exit)"
python3 - "$WORK/spans.jsonl" "${TRACES[@]}" <<'PY'
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = True
for entry in sys.argv[2:]:
    trace, service, name = entry.split(":")
    ours = [s for s in spans if s["traceId"] == trace]
    gateway = [s for s in ours if s["parentSpanId"] == "00f067aa0ba902b7"]
    if len(gateway) != 1:
        print(f"{name}: expected one gateway span continuing the client's, found {len(gateway)} of {len(ours)} spans")
        ok = False
        continue
    root = gateway[0]
    others = [s for s in ours if s is not root]
    wrong = [s for s in others if s["parentSpanId"] != root["spanId"]]
    want = [s for s in others if service in s["service"]]
    if service != "gateway" and not want:
        print(f"{name}: no span of the {service} service in its trace ({[s['service'] for s in ours]})")
        ok = False
    elif wrong:
        print(f"{name}: spans not children of the gateway's: {[(s['service'], s['name']) for s in wrong]}")
        ok = False
    else:
        print(f"{name}: one trace, {root['service']} '{root['name']}' -> " + ", ".join(f"{s['service']} '{s['name']}'" for s in others))
sys.exit(0 if ok else 1)
PY
say "the production shape holds"

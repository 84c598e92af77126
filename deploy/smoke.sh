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
# What it needs is in deploy/shape.sh (PostgreSQL, Redis on 127.0.0.1:6379, moto_server).
set -euo pipefail
SCRIPT=smoke
source "$(dirname "$0")/lib.sh"
portico_binary "${1:-}"
SHAPE=smoke
source deploy/shape.sh
command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || die "Redis is not reachable on 127.0.0.1:6379"
shape_prepare
# The shutdown burst below is not a rate-limit test.
shape_up PORTICO_RATE_FREE_PER_MIN=6000

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
stop_component gateway || die "the gateway did not exit cleanly: $(tail -5 "$WORK/gateway.log")"
wait "${CURLS[@]}" || true
for c in $SERVICES; do
  stop_component "$c" || die "$c did not exit cleanly: $(tail -5 "$WORK/$c.log")"
done
accepted=$(grep -c '^202$' "$WORK/codes.txt" || true)
refused=$(grep -c '^000$' "$WORK/codes.txt" || true)
other=$(grep -v -c -e '^202$' -e '^000$' "$WORK/codes.txt" || true)
stored=$(psql -tA "$SERVER/portico_${SHAPE}_beta" -c "SELECT count(*) FROM analytics_events WHERE feature LIKE 'smoke_%'")
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

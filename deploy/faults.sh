#!/usr/bin/env bash
# Faults, measured while load runs, on the production shape (deploy/shape.sh; release build,
# loopback only, every loop bounded). Prints one line per fault and exits 1 if any target
# is missed:
#
#   service   beta killed (SIGKILL) and restarted under load: its calls answer 503 within the
#             gRPC deadline, another service's calls do not fail, it recovers without a
#             gateway restart;
#   redis     Redis killed and restarted under load: no failed request;
#   postgres  PostgreSQL restarted under a write load: requests fail fast with 503 SERVICE_UNAVAILABLE,
#             then succeed again;
#   rolling   two gateway replicas behind nginx restarted one after the other under load: no
#             failed request;
#   capacity  1,000 open connections at a fixed 5,000 req/s for a minute: p95 under 20 ms.
#
#   deploy/faults.sh [fault …]      (default: all of them)
#
# The load generator is gateway/examples/open_loop.rs (open loop, latency from when each
# request was due). Restarting PostgreSQL needs pg_ctlcluster (this machine's cluster).
# Installs nginx from Debian when it is missing.
set -euo pipefail
SCRIPT=faults
source "$(dirname "$0")/lib.sh"
FAULTS=${*:-service redis postgres rolling capacity}
cargo build --release -q -p portico --locked
cargo build --release -q -p portico-gateway --example open_loop --locked
portico_binary "$TARGET/release/portico"
LOAD="$TARGET/release/examples/open_loop"
command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
} || die "nginx is required for the rolling restart"
command -v redis-server >/dev/null || die "redis-server is required"

# A Redis of our own, so killing it harms nobody else.
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
SHAPE=faults
source deploy/shape.sh
redis_up() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > "$WORK/redis.log" 2>&1 &
  PIDS[redis]=$!
  wait_port "$REDIS_PORT" redis
}
redis_up
shape_prepare
ulimit -n 65536 2>/dev/null || true
# Every rate limit out of the way: these are fault and capacity tests, not limit tests.
RATES=(PORTICO_RATE_FREE_PER_MIN=100000000 PORTICO_RATE_ANON_PER_MIN=100000000 PORTICO_HTTP_WORKERS=2)
shape_up "${RATES[@]}"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
TOKEN=$(curl -sf "$URL/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"faults@example.com","password":"faults horse battery staple"}' | json 'd["data"]["accessToken"]')
echo '{"feature":"faults","action":"used"}' > "$WORK/event.json"
MISSED=0
verdict() { # verdict OK|MISSED TEXT
  printf '%-8s %-7s %s\n' "$FAULT" "$1" "$2"
  [ "$1" = OK ] || MISSED=1
}
failed_of() { sed -n 's/.*failed \([0-9]*\).*/\1/p' "$1"; }
# probe URL METHOD: one request, "status seconds".
probe() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X "${2:-GET}" "$1" -H "authorization: Bearer $TOKEN" \
    ${3:+-H 'content-type: application/json' -d "$3"} --max-time 10 || true
}

for FAULT in $FAULTS; do
  case $FAULT in
  service)
    "$LOAD" "$URL/v1/beta/user-access" "$TOKEN" - 200 12 16 > "$WORK/beta-load.txt" &
    a=$!
    "$LOAD" "$URL/v1/workflows/history" "$TOKEN" - 200 12 16 > "$WORK/workflow-load.txt" &
    b=$!
    sleep 3
    kill -KILL "${PIDS[beta]}"; wait "${PIDS[beta]}" 2>/dev/null || true
    sleep 0.5
    read -r down_status down_secs < <(probe "$URL/v1/beta/user-access")
    sleep 3
    restarted=$(date +%s.%N)
    start_component beta
    back=none
    for _ in $(seq 1 100); do
      read -r s _ < <(probe "$URL/v1/beta/user-access")
      if [ "$s" = 200 ]; then back=$(python3 -c "import time; print(f'{time.time() - $restarted:.1f}')"); break; fi
      sleep 0.1
    done
    wait "$a" "$b"
    other=$(failed_of "$WORK/workflow-load.txt")
    text="beta down: $down_status in ${down_secs}s (deadline 5 s); workflow calls failed: $other; beta answers 200 ${back}s after its restart; beta load: $(cat "$WORK/beta-load.txt")"
    if [ "$down_status" = 503 ] && python3 -c "import sys; sys.exit(0 if $down_secs < 5 else 1)" && [ "$other" = 0 ] && [ "$back" != none ]; then
      verdict OK "$text"
    else
      verdict MISSED "$text"
    fi
    ;;
  redis)
    "$LOAD" "$URL/v1/beta/user-access" "$TOKEN" - 500 12 32 > "$WORK/redis-load.txt" &
    a=$!
    sleep 3
    kill -KILL "${PIDS[redis]}"; wait "${PIDS[redis]}" 2>/dev/null || true
    sleep 4
    redis_up
    wait "$a"
    failed=$(failed_of "$WORK/redis-load.txt")
    [ "$failed" = 0 ] && verdict OK "$(cat "$WORK/redis-load.txt")" || verdict MISSED "$(cat "$WORK/redis-load.txt")"
    ;;
  postgres)
    command -v pg_ctlcluster >/dev/null || { verdict MISSED "pg_ctlcluster is not installed"; continue; }
    cluster=$(ls /etc/postgresql | head -n1)
    : > "$WORK/pg-probes.txt"
    (
      for _ in $(seq 1 150); do
        probe "$URL/v1/beta/analytics" POST "$(cat "$WORK/event.json")" >> "$WORK/pg-probes.txt"
        sleep 0.1
      done
    ) &
    a=$!
    sleep 2
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main restart
    wait "$a"
    python3 - "$WORK/pg-probes.txt" > "$WORK/pg-verdict.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
codes = [r[0] for r in rows]
failed = [(c, float(t)) for c, t in rows if c != "202"]
first_fail = codes.index(next(c for c in codes if c != "202")) if failed else None
recovered = first_fail is not None and "202" in codes[first_fail:]
slowest = max((t for _, t in failed), default=0.0)
kinds = sorted(set(c for c, _ in failed))
ok = bool(failed) and recovered and slowest < 5.0 and all(k == "503" for k in kinds) and codes[-1] == "202"
print("OK" if ok else "MISSED",
      f"{len(rows)} writes: {len(failed)} failed with {kinds} in at most {slowest:.2f}s each, then {codes[-20:].count('202')} of the last 20 succeeded")
PY
    read -r v rest < "$WORK/pg-verdict.txt"
    verdict "$v" "$rest"
    ;;
  rolling)
    second=$(free_port) second_admin=$(free_port) lb=$(free_port)
    env "${RATES[@]}" PORTICO_HTTP_ADDR="127.0.0.1:$second" PORTICO_ADMIN_ADDR="127.0.0.1:$second_admin" \
      PORTICO_SHUTDOWN_DELAY_SECS=1 "$PORTICO" serve gateway >> "$WORK/gateway2.log" 2>&1 &
    PIDS[gateway2]=$!
    wait_port "$second" gateway2
    cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  # A replica that refuses a connection is retried on the other (proxy_next_upstream) and
  # tried again on the next request (max_fails=0): it is back as soon as it listens.
  upstream gateways {
    server 127.0.0.1:${PORT[gateway]} max_fails=0;
    server 127.0.0.1:$second max_fails=0;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$lb;
    location / {
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
NGINX
    nginx -c "$WORK/nginx.conf" -p "$WORK" || die "nginx did not start"
    wait_port "$lb" nginx
    "$LOAD" "http://127.0.0.1:$lb/v1/beta/user-access" "$TOKEN" - 500 24 32 > "$WORK/rolling-load.txt" &
    a=$!
    sleep 3
    stop_component gateway || true
    start_component gateway "${RATES[@]}"
    wait_ready gateway
    sleep 3
    kill -TERM "${PIDS[gateway2]}"; wait "${PIDS[gateway2]}" || true
    env "${RATES[@]}" PORTICO_HTTP_ADDR="127.0.0.1:$second" PORTICO_ADMIN_ADDR="127.0.0.1:$second_admin" \
      PORTICO_SHUTDOWN_DELAY_SECS=1 "$PORTICO" serve gateway >> "$WORK/gateway2.log" 2>&1 &
    PIDS[gateway2]=$!
    wait_port "$second" gateway2
    wait "$a"
    kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    failed=$(failed_of "$WORK/rolling-load.txt")
    [ "$failed" = 0 ] && verdict OK "both replicas restarted: $(cat "$WORK/rolling-load.txt")" \
      || verdict MISSED "$(cat "$WORK/rolling-load.txt"); nginx: $(tail -3 "$WORK/nginx-error.log" | tr '\n' ' ')"
    ;;
  capacity)
    # Two cores: the load generator on one, every Portico process on the other.
    [ -n "${PIN:-}" ] && for c in $COMPONENTS; do taskset -apc 1 "${PIDS[$c]}" >/dev/null; done
    taskset -c 0 "$LOAD" "$URL/v1/beta/user-access" "$TOKEN" - 5000 60 1000 > "$WORK/capacity.txt"
    p95=$(sed -n 's/.*p95 \([0-9.]*\) ms.*/\1/p' "$WORK/capacity.txt")
    failed=$(failed_of "$WORK/capacity.txt")
    if python3 -c "import sys; sys.exit(0 if float('$p95') < 20 else 1)" && [ "$failed" = 0 ]; then
      verdict OK "$(cat "$WORK/capacity.txt")"
    else
      verdict MISSED "$(cat "$WORK/capacity.txt")"
    fi
    ;;
  *) die "no fault named $FAULT (service, redis, postgres, rolling, capacity)" ;;
  esac
done
exit "$MISSED"

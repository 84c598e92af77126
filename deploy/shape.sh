# The production shape on this machine, for deploy/smoke.sh and deploy/faults.sh: each of the
# six components as its own `portico serve …` process with the variables docker-compose.yml
# sets, a database each on PostgreSQL, Redis, an S3 server (moto, standing in for MinIO) and
# an OTLP receiver (standing in for Jaeger). Source it after deploy/lib.sh and
# portico_binary, with SHAPE set to a name for the databases (portico_<SHAPE>_<component>).
#
#   shape_prepare             databases, S3, OTLP, ports and variables (PORT, METRICS, URL)
#   start_component C [VAR=value …]   one component (its usual settings plus these)
#   wait_ready C              until C listens (and, for the gateway, /ready answers)
#   stop_component C          SIGTERM, and its exit status
#   shape_up                  the five services, then the gateway
#
# PORTICO_SHAPE_PG_URL (default PORTICO_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres)
# may create and drop databases named portico_<SHAPE>_*; REDIS_URL (default
# redis://127.0.0.1:6379) gets a key prefix of its own; moto_server comes from PyPI
# (PORTICO_TEST_S3_SERVER or the PATH). SHAPE_LOG and SHAPE_SAMPLE (default `info` and 1.0, as
# compose) set PORTICO_LOG and PORTICO_TRACE_SAMPLE_RATIO.
cargo build -q -p portico-testkit --bin otlp_sink --locked
SINK="$TARGET/debug/otlp_sink"
MOTO=${PORTICO_TEST_S3_SERVER:-$(command -v moto_server || true)}
[ -n "$MOTO" ] || die "moto_server (pip install 'moto[server]') is required as the S3 server"
for tool in psql curl python3; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
ADMIN_URL=${PORTICO_SHAPE_PG_URL:-${PORTICO_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
SERVER=${ADMIN_URL%/*}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export PGOPTIONS='--client-min-messages=warning'
COMPONENTS="gateway beta media workflow billing monitoring"
SERVICES="beta media workflow billing monitoring"
WORK=$(mktemp -d)
declare -A PIDS PORT METRICS
shape_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in $COMPONENTS; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_${SHAPE}_$c WITH (FORCE)" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap shape_cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  die "nothing listens on port $1 ($2; see $WORK/$2.log): $(tail -5 "$WORK/$2.log" 2>/dev/null)"
}
upper() { echo "$1" | tr a-z A-Z; }

shape_prepare() {
  say "PostgreSQL databases, the S3 server, the OTLP receiver"
  for c in $COMPONENTS; do
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_${SHAPE}_$c WITH (FORCE)" \
      -c "CREATE DATABASE portico_${SHAPE}_$c" || die "cannot create databases on $SERVER"
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
  for c in $COMPONENTS; do PORT[$c]=$(free_port); METRICS[$c]=$(free_port); done
  URL="http://127.0.0.1:${PORT[gateway]}"
  # What docker-compose.yml's x-portico-env sets, on this machine's ports.
  export PORTICO_ENV=production PORTICO_LOG=${SHAPE_LOG:-info} PORTICO_TRACE_SAMPLE_RATIO=${SHAPE_SAMPLE:-1.0} PORTICO_LOG_FORMAT=json \
    PORTICO_INTERNAL_TOKEN="$SHAPE-$(python3 -c 'import secrets; print(secrets.token_hex(16))')" \
    PORTICO_REDIS_URL="$REDIS_URL" PORTICO_REDIS_KEY_PREFIX="$SHAPE-$$:" \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" \
    PORTICO_DATA_DIR="$WORK/data" PORTICO_PUBLIC_URL="$URL" \
    PORTICO_KEY_ENCRYPTION_KEY="$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
  for c in $SERVICES; do export "PORTICO_$(upper "$c")_URL=http://127.0.0.1:${PORT[$c]}"; done
  for c in $COMPONENTS; do export "PORTICO_$(upper "$c")_DATABASE_URL=$SERVER/portico_${SHAPE}_$c"; done
}

# start_component C [VAR=value …]
start_component() {
  local c=$1
  shift
  local own=()
  case $c in
    gateway)
      # Behind a load balancer on this host: it may speak for clients (traceparent).
      own=("PORTICO_HTTP_ADDR=127.0.0.1:${PORT[gateway]}" "PORTICO_ADMIN_ADDR=127.0.0.1:${METRICS[gateway]}"
        PORTICO_TRUSTED_PROXIES=127.0.0.1/32 PORTICO_SHUTDOWN_DELAY_SECS=1) ;;
    media)
      own=(PORTICO_S3_BUCKET=portico-media "PORTICO_S3_ENDPOINT=http://127.0.0.1:$S3_PORT" PORTICO_S3_ALLOW_HTTP=true
        PORTICO_S3_REGION=us-east-1 PORTICO_S3_ACCESS_KEY_ID=shape PORTICO_S3_SECRET_ACCESS_KEY=shape-secret) ;;
    billing) own=(PORTICO_BILLING_PROVIDER=local) ;;
  esac
  if [ "$c" != gateway ]; then
    own+=("PORTICO_$(upper "$c")_GRPC_ADDR=127.0.0.1:${PORT[$c]}" "PORTICO_METRICS_ADDR=127.0.0.1:${METRICS[$c]}")
  fi
  env "${own[@]}" "$@" "$PORTICO" serve "$c" >> "$WORK/$c.log" 2>&1 &
  PIDS[$c]=$!
}

wait_ready() {
  wait_port "${PORT[$1]}" "$1"
  if [ "$1" = gateway ]; then
    for _ in $(seq 1 100); do curl -sf "$URL/ready" >/dev/null && return 0; sleep 0.1; done
    die "the gateway is not ready"
  fi
}

stop_component() {
  kill -TERM "${PIDS[$1]}"
  local status=0
  wait "${PIDS[$1]}" || status=$?
  unset "PIDS[$1]"
  return $status
}

# shape_up [gateway VAR=value …]
shape_up() {
  say "six processes"
  for c in $SERVICES; do start_component "$c"; done
  for c in $SERVICES; do wait_ready "$c"; done
  start_component gateway "$@"
  wait_ready gateway
  echo "gateway $URL; services on $(for c in $SERVICES; do printf '%s ' "${PORT[$c]}"; done)"
}

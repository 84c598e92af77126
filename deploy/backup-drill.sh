#!/usr/bin/env bash
# The restore drill (`make backup-drill`), on real PostgreSQL: every component on its own
# database, filled through the API; a backup taken while the stack runs (to a directory),
# another once it has stopped (to S3: moto's server standing in); every database dropped
# and the media objects deleted; `portico restore` from S3; then the row count of every table
# of every database compared with before, and a signed-in request (sign-in with the old
# password, the uploaded image's bytes) answered by the restored stack. Prints the measured
# recovery time (restore + start until ready) as `RTO: <seconds> s`.
#
#   deploy/backup-drill.sh [path/to/portico]      (default: builds the debug binary)
#
# PORTICO_DRILL_PG_URL (default PORTICO_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres)
# names a server where the drill may create and drop databases named portico_drill_*.
set -euo pipefail
SCRIPT=backup-drill
source "$(dirname "$0")/lib.sh"
portico_binary "${1:-}"
for tool in psql pg_dump pg_restore curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
MOTO=${PORTICO_TEST_S3_SERVER:-$(command -v moto_server || true)}
[ -n "$MOTO" ] || die "moto_server (pip install 'moto[server]') is required as the S3 server"
S3_PID=
ADMIN_URL=${PORTICO_DRILL_PG_URL:-${PORTICO_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
SERVER=${ADMIN_URL%/*}
export PGOPTIONS='--client-min-messages=warning'
COMPONENTS="gateway beta media workflow billing monitoring"
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [ -n "$S3_PID" ] && kill "$S3_PID" 2>/dev/null
  for c in $COMPONENTS; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_drill_$c WITH (FORCE)" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
export PORTICO_DATA_DIR="$WORK/data" PORTICO_MEDIA_DIR="$WORK/media" PORTICO_HTTP_ADDR="127.0.0.1:$PORT" \
  PORTICO_ADMIN_ADDR=off PORTICO_LOG=warn \
  PORTICO_BETA_GRPC_ADDR=127.0.0.1:0 PORTICO_WORKFLOW_GRPC_ADDR=127.0.0.1:0 PORTICO_MEDIA_GRPC_ADDR=127.0.0.1:0 \
  PORTICO_BILLING_GRPC_ADDR=127.0.0.1:0 PORTICO_MONITORING_GRPC_ADDR=127.0.0.1:0
for c in $COMPONENTS; do
  upper=$(echo "$c" | tr a-z A-Z)
  export "PORTICO_${upper}_DATABASE_URL=$SERVER/portico_drill_$c"
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS portico_drill_$c WITH (FORCE)" -c "CREATE DATABASE portico_drill_$c" \
    || die "cannot create databases on $SERVER"
done

start() {
  "$PORTICO" dev > "$WORK/portico.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    curl -sf "$URL/ready" >/dev/null 2>&1 && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/portico.log" >&2; die "the stack did not start"; }
    sleep 0.1
  done
  die "the stack was not ready within 30 s"
}
stop() { kill -TERM "$PID"; wait "$PID" || true; PID=; }

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
post() { curl -sf "$URL$1" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$2"; }

# Every table of every component's database with its exact row count.
counts() {
  for c in $COMPONENTS; do
    psql -tA "$SERVER/portico_drill_$c" -c "
      SELECT '$c ' || coalesce(string_agg(t.table_name || '=' || (xpath('/row/n/text()',
        query_to_xml(format('SELECT count(*) AS n FROM %I', t.table_name), false, true, '')))[1]::text,
        ' ' ORDER BY t.table_name), '')
      FROM information_schema.tables t WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
  done
}

say "filling every service through the API"
start
PASSWORD="drill horse battery staple"
TOKEN=$(post /v1/auth/signup "{\"email\":\"drill@example.com\",\"password\":\"$PASSWORD\"}" | json 'd["data"]["accessToken"]')
post /v1/beta/join '{"code":"COSNAPBETA2025"}' >/dev/null || die "beta join failed"
python3 - "$WORK/photo.png" <<'PY'
import struct, sys, zlib
w, h = 64, 48
raw = b"".join(b"\x00" + bytes(v for x in range(w) for v in (x * 4 % 256, y * 5 % 256, (x + y) % 256)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
MEDIA=$(curl -sf "$URL/v1/mobile/upload-optimized" -H "authorization: Bearer $TOKEN" -F "file=@$WORK/photo.png;type=image/png" | json 'd["data"]["mediaId"]')
curl -sf "$URL/v1/media/$MEDIA/thumbnail?format=jpeg" -H "authorization: Bearer $TOKEN" -o "$WORK/thumb-before.jpg"
post /v1/workflows/analyze "$(cat services/workflow/analyzer/fuzz/corpus/workflow_json/seed-reference.json)" >/dev/null || die "analysis failed"
post /v1/monitoring/errors '{"message":"drill error 42","type":"DrillError","level":"error"}' >/dev/null || die "error ingest failed"
post /v1/billing/checkout '{"plan":"pro"}' >/dev/null || die "checkout failed"
post /v1/analytics/funnel '{"sessionId":"drill-session","step":"effect_discovery"}' >/dev/null || die "funnel failed"

say "backup while the stack runs"
"$PORTICO" backup --to "$WORK/backups" || die "online backup failed"
stop
say "backup of the stopped stack, to S3 (moto's server)"
S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$S3_PORT" > "$WORK/s3.log" 2>&1 &
S3_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT" && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/drill-backups" >/dev/null || die "cannot create the backup bucket"
export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=drill \
  AWS_SECRET_ACCESS_KEY=drill-secret AWS_REGION=us-east-1
BACKUPS=s3://drill-backups/portico
"$PORTICO" backup --to "$BACKUPS" || die "backup failed"
"$PORTICO" backups --in "$BACKUPS"
"$PORTICO" backups --in "$WORK/backups"
counts > "$WORK/before.txt"
cat "$WORK/before.txt"

say "disaster: every database dropped, every media object deleted"
for c in $COMPONENTS; do psql -q "$ADMIN_URL" -c "DROP DATABASE portico_drill_$c WITH (FORCE)"; done
rm -rf "$WORK/media"

say "restore"
t0=$(date +%s.%N)
"$PORTICO" restore --from "$BACKUPS" || die "restore failed"
t1=$(date +%s.%N)
start
t2=$(date +%s.%N)
counts > "$WORK/after.txt"
diff "$WORK/before.txt" "$WORK/after.txt" || die "row counts differ after the restore"
echo "every table of the six databases has its rows back ($(wc -w < "$WORK/after.txt") tables and names)"

say "a signed-in request on the restored stack"
TOKEN=$(post /v1/auth/login "{\"email\":\"drill@example.com\",\"password\":\"$PASSWORD\"}" | json 'd["data"]["accessToken"]')
[ "$(curl -sf "$URL/v1/auth/me" -H "authorization: Bearer $TOKEN" | json 'd["data"]["email"]')" = drill@example.com ] \
  || die "the restored account does not answer"
[ "$(curl -sf "$URL/v1/beta/user-access" -H "authorization: Bearer $TOKEN" | json 'd["data"]["accessLevel"]')" = BASIC ] \
  || die "the beta membership was not restored"
curl -sf "$URL/v1/media/$MEDIA/thumbnail?format=jpeg" -H "authorization: Bearer $TOKEN" -o "$WORK/thumb-after.jpg"
cmp -s "$WORK/thumb-before.jpg" "$WORK/thumb-after.jpg" || die "the image's bytes differ after the restore"
echo "signed in with the old password; beta level, account and image are back"
stop

python3 - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
print(f"restore {t1 - t0:.1f} s, start until ready {t2 - t1:.1f} s")
print(f"RTO: {t2 - t0:.1f} s")
PY

#!/usr/bin/env bash
# Load test of POST /webhooks/stripe through the whole stack (gateway → billing service →
# SQLite: signature check, event recorded once, outbox row; processing follows off the
# acknowledgement), beside a baseline in the same run and on the same CPU budget:
# GET /v1/beta/user-access, the gateway's lightest authenticated round trip to a service.
# The server runs on CPU 1, the load on CPU 0.
#
#   bench/billing-load.sh [seconds per run] [connections] [rounds]
#
# Open loop (latency from when each request was due, no coordinated omission) at RATES
# (default "200 400 800") events/s; every event is new (its own id) and signed as Stripe
# signs, so each is verified, recorded and queued. Then closed loop: the most events/s one
# server CPU acknowledges (wrk cannot sign, so the open-loop tool runs at a rate above it and
# reports what it achieved). PORTICO_BILLING_DATABASE_URL=postgres://… puts billing on
# PostgreSQL instead.
set -euo pipefail
DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
SECRET=whsec_portico_local
source "$(dirname "$0")/lib.sh"
stack_start 18094 PORTICO_RATE_WEBHOOKS_PER_MIN=1000000000 PORTICO_STRIPE_WEBHOOK_SECRET=$SECRET
TOKEN=$(signup load@example.com)
# An event Stripe sends that billing records and marks processed (no provider call): the
# cost measured is the intake and the outbox, not a re-fetch.
cat > "$WORK/event.json" <<'JSON'
{"id":"evt_load_TAG_PLACEHOLDER","object":"event","type":"charge.succeeded","created":1764547200,"livemode":false,"api_version":"2026-10-28.endive","data":{"object":{"id":"ch_load","object":"charge","amount":2900,"currency":"usd","customer":"cus_load"}}}
JSON

echo "server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; $ROUNDS rounds of ${DURATION}s over $CONNS connections"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for rate in ${RATES:-200 400 800}; do
    load "http://127.0.0.1:$GW_PORT/v1/beta/user-access" "$TOKEN" - "$rate" "$DURATION" "$CONNS" | sed 's/^/  user-access  /'
    load "http://127.0.0.1:$GW_PORT/webhooks/stripe" "-" "$WORK/event.json" "$rate" "$DURATION" "$CONNS" "stripe=$SECRET" | sed 's/^/  webhook      /'
  done
  echo "  at saturation (asked for ${MAX_RATE:-5000}/s; 'achieved' is what one CPU sustains):"
  load "http://127.0.0.1:$GW_PORT/v1/beta/user-access" "$TOKEN" - "${MAX_RATE:-5000}" "$DURATION" "$CONNS" | sed 's/^/  user-access  /'
  load "http://127.0.0.1:$GW_PORT/webhooks/stripe" "-" "$WORK/event.json" "${MAX_RATE:-5000}" "$DURATION" "$CONNS" "stripe=$SECRET" | sed 's/^/  webhook      /'
done
# With the default SQLite database: how far processing got behind the acknowledgements.
if [ -z "${PORTICO_BILLING_DATABASE_URL:-}" ]; then
  recorded=$(python3 - "$WORK/data/billing.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("select count(*), sum(processed_at is not null) from events").fetchone())
PY
)
  echo "events recorded, processed: $recorded"
fi

#!/usr/bin/env bash
# Load test of the monitoring ingest through the whole stack (gateway → monitoring service →
# SQLite), beside a baseline in the same run and on the same CPU budget:
# GET /v1/beta/user-access, the gateway's lightest authenticated round trip to a service.
# The server runs on CPU 1, the load on CPU 0.
#
#   bench/monitoring-load.sh [seconds per run] [connections] [rounds]
#
# - errors: a Sentry envelope as the Python SDK sends it (one error event with a four-frame
#   stack trace; no event_id, so each is a new event of one group) to
#   /sentry/api/{id}/envelope/ with the key in the query;
# - metrics: POST /v1/analytics/performance/metrics with 100 web vitals per request.
# Open loop at ERROR_RATES (default "500 1000 2000") envelopes/s and METRIC_RATES (default
# "50 100 200") batches/s, then each at saturation (MAX_RATE, default 5000/s asked; the
# achieved rate is what one server CPU sustains).
set -euo pipefail
DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
source "$(dirname "$0")/lib.sh"
stack_start 18095 PORTICO_RATE_INGEST_PER_MIN=1000000000 PORTICO_SENTRY_EVENTS_PER_MIN=1000000000
TOKEN=$(signup load@example.com)
signup ops@example.com > /dev/null
ADMIN=$(grant_admin ops@example.com)
read -r PROJECT KEY < <(curl -s "127.0.0.1:$GW_PORT/v1/monitoring/projects" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"name":"load"}' |
  python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["id"], d["publicKey"])')
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
event = {
    "level": "error", "platform": "python", "release": "shop@1.4.0", "environment": "production",
    "timestamp": 1796173323.25, "user": {"id": "user-TAG_PLACEHOLDER"},
    "sdk": {"name": "sentry.python", "version": "2.75.0"},
    "exception": {"values": [{"type": "KeyError", "value": "'sku-TAG_PLACEHOLDER'", "stacktrace": {"frames": [
        {"module": "flask.app", "function": "dispatch_request", "filename": "/venv/lib/python3.12/site-packages/flask/app.py", "lineno": 880, "in_app": False},
        {"module": "shop.views", "function": "checkout", "context_line": "    return cart.total(request.json)", "lineno": 42, "in_app": True},
        {"module": "shop.cart", "function": "total", "context_line": "    price = prices[item['sku']]", "lineno": 17, "in_app": True},
        {"module": "shop.prices", "function": "__getitem__", "context_line": "    return self._table[key]", "lineno": 9, "in_app": True},
    ]}}]},
}
payload = json.dumps(event)
with open(f"{work}/envelope.txt", "w") as f:
    f.write(json.dumps({"sent_at": "2026-12-02T00:00:00Z", "sdk": event["sdk"]}) + "\n")
    # No `length`: the load tool makes each event's values unique, which changes its size.
    f.write(json.dumps({"type": "event"}) + "\n" + payload + "\n")
names = ["LCP", "INP", "CLS", "FCP", "TTFB"]
values = {"LCP": 2100.0, "INP": 180.0, "CLS": 0.05, "FCP": 1500.0, "TTFB": 600.0}
metrics = [{"name": names[i % 5], "value": values[names[i % 5]] * (0.5 + (i % 10) / 10),
            "page": f"/effects/{i % 4}", "device": "mobile" if i % 2 else "desktop"} for i in range(100)]
with open(f"{work}/metrics.json", "w") as f:
    json.dump({"metrics": metrics}, f)
PY
URL="http://127.0.0.1:$GW_PORT"
ENVELOPE_URL="$URL/sentry/api/$PROJECT/envelope/?sentry_key=$KEY&sentry_version=7"
echo "server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; $ROUNDS rounds of ${DURATION}s over $CONNS connections"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for rate in ${ERROR_RATES:-500 1000 2000}; do
    load "$URL/v1/beta/user-access" "$TOKEN" - "$rate" "$DURATION" "$CONNS" | sed 's/^/  user-access  /'
    load "$ENVELOPE_URL" - "$WORK/envelope.txt" "$rate" "$DURATION" "$CONNS" vary | sed 's/^/  errors       /'
  done
  for rate in ${METRIC_RATES:-50 100 200}; do
    load "$URL/v1/analytics/performance/metrics" "$TOKEN" "$WORK/metrics.json" "$rate" "$DURATION" "$CONNS" | sed 's/^/  metrics×100  /'
  done
  echo "  at saturation (asked for ${MAX_RATE:-5000}/s; 'achieved' is what one CPU sustains):"
  load "$URL/v1/beta/user-access" "$TOKEN" - "${MAX_RATE:-5000}" "$DURATION" "$CONNS" | sed 's/^/  user-access  /'
  load "$ENVELOPE_URL" - "$WORK/envelope.txt" "${MAX_RATE:-5000}" "$DURATION" "$CONNS" vary | sed 's/^/  errors       /'
  load "$URL/v1/analytics/performance/metrics" "$TOKEN" "$WORK/metrics.json" "${MAX_RATE:-5000}" "$DURATION" "$CONNS" | sed 's/^/  metrics×100  /'
done
counts=$(curl -s "$URL/v1/monitoring/errors?projectId=$PROJECT" -H "authorization: Bearer $ADMIN" |
  python3 -c 'import json,sys; g=json.load(sys.stdin)["data"]["items"]; print(len(g), "group(s),", sum(x["count"] for x in g), "events")')
echo "stored: $counts"

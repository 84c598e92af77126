"""Errors reported into a running Portico by the official Python Sentry SDK, unchanged.

A project is made through the API, the SDK is pointed at its DSN, and an app raises: the
same error twice (other values, other lines) and a second error, once with each transport
compression the SDK has (gzip, and br when the brotli module is installed). The groups must
come out as Sentry groups them.

    PORTICO_URL=http://127.0.0.1:8080 ADMIN_TOKEN=… python3 contract/sentry_report.py
"""

import json
import os
import sys
import urllib.parse
import urllib.request

import sentry_sdk

URL = os.environ["PORTICO_URL"].rstrip("/")
ADMIN = os.environ["ADMIN_TOKEN"]


def api(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as res:
        return json.load(res)["data"]


def fail(message):
    print(f"sentry-sdk check: {message}", file=sys.stderr)
    sys.exit(1)


def checkout(cart, key):
    return cart[key] / cart["count"]


def report(dsn, algo):
    sentry_sdk.init(
        dsn=dsn,
        release="shop@1.0.0",
        environment="contract",
        default_integrations=False,
        _experiments={"transport_compression_algo": algo},
    )
    sentry_sdk.set_user({"id": f"user-{algo}"})
    for count in (0, 0):
        try:
            checkout({"total": 10, "count": count}, "total")
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
    try:
        checkout({"count": 1}, "missing")
    except KeyError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=10)


def main():
    project = api("POST", "/v1/monitoring/projects", {"name": "python-sdk"})
    # The DSN names PORTICO_PUBLIC_URL; reach the gateway where this run listens.
    dsn = urllib.parse.urlsplit(project["dsn"])
    here = urllib.parse.urlsplit(URL)
    dsn = dsn._replace(scheme=here.scheme, netloc=f"{dsn.username}@{here.netloc}").geturl()
    algos = ["gzip"]
    try:
        import brotli  # noqa: F401

        algos.append("br")
    except ImportError:
        print("the brotli module is not installed: br is not exercised")
    for algo in algos:
        report(dsn, algo)
    groups = api("GET", f"/v1/monitoring/errors?projectId={project['id']}")["items"]
    by_title = {g["title"]: g for g in groups}
    zero = by_title.get("ZeroDivisionError: division by zero")
    if zero is None or len(groups) != 2:
        fail(f"expected two groups, got {json.dumps(groups, indent=1)}")
    if zero["count"] != 2 * len(algos) or zero["usersAffected"] != len(algos):
        fail(f"the division error was not counted once per event: {zero}")
    if "checkout" not in (zero.get("culprit") or ""):
        fail(f"the culprit does not name the function: {zero}")
    key_error = next(g for g in groups if g is not zero)
    if not key_error["title"].startswith("KeyError") or key_error["count"] != len(algos):
        fail(f"the KeyError group is wrong: {key_error}")
    detail = api("GET", f"/v1/monitoring/errors/{zero['id']}")
    event = detail.get("latestEvent") or {}
    if event.get("release") != "shop@1.0.0" or event.get("platform") != "python":
        fail(f"the latest event was not kept as sent: {event}")
    print(
        f"sentry-sdk {sentry_sdk.VERSION} ({', '.join(algos)}): "
        f"{sum(g['count'] for g in groups)} events in {len(groups)} groups, as Sentry groups them"
    )


if __name__ == "__main__":
    main()

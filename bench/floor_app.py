"""The floor of two pages: a Flask app made of only the parts those pages must have, each as the
platform does it, and nothing of the platform's own.

Every request: the platform's Talisman (CSP, frame and referrer headers), one round trip to Redis
that counts the request against its limit and gives its X-RateLimit headers (the platform's
counter and Lua script), a request id, one log line through the platform's queued logging, and a
Prometheus latency observation.

* `GET /home`: the platform's anonymous home page, as its bytes were when the bench fetched them
  (`FLOOR_HOME_PAGE`), with this response's CSP nonce where `FLOOR_NONCE_MARK` stands.
* `PUT /autosave`: a signed session cookie whose CSRF token the request must echo (Flask-WTF), the
  session read from Redis (one GET), then one transaction as the platform's plain role, under
  row-level security: BEGIN, the tenant's `set_config`, `SELECT … FOR UPDATE`, `UPDATE`, COMMIT,
  on psycopg with no ORM (`bench.floor`'s table, one row per person).

What the platform adds on top of this is its own cost; what this costs, no page of that kind can
avoid. Served by gunicorn with the platform's settings, like the bare app.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, request, session
from flask_wtf.csrf import CSRFProtect, generate_csrf
from limits import parse
from prometheus_client import Histogram

from core.adapters.rate_counter import RedisRateCounter, Scope
from core.adapters.redis_link import RedisLink
from core.logs import configure_logging, new_request_id, request_id_var
from web.security import (
    CONTENT_SECURITY_POLICY,
    FRAME_OPTIONS,
    NONCE_IN,
    PERMISSIONS_POLICY,
    REFERRER_POLICY,
    PlatformTalisman,
)

SESSION_KEY = "floor-session:{}"
LIMIT = parse("100000000 per minute")  # counted, never refused (as the bench's platform)

app = Flask(__name__)
app.config.update(SECRET_KEY=os.environ["SECRET_KEY"], WTF_CSRF_TIME_LIMIT=None)
PlatformTalisman(app, force_https=False, content_security_policy=CONTENT_SECURITY_POLICY,
                 content_security_policy_nonce_in=list(NONCE_IN), frame_options=FRAME_OPTIONS,
                 referrer_policy=REFERRER_POLICY, permissions_policy=PERMISSIONS_POLICY)
csrf = CSRFProtect(app)
configure_logging(os.environ.get("LOG_FORMAT", "json"), "INFO", queued=True)
log = logging.getLogger("web.request")
redis = RedisLink(os.environ["REDIS_URL"])
counter = RedisRateCounter(redis)
LATENCY = Histogram("floor_request_seconds", "Request latency", ["endpoint", "status"])
_connections = threading.local()
_home: list[str] = []


@app.before_request
def _count() -> None:
    g.started = time.perf_counter()
    request_id_var.set(new_request_id())
    g.tally = counter.count([Scope("address", f"address:{request.remote_addr}", LIMIT)])


@app.after_request
def _finish(response: Response) -> Response:
    window = g.tally.closest()
    response.headers["X-RateLimit-Limit"] = str(window.limit)
    response.headers["X-RateLimit-Remaining"] = str(window.remaining)
    response.headers["X-RateLimit-Reset"] = str(int(window.reset_at))
    response.headers["X-Request-ID"] = request_id_var.get()
    elapsed = time.perf_counter() - g.started
    log.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
             elapsed * 1000)
    LATENCY.labels(request.endpoint, str(response.status_code)).observe(elapsed)
    return response


@app.get("/ready")
def ready() -> str:
    return "ready"


@app.get("/home")
def home() -> str:
    if not _home:
        _home.append(Path(os.environ["FLOOR_HOME_PAGE"]).read_text())
    nonce: str = app.jinja_env.globals["csp_nonce"]()  # type: ignore[operator]
    return _home[0].replace(os.environ["FLOOR_NONCE_MARK"], nonce)


@app.post("/session/<int:row>")
@csrf.exempt  # type: ignore[untyped-decorator]  # Flask-WTF has no type hints
def start_session(row: int) -> Response:
    """A person's session for the row they save (bench.floor calls it once per wrk thread)."""
    session["sid"] = f"floor-{row}"
    redis.client.set(SESSION_KEY.format(session["sid"]),
                     json.dumps({"row": row, "tenant": request.get_json()["tenant"]}))
    return jsonify({"csrf_token": generate_csrf()})


@app.put("/autosave")
def autosave() -> Response:
    person: dict[str, Any] = json.loads(redis.client.get(SESSION_KEY.format(session["sid"])))
    data = request.get_json()["data"]
    connection = _connection()
    with connection.transaction():
        connection.execute("SELECT set_config('app.tenant_id', %s, true), "
                           "set_config('app.all_tenants', 'off', true)", (person["tenant"],))
        answers, version = connection.execute(
            "SELECT data, version FROM bench_floor_progress WHERE id = %s FOR UPDATE",
            (person["row"],)).fetchone() or ({}, 0)
        connection.execute(
            "UPDATE bench_floor_progress SET data = %s, version = version + 1, "
            "updated_at = now() WHERE id = %s",
            (json.dumps({**answers, "PERSONAL_INFO": data}), person["row"]))
    return jsonify({"version": version + 1, "stage": "PERSONAL_INFO"})


def _connection() -> psycopg.Connection[Any]:
    """One connection per gunicorn thread: no pool's checkout in the floor."""
    connection: psycopg.Connection[Any] | None = getattr(_connections, "connection", None)
    if connection is None:
        connection = _connections.connection = psycopg.connect(os.environ["FLOOR_DATABASE_URL"])
    return connection

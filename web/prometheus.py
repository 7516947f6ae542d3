"""GET /metrics: the Prometheus exposition of the web tier, for `Authorization: Bearer
$METRICS_TOKEN` only (a 404 for anyone else, and for everyone while no token is set).

Under gunicorn with PROMETHEUS_MULTIPROC_DIR set, the counters of every web process are summed
(prometheus_client's multiprocess mode; gunicorn.conf.py clears the folder at start and marks
dead workers). The gauges are read fresh from the database and cache on each scrape."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core.monitoring.instruments import PlatformCollector
from core.telemetry import REQUEST_SECONDS
from scheduler.jobs import JOBS
from web.context import services, settings
from web.health import bearer_matches
from web.security import plain_http_allowed

blueprint = Blueprint("prometheus", __name__)


class _ThisProcess(Collector):
    """This process's own registry (when not in multiprocess mode)."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(PlatformCollector(services().db, services().cache,
                                        [job.id for job in JOBS]))
    return registry


@blueprint.get("/metrics")
@plain_http_allowed  # scraped from inside the network, like the health probes
def metrics() -> Response:
    if not bearer_matches(settings().metrics_token):
        abort(404)
    response = Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.after_app_request
def _observe(response: Response) -> Response:
    started = g.get("started")  # web.context's, set before anything can refuse the request
    if started is not None and request.endpoint != "prometheus.metrics":
        # The endpoint's name, not the path: one series per route, whatever the ids in it.
        REQUEST_SECONDS.labels(request.endpoint or "unmatched", request.method,
                               str(response.status_code)).observe(time.perf_counter() - started)
    return response

"""The Prometheus counters each process increments as it works (only prometheus_client here,
so that any module may count without pulling the rest of core in). Exposed by /metrics on the
web tier (core.monitoring.instruments) and on WORKER_METRICS_PORT by the workers."""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# Multiprocess mode writes each process's values into this folder from the first count on: a
# process that shares the web's environment (a worker, the scheduler) must not fail for want of it.
if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(folder, exist_ok=True)

REQUEST_SECONDS = Histogram(
    "platform_http_request_duration_seconds", "Web requests by endpoint and status",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
RATE_LIMITED = Counter("platform_rate_limit_rejections", "Requests refused with a 429, by budget",
                       ["scope"])
CACHE_LOOKUPS = Counter("platform_cache_lookups",
                        "Cache region lookups: hits, misses, invalidations and waits",
                        ["region", "result"])

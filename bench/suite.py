"""What `make bench` measures, in the order each round runs it (a baseline before its entries).

An HTTP endpoint is one line, e.g.
    HttpEndpoint("health-live", "/api/health/live"),
(each also reports the SQL statements and Redis commands one warm request sends, bench.counts)
requests made as a logged-in person (each wrk thread with its own session) are the entries of
`bench.logged_in`, and any other measurement is a `Throughput` entry with its own baseline entry
listed first (see the pipeline and audit entries below).
"""

from __future__ import annotations

from bench import audit, audit_viewer, floor, logged_in, metrics, pipeline
from bench.http import BASELINE, HttpEndpoint
from bench.measure import Measurement, Throughput

ENTRIES: list[Measurement] = [
    HttpEndpoint(BASELINE, "/", target="bare"),
    HttpEndpoint("health-live", "/api/health/live"),
    HttpEndpoint("home", "/"),
    # The floor of that page: only what it must have (limit, headers, log line), bench.floor.
    floor.HomeFloor("home-floor", "/home", target="floor"),
    HttpEndpoint("login-page", "/login"),
    # As a person: log in (argon2id), the warm therapist dashboard, 50 sessions auto-saving
    # their onboarding.
    logged_in.Login(),
    logged_in.Dashboard(),
    logged_in.Autosave(),
    floor.AutosaveFloor(),
    # One worker process each, on the same Redis broker: a no-op actor, then the real pipeline
    # (commit an event; its handler sends one e-mail; the audit writer records it).
    Throughput("dramatiq-noop", "msg/s", baseline="dramatiq-noop", run=pipeline.noop_rate),
    Throughput("pipeline", "events/s", baseline="dramatiq-noop", run=pipeline.event_rate),
    Throughput("audit-single-row", "rows/s", baseline="audit-single-row",
               run=audit.single_row_rate),
    Throughput("audit-batched", "rows/s", baseline="audit-single-row", run=audit.batched_rate),
    # The same writer (hash chain on) beside COPY of the same rows into the same table.
    Throughput("audit-copy", "rows/s", baseline="audit-copy", run=audit.copy_rate),
    Throughput("audit-chained", "rows/s", baseline="audit-copy", run=audit.batched_rate),
    # The audit viewer: a filtered view's page 1 and page 1,000, p99 (lower is better).
    Throughput("audit-viewer-50k", "ms p99", baseline="audit-viewer-50k",
               run=audit_viewer.small_latency),
    Throughput("audit-viewer", "ms p99", baseline="audit-viewer-50k",
               run=audit_viewer.large_latency),
    # On 1,000 practices, 1,000,000 accounts and 5,000,000 events (its own database, loaded
    # once): the metrics rollup, full and after 1,000 new events, against a count of accounts.
    Throughput("metrics-accounts-count", "ms", baseline="metrics-accounts-count",
               run=metrics.count_accounts),
    Throughput("metrics-rollup-full", "ms", baseline="metrics-accounts-count",
               run=metrics.full_rollup),
    Throughput("metrics-rollup-tick", "ms", baseline="metrics-accounts-count", run=metrics.tick),
    # GET /api/metrics's reads, p99, on that platform against one a hundred times smaller.
    Throughput("metrics-read-10k", "ms p99", baseline="metrics-read-10k",
               run=metrics.read_small),
    Throughput("metrics-read", "ms p99", baseline="metrics-read-10k", run=metrics.read_large),
]

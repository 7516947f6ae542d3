"""What `make bench` measures, in the order each round runs it (a baseline before its entries).

An HTTP endpoint is one line, e.g.
    HttpEndpoint("login", "/login", method="POST", body="email=...", script="login.lua"),
and any other measurement is a `Throughput` entry with its own baseline entry listed first, e.g.
    Throughput("noop-actor", "events/s", baseline="noop-actor", run=pipeline.noop_rate),
    Throughput("pipeline", "events/s", baseline="noop-actor", run=pipeline.event_rate),
"""

from __future__ import annotations

from bench.http import BASELINE, HttpEndpoint
from bench.measure import Measurement

ENTRIES: list[Measurement] = [
    HttpEndpoint(BASELINE, "/", target="bare"),
    HttpEndpoint("health-live", "/api/health/live"),
    HttpEndpoint("home", "/"),
]

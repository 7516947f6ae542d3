"""A real worker process exposes Dramatiq's Prometheus metrics on WORKER_METRICS_PORT."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assembly import worker_side_of
from core.adapters.cache import build_cache
from tests.conftest import free_port, make_settings
from tests.support.apps import make_app
from tests.support.processes import dramatiq_worker, platform_env, wait_until

pytestmark = pytest.mark.integration


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def _families(url: str) -> set[str]:
    text = _scrape(url) or ""
    return {family.name for family in text_string_to_metric_families(text)}


def test_the_worker_exposes_its_metrics(db, database_url, redis_url, instance_dir,
                                        tmp_path) -> None:
    port = free_port()
    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                       INSTANCE_PATH=str(tmp_path), WORKER_METRICS_PORT=str(port))
    worker = dramatiq_worker(env, tmp_path / "worker.log")
    try:
        wait_until(lambda: build_cache(redis_url).alive("workers"), 60, "worker heartbeat")
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: _scrape(url) is not None, 30, "the worker's metrics port")
        # A message for the worker to count (what the scheduler sends every 2 s).
        app = make_app(make_settings(database_url, instance_dir, redis_url=redis_url,
                                     broker_url=redis_url), db)
        worker_side_of(app).enqueue("relay_outbox")
        wanted = {"dramatiq_messages", "dramatiq_message_duration_milliseconds"}
        wait_until(lambda: wanted <= _families(url), 30, "the message counted")
    finally:
        worker.stop()
    assert "Traceback" not in worker.output(), worker.output()

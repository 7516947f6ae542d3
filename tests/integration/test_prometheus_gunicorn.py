"""/metrics under gunicorn with several worker processes: prometheus_client's multiprocess mode
sums every process's counters in one scrape."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_TOKEN, free_port
from tests.support.processes import BIN, Process, platform_env, wait_until

pytestmark = pytest.mark.integration

REQUESTS = 12


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_one_scrape_sums_every_web_process(db, database_url, tmp_path) -> None:
    port = free_port()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_99999.db").write_bytes(b"")  # a previous run's: cleared at start
    env = platform_env(DATABASE_URL=database_url, INSTANCE_PATH=str(tmp_path / "instance"),
                       PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", WEB_THREADS="2",
                       PROMETHEUS_MULTIPROC_DIR=str(folder), METRICS_TOKEN=METRICS_TOKEN)
    web = Process([str(BIN / "gunicorn"), "wsgi:app"], env, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _safe_status(base + "/api/health/live") == 200, 60, "gunicorn")
        for _ in range(REQUESTS):
            assert _get(base + "/terms")[0] == 200
        assert _get(base + "/metrics")[0] == 404
        status, text = _get(base + "/metrics", METRICS_TOKEN)
        assert status == 200
        families = {f.name: f.samples for f in text_string_to_metric_families(text)}
        counts = [s for s in families["platform_http_request_duration_seconds"]
                  if s.name.endswith("_count") and s.labels["endpoint"] == "pages.terms"
                  and s.labels["status"] == "200"]
        assert sum(s.value for s in counts) == REQUESTS
        assert "platform_outbox_backlog" in families
        assert not (folder / "counter_99999.db").exists()
    finally:
        web.stop()
    assert "Traceback" not in web.output(), web.output()


def _safe_status(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None

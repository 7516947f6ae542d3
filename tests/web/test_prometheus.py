"""/metrics: Prometheus text for the bearer of METRICS_TOKEN, a 404 for anyone else."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core.monitoring.instruments import note_job_success
from tests.conftest import DETAILS, make_settings
from tests.support.apps import make_app
from tests.support.factories import practice
from tests.support.flows import login

FAMILIES = {
    "platform_http_request_duration_seconds", "platform_rate_limit_rejections",
    "platform_cache_lookups", "platform_outbox_backlog", "platform_outbox_oldest_age_seconds",
    "platform_handler_runs", "platform_dead_letters",
    "platform_scheduler_job_last_success_timestamp_seconds",
    "platform_metrics_rollup_age_seconds", "platform_active_tenants", "platform_active_users",
    "platform_onboarding_completion_ratio", "platform_users",
}


def _families(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_without_the_token_there_is_nothing_here(client) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": DETAILS["Authorization"].replace(
        "Bearer", "Basic")}).status_code == 404


def test_no_token_configured_means_no_metrics_for_anyone(db, database_url, instance_dir) -> None:
    app = make_app(make_settings(database_url, instance_dir, metrics_token=""), db)
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_the_exposition_parses_and_has_every_family(db, database_url, instance_dir) -> None:
    app = make_app(make_settings(database_url, instance_dir,
                                 rate_limit_anonymous="3 per minute"), db)
    client = app.test_client()
    harbour = practice(db, "Harbour", slug_hint="harbour")
    therapist = app.test_client()
    assert login(therapist, harbour.therapist_email).status_code == 302
    assert therapist.get("/therapist").status_code == 200  # reads through the cache regions
    statuses = [client.get("/terms").status_code for _ in range(5)]
    assert 429 in statuses
    note_job_success(app.extensions["services"].cache, "metrics-rollup")
    response = client.get("/metrics", headers=DETAILS)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = _families(response.get_data(as_text=True))
    assert set(families) >= FAMILIES, FAMILIES - set(families)
    rejections = [s for s in families["platform_rate_limit_rejections"]
                  if s.name.endswith("_total")]
    assert rejections and sum(s.value for s in rejections) >= 1
    assert {s.labels["result"] for s in families["platform_cache_lookups"]} & {"hits", "misses"}
    observed = {(s.labels.get("endpoint"), s.labels.get("status"))
                for s in families["platform_http_request_duration_seconds"]}
    assert ("pages.terms", "200") in observed and ("pages.terms", "429") in observed
    assert [s.labels["job"] for s in
            families["platform_scheduler_job_last_success_timestamp_seconds"]] == [
        "metrics-rollup"]
    # /metrics itself is never rate limited (it was asked after the budget ran out).
    assert client.get("/metrics", headers=DETAILS).status_code == 200

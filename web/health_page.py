"""/admin/health: every part as it answers now (with details: this is an admin), the incidents
still open, and each part's last 24 hours as a strip with its uptime."""

from __future__ import annotations

from flask import Blueprint, render_template

from core.monitoring import history
from core.monitoring.probes import CRITICAL, NAMES
from web.context import uow
from web.health import run_checks
from web.metrics import admins_only

blueprint = Blueprint("health_page", __name__)

COLOURS = {"pass": "#2e6b30", "warn": "#8a5a00", "fail": "#b42318", None: "#d5dbe3"}
WORDS = {"pass": "up", "warn": "needs attention", "fail": "failing", None: "no sample"}
LABELS = {"audit_sink": "Audit sink"}


@blueprint.get("/admin/health")
@admins_only
def admin_health() -> str:
    status, results = run_checks()
    session = uow().session
    return render_template("metrics/health.html", status=status, results=results,
                           strips=history.strips(session, NAMES),
                           incidents=history.open_incidents(session), critical=CRITICAL,
                           colours=COLOURS, words=WORDS,
                           label=lambda part: LABELS.get(part, part.replace("_", " ").capitalize()))

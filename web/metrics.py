"""GET /api/metrics (admins only: anyone else a 404 and an ACCESS_DENIED entry) and the admin's
metrics page, /admin/metrics: the seed's four figures and their series, read from metric_points
alone through the caller's session; "Refresh now" enqueues a rollup."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from core.errors import NotFound
from core.events.types import EventType
from core.identity.models import Role
from core.metrics import read
from core.metrics.names import ONBOARDING_ROLES, Metric
from core.onboarding.stages import FLOWS
from core.tenancy.models import Tenant
from web import charts
from web.audit import record_security
from web.authn import current
from web.context import background, uow
from web.display import STAGE_LABELS
from web.forms import ActionForm

blueprint = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# What the admin's page charts, besides the report's own series.
PAGE_SERIES = (*read.SERIES, Metric.ONBOARDING_STARTED, *read.PLATFORM_SERIES)
ROLE_LABELS = {"admin": "Admins", "therapist": "Therapists", "client": "Clients"}


def admins_only(view_fn: F) -> F:
    """Anyone but a platform admin, logged in or not, finds nothing here (and is audited)."""
    @functools.wraps(view_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        view = current()
        if view is None or view.role != Role.ADMIN:
            record_security(EventType.ACCESS_DENIED, reason="role",
                            role=view.role if view else None)
            abort(404)
        return view_fn(*args, **kwargs)

    return cast(F, wrapper)


def _report(metrics: tuple[Metric, ...] | None = None) -> read.Report:
    query = read.Query.parse(request.args.get("days"), request.args.get("tenant"))
    session = uow().session
    if query.tenant_id is not None and session.get(Tenant, query.tenant_id) is None:
        raise NotFound("There is no practice with that id.")
    return read.report(session, days=query.days, tenant_id=query.tenant_id, metrics=metrics)


def figures_as_json(figures: read.Figures) -> dict[str, Any]:
    return {
        "active_tenants": figures.active_practices,
        "active_users": figures.active_users,
        "onboarding_completion_rate": figures.onboarding_completion_rate,
        "users_by_role": figures.people_by_role,
        "active_users_by_window": figures.active_people,
        "onboarding_completion_rate_by_role": figures.completion_rate_by_role,
    }


@blueprint.get("/api/metrics")
@admins_only
def api_metrics() -> Response:
    report = _report()
    figures = report.figures
    response = jsonify({
        "scope": figures.scope,
        "as_of": figures.as_of.isoformat() if figures.as_of else None,
        "age_seconds": round(figures.age_seconds, 1) if figures.age_seconds is not None
        else None,
        "days": report.days,
        "figures": figures_as_json(figures),
        "series": [{"metric": s.metric, "dimension": s.dimension,
                    "points": [{"day": p.bucket.date().isoformat(), "value": p.value}
                               for p in s.points]} for s in report.series],
    })
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _by_metric(report: read.Report) -> dict[str, dict[str, read.Series]]:
    found: dict[str, dict[str, read.Series]] = {}
    for series in report.series:
        found.setdefault(series.metric, {})[series.dimension] = series
    return found


def _total(series: dict[str, read.Series]) -> list[float]:
    columns = [s.points for s in series.values()]
    return [sum(points[i].value for points in columns) for i in range(len(columns[0]))] \
        if columns else []


def _page_charts(report: read.Report) -> dict[str, Any]:
    found = _by_metric(report)
    days = [p.bucket for p in next(iter(report.series)).points] if report.series else []
    signups = found.get(Metric.SIGNUPS.value, {})
    signup_lines = [(ROLE_LABELS.get(role, role), days,
                     [p.value for p in signups[role].points] if role in signups
                     else [0.0] * len(days)) for role in ONBOARDING_ROLES]
    active_lines = [(label, days, _total(found.get(metric.value, {})) or [0.0] * len(days))
                    for label, metric in (("Signed in that day", Metric.ACTIVE_1D),
                                          ("Within 7 days", Metric.ACTIVE_7D),
                                          ("Within 30 days", Metric.ACTIVE_30D))]
    funnels = {}
    for role in ONBOARDING_ROLES:
        def period(metric: Metric, dimension: str) -> float:
            series = found.get(metric.value, {}).get(dimension)
            return sum(p.value for p in series.points) if series else 0.0

        steps = [("Started", period(Metric.ONBOARDING_STARTED, role))]
        steps += [(STAGE_LABELS[stage], period(Metric.ONBOARDING_STEPS, f"{role}:{stage}"))
                  for stage in FLOWS[role][1:-1]]
        steps.append(("Completed", period(Metric.ONBOARDING_COMPLETED, role)))
        funnels[ROLE_LABELS[role]] = charts.bar_chart(steps)
    people = charts.bar_chart([(ROLE_LABELS.get(role, role), float(count))
                               for role, count in report.figures.people_by_role.items()])
    return {"signups": charts.time_chart(signup_lines), "active": charts.time_chart(active_lines),
            "funnels": funnels, "people": people}


@blueprint.get("/admin/metrics")
@admins_only
def admin_metrics() -> str:
    report = _report(PAGE_SERIES)
    return render_template("metrics/admin.html", report=report, figures=report.figures,
                           charts=_page_charts(report), periods=read.PERIODS,
                           action_form=ActionForm(), role_labels=ROLE_LABELS)


@blueprint.post("/admin/metrics/refresh")
@admins_only
def refresh() -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        try:
            background().enqueue("rollup_metrics")
        except Exception as error:  # any broker's way of being away: the next scheduled one comes
            log.warning("could not enqueue a rollup: %s", type(error).__name__)
            flash("The workers cannot be reached just now; the figures refresh with the next "
                  "scheduled rollup.", "warning")
        else:
            flash("A rollup is on its way: the figures catch up within a minute.", "success")
    days = request.form.get("days")
    if days in {str(p) for p in read.PERIODS}:
        return redirect(url_for("metrics.admin_metrics", days=days))
    return redirect(url_for("metrics.admin_metrics"))

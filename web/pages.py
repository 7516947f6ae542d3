"""Public pages."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, send_from_directory

from web.page_cache import render_anonymous

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home() -> str:
    return render_anonymous("home.html")


@blueprint.get("/terms")
def terms() -> str:
    from core.onboarding.schemas import TERMS_VERSION

    return render_anonymous("legal/terms.html", version=TERMS_VERSION)


@blueprint.get("/privacy")
def privacy() -> str:
    from core.onboarding.schemas import TERMS_VERSION

    return render_anonymous("legal/privacy.html", version=TERMS_VERSION)


@blueprint.get("/favicon.ico")
def favicon() -> Response:
    return send_from_directory(current_app.static_folder or "static", "favicon.svg",
                               mimetype="image/svg+xml", max_age=86400)

"""Passkeys over JSON, for web/static/js/passkeys.js (navigator.credentials): options, then the
browser's answer. A ceremony's challenge waits in the cache for five minutes, under the session
(or, for a passwordless log-in, a random id in the cookie), and is used up by its answer."""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, jsonify, session, url_for

from core.identity import passkeys
from core.identity.mfa_policy import Gate
from core.identity.sessions import SessionView
from web.authn import begin_session, current, login_required, me
from web.context import services, settings, uow
from web.errors import MalformedRequest
from web.inputs import json_object
from web.redirects import safe_next_path
from web.security import auth_rate_limited

blueprint = Blueprint("passkeys", __name__)

CHALLENGE_TTL_SECONDS = 300
PURPOSES = ("second_factor", "step_up", "login")


def _key(purpose: str, view: SessionView | None) -> str:
    if view is not None:
        return f"passkey:{purpose}:{view.id_hash}"
    flow = session.get("passkey_flow")
    if not isinstance(flow, str):
        flow = session["passkey_flow"] = secrets.token_urlsafe(16)
    return f"passkey:{purpose}:anonymous:{flow}"


def _keep(purpose: str, view: SessionView | None, challenge: bytes) -> None:
    services().cache.set(_key(purpose, view), challenge, CHALLENGE_TTL_SECONDS)


def _take(purpose: str, view: SessionView | None) -> bytes:
    key = _key(purpose, view)
    challenge = services().cache.get(key)
    if not challenge:
        raise MalformedRequest("Start again: ask for the passkey options first (they last five "
                               "minutes and work once).", code="no_challenge")
    services().cache.delete(key)
    return challenge


def _purpose(body: dict[str, object]) -> str:
    purpose = body.get("purpose")
    if purpose not in PURPOSES:
        raise MalformedRequest("purpose must be one of second_factor, step_up, login.")
    return str(purpose)


def _view_for(purpose: str) -> SessionView | None:
    """Who is proving what: a gated session (second factor), a logged-in one (step-up), or
    nobody yet (a passwordless log-in)."""
    view = current()
    if purpose == "login":
        return None
    if view is None or (purpose == "second_factor") != (view.gate == Gate.CHALLENGE):
        raise MalformedRequest("There is nothing to prove with a passkey here.",
                               code="wrong_purpose")
    return view


@blueprint.post("/api/passkeys/registration/options")
@login_required
def registration_options() -> Response:
    view = me()
    options, challenge = passkeys.registration_options(uow().session, settings(), view)
    _keep("register", view, challenge)
    return jsonify({"options": options})


@blueprint.post("/api/passkeys/registration")
@login_required
def register() -> Response:
    view = me()
    body = json_object('{"credential": {…}, "name": "Laptop", "passwordless": false}')
    factor = passkeys.register(uow(), settings(), view, credential=body.get("credential"),
                               challenge=_take("register", view), name=body.get("name"),
                               passwordless=body.get("passwordless") is True)
    return jsonify({"id": str(factor.id), "redirect": url_for("mfa.overview")})


@blueprint.post("/api/passkeys/authentication/options")
@auth_rate_limited
def authentication_options() -> Response:
    purpose = _purpose(json_object('{"purpose": "second_factor"}'))
    view = _view_for(purpose)
    options, challenge = passkeys.authentication_options(
        uow().session, settings(), view.identity_uuid if view is not None else None)
    _keep(purpose, view, challenge)
    return jsonify({"options": options})


@blueprint.post("/api/passkeys/authentication")
@auth_rate_limited
def authenticate() -> Response:
    body = json_object('{"purpose": "second_factor", "credential": {…}, "next": "/therapist"}')
    purpose = _purpose(body)
    view = _view_for(purpose)
    challenge = _take(purpose, view)
    credential = body.get("credential")
    next_path = safe_next_path(body.get("next"))
    if view is not None and purpose == "second_factor":
        begin_session(passkeys.complete_login(uow(), settings(), view, credential, challenge))
    elif view is not None:
        passkeys.step_up(uow(), settings(), view, credential, challenge)
    else:
        result = passkeys.passwordless_login(uow(), settings(), credential, challenge)
        begin_session(result.raw_session_id)
    return jsonify({"redirect": next_path or url_for("dashboards.dashboard")})

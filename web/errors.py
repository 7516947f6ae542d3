"""Errors: a friendly page for browsers, `{"error": {"code", "message"}}` under /api/.

Never a stack trace to the user; a 500 shows the request id so support can find the log line.
A database that cannot be reached is a 503 with `Retry-After`, logged as one warning line.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, Response, g, jsonify, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from core.db import DatabaseUnavailable
from core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Locked,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from core.events.types import EventType
from core.identity.stepup import StepUpRequired
from core.tenancy.guard import OutsideTenant
from web.audit import record_security
from web.redirects import safe_next_path

log = logging.getLogger(__name__)

# Long enough for a restarting database or a failover; short enough that nobody gives up.
RETRY_AFTER_SECONDS = 10

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    423: "locked",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

TITLES = {
    400: "That request could not be understood",
    401: "Please log in",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "That action is not allowed here",
    409: "That changed in the meantime",
    413: "That upload is too large",
    422: "Some of that could not be accepted",
    423: "Locked for now",
    429: "Too many requests",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}

MESSAGES = {
    400: "The request was malformed.",
    401: "You need to log in to see this.",
    403: "Your account does not have access to this.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    409: "Someone changed this in the meantime. Reload the page and try again.",
    413: "The request body is larger than we accept.",
    422: "Some of what you sent is not valid.",
    423: "This is locked for a while. Please try again later.",
    429: "You have sent too many requests. Please wait a moment and try again.",
    500: "An unexpected error occurred. It has been logged.",
    503: "The service is temporarily unavailable. Please try again shortly.",
}


class MalformedRequest(Exception):
    """The request itself is malformed (not the person's answers): a 400 saying what was wrong."""

    def __init__(self, message: str, *, code: str = "bad_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes[
        "text/html"
    ]


def error_response(status: int, message: str | None = None, *, code: str | None = None,
                   headers: dict[str, str] | None = None, **extra: object) -> Response:
    code = code or CODES.get(status, "error")
    message = message or MESSAGES.get(status, "The request could not be completed.")
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message, **extra}})
    else:
        g.error_page = True  # what the page would have shown (banners …) is not fetched now
        response = Response(render_template(
            "error.html", status=status, title=TITLES.get(status, "Request failed"),
            message=message, request_id=g.get("request_id"),
        ), mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers = dict(error.get_headers()) if status in (405, 429) else {}
    headers.pop("Content-Type", None)
    # Werkzeug's default descriptions are written for developers; ours for people.
    return error_response(status, headers=headers)


def _csrf_error(error: CSRFError) -> Response:
    return error_response(
        400,
        "This form has expired or was not sent from this site. Reload the page and try again; "
        "nothing you typed in other saved forms was lost.",
        code="csrf_failed",
    )


# The one map from what a rule said to the status it means (first match wins: subclasses first).
DOMAIN_STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (ValidationFailed, 422),
    (Unauthenticated, 401),
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (Locked, 423),
    (RateLimited, 429),
)


def status_for(error: DomainError) -> int:
    return next((status for kind, status in DOMAIN_STATUSES if isinstance(error, kind)), 400)


def _domain_error(error: DomainError) -> Response:
    """A rule said no and no view showed it on a form: the status that rule means, its own
    message (and, for API clients, its details: field errors, the server's copy …)."""
    if isinstance(error, OutsideTenant):
        record_security(EventType.ACCESS_DENIED, reason="tenant", subject=error.subject)
    if isinstance(error, StepUpRequired):
        return _step_up(error)
    status = status_for(error)
    headers = ({"Retry-After": str(error.retry_after_seconds)}
               if isinstance(error, RateLimited) else None)
    message = str(error)
    if isinstance(error, ValidationFailed) and not wants_json():
        message = " ".join(error.errors.values())  # a page reads better without field names
    return error_response(status, message, headers=headers, **error.details())


def _step_up(error: StepUpRequired) -> Response:
    """A sensitive action without a fresh second factor: refused (and audited), then the
    step-up page, which returns to where the person was."""
    record_security(EventType.ACCESS_DENIED, reason="step_up")
    if wants_json():
        return error_response(403, str(error), code="step_up_required")
    return Response(status=302,
                    headers={"Location": url_for("mfa.step_up", next=step_up_return_path())})


def step_up_return_path() -> str | None:
    """Where the step-up page sends the person back to: this page for a GET; for a form's POST,
    the page the form was on (a POST cannot be replayed by a redirect)."""
    if request.method == "GET":
        return safe_next_path(request.full_path.rstrip("?"))
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc and referrer.netloc != request.host:
        return None
    return safe_next_path(referrer.path + (f"?{referrer.query}" if referrer.query else ""))


def _collision(error: sa.exc.IntegrityError) -> Response:
    """Two requests wrote the same unique thing at the same moment; the later one lost."""
    log.warning("constraint refused a write on %s %s: %s", request.method, request.path,
                _one_line(error))
    return error_response(409, "That was changed by another request at the same moment. "
                               "Please try again.")


def _malformed(error: MalformedRequest) -> Response:
    return error_response(400, error.message, code=error.code)


def _unstorable(error: DataError) -> Response:
    """A value the database refused (a check a view missed): the sender's fault, not a 500."""
    log.warning("database refused a value on %s %s: %s", request.method, request.path,
                str(error.orig).splitlines()[0] if error.orig else type(error).__name__)
    return error_response(400, "Something in the request cannot be stored. Check what you sent.")


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500)


def _database_error(error: sa.exc.DBAPIError) -> Response:
    """OperationalError covers what the database's state causes (no connection, no answer in
    time, a cancelled statement, too many clients); any other driver error on a connection
    that was lost is the same outage. The rest are bugs."""
    if isinstance(error, sa.exc.OperationalError) or error.connection_invalidated:
        return _database_unavailable(error)
    return _unexpected(error)


def _database_unavailable(error: Exception) -> Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                _one_line(error))
    return error_response(503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _one_line(error: Exception) -> str:
    """The driver's own message, never SQLAlchemy's, which carries statements and parameters."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:300]


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(MalformedRequest, _malformed)
    app.register_error_handler(DataError, _unstorable)
    app.register_error_handler(sa.exc.IntegrityError, _collision)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sa.exc.DBAPIError, _database_error)
    # The pool had no connection to give within its timeout.
    app.register_error_handler(sa.exc.TimeoutError, _database_unavailable)
    app.register_error_handler(DatabaseUnavailable, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)

"""GET /api/openapi.json: the OpenAPI 3.1 document of every /api/ endpoint, kept by hand.

Each operation is one `Operation(...)` line in OPERATIONS; the document is built from that table
once, at import. tests/web/test_openapi.py fails when a /api/ route has no line here, and
`make proof` drives the live server with schemathesis and checks every answer against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify

from core.onboarding.stages import Stage

blueprint = Blueprint("openapi", __name__)

Schema = dict[str, Any]

SESSION: dict[str, list[str]] = {"session": []}
CSRF: dict[str, list[str]] = {"csrf": []}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


SCHEMAS: dict[str, Schema] = {
    "Error": _object(["error"], error={
        "type": "object", "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "stable, e.g. csrf_failed, invalid, "
                     "conflict, unavailable"},
            "message": {"type": "string", "description": "for people"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "what is wrong with each field (code invalid)"},
            "current": _ref("Progress"),
            "stage": {"type": "string", "description": "the stage whose answers are not valid "
                      "yet (onboarding completion)"},
        },
    }),
    "Health": _object(["status", "checks"], status={
        "type": "string", "enum": ["healthy", "degraded", "unhealthy"]}, checks={
        "type": "object", "additionalProperties": _object(
            ["status", "latency_ms"],
            status={"type": "string", "enum": ["pass", "warn", "fail"]},
            latency_ms={"type": "number", "minimum": 0},
            detail={"type": "string", "description": "hosts, counts, errors: only for a "
                    "platform admin or with Authorization: Bearer $METRICS_TOKEN"})}),
    "Alive": _object(["status"], status={"const": "alive"}),
    "Metrics": _object(
        ["scope", "as_of", "age_seconds", "days", "figures", "series"],
        scope={"type": "string", "description": "platform, or the practice's id"},
        as_of={"type": ["string", "null"], "format": "date-time",
               "description": "how far the last rollup got; null before the first"},
        age_seconds={"type": ["number", "null"], "minimum": 0},
        days={"type": "integer", "enum": [7, 30, 90]},
        figures=_object(
            ["active_tenants", "active_users", "onboarding_completion_rate", "users_by_role"],
            active_tenants={"type": "integer", "minimum": 0},
            active_users={"type": "integer", "minimum": 0,
                          "description": "signed in within 30 days"},
            onboarding_completion_rate={"type": ["number", "null"], "minimum": 0,
                                        "maximum": 1},
            users_by_role={"type": "object", "additionalProperties": {"type": "integer"}},
            active_users_by_window={"type": "object"},
            onboarding_completion_rate_by_role={"type": "object"}),
        series={"type": "array", "items": _object(
            ["metric", "dimension", "points"], metric={"type": "string"},
            dimension={"type": "string"}, points={"type": "array", "items": _object(
                ["day", "value"], day={"type": "string", "format": "date"},
                value={"type": "number"})})}),
    "CsrfToken": _object(["csrf_token"], csrf_token={"type": "string", "minLength": 1}),
    "Progress": _object(["stage", "data", "version", "completed"],
                        stage={"type": "string", "enum": [str(s) for s in Stage]},
                        data={"type": "object", "description": "answers, per stage"},
                        version={"type": "integer", "minimum": 0},
                        completed={"type": "boolean"}),
    "ProgressDraft": _object(
        ["stage", "data", "version"],
        stage={"type": "string", "enum": [*(str(s) for s in Stage), *(s.slug for s in Stage)],
               "description": "a stage, as in Progress or as its slug (personal-info)"},
        data={"type": "object", "description": "answers of that stage"},
        version={"type": "integer", "description": "the version these answers were based "
                 "on; another one is a 409"}),
    "Completion": _object(["version", "answers"], version={
        "type": "integer", "description": "the version the answers were based on; another one "
        "is a 409"}, answers={
        "type": "object", "description": "each stage's answers, keyed by its slug "
        "(personal-info, professional-info, terms)",
        "additionalProperties": {"type": "object"}}),
    "Saved": _object(["version", "stage", "saved_at"], version={"type": "integer"},
                     stage={"type": "string", "enum": [str(s) for s in Stage]},
                     saved_at={"type": "string", "format": "date-time"}),
    "Notification": _object(
        ["id", "kind", "title", "body", "link", "created_at", "read"],
        id={"type": "string", "format": "uuid"}, kind={"type": "string"},
        title={"type": "string"}, body={"type": "string"},
        link={"type": ["string", "null"]},
        created_at={"type": "string", "format": "date-time"}, read={"type": "boolean"}),
    "Notifications": _object(["notifications"], notifications={
        "type": "array", "items": _ref("Notification")}),
    "MarkRead": {**_object(["ids"], ids={"type": "array", "maxItems": 100, "items": {
        "type": "string", "format": "uuid"}}), "additionalProperties": True},
    "Ok": _object(["ok"], ok={"const": True}),
    "Document": {"type": "object", "required": ["openapi", "paths"]},
    "RateLimitStatus": _object(["limited", "scopes"], limited={"type": "boolean"}, scopes={
        "type": "array", "items": {"type": "object", "required": ["scope", "limit", "remaining",
                                                                   "reset"],
                                   "properties": {
                                       "scope": {"type": "string"},
                                       "limit": {"type": "integer", "minimum": 0},
                                       "remaining": {"type": "integer", "minimum": 0},
                                       "reset": {"type": "integer", "description": "epoch s"},
                                       "window_seconds": {"type": "integer"}}}}),
    "PasskeyOptions": _object(["options"], options={
        "type": "object", "description": "for navigator.credentials.create or .get, as JSON "
        "(binary values base64url-encoded)"}),
    "PasskeyRegistration": _object(
        ["credential", "name"],
        credential={"type": "object", "description": "the browser's PublicKeyCredential, "
                    "binary values base64url-encoded"},
        name={"type": "string", "minLength": 1, "maxLength": 64},
        passwordless={"type": "boolean", "description": "log in with it alone"}),
    "PasskeyRegistered": _object(["id", "redirect"], id={"type": "string", "format": "uuid"},
                                 redirect={"type": "string"}),
    "PasskeyPurpose": _object(["purpose"], purpose={
        "type": "string", "enum": ["second_factor", "step_up", "login"],
        "description": "second_factor: a session that owes it; step_up: a logged-in one; "
        "login: a passwordless log-in"}),
    "PasskeyAssertion": _object(
        ["purpose", "credential"],
        purpose={"type": "string", "enum": ["second_factor", "step_up", "login"]},
        credential={"type": "object", "description": "the browser's PublicKeyCredential, "
                    "binary values base64url-encoded"},
        next={"type": "string", "description": "a same-site path to go to after"}),
    "Redirect": _object(["redirect"], redirect={"type": "string"}),
}

# What every answer under /api/ may be besides its own: a NUL in the address is a 400, the
# rate limiter's 429, a database that cannot be reached is a 503 (see web.errors).
ERRORS = {
    400: "malformed request (a NUL in the address, a body that is not JSON, a missing or "
         "forged CSRF token: code csrf_failed)",
    401: "not logged in, or (passkeys) the passkey was refused",
    403: "forbidden: a session that still owes its second factor (code "
         "second_factor_required) or a fresh one (code step_up_required)",
    404: "nothing for this account",
    409: "changed in the meantime: `current` holds the newer version",
    413: "body larger than 1 MiB",
    422: "not valid: `fields` says why",
    429: "rate limited; Retry-After says when to come back",
    503: "database unavailable; Retry-After says when to come back",
}
RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    ok: Schema  # the 200 answer's schema
    errors: tuple[int, ...]
    security: tuple[dict[str, list[str]], ...] = ()  # alternatives; () means none needed
    parameters: tuple[Schema, ...] = ()
    body: Schema | None = None
    ok_type: str = "application/json"
    links: dict[str, Schema] = field(default_factory=dict)
    extra: dict[int, Schema] = field(default_factory=dict)  # statuses with their own body

    def as_openapi(self) -> Schema:
        responses: dict[str, Schema] = {"200": _response("OK", self.ok_type, self.ok,
                                                         self.links)}
        for status, schema in self.extra.items():
            responses[str(status)] = _response(ERRORS.get(status, "see the body"),
                                               "application/json", schema)
        for status in self.errors:
            responses.setdefault(str(status), _response(ERRORS[status], "application/json",
                                                        _ref("Error")))
        for status in (429, 503):
            if str(status) in responses:
                responses[str(status)]["headers"] = {**responses[str(status)]["headers"],
                                                     **RETRY_AFTER}
        operation: Schema = {"operationId": self.operation_id, "summary": self.summary,
                             "security": [{**alternative} for alternative in self.security],
                             "responses": responses}
        if self.parameters:
            operation["parameters"] = list(self.parameters)
        if self.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": self.body}}}
        return operation


def _response(description: str, media_type: str, schema: Schema,
              links: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {"description": description,
                        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                        "content": {media_type: {"schema": schema}}}
    if links:
        response["links"] = links
    return response


AFTER = {"name": "after", "in": "query", "required": False,
         "description": "only what was created after this date and time (with its UTC offset)",
         "schema": {"type": "string", "format": "date-time"}}
LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "description": "sent by EventSource on reconnecting: the last event's id",
                 "schema": {"type": "string", "format": "date-time"}}

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/api/health", "health", "Dependencies, each bounded by a timeout",
              ok=_ref("Health"), errors=(400,), extra={503: _ref("Health")}),
    Operation("get", "/api/health/ready", "readiness",
              "For load balancers: the database answers and the schema is at the code's head",
              ok=_ref("Health"), errors=(400,), extra={503: _ref("Health")}),
    Operation("get", "/api/health/live", "liveness", "The process answers; touches no backend",
              ok=_ref("Alive"), errors=(400,)),
    Operation("get", "/api/metrics", "metrics",
              "Platform admins: the seed's four figures and their daily series, read from the "
              "last rollup (anyone else: 404)", ok=_ref("Metrics"),
              errors=(400, 404, 422, 429, 503), security=(SESSION,),
              parameters=({"name": "days", "in": "query", "required": False,
                           "schema": {"type": "integer", "enum": [7, 30, 90]}},
                          {"name": "tenant", "in": "query", "required": False,
                           "description": "one practice's figures",
                           "schema": {"type": "string", "format": "uuid"}})),
    Operation("get", "/api/openapi.json", "openapi", "This document",
              ok=_ref("Document"), errors=(400, 429, 503)),
    Operation("get", "/api/rate-limit-status", "rateLimitStatus",
              "The caller's rate-limit budgets as they stand; looking spends nothing",
              ok=_ref("RateLimitStatus"), errors=(400, 503)),
    Operation("get", "/api/csrf-token", "csrfToken", "A fresh CSRF token for this session",
              ok=_ref("CsrfToken"), errors=(400, 429, 503)),
    Operation("get", "/api/onboarding/progress", "getOnboardingProgress",
              "Where this account's onboarding stands", ok=_ref("Progress"),
              errors=(400, 401, 404, 429, 503), security=(SESSION,),
              links={"SaveDraft": {"operationId": "saveOnboardingProgress", "requestBody": {
                  "stage": "$response.body#/stage", "version": "$response.body#/version",
                  "data": {}}}}),
    Operation("put", "/api/onboarding/progress", "saveOnboardingProgress",
              "Auto-save: keep the answers typed so far on a stage", ok=_ref("Saved"),
              errors=(400, 401, 404, 409, 413, 422, 429, 503), security=({**SESSION, **CSRF},),
              body=_ref("ProgressDraft"),
              links={"SaveAgain": {"operationId": "saveOnboardingProgress", "requestBody": {
                  "stage": "$response.body#/stage", "version": "$response.body#/version",
                  "data": {}}}}),
    Operation("post", "/api/onboarding/complete", "completeOnboarding",
              "Every stage's answers at once, then completion by the same rules as the pages",
              ok=_ref("Progress"), errors=(400, 401, 404, 409, 413, 422, 429, 503),
              security=({**SESSION, **CSRF},), body=_ref("Completion")),
    Operation("get", "/api/notifications", "listNotifications",
              "The newest notifications of this account (at most 20)",
              ok=_ref("Notifications"), errors=(400, 401, 429, 503), security=(SESSION,),
              parameters=(AFTER,),
              links={"MarkRead": {"operationId": "markNotificationsRead", "requestBody": {
                  "ids": ["$response.body#/notifications/0/id"]}}}),
    Operation("post", "/api/notifications/read", "markNotificationsRead",
              "Mark some of this account's notifications read", ok=_ref("Ok"),
              errors=(400, 401, 413, 422, 429, 503), security=({**SESSION, **CSRF},),
              body=_ref("MarkRead")),
    Operation("get", "/api/notifications/stream", "notificationStream",
              "Server-Sent Events: `notification` events (data: a Notification), keep-alive "
              "comments, `replaced` when a newer tab takes this stream's place; ends after "
              "55 s, EventSource reconnects", ok={"type": "string"}, ok_type="text/event-stream",
              errors=(400, 401, 429, 503), security=(SESSION,),
              parameters=(AFTER, LAST_EVENT_ID)),
    Operation("post", "/api/passkeys/registration/options", "passkeyRegistrationOptions",
              "Options to create a passkey for this person (the challenge lasts 5 minutes)",
              ok=_ref("PasskeyOptions"), errors=(400, 401, 403, 429, 503),
              security=({**SESSION, **CSRF},)),
    Operation("post", "/api/passkeys/registration", "registerPasskey",
              "The new passkey, as the browser created it for the last options",
              ok=_ref("PasskeyRegistered"), errors=(400, 401, 403, 409, 413, 422, 429, 503),
              security=({**SESSION, **CSRF},), body=_ref("PasskeyRegistration")),
    Operation("post", "/api/passkeys/authentication/options", "passkeyAuthenticationOptions",
              "Options to prove a second factor, step up, or log in with a passkey",
              ok=_ref("PasskeyOptions"), errors=(400, 413, 429, 503), security=(CSRF,),
              body=_ref("PasskeyPurpose")),
    Operation("post", "/api/passkeys/authentication", "authenticateWithPasskey",
              "The browser's answer to the last options; where to go next",
              ok=_ref("Redirect"), errors=(400, 401, 403, 413, 422, 429, 503),
              security=(CSRF,), body=_ref("PasskeyAssertion")),
)


def build_document() -> Schema:
    paths: dict[str, Schema] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = operation.as_openapi()
    return {
        "openapi": "3.1.0",
        "info": {"title": "Practice Platform API", "version": "1",
                 "description": "The small JSON API the pages use. Errors are "
                 '{"error": {"code", "message", ...}}. Log in through the pages; the session '
                 "cookie authenticates, and state changes also send X-CSRFToken (from "
                 "GET /api/csrf-token)."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-session",
                            "description": "`session` outside production"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
            "headers": {
                "X-Request-ID": {"description": "this request's id, also in the logs",
                                 "schema": {"type": "string"}},
                "Retry-After": {"description": "seconds", "schema": {"type": "string"}},
            },
        },
    }


DOCUMENT = build_document()


@blueprint.get("/api/openapi.json")
def document() -> Response:
    response = jsonify(DOCUMENT)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response

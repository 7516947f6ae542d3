"""cross-tenant: every route of the app's url_map, each id parameter filled with another
practice's ids, as each role (anonymous, a client and the therapist of the first practice, a
platform admin); ids sent in JSON bodies too (notifications to mark read).

No answer may be a 5xx, and none may show the other practice's people (their names and
e-mail addresses, in the body or the Location) to anyone but an admin, whose pages cover every
practice by design. Afterwards nothing of the other practice may have changed (its invitation,
its therapist's session, its notifications). As a control, the same routes with the first
practice's own ids must show its own people somewhere: a matrix that sees nothing proves
nothing.

`token` parameters (e-mailed links) are capabilities, not tenant ids: they get a token that
does not exist. `slug` is a practice's public join link or an onboarding stage: the other
practice's slug, or a stage.
"""

from __future__ import annotations

import http.client
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg

from proof.accounts import PASSWORD, People, Practice
from proof.client import HeaderAudit, Visitor
from proof.platform import PROOF, Platform
from proof.report import Row
from proof.routes import Route, load
from proof.services import ServiceError, wait_for

# Routes whose POST ends or changes the acting session itself: not what this probe is about
# (the form fuzz posts to them).
SESSION_CHANGING = {"/logout", "/switch-role", "/signup", "/join/<slug>", "/account/password",
                    "/account/sessions/revoke-others", "/account/resend-verification",
                    "/therapist/invitations", "/forgot-password", "/login"}
STREAM = "/api/notifications/stream"
STREAM_PEEK_S = 2.0


@dataclass
class Actor:
    role: str
    visitor: Visitor
    token: str  # CSRF token of its session

    @property
    def sees_every_practice(self) -> bool:
        return self.role == "admin"


@dataclass
class Matrix:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    own_data_seen: set[str] = field(default_factory=set)
    routes: set[str] = field(default_factory=set)


def actors(platform: Platform, people: People, audit: HeaderAudit) -> list[Actor]:
    logins = {"client": people.amber.client.email, "therapist": people.amber.therapist.email,
              "admin": people.admin_email}
    found = [Actor("anonymous", Visitor(platform.url, audit), "")]
    for role, email in logins.items():
        visitor = Visitor(platform.url, audit)
        visitor.log_in(email, PASSWORD)
        found.append(Actor(role, visitor, visitor.api_csrf_token()))
    found[0].token = found[0].visitor.page_token()
    return found


def parameter_values(route: Route, practice: Practice) -> Iterator[dict[str, str]]:
    options: dict[str, list[str]] = {}
    for name in route.arguments:
        if name == "account_id":
            options[name] = [str(practice.client.account_id),
                             str(practice.therapist.account_id)]
        elif name == "identity_id":
            options[name] = [str(practice.therapist.identity_id),
                             str(practice.client.identity_id)]
        elif name == "invitation_id":
            options[name] = [str(practice.invitation_id)]
        elif name == "tenant_id":
            options[name] = [str(practice.tenant_id)]
        elif name == "id_hash":
            options[name] = [practice.session_hash]
        elif name == "token":
            options[name] = [secrets.token_urlsafe(32)]
        elif name == "slug":
            options[name] = [practice.slug if route.rule.startswith("/join/")
                             else "personal-info"]
        else:
            return  # e.g. static files' names: nothing of a tenant's
    combinations: list[dict[str, str]] = [{}]
    for name, values in options.items():
        combinations = [{**chosen, name: value} for chosen in combinations for value in values]
    yield from combinations


def _send(actor: Actor, method: str, path: str) -> tuple[int, str]:
    visitor = actor.visitor
    if path == STREAM:
        return _peek_stream(actor)
    if method == "GET":
        reply = visitor.request("GET", path)
    elif path.startswith("/api/"):
        reply = visitor.send_json(method, path, {}, actor.token)
    else:
        reply = visitor.post_form(path, {}, token=actor.token)
    return reply.status, f"{reply.location}\n{reply.text}"


def _peek_stream(actor: Actor) -> tuple[int, str]:
    """The event stream's first seconds (it would run 55 s): what it sends at once."""
    server = urlsplit(actor.visitor.base_url)
    connection = http.client.HTTPConnection(server.hostname or "127.0.0.1", server.port,
                                            timeout=STREAM_PEEK_S)
    headers = {"X-Forwarded-Proto": "https"}
    if actor.visitor.cookie_header:
        headers["Cookie"] = actor.visitor.cookie_header
    try:
        connection.request("GET", STREAM, headers=headers)
        response = connection.getresponse()
        if actor.visitor.audit is not None:
            actor.visitor.audit.observe("GET", STREAM, response.status, response.headers)
        chunks = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < STREAM_PEEK_S:
                chunk = response.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return response.status, b"".join(chunks).decode(errors="replace")
    finally:
        connection.close()


def run(platform: Platform, people: People, audit: HeaderAudit) -> list[Row]:
    routes = load()
    theirs = people.bluebell
    their_notifications = _notifications_of(theirs)
    everyone = actors(platform, people, audit)
    matrix = Matrix()
    for route in routes:
        for method in route.methods:
            if method != "GET" and not route.arguments and route.rule in SESSION_CHANGING:
                continue
            for actor in everyone:
                _check(matrix, actor, route, method, theirs, people.amber)
    for actor in everyone:  # ids in a JSON body
        if actor.role != "anonymous":
            status, body = _send_ids(actor, their_notifications)
            _judge(matrix, actor, "POST /api/notifications/read (their ids)", status, body,
                   theirs)
    writes = _foreign_writes(theirs, their_notifications)
    return [_row(matrix, writes, len(routes), everyone)]


def _check(matrix: Matrix, actor: Actor, route: Route, method: str, theirs: Practice,
           ours: Practice) -> None:
    for values in parameter_values(route, theirs):
        path = route.path(values)
        status, body = _send(actor, method, path)
        matrix.routes.add(route.rule)
        _judge(matrix, actor, f"{method} {path}", status, body, theirs)
    if actor.role in ("client", "therapist") and route.arguments and method == "GET":
        for values in parameter_values(route, ours):
            status, body = _send(actor, method, route.path(values))
            if status == 200 and any(marker in body for marker in ours.markers):
                matrix.own_data_seen.add(f"{actor.role}: GET {route.rule}")


def _judge(matrix: Matrix, actor: Actor, request: str, status: int, body: str,
           theirs: Practice) -> None:
    matrix.requests += 1
    matrix.statuses[status] += 1
    if status >= 500:
        matrix.server_errors.append(f"{actor.role}: {request} -> {status}")
    if not actor.sees_every_practice:
        leaked = [marker for marker in theirs.markers if marker in body]
        if leaked:
            matrix.foreign.append(f"{actor.role}: {request} -> {status} showed {leaked}")


def _send_ids(actor: Actor, ids: list[uuid.UUID]) -> tuple[int, str]:
    reply = actor.visitor.send_json("POST", "/api/notifications/read",
                                    {"ids": [str(i) for i in ids]}, actor.token)
    return reply.status, reply.text


def _notifications_of(practice: Practice) -> list[uuid.UUID]:
    """The other therapist's notifications (a worker writes them when their client joined)."""
    def found() -> list[uuid.UUID]:
        with psycopg.connect(PROOF.owner_url, connect_timeout=3) as connection:
            return [row[0] for row in connection.execute(
                "SELECT id FROM notifications WHERE account_id = %s",
                (practice.therapist.account_id,))]

    try:
        wait_for(found, 60, "the other therapist's notifications", interval=0.5)
    except ServiceError:
        return [uuid.uuid4()]
    return found()


def _foreign_writes(practice: Practice, notifications: list[uuid.UUID]) -> list[str]:
    with psycopg.connect(PROOF.owner_url, connect_timeout=3) as connection:
        changed = []
        invitation = connection.execute("SELECT revoked_at FROM invitations WHERE id = %s",
                                        (practice.invitation_id,)).fetchone()
        if invitation is None or invitation[0] is not None:
            changed.append(f"their invitation {practice.invitation_id} was revoked")
        session = connection.execute("SELECT revoked_at FROM auth_sessions WHERE id_hash = %s",
                                     (practice.session_hash,)).fetchone()
        if session is None or session[0] is not None:
            changed.append("their therapist's session was revoked")
        read = connection.execute(
            "SELECT count(*) FROM notifications WHERE id = ANY(%s) AND read_at IS NOT NULL",
            (notifications,)).fetchone()
        if read and read[0]:
            changed.append(f"{read[0]} of their notifications were marked read")
    return changed


def _row(matrix: Matrix, writes: list[str], routes: int, everyone: list[Actor]) -> Row:
    problems = []
    if matrix.server_errors:
        problems.append(f"{len(matrix.server_errors)} 5xx: {matrix.server_errors[:5]}")
    if matrix.foreign:
        problems.append(f"{len(matrix.foreign)} answer(s) showed the other practice's data: "
                        f"{matrix.foreign[:5]}")
    if writes:
        problems.append(f"the other practice was changed: {writes}")
    if not matrix.own_data_seen:
        problems.append("control failed: no route showed the practice its own data, so the "
                        "matrix cannot see a leak")
    statuses = dict(sorted(matrix.statuses.items()))
    return Row(
        "cross-tenant",
        f"{routes} url_map rules x {len(everyone)} roles ({', '.join(a.role for a in everyone)}),"
        " ids of another practice in paths and JSON bodies",
        f"{matrix.requests} requests, statuses {statuses}, 5xx {len(matrix.server_errors)}, "
        f"foreign data {len(matrix.foreign)}, foreign writes {len(writes)}, own-data control "
        f"{len(matrix.own_data_seen)} route(s)",
        "0 5xx, 0 foreign data, 0 foreign writes, control sees own data", problems,
        {"requests": matrix.requests, "statuses": statuses, "http_5xx": matrix.server_errors,
         "foreign_data": matrix.foreign, "foreign_writes": writes,
         "own_data_seen": sorted(matrix.own_data_seen), "routes": sorted(matrix.routes)})

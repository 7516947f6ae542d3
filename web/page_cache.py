"""Pages that every visitor who is not signed in sees alike, rendered once per process.

Someone not signed in, with no flashed message waiting, sees the home page, the legal pages and
the blank log-in, sign-up and reset forms exactly as everyone else does, but for two things of
their own: the CSP nonce of the response and (on a form) their CSRF token. Such a page is
rendered once with a marker where each of those goes, and every response gets its own values in
their place.
Someone with a message waiting gets a fresh render. Where templates reload when edited
(development), nothing is kept.

A signed-in person's dashboard is kept too, per session (`render_signed_in`): such a page is made
of the cache entries its request read with the session (web.authn.reads_ahead) and of nothing
else, so the same bytes in those entries make the same page. A committed change deletes the
entries it touched, on every process, so the next request reads other bytes and renders afresh;
a page whose content follows the clock says until when it holds. Beside nonce and token, such
a page has one more thing of its own: the moment it is served (the template's `rendered_at()`),
from which its live updates count. A render that needed the database, or that is not a plain
200, is not kept.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import Flask, current_app, g, render_template, request, session
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf

from core import clock
from core.caching import request_reads
from core.uow import statements_run
from web.authn import current, has_session_cookie
from web.context import uow
from web.display import RENDERED_AT_IN_G

# Letters and digits only, so autoescaping leaves them as they are; unguessable, so no page
# says them by chance.
_NONCE_MARK = f"nonce{secrets.token_hex(16)}"
_TOKEN_MARK = f"token{secrets.token_hex(16)}"
_RENDERED_AT_MARK = f"renderedat{secrets.token_hex(16)}"
# Where Flask-WTF keeps the request's signed token (its default WTF_CSRF_FIELD_NAME).
_TOKEN_IN_G = "csrf_token"  # noqa: S105 (a name, not a secret)
_Page = TypeVar("_Page")


def render_anonymous(template: str, **context: Any) -> str:
    """render_template, kept for visitors who are not signed in. `context` must be hashable."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not _kept_here(app):
        return render_template(template, **context)
    key = (template, request.endpoint, request.script_root, tuple(sorted(context.items())))
    return _own_copy(app, _kept(app, key, lambda: render_template(template, **context)))


def render_blank_form(template: str, make_form: Callable[[], FlaskForm]) -> str:
    """A form's page as a first visit shows it (nothing typed, no error), kept like the pages
    of `render_anonymous`; each copy carries the visitor's own CSRF token."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not _kept_here(app):
        return render_template(template, form=make_form())
    key = (template, request.endpoint, request.script_root)
    return _own_copy(app, _kept(app, key, lambda: render_template(template, form=make_form())))


def _kept_here(app: Flask) -> bool:
    """Whether this request sees the page everyone sees (and pages are kept at all)."""
    return current() is None and _keeping(app)


def _keeping(app: Flask) -> bool:
    """Whether pages are kept at all, and this request has no message waiting to be shown."""
    reload = app.config["TEMPLATES_AUTO_RELOAD"]
    if app.debug if reload is None else reload:
        return False
    return not (has_session_cookie() and "_flashes" in session)


def _kept(app: Flask, key: tuple[Any, ...], render: Callable[[], str]) -> str:
    pages: dict[tuple[Any, ...], str] = app.extensions.setdefault("anonymous_pages", {})
    page = pages.get(key)
    if page is None:
        page = pages[key] = _render_marked(render)
    return page


def _own_copy(app: Flask, page: str) -> str:
    """The kept page with this response's nonce (Talisman's header names the same one), the
    visitor's CSRF token (kept in their session, as a fresh render would) and the moment it is
    served."""
    if _NONCE_MARK in page:
        make_nonce: Callable[[], str] = app.jinja_env.globals["csp_nonce"]  # type: ignore[assignment]
        page = page.replace(_NONCE_MARK, make_nonce())
    if _TOKEN_MARK in page:
        page = page.replace(_TOKEN_MARK, generate_csrf())
    if _RENDERED_AT_MARK in page:
        page = page.replace(_RENDERED_AT_MARK, clock.now().isoformat())
    return page


# -- signed-in pages, kept per session while what they were made of is unchanged ---------------

KEPT_SIGNED_IN_PAGES = 512  # per process; the least recently served goes first


@dataclass(frozen=True)
class Rendered:
    """A page as its view rendered it. `holds_until`: when something it shows changes by the
    clock alone (an invitation expiring); None if nothing does."""

    html: str
    status: int = 200
    holds_until: datetime | None = None


@dataclass(frozen=True)
class _SignedInPage:
    read: tuple[str, ...]  # the cache entries its request had read, by value key
    made_of: tuple[bytes, ...]  # their bytes, in that order
    html: str
    holds_until: datetime | None

    def serves(self, reads: dict[str, bytes]) -> bool:
        if self.holds_until is not None and clock.now() >= self.holds_until:
            return False
        return all(name in reads for name in self.read) and self.made_of == tuple(
            reads[name] for name in self.read)


class _SignedInPages:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple[str, ...], _SignedInPage] = OrderedDict()

    def get(self, slot: tuple[str, ...]) -> _SignedInPage | None:
        with self._lock:
            page = self._pages.get(slot)
            if page is not None:
                self._pages.move_to_end(slot)
            return page

    def put(self, slot: tuple[str, ...], page: _SignedInPage) -> None:
        with self._lock:
            self._pages[slot] = page
            self._pages.move_to_end(slot)
            while len(self._pages) > KEPT_SIGNED_IN_PAGES:
                self._pages.popitem(last=False)


def render_signed_in(render: Callable[[], Rendered]) -> tuple[str, int]:
    """A logged-in person's page from `render`, or the copy kept for their session when every
    cache entry it was made of still holds the same bytes (a request with a query string is
    rendered each time: a session's copies are one per page). `render` must read only through the
    cache entries its view reads ahead (web.authn.reads_ahead), and say until when it holds if
    anything it shows follows the clock."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    view = current()
    if view is None or request.query_string or not _keeping(app):  # one copy per page, no more
        page = render()
        return page.html, page.status
    pages: _SignedInPages | None = app.extensions.get("signed_in_pages")
    if pages is None:
        pages = app.extensions.setdefault("signed_in_pages", _SignedInPages())
    slot = (request.endpoint or "", view.id_hash)
    kept = pages.get(slot)
    if kept is not None and kept.serves(request_reads()):
        return _own_copy(app, kept.html), 200
    statements_before = statements_run(uow().session)
    page = _render_marked(render)
    if page.status == 200 and statements_run(uow().session) == statements_before:
        reads = request_reads()
        read = tuple(reads)
        pages.put(slot, _SignedInPage(read, tuple(reads[name] for name in read), page.html,
                                      page.holds_until))
    return _own_copy(app, page.html), page.status


def _render_marked(render: Callable[[], _Page]) -> _Page:
    """`render` with a marker where each response's nonce, CSRF token and moment go (a form's
    token field shows what Flask-WTF keeps in `g`)."""
    request.csp_nonce = _NONCE_MARK  # type: ignore[attr-defined]  # read by csp_nonce()
    setattr(g, _TOKEN_IN_G, _TOKEN_MARK)
    setattr(g, RENDERED_AT_IN_G, _RENDERED_AT_MARK)
    try:
        return render()
    finally:
        del request.csp_nonce  # type: ignore[attr-defined]
        delattr(g, _TOKEN_IN_G)
        delattr(g, RENDERED_AT_IN_G)

"""Pages that every visitor who is not signed in sees alike, rendered once per process.

Someone not signed in, with no flashed message waiting, sees the home page, the legal pages and
the blank log-in, sign-up and reset forms exactly as everyone else does, but for two things of
their own: the CSP nonce of the response and (on a form) their CSRF token. Such a page is
rendered once with a marker where each of those goes, and every response gets its own values in
their place.
A signed-in person, or one with a message waiting, gets a fresh render. Where templates reload
when edited (development), nothing is kept.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, render_template, request, session
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf

from web.authn import current, has_session_cookie

# Letters and digits only, so autoescaping leaves them as they are; unguessable, so no page
# says them by chance.
_NONCE_MARK = f"nonce{secrets.token_hex(16)}"
_TOKEN_MARK = f"token{secrets.token_hex(16)}"
# Where Flask-WTF keeps the request's signed token (its default WTF_CSRF_FIELD_NAME).
_TOKEN_IN_G = "csrf_token"  # noqa: S105 (a name, not a secret)


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

    def render() -> str:
        setattr(g, _TOKEN_IN_G, _TOKEN_MARK)  # what the form's token field will show
        try:
            return render_template(template, form=make_form())
        finally:
            delattr(g, _TOKEN_IN_G)

    return _own_copy(app, _kept(app, key, render))


def _kept_here(app: Flask) -> bool:
    """Whether this request sees the page everyone sees (and pages are kept at all)."""
    reload = app.config["TEMPLATES_AUTO_RELOAD"]
    if app.debug if reload is None else reload:
        return False
    return current() is None and not (has_session_cookie() and "_flashes" in session)


def _kept(app: Flask, key: tuple[Any, ...], render: Callable[[], str]) -> str:
    pages: dict[tuple[Any, ...], str] = app.extensions.setdefault("anonymous_pages", {})
    page = pages.get(key)
    if page is None:
        request.csp_nonce = _NONCE_MARK  # type: ignore[attr-defined]  # read by csp_nonce()
        try:
            page = pages[key] = render()
        finally:
            del request.csp_nonce  # type: ignore[attr-defined]
    return page


def _own_copy(app: Flask, page: str) -> str:
    """The kept page with this response's nonce (Talisman's header names the same one) and the
    visitor's CSRF token (kept in their session, as a fresh render would)."""
    if _NONCE_MARK in page:
        make_nonce: Callable[[], str] = app.jinja_env.globals["csp_nonce"]  # type: ignore[assignment]
        page = page.replace(_NONCE_MARK, make_nonce())
    if _TOKEN_MARK in page:
        page = page.replace(_TOKEN_MARK, generate_csrf())
    return page

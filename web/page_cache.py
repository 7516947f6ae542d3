"""Pages that every visitor without a cookie sees alike, rendered once per process.

A visitor with no cookie has no session, no flashed message and no name on the page: the home
page and the legal pages come out the same for all of them but for the CSP nonce. Such a page is
rendered once with a marker where the nonce goes, and each response gets a nonce of its own in
its place. Anyone with a cookie gets a fresh render (their page may greet them or show a message).
Where templates reload when edited (development), nothing is kept.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import current_app, render_template, request

from web.authn import has_session_cookie

# Letters and digits only, so autoescaping leaves it as it is; unguessable, so no page says it.
_NONCE_MARK = f"nonce{secrets.token_hex(16)}"


def render_anonymous(template: str, **context: Any) -> str:
    """render_template, kept for visitors without a cookie. `context` must be hashable."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if has_session_cookie() or _templates_reload(app):
        return render_template(template, **context)
    pages: dict[tuple[Any, ...], str] = app.extensions.setdefault("anonymous_pages", {})
    key = (template, request.endpoint, request.script_root, tuple(sorted(context.items())))
    page = pages.get(key)
    if page is None:
        page = pages[key] = _render_with_marker(template, context)
    if _NONCE_MARK not in page:
        return page
    nonce: str = app.jinja_env.globals["csp_nonce"]()  # this response's (Talisman's header)
    return page.replace(_NONCE_MARK, nonce)


def _templates_reload(app: Any) -> bool:
    reload = app.config["TEMPLATES_AUTO_RELOAD"]
    return bool(app.debug if reload is None else reload)


def _render_with_marker(template: str, context: dict[str, Any]) -> str:
    request.csp_nonce = _NONCE_MARK  # type: ignore[attr-defined]  # read by csp_nonce()
    try:
        return render_template(template, **context)
    finally:
        del request.csp_nonce  # type: ignore[attr-defined]

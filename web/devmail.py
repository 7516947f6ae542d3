"""/dev/mail: in development, the e-mails the platform wrote as files (embedded mode) shown as a
mailbox, links clickable, so a newcomer can follow a confirmation link without a mail server.

Never in production: the blueprint is not even registered there (a 404), nor when mail goes to
an SMTP server. The e-mails carry live links (a password reset is a login), so even in
development only this machine (loopback) may read them.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup, escape

from web.context import settings

blueprint = Blueprint("devmail", __name__, url_prefix="/dev/mail")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_URL = re.compile(r"https?://[^\s<>\"']+")
SHOWN = 200
# The raw HTML part: its inline styles may apply, nothing else may load or run.
HTML_PART_POLICY = {"default-src": "'none'", "style-src": "'unsafe-inline'",
                    "img-src": "data:", "base-uri": "'none'", "form-action": "'none'",
                    "frame-ancestors": "'none'"}


def enabled(app_settings: object) -> bool:
    return not getattr(app_settings, "is_production", True) and \
        getattr(app_settings, "smtp_url", None) is None


@dataclass(frozen=True)
class Letter:
    name: str
    to: str
    sender: str
    subject: str
    sent_at: datetime
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else None

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(_URL.findall(self.text)))


def _folder() -> Path:
    return settings().instance_path / "mail"


def _read(path: Path) -> Letter:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    try:
        sent_at = parsedate_to_datetime(str(message["Date"])).astimezone(UTC)
    except (TypeError, ValueError):
        sent_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Letter(path.stem, str(message["To"] or ""), str(message["From"] or ""),
                  str(message["Subject"] or "(no subject)"), sent_at, message)


def _letters() -> list[Letter]:
    folder = _folder()
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [_read(path) for path in files[:SHOWN]]


def _letter(name: str) -> Letter:
    path = _folder() / f"{name}.eml"
    if not _NAME.fullmatch(name) or not path.is_file():
        abort(404)
    return _read(path)


def _linked(text: str) -> Markup:
    """The text part, escaped, with every address in it a link."""
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces += [escape(text[last:match.start()]),
                   Markup('<a href="{0}">{0}</a>').format(match.group(0))]
        last = match.end()
    pieces.append(escape(text[last:]))
    return Markup("").join(pieces)


@blueprint.before_request
def _this_machine_only() -> None:
    address = ipaddress.ip_address(request.remote_addr or "0.0.0.0")  # noqa: S104 - not a bind
    if not address.is_loopback:
        abort(404)


@blueprint.get("")
def mailbox() -> str:
    return render_template("dev/mail.html", letters=_letters(), folder=_folder())


@blueprint.get("/<name>")
def letter(name: str) -> str:
    found = _letter(name)
    return render_template("dev/letter.html", letter=found, body=_linked(found.text))


def html_part(name: str) -> Response:
    found = _letter(name)
    if found.html is None:
        abort(404)
    return Response(found.html, mimetype="text/html")


html_part.talisman_view_options = {  # type: ignore[attr-defined]
    "content_security_policy": HTML_PART_POLICY, "content_security_policy_nonce_in": []}
blueprint.add_url_rule("/<name>/html", view_func=html_part, methods=["GET"])

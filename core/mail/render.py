from __future__ import annotations

from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.adapters.mime import Mail, build_mail

_TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the code: no stat() of the file per e-mail
)


def compose(
    template: str,
    *,
    to: str,
    sender: str,
    message_id: str,
    context: dict[str, Any],
) -> Mail:
    """Render `<template>.txt` and `<template>.html`; the first line of the text is the subject.

    `message_id` is derived by the caller from the event id, so a retry after an unknown SMTP
    outcome carries the same Message-ID and a receiving system can recognise the duplicate.
    """
    text = _env.get_template(f"{template}.txt").render(**context)
    subject, _, body = text.partition("\n")
    subject = subject.removeprefix("Subject:").strip()
    html = _env.get_template(f"{template}.html").render(subject=subject, **context)
    return build_mail(sender=sender, to=to, subject=subject, date=formatdate(usegmt=True),
                      message_id=message_id, text=body.lstrip("\n"), html=html)


def message_id_for(event_id: object, handler: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "localhost"
    return f"<{event_id}.{handler}@{domain}>"

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def compose(
    template: str,
    *,
    to: str,
    sender: str,
    message_id: str,
    context: dict[str, Any],
) -> EmailMessage:
    """Render `<template>.txt` and `<template>.html`; the first line of the text is the subject.

    `message_id` is derived by the caller from the event id, so a retry after an unknown SMTP
    outcome carries the same Message-ID and a receiving system can recognise the duplicate.
    """
    text = _env.get_template(f"{template}.txt").render(**context)
    subject, _, body = text.partition("\n")
    html = _env.get_template(f"{template}.html").render(subject=subject.strip(), **context)
    message = EmailMessage()
    message["Subject"] = subject.removeprefix("Subject:").strip()
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(body.lstrip("\n"))
    message.add_alternative(html, subtype="html")
    return message


def message_id_for(event_id: object, handler: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "localhost"
    return f"<{event_id}.{handler}@{domain}>"

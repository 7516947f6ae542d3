from __future__ import annotations

import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """`smtp://user:pass@host:587` (STARTTLS when the server offers it, auth when given) or
    `smtps://host:465` (TLS from the first byte). `?starttls=require` refuses plain text."""

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.require_starttls = "starttls=require" in (parts.query or "")
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        # Built once: loading the system's CA bundle costs ~30 ms of CPU per call.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def send(self, message: EmailMessage) -> None:
        context = self.context
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            client.ehlo()
            if not self.implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif self.require_starttls or self.username:
                    raise smtplib.SMTPException("server does not offer STARTTLS; refusing to send "
                                                "credentials or mail in plain text")
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


class FileMailer:
    """Embedded mode: each message becomes an .eml file under instance/mail/."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = str(message["Message-ID"] or "").strip("<>").split("@")[0] or "message"
        final = self.directory / f"{message_id}.eml"
        # Written whole or not at all: a retry overwrites the same file (same Message-ID).
        tmp = final.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(message))
        tmp.replace(final)
        log.info("mail written to %s", final)


def build_mailer(smtp_url: str | None, instance_path: Path) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return FileMailer(instance_path / "mail")

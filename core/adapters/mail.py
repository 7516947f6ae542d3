from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from core.adapters.mime import Mail

log = logging.getLogger(__name__)

# Reuse a connection idle for less than this; well under the minute servers commonly allow.
IDLE_CONNECTION_SECONDS = 10.0
# Transparency (RFC 5321 4.5.2): a line of the message that starts with "." gets another.
_DOT_AT_LINE_START = re.compile(rb"^\.", re.MULTILINE)


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


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
        self._connections = _IdleConnections(max_idle=IDLE_CONNECTION_SECONDS)

    @property
    def context(self) -> ssl.SSLContext:
        # Built once: loading the system's CA bundle costs ~30 ms of CPU per call.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def send(self, mail: Mail) -> None:
        reused = self._connections.take()
        if reused is not None:
            try:
                _send(reused, mail)
            except smtplib.SMTPServerDisconnected:
                # Mostly a server that dropped us while idle, before this message; one fresh
                # try (should it have gone after the data, the Message-ID marks the repeat).
                reused = None
            except BaseException:
                _close_quietly(reused)
                raise
            else:
                self._connections.keep(reused)
                return
        client = self._connect()
        try:
            _send(client, mail)
        except BaseException:
            _close_quietly(client)
            raise
        self._connections.keep(client)

    def _connect(self) -> smtplib.SMTP:
        context = self.context
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
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
        except BaseException:
            _close_quietly(client)
            raise
        return client


class _IdleConnections:
    """One open SMTP connection per thread, reused while it has been idle less than `max_idle`
    seconds: a worker sending a batch of e-mails talks to the server once, not once per e-mail.
    Older ones are closed rather than trusted (servers drop idle clients after a while)."""

    def __init__(self, max_idle: float) -> None:
        self.max_idle = max_idle
        self._local = threading.local()

    def take(self) -> smtplib.SMTP | None:
        client: smtplib.SMTP | None = getattr(self._local, "client", None)
        idle_since: float = getattr(self._local, "idle_since", 0.0)
        self._local.client = None
        if client is not None and time.monotonic() - idle_since > self.max_idle:
            _close_quietly(client)
            return None
        return client

    def keep(self, client: smtplib.SMTP) -> None:
        self._local.client = client
        self._local.idle_since = time.monotonic()


def _send(client: smtplib.SMTP, mail: Mail) -> None:
    options: tuple[str, ...] = ()
    if mail.smtputf8:
        if not client.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError(
                "the address needs SMTPUTF8, which the mail server does not offer")
        options = ("SMTPUTF8", "BODY=8BITMIME")
    if client.has_extn("pipelining"):
        _send_pipelined(client, mail, options)
    else:
        client.sendmail(mail.envelope_from, [mail.envelope_to], mail.data, mail_options=options)


def _send_pipelined(client: smtplib.SMTP, mail: Mail, options: tuple[str, ...]) -> None:
    """RFC 2920: MAIL, RCPT and DATA in one write and their three replies read together, then
    the message: two round trips per e-mail instead of four (smtplib waits after every command).
    Refusals raise what `sendmail` raises, so retries and giving up do not change."""
    encoding = "utf-8" if mail.smtputf8 else "ascii"
    # The envelope addresses are bare, validated addresses: no parsing (quoteaddr's) needed.
    sender = " ".join((f"MAIL FROM:<{mail.envelope_from}>", *options))
    client.send(f"{sender}\r\nRCPT TO:<{mail.envelope_to}>\r\nDATA\r\n".encode(encoding))
    (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = (
        client.getreply(), client.getreply(), client.getreply())
    refused = mail_code != 250 or rcpt_code not in (250, 251)
    if refused and data_code == 354:  # a server that opened the data regardless: end it empty
        client.send(b".\r\n")
        client.getreply()
    if refused or data_code != 354:
        client.rset()
        if mail_code != 250:
            raise smtplib.SMTPSenderRefused(mail_code, mail_reply, mail.envelope_from)
        if rcpt_code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({mail.envelope_to: (rcpt_code, rcpt_reply)})
        raise smtplib.SMTPDataError(data_code, data_reply)
    client.send(_DOT_AT_LINE_START.sub(b"..", mail.data).removesuffix(b"\r\n") + b"\r\n.\r\n")
    code, reply = client.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _close_quietly(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except Exception:
        client.close()


class FileMailer:
    """Embedded mode: each message becomes an .eml file under instance/mail/. In development
    the log says what was sent and which links it holds; never in production, where a link
    (a password reset is as good as a login) must not reach the logs."""

    def __init__(self, directory: Path, *, log_links: bool = False) -> None:
        self.directory = directory
        self.log_links = log_links

    def send(self, mail: Mail) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = mail.message_id.strip("<>").split("@")[0] or "message"
        final = self.directory / f"{message_id}.eml"
        # Written whole or not at all: a retry overwrites the same file (same Message-ID).
        tmp = final.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(mail.data)
        tmp.replace(final)
        if self.log_links:
            log.info("%s", describe_for_log(mail, final))
        else:
            log.info("mail written to %s", final)


def describe_for_log(mail: Mail, path: Path) -> str:
    """One log line a developer can act on: who, what, and the links to follow (embedded
    mode's mail goes nowhere else; /dev/mail shows the same). One line: the log escapes
    line breaks."""
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
    text = body.get_content() if body is not None else ""
    links = list(dict.fromkeys(re.findall(r"https?://[^\s<>\"']+", text)))
    # Each link last or before a space: a terminal that opens what is clicked takes the link
    # up to the next space, and a ";" after it would reach the page as part of its token.
    shown = "".join(f" link: {link}" for link in links)
    return (f'e-mail to {mail.envelope_to}: "{message["Subject"]!s}", saved as {path.name} '
            f"(shown at /dev/mail){shown}")


class MemoryMailer:
    """Keeps every message it is given (unit tests); a retry with the same Message-ID replaces
    the earlier copy, as the file mailer's does."""

    def __init__(self) -> None:
        self.sent: dict[str, Mail] = {}

    def send(self, mail: Mail) -> None:
        self.sent[mail.message_id] = mail


def build_mailer(smtp_url: str | None, instance_path: Path, *,
                 log_links: bool = False) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return FileMailer(instance_path / "mail", log_links=log_links)

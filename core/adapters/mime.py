"""A rendered e-mail as the bytes that go on the wire, and the envelope they travel in.

The platform's e-mails all have one shape: a text and an HTML alternative of one template. For
that shape this writes the MIME directly; the standard library's `email` package, general
enough for any message, spent more of a worker's CPU per e-mail (building the header objects,
then folding every header and scanning each body for a boundary while flattening) than the SMTP
conversation and the database together. Addresses beyond ASCII, which need SMTPUTF8, still go
through `email.message.EmailMessage`, the one path smtplib knows for them.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import parseaddr

CRLF = b"\r\n"
# RFC 5322 asks for lines of at most 78 characters; longer headers are folded.
FOLD_AT = 78


class HeaderInjection(ValueError):
    """A header value with a line break in it: refused, never sent."""


@dataclass(frozen=True)
class Mail:
    envelope_from: str
    envelope_to: str
    message_id: str
    data: bytes
    # Addresses beyond ASCII: the server must offer SMTPUTF8.
    smtputf8: bool = False


def build_mail(*, sender: str, to: str, subject: str, date: str, message_id: str, text: str,
               html: str) -> Mail:
    headers = {"From": sender, "To": to, "Subject": subject, "Date": date,
               "Message-ID": message_id}
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise HeaderInjection(f"line break in the {name} header")
    envelope_from, envelope_to = _address(sender), _address(to)
    if not (envelope_from + envelope_to).isascii():
        return _international(headers, text, html, envelope_from, envelope_to)
    # 96 random bits; "_" is not in base64, so no body can contain the boundary.
    boundary = f"=_{uuid.uuid4().hex[:24]}".encode()
    lines = [_header(name, value) for name, value in headers.items()]
    lines += [b"MIME-Version: 1.0",
              b'Content-Type: multipart/alternative; boundary="' + boundary + b'"', b""]
    for subtype, body in (("plain", text), ("html", html)):
        lines += [b"--" + boundary,
                  f'Content-Type: text/{subtype}; charset="utf-8"'.encode(),
                  b"Content-Transfer-Encoding: base64", b"",
                  base64.encodebytes(body.encode()).replace(b"\n", CRLF).rstrip(CRLF)]
    lines += [b"--" + boundary + b"--", b""]
    return Mail(envelope_from, envelope_to, message_id, CRLF.join(lines))


def _address(value: str) -> str:
    """The address of `Name <address>` or of a bare address (both already validated)."""
    if value.endswith(">") and "<" in value:
        return value[value.rindex("<") + 1:-1].strip()
    return value.strip()


def _header(name: str, value: str) -> bytes:
    if value.isascii() and (len(name) + 2 + len(value) <= FOLD_AT or " " not in value):
        # Short, or one word (a Message-ID) that no fold could split: as it is.
        return f"{name}: {value}".encode()
    if name in ("From", "To"):  # a long or non-ASCII display name; the address stays plain
        display, address = parseaddr(value)
        encoded = Header(display, "utf-8").encode() if display else ""
        return f"{name}: {encoded} <{address}>".strip().encode()
    folded = Header(value, "utf-8" if not value.isascii() else "us-ascii",
                    header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}".encode()


def _international(headers: dict[str, str], text: str, html: str, envelope_from: str,
                   envelope_to: str) -> Mail:
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    data = message.as_bytes(policy=policy.SMTPUTF8)
    return Mail(envelope_from, envelope_to, headers["Message-ID"], data, smtputf8=True)

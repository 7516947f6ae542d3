"""The external audit sink (the original's "optional external logging service"), by URL:

* `https://…` — a POST of `{"records": [...]}` per batch, signed as our webhooks are
  (`Webhook-Id`, `Webhook-Timestamp`, `Webhook-Signature: t=…,v1=HMAC-SHA256`) with
  AUDIT_SINK_SECRET; any 2xx is taken as received. (`http://` only for loopback tests.)
* `syslog+tls://host:port` — RFC 5424 messages over TLS with octet-counting framing (RFC 5425),
  facility "log audit"; the entry's id, chain, seq and hash in structured data, the entry as
  JSON in the message. Syslog has no acknowledgement: a batch counts as delivered once TLS
  took all of it.

Every record carries its id; the same record may arrive twice (at-least-once), never out of
order within its chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from core.adapters.webhooks import sign

APP_NAME = "practice-platform"
# RFC 5424: facility 13 is "log audit"; severities notice (5) and warning (4).
FACILITY = 13
ENTERPRISE_ID = 32473  # the documentation enterprise number of RFC 5612


class SinkFailed(Exception):
    """The sink did not take the batch; it is sent again later."""


class AuditSink(Protocol):
    def send(self, records: list[dict[str, Any]]) -> None: ...

    def describe(self) -> str: ...


def batch_id(records: list[dict[str, Any]]) -> str:
    ids = "|".join(str(record["id"]) for record in records)
    return hashlib.sha256(ids.encode()).hexdigest()[:32]


class HttpsSink:
    def __init__(self, url: str, secret: str, *, ca_file: str | None = None,
                 timeout: float = 15.0) -> None:
        self.url = url
        self.secret = secret
        self.ca_file = ca_file
        self.timeout = timeout

    def send(self, records: list[dict[str, Any]]) -> None:
        parts = urlsplit(self.url)
        body = json.dumps({"records": records}, separators=(",", ":"), ensure_ascii=False,
                          sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": f"{APP_NAME}-audit/1",
                   "Webhook-Id": batch_id(records), "Webhook-Timestamp": str(timestamp),
                   "Webhook-Signature": sign(self.secret, timestamp, body)}
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file)
            connection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                     timeout=self.timeout, context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                    timeout=self.timeout)
        try:
            connection.request("POST", parts.path or "/", body=body, headers=headers)
            response = connection.getresponse()
            response.read(65536)
        except (OSError, http.client.HTTPException) as error:
            raise SinkFailed(f"{type(error).__name__}: {error}") from None
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise SinkFailed(f"the sink answered HTTP {response.status}")

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _sd_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(record: dict[str, Any], hostname: str) -> bytes:
    """One RFC 5424 message, framed for RFC 5425 (its length, a space, the message)."""
    severity = 5 if record.get("outcome", "success") == "success" else 4
    kind = record.get("kind", "entry")
    msgid = record.get("type", "CHECKPOINT") if kind == "entry" else "CHECKPOINT"
    fields = {"id": record["id"], "kind": kind}
    if kind == "entry":
        fields.update(chain=record["chain_id"], seq=record["seq"], hash=record["hash"])
    data = " ".join(f'{name}="{_sd_value(value)}"' for name, value in fields.items())
    stamp = record.get("recorded_at") or record.get("created_at") or "-"
    message = (f"<{FACILITY * 8 + severity}>1 {stamp} {hostname} {APP_NAME} - {msgid[:32]} "
               f"[audit@{ENTERPRISE_ID} {data}] ").encode() + "\ufeff".encode() + json.dumps(
        record, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    return str(len(message)).encode() + b" " + message


class SyslogTlsSink:
    def __init__(self, host: str, port: int, *, ca_file: str | None = None,
                 timeout: float = 15.0) -> None:
        self.host, self.port = host, port
        self.context = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout
        self.hostname = socket.gethostname() or "-"

    def send(self, records: list[dict[str, Any]]) -> None:
        payload = b"".join(syslog_message(record, self.hostname) for record in records)
        try:
            with socket.create_connection((self.host, self.port), self.timeout) as raw, \
                    self.context.wrap_socket(raw, server_hostname=self.host) as tls:
                tls.sendall(payload)
                _close_politely(tls)
        except (OSError, ssl.SSLError) as error:
            raise SinkFailed(f"{type(error).__name__}: {error}") from None

    def describe(self) -> str:
        return f"syslog+tls://{self.host}:{self.port}"


def _close_politely(tls: ssl.SSLSocket) -> None:
    """TLS close_notify, so the receiver knows the stream ended whole. Some receivers drop the
    connection without answering theirs; everything was written by then, so that is fine."""
    with contextlib.suppress(OSError, ssl.SSLError):
        tls.unwrap()


class MemorySink:
    """Keeps what it was sent (unit tests)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def send(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)

    def describe(self) -> str:
        return "memory"


def build_sink(url: str | None, secret: str, ca_file: str | None) -> AuditSink | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "syslog+tls":
        return SyslogTlsSink(parts.hostname or "", parts.port or 6514, ca_file=ca_file)
    return HttpsSink(url, secret, ca_file=ca_file)

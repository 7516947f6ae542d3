"""Outbound webhook deliveries over HTTP, signed the way Stripe signs them.

Each delivery carries `Webhook-Id` (stable across retries of the same event to the same URL),
`Webhook-Timestamp` and `Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
Targets that resolve to private, loopback or link-local addresses are refused unless the
operator allows them, and the connection goes to the address that was checked (no DNS
rebinding between the check and the request).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

DELIVERY_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4f59-9a8e-0c7f2b1d5e41")
SIGNATURE_TOLERANCE_SECONDS = 300


class WebhookRefused(Exception):
    """The target is not allowed (SSRF guard) or malformed: retrying will not help."""


class WebhookFailed(Exception):
    """The receiver did not take the delivery (network error or non-2xx): worth retrying."""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    status: int


def delivery_id(event_id: uuid.UUID | str, url: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}|{url}"))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent (no replays)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def body_for(event: Any) -> bytes:
    document = {
        "event_id": str(event.id),
        "type": event.type,
        "tenant_id": str(event.tenant_id) if event.tenant_id else None,
        "occurred_at": event.occurred_at.isoformat(),
        "payload": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _resolve_allowed(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise WebhookFailed(f"cannot resolve {host}: {error}") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        public = address.is_global and not address.is_multicast
        if public or allow_private:
            return str(address)
    raise WebhookRefused(f"{host} resolves only to private or reserved addresses")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class WebhookSender:
    def __init__(self, *, secret: str, allow_private: bool = False, timeout: float = 10.0) -> None:
        self.secret = secret
        self.allow_private = allow_private
        self.timeout = timeout

    def deliver(self, url: str, event: Any, *, extra_headers: Mapping[str, str] | None = None
                ) -> Delivery:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookRefused("webhook URL must be http(s)://host/…")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve_allowed(parts.hostname, port, self.allow_private)
        body = body_for(event)
        timestamp = int(time.time())
        identifier = delivery_id(event.id, url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "practice-platform-webhooks/1",
            "Webhook-Id": identifier,
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": sign(self.secret, timestamp, body),
            **(extra_headers or {}),
        }
        connection_class = (_PinnedHTTPSConnection if parts.scheme == "https"
                            else _PinnedHTTPConnection)
        connection = connection_class(parts.hostname, port, address, self.timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(65536)
        except (OSError, http.client.HTTPException) as error:
            raise WebhookFailed(f"{type(error).__name__}: {error}") from None
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise WebhookFailed(f"receiver answered HTTP {response.status}")
        return Delivery(delivery_id=identifier, status=response.status)


class WebhookSink(Protocol):
    def deliver(self, url: str, event: Any, *, extra_headers: Mapping[str, str] | None = None
                ) -> Delivery: ...


class MemoryWebhookSender:
    """Keeps what it was asked to deliver (unit tests)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, bytes]] = []

    def deliver(self, url: str, event: Any, *, extra_headers: Mapping[str, str] | None = None
                ) -> Delivery:
        self.delivered.append((url, body_for(event)))
        return Delivery(delivery_id=delivery_id(event.id, url), status=200)

"""A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller

logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP verb


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.sink.pipelining:  # as Postfix and most relays do
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(message)  # type: ignore[arg-type]
            # One client port per connection: how many connections the messages came over.
            self.sink.peers.append(session.peer)
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos),
                                        envelope.smtp_utf8))
            self.sink.arrived.notify_all()
        return "250 OK"


class SmtpSink:
    def __init__(self, port: int, *, pipelining: bool = False) -> None:
        self.port = port
        self.pipelining = pipelining
        self.messages: list[EmailMessage] = []
        self.peers: list[object] = []
        self.envelopes: list[tuple[str, list[str], bool]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.controller = self._controller()

    def _controller(self) -> Controller:
        return Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                          enable_SMTPUTF8=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def restart(self) -> None:
        """Stop (closing every client connection, as a server does with idle ones) and serve
        again on the same port."""
        self.controller.stop()
        self.controller = self._controller()
        self.controller.start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        """Block until at least `count` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} e-mail(s), got {len(self.messages)} in {timeout}s")
                self.arrived.wait(remaining)
            return list(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]

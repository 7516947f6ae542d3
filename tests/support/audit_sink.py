"""External audit sinks on loopback: an HTTP receiver that checks signatures itself, and a
syslog-over-TLS receiver (RFC 5425 framing) with a self-signed certificate."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HttpSinkReceiver:
    def __init__(self, secret: str, *, delay: float = 0.0) -> None:
        self.secret = secret
        self.delay = delay  # seconds before answering each batch (room for a kill mid-flight)
        self.records: list[dict] = []
        self.batches = 0
        self.invalid = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver._receive(dict(self.headers), body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audit"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        signature = dict(p.split("=", 1) for p in headers["Webhook-Signature"].split(","))
        expected = hmac.new(self.secret.encode(), signature["t"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if not hmac.compare_digest(expected, signature["v1"]):
                self.invalid += 1
                return 401
            if self.fail_next:
                self.fail_next -= 1
                return 503
            self.batches += 1
            self.records.extend(json.loads(body)["records"])
        return 204

    def entries(self) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["kind"] == "entry"]

    def start(self) -> HttpSinkReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "sink.crt", directory / "sink.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class SyslogTlsReceiver:
    """Reads octet-counted RFC 5424 messages over TLS; keeps each message's text."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                    # Kept before our close_notify answers the client's: once the client's
                    # send returned, the messages are here.
                    self._parse(data)
                    tls.unwrap()
            except (OSError, ssl.SSLError):
                continue  # a client that does not trust our certificate

    def _parse(self, data: bytes) -> None:
        while data:
            length, _, rest = data.partition(b" ")
            size = int(length)
            with self.lock:
                self.messages.append(rest[:size].decode("utf-8"))
            data = rest[size:]

    def records(self) -> list[tuple[str, dict]]:
        """(the RFC 5424 header and structured data, the JSON record) per message."""
        with self.lock:
            found = []
            for message in self.messages:
                head, _, body = message.partition("\ufeff")
                found.append((head, json.loads(body)))
            return found

    def start(self) -> SyslogTlsReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.listener.close()


HEADER = re.compile(r"^<(\d+)>1 (\S+) (\S+) practice-platform - (\S+) \[audit@32473 ([^\]]*)\] $")

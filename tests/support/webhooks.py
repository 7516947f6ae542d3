"""A webhook receiver on loopback that checks every signature itself (not with our code)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[dict] = []
        self.fail_next: dict[str, int] = {}  # event id -> how many attempts to answer 503
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
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/platform"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        signature = dict(p.split("=", 1) for p in headers["Webhook-Signature"].split(","))
        expected = hmac.new(self.secret.encode(), signature["t"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        document = json.loads(body)
        record = {
            "id": headers["Webhook-Id"],
            "event_id": document["event_id"],
            "type": document["type"],
            "document": document,
            "valid": hmac.compare_digest(expected, signature["v1"])
            and signature["t"] == headers["Webhook-Timestamp"]
            and abs(time.time() - int(signature["t"])) < 300,
        }
        with self.lock:
            self.deliveries.append(record)
            remaining = self.fail_next.get(document["event_id"], 0)
            if remaining:
                self.fail_next[document["event_id"]] = remaining - 1
                return 503
        return 204

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

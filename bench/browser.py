"""One person's browser against the served app: a cookie jar over plain `http.client` (urllib
would honour http_proxy, even on loopback). Used to set up the logged-in entries, never timed."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from bench.measure import MeasurementError

# Logged-in pages carry the token in a meta tag, forms in a hidden field; anonymous pages without
# a form carry none (they set no cookie).
_CSRF_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"'
                         r'|<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
TIMEOUT = 30.0  # a log-in spends ~0.2 s in argon2 alone; more while wrk is busy elsewhere


@dataclass(frozen=True)
class Reply:
    status: int
    location: str
    text: str
    headers: http.client.HTTPMessage | None = field(default=None, repr=False, compare=False)

    def json(self) -> dict[str, object]:
        try:
            value = json.loads(self.text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise MeasurementError(f"expected a JSON object, got {self.status}: {self.text[:200]}")
        return value


class Browser:
    """Keeps the cookies the app sets (the session cookie) and sends them back."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None,
                 timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._cookies: dict[str, str] = {}
        self._headers = dict(headers or {})  # sent with every request (e.g. a proxy's)
        self._timeout = timeout

    @property
    def cookies(self) -> dict[str, str]:
        """A copy of the jar (to lend a logged-in session to another browser)."""
        return dict(self._cookies)

    def use_cookies(self, cookies: Mapping[str, str]) -> None:
        self._cookies = dict(cookies)

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self._cookies.items())

    def request(self, method: str, path: str, *, body: str | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        sent = {**self._headers, **(headers or {})}
        if self._cookies:
            sent["Cookie"] = self.cookie_header
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", errors="replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                self._keep(header)
            return Reply(response.status, response.getheader("Location") or "", text,
                         response.headers)
        finally:
            connection.close()

    def _keep(self, header: str) -> None:
        for name, morsel in SimpleCookie(header).items():
            if morsel["max-age"] == "0" or not morsel.value:
                self._cookies.pop(name, None)  # Flask deletes an emptied session this way
            else:
                self._cookies[name] = morsel.value

    def csrf_token(self, path: str = "/login") -> str:
        """The token a page carries (meta tag or form field); the cookie now holds its pair."""
        reply = self.request("GET", path)
        match = _CSRF_TOKEN.search(reply.text)
        if reply.status != 200 or match is None:
            raise MeasurementError(f"no CSRF token on GET {path} (status {reply.status})")
        return match.group(1) or match.group(2)

    def log_in(self, email: str, password: str) -> None:
        """The login form, as a person sends it: a 302 to the dashboard, or MeasurementError."""
        form = {"email": email, "password": password, "csrf_token": self.csrf_token("/login")}
        reply = self.request("POST", "/login", body=urlencode(form),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        if reply.status != 302 or not reply.location.endswith("/dashboard"):
            raise MeasurementError(f"logging in {email} answered {reply.status} "
                                   f"{reply.location or reply.text[:200]}")

    def api_csrf_token(self) -> str:
        """A token for JSON requests of this (logged-in) session, from /api/csrf-token."""
        reply = self.request("GET", "/api/csrf-token")
        token = reply.json().get("csrf_token")
        if not isinstance(token, str):
            raise MeasurementError(f"/api/csrf-token answered {reply.status} without a token: "
                                   f"{reply.text[:200]}")
        return token

"""The database goes silent under a running web process (its proxy stops forwarding, as a
SIGSTOPped proxy or a dropped network path does): requests that need it answer 503 with
Retry-After instead of hanging, the liveness probe keeps answering however many of them are in
flight, /api/health says unhealthy within its timeout, and once the database is back the same
process serves pages again.

Real gunicorn (gthread, 4 threads), real PostgreSQL behind tests.support.tcp_proxy, real Redis.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from tests.conftest import TEST_DATABASE_URL, free_port
from tests.support import factories
from tests.support.flows import PASSWORD
from tests.support.processes import BIN, Process, platform_env, wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

THREADS = 4
# Every answer must come within this; it is the test's bound, not a figure the server aims at.
CLIENT_TIMEOUT = 10.0
HEALTH_TIMEOUT_MS = 1000


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


class Visitor:
    """One browser: keeps the session cookie; follows no redirects."""

    def __init__(self, base_port: int) -> None:
        self.port = base_port
        self.cookie = ""

    def get(self, path: str) -> Answer:
        return self._send("GET", path)

    def post_form(self, path: str, form: dict[str, str]) -> Answer:
        return self._send("POST", path, urlencode(form),
                          {"Content-Type": "application/x-www-form-urlencoded"})

    def _send(self, method: str, path: str, body: str | None = None,
              headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        try:
            sent = {**(headers or {}), **({"Cookie": self.cookie} if self.cookie else {})}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers,
                            response.read().decode(errors="replace"))
        finally:
            connection.close()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            if cookie.startswith("session="):
                self.cookie = cookie.split(";", 1)[0]
        return answer

    def log_in(self, email: str) -> None:
        page = self.get("/login")
        token = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page.body)
        assert token, page.body[:500]
        answer = self.post_form("/login", {"csrf_token": token.group(1), "email": email,
                                           "password": PASSWORD})
        assert answer.status == 302 and answer.headers["Location"].endswith("/dashboard")


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (CI sets it)")
    url = sa.engine.make_url(TEST_DATABASE_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.restore()
    yield proxy
    proxy.close()


@pytest.fixture
def web(db, redis_url, proxy, tmp_path) -> Iterator[tuple[Process, int]]:
    assert TEST_DATABASE_URL
    through_proxy = sa.engine.make_url(TEST_DATABASE_URL).set(host="127.0.0.1", port=proxy.port)
    port = free_port()
    lots = "100000 per minute"
    env = platform_env(
        DATABASE_URL=through_proxy.render_as_string(hide_password=False), REDIS_URL=redis_url,
        INSTANCE_PATH=str(tmp_path), SECRET_KEY="s" * 48, HOST="127.0.0.1", PORT=str(port),
        WEB_CONCURRENCY="1", WEB_THREADS=str(THREADS), HEALTH_TIMEOUT_MS=str(HEALTH_TIMEOUT_MS),
        DATABASE_STATEMENT_TIMEOUT_MS="1000", RATE_LIMIT_ANONYMOUS=lots,
        RATE_LIMIT_AUTHENTICATED=lots, RATE_LIMIT_AUTH_ENDPOINTS=lots,
    )
    server = Process([str(BIN / "gunicorn"), "wsgi:app"], env, tmp_path / "web.log")
    try:
        wait_until(lambda: not server.alive() or _answers(port, "/api/health/live"), 30,
                   "gunicorn to answer")
        assert server.alive(), server.output()
        yield server, port
    finally:
        proxy.restore()  # nothing may stay stuck while gunicorn shuts down
        server.stop()


def _answers(port: int, path: str) -> bool:
    try:
        return Visitor(port).get(path).status == 200
    except OSError:
        return False


NEEDS_DATABASE = "/account/sessions"


def _unavailable(answer: Answer) -> bool:
    return (answer.status == 503 and "Temporarily unavailable" in answer.body
            and answer.headers["Retry-After"] is not None)


def test_a_silent_database_gives_503s_and_never_freezes_the_web_tier(db, web, proxy) -> None:
    server, port = web
    practice = factories.practice(db, "Silent Practice", slug_hint="silent")
    therapist = Visitor(port)
    therapist.log_in(practice.therapist_email)
    assert therapist.get("/therapist").status == 200

    proxy.blackhole()
    # The warm dashboard is served from the cache; the list of sessions reads the database.
    assert therapist.get("/therapist").status == 200
    first = therapist.get(NEEDS_DATABASE)
    assert _unavailable(first), (first.status, first.body[:300])

    # More requests needing the database than the server has threads ...
    burst: list[Answer | BaseException] = []

    def dashboard() -> None:
        try:
            burst.append(therapist.get(NEEDS_DATABASE))
        except BaseException as error:  # a timeout is a result here
            burst.append(error)

    threads = [threading.Thread(target=dashboard) for _ in range(2 * THREADS)]
    for thread in threads:
        thread.start()
    # ... and the probes that touch no database still answer, with the cookie or without.
    assert therapist.get("/api/health/live").status == 200
    assert Visitor(port).get("/").status == 200
    for thread in threads:
        thread.join(CLIENT_TIMEOUT * 3)
    assert len(burst) == len(threads)
    for answer in burst:
        assert isinstance(answer, Answer), f"no answer: {answer!r}"
        assert _unavailable(answer), (answer.status, answer.body[:300])

    health = Visitor(port).get("/api/health")
    assert health.status == 503 and '"unhealthy"' in health.body

    proxy.restore()
    wait_until(lambda: therapist.get(NEEDS_DATABASE).status == 200, 30,
               "the page to work again without a restart")
    assert server.alive()
    log = server.output()
    assert f"database unavailable on GET {NEEDS_DATABASE}" in log
    assert "Traceback" not in log, log[-3000:]

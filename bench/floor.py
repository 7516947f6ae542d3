"""Floors beside two of the platform's pages: the same work done by `bench.floor_app`, an app made
of only what such a page must have (see there), served like the bare app.

* `home-floor`, beside `home`: the platform's anonymous home page, byte for byte.
* `autosave-floor`, beside `autosave`: the same 50 people's back-to-back saves (-t50 -c50), each
  a CSRF-checked PUT, a session read and one transaction under row-level security.

A target between the floor and the bare app can be reached; one above the floor cannot, however
little the platform adds.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import backends
from bench.browser import Browser
from bench.http import BASELINE, HttpEndpoint, WrkResult
from bench.logged_in import (
    AUTOSAVE_SESSIONS,
    PHONE,
    ThreadValues,
    autosave_headers,
    checked_wrk,
    wrk_script,
)
from bench.measure import Context, MeasurementError, Sample, Target

HOME_PAGE = "floor-home.html"  # in the run's work folder
NONCE_MARK = "floornonce"  # where the page's nonce stands in it
TABLE = "bench_floor_progress"
# The platform's own policy on a tenant's rows (migrations: 0003_onboarding), on the same role.
_TABLE_DDL = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE TABLE {TABLE} (id integer PRIMARY KEY, tenant_id uuid NOT NULL, data jsonb NOT NULL,
                      version integer NOT NULL, updated_at timestamptz NOT NULL);
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {TABLE} USING (
    current_setting('app.all_tenants', true) = 'on'
    OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""


def server_env(workdir: Path) -> dict[str, str]:
    return {**backends.clean_env(), "SECRET_KEY": secrets.token_hex(24),
            "REDIS_URL": backends.REDIS_URL, "FLOOR_DATABASE_URL": _plain(backends.DATABASE_URL),
            "FLOOR_HOME_PAGE": str(workdir / HOME_PAGE), "FLOOR_NONCE_MARK": NONCE_MARK}


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass(frozen=True)
class HomeFloor(HttpEndpoint):
    """`home`'s floor: before the first request, the platform's home page as the floor's."""

    def warm_up(self, ctx: Context) -> None:
        reply = Browser(ctx.urls["app"]).request("GET", "/")
        nonce = re.search(r'nonce="([^"]+)"', reply.text)
        if reply.status != 200 or nonce is None:
            raise MeasurementError(f"the platform's home page answered {reply.status} with no "
                                   "nonce")
        (ctx.workdir / HOME_PAGE).write_text(reply.text.replace(nonce.group(1), NONCE_MARK))
        super().warm_up(ctx)


@dataclass(frozen=True)
class AutosaveFloor:
    name: str = "autosave-floor"
    unit: str = "req/s"
    baseline: str = BASELINE
    needs_servers: bool = True
    target: Target = "floor"

    def warm_up(self, ctx: Context) -> None:
        with psycopg.connect(_plain(backends.DATABASE_URL), autocommit=True) as connection:
            connection.execute(_TABLE_DDL)
            connection.execute("SET app.all_tenants = 'on'")  # set-up writes every practice's row
            connection.cursor().executemany(
                f"INSERT INTO {TABLE} VALUES (%s, %s, '{{}}', 1, now())",
                [(row, uuid.uuid4()) for row in range(1, AUTOSAVE_SESSIONS + 1)])
        if ctx.options.warmup > 0:
            self._run(ctx, ctx.options.warmup)

    def measure(self, ctx: Context) -> Sample:
        return self._run(ctx, ctx.options.duration).sample()

    def _run(self, ctx: Context, seconds: int) -> WrkResult:
        script = wrk_script(ctx, self.name, "autosave.lua", self._people(ctx), status=200)
        return checked_wrk(ctx, "/autosave", script, seconds, threads=AUTOSAVE_SESSIONS,
                           connections=AUTOSAVE_SESSIONS, target="floor")

    @staticmethod
    def _people(ctx: Context) -> list[ThreadValues]:
        """A session per row, each in its own practice, with its cookie and CSRF token."""
        with psycopg.connect(backends.BENCH.owner_url) as connection:
            tenants: dict[int, uuid.UUID] = dict(
                connection.execute(f"SELECT id, tenant_id FROM {TABLE}").fetchall())
        people: list[ThreadValues] = []
        for row, tenant in sorted(tenants.items()):
            browser = Browser(ctx.urls["floor"])
            token = browser.request("POST", f"/session/{row}", body=json.dumps(
                {"tenant": str(tenant)}), headers={"Content-Type": "application/json"}
            ).json().get("csrf_token")
            if not isinstance(token, str):
                raise MeasurementError(f"the floor's session {row} came without a CSRF token")
            people.append({"path": "/autosave", "phone": PHONE, "version": 1,
                           "headers": autosave_headers(browser, token)})
        return people

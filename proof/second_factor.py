"""The authenticator apps of the proof's people who have one: the platform admin, whom
production asks for a second factor before anything else.

A code is accepted once (the platform refuses a replay within its time step), so each log-in
waits for a step no earlier one used; the logged-in session is lent to the next visitor who logs
in as the same person, so that wait is rare.
"""

from __future__ import annotations

import threading
import time

import pyotp

STEP_SECONDS = 30


class AuthenticatorApps:
    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._sessions: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def has(self, email: str) -> bool:
        return email in self._secrets

    def enrolled(self, email: str, secret: str, step: int) -> None:
        with self._lock:
            self._secrets[email] = secret
            self._last_step[email] = step

    def fresh_code(self, email: str) -> str:
        """The code of the earliest time step after the last one used (waiting for it)."""
        with self._lock:
            step = max(int(time.time()) // STEP_SECONDS, self._last_step.get(email, -1) + 1)
            wait = step * STEP_SECONDS - time.time()
            if wait > 0:
                time.sleep(wait + 0.2)
            self._last_step[email] = step
            return pyotp.TOTP(self._secrets[email]).at(step * STEP_SECONDS)

    def now_code(self, email: str) -> tuple[str, int]:
        step = int(time.time()) // STEP_SECONDS
        return pyotp.TOTP(self._secrets[email]).at(step * STEP_SECONDS), step

    def lend(self, email: str) -> dict[str, str] | None:
        return self._sessions.get(email)

    def keep(self, email: str, cookies: dict[str, str]) -> None:
        self._sessions[email] = cookies


APPS = AuthenticatorApps()

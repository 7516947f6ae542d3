"""A Redis leader lock with expiry and renewal: one scheduler fires, the others wait.

The leader renews every ttl/3. If it dies, its key expires after `ttl` and a waiting process
takes over. A leader that cannot renew in time (paused, cut off) stops firing before its lease
could have been taken by someone else.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLeaderLock:
    KEY = "platform:scheduler:leader"

    def __init__(self, client: Any, ttl_seconds: float) -> None:
        self.client = client
        self.ttl_ms = int(ttl_seconds * 1000)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._valid_until = 0.0  # monotonic; we may act as leader strictly before this
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-lock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.is_leader:
            try:
                self._release(keys=[self.KEY], args=[self.identity])
            except Exception:  # it expires on its own
                log.warning("could not release the leader lock; it expires in %d ms", self.ttl_ms)
        self._valid_until = 0.0

    def _run(self) -> None:
        interval = self.ttl_ms / 3000
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(interval)

    def tick(self) -> None:
        started = time.monotonic()
        # Stop a third of the ttl early, so clock drift or a slow reply never overlaps leaders.
        lease = started + (self.ttl_ms / 1000) * 2 / 3
        was_leader = self.is_leader
        try:
            # Renew first: the key may still be ours even if our local lease ran out.
            held = bool(self._renew(keys=[self.KEY], args=[self.identity, self.ttl_ms])) or bool(
                self.client.set(self.KEY, self.identity, nx=True, px=self.ttl_ms)
            )
        except Exception as error:
            log.warning("leader lock: Redis unavailable (%s)", type(error).__name__)
            held = False
        if held:
            self._valid_until = lease
            if not was_leader:
                log.info("scheduler %s is now the leader", self.identity)
        else:
            self._valid_until = 0.0
            if was_leader:
                log.warning("scheduler %s lost the leader lock; standing by", self.identity)


class AlwaysLeader:
    """Embedded mode: a single in-process scheduler has no one to compete with."""

    identity = f"{socket.gethostname()}:{os.getpid()}:embedded"
    is_leader = True

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

"""Two scheduler processes: only the leader fires; when it dies, the other takes over."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.support.processes import platform_env, scheduler, wait_until

pytestmark = pytest.mark.integration

QUEUE = "dramatiq:maintenance"


def _relay_messages(client: redis.Redis) -> list[dict]:
    """Messages the schedulers enqueued for the relay (no worker consumes them here)."""
    ids = client.lrange(QUEUE, 0, -1)
    bodies = client.hmget(f"{QUEUE}.msgs", ids) if ids else []
    messages = [json.loads(body) for body in bodies if body]
    return [m for m in messages if m["options"].get("scheduled_job") == "relay-outbox"]


def test_only_the_leader_fires_and_the_other_takes_over(database_url, redis_url, tmp_path, db):
    env = platform_env(DATABASE_URL=database_url, REDIS_URL=redis_url, SCHEDULER_LOCK_TTL="2",
                       INSTANCE_PATH=str(tmp_path))
    client = redis.Redis.from_url(redis_url)
    first = scheduler(env, tmp_path / "scheduler-1.log")
    second = scheduler(env, tmp_path / "scheduler-2.log")
    try:
        wait_until(lambda: len(_relay_messages(client)) >= 4, 30, "relay job firing")
        started = time.monotonic()
        before = len(_relay_messages(client))
        wait_until(lambda: len(_relay_messages(client)) >= before + 3, 30, "three more fires")
        window = time.monotonic() - started
        messages = _relay_messages(client)
        fired = len(messages) - before
        leaders = {m["options"]["scheduled_by"] for m in messages}
        assert len(leaders) == 1, f"two schedulers fired: {leaders}"
        # The relay runs every 2 s: one process fires about window/2 times, two would double it.
        assert fired <= window / 2 + 1, f"{fired} fires in {window:.1f}s"
        [leader_identity] = leaders
        leader, standby = ((first, second) if f":{first.pid}:" in leader_identity
                           else (second, first))
        assert f":{leader.pid}:" in leader_identity

        leader.kill()
        count_at_kill = len(messages)
        wait_until(
            lambda: any(f":{standby.pid}:" in m["options"]["scheduled_by"]
                        for m in _relay_messages(client)[count_at_kill:]),
            15, "the standby scheduler taking over",
        )
        assert "is now the leader" in standby.output()
    finally:
        first.stop()
        second.stop()
        client.close()
    for process in (first, second):
        assert "Traceback" not in process.output(), process.output()

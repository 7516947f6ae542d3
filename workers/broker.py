"""The Dramatiq broker, chosen by BROKER_URL: Redis, RabbitMQ, or the in-process StubBroker."""

from __future__ import annotations

from dramatiq.broker import Broker
from dramatiq.brokers.stub import StubBroker

from core.config import Settings


def build_broker(settings: Settings) -> Broker:
    url = settings.broker_url
    if url is None:
        return StubBroker()
    if url.startswith(("redis://", "rediss://")):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        # Our own client, so that a Redis outage fails a publish in seconds instead of hanging.
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
        return RedisBroker(  # type: ignore[no-untyped-call]
            client=client,
            heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
            maintenance_chance=settings.broker_maintenance_chance,
        )
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    # Without confirms a publish can vanish silently; the outbox relies on knowing.
    return RabbitmqBroker(url=url, confirm_delivery=True)


def ping_broker(broker: Broker) -> str:
    """Raise if the broker cannot be reached; return a short description for /api/health."""
    if isinstance(broker, StubBroker):
        return "in-process"
    client = getattr(broker, "client", None)
    if client is not None:  # Redis
        client.ping()
        return "redis"
    connection = broker.connection  # type: ignore[attr-defined]  # RabbitMQ, per thread
    if not connection.is_open:
        raise ConnectionError("RabbitMQ connection is closed")
    connection.process_data_events(time_limit=0)
    return "rabbitmq"


def queue_depths(broker: Broker) -> dict[str, int]:
    """Messages waiting per queue (Redis and the StubBroker; RabbitMQ reports via its UI)."""
    if isinstance(broker, StubBroker):
        return {name: queue.qsize() for name, queue in broker.queues.items()
                if not name.endswith(".XQ")}
    client = getattr(broker, "client", None)
    if client is None:
        return {}
    namespace = getattr(broker, "namespace", "dramatiq")
    names = list(broker.get_declared_queues())
    pipe = client.pipeline()
    for name in names:
        pipe.llen(f"{namespace}:{name}")
    return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))

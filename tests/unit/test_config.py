"""Settings: one place reads the environment; production refuses unsafe set-ups in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, Settings

PG = "postgresql://app@db.internal/platform"
SECRET = "s" * 48
MFA_KEY = "bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0="  # a Fernet key: 32 bytes, base64url


def test_embedded_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'platform.db'}"
    assert settings.redis_url is None and settings.broker_url is None and settings.embedded
    assert settings.smtp_url is None
    assert settings.app_env == "development" and not settings.force_https
    # A development secret is generated once and reused.
    assert len(settings.secret_key) >= 32
    assert Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_broker_defaults_to_redis_and_postgres_url_gets_our_driver(tmp_path: Path) -> None:
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": "redis://r:6379/0",
                                  "DATABASE_URL": "postgres://u@h/db"})
    assert settings.broker_url == "redis://r:6379/0" and not settings.embedded
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    rabbit = Settings.from_env({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": "redis://r/0",
                                "BROKER_URL": "amqp://guest:guest@mq:5672/"})
    assert rabbit.broker_url.startswith("amqp://")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://r/0", "SECRET_KEY": SECRET}, "not SQLite"),
        ({"DATABASE_URL": PG, "SECRET_KEY": SECRET}, "needs REDIS_URL"),
        ({"DATABASE_URL": PG, "REDIS_URL": "redis://r/0"}, "needs SECRET_KEY"),
        ({"DATABASE_URL": PG, "REDIS_URL": "redis://r/0", "SECRET_KEY": "short"}, "32 characters"),
        ({"DATABASE_URL": PG, "REDIS_URL": "redis://r/0", "SECRET_KEY": SECRET},
         "needs MFA_ENCRYPTION_KEY"),
        ({"DATABASE_URL": PG, "REDIS_URL": "redis://r/0", "SECRET_KEY": SECRET,
          "MFA_ENCRYPTION_KEY": "not-a-key"}, "must be a Fernet key"),
    ],
)
def test_production_refuses_unsafe_setups(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({"APP_ENV": "production", **env})
    assert "\n" not in str(caught.value)


def test_production_with_real_backends_is_strict_by_default() -> None:
    settings = Settings.from_env({"APP_ENV": "production", "DATABASE_URL": PG,
                                  "REDIS_URL": "redis://r/0", "SECRET_KEY": SECRET,
                                  "MFA_ENCRYPTION_KEY": MFA_KEY})
    assert settings.force_https and settings.log_format == "json" and settings.is_production


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
        ({"DATABASE_URL": "mysql://x/y"}, "postgresql:// or sqlite://"),
        ({"REDIS_URL": "http://r"}, "REDIS_URL must start with"),
        ({"BROKER_URL": "kafka://k"}, "BROKER_URL must start with"),
        ({"SMTP_URL": "mail.example.com"}, "SMTP_URL must start with"),
        ({"TRUSTED_PROXIES": "one"}, "whole number"),
        ({"FORCE_HTTPS": "maybe"}, "true or false"),
        ({"WEBHOOK_URL": "https://hooks.example.com/x"}, "WEBHOOK_SECRET"),
        ({"DATABASE_STATEMENT_TIMEOUT_MS": "5s"}, "DATABASE_STATEMENT_TIMEOUT_MS must be"),
        ({"WORKER_STATEMENT_TIMEOUT_MS": "-1"}, "WORKER_STATEMENT_TIMEOUT_MS must be"),
    ],
)
def test_malformed_settings_name_the_variable(tmp_path: Path, env: dict[str, str],
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), **env})


def test_statement_timeouts_are_short_for_pages_longer_for_workers(tmp_path: Path) -> None:
    defaults = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert defaults.database_statement_timeout_ms == 5000
    assert defaults.worker_statement_timeout_ms == 60_000
    tuned = Settings.from_env({"INSTANCE_PATH": str(tmp_path),
                               "DATABASE_STATEMENT_TIMEOUT_MS": "0",  # no timeout
                               "WORKER_STATEMENT_TIMEOUT_MS": "300000"})
    assert tuned.database_statement_timeout_ms == 0
    assert tuned.worker_statement_timeout_ms == 300_000


def test_log_lines_cannot_be_forged_through_user_input() -> None:
    import json
    import logging

    from core.logs import JsonFormatter, TextFormatter

    record = logging.makeLogRecord({"msg": "login for %s", "args": ("x\nERROR forged line",),
                                    "levelname": "INFO", "name": "t"})
    record.request_id = "r1"
    text = TextFormatter().format(record)
    assert "\n" not in text and "\\x0a" in text
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "login for x\nERROR forged line"  # data, inside one JSON line

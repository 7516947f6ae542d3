"""Settings: the one place that reads the environment.

Every process (web, worker, scheduler, CLI) builds a `Settings` with `Settings.from_env()` and
passes it down. Unset backends fall back to the embedded default (SQLite under `instance/`,
in-process transports) so the platform runs on a bare machine; production refuses to start
without the real ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "production", "test")
# What the original's "external sync" sent out: business events, not security noise.
DEFAULT_WEBHOOK_EVENTS = frozenset({
    "USER_CREATED", "ACCOUNT_ADDED", "INVITATION_ACCEPTED", "ONBOARDING_COMPLETED",
    "TENANT_INITIALISED",
})


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line meant for an operator."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _url(name: str, raw: str | None, schemes: tuple[str, ...]) -> str | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    scheme = urlsplit(raw).scheme
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name} must start with one of {allowed}; got {scheme or 'no'} scheme")
    return raw


def normalise_database_url(raw: str) -> str:
    """Accept the usual spellings and pick the drivers we ship (psycopg 3, pysqlite)."""
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    instance_path: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str | None = None
    broker_url: str | None = None
    smtp_url: str | None = None
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:5000"
    mail_from: str = "Practice Platform <no-reply@practice.localhost>"
    # Number of reverse proxies in front of the web tier whose X-Forwarded-* headers we trust.
    trusted_proxies: int = 0
    force_https: bool = False
    log_format: str = "text"
    log_level: str = "INFO"
    rate_limit_anonymous: str = "20 per minute"
    rate_limit_authenticated: str = "100 per minute"
    rate_limit_auth_endpoints: str = "10 per minute"
    health_timeout_seconds: float = 2.0
    # PostgreSQL's statement_timeout for this process's connections (0: none); the client stops
    # waiting for the server a little later (core.db). Pages and the scheduler need milliseconds;
    # workers run batches and exports, so they get longer. Migrations are never bounded.
    database_statement_timeout_ms: int = 5000
    worker_statement_timeout_ms: int = 60_000
    # Embedded mode: threads of the in-process worker that drains the StubBroker.
    embedded_worker_threads: int = 4
    scheduler_lock_ttl_seconds: int = 15
    # How often the scheduler has the workers roll up the metrics.
    metrics_rollup_seconds: int = 300
    # Redis broker: how long before a silent worker's messages are handed to another worker.
    broker_heartbeat_timeout_ms: int = 60_000
    # Out of a million broker commands, how many also requeue dead workers' messages.
    broker_maintenance_chance: int = 1000
    # Live notification streams one web process serves at once (each holds a thread).
    notification_streams: int = 4
    # Of those, how many one account may hold (more tabs: the oldest stream makes way).
    notification_streams_per_account: int = 2
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_max_failures: int = 5
    login_failure_window_minutes: int = 15
    # First lockout length; each further lockout doubles it, up to a day.
    lockout_minutes: int = 15
    webhook_url: str | None = None
    webhook_secret: str = ""
    # Loopback and private targets are refused (SSRF guard) unless this is set.
    webhook_allow_private: bool = False
    webhook_events: frozenset[str] = DEFAULT_WEBHOOK_EVENTS
    # The file store for exports and archives: a folder under instance/ unless s3://bucket/prefix.
    storage_url: str | None = None
    # Signs the audit log's checkpoints (HMAC-SHA256); derived from SECRET_KEY when unset.
    audit_signing_key: str = ""
    # Months an audit entry is kept (HIPAA: six years); older months are archived, then dropped.
    audit_retention_months: int = 72
    # The external audit sink: https://… (signed JSON batches) or syslog+tls://host:port.
    audit_sink_url: str | None = None
    audit_sink_secret: str = ""
    # A CA bundle for the sink's TLS certificate (a private CA); the system's when unset.
    audit_sink_ca_file: str | None = None
    # Filtered views larger than this export on a worker instead of streaming from the page.
    audit_stream_export_limit: int = 10_000
    # Bearer token for /metrics and /api/health's details (empty: /metrics is a 404 for all).
    metrics_token: str = ""
    # Workers' Prometheus exposition port (0: none).
    worker_metrics_port: int = 0
    # Encrypts TOTP secrets at rest (a Fernet key); derived from SECRET_KEY unless production.
    mfa_encryption_key: str = ""
    # Passkeys: the relying party's id (a domain) and the origin browsers report; both come
    # from PUBLIC_URL when unset.
    webauthn_rp_id: str = ""
    webauthn_origin: str = ""

    # -- derived --------------------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def embedded(self) -> bool:
        """True when no external broker is configured: work runs on an in-process StubBroker."""
        return self.broker_url is None

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def audit_key(self) -> bytes:
        """The checkpoint signing key: AUDIT_SIGNING_KEY, else one derived from SECRET_KEY."""
        if self.audit_signing_key:
            return self.audit_signing_key.encode()
        return hmac.new(self.secret_key.encode(), b"audit-checkpoints", hashlib.sha256).digest()

    @property
    def mfa_key(self) -> bytes:
        """The Fernet key for TOTP secrets: MFA_ENCRYPTION_KEY, else (never in production) one
        derived from SECRET_KEY, as the audit signing key is."""
        if self.mfa_encryption_key:
            return self.mfa_encryption_key.encode()
        derived = hmac.new(self.secret_key.encode(), b"mfa-secrets", hashlib.sha256).digest()
        return base64.urlsafe_b64encode(derived)

    @property
    def link_token_key(self) -> bytes:
        """The key an event's e-mail link token is derived with (core.identity.tokens)."""
        return hmac.new(self.secret_key.encode(), b"link-tokens", hashlib.sha256).digest()

    @property
    def rp_id(self) -> str:
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "localhost")

    @property
    def rp_origin(self) -> str:
        if self.webauthn_origin:
            return self.webauthn_origin
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        app_env = env.get("APP_ENV", "development").strip().lower() or "development"
        if app_env not in ENVIRONMENTS:
            raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}; got {app_env!r}")
        production = app_env == "production"
        instance_path = Path(env.get("INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()

        raw_db = (env.get("DATABASE_URL") or "").strip()
        database_url = normalise_database_url(raw_db) if raw_db else _sqlite_url(instance_path)
        if not database_url.startswith(("sqlite", "postgresql")):
            scheme = urlsplit(database_url).scheme or "no"
            raise ConfigError(
                f"DATABASE_URL must be a postgresql:// or sqlite:// URL; got {scheme} scheme"
            )
        redis_url = _url("REDIS_URL", env.get("REDIS_URL"), ("redis", "rediss", "unix"))
        broker_url = _url("BROKER_URL", env.get("BROKER_URL"), ("redis", "rediss", "amqp", "amqps"))
        broker_url = broker_url or redis_url
        smtp_url = _url("SMTP_URL", env.get("SMTP_URL"), ("smtp", "smtps"))

        secret_key = (env.get("SECRET_KEY") or "").strip()
        if production:
            _require_production_backends(database_url, redis_url, secret_key)
        elif not secret_key:
            secret_key = _development_secret(instance_path)

        default_format = "json" if production else "text"
        log_format = (env.get("LOG_FORMAT") or default_format).strip().lower()
        if log_format not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be json or text; got {log_format!r}")

        webhook_url = _url("WEBHOOK_URL", env.get("WEBHOOK_URL"), ("http", "https"))
        webhook_secret = (env.get("WEBHOOK_SECRET") or "").strip()
        if webhook_url and len(webhook_secret) < 16:
            raise ConfigError("WEBHOOK_URL is set, so WEBHOOK_SECRET (16+ characters) is needed "
                              "to sign deliveries")
        raw_events = env.get("WEBHOOK_EVENTS")
        webhook_events = (frozenset(e.strip().upper() for e in raw_events.split(",") if e.strip())
                          if raw_events else DEFAULT_WEBHOOK_EVENTS)

        audit_sink_url = _url("AUDIT_SINK_URL", env.get("AUDIT_SINK_URL"),
                              ("https", "http", "syslog+tls"))
        audit_sink_secret = (env.get("AUDIT_SINK_SECRET") or "").strip()
        if audit_sink_url and audit_sink_url.startswith("http") and len(audit_sink_secret) < 16:
            raise ConfigError("AUDIT_SINK_URL is https://, so AUDIT_SINK_SECRET (16+ characters) "
                              "is needed to sign its batches")
        storage_url = _url("STORAGE_URL", env.get("STORAGE_URL"), ("s3", "file"))
        mfa_encryption_key = (env.get("MFA_ENCRYPTION_KEY") or "").strip()
        if mfa_encryption_key or production:
            _check_fernet_key(mfa_encryption_key)

        return cls(
            app_env=app_env,
            instance_path=instance_path,
            database_url=database_url,
            redis_url=redis_url,
            broker_url=broker_url,
            smtp_url=smtp_url,
            secret_key=secret_key,
            public_url=(env.get("PUBLIC_URL") or cls.public_url).rstrip("/"),
            mail_from=env.get("MAIL_FROM") or cls.mail_from,
            trusted_proxies=_int("TRUSTED_PROXIES", env.get("TRUSTED_PROXIES", "0")),
            force_https=_bool("FORCE_HTTPS", env.get("FORCE_HTTPS", str(production))),
            log_format=log_format,
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            rate_limit_anonymous=env.get("RATE_LIMIT_ANONYMOUS") or cls.rate_limit_anonymous,
            rate_limit_authenticated=env.get("RATE_LIMIT_AUTHENTICATED")
            or cls.rate_limit_authenticated,
            rate_limit_auth_endpoints=env.get("RATE_LIMIT_AUTH_ENDPOINTS")
            or cls.rate_limit_auth_endpoints,
            health_timeout_seconds=_int("HEALTH_TIMEOUT_MS", env.get("HEALTH_TIMEOUT_MS", "2000"),
                                        minimum=50) / 1000,
            database_statement_timeout_ms=_int(
                "DATABASE_STATEMENT_TIMEOUT_MS", env.get("DATABASE_STATEMENT_TIMEOUT_MS", "5000")
            ),
            worker_statement_timeout_ms=_int(
                "WORKER_STATEMENT_TIMEOUT_MS", env.get("WORKER_STATEMENT_TIMEOUT_MS", "60000")
            ),
            embedded_worker_threads=_int(
                "WORKER_THREADS", env.get("WORKER_THREADS", "4"), minimum=1
            ),
            scheduler_lock_ttl_seconds=_int(
                "SCHEDULER_LOCK_TTL", env.get("SCHEDULER_LOCK_TTL", "15"), minimum=1
            ),
            metrics_rollup_seconds=_int(
                "METRICS_ROLLUP_SECONDS", env.get("METRICS_ROLLUP_SECONDS", "300"), minimum=1
            ),
            broker_heartbeat_timeout_ms=_int(
                "BROKER_HEARTBEAT_TIMEOUT_MS", env.get("BROKER_HEARTBEAT_TIMEOUT_MS", "60000"),
                minimum=1000,
            ),
            broker_maintenance_chance=_int(
                "BROKER_MAINTENANCE_CHANCE", env.get("BROKER_MAINTENANCE_CHANCE", "1000"),
                minimum=1,
            ),
            notification_streams=_int("NOTIFICATION_STREAMS",
                                      env.get("NOTIFICATION_STREAMS", "4"), minimum=1),
            notification_streams_per_account=_int(
                "NOTIFICATION_STREAMS_PER_ACCOUNT",
                env.get("NOTIFICATION_STREAMS_PER_ACCOUNT", "2"), minimum=1),
            session_idle_minutes=_int("SESSION_IDLE_MINUTES",
                                      env.get("SESSION_IDLE_MINUTES", "30"), minimum=1),
            session_absolute_hours=_int("SESSION_ABSOLUTE_HOURS",
                                        env.get("SESSION_ABSOLUTE_HOURS", "12"), minimum=1),
            login_max_failures=_int("LOGIN_MAX_FAILURES", env.get("LOGIN_MAX_FAILURES", "5"),
                                    minimum=1),
            login_failure_window_minutes=_int(
                "LOGIN_FAILURE_WINDOW_MINUTES", env.get("LOGIN_FAILURE_WINDOW_MINUTES", "15"),
                minimum=1,
            ),
            lockout_minutes=_int("LOCKOUT_MINUTES", env.get("LOCKOUT_MINUTES", "15"), minimum=1),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_allow_private=_bool("WEBHOOK_ALLOW_PRIVATE",
                                        env.get("WEBHOOK_ALLOW_PRIVATE", "false")),
            webhook_events=webhook_events,
            storage_url=storage_url,
            audit_signing_key=(env.get("AUDIT_SIGNING_KEY") or "").strip(),
            audit_retention_months=_int("AUDIT_RETENTION_MONTHS",
                                        env.get("AUDIT_RETENTION_MONTHS", "72"), minimum=12),
            audit_sink_url=audit_sink_url,
            audit_sink_secret=audit_sink_secret,
            audit_sink_ca_file=(env.get("AUDIT_SINK_CA_FILE") or "").strip() or None,
            audit_stream_export_limit=_int("AUDIT_STREAM_EXPORT_LIMIT",
                                           env.get("AUDIT_STREAM_EXPORT_LIMIT", "10000"),
                                           minimum=1),
            metrics_token=(env.get("METRICS_TOKEN") or "").strip(),
            worker_metrics_port=_int("WORKER_METRICS_PORT", env.get("WORKER_METRICS_PORT", "0")),
            mfa_encryption_key=mfa_encryption_key,
            webauthn_rp_id=(env.get("WEBAUTHN_RP_ID") or "").strip(),
            webauthn_origin=(env.get("WEBAUTHN_ORIGIN") or "").strip().rstrip("/"),
        )


def _sqlite_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'platform.db'}"


def _require_production_backends(database_url: str, redis_url: str | None, secret: str) -> None:
    if database_url.startswith("sqlite"):
        raise ConfigError("APP_ENV=production needs DATABASE_URL set to PostgreSQL, not SQLite")
    if redis_url is None:
        raise ConfigError("APP_ENV=production needs REDIS_URL (rate limits, cache and broker)")
    if not secret:
        raise ConfigError("APP_ENV=production needs SECRET_KEY (e.g. python -c "
                          "'import secrets; print(secrets.token_urlsafe(48))')")
    if len(secret) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters in production")


def _check_fernet_key(key: str) -> None:
    """Production needs MFA_ENCRYPTION_KEY (a lost or changed key makes every enrolled
    authenticator app unusable, so it is never derived there); any key given must be one."""
    hint = ("MFA_ENCRYPTION_KEY must be a Fernet key (python -c 'from cryptography.fernet "
            "import Fernet; print(Fernet.generate_key().decode())')")
    if not key:
        raise ConfigError(f"APP_ENV=production needs MFA_ENCRYPTION_KEY. {hint}")
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(hint)


def _development_secret(instance_path: Path) -> str:
    """Generate once and keep under instance/, so sessions survive a restart in development."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    # Write a private temp file, then link it into place: link() fails if another process won
    # the race, and then both use the winner's key. Readers never see a half-written file.
    tmp = instance_path / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()

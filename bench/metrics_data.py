"""A platform-sized database for the metrics entries (`FULL`): 1,000 practices, 1,000,000
accounts with their identities and onboarding, 200,000 invitations and 5,000,000 events over two
years; and the same platform a hundred times smaller (`SMALL`: 10 practices, 10,000 accounts,
50,000 events), against which reads are compared.

Each is loaded once with COPY into its own database (`bench_metrics`, `bench_metrics_10k`) and
kept: a later run finds the seed marker and reuses it (migrations are applied on top).
`python -m bench --reload-data`, or `dropdb -h 127.0.0.1 -U postgres bench_metrics`, loads it
afresh (about five minutes here for FULL, seconds for SMALL).

Everything is generated from a fixed seed, relative to the time of loading (`reference_at`): the
entries run the rollup as if it were that moment, so a database loaded weeks ago measures the
same as a fresh one.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from bench import backends

SEED_VERSION = "metrics-seed-3"


@dataclass(frozen=True)
class Scale:
    database: str
    practices: int
    events: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.database}"

    @property
    def app_url(self) -> str:
        return (f"postgresql+psycopg://{backends.APP_ROLE}:{backends.APP_ROLE}@127.0.0.1:5432/"
                f"{self.database}")


FULL = Scale("bench_metrics", practices=1_000, events=5_000_000)
SMALL = Scale("bench_metrics_10k", practices=10, events=50_000)
PEOPLE_PER_PRACTICE = 1_000  # one therapist and 999 clients
ADMINS = 3
INVITATIONS_PER_PRACTICE = 200
HISTORY = timedelta(days=730)
# Onboarding stage events are kept for the recent completions only (older ones were pruned).
STAGE_EVENTS_FOR = timedelta(days=120)
# Sign-ins: one in RECENT_SIGN_INS within the last SIGN_IN_RECENCY, the rest spread evenly over
# each account's life before that (about 3,000 a day lately, 1,700 a day before).
RECENT_SIGN_INS = 0.07
SIGN_IN_RECENCY = timedelta(days=30)
LOAD_ORDER = ("tenants", "identities", "accounts", "onboarding_progress", "invitations",
              "events", "dead_letters")


# (occurred_at, type, tenant_id, actor_account_id, payload)
RecordedEvent = tuple[float, str, "uuid.UUID | None", "uuid.UUID | None", dict[str, str]]


@dataclass
class Person:
    id: uuid.UUID
    tenant: uuid.UUID | None
    role: str
    created: float  # epoch seconds


def ensure_loaded(scale: Scale, *, reload: bool, progress: Callable[[str], None]) -> datetime:
    """The reference time of the loaded data, loading it first if needed."""
    if not reload:
        reference = _loaded_reference(scale)
        if reference is not None:
            if _migrate(scale):
                _vacuum(scale)  # what autovacuum would do after a migration rewrote rows
            return reference
    progress(f"loading {scale.database} ({scale.practices * PEOPLE_PER_PRACTICE:,} accounts, "
             f"{scale.events:,} events) with COPY; kept for later runs")
    started = time.monotonic()
    _create_database(scale)
    _migrate(scale)
    reference = datetime.now(UTC).replace(second=0, microsecond=0)
    _load(scale, reference)
    progress(f"{scale.database} loaded in {time.monotonic() - started:.0f} s")
    return reference


def _loaded_reference(scale: Scale) -> datetime | None:
    try:
        with psycopg.connect(scale.admin_url, connect_timeout=3) as connection:
            row = connection.execute(
                "SELECT reference_at FROM bench_seed WHERE version = %s", (SEED_VERSION,)
            ).fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def _create_database(scale: Scale) -> None:
    role, name = sql.Identifier(backends.APP_ROLE), sql.Identifier(scale.database)
    with psycopg.connect(backends.PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        backends.ensure_role(connection, backends.APP_ROLE)
        connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))
    with psycopg.connect(scale.admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))


def _migrate(scale: Scale) -> bool:
    """The schema as production has it: the migrations, run as the application's role. Whether
    any was applied."""
    from alembic import command
    from alembic.config import Config

    from bench.servers import ROOT

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = scale.app_url
    config.attributes["configure_logging"] = False
    before = _revision(scale)
    command.upgrade(config, "head")
    return _revision(scale) != before


def _revision(scale: Scale) -> str | None:
    with psycopg.connect(scale.admin_url) as connection:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def _vacuum(scale: Scale) -> None:
    with psycopg.connect(scale.admin_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _load(scale: Scale, reference: datetime) -> None:
    generator = Generator(scale, reference)
    # As a superuser: COPY is refused on tables with row-level security otherwise; triggers
    # (the foreign keys' checks) are skipped, the data is consistent by construction.
    with psycopg.connect(scale.admin_url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute("SET maintenance_work_mem = '512MB'")
        indexes = _drop_secondary_indexes(connection)
        for table in LOAD_ORDER:
            connection.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(table)))
            columns, rows = generator.table(table)
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
            with connection.cursor().copy(statement) as copy:
                for chunk in _chunks(rows):
                    copy.write(chunk)
        # The accounts' last sign-in, from the events just loaded (as migration 0013 fills it).
        connection.execute(
            "UPDATE accounts SET last_signed_in_at = latest.at FROM (SELECT actor_account_id, "
            "max(occurred_at) AS at FROM events WHERE type IN ('USER_LOGIN', 'ROLE_SWITCHED') "
            "GROUP BY actor_account_id) AS latest WHERE accounts.id = latest.actor_account_id")
        for definition in indexes:
            connection.execute(definition)
        for table in LOAD_ORDER:
            connection.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        connection.execute("CREATE TABLE IF NOT EXISTS bench_seed (version text PRIMARY KEY, "
                           "reference_at timestamptz NOT NULL, loaded_at timestamptz NOT NULL)")
        connection.execute("DELETE FROM bench_seed")
        connection.execute("INSERT INTO bench_seed VALUES (%s, %s, now())",
                           (SEED_VERSION, reference))


def _drop_secondary_indexes(connection: psycopg.Connection) -> list[str]:
    """Drop every index but the primary keys and unique constraints of the loaded tables, and
    return their definitions: building an index once is far faster than growing it by COPY."""
    rows = connection.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i "
        "JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid "
        "WHERE i.schemaname = 'public' AND i.tablename = ANY(%s) AND NOT x.indisunique",
        (list(LOAD_ORDER),)).fetchall()
    for name, _definition in rows:
        connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [definition for _name, definition in rows]


def _chunks(rows: Iterator[str], size: int = 5_000) -> Iterator[bytes]:
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()


def _ts(epoch: float | None) -> str:
    if epoch is None:
        return r"\N"
    return datetime.fromtimestamp(epoch, UTC).isoformat(sep=" ")


def _line(*values: object) -> str:
    return "\t".join(r"\N" if v is None else str(v) for v in values) + "\n"


class Generator:
    """Rows of each table as COPY text lines, from one seeded random source."""

    def __init__(self, scale: Scale, reference: datetime) -> None:
        self.scale = scale
        self.random = random.Random(20261129)
        self.now = reference.timestamp()
        self.start = self.now - HISTORY.total_seconds()
        self._ids = 0
        self.tenants: list[tuple[uuid.UUID, float, bool]] = []
        self.people: list[Person] = []
        self.progress: list[tuple[Person, float, float | None]] = []
        self.invitations: list[tuple[uuid.UUID, uuid.UUID, float, float | None]] = []

    def new_id(self) -> uuid.UUID:
        # Ascending ids: each primary key grows at its end, as with time-ordered ids.
        self._ids += 1
        return uuid.UUID(int=(0x5EED << 112) | self._ids)

    def table(self, name: str) -> tuple[tuple[str, ...], Iterator[str]]:
        return getattr(self, f"_{name}")()  # type: ignore[no-any-return]

    # -- practices and people ---------------------------------------------------------------
    def _tenants(self) -> tuple[tuple[str, ...], Iterator[str]]:
        for n in range(self.scale.practices):
            created = self.start + self.random.uniform(0, 60 * 86400)
            self.tenants.append((self.new_id(), created, n % 100 != 99))  # 1 % provisioning

        def rows() -> Iterator[str]:
            for n, (tenant_id, created, active) in enumerate(self.tenants):
                yield _line(tenant_id, f"bench-{n:04d}", f"Bench Practice {n}",
                            "active" if active else "provisioning", "standard", "{}",
                            _ts(created), _ts(created + 3600) if active else None)

        return ("id", "slug", "name", "status", "plan", "settings", "created_at",
                "activated_at"), rows()

    def _identities(self) -> tuple[tuple[str, ...], Iterator[str]]:
        joined: list[tuple[float, uuid.UUID | None, str]] = []
        for tenant_id, created, _active in self.tenants:
            joined.append((created, tenant_id, "therapist"))
            joined += [(created + (self.now - created) * self.random.random(), tenant_id,
                        "client") for _ in range(PEOPLE_PER_PRACTICE - 1)]
        joined += [(self.start, None, "admin")] * ADMINS
        # In the order they signed up, as the rows of a live table lie.
        joined.sort(key=lambda person: person[0])
        self.people = [Person(self.new_id(), tenant, role, created)
                       for created, tenant, role in joined]

        def rows() -> Iterator[str]:
            for n, person in enumerate(self.people):
                yield _line(person.id, f"p{n}@bench.example", None, _ts(person.created), 0, 0,
                            _ts(person.created))

        return ("id", "email", "password_hash", "email_verified_at", "failed_logins",
                "lockouts", "created_at"), rows()

    def _accounts(self) -> tuple[tuple[str, ...], Iterator[str]]:
        def rows() -> Iterator[str]:
            for n, person in enumerate(self.people):
                seen = person.created + (self.now - person.created) * self.random.random()
                yield _line(person.id, person.id, person.role, person.tenant, f"Person {n}",
                            _ts(person.created), _ts(seen))

        return ("id", "identity_id", "role", "tenant_id", "display_name", "created_at",
                "last_seen_at"), rows()

    def _onboarding_progress(self) -> tuple[tuple[str, ...], Iterator[str]]:
        def rows() -> Iterator[str]:
            for person in self.people:
                if person.role == "admin":
                    continue
                completed = None
                if self.random.random() < 0.9:  # nine in ten finish, most within days
                    took = max(60.0, self.random.expovariate(1 / (2 * 86400)))
                    completed = person.created + took if person.created + took < self.now \
                        else None
                self.progress.append((person, person.created, completed))
                stage = "COMPLETED" if completed else self.random.choice(
                    ["STARTED", "PERSONAL_INFO", "TERMS"])
                data = json.dumps({"PERSONAL_INFO": {
                    "full_name": "A Bench Person", "time_zone": "Europe/London",
                    "preferred_language": "en", "phone": "+44 20 7946 0000"}})
                yield _line(self.new_id(), person.id, person.tenant, person.role, stage, data, 5,
                            _ts(person.created), _ts(completed or person.created + 600),
                            _ts(completed), "2026-01" if completed else None, 0)

        return ("id", "account_id", "tenant_id", "role", "stage", "data", "version",
                "started_at", "updated_at", "completed_at", "terms_version",
                "reminders_sent"), rows()

    def _invitations(self) -> tuple[tuple[str, ...], Iterator[str]]:
        therapists = {p.tenant: p for p in self.people if p.role == "therapist"}
        sent: list[tuple[float, int]] = []
        for tenant_index, (_tenant_id, created, _active) in enumerate(self.tenants):
            sent += [(created + (self.now - created) * self.random.random(), tenant_index)
                     for _ in range(INVITATIONS_PER_PRACTICE)]
        sent.sort()

        def rows() -> Iterator[str]:
            for n, (at, tenant_index) in enumerate(sent):
                tenant_id = self.tenants[tenant_index][0]
                accepted: float | None = at + self.random.uniform(0, 7 * 86400)
                if self.random.random() > 0.6 or accepted > self.now:
                    accepted = None
                invitation = self.new_id()
                self.invitations.append((invitation, tenant_id, at, accepted))
                yield _line(invitation, tenant_id, f"i{n}@bench.example",
                            therapists[tenant_id].id, None, _ts(at), _ts(at + 7 * 86400),
                            _ts(accepted), None, None)

        return ("id", "tenant_id", "email", "invited_by_account_id", "token_hash", "created_at",
                "expires_at", "accepted_at", "accepted_account_id", "revoked_at"), rows()

    # -- events ----------------------------------------------------------------------------
    def _events(self) -> tuple[tuple[str, ...], Iterator[str]]:
        recorded = list(self._recorded())
        members = [p for p in self.people if p.role != "admin"]
        recent = self.now - SIGN_IN_RECENCY.total_seconds()
        for _ in range(self.scale.events - len(recorded)):
            person = self.random.choice(members)
            # A steady stream over the years, and a little more in the last month.
            if self.random.random() < RECENT_SIGN_INS or person.created > recent:
                at = max(recent, person.created) + self.random.random() * (
                    self.now - max(recent, person.created))
            else:
                at = person.created + self.random.random() * (recent - person.created)
            recorded.append((at, "USER_LOGIN", person.tenant, person.id,
                             {"role": person.role}))
        # In the order they happened: the outbox only ever grows at its end.
        recorded.sort(key=lambda event: event[0])

        def rows() -> Iterator[str]:
            for at, kind, tenant, actor, payload in recorded:
                yield _line(self.new_id(), kind, tenant, actor, f"account:{actor}",
                            json.dumps(payload), _ts(at), _ts(at + 1), _ts(at + 2), 0)

        return ("id", "type", "tenant_id", "actor_account_id", "subject", "payload",
                "occurred_at", "dispatched_at", "audited_at", "attempts"), rows()

    def _recorded(self) -> Iterator[RecordedEvent]:
        for person in self.people:
            yield (person.created, "USER_CREATED", person.tenant, person.id,
                   {"role": person.role, "via": "bench"})
        recent = self.now - STAGE_EVENTS_FOR.total_seconds()
        for person, started, completed in self.progress:
            role = {"role": person.role}
            yield started, "ONBOARDING_STARTED", person.tenant, person.id, role
            if completed is None:
                continue
            if completed > recent:
                stages = ["STARTED", "PERSONAL_INFO", *(["PROFESSIONAL_INFO"]
                          if person.role == "therapist" else []), "TERMS"]
                for step, stage in enumerate(stages, start=1):
                    at = started + (completed - started) * step / len(stages)
                    yield (at, "ONBOARDING_STAGE_COMPLETED", person.tenant, person.id,
                           {**role, "stage": stage})
            yield completed, "ONBOARDING_COMPLETED", person.tenant, person.id, role
        for invitation, tenant_id, sent, accepted in self.invitations:
            payload = {"invitation_id": str(invitation)}
            yield sent, "INVITATION_SENT", tenant_id, None, payload
            if accepted is not None:
                yield accepted, "INVITATION_ACCEPTED", tenant_id, None, payload

    def _dead_letters(self) -> tuple[tuple[str, ...], Iterator[str]]:
        def rows() -> Iterator[str]:
            for n in range(20):
                failed = self.now - self.random.uniform(0, 30 * 86400)
                yield _line(f"bench-dead-{n}", "email", "send_test_email", None, "SMTP down", 11,
                            json.dumps({"queue_name": "email"}), _ts(failed))

        return ("message_id", "queue", "actor", "event_id", "error", "attempts", "message",
                "failed_at"), rows()

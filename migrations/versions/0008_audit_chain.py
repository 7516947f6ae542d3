"""The audit log an auditor would trust: hash chains, append-only, monthly partitions.

* `audit_entries` gains a chain (per practice, one for the platform): sequence number, previous
  hash, hash, and a salted digest of its personal fields (core/audit/chain.py). Existing entries
  are chained in the order they were written.
* Append-only: triggers refuse UPDATE, DELETE and TRUNCATE for every role, the table's owner
  included; on PostgreSQL the owner also gives up those privileges (INSERT and SELECT remain).
  Entries leave only through the retention routine: on PostgreSQL `audit_drop_partition`, a
  SECURITY DEFINER function that drops a month only once it is past retention and archived; on
  SQLite a permit row that its DELETE trigger looks for.
* PostgreSQL: partitioned by month of `created_at`; `audit_ensure_partition` creates a month
  (callable by the application; the scheduler keeps three months ahead). Partitions are reached
  only through the parent: nobody but a superuser may touch one directly.

Revision ID: 0008_audit_chain
Revises: 0006_plans
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import INET

from core.db import JSONType, UTCDateTime

revision: str = "0008_audit_chain"
down_revision: str | None = "0006_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HASH = sa.LargeBinary(32)
APPEND_ONLY = ("audit_entries", "audit_checkpoints")
MONTHS_AHEAD = 3

POLICY = """
    CREATE POLICY tenant_isolation ON {table}
    USING (
        current_setting('app.all_tenants', true) = 'on'
        OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
    )
    WITH CHECK (
        current_setting('app.all_tenants', true) = 'on'
        OR tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
    )
"""

PG_ENTRIES = """
CREATE TABLE audit_entries (
    id bigint NOT NULL DEFAULT nextval('audit_entries_id_seq'),
    chain_id uuid NOT NULL,
    seq bigint NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    event_id uuid NOT NULL,
    type varchar(64) NOT NULL,
    outcome varchar(16) NOT NULL,
    tenant_id uuid,
    request_id varchar(64),
    metadata jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    personal_digest bytea NOT NULL,
    actor_account_id uuid,
    subject varchar(120),
    ip inet,
    user_agent varchar(400),
    personal_salt bytea,
    CONSTRAINT pk_audit_entries PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at)
"""

PG_FUNCTIONS = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries leave only through the retention routine (audit_drop_partition)';
END $$;

CREATE FUNCTION audit_ensure_partition(p_moment timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first_day timestamptz := date_trunc('month', p_moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'audit_entries_p' || to_char(p_moment AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_entries FOR VALUES FROM (%L) TO (%L)',
                       name, first_day, first_day + interval '1 month');
    EXCEPTION WHEN duplicate_table THEN
        RETURN name;  -- created a moment ago by another caller
    END;
    EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON %I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()', name);
    -- Only through the parent (whose privileges, triggers and row-level security apply).
    EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, %I', name, current_user);
    RETURN name;
END $$;

CREATE FUNCTION audit_drop_partition(p_month timestamptz, p_retention_months integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first_day timestamptz := date_trunc('month', p_month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'audit_entries_p' || to_char(p_month AT TIME ZONE 'UTC', 'YYYYMM');
    label text := to_char(p_month AT TIME ZONE 'UTC', 'YYYY-MM');
    archived bigint;
    present bigint;
BEGIN
    IF p_retention_months < 12 THEN
        RAISE EXCEPTION 'audit retention below 12 months is refused';
    END IF;
    IF first_day + interval '1 month' > now() - make_interval(months => p_retention_months) THEN
        RAISE EXCEPTION 'audit month % is within retention', label;
    END IF;
    SELECT rows INTO archived FROM audit_archives WHERE month = label;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit month % has not been archived', label;
    END IF;
    PERFORM set_config('app.all_tenants', 'on', true);
    SELECT count(*) INTO present FROM audit_entries
        WHERE created_at >= first_day AND created_at < first_day + interval '1 month';
    IF present <> archived THEN
        RAISE EXCEPTION 'audit month % holds % entries, its archive %', label, present, archived;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        EXECUTE format('DROP TABLE %I', name);
    END IF;
    RETURN present;
END $$;
REVOKE EXECUTE ON FUNCTION audit_drop_partition(timestamptz, integer) FROM PUBLIC;
"""

SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
       WHEN NOT EXISTS (SELECT 1 FROM audit_retention_permits p WHERE OLD.created_at < p.before)
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       WHEN NOT EXISTS (SELECT 1 FROM audit_retention_permits p WHERE OLD.created_at < p.before)
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END""",
)

INDEXES = (
    ("ix_audit_entries_created", ["created_at", "id"]),
    ("ix_audit_entries_tenant_created", ["tenant_id", "created_at", "id"]),
    ("ix_audit_entries_type_created", ["type", "created_at", "id"]),
    ("ix_audit_entries_actor_created", ["actor_account_id", "created_at", "id"]),
    ("ix_audit_entries_outcome_created", ["outcome", "created_at", "id"]),
    ("ix_audit_entries_subject_created", ["subject", "created_at"]),
    ("ix_audit_entries_ip", ["ip"]),
    ("ix_audit_entries_chain_seq", ["chain_id", "seq"]),
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    _side_tables()
    op.rename_table("audit_entries", "audit_entries_unchained")
    if _postgresql():
        for name in ("tenant_created", "actor_created", "type_created", "subject_created"):
            op.execute(f"ALTER INDEX ix_audit_entries_{name} RENAME TO ix_unchained_{name}")
        op.execute("ALTER TABLE audit_entries_unchained RENAME CONSTRAINT pk_audit_entries "
                   "TO pk_audit_entries_unchained")
        op.execute("ALTER SEQUENCE audit_entries_id_seq RENAME TO audit_entries_unchained_id_seq")
        op.execute("CREATE SEQUENCE audit_entries_id_seq AS bigint")
        op.execute(PG_ENTRIES)
        op.execute("ALTER SEQUENCE audit_entries_id_seq OWNED BY audit_entries.id")
        op.execute(PG_FUNCTIONS)
        _refuse_changes("audit_entries")  # before any partition: they inherit its triggers
        _create_partitions()
    else:
        for name in ("tenant_created", "actor_created", "type_created", "subject_created"):
            op.drop_index(f"ix_audit_entries_{name}", table_name="audit_entries_unchained")
        _sqlite_entries_table()
    for name, columns in INDEXES:
        op.create_index(name, "audit_entries", columns)
    _copy_and_chain()
    op.drop_table("audit_entries_unchained")
    _append_only()


def _side_tables() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("chain_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", HASH, nullable=False),
        sa.Column("last_created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_audit_chains")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("heads", JSONType, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_verifications",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("chains", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("problems", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_verifications")),
    )
    op.create_table(
        "audit_sink_cursors",
        sa.Column("chain_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_audit_sink_cursors")),
    )
    op.create_table(
        "audit_exports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by_account_id", sa.Uuid(), nullable=False),
        sa.Column("filters", JSONType, nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("file_key", sa.String(length=300), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_exports")),
    )
    op.create_table(
        "audit_archives",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("file_key", sa.String(length=300), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("exported_at", UTCDateTime(), nullable=False),
        sa.Column("dropped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_audit_archives")),
    )
    op.create_table(
        "audit_retention_permits",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("before", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_retention_permits")),
    )


def _sqlite_entries_table() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("personal_digest", HASH, nullable=False),
        sa.Column("actor_account_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=120), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("personal_salt", sa.LargeBinary(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )


def _month_starts(first: datetime, last: datetime) -> list[datetime]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _create_partitions() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("SELECT set_config('app.all_tenants', 'on', false)"))
    oldest = bind.execute(sa.text("SELECT min(created_at) FROM audit_entries_unchained")).scalar()
    now = datetime.now(UTC)
    ahead = datetime(now.year + (now.month + MONTHS_AHEAD - 1) // 12,
                     (now.month + MONTHS_AHEAD - 1) % 12 + 1, 1, tzinfo=UTC)
    for month in _month_starts(min(oldest or now, now), ahead):
        bind.execute(sa.text("SELECT audit_ensure_partition(:m)"), {"m": month})


def _copy_and_chain() -> None:
    """Chain the entries written before chains existed, in the order they were written."""
    from core.audit import chain

    bind = op.get_bind()
    uuid_, text, when = sa.Uuid(), sa.String(), UTCDateTime()
    common = (sa.column("event_id", uuid_), sa.column("type", text),
              sa.column("tenant_id", uuid_), sa.column("actor_account_id", uuid_),
              sa.column("subject", text), sa.column("ip", text), sa.column("user_agent", text),
              sa.column("request_id", text), sa.column("metadata", JSONType),
              sa.column("occurred_at", when), sa.column("created_at", when))
    old = sa.table("audit_entries_unchained", sa.column("id", sa.BigInteger()), *common)
    inet = sa.String().with_variant(INET(), "postgresql")
    entries = sa.table("audit_entries", sa.column("id", sa.BigInteger()),
                       *(sa.column(c.name, inet if c.name == "ip" else c.type) for c in common),
                       sa.column("chain_id", uuid_), sa.column("seq", sa.BigInteger()),
                       sa.column("prev_hash", HASH), sa.column("hash", HASH),
                       sa.column("outcome", text), sa.column("personal_digest", HASH),
                       sa.column("personal_salt", HASH))
    heads: dict[object, tuple[int, bytes, datetime]] = {}
    last_id = 0
    while True:
        rows = bind.execute(sa.select(old).where(old.c.id > last_id).order_by(old.c.id)
                            .limit(1000)).mappings().all()
        if not rows:
            break
        batch = []
        for row in rows:
            entry = dict(row)
            entry["ip"] = chain.normal_ip(entry["ip"])
            chain_id = chain.chain_of(entry["tenant_id"])
            seq, prev, last_created = heads.get(chain_id, (0, chain.GENESIS, entry["created_at"]))
            created_at = max(entry["created_at"], last_created)
            salt = chain.new_salt()
            entry.update(chain_id=chain_id, seq=seq + 1, prev_hash=prev, created_at=created_at,
                         outcome=chain.outcome_of(entry["type"]), personal_salt=salt,
                         personal_digest=chain.personal_digest(salt, entry))
            entry["hash"] = chain.entry_hash(entry)
            heads[chain_id] = (seq + 1, entry["hash"], created_at)
            batch.append(entry)
        bind.execute(entries.insert(), batch)
        last_id = rows[-1]["id"]
    if heads:
        chains = sa.table("audit_chains", sa.column("chain_id", uuid_),
                          sa.column("seq", sa.BigInteger()), sa.column("head_hash", HASH),
                          sa.column("last_created_at", when))
        bind.execute(chains.insert(), [
            {"chain_id": key, "seq": seq, "head_hash": head, "last_created_at": last}
            for key, (seq, head, last) in heads.items()])
    if _postgresql() and last_id:
        bind.execute(sa.text("SELECT setval('audit_entries_id_seq', :n)"), {"n": last_id})


def _append_only() -> None:
    if not _postgresql():
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
        return
    op.execute("ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY")
    op.execute(POLICY.format(table="audit_entries"))
    _refuse_changes("audit_checkpoints")
    for table in APPEND_ONLY:
        # The owner (the role migrations run as, often the application's) keeps INSERT and
        # SELECT only; granting itself more back would be a deliberate, visible act.
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC, CURRENT_USER")


def _refuse_changes(table: str) -> None:
    op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
               "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()")
    op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()")


def downgrade() -> None:
    postgresql = _postgresql()
    if postgresql:
        for table in APPEND_ONLY:
            op.execute(f"GRANT UPDATE, DELETE, TRUNCATE ON {table} TO CURRENT_USER")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    else:
        for name in ("audit_entries_no_update", "audit_entries_no_delete",
                     "audit_checkpoints_no_update", "audit_checkpoints_no_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.create_table(
        "audit_entries_unchained",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("actor_account_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=120), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries_unchained" if postgresql
                                else "pk_audit_entries"),
        sa.UniqueConstraint("event_id", name="uq_audit_entries_event_id"),
    )
    if postgresql:
        op.execute("SELECT set_config('app.all_tenants', 'on', false)")
    ip = "host(ip)" if postgresql else "ip"
    copy_back = ("INSERT INTO audit_entries_unchained (id, event_id, type, tenant_id, "
                 "actor_account_id, subject, ip, user_agent, request_id, metadata, occurred_at, "
                 "created_at) SELECT id, event_id, type, tenant_id, actor_account_id, subject, "
                 "IP, user_agent, request_id, metadata, occurred_at, created_at FROM audit_entries")
    op.execute(copy_back.replace("IP", ip))
    op.drop_table("audit_entries")
    if postgresql:
        op.execute("DROP FUNCTION audit_drop_partition(timestamptz, integer)")
        op.execute("DROP FUNCTION audit_ensure_partition(timestamptz)")
        op.execute("DROP FUNCTION audit_refuse_change()")
    op.rename_table("audit_entries_unchained", "audit_entries")
    if postgresql:
        op.execute("ALTER TABLE audit_entries RENAME CONSTRAINT pk_audit_entries_unchained "
                   "TO pk_audit_entries")
        op.execute("SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), "
                   "coalesce(max(id), 0) + 1, false) FROM audit_entries")
        op.execute("ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY")
        op.execute(POLICY.format(table="audit_entries"))
    op.create_index("ix_audit_entries_tenant_created", "audit_entries", ["tenant_id", "created_at"])
    op.create_index("ix_audit_entries_actor_created", "audit_entries",
                    ["actor_account_id", "created_at"])
    op.create_index("ix_audit_entries_type_created", "audit_entries", ["type", "created_at"])
    op.create_index("ix_audit_entries_subject_created", "audit_entries", ["subject", "created_at"])
    for table in ("audit_retention_permits", "audit_archives", "audit_exports",
                  "audit_sink_cursors", "audit_verifications", "audit_checkpoints",
                  "audit_chains"):
        op.drop_table(table)

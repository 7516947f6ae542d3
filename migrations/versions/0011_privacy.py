"""A person's data: export and erasure requests, legal holds, restricted records, and the one
controlled way to pseudonymise audit entries.

* `privacy_requests` (a person's, not a practice's) and `privacy_request_practices` (which
  practices a request concerns; tenant-owned, so an owner sees their clients' requests).
* `legal_holds` and `restricted_records`: tenant-owned, with row-level security.
* The audit log stays append-only, with one exception: pseudonymising a person's entries.
  PostgreSQL: `audit_pseudonymise`, a SECURITY DEFINER function, is the only path; the
  append-only trigger lets an UPDATE through only while that function runs, only when no
  chained column changes and only when the personal salt goes (so the digest can never again be
  taken as proof of the new values). SQLite: the same rule in the UPDATE trigger, opened by a
  permit row the erasure inserts and removes in its transaction.

Revision ID: 0011_privacy
Revises: 0008_audit_chain
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import JSONType, UTCDateTime

revision: str = "0011_privacy"
down_revision: str | None = "0010_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("privacy_request_practices", "legal_holds", "restricted_records")
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
# The columns an entry's hash covers (core/audit/chain.py): none may change, ever.
CHAINED = ("id", "chain_id", "seq", "prev_hash", "hash", "event_id", "type", "outcome",
           "tenant_id", "request_id", "occurred_at", "created_at", "personal_digest")
# core.audit.chain.PERSONAL_KEYS: the metadata keys outside the chained encoding.
PERSONAL_KEYS = ("to", "email", "personal")
PERSONAL_COLUMNS = ("actor_account_id", "subject", "ip", "user_agent", "metadata",
                    "personal_salt")

_UNCHANGED = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CHAINED)
_KEYS = ", ".join(f"'{k}'" for k in PERSONAL_KEYS)

PG_REFUSE_CHANGE = f"""
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME LIKE 'audit_entries%' THEN
        IF current_setting('app.audit_pseudonymising', true) = 'on'
           AND NEW.personal_salt IS NULL AND {_UNCHANGED}
           AND (NEW.metadata - ARRAY[{_KEYS}]) = (OLD.metadata - ARRAY[{_KEYS}]) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries leave only through the retention routine (audit_drop_partition)';
END $$;
"""

PG_PSEUDONYMISE = f"""
CREATE FUNCTION audit_pseudonymise(p_accounts uuid[], p_subjects text[], p_pseudonym uuid,
                                   p_addresses text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    all_tenants text := coalesce(current_setting('app.all_tenants', true), '');
    changed bigint;
BEGIN
    IF p_pseudonym IS NULL THEN
        RAISE EXCEPTION 'a pseudonym is required';
    END IF;
    PERFORM set_config('app.all_tenants', 'on', true);
    PERFORM set_config('app.audit_pseudonymising', 'on', true);
    -- The actor's own traces (theirs, or an anonymous one about them) lose the IP's host part
    -- and the user agent; an entry about them by someone else keeps that someone's.
    UPDATE audit_entries SET
        actor_account_id = CASE WHEN actor_account_id = ANY(p_accounts) THEN p_pseudonym
                                ELSE actor_account_id END,
        subject = CASE WHEN subject = ANY(p_subjects) THEN 'pseudonym:' || p_pseudonym
                       ELSE subject END,
        ip = CASE WHEN ip IS NOT NULL AND (actor_account_id IS NULL
                                           OR actor_account_id = ANY(p_accounts))
                  THEN set_masklen(network(set_masklen(ip, CASE WHEN family(ip) = 4 THEN 24
                                                                ELSE 48 END)),
                                   CASE WHEN family(ip) = 4 THEN 32 ELSE 128 END)
                  ELSE ip END,
        user_agent = CASE WHEN actor_account_id IS NULL OR actor_account_id = ANY(p_accounts)
                          THEN NULL ELSE user_agent END,
        metadata = metadata - ARRAY[{_KEYS}],
        personal_salt = NULL
    WHERE actor_account_id = ANY(p_accounts) OR subject = ANY(p_subjects)
       -- someone else's entry whose personal metadata names them (an export filtered by
       -- their address): it loses that metadata (and its salt), nothing else
       OR EXISTS (SELECT 1 FROM unnest(p_addresses) AS address
                  WHERE strpos((metadata - (SELECT coalesce(array_agg(k), '{{}}')
                                            FROM jsonb_object_keys(metadata) AS k
                                            WHERE k <> ALL (ARRAY[{_KEYS}])))::text,
                               address) > 0);
    GET DIAGNOSTICS changed = ROW_COUNT;
    PERFORM set_config('app.audit_pseudonymising', 'off', true);
    PERFORM set_config('app.all_tenants', all_tenants, true);
    RETURN changed;
END $$;
REVOKE EXECUTE ON FUNCTION audit_pseudonymise(uuid[], text[], uuid, text[]) FROM PUBLIC;
"""  # noqa: S608 - built from this module's constants

_SQLITE_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CHAINED)
_SQLITE_PATHS = ", ".join(f"'$.{k}'" for k in PERSONAL_KEYS)
SQLITE_NO_UPDATE = f"""
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
WHEN NOT EXISTS (SELECT 1 FROM audit_pseudonymise_permits)
  OR NEW.personal_salt IS NOT NULL OR {_SQLITE_CHANGED}
  OR json_remove(NEW.metadata, {_SQLITE_PATHS}) IS NOT json_remove(OLD.metadata, {_SQLITE_PATHS})
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END
"""  # noqa: S608 - built from this module's constants
SQLITE_NO_UPDATE_BEFORE = """
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END
"""

PG_REFUSE_CHANGE_BEFORE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries leave only through the retention routine (audit_drop_partition)';
END $$;
"""


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("identity_id", sa.Uuid(), nullable=True),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("pseudonym", sa.Uuid(), nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("file_key", sa.String(length=300), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("link_expires_at", UTCDateTime(), nullable=True),
        sa.Column("downloaded_at", UTCDateTime(), nullable=True),
        sa.Column("kept_until", UTCDateTime(), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.CheckConstraint("kind IN ('export', 'erasure')",
                           name=op.f("ck_privacy_requests_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_identity_id", "privacy_requests", ["identity_id"])
    op.create_index("ix_privacy_requests_open", "privacy_requests",
                    ["kind", "status", "scheduled_for"])
    op.create_table(
        "privacy_request_practices",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["privacy_requests.id"], ondelete="CASCADE",
                                name=op.f("fk_privacy_request_practices_request_id_"
                                          "privacy_requests")),
        sa.PrimaryKeyConstraint("request_id", "tenant_id",
                                name=op.f("pk_privacy_request_practices")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_by_account_id", sa.Uuid(), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index("ix_legal_holds_tenant_id", "legal_holds", ["tenant_id"])
    op.create_table(
        "restricted_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("kept_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["privacy_requests.id"], ondelete="CASCADE",
                                name=op.f("fk_restricted_records_request_id_privacy_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restricted_records")),
    )
    op.create_index("ix_restricted_records_request_id", "restricted_records", ["request_id"])
    op.create_index("ix_restricted_records_tenant_id", "restricted_records", ["tenant_id"])
    op.create_table(
        "audit_pseudonymise_permits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pseudonymise_permits")),
    )
    if _postgresql():
        for table in TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(POLICY.format(table=table))
        op.execute(PG_REFUSE_CHANGE)
        op.execute(PG_PSEUDONYMISE)
        # The function runs as the schema owner, which gave up UPDATE in 0008: it takes back
        # the personal columns only (the trigger still decides which changes pass).
        op.execute(f"GRANT UPDATE ({', '.join(PERSONAL_COLUMNS)}) ON audit_entries "
                   "TO CURRENT_USER")
    else:
        op.execute("DROP TRIGGER audit_entries_no_update")
        op.execute(SQLITE_NO_UPDATE)


def downgrade() -> None:
    if _postgresql():
        op.execute(f"REVOKE UPDATE ({', '.join(PERSONAL_COLUMNS)}) ON audit_entries "
                   "FROM CURRENT_USER")
        op.execute("DROP FUNCTION audit_pseudonymise(uuid[], text[], uuid, text[])")
        op.execute(PG_REFUSE_CHANGE_BEFORE)
    else:
        op.execute("DROP TRIGGER audit_entries_no_update")
        op.execute(SQLITE_NO_UPDATE_BEFORE)
    op.drop_table("audit_pseudonymise_permits")
    op.drop_index("ix_restricted_records_tenant_id", table_name="restricted_records")
    op.drop_index("ix_restricted_records_request_id", table_name="restricted_records")
    op.drop_table("restricted_records")
    op.drop_index("ix_legal_holds_tenant_id", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_table("privacy_request_practices")
    op.drop_index("ix_privacy_requests_open", table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_identity_id", table_name="privacy_requests")
    op.drop_table("privacy_requests")

"""A second factor: authenticator apps (TOTP) and passkeys, recovery codes, sessions that know
how they were made.

`mfa_factors` and `mfa_recovery_codes` belong to a person (an identity), as `auth_sessions` and
`tokens` do: they carry no `tenant_id` and are reached only by identity id, so they get no
tenant policy (a person's factors serve every practice they belong to). TOTP secrets are
encrypted by the application (Fernet, MFA_ENCRYPTION_KEY); recovery codes are stored as SHA-256
digests only.

Revision ID: 0010_mfa
Revises: 0008_audit_chain
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import UTCDateTime

revision: str = "0010_mfa"
down_revision: str | None = "0009_health_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mfa_factors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identity_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.String(length=1400), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("passwordless", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('totp', 'passkey')", name=op.f("ck_mfa_factors_kind")),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"],
                                name=op.f("fk_mfa_factors_identity_id_identities"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_factors")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_mfa_factors_credential_id")),
    )
    op.create_index(op.f("ix_mfa_factors_identity_id"), "mfa_factors", ["identity_id"])
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identity_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"],
                                name=op.f("fk_mfa_recovery_codes_identity_id_identities"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_mfa_recovery_codes_code_hash")),
    )
    op.create_index(op.f("ix_mfa_recovery_codes_identity_id"), "mfa_recovery_codes",
                    ["identity_id"])
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("factors", sa.String(length=64), nullable=False,
                                   server_default="password"))
        batch.add_column(sa.Column("second_factor_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("gate", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("gate")
        batch.drop_column("second_factor_at")
        batch.drop_column("factors")
    op.drop_index(op.f("ix_mfa_recovery_codes_identity_id"), table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_index(op.f("ix_mfa_factors_identity_id"), table_name="mfa_factors")
    op.drop_table("mfa_factors")

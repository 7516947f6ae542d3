"""One identity (one e-mail, one password) owns at most one account per role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.caching import PRACTICE_HOMES, PROFILES, ROLES, SESSIONS, Invalidation, changed
from core.db import Base, new_id
from core.scoping import TenantOwned


class Role(StrEnum):
    CLIENT = "client"
    THERAPIST = "therapist"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return {"client": "Client", "therapist": "Therapist", "admin": "Platform admin"}[self.value]


class Identity(Base):
    """The person behind the accounts; its id is the auth user id."""

    __tablename__ = "identities"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Stored normalised (trimmed, lower-case), so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    email_verified_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    lockouts: Mapped[int] = mapped_column(default=0)
    last_account_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]

    def cached_under(self) -> Iterator[Invalidation]:
        if changed(self, "email", "email_verified_at"):
            yield PROFILES.key(self.id)


class Account(TenantOwned, Base):
    """A role account. Found by (identity id, role) and nothing else."""

    __tablename__ = "accounts"

    # The first account's id equals its identity's id; later accounts get their own.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    # Admin accounts belong to no tenant: they see all of them.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    display_name: Mapped[str] = mapped_column(sa.String(120))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    # The time of its last USER_LOGIN or ROLE_SWITCHED event (core.identity.login.record_sign_in):
    # the active-people figures count accounts by it.
    last_signed_in_at: Mapped[datetime | None]

    def cached_under(self) -> Iterator[Invalidation]:
        if changed(self, "role", "tenant_id", "display_name", "identity_id"):
            yield ROLES.key(self.identity_id)
            if self.tenant_id is not None:
                yield PRACTICE_HOMES.key(self.tenant_id)  # the practice's list of clients

    __table_args__ = (
        sa.UniqueConstraint("identity_id", "role"),
        sa.CheckConstraint("role IN ('client', 'therapist', 'admin')", name="role"),
        sa.CheckConstraint("(role = 'admin') = (tenant_id IS NULL)", name="admin_has_no_tenant"),
        sa.Index("ix_accounts_tenant_role", "tenant_id", "role"),
        sa.Index("ix_accounts_last_signed_in", "last_signed_in_at",
                 postgresql_include=["tenant_id", "role"]),
    )


class AuthSession(Base):
    """A logged-in browser. The cookie holds a random id; we keep only its hash."""

    __tablename__ = "auth_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))
    revoked_at: Mapped[datetime | None]
    # Why it ended: logout, rotated, revoked, password_changed …
    ended_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # How it was made ("password", "link", then " totp", " recovery" … once a second factor is
    # proven) and when a second factor was last proven (step-up: core.identity.stepup).
    factors: Mapped[str] = mapped_column(sa.String(64), default="password",
                                         server_default="password")
    second_factor_at: Mapped[datetime | None]
    # What the session must do before anything else: "challenge" (prove the second factor) or
    # "enrol" (a policy requires one and there is none yet); None once free (core.identity.mfa).
    gate: Mapped[str | None] = mapped_column(sa.String(16))

    def cached_under(self) -> Iterator[Invalidation]:
        yield SESSIONS.key(self.id_hash)


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    SET_PASSWORD = "set_password"  # noqa: S105 - a purpose, not a password
    CHANGE_EMAIL = "change_email"


class Token(Base):
    """A single-use link token (verification, reset). Only its SHA-256 is stored."""

    __tablename__ = "tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(sa.String(24))
    # The event that asked for it: a redelivered e-mail handler reuses nothing and adds nothing.
    source_event_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # A change of e-mail address: the address the link confirms.
    new_email: Mapped[str | None] = mapped_column(sa.String(254))


class Invitation(TenantOwned, Base):
    """A therapist's invitation for a client to join the practice."""

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(254))
    invited_by_account_id: Mapped[uuid.UUID]
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_account_id: Mapped[uuid.UUID | None]
    revoked_at: Mapped[datetime | None]
    # Each resend (or re-invitation of the same address) sends a new link and extends it.
    last_sent_at: Mapped[datetime | None]
    send_count: Mapped[int] = mapped_column(default=1, server_default="1")
    # The invitee, holding an expired link, asked the practice for a new one.
    renewal_requested_at: Mapped[datetime | None]

    __table_args__ = (
        # One open invitation per address and practice: inviting again resends that one.
        sa.Index("uq_invitations_open_email", "tenant_id", "email", unique=True,
                 postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
                 sqlite_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL")),
    )

    def cached_under(self) -> Iterator[Invalidation]:
        if self.tenant_id is not None:
            yield PRACTICE_HOMES.key(self.tenant_id)


class FactorKind(StrEnum):
    TOTP = "totp"
    PASSKEY = "passkey"


class MfaFactor(Base):
    """A second factor of an identity: an authenticator app (TOTP) or a passkey. Per person,
    like sessions and tokens: found by identity, never by practice."""

    __tablename__ = "mfa_factors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(64))
    # TOTP: the secret, encrypted with MFA_ENCRYPTION_KEY (Fernet); never stored in clear.
    secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    # TOTP: the last time step accepted; a code of that step or an earlier one is a replay.
    last_used_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Passkeys: the credential id (base64url), its public key and signature counter.
    credential_id: Mapped[str | None] = mapped_column(sa.String(1400), unique=True)
    public_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Passkeys: the person chose to log in with it alone, without their password.
    passwordless: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime]
    # Unconfirmed until the first code is accepted: only confirmed factors count.
    confirmed_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint("kind IN ('totp', 'passkey')", name="kind"),
    )


class RecoveryCode(Base):
    """A single-use recovery code; only the SHA-256 of the (high-entropy) code is stored."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    identity_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

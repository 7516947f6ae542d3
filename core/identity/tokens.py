"""Link tokens (256 bits, derived from the event an e-mail is for), stored only as SHA-256,
single use, with an expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.db import conflict_insert
from core.errors import NotFound
from core.identity.models import Token, TokenPurpose

_TOKENS: sa.Table = Token.__table__  # type: ignore[assignment]
LIFETIMES = {
    TokenPurpose.VERIFY_EMAIL: timedelta(hours=24),
    TokenPurpose.RESET_PASSWORD: timedelta(hours=1),
    TokenPurpose.SET_PASSWORD: timedelta(hours=24),
    TokenPurpose.CHANGE_EMAIL: timedelta(hours=24),
}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def derived(key: bytes, kind: str, event_id: uuid.UUID) -> str:
    """The raw token of the `kind` link in the e-mail event `event_id` asks for: the same on
    every attempt at that e-mail, another for any other event (see `for_event`)."""
    mac = hmac.new(key, f"{kind}:{event_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def for_event(session: Session, key: bytes, identity_id: uuid.UUID, purpose: TokenPurpose,
              event_id: uuid.UUID, *, new_email: str | None = None) -> str:
    """The token of the e-mail an event asks for, stored once, and its raw value.

    The handler commits the token before the e-mail goes (core.mail.for_events); a worker that
    dies after that runs the handler again, and the e-mail it sends then may be the second copy
    of one that went (same Message-ID, which mail clients fold into one). So the raw token is
    derived from the event with a server key, never drawn at random: every attempt sends the
    same link, and it is the stored one. (Should the key have changed in between, the stored
    hash follows the latest e-mail.)"""
    raw = derived(key, purpose.value, event_id)
    now = clock.now()
    row = {"token_hash": digest(raw), "identity_id": identity_id,
           "purpose": purpose.value, "source_event_id": event_id, "created_at": now,
           "expires_at": now + LIFETIMES[purpose], "new_email": new_email}
    statement = conflict_insert(session.get_bind().dialect.name, _TOKENS).values(row)
    session.execute(statement.on_conflict_do_update(
        index_elements=["source_event_id"],
        set_={"token_hash": statement.excluded.token_hash}))
    return raw


def redeem(session: Session, raw: str, purpose: TokenPurpose) -> Token | None:
    """Mark the token used and return it; None if unknown, used, expired or of another kind."""
    if not raw or len(raw) > 200:
        return None
    token = session.execute(
        sa.select(Token).where(Token.token_hash == digest(raw)).with_for_update()
    ).scalar_one_or_none()
    now = clock.now()
    if token is None or token.purpose != purpose or token.used_at is not None:
        return None
    if token.expires_at <= now:
        return None
    token.used_at = now
    return token


def peek(session: Session, raw: str, purpose: TokenPurpose) -> Token | None:
    """Like redeem, without using it up (to show the form the link leads to)."""
    if not raw or len(raw) > 200:
        return None
    token = session.execute(
        sa.select(Token).where(Token.token_hash == digest(raw))
    ).scalar_one_or_none()
    if token is None or token.purpose != purpose or token.used_at is not None:
        return None
    return token if token.expires_at > clock.now() else None


def usable(session: Session, raw: str, purpose: TokenPurpose, message: str) -> Token:
    """The token a link carries, if it can still be used; NotFound with `message` if not."""
    token = peek(session, raw, purpose)
    if token is None:
        raise NotFound(message)
    return token

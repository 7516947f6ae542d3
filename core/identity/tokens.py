"""Random link tokens (256 bits), stored only as SHA-256, single use, with an expiry."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core import clock
from core.errors import NotFound
from core.identity.models import Token, TokenPurpose

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


def issue(session: Session, identity_id: uuid.UUID, purpose: TokenPurpose,
          source_event_id: uuid.UUID | None = None, *, new_email: str | None = None) -> str:
    """Store a new token and return the raw value (it exists only in the e-mail from now on)."""
    raw = new_secret()
    now = clock.now()
    session.add(Token(token_hash=digest(raw), identity_id=identity_id, purpose=purpose,
                      source_event_id=source_event_id, created_at=now,
                      expires_at=now + LIFETIMES[purpose], new_email=new_email))
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

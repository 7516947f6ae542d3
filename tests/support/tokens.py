"""A link token as an e-mail would carry it, stored without the e-mail being sent (the platform
stores its tokens through `core.identity.tokens.for_event`, one per e-mail event)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from core import clock
from core.identity.models import Token, TokenPurpose
from core.identity.tokens import LIFETIMES, digest, new_secret


def issue_token(session: Session, identity_id: uuid.UUID, purpose: TokenPurpose, *,
          new_email: str | None = None) -> str:
    """Store a new token and return its raw value."""
    raw = new_secret()
    now = clock.now()
    session.add(Token(token_hash=digest(raw), identity_id=identity_id, purpose=purpose,
                      created_at=now, expires_at=now + LIFETIMES[purpose], new_email=new_email))
    return raw

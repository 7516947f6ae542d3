"""A platform admin resets the second factors of a person who lost theirs (after checking who
they are, outside the platform): every factor and recovery code goes, every session ends, the
person is told by e-mail (MFA_REMOVED, by admin), and a policy that applies to them leads them
to enrol again at their next log-in."""

from __future__ import annotations

import sqlalchemy as sa

from core.errors import Forbidden, ValidationFailed
from core.events.types import EventType
from core.identity import sessions
from core.identity.directory import identity_by_email
from core.identity.models import Account, Identity, MfaFactor, RecoveryCode, Role
from core.mail.addresses import InvalidAddress, normalise_address
from core.uow import UnitOfWork

UNKNOWN = "No login has that e-mail address."


def reset_factors(uow: UnitOfWork, admin: Account, email: str) -> Identity:
    if admin.role != Role.ADMIN:
        raise Forbidden("Only platform admins can reset a person's second factors.")
    try:
        address = normalise_address(email)
    except InvalidAddress:
        raise ValidationFailed({"email": UNKNOWN}) from None
    session = uow.session
    identity = identity_by_email(session, address)
    if identity is None:
        raise ValidationFailed({"email": UNKNOWN})
    removed = session.execute(sa.delete(MfaFactor).where(MfaFactor.identity_id == identity.id))
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.identity_id == identity.id))
    sessions.end_all(session, identity.id, "factors_reset")
    uow.record(EventType.MFA_REMOVED, actor_account_id=admin.id,
               subject=f"identity:{identity.id}",
               payload={"by": "admin", "count": removed.rowcount,  # type: ignore[attr-defined]
                        "last": True})
    return identity

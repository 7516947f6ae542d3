"""Becoming someone here: a therapist starting a practice, a client joining one, one more role
for a person who has an identity already, a platform admin made from the command line.

Answers never reveal whether an e-mail address has an identity: sign-up and join answer "check
your e-mail" either way, do the same work either way, and the e-mail tells the owner what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum

from sqlalchemy.orm import Session

from core import clock
from core.errors import Forbidden, NotFound
from core.events.types import EventType
from core.identity.directory import account_for, identity_by_email
from core.identity.models import Account, Identity, Role
from core.identity.passwords import hash_password
from core.identity.practice import accepts_join_code
from core.identity.validation import all_fields, email_address, new_password
from core.onboarding import service as onboarding
from core.onboarding.stages import Stage
from core.scoping import within_tenant
from core.tenancy.models import Tenant, TenantStatus
from core.tenancy.service import by_slug, create_tenant
from core.text import clean_name
from core.uow import UnitOfWork


class SignupOutcome(StrEnum):
    CREATED = "created"
    ALREADY_REGISTERED = "already-registered"


def signup_therapist(uow: UnitOfWork, *, practice_name: str, display_name: str, email: str,
                     password: str) -> SignupOutcome:
    """A new therapist and their practice (provisioning until onboarding completes)."""
    values = all_fields({
        "practice_name": lambda: clean_name(practice_name, "practice_name",
                                            "the practice's name"),
        "display_name": lambda: clean_name(display_name, "display_name", "your name"),
        "email": lambda: email_address(email),
        "password": lambda: new_password(password, email),
    })
    return _register_unless_known(
        uow, values, password, Role.THERAPIST, via="signup",
        practice=lambda: create_tenant(uow, values["practice_name"]))


def signup_client(uow: UnitOfWork, *, tenant_slug: str, display_name: str, email: str,
                  password: str, join_code: str | None = None) -> SignupOutcome:
    """An anonymous visitor joins a practice through its public join link."""
    tenant = practice_to_join(uow.session, tenant_slug, join_code)
    values = all_fields({
        "display_name": lambda: clean_name(display_name, "display_name", "your name"),
        "email": lambda: email_address(email),
        "password": lambda: new_password(password, email),
    })
    return _register_unless_known(uow, values, password, Role.CLIENT, via="join",
                                  practice=lambda: tenant, told_practice=tenant)


def _register_unless_known(uow: UnitOfWork, values: dict[str, str], password: str, role: Role,
                           *, via: str, practice: Callable[[], Tenant],
                           told_practice: Tenant | None = None) -> SignupOutcome:
    """Register the new identity; for an address already known, tell its owner by e-mail
    instead, after doing the same work."""
    password_hash = hash_password(password)
    existing = identity_by_email(uow.session, values["email"])
    with _as_if_new(uow, existing):
        register(uow, email=_address_to_register(values["email"], existing),
                 password_hash=password_hash, display_name=values["display_name"], role=role,
                 tenant=practice(), via=via)
    if existing is not None:
        _tell_owner(uow, existing, role, tenant=told_practice)
        return SignupOutcome.ALREADY_REGISTERED
    return SignupOutcome.CREATED


def _as_if_new(uow: UnitOfWork, existing: Identity | None) -> AbstractContextManager[None]:
    """A known address gets the same work as a new one (hashing, then every insert), undone
    afterwards: the answer, and the time it takes, must not tell whether the address is known."""
    return uow.rehearsal() if existing is not None else nullcontext()


def _address_to_register(address: str, existing: Identity | None) -> str:
    # The rehearsal cannot insert the taken address itself (it is unique); a stand-in that can
    # never be delivered to takes its place.
    return address if existing is None else f"rehearsal-{uuid.uuid4().hex}@invalid"


def _tell_owner(uow: UnitOfWork, identity: Identity, role: Role, *,
                tenant: Tenant | None = None) -> None:
    uow.record(EventType.SIGNUP_EMAIL_EXISTS, tenant_id=tenant.id if tenant else None,
               subject=f"identity:{identity.id}",
               payload={"role": str(role), "tenant": tenant.slug if tenant else None})


def practice_to_join(session: Session, slug: str, code: str | None = None) -> Tenant:
    tenant = by_slug(session, slug)
    if tenant is None or tenant.status == TenantStatus.SUSPENDED:
        raise NotFound("There is no practice at this address.")
    if tenant.status != TenantStatus.ACTIVE:
        raise NotFound(f"{tenant.name} is not accepting clients yet. Please try again later.")
    if not accepts_join_code(tenant, code):
        raise NotFound(f"This join link of {tenant.name} no longer works. Ask the practice for "
                       "its current link or an invitation.")
    return tenant


# -- identities and accounts -------------------------------------------------------------------

def new_identity(session: Session, email: str, password_hash: str | None, *,
                 verified: bool = False) -> Identity:
    now = clock.now()
    identity = Identity(id=uuid.uuid4(), email=email, password_hash=password_hash,
                        email_verified_at=now if verified else None, failed_logins=0, lockouts=0,
                        created_at=now, password_changed_at=now if password_hash else None)
    session.add(identity)
    session.flush()
    return identity


def new_account(uow: UnitOfWork, identity: Identity, role: Role, tenant_id: uuid.UUID | None,
                display_name: str, *, first: bool) -> Account:
    # The seed's rule: the first account's id is the identity's id; later ones get their own.
    account = Account(id=identity.id if first else uuid.uuid4(), identity_id=identity.id,
                      role=role, tenant_id=tenant_id, display_name=display_name,
                      created_at=clock.now())
    with within_tenant(uow.session, tenant_id):  # the account's own practice, or none (admins)
        uow.session.add(account)
        onboarding.begin(uow, account_id=account.id, role=role, tenant_id=tenant_id,
                         known=_known_answers(uow.session, display_name, tenant_id))
    return account


def _known_answers(session: Session, display_name: str,
                   tenant_id: uuid.UUID | None) -> dict[Stage, dict[str, str]]:
    """What sign-up already asked, so set-up starts with it filled in."""
    tenant = session.get(Tenant, tenant_id) if tenant_id else None
    known = {Stage.PERSONAL_INFO: {"full_name": display_name}}
    if tenant is not None:
        known[Stage.PROFESSIONAL_INFO] = {"practice_display_name": tenant.name}
    return known


def register(uow: UnitOfWork, *, email: str, password_hash: str, display_name: str, role: Role,
             tenant: Tenant, via: str, verified: bool = False) -> Account:
    """A new identity whose first account is in `tenant`."""
    identity = new_identity(uow.session, email, password_hash, verified=verified)
    account = new_account(uow, identity, role, tenant.id, display_name, first=True)
    uow.record(EventType.USER_CREATED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": str(role), "tenant": tenant.slug, "verified": verified,
                        "via": via})
    return account


def add_client_account(uow: UnitOfWork, identity_id: uuid.UUID, tenant: Tenant, *,
                       display_name: str, via: str = "join") -> Account:
    """A logged-in person joins a practice as a client (their identity gains a client role)."""
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    if account_for(uow.session, identity_id, Role.CLIENT) is not None:
        raise Forbidden("You already have a client account; one person is a client of one "
                        "practice here.")
    name = clean_name(display_name, "display_name", "your name")
    account = new_account(uow, identity, Role.CLIENT, tenant.id, name, first=False)
    uow.record(EventType.ACCOUNT_ADDED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": "client", "tenant": tenant.slug, "via": via})
    return account


def add_therapist_account(uow: UnitOfWork, identity_id: uuid.UUID, *, practice_name: str,
                          display_name: str) -> Account:
    identity = uow.session.get(Identity, identity_id)
    if identity is None:
        raise NotFound("No such identity.")
    if account_for(uow.session, identity_id, Role.THERAPIST) is not None:
        raise Forbidden("You already run a practice here.")
    values = all_fields({
        "practice_name": lambda: clean_name(practice_name, "practice_name",
                                            "the practice's name"),
        "display_name": lambda: clean_name(display_name, "display_name", "your name"),
    })
    tenant = create_tenant(uow, values["practice_name"])
    account = new_account(uow, identity, Role.THERAPIST, tenant.id, values["display_name"],
                          first=False)
    uow.record(EventType.ACCOUNT_ADDED, tenant_id=tenant.id, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"role": "therapist", "tenant": tenant.slug})
    return account


def create_admin(uow: UnitOfWork, email: str, password: str | None) -> Account:
    """`flask users create-admin`: an admin account, on a new or an existing identity."""
    address = email_address(email)
    if password is not None:
        new_password(password, address)
    identity = identity_by_email(uow.session, address)
    first = identity is None
    if identity is None:
        identity = new_identity(uow.session, address,
                                hash_password(password) if password else None, verified=True)
    elif account_for(uow.session, identity.id, Role.ADMIN) is not None:
        raise Forbidden(f"{address} is already an admin.")
    account = new_account(uow, identity, Role.ADMIN, None, address.split("@")[0], first=first)
    uow.record(EventType.ADMIN_CREATED, actor_account_id=account.id,
               subject=f"identity:{identity.id}",
               payload={"send_link": identity.password_hash is None})
    return account

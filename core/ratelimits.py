"""Which request budgets a request draws on: the seed's limits, per tenant.

* Logged in: 100 per minute for the account, and the practice's budget (its plan's, or the
  override a platform admin set) shared by every account of the practice.
* Not logged in: 20 per minute per client address; IPv6 addresses count per /64, the block one
  subscriber usually holds (otherwise one host could rotate through 2^64 addresses).
* Log-in, sign-up, join and reset form posts: 10 per minute per address and, where the form
  names one, 10 per minute per target e-mail address (a guesser spread over many addresses
  still meets the second), on top of the above.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse

from core.adapters.rate_counter import Scope
from core.config import Settings

ACCOUNT, PRACTICE, ADDRESS = "account", "practice", "address"
AUTH_ADDRESS, AUTH_EMAIL = "auth-address", "auth-email"
# Scopes that still count, in process memory, while Redis is away: guessing passwords must
# never become unlimited.
NEVER_UNLIMITED = frozenset({AUTH_ADDRESS, AUTH_EMAIL})


@lru_cache(maxsize=256)
def limit(text: str) -> RateLimitItem:
    return parse(text)


def per_minute(amount: int) -> RateLimitItem:
    return limit(f"{amount} per minute")


def address_key(address: str | None) -> str:
    """One client's key: its IPv4 address, or its IPv6 /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def email_key(email: str) -> str:
    """The target of a log-in or reset form, as a hash (the key names no address)."""
    normalised = email.strip().lower()
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as far as the limits care."""

    address: str | None
    account_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    practice_per_minute: int | None = None  # the practice's budget, when in one
    auth_form_post: bool = False
    target_email: str | None = None


def scopes_for(settings: Settings, caller: Caller) -> list[Scope]:
    scopes: list[Scope] = []
    if caller.account_id is not None:
        scopes.append(Scope(ACCOUNT, f"account:{caller.account_id}",
                            limit(settings.rate_limit_authenticated)))
        if caller.tenant_id is not None and caller.practice_per_minute is not None:
            scopes.append(Scope(PRACTICE, f"practice:{caller.tenant_id}",
                                per_minute(caller.practice_per_minute)))
    else:
        scopes.append(Scope(ADDRESS, f"ip:{address_key(caller.address)}",
                            limit(settings.rate_limit_anonymous)))
    if caller.auth_form_post:
        tight = limit(settings.rate_limit_auth_endpoints)
        scopes.append(Scope(AUTH_ADDRESS, f"auth-ip:{address_key(caller.address)}", tight))
        if caller.target_email and caller.target_email.strip():
            scopes.append(Scope(AUTH_EMAIL, f"auth-email:{email_key(caller.target_email)}",
                                tight))
    return scopes

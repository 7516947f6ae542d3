"""The hash chain: what an entry's hash covers, and what it deliberately leaves out.

One chain per practice and one for the platform (entries of no practice). An entry's hash is
SHA-256 over a canonical JSON encoding of its chained fields, which include its chain, its
sequence number and the previous entry's hash; editing, deleting or moving an entry breaks the
chain at that sequence number.

Personal data is not chained directly: the actor's account id, the subject, the IP address, the
user agent and the personal keys of the metadata (`PERSONAL_KEYS`) are committed to by
`personal_digest` = SHA-256(salt ‖ their canonical encoding), with a random salt kept beside them.
While the salt is there, the digest proves those fields unedited. Erasing a person (pseudonymising
the actor, truncating the IP) removes the salt with the data: the digest then proves nothing and
reveals nothing (the salt makes guessing an IP from it hopeless), and the chain, which covers only
the digest, still verifies.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.events.types import EventType

FORMAT = "audit/1"
GENESIS = bytes(32)
# The chain of entries that belong to no practice (admins, failed logins of unknown addresses …).
PLATFORM_CHAIN = uuid.UUID(int=0)
# Metadata keys that may hold personal data: kept out of the chained fields, like the IP.
# "personal" holds any other personal values of an event ({"new_email": …, "name": …}); no entry
# written before it was added has that key, so adding it changed no existing hash.
PERSONAL_KEYS = frozenset({"to", "email", "personal"})
SALT_BYTES = 16

FAILURES = frozenset({EventType.LOGIN_FAILED, EventType.AUDIT_VERIFY_FAILED})
DENIALS = frozenset({EventType.ACCESS_DENIED, EventType.UNAUTHORIZED_ACCESS_ATTEMPT,
                     EventType.RATE_LIMIT_EXCEEDED})
OUTCOMES = ("success", "failure", "denied")


def outcome_of(event_type: str) -> str:
    if event_type in DENIALS:
        return "denied"
    if event_type in FAILURES:
        return "failure"
    return "success"


def chain_of(tenant_id: uuid.UUID | None) -> uuid.UUID:
    return tenant_id or PLATFORM_CHAIN


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normal_ip(value: Any) -> str | None:
    """The address as one spelling (PostgreSQL's inet and Python may write IPv6 differently);
    None for anything that is not an address."""
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value).split("%", 1)[0]))
    except ValueError:
        return None


def chained_details(details: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items() if key not in PERSONAL_KEYS}


def personal_details(details: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items() if key in PERSONAL_KEYS}


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def personal_digest(salt: bytes, entry: Mapping[str, Any]) -> bytes:
    actor = entry.get("actor_account_id")
    fields = [str(actor) if actor else None, entry.get("subject"), normal_ip(entry.get("ip")),
              entry.get("user_agent"), personal_details(entry.get("metadata") or {})]
    return hashlib.sha256(salt + canonical(fields)).digest()


def entry_hash(entry: Mapping[str, Any]) -> bytes:
    """The hash of an entry from its stored fields (the writer's and the verifier's view)."""
    tenant = entry.get("tenant_id")
    fields = [
        FORMAT,
        str(entry["chain_id"]),
        int(entry["seq"]),
        bytes(entry["prev_hash"]).hex(),
        str(entry["event_id"]),
        entry["type"],
        entry["outcome"],
        str(tenant) if tenant else None,
        timestamp(entry["occurred_at"]),
        timestamp(entry["created_at"]),
        entry.get("request_id"),
        chained_details(entry.get("metadata") or {}),
        bytes(entry["personal_digest"]).hex(),
    ]
    return hashlib.sha256(canonical(fields)).digest()

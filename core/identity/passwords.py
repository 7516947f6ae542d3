"""Passwords: argon2id above OWASP's minimum, length over composition, no common passwords."""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
RECOMMENDED_LENGTH = 15
MAX_LENGTH = 128  # NIST asks for at least 64; argon2 makes length free for us to allow

# RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes): above OWASP's argon2id
# minimum (19 MiB, 2 passes, 1 lane). The test suite swaps in a cheap hasher (tests/conftest.py)
# and checks these parameters once.
PRODUCTION_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
HASHER = PRODUCTION_HASHER


class WeakPassword(ValueError):
    pass


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def check_strength(password: str, *, email: str = "") -> None:
    """Raise WeakPassword with a message a person can act on."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters ({RECOMMENDED_LENGTH} or more "
                           "is better; a few unrelated words work well).")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in _common_passwords():
        raise WeakPassword("That password is one of the most common ones, so it is easy to "
                           "guess. Choose another.")
    if email and lowered in (email.lower(), email.split("@")[0].lower()):
        raise WeakPassword("Your password must not be your e-mail address.")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        verify_dummy(password)
        return False
    try:
        return HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_dummy(password: str) -> None:
    """Spend the time a real check would (an unknown e-mail must not answer faster)."""
    with contextlib.suppress(VerifyMismatchError):
        HASHER.verify(_dummy_hash(HASHER), password)


@lru_cache(maxsize=2)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("not a real password, only here to spend the same time")


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)

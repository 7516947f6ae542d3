from __future__ import annotations

import re

# Deliberately plain: one @, a dot in the domain, no spaces or angle brackets. The real test
# of an address is the verification e-mail.
_LOCAL = r"[^@\s<>()\[\],;:\"\x00-\x1f\x7f]{1,64}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")
MAX_LENGTH = 254


class InvalidAddress(ValueError):
    pass


def normalise_address(raw: str) -> str:
    """Trim and lower-case (addresses are compared case-insensitively here); raise if unusable."""
    address = (raw or "").strip().lower()
    if not address:
        raise InvalidAddress("Enter an e-mail address.")
    if len(address) > MAX_LENGTH or not _ADDRESS.match(address):
        raise InvalidAddress("Enter an e-mail address like name@example.com.")
    return address

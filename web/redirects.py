"""Where a `next=` parameter may send a person: paths on this site, read as a browser reads them.

A browser resolving a Location header first strips leading and trailing control characters and
spaces, drops every tab and newline, and treats a backslash as a slash (WHATWG URL standard).
`/%09/evil.example` arrives here as "/\t/evil.example", which a browser reads as
"//evil.example": another host. So the check runs on the string as the browser will see it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

_EDGES = "".join(chr(c) for c in range(0x21))  # C0 controls and space
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Everything a path, query and fragment may contain literally; the rest is percent-encoded.
_SAFE = "/?#[]@!$&'()*+,;=:%-._~"
MAX_LENGTH = 2000


def safe_next_path(raw: object) -> str | None:
    """A same-origin path to redirect to, or None (the caller's default then applies)."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_LENGTH:
        return None
    target = _TAB_OR_NEWLINE.sub("", raw.strip(_EDGES)).replace("\\", "/")
    if not target.startswith("/") or target.startswith("//") or _CONTROL.search(target):
        return None
    encoded = quote(target, safe=_SAFE, errors="replace")
    parts = urlsplit(encoded)
    if parts.scheme or parts.netloc:
        return None
    return encoded

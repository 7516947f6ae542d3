"""Send a security audit entry now; never drop it."""

from __future__ import annotations

import logging
from typing import Any

from core.audit.security import as_outbox_event
from core.db import Database

log = logging.getLogger(__name__)


def send_security_entry(db: Database, entry: dict[str, Any], *,
                        delay_ms: int | None = None) -> None:
    """`delay_ms`: write it that much later (an entry that counts repeats waits for the end
    of its window)."""
    from workers.actors import write_security_audit
    from workers.publisher import can_publish_here

    if can_publish_here():
        try:
            write_security_audit.send_with_options(args=(entry,), delay=delay_ms)
            return
        except Exception as error:
            log.warning("broker unavailable for a %s entry (%s); keeping it in the outbox",
                        entry["type"], type(error).__name__)
    with db.session() as session:
        session.add(as_outbox_event(entry))
        session.commit()

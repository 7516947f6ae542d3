"""Who may hold one of this process's live-notification streams.

Each stream holds a thread for up to a minute, so a process serves only so many at once
(NOTIFICATION_STREAMS). No one account may take them all: past its own share
(NOTIFICATION_STREAMS_PER_ACCOUNT) a new stream of that account replaces its oldest, which is
told so and closes. When the process is full, a new stream is turned away to come back later.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    account_id: str
    replaced: threading.Event = field(default_factory=threading.Event)


class StreamSlots:
    def __init__(self, capacity: int, per_account: int) -> None:
        self.capacity = capacity
        self.per_account = max(1, min(per_account, capacity))
        self._held: dict[str, deque[Slot]] = {}
        self._total = 0
        self._lock = threading.Lock()

    def take(self, account_id: str) -> tuple[Slot | None, Slot | None]:
        """(the new slot or None when the process is full, the slot it replaced or None)."""
        with self._lock:
            mine = self._held.setdefault(account_id, deque())
            replaced = None
            if len(mine) >= self.per_account:
                replaced = mine.popleft()
                replaced.replaced.set()
                self._total -= 1
            if self._total >= self.capacity:
                if not mine:
                    del self._held[account_id]
                return None, replaced
            slot = Slot(account_id)
            mine.append(slot)
            self._total += 1
            return slot, replaced

    def release(self, slot: Slot) -> None:
        with self._lock:
            mine = self._held.get(slot.account_id)
            if mine is not None and slot in mine:
                mine.remove(slot)
                self._total -= 1
                if not mine:
                    del self._held[slot.account_id]

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._total

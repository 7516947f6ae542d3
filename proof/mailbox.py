"""What reached the SMTP sink (its journal), by recipient and by the effect that sent it.

Every e-mail's Message-ID is `<event id>.<handler>@<domain>` (core.mail.render): the handler
says what kind of e-mail it is, and a repeat of one effect keeps its Message-ID."""

from __future__ import annotations

import email
import email.policy
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERIFICATION = "send_verification_email"


@dataclass(frozen=True)
class Received:
    recipients: tuple[str, ...]
    message_id: str
    handler: str
    text: str  # the whole message, for links
    at: float = 0.0  # when the sink took it (time.time())


class Journal:
    """The sink's journal, read as it grows: `read()` returns every message so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._received: list[Received] = []

    def read(self) -> list[Received]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as journal:
            journal.seek(self._offset)
            for line in journal:
                if not line.endswith(b"\n"):
                    break  # the sink is writing it right now
                self._offset += len(line)
                self._received.append(_parse(json.loads(line)))
        return list(self._received)


def _parse(entry: dict[str, Any]) -> Received:
    message = email.message_from_string(entry["data"], policy=email.policy.default)
    message_id = str(message.get("Message-ID", "")).strip()
    handler = message_id.strip("<>").split("@")[0].partition(".")[2]
    return Received(tuple(r.lower() for r in entry["to"]), message_id, handler, entry["data"],
                    entry.get("at", 0.0))


@dataclass(frozen=True)
class Tally:
    expected: int
    received: int  # messages of this kind to the expected recipients, repeats included
    lost: tuple[str, ...]  # expected recipients with none
    doubled: dict[str, int]  # recipients with more than one: how many they got
    resent: int  # of the doubled, how many were a repeat of the same Message-ID
    unexpected: int  # messages of this kind to anyone else
    # Of the doubled that were a repeat of the same Message-ID: when the sink took the first copy.
    first_of_repeat: dict[str, float] = field(default_factory=dict)


def tally(received: Iterable[Received], handler: str, expected: Iterable[str]) -> Tally:
    wanted = {address.lower() for address in expected}
    ids: dict[str, list[str]] = defaultdict(list)
    first: dict[str, float] = {}
    unexpected = 0
    for message in received:
        if message.handler != handler:
            continue
        for recipient in message.recipients:
            if recipient in wanted:
                ids[recipient].append(message.message_id)
                first[recipient] = min(first.get(recipient, message.at), message.at)
            else:
                unexpected += 1
    doubled = {address: len(got) for address, got in ids.items() if len(got) > 1}
    repeats = {address: first[address] for address in doubled if len(set(ids[address])) == 1}
    return Tally(len(wanted), sum(len(got) for got in ids.values()),
                 tuple(sorted(wanted - ids.keys())), doubled, len(repeats), unexpected, repeats)


def delivered(received: Iterable[Received], handler: str, expected: Iterable[str]) -> int:
    """How many of the expected recipients have at least one e-mail of this kind."""
    wanted = {address.lower() for address in expected}
    return len({r for message in received if message.handler == handler
                for r in message.recipients if r in wanted})

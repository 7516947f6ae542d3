"""A minimal SMTP server on loopback that counts what it receives.

It runs in a process of its own, as a mail server would: inside the bench process it would
compete for one interpreter lock with the threads that commit events, and its replies would come
late for reasons that have nothing to do with the platform. Given a journal file, it also writes
each message there (one JSON line: envelope recipients and the message as received), for a
reader that needs to know which e-mail arrived how often (`make proof`).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import IO, Any

from bench.ports import free_port

STARTUP_TIMEOUT = 10.0


class SmtpSink:
    """Counts messages and their distinct recipients (a duplicate delivery shows as a gap)."""

    def __init__(self, port: int, messages: Synchronized[int], distinct: Synchronized[int]):
        self.port = port
        self._messages = messages
        self._distinct = distinct

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return int(self._messages.value)

    @property
    def duplicates(self) -> int:
        return int(self._messages.value) - int(self._distinct.value)


class _Session(asyncio.Protocol):
    """Just enough SMTP for a client that sends well-formed mail: EHLO (offering PIPELINING,
    as real relays do), MAIL, RCPT, DATA, RSET, NOOP, QUIT. A full server (aiosmtpd) spent most
    of a core parsing what the bench sends, on the two cores the platform is measured on."""

    def __init__(self, sink: _Counts) -> None:
        self.sink = sink
        self.buffer = b""
        self.in_data = False
        self.recipients: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                data, self.buffer = self.buffer[:end + 2], self.buffer[end + 5:]
                self.in_data = False
                self.sink.received(self.recipients, data)
                self.recipients = []
                self.transport.write(b"250 OK\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                return
            self.buffer = rest
            self._command(line)

    def _command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            self.transport.write(b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                 b"250 SMTPUTF8\r\n")
        elif verb == b"RCPT":
            self.recipients.append(line.partition(b":")[2].strip())
            self.transport.write(b"250 OK\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
        else:  # MAIL, RSET, NOOP
            if verb == b"RSET":
                self.recipients = []
            self.transport.write(b"250 OK\r\n")


class _Counts:
    def __init__(self, messages: Synchronized[int], distinct: Synchronized[int],
                 journal: IO[str] | None = None) -> None:
        self.messages = messages
        self.distinct = distinct
        self.recipients: set[bytes] = set()
        self.journal = journal

    def received(self, recipients: list[bytes], data: bytes) -> None:
        if self.journal is not None:
            # Written before the counts move, so a reader that saw the count sees the line.
            unstuffed = data.replace(b"\r\n..", b"\r\n.")  # headers never start with a dot
            self.journal.write(json.dumps({
                "at": time.time(),  # when the sink took it: the moment a client may die after
                "to": [r.decode(errors="replace").strip("<>") for r in recipients],
                "data": unstuffed.decode(errors="replace")}) + "\n")
            self.journal.flush()
        self.recipients.update(recipients)
        self.distinct.value = len(self.recipients)
        self.messages.value += 1


def _serve(port: int, messages: Synchronized[int], distinct: Synchronized[int],
           ready: Any, stop: Any, journal_path: Path | None = None) -> None:
    async def main() -> None:
        journal = journal_path.open("a", encoding="utf-8") if journal_path else None
        counts = _Counts(messages, distinct, journal)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Session(counts), "127.0.0.1", port)
        ready.set()
        await loop.run_in_executor(None, stop.wait)
        server.close()
        if journal is not None:
            journal.close()

    asyncio.run(main())


@contextmanager
def smtp_sink(journal: Path | None = None) -> Iterator[SmtpSink]:
    spawn = multiprocessing.get_context("spawn")
    # Written by the sink process only, so no lock is needed around them.
    messages = spawn.Value("q", 0, lock=False)
    distinct = spawn.Value("q", 0, lock=False)
    ready, stop = spawn.Event(), spawn.Event()
    port = free_port()
    process = spawn.Process(target=_serve, args=(port, messages, distinct, ready, stop, journal),
                            name="smtp-sink", daemon=True)
    process.start()
    if not ready.wait(STARTUP_TIMEOUT):
        process.kill()
        raise RuntimeError("the SMTP sink did not start")
    try:
        yield SmtpSink(port, messages, distinct)  # type: ignore[arg-type]
    finally:
        stop.set()
        process.join(5)
        if process.is_alive():
            process.kill()


"""supervisord event listener: every program's output, each line prefixed with its name.

supervisord hands the output over as PROCESS_LOG events, in chunks that may end mid-line: whole
lines are printed at once, a partial one when its end arrives. Stdout is the listener's channel
to supervisord, so the lines go to stderr, which common.conf sends to the terminal.
"""

from __future__ import annotations

import sys

WIDTH = len("scheduler")
PARTIAL_LIMIT = 64 * 1024  # a "line" longer than this is printed without waiting for its end


def fields(line: bytes) -> dict[bytes, bytes]:
    return dict(field.split(b":", 1) for field in line.split())


def main() -> None:
    events, answers, terminal = sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer
    partial: dict[bytes, bytes] = {}
    while True:
        answers.write(b"READY\n")
        answers.flush()
        header = events.readline()
        if not header:  # supervisord has gone
            return
        payload = events.read(int(fields(header)[b"len"]))
        about, _, data = payload.partition(b"\n")
        name = fields(about)[b"processname"]
        *lines, rest = (partial.pop(name, b"") + data).split(b"\n")
        if len(rest) > PARTIAL_LIMIT:
            lines.append(rest)
        elif rest:
            partial[name] = rest
        prefix = name.decode().ljust(WIDTH).encode() + b" | "
        terminal.write(b"".join(prefix + line + b"\n" for line in lines))
        terminal.flush()
        answers.write(b"RESULT 2\nOK")
        answers.flush()


if __name__ == "__main__":
    main()

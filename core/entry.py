"""Start-up errors become one clear line on stderr and a non-zero exit, not a traceback wall."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from core.config import ConfigError
from core.db import DatabaseUnavailable

EXIT_CONFIG = 2


@contextmanager
def exit_on_startup_error(process: str) -> Iterator[None]:
    try:
        yield
    except (ConfigError, DatabaseUnavailable) as error:
        print(f"{process}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None

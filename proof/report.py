"""One row per probe: what ran, the figures, the target, and whether it was met; a table for
people and JSON for machines (proof/results/latest.json)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import machine_meta

WIDTH = 100


@dataclass(frozen=True)
class Row:
    name: str
    what: str  # what ran
    result: str  # the figures, in words
    target: str
    problems: list[str]  # each a target missed, precisely
    figures: dict[str, Any] = field(default_factory=dict)
    ran: bool = True

    @property
    def status(self) -> str:
        if self.problems:
            return "MISSED"
        return "ok" if self.ran else "not run"


def format_table(rows: Sequence[Row]) -> str:
    name_width = max(len("probe"), *(len(row.name) for row in rows))
    status_width = len("not run")
    indent = name_width + status_width + 4
    lines = [f"{'probe':<{name_width}}  {'result':<{status_width}}  figures",
             f"{'-' * name_width}  {'-' * status_width}  {'-' * (WIDTH - indent)}"]
    for row in rows:
        wrapped = textwrap.wrap(row.result, WIDTH - indent) or ["-"]
        lines.append(f"{row.name:<{name_width}}  {row.status:<{status_width}}  {wrapped[0]}")
        lines.extend(" " * indent + more for more in wrapped[1:])
    lines.append("")
    for row in rows:
        lines.extend(textwrap.wrap(f"{row.name}: {row.what}; target: {row.target}", WIDTH,
                                   initial_indent="  ", subsequent_indent="      "))
    problems = [(row.name, problem) for row in rows for problem in row.problems]
    if problems:
        lines.append("")
        for name, problem in problems:
            lines.extend(textwrap.wrap(f"!! {name}: {problem}", WIDTH,
                                       subsequent_indent="     "))
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], options: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": {**machine_meta(), "options": options},
        "met": all(not row.problems for row in rows),
        "rows": [{"name": row.name, "status": row.status, "what": row.what,
                  "result": row.result, "target": row.target, "problems": row.problems,
                  "figures": row.figures} for row in rows],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")

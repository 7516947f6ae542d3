"""Every rule of the app's url_map, read in a process of its own (`python -m proof.routes`):
building an app configures its process's logging, broker and runtime, which the proof's own
process must keep out of. Nothing is served from it; it only lists the rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bench.servers import ROOT

IGNORED_METHODS = {"HEAD", "OPTIONS"}
_PARAMETER = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


@dataclass(frozen=True)
class Route:
    rule: str
    methods: tuple[str, ...]
    endpoint: str
    arguments: tuple[str, ...]
    roles: tuple[str, ...]  # @role_required's roles; () for any

    def path(self, values: Mapping[str, str]) -> str:
        return _PARAMETER.sub(lambda m: quote(values[m.group(2)], safe=""), self.rule)


def load() -> list[Route]:
    done = subprocess.run([sys.executable, "-m", "proof.routes"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    return [Route(r["rule"], tuple(r["methods"]), r["endpoint"], tuple(r["arguments"]),
                  tuple(r["roles"])) for r in json.loads(done.stdout)]


def _dump() -> None:
    from assembly import web_process
    from core.config import Settings

    with tempfile.TemporaryDirectory(prefix="proof-routes-") as tmp:
        settings = Settings(app_env="test", instance_path=Path(tmp), secret_key="r" * 48,
                            database_url=f"sqlite:///{tmp}/routes.db", log_level="WARNING")
        app = web_process(settings)
        rules = [{"rule": rule.rule, "methods": sorted((rule.methods or set()) - IGNORED_METHODS),
                  "endpoint": rule.endpoint, "arguments": sorted(rule.arguments),
                  "roles": [str(role) for role in getattr(app.view_functions[rule.endpoint],
                                                          "required_roles", ())]}
                 for rule in app.url_map.iter_rules()]
    print(json.dumps(sorted(rules, key=lambda r: (r["rule"], r["methods"]))))


if __name__ == "__main__":
    _dump()

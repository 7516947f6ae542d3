"""Static files: served by WhiteNoise in front of Flask (no session, no limits, no log line), under
names that carry a hash of their content, which browsers and proxies keep for a year
(`immutable`). A changed file gets a new name, so nobody is ever served a stale one.

Templates keep writing `url_for('static', filename='css/app.css')`: a URL default turns that into
`/static/css/app.<hash>.css`. The plain names are still served, with a short lifetime (links
from outside, e-mails). Outside production a file edited while the server runs gets its new name
on the next page that links to it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from whitenoise import WhiteNoise

HASH_LENGTH = 12
HASHED_NAME = re.compile(rf"\.[0-9a-f]{{{HASH_LENGTH}}}\.[A-Za-z0-9]+$")
PLAIN_NAME_MAX_AGE = 300


def hashed_name(relative: str, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()[:HASH_LENGTH]
    stem, dot, suffix = relative.rpartition(".")
    return f"{stem}.{digest}.{suffix}" if dot else f"{relative}.{digest}"


class HashedAssets:
    def __init__(self, folder: Path, server: WhiteNoise, *, watch: bool) -> None:
        self.folder = folder
        self.server = server
        self.watch = watch
        self._names: dict[str, tuple[float, str]] = {}  # relative name -> (mtime, hashed name)
        self._lock = threading.Lock()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self._register(path.relative_to(folder).as_posix())

    def url_name(self, relative: str) -> str:
        known = self._names.get(relative)
        if known is None:
            return relative  # not a file we serve: Flask's own static route answers (404)
        if self.watch:
            path = self.folder / relative
            if path.is_file() and path.stat().st_mtime != known[0]:
                return self._register(relative)
        return known[1]

    def _register(self, relative: str) -> str:
        path = self.folder / relative
        with self._lock:
            hashed = hashed_name(relative, path.read_bytes())
            self._names[relative] = (path.stat().st_mtime, hashed)
            self.server.add_file_to_dictionary(f"/static/{hashed}", str(path))
        return hashed


def _nosniff(headers: Any, _path: str, _url: str) -> None:
    headers["X-Content-Type-Options"] = "nosniff"


def init_app(app: Flask, *, watch: bool) -> None:
    """Call last: WhiteNoise wraps whatever WSGI app Flask has by then (ProxyFix)."""
    folder = Path(app.static_folder or "static")
    server = WhiteNoise(app.wsgi_app, max_age=PLAIN_NAME_MAX_AGE, allow_all_origins=False,
                        immutable_file_test=lambda _path, url: bool(HASHED_NAME.search(url)),
                        add_headers_function=_nosniff)
    server.add_files(str(folder), prefix="static/")
    assets = HashedAssets(folder, server, watch=watch)
    app.wsgi_app = server  # type: ignore[method-assign]
    app.extensions["assets"] = assets

    @app.url_defaults
    def _hashed_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            values["filename"] = assets.url_name(values["filename"])

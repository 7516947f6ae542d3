"""HTTP measurements: `wrk` on loopback, its output parsed into a `Sample`."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench.measure import Context, Sample, Target

BASELINE = "bare-flask"
SCRIPTS = Path(__file__).resolve().parent / "scripts"

_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_MS_PER_UNIT = {"us": 0.001, "ms": 1.0, "s": 1_000.0, "m": 60_000.0, "h": 3_600_000.0}
# What bench/scripts/sessions.lua prints from done(): responses it checked, then each kind of
# unexpected response (e.g. "status_401") with its count.
_CHECKED = re.compile(r"^bench-checked (\d+)$", re.MULTILINE)
_UNEXPECTED = re.compile(r"^bench-unexpected (\S+) (\d+)$", re.MULTILINE)


class WrkError(Exception):
    """wrk failed or printed something we cannot read."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    percentiles_ms: dict[float, float]
    non_2xx: int
    socket_errors: dict[str, int]
    # Set when the script checked every response itself (expected status, redirect target):
    # its counts replace wrk's, which sees a 302 to the login page as a success.
    unexpected: dict[str, int] | None = None

    def sample(self) -> Sample:
        checked = {"non_2xx": self.non_2xx} if self.unexpected is None else self.unexpected
        detail = {**checked, **self.socket_errors}
        detail = {kind: count for kind, count in detail.items() if count}
        return Sample(
            value=self.requests_per_second,
            p50_ms=self.percentiles_ms.get(50.0),
            p99_ms=self.percentiles_ms.get(99.0),
            errors=sum(detail.values()),
            error_detail=detail,
        )


def parse_wrk(output: str) -> WrkResult:
    match = _REQUESTS_PER_SECOND.search(output)
    if match is None:
        raise WrkError(f"no Requests/sec line in wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET_ERRORS.search(output)
    kinds = ("connect", "read", "write", "timeout")
    return WrkResult(
        requests_per_second=float(match.group(1)),
        percentiles_ms=_latency_distribution(output),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(kinds, map(int, sockets.groups()), strict=True)) if sockets
        else {},
        unexpected={kind: int(count) for kind, count in _UNEXPECTED.findall(output)}
        if _CHECKED.search(output) else None,
    )


def _latency_distribution(output: str) -> dict[float, float]:
    """The percentile lines under "Latency Distribution" (only printed with --latency)."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "Latency Distribution" in line)
    except StopIteration:
        return {}
    percentiles: dict[float, float] = {}
    for line in lines[start + 1 :]:
        match = _PERCENTILE.match(line)
        if match is None:
            break
        percent, amount, unit = match.groups()
        percentiles[float(percent)] = float(amount) * _MS_PER_UNIT[unit]
    return percentiles


def wrk_binary() -> str:
    found = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(found).exists():
        raise WrkError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, timeout=10,
                          check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "unknown"


def run_wrk(url: str, ctx: Context, *, seconds: int, headers: Mapping[str, str],
            script: Path | None, threads: int | None = None, connections: int | None = None,
            timeout: int | None = None) -> WrkResult:
    """wrk with the run's threads and connections, unless the entry needs its own; `timeout`
    (seconds) replaces wrk's 2 s, after which it counts a response as a timeout error."""
    options = ctx.options
    threads = threads or options.wrk_threads
    connections = connections or options.connections
    command = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if timeout is not None:
        command.append(f"--timeout={timeout}s")
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode} on {url}:\n{done.stderr}{done.stdout}")
    if script is not None and done.stderr.strip():
        # A Lua error leaves wrk running without the script (and exiting 0): never measure that.
        raise WrkError(f"wrk's script {script.name} failed on {url}:\n{done.stderr}")
    return parse_wrk(done.stdout)


LuaValue = str | int | Mapping[str, "LuaValue"] | Sequence["LuaValue"]


def lua_literal(value: LuaValue) -> str:
    """A Lua literal of strings, integers, tables (from mappings) and arrays (from sequences)."""
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, bool):
        raise TypeError("booleans are not needed here; say what they mean with a string")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        # Spaced: "[[[" would open a long bracket.
        items = (f"[ {_lua_string(key)} ] = {lua_literal(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    return "{" + ", ".join(lua_literal(item) for item in value) + "}"


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal, which needs no escaping as long as its closer is not inside."""
    level = 0
    # Also when text ends in "]" (or "]="): its end and the closer would read as a closer early.
    while f"]{'=' * level}]" in text + "]":
        level += 1
    equals = "=" * level
    # Lua drops a newline right after the opening bracket, so a leading newline in text survives.
    return f"[{equals}[\n{text}]{equals}]"


@dataclass(frozen=True)
class HttpEndpoint:
    """One measured URL. `script` is a Lua file under bench/scripts/ (request/response hooks),
    appended after the generated lines that set the method and body."""

    name: str
    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    script: str | None = None
    target: Target = "app"
    baseline: str = BASELINE
    unit: str = "req/s"
    needs_servers: bool = True

    def url(self, ctx: Context) -> str:
        return ctx.urls[self.target] + self.path

    def warm_up(self, ctx: Context) -> None:
        self._probe(ctx)
        if ctx.options.warmup > 0:
            self._wrk(ctx, ctx.options.warmup)

    def measure(self, ctx: Context) -> Sample:
        sample = self._wrk(ctx, ctx.options.duration).sample()
        if self.target != "app":
            return sample
        from bench import counts, inprocess

        app = inprocess.app(inprocess.env_key(ctx))
        return replace(sample, extra={**sample.extra, **counts.anonymous_request(
            app, self.method, self.path)})

    def _wrk(self, ctx: Context, seconds: int) -> WrkResult:
        return run_wrk(self.url(ctx), ctx, seconds=seconds, headers=self.headers,
                       script=self._script_file(ctx))

    def _script_file(self, ctx: Context) -> Path | None:
        if self.method == "GET" and self.body is None and self.script is None:
            return None
        lines = [f"wrk.method = {_lua_string(self.method)}"]
        if self.body is not None:
            lines.append(f"wrk.body = {_lua_string(self.body)}")
        if self.script is not None:
            lines.append((SCRIPTS / self.script).read_text())
        path = ctx.workdir / f"{self.name}.lua"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _probe(self, ctx: Context) -> None:
        """wrk counts 3xx as success: say so when an entry would measure a redirect or an error."""
        status = request_status(self.url(ctx), self.method, self.headers, self.body)
        if not 200 <= status < 300:
            print(f"warning: {self.name} ({self.method} {self.path}) answered {status}; "
                  "its figures measure that response", file=sys.stderr)


def request_status(url: str, method: str = "GET", headers: Mapping[str, str] | None = None,
                   body: str | None = None, *, timeout: float = 5.0) -> int:
    """One request straight to the socket (urllib would honour http_proxy, even on loopback)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()

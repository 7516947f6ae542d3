"""chaos: sign-ups through the real form while the platform's parts fail one after another.

People sign up at /signup (a few at a time, as many as the options say); a person whose
attempt gets no answer or a 5xx tries again, as a person would, until it is accepted. As the
accepted sign-ups pass set fractions of the total, one fault is done at each:

  worker    SIGKILL one dramatiq worker process (its main process then stops the rest and the
            supervisor starts them again, as in production)
  redis     the Redis server SIGKILLed, and started again a moment later (limits, cache,
            sessions' cache, heartbeats, the scheduler's lock; the broker too where there is no
            RabbitMQ)
  database  every connection to PostgreSQL black-holed (the proxy accepts and forwards
            nothing) for 10 s, then restored
  broker    the RabbitMQ node stopped and started again

Meanwhile a prober asks for /api/health/live and / every quarter of a second. Afterwards every
accepted address must have received its verification e-mail exactly once (counted at the SMTP
sink by Message-ID, whose handler part says which e-mail it is).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.browser import Reply
from proof.client import HeaderAudit, Visitor
from proof.mailbox import VERIFICATION, Journal, Received, delivered, tally
from proof.platform import PROOF, WORKER_PROCESSES, Platform
from proof.report import Row
from proof.services import ServiceError, wait_for

PASSWORD = "correct horse battery staple"
CLIENT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 5.0
PROBE_EVERY_S = 0.25
RETRY_PAUSE_S = 0.5
# Longest any answer may take: a web request gives up on a silent database after its statement
# timeout (5 s) plus the client's margin (2 s), and may first wait up to 3 s for a pooled
# connection or a new one (core.db).
HANG_BOUND_S = 12.0
# A 503 whose request overlapped the database's outage (or ended this soon after) is the
# platform saying "temporarily unavailable", as it must.
OUTAGE_GRACE_S = 2.0
# Delivery is at least once (README, "Pipeline"): an e-mail the mail server took in the last
# moment before its worker was SIGKILLed, its "done" not yet written, is sent again with the same
# Message-ID. A repeat whose first copy reached the sink this long before a kill, or less, is
# that; any other repeat is a defect.
IN_FLIGHT_AT_KILL_S = 1.0
REDIS_DOWN_S = 2.0


@dataclass(frozen=True)
class ChaosOptions:
    signups: int
    concurrency: int
    schedule: tuple[tuple[float, str], ...]  # (fraction of sign-ups accepted, fault)
    blackhole_s: float = 10.0
    mail_timeout_s: float = 240.0


FULL = ChaosOptions(1000, 8, ((0.10, "worker"), (0.25, "redis"), (0.40, "worker"),
                              (0.55, "database"), (0.70, "worker"), (0.85, "broker")))
QUICK = ChaosOptions(100, 6, ((0.15, "worker"), (0.35, "redis"), (0.55, "database"),
                              (0.80, "broker")), mail_timeout_s=180.0)


@dataclass(frozen=True)
class Exchange:
    started: float
    ended: float
    path: str
    status: int | None  # None: no answer (connection refused or reset, timeout)
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Exchanges:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Exchange] = []

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self.items.append(exchange)

    def snapshot(self) -> list[Exchange]:
        with self._lock:
            return list(self.items)


class TimedVisitor(Visitor):
    """Records every request it makes, answered or not."""

    def __init__(self, base_url: str, audit: HeaderAudit, log: Exchanges,
                 timeout: float) -> None:
        super().__init__(base_url, audit, timeout=timeout)
        self.log = log

    def request(self, method: str, path: str, *, body: str | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        started = time.monotonic()
        try:
            reply = super().request(method, path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as error:
            self.log.add(Exchange(started, time.monotonic(), path, None, type(error).__name__))
            raise
        self.log.add(Exchange(started, time.monotonic(), path, reply.status))
        return reply


# -- the people ---------------------------------------------------------------------------------
@dataclass
class SignUps:
    url: str
    options: ChaosOptions
    run_id: str
    audit: HeaderAudit
    log: Exchanges = field(default_factory=Exchanges)
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # address -> what it got, for good

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.done = threading.Event()

    def address(self, number: int) -> str:
        return f"signup{number:04d}.{self.run_id}@proof.example"

    def run(self) -> None:
        try:
            with ThreadPoolExecutor(self.options.concurrency) as pool:
                list(pool.map(self._sign_up, range(self.options.signups)))
        finally:
            self.done.set()

    @property
    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def _sign_up(self, number: int) -> None:
        address = self.address(number)
        visitor = TimedVisitor(self.url, self.audit, self.log, CLIENT_TIMEOUT_S)
        form = {"practice_name": f"Proof Practice {number:04d} {self.run_id}",
                "display_name": f"Proof Therapist {number:04d}", "email": address,
                "password": PASSWORD}
        deadline = time.monotonic() + self.options.mail_timeout_s
        while time.monotonic() < deadline:
            try:
                reply = visitor.post_form("/signup", form, token=visitor.page_token("/signup"))
            except Exception:  # no answer, or no form (a 503 page): as a person, try again
                time.sleep(RETRY_PAUSE_S)
                continue
            if reply.status == 200:
                with self._lock:
                    self.accepted.append(address)
                return
            if reply.status < 500 and reply.status != 429:
                with self._lock:
                    self.refused[address] = f"{reply.status} {reply.text[:200]}"
                return
            time.sleep(RETRY_PAUSE_S)
        with self._lock:
            self.refused[address] = "gave up: no acceptance before the deadline"


class Prober:
    """Asks for the liveness probe and the home page, over and over, until stopped."""

    PATHS = ("/api/health/live", "/")

    def __init__(self, url: str, audit: HeaderAudit) -> None:
        self.log = Exchanges()
        self._visitor = TimedVisitor(url, audit, self.log, PROBE_TIMEOUT_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(PROBE_TIMEOUT_S * 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.PATHS:
                # No answer is recorded as an exchange without one.
                with contextlib.suppress(OSError, http.client.HTTPException):
                    self._visitor.request("GET", path)
            self._stop.wait(PROBE_EVERY_S)


# -- the faults ---------------------------------------------------------------------------------
@dataclass
class Fault:
    name: str
    started: float
    ended: float
    after_signups: int
    detail: str
    ran: bool = True
    outage: tuple[float, float] | None = None  # when the thing itself was away


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


class Faults:
    def __init__(self, platform: Platform, options: ChaosOptions, signups: SignUps) -> None:
        self.platform = platform
        self.options = options
        self.signups = signups
        self.done: list[Fault] = []
        self.kills_at: list[float] = []  # time.time() of each worker SIGKILL, as the sink's clock
        self.actions: dict[str, Callable[[], tuple[str, tuple[float, float] | None]]] = {
            "worker": self._kill_worker, "redis": self._restart_redis,
            "database": self._blackhole_database, "broker": self._restart_broker}

    def run(self) -> None:
        for fraction, name in self.options.schedule:
            target = int(fraction * self.options.signups)
            while self.signups.accepted_count < target and not self.signups.done.is_set():
                time.sleep(0.05)
            after = self.signups.accepted_count
            started = time.monotonic()
            _progress(f"fault: {name} (after {after} sign-ups)")
            try:
                detail, outage = self.actions[name]()
                ran = not detail.startswith("not run")
            except ServiceError as error:
                detail, outage, ran = f"failed: {error}", None, False
            self.done.append(Fault(name, started, time.monotonic(), after, detail, ran, outage))

    def _kill_worker(self) -> tuple[str, tuple[float, float] | None]:
        worker = self.platform.worker
        wait_for(lambda: len(_children(worker.pid)) >= WORKER_PROCESSES, 60,
                 "dramatiq's worker processes to be up")
        master, victim = worker.pid, _children(worker.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        self.kills_at.append(time.time())
        wait_for(lambda: worker.pid != master and len(_children(worker.pid)) >= WORKER_PROCESSES,
                 90, "dramatiq to be running again")
        back = time.monotonic() - killed_at
        return (f"SIGKILLed worker process {victim}; dramatiq stopped the rest, the supervisor "
                f"had {WORKER_PROCESSES} new ones up after {back:.1f} s"), (killed_at,
                                                                              time.monotonic())

    def _restart_redis(self) -> tuple[str, tuple[float, float] | None]:
        redis_server = self.platform.redis
        down = time.monotonic()
        redis_server.kill()
        time.sleep(REDIS_DOWN_S)  # the outage itself: how long Redis stays away
        redis_server.start()
        up = time.monotonic()
        kind = " (the broker too)" if self.platform.rabbitmq is None else ""
        return f"Redis{kind} SIGKILLed, answering again after {up - down:.1f} s", (down, up)

    def _blackhole_database(self) -> tuple[str, tuple[float, float] | None]:
        proxy = self.platform.database
        silent = time.monotonic()
        proxy.blackhole()
        time.sleep(self.options.blackhole_s)  # the outage itself
        proxy.restore()
        return (f"PostgreSQL black-holed for {self.options.blackhole_s:.0f} s (connections "
                "accepted, nothing forwarded), then restored"), (silent, time.monotonic())

    def _restart_broker(self) -> tuple[str, tuple[float, float] | None]:
        rabbitmq = self.platform.rabbitmq
        if rabbitmq is None:
            return ("not run: RabbitMQ is not installed here; the broker was the Redis, "
                    "killed and restarted above"), None
        down = time.monotonic()
        rabbitmq.stop()
        rabbitmq.start()
        up = time.monotonic()
        return f"private RabbitMQ node stopped and started, away {up - down:.1f} s", (down, up)


# -- the run ------------------------------------------------------------------------------------
def run(platform: Platform, options: ChaosOptions, audit: HeaderAudit) -> list[Row]:
    run_id = f"{os.getpid()}{int(time.time()) % 100000}"
    signups = SignUps(platform.url, options, run_id, audit)
    prober = Prober(platform.url, audit)
    faults = Faults(platform, options, signups)
    prober.start()
    started = time.monotonic()
    fault_thread = threading.Thread(target=faults.run, name="faults", daemon=True)
    fault_thread.start()
    _progress(f"chaos: {options.signups} sign-ups, {options.concurrency} at a time")
    signups.run()
    fault_thread.join()
    _progress(f"chaos: {len(signups.accepted)} sign-ups accepted in "
              f"{time.monotonic() - started:.0f} s; waiting for their e-mails")
    journal = Journal(platform.journal)
    mail_wait = _wait_for_mail(journal, signups.accepted, options.mail_timeout_s)
    pending = _settle(platform)
    prober.stop()
    received = journal.read()
    return _rows(platform, options, signups, prober, faults, received, mail_wait, pending,
                 time.monotonic() - started)


def _wait_for_mail(journal: Journal, addresses: list[str], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if delivered(journal.read(), VERIFICATION, addresses) >= len(addresses):
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def _settle(platform: Platform) -> dict[str, int]:
    """Wait until nothing that could still send an e-mail is outstanding: every event published
    and every verification effect finished. Then a second more for anything on the wire."""
    def outstanding() -> dict[str, int]:
        with psycopg.connect(PROOF.owner_url, connect_timeout=3) as connection:
            undispatched = connection.execute(
                "SELECT count(*) FROM events WHERE dispatched_at IS NULL").fetchone()
            running = connection.execute(
                "SELECT count(*) FROM handler_runs WHERE handler = %s AND status <> 'done'",
                (VERIFICATION,)).fetchone()
            dead = connection.execute(
                "SELECT count(*) FILTER (WHERE queue <> 'maintenance'), "
                "count(*) FILTER (WHERE queue = 'maintenance') FROM dead_letters").fetchone()
        return {"undispatched_events": int(undispatched[0]) if undispatched else -1,
                "unfinished_verifications": int(running[0]) if running else -1,
                "dead_letters": int(dead[0]) if dead else -1,
                # periodic jobs (the relay, the audit sweep) that failed once: the next run
                # does their work, nothing waits for a replay
                "maintenance_dead_letters": int(dead[1]) if dead else -1}

    def drained() -> bool:
        now = outstanding()
        return now["undispatched_events"] == 0 and now["unfinished_verifications"] == 0

    with contextlib.suppress(ServiceError):  # what is still outstanding is reported
        wait_for(drained, 60, "the outbox to drain", interval=0.5)
    time.sleep(1.0)  # a repeat already on the wire arrives within this
    return outstanding()


def _in_window(exchange: Exchange, window: tuple[float, float], grace: float = 0.0) -> bool:
    return exchange.started <= window[1] + grace and exchange.ended >= window[0]


def _rows(platform: Platform, options: ChaosOptions, signups: SignUps, prober: Prober,
          faults: Faults, received: list[Received], mail_wait: float | None,
          pending: dict[str, int], seconds: float) -> list[Row]:
    exchanges = signups.log.snapshot() + prober.log.snapshot()
    database_windows = [f.outage for f in faults.done if f.name == "database" and f.outage]
    answered = [e for e in exchanges if e.status is not None]
    server_errors = [e for e in answered if e.status is not None and e.status >= 500]
    expected_503 = [e for e in server_errors if e.status == 503 and any(
        _in_window(e, w, OUTAGE_GRACE_S) for w in database_windows)]
    unexpected_5xx = [e for e in server_errors if e not in expected_503]
    no_answer = [e for e in exchanges if e.status is None]
    probes = prober.log.snapshot()
    probe_failures = [e for e in probes if e.status != 200]
    longest = max((e.seconds for e in exchanges), default=0.0)
    mail = tally(received, VERIFICATION, signups.accepted)
    in_flight = {address for address, first in mail.first_of_repeat.items() if any(
        0.0 <= kill - first <= IN_FLIGHT_AT_KILL_S for kill in faults.kills_at)}
    other_doubles = {address: n for address, n in mail.doubled.items() if address not in in_flight}
    kills = sum(1 for f in faults.done if f.name == "worker" and f.ran)
    statuses = Counter(str(e.status) for e in unexpected_5xx)
    figures = {
        "signups": options.signups, "accepted": len(signups.accepted),
        "refused": len(signups.refused), "requests_served": len(answered),
        "http_5xx": len(server_errors), "http_503_while_database_away": len(expected_503),
        "unexpected_5xx": len(unexpected_5xx), "unexpected_5xx_statuses": dict(statuses),
        "no_answer": len(no_answer), "longest_request_s": round(longest, 2),
        "probes": len(probes), "probe_failures": len(probe_failures),
        "longest_probe_s": round(max((e.seconds for e in probes), default=0.0), 2),
        "verification_expected": mail.expected, "verification_received": mail.received,
        "lost": len(mail.lost), "doubled": len(mail.doubled),
        "doubled_same_message_id": mail.resent, "doubled_in_flight_at_a_kill": len(in_flight),
        "mail_complete_after_s":
        None if mail_wait is None else round(mail_wait, 1), **pending,
        "worker_kills": kills, "worker_restarts": len(platform.worker.exits),
        "scheduler_restarts": len(platform.scheduler.exits),
        "broker": platform.broker_kind, "seconds": round(seconds, 1),
    }
    problems = []
    if mail.lost:
        problems.append(f"{len(mail.lost)} verification e-mail(s) lost, e.g. {mail.lost[:3]}")
    if other_doubles:
        problems.append(f"{len(other_doubles)} address(es) got the verification e-mail more than "
                        f"once, not in flight at a worker's SIGKILL ({mail.resent} of all "
                        f"{len(mail.doubled)} with the same Message-ID): "
                        f"{dict(list(other_doubles.items())[:3])}")
    if unexpected_5xx:
        problems.append(f"{len(unexpected_5xx)} 5xx outside the database outage: "
                        f"{_examples(unexpected_5xx)}")
    if no_answer:
        problems.append(f"{len(no_answer)} request(s) got no answer: {_examples(no_answer)}")
    if probe_failures:
        problems.append(f"the prober failed {len(probe_failures)} time(s): "
                        f"{_examples(probe_failures)}")
    if longest > HANG_BOUND_S:
        problems.append(f"a request took {longest:.1f} s (bound {HANG_BOUND_S:.0f} s)")
    if signups.refused:
        problems.append(f"{len(signups.refused)} sign-up(s) never accepted: "
                        f"{list(signups.refused.items())[:2]}")
    if pending.get("dead_letters", 0):
        problems.append(f"{pending['dead_letters']} dead letter(s)")
    if mail_wait is None:
        problems.append(f"not every verification e-mail arrived within "
                        f"{options.mail_timeout_s:.0f} s")
    summary = Row(
        "chaos", f"{options.signups:,} sign-ups; {kills} worker SIGKILL(s), Redis, database, "
        f"broker ({platform.broker_kind})",
        f"accepted {len(signups.accepted):,}/{options.signups:,}, served {len(answered):,}, "
        f"5xx {len(server_errors)} ({len(expected_503)} 503 while the database was away, "
        f"{len(unexpected_5xx)} other), no answer {len(no_answer)}, lost {len(mail.lost)}, "
        f"doubled {len(mail.doubled)} ({len(in_flight)} in flight at a SIGKILL), longest "
        f"{longest:.1f} s, probes failed {len(probe_failures)}/{len(probes)}",
        f"0 lost, 0 doubled but an e-mail in flight when its worker was SIGKILLed (same "
        f"Message-ID), 0 other 5xx, every probe answered, no wait > {HANG_BOUND_S:.0f} s",
        problems, figures)
    return [summary, *(_fault_row(f, exchanges) for f in faults.done)]


def _fault_row(fault: Fault, exchanges: list[Exchange]) -> Row:
    window = (fault.started, fault.ended)
    during = [e for e in exchanges if _in_window(e, window)]
    errors = [e for e in during if e.status is None or e.status >= 500]
    figures = {"after_signups": fault.after_signups, "seconds": round(fault.ended -
               fault.started, 1), "requests_during": len(during), "5xx_or_no_answer":
               len(errors), "detail": fault.detail}
    if not fault.ran:
        failed = [fault.detail] if fault.detail.startswith("failed") else []
        return Row(f"chaos/{fault.name}", fault.detail, "-", "-", failed, figures, ran=False)
    statuses = Counter("no answer" if e.status is None else str(e.status) for e in errors)
    return Row(f"chaos/{fault.name}", fault.detail,
               f"after {fault.after_signups} sign-ups; {len(during)} requests meanwhile, "
               f"5xx/no answer: {dict(statuses) or 0}",
               "served throughout (503 only while the database is away)", [], figures)


def _examples(exchanges: list[Exchange], count: int = 3) -> str:
    return "; ".join(f"{e.path} -> {e.status or e.error} after {e.seconds:.1f} s"
                     for e in exchanges[:count])


def _progress(message: str) -> None:
    print(f"proof: {message}", flush=True, file=sys.stderr)

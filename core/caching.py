"""The cache, in named regions with their TTLs: never stale after a commit, one recomputation
per key at a time, and reads that fall through to the database while the cache is away.

* **Named regions** (`REGIONS`): the seed's roles (5 min), profiles (10 min) and onboarding
  status (1 h), plus the others the hot paths read. A key is `<region>:<key>`.
* **Invalidated after commit, on every process.** A model says which cached entries its rows
  feed (`cached_under()`); whenever a session flushes such a row, those entries are deleted from
  the shared cache once the transaction has committed — whichever process committed it (web,
  worker, CLI). Changes that bypass the ORM name their entries with `invalidate_after_commit`.
* **Leases**: a miss takes a short lease on the key before it reads the database, and stores
  its value only while it still holds the lease. An invalidation deletes the lease with the
  value, so a value read before a commit can never be stored after it; and while one process
  recomputes a key, the others wait for its value instead of all reading the database at once.
* **Redis down**: reads are misses and compute from the database; invalidations that could not
  be sent are retried by this process once Redis answers again.
* **Counters**: hits, misses, invalidations and stampede waits per region, per process
  (`CachedRegions.counts()`), for /admin and for a metrics exporter.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.adapters.cache import Cache
from core.db import Database
from core.telemetry import CACHE_LOOKUPS

log = logging.getLogger(__name__)

LEASE_SECONDS = 5
# How long a reader waits for another process's recomputation before reading the database
# itself (without storing what it read).
WAIT_SECONDS = 2.0
_INFO_KEY = "cache_invalidations"


class RequestMemo:
    """What this request has read already, by value key: a request asks for several keys in one
    round trip up front (see `get_many`) and finds them here later. Beside each value, the bytes
    it came as (a value computed on a miss: as it is stored), so that what a request read can be
    compared with what another read (`request_reads`)."""

    __slots__ = ("raw", "values")

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}
        self.values: dict[str, Any] = {}  # decoded from `raw` when first asked for

    def value(self, value_key: str) -> Any:
        if value_key not in self.values:
            self.values[value_key] = json.loads(self.raw[value_key])
        return self.values[value_key]

    def forget(self, value_key: str) -> None:
        self.values.pop(value_key, None)
        self.raw.pop(value_key, None)


_request_memo: ContextVar[RequestMemo | None] = ContextVar("cache_request_memo", default=None)


def begin_request_memo() -> Token[RequestMemo | None]:
    return _request_memo.set(RequestMemo())


def end_request_memo(token: Token[RequestMemo | None]) -> None:
    try:
        _request_memo.reset(token)
    except ValueError:  # ended in another context than it began (never in Flask's own flow)
        _request_memo.set(None)


def request_reads() -> dict[str, bytes]:
    """The bytes of every entry this request has read so far, by value key (empty outside a
    request). Two requests that read the same bytes were given the same values."""
    memo = _request_memo.get()
    return memo.raw if memo is not None else {}


@dataclass(frozen=True)
class Region:
    name: str
    ttl_seconds: int

    def key(self, *parts: object) -> CacheKey:
        return _key(self, parts)


@functools.lru_cache(maxsize=16384)
def _key(region: Region, parts: tuple[object, ...]) -> CacheKey:
    """A request asks for the same few keys as the one before it: each is made once (the
    parts are ids and names, so equal parts make the same key)."""
    return CacheKey(region, ":".join(str(p) for p in parts))


@dataclass(frozen=True)
class CacheKey:
    region: Region
    key: str

    @functools.cached_property
    def value_key(self) -> str:
        return f"{self.region.name}:{self.key}"

    @property
    def lease_key(self) -> str:
        return f"lease:{self.region.name}:{self.key}"


# The seed's regions (roles 5 min, profiles 10 min, onboarding status 1 h) and the others.
SESSIONS = Region("sessions", 300)  # one logged-in browser: who, which account, since when
ROLES = Region("roles", 300)  # the accounts one identity can act as (the role switcher)
PROFILES = Region("profiles", 600)  # an identity's e-mail and whether it is confirmed
ONBOARDING = Region("onboarding", 3600)  # an account's onboarding stage, complete or not
PRACTICE_LIMITS = Region("practice-limits", 300)  # a practice's request budget (its plan)
PRACTICE_HOMES = Region("practice-homes", 600)  # a practice's dashboard: clients, invitations
ACTIVITY = Region("activity", 600)  # a person's recent security activity
UNREAD = Region("unread", 600)  # how many of an account's notifications are unread (the bell)
PRACTICE_FIGURES = Region("practice-figures", 600)  # a practice's rolled-up figures (each rollup)
REGIONS: tuple[Region, ...] = (SESSIONS, ROLES, PROFILES, ONBOARDING, PRACTICE_LIMITS,
                               PRACTICE_HOMES, ACTIVITY, UNREAD, PRACTICE_FIGURES)
_BY_NAME = {region.name: region for region in REGIONS}


@dataclass(frozen=True)
class WholeRegion:
    """Every entry of a region (a change that no single key describes, e.g. a plan's limits)."""

    region: Region


Invalidation = CacheKey | WholeRegion


class Counts:
    """Per region: hits, misses, invalidations, and waits for another's recomputation."""

    FIGURES = ("hits", "misses", "invalidations", "waits")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {region.name: dict.fromkeys(self.FIGURES, 0) for region in REGIONS}
        # The same counts for Prometheus (summed over the web processes at scrape time).
        self._exported = {(region.name, figure): CACHE_LOOKUPS.labels(region.name, figure)
                          for region in REGIONS for figure in self.FIGURES}

    def add(self, region: Region, figure: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[region.name][figure] += amount
        self._exported[region.name, figure].inc(amount)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(figures) for name, figures in self._counts.items()}


class CachedRegions:
    """The process's cache regions, on its cache adapter (Redis, or memory in embedded mode)."""

    def __init__(self, cache: Cache, *, wait_seconds: float = WAIT_SECONDS) -> None:
        self.cache = cache
        self.wait_seconds = wait_seconds
        self._counts = Counts()
        self._undelivered: set[str] = set()
        self._undelivered_lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------
    def get(self, key: CacheKey, compute: Callable[[], Any]) -> Any:
        """The cached value of `key`, or `compute()` (a JSON-able value, None included), stored
        for the region's TTL unless an invalidation came first."""
        return self.get_many([(key, compute)])[0]

    def get_many(self, wanted: Sequence[tuple[CacheKey, Callable[[], Any]]], *,
                 along: Sequence[tuple[CacheKey, Callable[[], Any]]] = ()) -> list[Any]:
        """Several keys in one round trip; each miss is computed as `get` would. Within a
        request, a key read once is not read again, and the keys `along` are read in the same
        round trip for later (outside a request there is no later: they are not read)."""
        memo = _request_memo.get()
        if memo is not None and all(key.value_key in memo.raw for key, _ in wanted):
            return [memo.value(key.value_key) for key, _ in wanted]
        asked = [*wanted, *along] if memo is not None else list(wanted)
        self._deliver_undelivered()
        raw = self.cache.get_many([key.value_key for key, _ in asked])
        values = []
        for index, (key, compute) in enumerate(asked):
            found = raw[index] if raw is not None else None
            self._counts.add(key.region, "misses" if found is None else "hits")
            if memo is None:  # only `wanted` was asked
                values.append(json.loads(found) if found is not None else
                              self._recompute(key, compute, cache_answers=raw is not None))
                continue
            if found is None:
                value = self._recompute(key, compute, cache_answers=raw is not None)
                memo.values[key.value_key], found = value, _encode(value)
            memo.raw[key.value_key] = found  # a hit is decoded when it is asked for
        if memo is None:
            return values
        return [memo.value(key.value_key) for key, _ in wanted]

    def _recompute(self, key: CacheKey, compute: Callable[[], Any], *,
                   cache_answers: bool) -> Any:
        if not cache_answers:
            return compute()
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.002
        waited = False
        while True:
            token = secrets.token_hex(8).encode()
            taken = self.cache.add(key.lease_key, token, LEASE_SECONDS)
            if taken is None:  # the cache went away meanwhile
                return compute()
            if taken:
                try:
                    value = compute()
                except BaseException:
                    # Others need not wait for a value that is not coming (a database outage
                    # would otherwise cost each of them the whole wait).
                    self.cache.release_lease(key.lease_key, token)
                    raise
                self.cache.put_under_lease(key.value_key, _encode(value), key.region.ttl_seconds,
                                           key.lease_key, token)
                return value
            if not waited:
                self._counts.add(key.region, "waits")
                waited = True
            if time.monotonic() + pause > deadline:
                return compute()  # the other recomputation is slow: read, but do not store
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            found = self.cache.get(key.value_key)
            if found is not None:
                return json.loads(found)

    # -- invalidating -------------------------------------------------------------------------
    def invalidate(self, invalidations: Iterable[Invalidation]) -> None:
        keys: list[str] = []
        memo = _request_memo.get()
        for item in invalidations:
            if memo is not None:
                _forget_in(memo, item)
            if isinstance(item, WholeRegion):
                self._counts.add(item.region, "invalidations")
                if not self.cache.delete_prefix(f"{item.region.name}:"):
                    self._remember(f"{item.region.name}:*")
                continue
            self._counts.add(item.region, "invalidations")
            keys += [item.value_key, item.lease_key]
        if keys and not self.cache.delete(*keys):
            for name in keys:
                self._remember(name)

    def _remember(self, name: str) -> None:
        with self._undelivered_lock:
            self._undelivered.add(name)

    def _deliver_undelivered(self) -> None:
        """Invalidations that failed while the cache was away, sent once it answers again (what
        was cached before the outage could otherwise outlive the change)."""
        if not self._undelivered:
            return
        with self._undelivered_lock:
            pending, self._undelivered = self._undelivered, set()
        keys = [name for name in pending if not name.endswith("*")]
        failed = [] if not keys or self.cache.delete(*keys) else keys
        for pattern in (name for name in pending if name.endswith("*")):
            if not self.cache.delete_prefix(pattern[:-1]):
                failed.append(pattern)
        for name in failed:
            self._remember(name)

    # -- figures ------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """This process's counters per region (a metrics exporter reads the same)."""
        return self._counts.snapshot()

    def invalidate_on_commit(self, db: Database) -> None:
        """Delete what a committed change of `db` made stale (see `cached_under`)."""
        _bind(db, self)


def _forget_in(memo: RequestMemo, item: Invalidation) -> None:
    if isinstance(item, WholeRegion):
        for name in [n for n in memo.raw if n.startswith(f"{item.region.name}:")]:
            memo.forget(name)
    else:
        memo.forget(item.value_key)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def region_named(name: str) -> Region:
    return _BY_NAME[name]


def changed(instance: object, *attributes: str) -> bool:
    """In `cached_under`: the row is new or deleted, or one of `attributes` changed in this
    flush (so a model can ignore changes that no cached entry shows)."""
    state = sa.inspect(instance)
    if state.pending or state.deleted or state.was_deleted or not state.has_identity:
        return True
    return any(state.attrs[name].history.has_changes() for name in attributes)


# -- invalidation after commit ---------------------------------------------------------------

def invalidate_after_commit(session: Session, *invalidations: Invalidation) -> None:
    """For changes the ORM does not see (bulk updates, Core inserts): these entries go stale
    once `session` commits."""
    session.info.setdefault(_INFO_KEY, set()).update(invalidations)


def _collect(session: Session, _flush_context: Any) -> None:
    stale: set[Invalidation] = session.info.setdefault(_INFO_KEY, set())
    for instance in (*session.new, *session.dirty, *session.deleted):
        feeds: Callable[[], Iterable[Invalidation]] | None = getattr(instance, "cached_under",
                                                                     None)
        if feeds is not None:
            stale.update(feeds())


_BOUND: weakref.WeakKeyDictionary[Database, weakref.WeakSet[CachedRegions]] = (
    weakref.WeakKeyDictionary())
_BOUND_LOCK = threading.Lock()


def _bind(db: Database, regions: CachedRegions) -> None:
    """Every live CachedRegions on `db` hears of its commits (several apps share a database in
    tests; one process has one)."""
    with _BOUND_LOCK:
        bound = _BOUND.get(db)
        if bound is None:
            bound = _BOUND[db] = weakref.WeakSet()
            _listen(db, bound)
        bound.add(regions)


def _listen(db: Database, bound: weakref.WeakSet[CachedRegions]) -> None:
    def after_commit(session: Session) -> None:
        stale = session.info.pop(_INFO_KEY, None)
        if not stale:
            return
        for regions in list(bound):
            try:
                regions.invalidate(stale)
            except Exception:
                log.exception("cache invalidation failed; entries expire with their TTL")

    event.listen(db.sessions, "after_flush", _collect)
    # Nothing is forgotten on rollback: a savepoint's rollback must not drop what the outer
    # transaction changed, and deleting an entry that did not change costs one recomputation.
    event.listen(db.sessions, "after_commit", after_commit)

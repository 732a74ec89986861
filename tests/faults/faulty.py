"""A store that wraps any other and fails some of its requests, on a seeded schedule.

``FaultyStore`` is a ``Store`` backend whose bytes come from another store's
backend methods, so the ``Store`` base logic (hash on put, verify on get,
generation checks) runs on top of the faults exactly as it runs on top of a
network. Each request kind (``Request``) has its own rates of each fault
(``Fault``); one ``random.Random(seed)`` draws them in request order, so a
failing run repeats with its seed.

The faults are what real stores do:

- ``LATENCY``: the request is slow (``sleep`` is injected: a test's clock).
- ``UNAVAILABLE``: a 5xx, nothing done (``TransientError``).
- ``TIMEOUT``: the request was done, but its answer was lost
  (``TransientError`` after the write or read happened).
- ``TORN``: a read returns only the first part of the bytes (a truncated
  body); the ``Store`` base must refuse it by digest or by JSON parse.
- ``PRECONDITION``: a 412 on a create-if-absent: another writer created the
  same object first (content addressed: the same bytes), and this one did not.
- ``CONFLICT``: a 409 on a create-if-absent (S3's
  ``ConditionalRequestConflict``), nothing done, worth another try.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from setpoint.store.base import Store
from setpoint.store.errors import TransientError
from setpoint.store.retry import NO_RETRY, Retry


class Request(enum.Enum):
    GET = "get"
    POLL = "poll"  # a conditional GET (ETag)
    PUT = "put"
    CREATE = "create"  # create-if-absent: the conditional write
    EXISTS = "exists"
    LIST = "list"
    DELETE = "delete"


class Fault(enum.Enum):
    LATENCY = "latency"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    TORN = "torn"
    PRECONDITION = "precondition"
    CONFLICT = "conflict"


# Which faults each request kind can meet: a torn body needs a body, a 412 or
# 409 needs a conditional write.
POSSIBLE: dict[Request, frozenset[Fault]] = {
    Request.GET: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT, Fault.TORN}),
    Request.POLL: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT, Fault.TORN}),
    Request.PUT: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT}),
    Request.CREATE: frozenset(
        {Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT, Fault.PRECONDITION, Fault.CONFLICT}
    ),
    Request.EXISTS: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT}),
    Request.LIST: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT}),
    Request.DELETE: frozenset({Fault.LATENCY, Fault.UNAVAILABLE, Fault.TIMEOUT}),
}


@dataclass(frozen=True)
class Schedule:
    """How often each fault strikes each kind of request (a probability per request)."""

    rates: Mapping[Request, Mapping[Fault, float]]
    latency: float = 0.25
    """Seconds a slow request takes."""

    def __post_init__(self) -> None:
        for request, faults in self.rates.items():
            impossible = set(faults) - POSSIBLE[request]
            if impossible:
                raise ValueError(
                    f"{request.value} cannot meet {sorted(f.value for f in impossible)}"
                )
            if sum(faults.values()) > 1:
                raise ValueError(f"the rates of {request.value} add up to more than 1")

    @classmethod
    def uniform(cls, rate: float, latency: float = 0.25) -> Schedule:
        """Every fault a request kind can meet, each at ``rate``."""
        return cls({r: dict.fromkeys(sorted(POSSIBLE[r], key=str), rate) for r in Request}, latency)

    def draw(self, rng: random.Random, request: Request) -> Fault | None:
        """The fault that strikes one request, or None."""
        roll = rng.random()
        for fault, rate in sorted(self.rates.get(request, {}).items(), key=lambda f: f[0].value):
            if roll < rate:
                return fault
            roll -= rate
        return None


NO_FAULTS = Schedule({})


@dataclass
class Struck:
    """One fault that struck: which request, on which key."""

    request: Request
    fault: Fault
    key: str


@dataclass
class Injector:
    """Draws faults for one schedule and remembers every one that struck."""

    schedule: Schedule
    seed: int
    sleep: Callable[[float], None] = lambda seconds: None
    struck: list[Struck] = field(default_factory=list)
    planned: list[Struck] = field(default_factory=list)
    """Faults for the next matching requests, before any drawn one."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _planned(self, request: Request, key: str) -> Fault | None:
        for i, plan in enumerate(self.planned):
            if plan.request is request and plan.key == key:
                return self.planned.pop(i).fault
        return None

    def counts(self) -> Counter[Fault]:
        return Counter(s.fault for s in self.struck)

    def draw(self, request: Request, key: str) -> Fault | None:
        fault = self._planned(request, key) or self.schedule.draw(self.rng, request)
        if fault is None:
            return None
        self.struck.append(Struck(request, fault, key))
        if fault is Fault.LATENCY:
            self.sleep(self.schedule.latency)
            return None  # slow, then done as asked
        return fault

    def torn(self, data: bytes) -> bytes:
        """The first part of ``data``: at least one byte short."""
        return data[: self.rng.randrange(len(data))] if data else data


def _unavailable(request: Request, key: str) -> TransientError:
    return TransientError(f"503 Service Unavailable: {request.value} {key}", delay=0.0)


def _timed_out(request: Request, key: str) -> TransientError:
    return TransientError(f"timed out waiting for the answer: {request.value} {key}", delay=0.0)


class FaultyStore(Store):
    """``inner``'s objects, through requests that fail as ``schedule`` says."""

    def __init__(
        self,
        inner: Store,
        schedule: Schedule,
        seed: int,
        sleep: Callable[[float], None] = lambda seconds: None,
        retry: Retry = NO_RETRY,
    ) -> None:
        """``retry``: how each request is retried, as an HTTP backend retries
        (``NO_RETRY``: every fault reaches the caller)."""
        super().__init__(retry)
        self.inner = inner
        self.injector = Injector(schedule, seed, sleep)

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def struck(self) -> list[Struck]:
        return self.injector.struck

    def fail_next(self, request: Request, fault: Fault, key: str) -> None:
        """``fault`` on the next ``request`` for ``key``, whatever the schedule says."""
        if fault not in POSSIBLE[request]:
            raise ValueError(f"{request.value} cannot meet {fault.value}")
        self.injector.planned.append(Struck(request, fault, key))

    def quiet(self) -> None:
        """No more faults from now on (a fault-free pass)."""
        self.injector.schedule = NO_FAULTS

    def _before(self, request: Request, key: str) -> Fault | None:
        """The fault for this request; raises the ones that happen before it is done."""
        fault = self.injector.draw(request, key)
        if fault is Fault.UNAVAILABLE:
            raise _unavailable(request, key)
        return fault

    def _faulty_get(self, key: str) -> bytes:
        fault = self._before(Request.GET, key)
        data = self.inner._get(key)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.GET, key)
        if fault is Fault.TORN:
            return self.injector.torn(data)
        return data

    def _faulty_get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        fault = self._before(Request.POLL, key)
        got = self.inner._get_if_changed(key, etag)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.POLL, key)
        if fault is Fault.TORN and got is not None:
            return self.injector.torn(got[0]), got[1]
        return got

    def _faulty_put(self, key: str, data: bytes) -> str | None:
        fault = self._before(Request.PUT, key)
        version = self.inner._put(key, data)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.PUT, key)
        return version

    def _faulty_put_if_absent(self, key: str, data: bytes) -> bool:
        fault = self._before(Request.CREATE, key)
        if fault is Fault.CONFLICT:
            raise TransientError(f"409 ConditionalRequestConflict: {key}", delay=0.0)
        if fault is Fault.PRECONDITION:
            # Another writer of the same content won the race: the object
            # exists, and this request did not create it.
            self.inner._put_if_absent(key, data)
            return False
        created = self.inner._put_if_absent(key, data)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.CREATE, key)
        return created

    def _faulty_exists(self, keys: list[str]) -> set[str]:
        fault = self._before(Request.EXISTS, ",".join(keys[:3]))
        found = self.inner._exists(keys)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.EXISTS, "")
        return found

    def _faulty_list(self, prefix: str) -> list[str]:
        fault = self._before(Request.LIST, prefix)
        keys = self.inner._list(prefix)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.LIST, prefix)
        return keys

    def _faulty_list_versions(self, prefix: str) -> dict[str, str]:
        fault = self._before(Request.LIST, prefix)
        versions = self.inner._list_versions(prefix)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.LIST, prefix)
        return versions

    def _faulty_delete(self, key: str) -> None:
        fault = self._before(Request.DELETE, key)
        self.inner._delete(key)
        if fault is Fault.TIMEOUT:
            raise _timed_out(Request.DELETE, key)

    # -- the backend methods: each request under ``self.retry`` ------------------

    def _get(self, key: str) -> bytes:
        return self._retrying(lambda: self._faulty_get(key), f"get {key}")

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        return self._retrying(lambda: self._faulty_get_if_changed(key, etag), f"poll {key}")

    def _put(self, key: str, data: bytes) -> str | None:
        return self._retrying(lambda: self._faulty_put(key, data), f"put {key}")

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        return self._retrying(lambda: self._faulty_put_if_absent(key, data), f"create {key}")

    def _exists(self, keys: list[str]) -> set[str]:
        return self._retrying(lambda: self._faulty_exists(keys), "exists")

    def _list(self, prefix: str) -> list[str]:
        return self._retrying(lambda: self._faulty_list(prefix), f"list {prefix}")

    def _list_versions(self, prefix: str) -> dict[str, str]:
        return self._retrying(lambda: self._faulty_list_versions(prefix), f"list {prefix}")

    def _delete(self, key: str) -> None:
        self._retrying(lambda: self._faulty_delete(key), f"delete {key}")

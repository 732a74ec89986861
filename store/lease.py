"""Leader election on the store itself: several controllers, one writer.

Controller replicas (``setpoint watch --replica NAME``) and one-off runs
(``setpoint reconcile``) take a *lease*, a small record in the store naming its
holder, an *epoch* and when it was last renewed. The holder renews it every
``ttl / 3`` seconds; another replica takes it over once it has not been renewed
for ``ttl`` seconds, and the epoch grows by one with every takeover. Every
step is a conditional write, so of two contenders exactly one wins:

- S3, the local directory, memory: one object ``controller/lease`` created with
  ``If-None-Match: *`` (an exclusive create) and replaced with ``If-Match:
  <etag>`` (``Store._put_if_match``).
- Swift, whose PUT takes only ``If-None-Match: *``: numbered, create-only
  objects ``controller/lease-n<number>``. Renewing or taking over creates the
  next number; the holder of the highest number leads. A writer that finds a
  higher number than its own after creating one (it was paused, and created a
  number pruned long ago) has lost.

A store that can do neither (Swift's s3api before 2.36 answers 501 to any
conditional PUT) raises ``ConditionalWriteUnsupported`` on the first attempt:
one controller only there.

Expiry is judged by the reader: a lease is expired when the writer's own clock
says ``renewed_at + ttl`` has passed, or when the reader has seen the same
version for ``ttl`` seconds by its own clock (so a reader whose clock is behind
still takes over in time). Clocks that disagree by more than that only make a
replica take over early; fencing keeps that safe: ``Lease.hold`` renews with a
conditional write right before the controller writes, and the controller's
writes carry the epoch (``rollout.ledger``) or are conditional on what it read
(``converge.publish``), so a deposed leader that wakes after a pause loses.

Standbys write a heartbeat ``controller/replica-<name>`` once per ``ttl``, so
``setpoint status`` can name them; the lease names the leader.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from setpoint.store.base import Store
from setpoint.store.errors import ConditionFailed, InvalidDocument, StoreError

log = structlog.get_logger("setpoint.lease")

LEASE = "lease"
NUMBERED = "lease-n"
REPLICA = "replica-"
PROBE = "lease-probe"
DEFAULT_TTL = 30.0
# Numbered lease objects kept behind the newest (Swift); older ones are pruned.
KEEP_NUMBERED = 4
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def is_replica_name(name: str) -> bool:
    """Replica names go into object names: lower-case letters, digits, ``-`` and ``_``."""
    return bool(name) and len(name) <= 64 and set(name) <= _NAME_CHARS


class LeaseLost(StoreError):
    """``holder`` no longer holds the lease at ``epoch``: another controller
    (``current``, at ``current_epoch``) does, or a write of a newer epoch is in
    the store. Whatever the pass was about to write is not written."""

    def __init__(
        self, holder: str, epoch: int | None, current: str | None, current_epoch: int | None
    ) -> None:
        now = f"{current or 'nobody'} at epoch {current_epoch}"
        super().__init__(f"lease lost: {holder} (epoch {epoch}) no longer leads; {now} does")
        self.holder = holder
        self.epoch = epoch
        self.current = current
        self.current_epoch = current_epoch


class LeaseBusy(StoreError):
    """Another controller (``holder``, at ``epoch``) held the lease for all of
    the ``waited`` seconds."""

    def __init__(self, holder: str | None, epoch: int, waited: float) -> None:
        super().__init__(
            f"another controller holds the lease: {holder} (epoch {epoch}), "
            f"still after waiting {waited:g}s"
        )
        self.holder = holder
        self.epoch = epoch
        self.waited = waited


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object holds. ``holder`` None: released, free to take."""

    holder: str | None
    epoch: int
    renewed_at: float
    ttl: float
    # New with every write: a writer whose response was lost recognises its own write.
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "ControllerLease",
            "holder": self.holder,
            "epoch": self.epoch,
            "renewed_at": self.renewed_at,
            "ttl": self.ttl,
            "token": self.token,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LeaseRecord:
        try:
            holder = doc.get("holder")
            record = cls(
                holder=None if holder is None else str(holder),
                epoch=int(doc["epoch"]),
                renewed_at=float(doc["renewed_at"]),
                ttl=float(doc["ttl"]),
                token=str(doc.get("token", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDocument("controller lease", str(exc)) from exc
        if record.epoch < 0 or not math.isfinite(record.ttl) or record.ttl <= 0:
            raise InvalidDocument("controller lease", "epoch or ttl out of range")
        return record


class _Slot(Protocol):
    """Where a lease lives: read it with its version; write it only over that version."""

    def check(self) -> None:
        """``ConditionalWriteUnsupported`` if the store cannot hold this lease."""
        ...

    def read(self) -> tuple[LeaseRecord, str] | None: ...

    def write(self, record: LeaseRecord, version: str | None) -> str:
        """The new version; ``ConditionFailed`` if ``version`` is no longer current."""
        ...


@dataclass
class _ReplacedSlot:
    """One object, replaced by compare-and-swap (S3, local directory, memory)."""

    store: Store
    name: str = LEASE
    _checked: bool = False

    def check(self) -> None:
        """Refuse at once a store that can create but not replace conditionally
        (Swift's s3api 2.36 answers ``If-None-Match: *`` but 501 to ``If-Match``),
        rather than lose the lease at its first renewal: create and replace a
        probe document. A lost race still proves the condition was evaluated."""
        if self._checked:
            return
        with contextlib.suppress(ConditionFailed):
            got = self.store.read_controller_doc_versioned(PROBE)
            probe = {"kind": "ConditionalWriteProbe"}
            version = self.store.write_controller_doc_if(
                PROBE, {**probe, "n": 0}, None if got is None else got[1]
            )
            self.store.write_controller_doc_if(PROBE, {**probe, "n": 1}, version)
        self._checked = True

    def read(self) -> tuple[LeaseRecord, str] | None:
        got = self.store.read_controller_doc_versioned(self.name)
        return None if got is None else (LeaseRecord.from_dict(got[0]), got[1])

    def write(self, record: LeaseRecord, version: str | None) -> str:
        return self.store.write_controller_doc_if(self.name, record.to_dict(), version)


@dataclass
class _NumberedSlot:
    """Numbered create-only objects (Swift): the version is the number."""

    store: Store
    prefix: str = NUMBERED
    _seen: dict[int, LeaseRecord] = field(default_factory=dict)

    def check(self) -> None:
        """Create-if-absent is what every Swift does: nothing to probe."""

    def _name(self, number: int) -> str:
        return f"{self.prefix}{number:012d}"

    def _numbers(self) -> list[int]:
        out = []
        for name in self.store.list_controller_docs(self.prefix):
            rest = name[len(self.prefix) :]
            if rest.isdigit():
                out.append(int(rest))
        return sorted(out)

    def read(self) -> tuple[LeaseRecord, str] | None:
        # One listing; the newest object is read only when its number is new.
        numbers = self._numbers()
        if not numbers:
            return None
        top = numbers[-1]
        if top not in self._seen:
            doc = self.store.read_controller_doc(self._name(top))
            if doc is None:
                return None  # pruned between the listing and the read: as good as absent
            self._seen = {top: LeaseRecord.from_dict(doc)}
        return self._seen[top], str(top)

    def write(self, record: LeaseRecord, version: str | None) -> str:
        number = (int(version) if version else 0) + 1
        if not self.store.create_controller_doc(self._name(number), record.to_dict()):
            raise ConditionFailed(self._name(number), version)
        numbers = self._numbers()
        if numbers and numbers[-1] > number:
            # Created a number long pruned, after a pause: a newer lease is in force.
            with contextlib.suppress(StoreError):
                self.store.delete_controller_doc(self._name(number))
            raise ConditionFailed(self._name(number), version)
        for old in numbers:
            if old < number - KEEP_NUMBERED:
                with contextlib.suppress(StoreError):
                    self.store.delete_controller_doc(self._name(old))
        self._seen = {number: record}
        return str(number)


def slot_for(store: Store) -> _Slot:
    return _NumberedSlot(store) if store.create_only_leases else _ReplacedSlot(store)


@dataclass
class Lease:
    """``holder``'s claim on the store's lease.

    ``try_acquire`` makes one attempt (renew if held, take over if free or
    expired); ``hold`` is the fence a controller calls right before it writes;
    ``release`` hands the lease on at once. ``epoch`` is set while held.
    ``epoch_floor`` gives the highest epoch the store's own documents carry, so
    a lease created afresh (first use, or a store the fleet moved to) starts
    above it. ``holder_gone`` tells of holders known to have stopped.
    """

    store: Store
    holder: str
    ttl: float = DEFAULT_TTL
    clock: Callable[[], float] = time.time
    epoch_floor: Callable[[], int] | None = None
    # Says when a holder is known to have stopped (a process of this host that
    # no longer runs): its lease is free at once instead of after its ttl.
    holder_gone: Callable[[str], bool] | None = None
    epoch: int | None = None
    slot: _Slot = field(init=False)
    # What this replica last saw: the record, its version, and when (by our clock)
    # that version was first seen.
    seen: LeaseRecord | None = field(default=None, init=False)
    _version: str | None = field(default=None, init=False)
    _seen_since: float = field(default=0.0, init=False)
    renewed_at: float | None = field(default=None, init=False)
    _seen_checked: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.ttl <= 0 or not math.isfinite(self.ttl):
            raise ValueError(f"lease ttl must be a positive number, not {self.ttl!r}")
        self.slot = slot_for(self.store)

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3

    @property
    def held(self) -> bool:
        return self.epoch is not None

    @property
    def fences_writes(self) -> bool:
        """Whether the store can make every controller write conditional (not Swift)."""
        return not self.store.create_only_leases

    def _observe(self, got: tuple[LeaseRecord, str] | None, now: float) -> None:
        version = None if got is None else got[1]
        if got is None or version != self._version or self.seen is None:
            self._seen_since = now
        self.seen = None if got is None else got[0]
        self._version = version

    def expired(self, record: LeaseRecord, now: float) -> bool:
        if record.holder is None:
            return True
        if self.holder_gone is not None and self.holder_gone(record.holder):
            return True
        return now >= record.renewed_at + record.ttl or now - self._seen_since >= record.ttl

    def _write(self, epoch: int, holder: str | None, now: float) -> bool:
        record = LeaseRecord(holder, epoch, now, self.ttl)
        try:
            version = self.slot.write(record, self._version)
        except ConditionFailed:
            got = self.slot.read()
            if got is None or got[0].token != record.token:
                self._observe(got, self.clock())
                self._lost()
                return False
            version = got[1]  # our write landed; only its answer was lost
        self._observe((record, version), now)
        if holder is None:
            self.epoch = self.renewed_at = None
            return False
        if self.epoch != epoch:
            log.info("lease_acquired", holder=self.holder, epoch=epoch)
        self.epoch = epoch
        self.renewed_at = now
        return True

    def _lost(self) -> None:
        if self.epoch is not None:
            current = self.seen
            log.warning(
                "lease_lost",
                holder=self.holder,
                epoch=self.epoch,
                now_held_by=current.holder if current else None,
                now_epoch=current.epoch if current else None,
            )
        self.epoch = self.renewed_at = None

    def try_acquire(self) -> bool:
        """One attempt: renew the lease if this holder has it, take it if it is
        free or expired. True when held afterwards. Costs one read, plus one
        conditional write when it renews or takes over."""
        self.slot.check()
        got = self.slot.read()
        now = self.clock()
        self._observe(got, now)
        if got is None:
            floor = self.epoch_floor() if self.epoch_floor else 0
            return self._write(max(floor, 0) + 1, self.holder, now)
        record = got[0]
        if self.epoch is not None and record.holder == self.holder and record.epoch == self.epoch:
            return self._write(record.epoch, self.holder, now)
        if self.epoch is not None:
            self._lost()  # it moved on without us
        if self.expired(record, now):
            return self._write(record.epoch + 1, self.holder, now)
        return False

    def renew(self) -> bool:
        """Renew a held lease with one conditional write; try to acquire otherwise."""
        if self.epoch is None:
            return self.try_acquire()
        return self._write(self.epoch, self.holder, self.clock())

    def renew_due(self) -> bool:
        """Whether a renewal (or, for a standby, another look) is due now."""
        last = self.renewed_at if self.epoch is not None else self._seen_checked
        return last is None or self.clock() - last >= self.renew_interval

    def poll(self) -> bool:
        """The daemon's step: renew or look again when due, and say whether held.
        A standby costs one read per renewal interval, the leader one write."""
        if self.renew_due():
            self._seen_checked = self.clock()
            self.renew()
        return self.held

    def hold(self) -> int:
        """The fence before a write: renew with a conditional write, which succeeds
        only while this holder still has the lease at its epoch. The epoch; or
        ``LeaseLost``."""
        epoch = self.epoch
        if epoch is None or not self._write(epoch, self.holder, self.clock()):
            current = self.seen
            raise LeaseLost(
                self.holder,
                epoch,
                current.holder if current else None,
                current.epoch if current else None,
            )
        return epoch

    def acquire(self, wait: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Hold the lease, trying for up to ``wait`` seconds; ``LeaseBusy`` otherwise."""
        start = self.clock()
        while not self.try_acquire():
            waited = self.clock() - start
            if waited >= wait:
                current = self.seen
                raise LeaseBusy(
                    current.holder if current else None, current.epoch if current else 0, waited
                )
            sleep(min(self.renew_interval, max(wait - waited, 0.0)) or self.renew_interval)

    def release(self) -> None:
        """Hand the lease on now (a standby takes it at its next look)."""
        if self.epoch is None:
            return
        with contextlib.suppress(StoreError):
            self._write(self.epoch, None, self.clock())
        self.epoch = self.renewed_at = None
        log.info("lease_released", holder=self.holder)


# -- standbys' heartbeats, and what status shows -------------------------------------


def write_heartbeat(store: Store, name: str, role: str, now: float, ttl: float) -> None:
    store.write_controller_doc(
        REPLICA + name,
        {"kind": "ControllerReplica", "name": name, "role": role, "seen_at": now, "ttl": ttl},
    )


def remove_heartbeat(store: Store, name: str) -> None:
    with contextlib.suppress(StoreError):
        store.delete_controller_doc(REPLICA + name)


@dataclass(frozen=True)
class Replica:
    name: str
    role: str  # leader | standby
    seen_at: float | None
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "seen_at": self.seen_at, "alive": self.alive}


@dataclass(frozen=True)
class LeaseStatus:
    leader: str | None
    epoch: int
    renewed_at: float | None
    expired: bool
    standbys: list[Replica]

    def to_dict(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "epoch": self.epoch,
            "renewed_at": self.renewed_at,
            "expired": self.expired,
            "standbys": [r.to_dict() for r in self.standbys],
        }

    @property
    def worth_telling(self) -> bool:
        """Whether an operator needs the controllers line: a controller holds the
        lease now (a replica, or a ``reconcile`` in progress) or replicas stand by.
        A lease an ordinary ``reconcile`` took and released tells nothing."""
        return self.leader is not None or bool(self.standbys)

    def lines(self) -> list[str]:
        if self.leader is None:
            head = f"controllers: no leader (epoch {self.epoch})"
        else:
            state = "EXPIRED" if self.expired else "leading"
            head = f"controllers: {self.leader} {state} (epoch {self.epoch})"
        names = [f"{r.name}{'' if r.alive else ' (silent)'}" for r in self.standbys]
        return [head + (f"; standbys: {', '.join(names)}" if names else "; no standbys")]


def lease_status(store: Store, now: float) -> LeaseStatus | None:
    """Who leads and who stands by, or None if no controller ever took the lease.
    Only reads: works on a store that cannot hold a lease too."""
    got = slot_for(store).read()
    if got is None:
        return None
    record = got[0]
    expired = record.holder is None or now >= record.renewed_at + record.ttl
    standbys = []
    for doc_name in store.list_controller_docs(REPLICA):
        name = doc_name[len(REPLICA) :]
        if name == record.holder and not expired:
            continue
        doc = store.read_controller_doc(doc_name) or {}
        raw = doc.get("seen_at")
        seen = float(raw) if isinstance(raw, (int, float)) else None
        ttl = float(doc.get("ttl") or DEFAULT_TTL)
        # Heartbeats come once per ttl: silent after two missed.
        alive = seen is not None and now < seen + 2 * ttl
        standbys.append(Replica(name, "standby", seen, alive))
    return LeaseStatus(
        None if expired else record.holder, record.epoch, record.renewed_at, expired, standbys
    )

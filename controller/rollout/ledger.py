"""The controller's own record in the store: rollouts in flight, quarantine, waits.

The controller keeps no state on its machine; what it must remember between
passes and that neither git nor the reports can tell it lives in one small
document, ``controller/ledger`` in the store, written by the controller only:

- ``rollouts``: per deployment whose change is being rolled out, the batches
  started, when the last one finished (``pause_time`` counts from there), when
  each server was given its new entry (timeouts count from there), the entry
  each server had last *succeeded* with before the change (what ``rollback``
  goes back to: the agent's report no longer says once a new digest ran), and
  the progress shown by ``setpoint status``.
- ``quarantine``: per deployment and server, a digest that failed (or timed
  out) there; it is not published again until a commit renders a different
  digest or ``setpoint retry`` lifts it.
- ``waiting``: why each waiting deployment waits, for ``setpoint status``.
- ``cycles``: rounds of each declared contextualization cycle.
- ``reverse``: ``update_order: reverse`` deployments whose change waits for
  their dependents to roll out first, and whether those are COMPLETE.
- ``retired``: servers the store holds that the inventory no longer lists, and
  the commit they left it at: ``setpoint status`` shows them apart, and
  ``setpoint forget`` removes them.
- ``notified``: the events (rollout started, batch failed, ...) notifications
  were sent for, by key (``controller.observe.events``), so that a restarted
  controller never sends one again.

It is rewritten only when its content changes, so an idle pass writes nothing.
A controller holding the lease (``store.lease``) writes it with the lease's
``epoch`` in it, and only over the version it read at the start of its pass:
a deposed leader's write loses to a newer leader's, and a ledger a newer
epoch wrote is never replaced by an older one.
Losing it loses no configuration: the next pass starts new rollouts from what
the pointers and reports say (only rollback targets and quarantines are lost).

A signing controller signs the ledger with its pointer key (``key`` and
``signature`` fields, the signature over the rest) and trusts only a ledger
it signed: a rollback target is a digest it will sign into a pointer, so one
written by anyone else is treated as lost (sign only what you verified).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from setpoint.controller.errors import SetpointError
from setpoint.store.base import Store
from setpoint.store.digest import canonical_json
from setpoint.store.documents import ManifestEntry
from setpoint.store.errors import InvalidDocument
from setpoint.store.lease import LeaseLost
from setpoint.store.signing import PublicKey, SignatureError, SigningKey, verify_signed

log = structlog.get_logger("setpoint.ledger")

LEDGER = "ledger"


@dataclass
class Rollout:
    """One deployment's change, batch by batch."""

    deployment: str
    commit: str
    batches: int = 0
    batch: list[str] = field(default_factory=list)
    batch_done_at: float | None = None
    started: dict[str, float] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    # The entry that last succeeded on each server before this change (None:
    # nothing had), as a manifest entry dict.
    good: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    outcome: str = "rolling"  # rolling | halted | rolled_back
    progress: dict[str, Any] = field(default_factory=dict)
    # Servers given back their last good entry by a rollback (the commit's record names them).
    rolled_back: list[str] = field(default_factory=list)

    def good_entry(self, server: str) -> ManifestEntry | None:
        doc = self.good.get(server)
        return ManifestEntry.from_dict(doc) if doc is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "batches": self.batches,
            "batch": list(self.batch),
            "batch_done_at": self.batch_done_at,
            "started": dict(sorted(self.started.items())),
            "targets": dict(sorted(self.targets.items())),
            "good": dict(sorted(self.good.items())),
            "outcome": self.outcome,
            "progress": self.progress,
            **({"rolled_back": list(self.rolled_back)} if self.rolled_back else {}),
        }

    @classmethod
    def from_dict(cls, name: str, doc: dict[str, Any]) -> Rollout:
        return cls(
            deployment=name,
            commit=str(doc.get("commit", "")),
            batches=int(doc.get("batches", 0)),
            batch=[str(s) for s in doc.get("batch", [])],
            batch_done_at=doc.get("batch_done_at"),
            started={str(k): float(v) for k, v in (doc.get("started") or {}).items()},
            targets={str(k): str(v) for k, v in (doc.get("targets") or {}).items()},
            good=dict(doc.get("good") or {}),
            outcome=str(doc.get("outcome", "rolling")),
            progress=dict(doc.get("progress") or {}),
            rolled_back=[str(s) for s in doc.get("rolled_back") or []],
        )


@dataclass
class Quarantined:
    config: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "reason": self.reason}


@dataclass
class Ledger:
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    quarantine: dict[str, dict[str, Quarantined]] = field(default_factory=dict)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    cycles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # deployment -> server -> {config, count}: ``setpoint retry`` of that digest there
    retries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # ``update_order: reverse`` deployments held while their dependents roll out:
    # deployment -> {targets: {server: digest held back}, ready: dependents COMPLETE}
    reverse: dict[str, dict[str, Any]] = field(default_factory=dict)
    # server -> the commit at which it left the inventory (still in the store)
    retired: dict[str, str] = field(default_factory=dict)
    # Keys of the events notifications went out for (``controller.observe.events``).
    notified: list[str] = field(default_factory=list)
    # The lease epoch of the controller that wrote it (None: written without a lease).
    epoch: int | None = None
    # The canonical bytes of what was last read from the store or written to it
    # (signature aside), to write only on change; None: nothing stored. Bytes,
    # not the document: a deep copy of a 10,000-server ledger costs ten times
    # its encoding.
    loaded: bytes | None = None
    # The key that signed the ledger as stored (None: unsigned, or nothing stored).
    signed_by: str | None = None
    # The stored document's version (None: nothing stored, or not known).
    version: str | None = None

    def quarantined(self, deployment: str, server: str) -> Quarantined | None:
        return self.quarantine.get(deployment, {}).get(server)

    def quarantine_add(self, deployment: str, server: str, config: str, reason: str) -> None:
        self.quarantine.setdefault(deployment, {})[server] = Quarantined(config, reason)

    def retry_count(self, deployment: str, server: str, config: str) -> int:
        """How often ``setpoint retry`` asked for ``config`` on ``server`` again."""
        got = self.retries.get(deployment, {}).get(server)
        return int(got["count"]) if got and got.get("config") == config else 0

    def quarantine_lift(
        self, deployment: str, server: str | None = None, count_retry: bool = False
    ) -> list[str]:
        """Lift quarantine on ``deployment`` (on one server, or all); the servers lifted.

        With ``count_retry`` (``setpoint retry``), the digest's retry count goes
        up, which tells the agent to try a digest that failed for good again.
        """
        held = self.quarantine.get(deployment, {})
        lifted = sorted(held) if server is None else [s for s in held if s == server]
        for s in lifted:
            if count_retry:
                config = held[s].config
                count = self.retry_count(deployment, s, config) + 1
                self.retries.setdefault(deployment, {})[s] = {"config": config, "count": count}
            del held[s]
        if not held:
            self.quarantine.pop(deployment, None)
        return lifted

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "ControllerLedger",
            "rollouts": {k: r.to_dict() for k, r in sorted(self.rollouts.items())},
            "quarantine": {
                d: {s: q.to_dict() for s, q in sorted(held.items())}
                for d, held in sorted(self.quarantine.items())
                if held
            },
            "waiting": self.waiting,
            "cycles": dict(sorted(self.cycles.items())),
            "retries": {d: dict(sorted(r.items())) for d, r in sorted(self.retries.items()) if r},
            **({"reverse": dict(sorted(self.reverse.items()))} if self.reverse else {}),
            **({"retired": dict(sorted(self.retired.items()))} if self.retired else {}),
            **({"notified": sorted(self.notified)} if self.notified else {}),
            **({"epoch": self.epoch} if self.epoch is not None else {}),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Ledger:
        if doc is None:
            return cls(loaded=None)
        quarantine = {
            str(d): {
                str(s): Quarantined(str(q.get("config", "")), str(q.get("reason", "")))
                for s, q in (held or {}).items()
            }
            for d, held in (doc.get("quarantine") or {}).items()
        }
        return cls(
            rollouts={
                str(k): Rollout.from_dict(str(k), v) for k, v in (doc.get("rollouts") or {}).items()
            },
            quarantine=quarantine,
            waiting=list(doc.get("waiting") or []),
            cycles=dict(doc.get("cycles") or {}),
            retries={str(d): dict(r) for d, r in (doc.get("retries") or {}).items()},
            reverse={str(d): dict(r) for d, r in (doc.get("reverse") or {}).items()},
            retired={str(s): str(c) for s, c in (doc.get("retired") or {}).items()},
            notified=[str(k) for k in doc.get("notified") or []],
            epoch=int(doc["epoch"]) if isinstance(doc.get("epoch"), int) else None,
            loaded=canonical_json(doc),
        )

    @property
    def changed(self) -> bool:
        now = self.to_dict()
        return self._differs(now, canonical_json(now))

    def _differs(self, now: dict[str, Any], encoded: bytes) -> bool:
        """Whether ``now`` (this ledger's ``to_dict``, encoded) differs from what was read."""
        if self.loaded is None:
            # Nothing stored yet: an empty ledger need not be written.
            kinds = (
                "rollouts",
                "quarantine",
                "waiting",
                "cycles",
                "retries",
                "reverse",
                "retired",
                "notified",
            )
            return any(now.get(k) for k in kinds)
        return encoded != self.loaded


class LedgerError(SetpointError):
    """The ledger cannot be rewritten as asked; ``key`` names the key that signed it."""

    def __init__(self, message: str, key: str | None) -> None:
        super().__init__(message)
        self.key = key


DOCUMENT = f"controller/{LEDGER}"


def _payload(doc: dict[str, Any]) -> bytes:
    """The bytes the ledger's signature covers: the document without it."""
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def _lost(event: str, reason: str) -> Ledger:
    log.warning(event, document=DOCUMENT, reason=reason, treated_as="lost: a fresh ledger")
    # Loaded as "something" no ledger encodes to: the fresh ledger replaces what is stored.
    return Ledger(loaded=b"")


def read_ledger(
    store: Store, trusted: dict[str, PublicKey] | None = None, versioned: bool = False
) -> Ledger:
    """The ledger in the store; with ``trusted``, only if one of those keys signed it.

    A signing controller passes the keys it trusts: it takes rollback targets
    and quarantines only from a ledger it signed itself, and treats any other
    (forged, unsigned, unreadable) as lost. Without ``trusted`` (an unsigned
    controller, ``setpoint status``) the ledger is read as it is; one that
    cannot be read is lost all the same, so it never stops a pass.

    A ledger refused once is read once more before it is taken as lost: a
    torn read (a dropped connection mid-body) reads whole the second time,
    and losing the ledger to it would lift every quarantine.

    ``versioned``: also learn the stored version (``Ledger.version``), for the
    conditional write of a controller under the lease.
    """
    first = _read_once(store, trusted, versioned)
    if isinstance(first, Ledger):
        return first
    second = _read_once(store, trusted, versioned)
    if isinstance(second, Ledger):
        return second
    event, reason, version = second
    lost = _lost(event, reason)
    lost.version = version  # what a fenced write replaces: the document refused
    return lost


def _read_once(
    store: Store, trusted: dict[str, PublicKey] | None, versioned: bool
) -> Ledger | tuple[str, str, str | None]:
    """The ledger, or (event, reason, its version if known) why it cannot be used."""
    version: str | None = None
    try:
        if versioned:
            got = store.read_controller_doc_versioned(LEDGER)
            doc, version = got if got is not None else (None, None)
        else:
            doc = store.read_controller_doc(LEDGER)
    except InvalidDocument as exc:
        return "ledger_invalid", exc.reason, None
    if doc is None:
        return Ledger()
    key = doc.get("key") if isinstance(doc.get("key"), str) else None
    signature = doc.get("signature") if isinstance(doc.get("signature"), str) else None
    if trusted is not None:
        if not key or not signature:
            return "ledger_not_trusted", "the ledger is not signed", version
        try:
            verify_signed(trusted, key, signature, _payload(doc))
        except SignatureError as exc:
            return "ledger_not_trusted", exc.reason, version
    try:
        ledger = Ledger.from_dict({k: v for k, v in doc.items() if k not in ("key", "signature")})
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return "ledger_invalid", f"unexpected content: {exc}", version
    ledger.signed_by = key
    ledger.version = version
    return ledger


def ledger_epoch(store: Store) -> int:
    """The lease epoch the stored ledger names (0: none): where a new lease starts above."""
    try:
        doc = store.read_controller_doc(LEDGER) or {}
    except InvalidDocument:
        return 0
    epoch = doc.get("epoch")
    return epoch if isinstance(epoch, int) else 0


def write_ledger(
    store: Store,
    ledger: Ledger,
    key: SigningKey | None = None,
    epoch: int | None = None,
    conditional: bool = False,
    fence: Callable[[], object] | None = None,
) -> bool:
    """Write the ledger if it changed, signed with ``key``; whether it was written.

    A ledger signed by another key (the one rotated away from) is signed again
    with ``key`` even if nothing else changed.

    ``epoch``: the lease epoch of the writer, recorded in the ledger; a ledger
    of a newer epoch is never replaced (``LeaseLost``). ``conditional``: write
    only over the version read (``ConditionFailed`` if another write came
    since); a ledger that could not be read at all is replaced as before.
    ``fence`` (``Lease.hold``) is called right before a write, and only then.
    """
    if epoch is not None:
        if ledger.epoch is not None and ledger.epoch > epoch:
            raise LeaseLost("this controller", epoch, None, ledger.epoch)
        ledger.epoch = epoch
    # Encoded once: whether it changed, and what it is known as once written.
    doc = ledger.to_dict()
    encoded = canonical_json(doc)
    resign = key is not None and ledger.loaded is not None and ledger.signed_by != key.name
    if not ledger._differs(doc, encoded) and not resign:
        return False
    if fence is not None:
        fence()
    stored = dict(doc)
    if key is not None:
        stored["key"] = key.name
        stored["signature"] = key.sign(_payload(stored))
    if conditional and (ledger.version is not None or ledger.loaded is None):
        ledger.version = store.write_controller_doc_if(LEDGER, stored, ledger.version)
    else:
        store.write_controller_doc(LEDGER, stored)
    ledger.loaded = encoded
    ledger.signed_by = key.name if key is not None else None
    return True


def lift_quarantine(
    store: Store, deployment: str, server: str | None = None, key: SigningKey | None = None
) -> list[str]:
    """``setpoint retry``: publish ``deployment``'s failed digest again on the next pass.

    A signed ledger is rewritten only with ``key``: unsigned, the controller
    would treat it as lost, and the quarantine with every rollback target.
    """
    doc = store.read_controller_doc(LEDGER)
    if key is None and doc is not None and doc.get("signature"):
        signer = doc.get("key") if isinstance(doc.get("key"), str) else None
        raise LedgerError(
            f"{DOCUMENT} is signed by key {signer!r}; give --signing-key FILE to rewrite it "
            "(the controller treats an unsigned ledger as lost)",
            signer,
        )
    ledger = read_ledger(store, {key.name: key.public()} if key is not None else None)
    lifted = ledger.quarantine_lift(deployment, server, count_retry=True)
    if lifted:
        write_ledger(store, ledger, key)
    return lifted

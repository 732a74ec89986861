"""``setpoint move``: hand a running fleet to another store without touching a server.

In this order, so that an agent never follows a redirect to something missing:

1. Copy what the fleet needs to the new store: every blob the current pointers
   reach (manifests, derived configs, files and directory zips), the blobs the
   ledger's rollback entries name (what a rollback goes back to), the ledger
   itself and the agents' last reports (their outputs keep feeding other
   deployments' inputs; a copied report answers an older generation, so it
   never counts as the agent having followed).
2. Write each server's pointer at the new store, signed as always, at a
   generation above the old one, with capability URLs issued by the new store
   when it has them (Swift, S3).
3. Record the move in ``controller/move`` at the new store: where from, when,
   the deadline, and each server's generation there. An agent has followed
   when it reports that generation (or a later one) at the new store;
   ``setpoint status`` lists those that have not after the deadline.
4. Publish at the old store, per server, one more signed generation whose
   pointer carries ``moved_to`` (``{url, capabilities}`` of the new location).
   A verified ``moved_to`` makes the agent switch for good. ``controller/moved``
   at the old store says where the fleet went.

Only pointers whose signature verifies with a key the controller trusts are
moved (``converge.trust``, as a reconcile pass builds only on those): a pointer
someone with write access to the old store planted is not copied, and its
server gets no redirect signed over it; the move names it.

The signing key is the controller's, so trust does not change. Handing a
fleet to another controller is: reconcile with ``--announce-key`` of the new
controller's key until agents have it, then move (also with
``--announce-key``), then the new controller reconciles the new store.

Moving again (after a crash) is safe: servers whose old pointer already
carries ``moved_to`` are left as they are, blobs are create-if-absent, and a
pointer already written at the new store is superseded by a higher generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from setpoint.controller.converge.capabilities import issue
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.trust import refusal, trusted_pointers
from setpoint.controller.errors import SetpointError
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.controller.wording import counted
from setpoint.store.base import Store
from setpoint.store.digest import is_digest
from setpoint.store.documents import Manifest, Pointer
from setpoint.store.errors import NotFound
from setpoint.store.timestamps import format_timestamp as iso

log = structlog.get_logger("setpoint.move")

NOT_MOVED = "not moved: nothing of it is copied, and its server gets no redirect"
MOVE = "move"  # controller/move at the new store
MOVED = "moved"  # controller/moved at the old store
DEFAULT_DEADLINE = 3600.0


class MoveError(SetpointError):
    """The fleet cannot be moved as asked; nothing was redirected."""


@dataclass
class MoveResult:
    source: str
    target: str
    deadline: float
    # server -> its generation at the new store
    servers: dict[str, int] = field(default_factory=dict)
    already_moved: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    # Blobs the ledger names that the old store no longer holds (rollback targets lost).
    lost: list[str] = field(default_factory=list)
    # server -> why its pointer at the source is not trusted: not moved.
    untrusted: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "deadline": iso(self.deadline),
            "servers": dict(sorted(self.servers.items())),
            "already_moved": self.already_moved,
            "copied": len(self.copied),
            "lost": self.lost,
            "untrusted": dict(sorted(self.untrusted.items())),
        }


def config_blobs(store: Store, config: str, bundles: dict[str, str]) -> set[str]:
    """A derived config and the zips (or files) it attaches."""
    body = store.get_json_blob(config, "config")
    out = {config}
    for ref in (body.get("files") or {}).values():
        tree = ref.get("digest") if isinstance(ref, dict) else None
        if isinstance(tree, str) and is_digest(tree):
            out.add(bundles.get(tree, tree))
    return out


def manifest_blobs(store: Store, digest: str) -> set[str]:
    """Every blob an agent fetches for the manifest ``digest``, the manifest included."""
    manifest = Manifest.from_dict(store.get_json_blob(digest, "manifest"))
    out = {digest}
    for entry in manifest.fetched:
        out |= config_blobs(store, entry.config, manifest.bundles)
    return out


def ledger_blobs(store: Store, ledger: dict[str, Any]) -> set[str]:
    """Blobs the ledger's rollouts name: rollback entries (with their files) and targets."""
    out: set[str] = set()
    for rollout in (ledger.get("rollouts") or {}).values():
        if not isinstance(rollout, dict):
            continue
        for digest in (rollout.get("targets") or {}).values():
            if is_digest(digest):
                out.add(digest)
        for good in (rollout.get("good") or {}).values():
            if not isinstance(good, dict) or not is_digest(good.get("config")):
                continue
            bundles = {k: v for k, v in (good.get("bundles") or {}).items() if is_digest(v)}
            try:
                out |= config_blobs(store, good["config"], bundles)
            except NotFound:
                out.add(good["config"])  # reported as lost by the copy
    return out


def _copy(source: Store, target: Store, digests: Iterable[str], result: MoveResult) -> set[str]:
    """Copy the blobs ``target`` lacks, side by side on the target's pool; returns
    the digests ``source`` does not hold either."""

    def copy(digest: str) -> bool:
        try:
            data = source.get_blob(digest)  # re-hashed on the way
        except NotFound:
            return False
        target.put_blob(data)
        return True

    wanted = sorted(target.find_missing(digests))
    absent: set[str] = set()
    for digest, copied in zip(wanted, target.pool.map(copy, wanted), strict=True):
        if copied:
            result.copied.append(digest)
        else:
            absent.add(digest)
    return absent


def _pointers_to_move(
    source: Store, policy: PointerPolicy, result: MoveResult
) -> dict[str, Pointer]:
    """The pointers of ``source`` not moved yet; those already moved noted in ``result``."""
    pointers: dict[str, Pointer] = {}
    listed = source.list_servers()
    stored = dict(zip(listed, source.pool.map(source.read_pointer, listed), strict=True))
    trusted = stored
    if policy.signing_key is not None:
        trusted = trusted_pointers(stored, policy, treated_as=NOT_MOVED)
    for server, pointer in sorted(stored.items()):
        if pointer is None:
            continue
        if trusted[server] is None:
            result.untrusted[server] = refusal(pointer, policy.verifier()) or "not verified"
            continue
        if pointer.moved_to is not None:
            result.already_moved.append(server)
            continue
        if pointer.key is not None and policy.signing_key is None:
            raise MoveError(
                f"the pointer of {server} is signed (key {pointer.key!r}): give --signing-key, "
                "or its agent would refuse the redirect"
            )
        pointers[server] = pointer
    return pointers


def _copy_blobs(
    source: Store, target: Store, pointers: dict[str, Pointer], result: MoveResult
) -> dict[str, set[str]]:
    """Copy every blob the pointers reach, then the ledger and what it names;
    returns manifest digest -> the blobs its agents fetch."""
    manifests = sorted({p.manifest for p in pointers.values()})
    needs = dict(
        zip(
            manifests,
            source.pool.map(lambda digest: manifest_blobs(source, digest), manifests),
            strict=True,
        )
    )
    reachable: set[str] = set().union(*needs.values())
    absent = _copy(source, target, reachable, result)
    if absent:
        raise MoveError(f"the old store lacks blobs its pointers name: {sorted(absent)}")
    ledger = source.read_controller_doc(LEDGER)
    if ledger is not None:
        result.lost = sorted(_copy(source, target, ledger_blobs(source, ledger), result))
        target.write_controller_doc(LEDGER, ledger)
    return needs


def _copy_reports(source: Store, target: Store, servers: list[str]) -> None:
    """Copy each server's last report where the target has none yet."""

    def copy_report(server: str) -> None:
        report = source.read_report(server)
        if report is not None and target.read_report(server) is None:
            target.write_report(report)

    target.pool.map(copy_report, servers)


@dataclass(frozen=True)
class _Moved:
    """The pointers of one move: new ones at the target, redirects at the source."""

    # server -> (the new pointer, the one it replaces at the target)
    fresh: dict[str, tuple[Pointer, Pointer | None]]
    redirects: dict[str, Pointer]


def _build_pointers(
    target: Store,
    policy: PointerPolicy,
    pointers: dict[str, Pointer],
    needs: dict[str, set[str]],
    now: float,
) -> _Moved:
    """Every new pointer and redirect, URLs issued and signed, before any is written."""
    stamp = iso(now)
    trust = policy.trust()
    key_name = policy.signing_key.name if policy.signing_key else None
    moved = _Moved({}, {})
    moving = sorted(pointers)
    at_target = dict(zip(moving, target.pool.map(target.read_pointer, moving), strict=True))
    for server, old in sorted(pointers.items()):
        there = at_target[server]
        generation = max(old.generation + 2, there.generation + 1 if there else 0)
        caps = issue(target, server, needs[old.manifest], now, policy.ttl)
        caps_doc = caps.to_dict() if caps else None
        pointer = replace(
            old,
            generation=generation,
            published_at=stamp,
            capabilities=caps_doc,
            trust=trust,
            key=key_name,
            signature=None,
            moved_to=None,
        )
        moved.fresh[server] = (policy.sign(pointer), there)
        moved_to: dict[str, Any] = {"url": target.url}
        if caps_doc is not None:
            moved_to["capabilities"] = caps_doc
        moved.redirects[server] = policy.sign(
            replace(
                old,
                generation=old.generation + 1,
                published_at=stamp,
                capabilities=None,
                trust=trust,
                key=key_name,
                signature=None,
                moved_to=moved_to,
            )
        )
    return moved


def _write_record(source: Store, target: Store, result: MoveResult, now: float) -> None:
    """The record status reads (merged with an earlier move of other servers)."""
    record = target.read_controller_doc(MOVE) or {}
    servers = dict(record.get("servers") or {}) if record.get("from") == source.url else {}
    servers.update(result.servers)
    target.write_controller_doc(
        MOVE,
        {
            "kind": "FleetMove",
            "from": source.url,
            "to": target.url,
            "moved_at": now,
            "deadline": result.deadline,
            "servers": dict(sorted(servers.items())),
        },
    )


def _redirect(
    source: Store,
    target: Store,
    redirects: dict[str, Pointer],
    pointers: dict[str, Pointer],
    result: MoveResult,
    now: float,
) -> None:
    """Point each server's old pointer at the target, then mark the source moved."""

    def redirect_one(server: str) -> None:
        redirect = redirects[server]
        source.write_pointer(redirect, pointers[server])
        log.info(
            "server_moved",
            server=server,
            generation=redirect.generation,
            to=target.url,
            generation_there=result.servers[server],
        )

    source.pool.map(redirect_one, list(redirects))
    source.write_controller_doc(
        MOVED,
        {"kind": "FleetMoved", "to": target.url, "moved_at": now, "servers": sorted(redirects)},
    )


def move_fleet(
    source: Store,
    target: Store,
    policy: PointerPolicy,
    deadline: float = DEFAULT_DEADLINE,
    clock: Callable[[], float] = time.time,
) -> MoveResult:
    """Move every server of ``source`` to ``target`` (see the module docstring)."""
    if source.url == target.url:
        raise MoveError(f"--from and --to are the same store ({source.url})")
    now = clock()
    result = MoveResult(source.url, target.url, now + deadline)
    pointers = _pointers_to_move(source, policy, result)
    if not pointers:
        if result.already_moved:
            return result
        raise MoveError(f"no server has a pointer in {source.url}: nothing to move")

    # 1. Blobs, the ledger, the last reports.
    needs = _copy_blobs(source, target, pointers, result)
    _copy_reports(source, target, sorted(pointers))

    # 2. Pointers at the new store. Every pointer is built (URLs issued, signed)
    # before any is written, so a store that cannot issue URLs writes none.
    moved = _build_pointers(target, policy, pointers, needs, now)
    # Each map below returns once every write in it ended: all the new pointers
    # exist before the record, and the record before any redirect.
    target.pool.map(lambda server: target.write_pointer(*moved.fresh[server]), list(moved.fresh))
    for server, (pointer, _there) in moved.fresh.items():
        result.servers[server] = pointer.generation

    # 3. The record status reads.
    _write_record(source, target, result, now)

    # 4. The redirects, last.
    _redirect(source, target, moved.redirects, pointers, result, now)
    return result


@dataclass(frozen=True)
class MoveStatus:
    """How a move stands, read from ``controller/move`` and the reports at the new store."""

    source: str
    deadline: float
    followed: list[str]
    pending: list[str]
    now: float

    @property
    def overdue(self) -> list[str]:
        """Servers that have not reported at the new store after the deadline."""
        return self.pending if self.now > self.deadline else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "deadline": iso(self.deadline),
            "followed": self.followed,
            "pending": self.pending,
            "overdue": self.overdue,
        }

    def lines(self) -> list[str]:
        total = len(self.followed) + len(self.pending)
        servers = counted(total, "server")
        head = f"moved from {self.source}: {len(self.followed)} of {servers} report here"
        if not self.pending:
            return [head]
        if self.overdue:
            return [
                head,
                f"  not moved after the deadline ({iso(self.deadline)}): "
                + ", ".join(self.overdue),
            ]
        left = self.deadline - self.now
        return [head, f"  following ({left:.0f}s to the deadline): " + ", ".join(self.pending)]


def move_status(store: Store, now: float | None = None) -> MoveStatus | None:
    """The move into ``store``, if one was recorded there."""
    doc = store.read_controller_doc(MOVE)
    if doc is None:
        return None
    now = time.time() if now is None else now
    followed, pending = [], []
    servers = sorted((doc.get("servers") or {}).items())
    reports = store.pool.map(lambda item: store.read_report(item[0]), servers)
    for (server, generation), report in zip(servers, reports, strict=True):
        if report is not None and report.generation >= int(generation):
            followed.append(server)
        else:
            pending.append(server)
    return MoveStatus(
        str(doc.get("from", "?")), float(doc.get("deadline", 0)), followed, pending, now
    )

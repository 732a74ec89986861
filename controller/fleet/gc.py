"""``setpoint gc``: delete blobs nothing can need any more, safely beside a publish.

A blob is *reachable* when a current pointer reaches it (its manifest, the
configs in it, their files and zips), when the ledger's rollbacks would go
back to it, when a plan's preflight request names it
(``controller/preflight-*``, until the plan deletes it; an expired one is
deleted here), or when one of the last deployed commits renders it (``keep``,
gathered by the caller from the commit notes): a ``git revert`` of a recent
commit then uploads nothing. Everything else is garbage, collected in two
runs at least ``grace`` seconds apart:

1. **mark**: list the blobs, *then* find what is reachable, and write the
   unreachable ones to ``controller/gc-mark`` with the time. Listing first
   means a blob a publish writes meanwhile is either not listed or already
   named by its pointer when reachability is read; a blob written after the
   mark is never a candidate, since it is not in the mark.
2. **sweep** (a later run, ``grace`` after the mark): find what is reachable
   now and delete only candidates still unreachable; then mark again.

One race is left to close: a publish that finds an old unreachable blob
present (a revert to an old commit), skips its upload, and names it in a
pointer written after the sweep read the pointers. Both sides close it, each
holding the bytes: the sweep reads each blob before deleting it and, after
deleting, reads the pointers and the ledger again and puts back any blob they
now reach; the publish checks, after its pointers are written, that what they
reach is still there and uploads again what is not
(``converge.publish``). Whichever of the two comes last sees the other, so
once both are done no pointer names a missing blob. In the instant between
such a delete and its putting back a reader can find the blob missing; an
agent or a reconcile pass then fails that one poll or pass and the next finds
it. The grace period makes this rare: it takes a publish that reuses a blob
unreachable since the mark, landing during the sweep itself.

Leftover ``.tmp-*`` files of a killed write (local directory stores) older
than ``grace`` are removed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from setpoint.controller.converge.preflight_requests import (
    PREFIX,
    PreflightRequest,
    drop_expired,
)
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import SetpointError
from setpoint.controller.fleet.move import config_blobs, ledger_blobs, manifest_blobs
from setpoint.controller.fleet.rerender import rendered_blobs
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.controller.wording import counted
from setpoint.store.base import Store, digest_of_blob_key
from setpoint.store.digest import is_digest
from setpoint.store.errors import DigestMismatch, InvalidDocument, NotFound
from setpoint.store.local import LocalStore
from setpoint.store.timestamps import format_timestamp as iso

log = structlog.get_logger("setpoint.gc")

MARK = "gc-mark"  # controller/gc-mark
DEFAULT_GRACE = 3600.0


class GcRefused(SetpointError):
    """What is reachable cannot be told (a pointer or a blob it reaches is broken):
    deleting anything could delete what a server needs. ``setpoint fsck`` says more."""

    def __init__(self, where: str, reason: str, missing: str | None = None) -> None:
        super().__init__(f"gc refused: {where}: {reason} (run 'setpoint fsck')")
        self.where = where
        self.reason = reason
        # The digest of a blob the store documents reach but that is absent.
        self.missing = missing


@dataclass
class GcResult:
    dry_run: bool
    blobs: int = 0
    reachable: int = 0
    # The mark this run found, and what became of it.
    swept: list[str] = field(default_factory=list)
    # Candidates reachable again at the sweep (named again before or during it).
    kept: list[str] = field(default_factory=list)
    # Of those, the ones deleted and then put back (a publish named them meanwhile).
    restored: list[str] = field(default_factory=list)
    # The mark this run wrote (or would write), and when a later run may sweep it.
    marked: list[str] = field(default_factory=list)
    marked_at: float | None = None
    sweep_after: float | None = None
    # The mark is an earlier run's, younger than the grace: nothing was done to it.
    waiting: bool = False
    temp_removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        parts = [f"{counted(self.blobs, 'blob')}, {self.reachable} reachable"]
        if self.swept or self.kept:
            parts.append(f"{verb} {len(self.swept)}")
        if self.kept:
            parts.append(f"{len(self.kept)} marked blobs reachable again, kept")
        if self.restored:
            parts.append(f"{len(self.restored)} put back (a publish named them meanwhile)")
        if self.marked_at is not None and self.sweep_after is not None:
            if self.waiting:
                marked = counted(len(self.marked), "blob")
                head = f"the mark of {iso(self.marked_at)} ({marked}) waits"
            elif self.marked:
                head = f"{len(self.marked)} marked at {iso(self.marked_at)}"
            else:
                head = "nothing to mark"
            parts.append(
                head + (f", sweepable from {iso(self.sweep_after)}" if self.marked else "")
            )
        if self.temp_removed:
            parts.append(f"{verb} {len(self.temp_removed)} leftover temporary files")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "blobs": self.blobs,
            "reachable": self.reachable,
            "swept": self.swept,
            "kept": self.kept,
            "restored": self.restored,
            "marked": self.marked,
            "marked_at": None if self.marked_at is None else iso(self.marked_at),
            "sweep_after": None if self.sweep_after is None else iso(self.sweep_after),
            "waiting": self.waiting,
            "temp_removed": self.temp_removed,
        }


def reachable_blobs(store: Store, keep: Iterable[str] = ()) -> set[str]:
    """Every blob a pointer, a rollback or ``keep`` needs.

    Pointers are read before the ledger: a rollback target is written to the
    ledger before the pointer that stops naming it, so reading in this order
    never misses it between the two. A pointer that does not parse, or a blob
    it reaches that is missing or corrupt, raises ``GcRefused``.
    """
    out = {d for d in keep if is_digest(d)}
    for server in store.list_servers():
        where = f"agents/{server}/pointer"
        try:
            pointer = store.read_pointer(server)
            if pointer is not None:
                out |= manifest_blobs(store, pointer.manifest)
        except NotFound as exc:
            raise GcRefused(where, str(exc), digest_of_blob_key(exc.key)) from exc
        except (InvalidDocument, DigestMismatch) as exc:
            raise GcRefused(where, str(exc)) from exc
    try:
        out |= ledger_blobs(store, store.read_controller_doc(LEDGER) or {})
    except (InvalidDocument, DigestMismatch) as exc:
        raise GcRefused(f"controller/{LEDGER}", str(exc)) from exc
    return out | request_blobs(store)


def request_blobs(store: Store) -> set[str]:
    """Blobs the preflight requests in the store name, signed or not, live or
    expired (keeping more is safe; ``gc`` deletes the expired ones first)."""
    out: set[str] = set()
    for name in store.list_controller_docs(PREFIX):
        try:
            request = PreflightRequest.from_dict(store.read_controller_doc(name) or {})
        except (InvalidDocument, TypeError, ValueError, KeyError, AttributeError):
            continue  # no pass publishes what it names
        for server, entries in request.checks.items():
            for entry in entries:
                try:
                    out |= config_blobs(store, entry.config, request.bundles.get(server, {}))
                except (NotFound, InvalidDocument, DigestMismatch):
                    out.add(entry.config)
    return out


def _read_mark(store: Store) -> tuple[float, list[str]] | None:
    doc = store.read_controller_doc(MARK)
    if doc is None:
        return None
    at, candidates = doc.get("marked_at"), doc.get("candidates")
    if not isinstance(at, int | float) or not isinstance(candidates, list):
        return None  # not ours, or damaged: a new mark replaces it
    return float(at), [d for d in candidates if isinstance(d, str) and is_digest(d)]


def gc(
    store: Store,
    grace: float = DEFAULT_GRACE,
    keep: Iterable[str] = (),
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> GcResult:
    """One gc run: sweep the mark if it is ``grace`` old, then mark again.

    A mark younger than ``grace`` is left as it is (so frequent runs do not
    keep postponing the sweep). With ``dry_run``, nothing is written or
    deleted: the result says what a run would do now.
    """
    kept = set(keep)
    result = GcResult(dry_run=dry_run)
    now = clock()
    if not dry_run:
        drop_expired(store, now)  # a plan killed while it waited leaves its request
    mark = _read_mark(store)
    if mark is not None and now < mark[0] + grace:
        result.marked, result.marked_at = mark[1], mark[0]
        result.sweep_after, result.waiting = mark[0] + grace, True
        listed = store.list_blobs()
        result.blobs = len(listed)
        result.reachable = len(reachable_blobs(store, kept) & set(listed))
    else:
        if mark is not None:
            _sweep(store, mark[1], kept, dry_run, result)
        _mark(store, kept, now, grace, dry_run, result)
    _remove_temp_files(store, now, grace, dry_run, result)
    log.info("gc", **{k: v for k, v in result.to_dict().items() if not isinstance(v, list)})
    return result


def _sweep(
    store: Store, candidates: list[str], keep: set[str], dry_run: bool, result: GcResult
) -> None:
    present = set(store.list_blobs())
    reachable = reachable_blobs(store, keep)
    doomed = sorted(d for d in candidates if d in present and d not in reachable)
    result.kept = sorted(d for d in candidates if d in present and d in reachable)
    result.swept = doomed
    if dry_run or not doomed:
        return
    held: dict[str, bytes] = {}
    for digest in doomed:
        try:
            held[digest] = store.get_blob(digest)
        except DigestMismatch:
            pass  # corrupt and unreachable: nothing worth putting back
        except NotFound:
            continue
        store.delete_blob(digest)
    _put_back(store, held, keep, result)


def _put_back(store: Store, held: dict[str, bytes], keep: set[str], result: GcResult) -> None:
    """A publish that found one of the swept blobs present before the delete
    may have named it since: put back whatever the store's documents reach now
    (unless that publish uploaded it again itself). A manifest put back can
    reach more of them, hence the rounds."""
    named: set[str] = set()

    def restore(digest: str) -> None:
        named.add(digest)
        if store.find_missing([digest]):
            store.put_blob(held[digest])
            result.restored.append(digest)
            log.warning("gc_blob_restored", digest=digest)

    while True:
        try:
            reachable = reachable_blobs(store, keep)
        except GcRefused as exc:
            if exc.missing not in held or exc.missing in named:
                raise
            restore(exc.missing)
            continue
        again = sorted(d for d in set(held) & reachable if d not in named)
        if not again:
            break
        for digest in again:
            restore(digest)
    result.swept = [d for d in result.swept if d not in named]
    result.kept = sorted({*result.kept, *named})


def _mark(
    store: Store, keep: set[str], now: float, grace: float, dry_run: bool, result: GcResult
) -> None:
    listed = store.list_blobs()  # before reachability: see the module's docstring
    reachable = reachable_blobs(store, keep)
    result.blobs = len(listed)
    result.reachable = len(reachable & set(listed))
    result.marked = sorted(d for d in listed if d not in reachable)
    result.marked_at, result.sweep_after = now, now + grace
    if not dry_run:
        store.write_controller_doc(
            MARK, {"kind": "GcMark", "marked_at": now, "candidates": result.marked}
        )


def _remove_temp_files(
    store: Store, now: float, grace: float, dry_run: bool, result: GcResult
) -> None:
    if not isinstance(store, LocalStore):
        return
    for rel, mtime in store.temp_files().items():
        if now - mtime < grace:
            continue  # perhaps a write in progress
        if not dry_run:
            store.remove_temp_file(rel)
        result.temp_removed.append(rel)


def commit_blobs(
    repo: GitRepo,
    store: Store,
    commits: Iterable[str],
    configs: Iterable[str] = (),
    env: str | None = None,
    render_secret: bytes | None = None,
) -> set[str]:
    """What ``gc`` keeps for recently deployed ``commits``: every blob each renders
    now, and the ``configs`` their records say converged (rendered with the
    outputs reported then, which may differ from now)."""
    out: set[str] = {d for d in configs if is_digest(d)}
    for commit in commits:
        try:
            out |= set(rendered_blobs(repo, store, commit, env, render_secret))
        except SetpointError as exc:  # gone from the repository, or no longer loads
            log.warning("gc_keep_commit_unrendered", commit=commit, error=str(exc))
    return out

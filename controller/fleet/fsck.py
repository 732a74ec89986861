"""``setpoint fsck``: check every store invariant, and repair lost or corrupt blobs.

What is checked, per server the store knows:

- the pointer parses, names its own server, and its signature verifies with
  a trusted key (when keys are given: an unsigned pointer is then a problem);
- the manifest it names, and every blob the manifest reaches (derived
  configs, their files, directory zips and MIME bodies) exist and re-hash to
  their digests;
- the report parses, names the server whose path it sits at, and answers a
  generation no higher than the pointer's;

and, once for the store: the blobs the ledger's rollbacks would go back to,
and (local directory only) ``.tmp-*`` files left by a killed write.

Repair re-renders: render is a pure function of (commit, reported outputs,
inventory), so rendering the commit a pointer names gives the very bytes of
its lost configs, attachments and manifest. A blob the commit no longer
renders (its inputs read outputs that were reported differently since) is
reported as not repairable. A corrupt blob is deleted first (blobs are
create-if-absent), then written again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import SetpointError
from setpoint.controller.fleet.rerender import rendered_blobs
from setpoint.controller.rollout.ledger import LEDGER
from setpoint.controller.wording import counted
from setpoint.store.base import Store
from setpoint.store.digest import digest_bytes, is_digest, short
from setpoint.store.documents import Manifest, Pointer, Report, loads_object
from setpoint.store.errors import DigestMismatch, InvalidDocument, NotFound
from setpoint.store.local import LocalStore
from setpoint.store.signing import PublicKey, SignatureError, verify_signed

log = structlog.get_logger("setpoint.fsck")

# Problem kinds: what a monitoring rule or a CI job can match on.
POINTER_INVALID = "pointer-invalid"
POINTER_SIGNATURE = "pointer-signature"
BLOB_MISSING = "blob-missing"
BLOB_CORRUPT = "blob-corrupt"
BLOB_INVALID = "blob-invalid"
REPORT_INVALID = "report-invalid"
REPORT_PATH = "report-path"
GENERATION = "generation"
TEMP_LEFTOVER = "temp-leftover"


@dataclass(frozen=True)
class Problem:
    """One broken invariant. ``where`` names the server or store key it is about."""

    kind: str
    where: str
    detail: str
    digest: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "detail": self.detail,
            "digest": self.digest,
        }


@dataclass
class BlobUse:
    """Why a blob must be there: who names it, and which commit rendered it."""

    roles: list[str] = field(default_factory=list)
    commits: set[str] = field(default_factory=set)


@dataclass
class FsckResult:
    servers: int = 0
    blobs_checked: int = 0
    signatures_checked: bool = False
    problems: list[Problem] = field(default_factory=list)
    # digest -> what was done: "re-rendered" or why it could not be
    repaired: dict[str, str] = field(default_factory=dict)
    unrepairable: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        signed = "signatures verified" if self.signatures_checked else "signatures NOT checked"
        line = (
            f"{counted(self.servers, 'server')}, {counted(self.blobs_checked, 'blob')} checked, "
            f"{signed}: "
            f"{counted(len(self.problems), 'problem')}"
        )
        if self.repaired:
            line += f", {counted(len(self.repaired), 'blob')} repaired"
        if self.unrepairable:
            line += f", {len(self.unrepairable)} not repairable"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "servers": self.servers,
            "blobs_checked": self.blobs_checked,
            "signatures_checked": self.signatures_checked,
            "problems": [p.to_dict() for p in self.problems],
            "repaired": dict(sorted(self.repaired.items())),
            "unrepairable": dict(sorted(self.unrepairable.items())),
        }


class _Checker:
    def __init__(self, store: Store, trusted: dict[str, PublicKey] | None) -> None:
        self.store = store
        self.trusted = trusted
        self.result = FsckResult(signatures_checked=trusted is not None)
        self.uses: dict[str, BlobUse] = {}
        # Each blob is read once: what it parsed to, or what is wrong with it.
        self._verified: dict[str, Any] = {}
        self._bad: dict[str, Problem] = {}

    def problem(self, kind: str, where: str, detail: str, digest: str | None = None) -> None:
        self.result.problems.append(Problem(kind, where, detail, digest))

    # -- blobs ---------------------------------------------------------------

    def blob(self, digest: str, role: str, commit: str | None, kind: str | None = None) -> Any:
        """The blob parsed as ``kind`` ("manifest", "config"; None: not parsed,
        returns True), after checking it exists and re-hashes; None if broken.

        Each blob is read once; a broken one is reported once, naming
        everything that needs it.
        """
        use = self.uses.setdefault(digest, BlobUse())
        use.roles.append(role)
        if commit:
            use.commits.add(commit)
        if digest in self._verified:
            return self._verified[digest]
        if digest in self._bad:
            return None
        self.result.blobs_checked += 1
        where = f"blob {short(digest, 16)}"
        try:
            data = self.store.get_blob(digest)
        except NotFound:
            self._bad[digest] = Problem(BLOB_MISSING, where, "missing", digest)
            return None
        except DigestMismatch as exc:
            self._bad[digest] = Problem(
                BLOB_CORRUPT, where, f"corrupt: its bytes hash to {short(exc.got, 16)}", digest
            )
            return None
        try:
            value = _parse(data, kind)
        except (InvalidDocument, ValueError) as exc:
            self._bad[digest] = Problem(BLOB_INVALID, where, f"does not parse: {exc}", digest)
            return None
        self._verified[digest] = value
        return value

    def config_and_files(
        self, config: str, bundles: dict[str, str], role: str, commit: str | None
    ) -> None:
        body = self.blob(config, role, commit, "config")
        if not isinstance(body, dict):
            return
        for name, ref in sorted((body.get("files") or {}).items()):
            tree = ref.get("digest") if isinstance(ref, dict) else None
            if not isinstance(tree, str) or not is_digest(tree):
                continue
            self.blob(bundles.get(tree, tree), f"file {name!r} of {role}", commit)

    def finish_blobs(self) -> None:
        for digest, problem in sorted(self._bad.items()):
            roles = self.uses[digest].roles
            more = f" (and {len(roles) - 3} more)" if len(roles) > 3 else ""
            detail = f"{problem.detail}; needed as {', '.join(roles[:3])}{more}"
            self.result.problems.append(Problem(problem.kind, problem.where, detail, digest))

    # -- per server ----------------------------------------------------------

    def server(self, server: str) -> None:
        pointer = self.pointer(server)
        if pointer is not None:
            manifest = self.blob(
                pointer.manifest, f"manifest of {server}", pointer.commit, "manifest"
            )
            if isinstance(manifest, Manifest):
                for entry in manifest.fetched:
                    self.config_and_files(
                        entry.config,
                        manifest.bundles,
                        f"config of {entry.name} on {server}",
                        pointer.commit,
                    )
        self.report(server, pointer)

    def pointer(self, server: str) -> Pointer | None:
        where = f"agents/{server}/pointer"
        try:
            pointer = self.store.read_pointer(server)
        except InvalidDocument as exc:
            self.problem(POINTER_INVALID, where, f"does not parse: {exc}")
            return None
        if pointer is None:
            return None
        if pointer.server != server:
            self.problem(POINTER_INVALID, where, f"names server {pointer.server!r}")
        if self.trusted is not None:
            try:
                verify_signed(self.trusted, pointer.key, pointer.signature, pointer.payload())
            except SignatureError as exc:
                self.problem(POINTER_SIGNATURE, where, f"signature: {exc.reason}")
                # Not the controller's: what it names is no evidence of anything.
                return None
            if pointer.trust is not None and pointer.key not in pointer.trust:
                # Agents refuse it (it would make them distrust the key that signed it).
                self.problem(
                    POINTER_SIGNATURE,
                    where,
                    f"its trust set leaves out its own key {pointer.key!r}",
                )
        return pointer

    def report(self, server: str, pointer: Pointer | None) -> None:
        where = f"agents/{server}/report"
        try:
            report: Report | None = self.store.read_report(server)
        except InvalidDocument as exc:
            self.problem(REPORT_INVALID, where, f"does not parse: {exc}")
            return
        if report is None:
            return
        if report.server != server:
            self.problem(REPORT_PATH, where, f"names server {report.server!r}")
        if pointer is not None and report.generation > pointer.generation:
            self.problem(
                GENERATION,
                where,
                f"answers generation {report.generation}, "
                f"but the pointer is at generation {pointer.generation}",
            )

    # -- the rest of the store -----------------------------------------------

    def ledger(self) -> None:
        """Blobs a rollback would go back to: lost, the rollback cannot happen."""
        try:
            doc = self.store.read_controller_doc(LEDGER)
        except InvalidDocument as exc:
            self.problem(BLOB_INVALID, f"controller/{LEDGER}", f"does not parse: {exc}")
            return
        for name, rollout in sorted(((doc or {}).get("rollouts") or {}).items()):
            if not isinstance(rollout, dict):
                continue
            for server, good in sorted((rollout.get("good") or {}).items()):
                if not isinstance(good, dict) or not is_digest(good.get("config")):
                    continue
                bundles = {k: v for k, v in (good.get("bundles") or {}).items() if is_digest(v)}
                role = f"rollback target of {name} on {server}"
                self.config_and_files(good["config"], bundles, role, None)

    def temp_files(self, now: float) -> None:
        if not isinstance(self.store, LocalStore):
            return
        for rel, mtime in sorted(self.store.temp_files().items()):
            age = max(0.0, now - mtime)
            self.problem(TEMP_LEFTOVER, rel, f"leftover of an interrupted write, {age:.0f}s old")


def _parse(data: bytes, kind: str | None) -> Any:
    if kind == "manifest":
        return Manifest.from_dict(loads_object(data, "manifest"))
    if kind == "config":
        return loads_object(data, "derived config")
    return True


def check(
    store: Store,
    trusted: dict[str, PublicKey] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[FsckResult, dict[str, BlobUse]]:
    """Every problem in ``store``; with it, what needs each blob checked.

    ``trusted`` None skips signature checks. Store errors other than a missing
    object or a bad document (unreachable, denied) propagate: the store is
    unusable, not inconsistent.
    """
    checker = _Checker(store, trusted)
    servers = store.list_servers()
    checker.result.servers = len(servers)
    for server in servers:
        checker.server(server)
    checker.ledger()
    # A rollback target names no commit: any commit a pointer names may render it.
    pointer_commits = {c for use in checker.uses.values() for c in use.commits}
    for use in checker.uses.values():
        if not use.commits:
            use.commits = set(pointer_commits)
    checker.finish_blobs()
    checker.temp_files(clock())
    return checker.result, checker.uses


def _repairable(result: FsckResult) -> Iterator[Problem]:
    for p in result.problems:
        if p.kind in (BLOB_MISSING, BLOB_CORRUPT) and p.digest is not None:
            yield p


def fsck(
    store: Store,
    trusted: dict[str, PublicKey] | None = None,
    repo: GitRepo | None = None,
    env: str | None = None,
    clock: Callable[[], float] = time.time,
    render_secret: bytes | None = None,
) -> FsckResult:
    """Check ``store``; with ``repo``, repair lost and corrupt blobs and check again.

    A repaired manifest can reveal more lost blobs beneath it, so repair goes
    round until a round repairs nothing.
    """
    result, uses = check(store, trusted, clock)
    if repo is None:
        return result
    renders: dict[str, dict[str, bytes] | str] = {}
    repaired: dict[str, str] = {}
    unrepairable: dict[str, str] = {}
    while any(_repairable(result)):
        progress = False
        for problem in _repairable(result):
            digest = problem.digest
            assert digest is not None
            if digest in repaired or digest in unrepairable:
                continue
            data = _render_bytes(
                repo, store, uses[digest].commits, (env, render_secret), renders, digest
            )
            if data is None:
                commits = ", ".join(sorted(c[:12] for c in uses[digest].commits)) or "none known"
                why = f"not rendered by the commits that name it ({commits})"
                for commit in sorted(uses[digest].commits):
                    if isinstance(renders.get(commit), str):
                        why += f"; {commit[:12]}: {renders[commit]}"
                unrepairable[digest] = why
                continue
            if problem.kind == BLOB_CORRUPT:
                store.delete_blob(digest)  # create-if-absent would keep the bad bytes
            store.put_blob(data)
            repaired[digest] = "re-rendered"
            progress = True
            log.info("blob_repaired", digest=digest, was=problem.kind)
        result, uses = check(store, trusted, clock)
        if not progress:
            break
    result.repaired = repaired
    result.unrepairable = {d: why for d, why in unrepairable.items() if d not in repaired}
    return result


def _render_bytes(
    repo: GitRepo,
    store: Store,
    commits: set[str],
    env_secret: tuple[str | None, bytes | None],
    renders: dict[str, dict[str, bytes] | str],
    digest: str,
) -> bytes | None:
    """The bytes of ``digest`` as one of ``commits`` renders them; ``renders``
    keeps each commit's render (or why it failed) for the next blob."""
    for commit in sorted(commits):
        if commit not in renders:
            try:
                renders[commit] = rendered_blobs(repo, store, commit, *env_secret)
            except SetpointError as exc:  # the commit is gone, or no longer loads
                renders[commit] = f"cannot render: {exc}"
        got = renders[commit]
        data = got.get(digest) if isinstance(got, dict) else None
        if data is not None and digest_bytes(data) == digest:
            return data
    return None

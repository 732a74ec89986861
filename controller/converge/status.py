"""What the store says about the fleet: desired against reported, per server.

Reads only the store (pointers, manifests, reports), so it works from any
machine that can read the store, with or without the definitions repository.
A failed or running deployment brings its reason and the tails of its stdout
and stderr as the agent reported them, masked (``converge.runs``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from setpoint.controller.converge.runs import Masker, Run, matches, tail_lines
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS, unreachable
from setpoint.controller.rollout.ledger import Ledger, Quarantined, read_ledger
from setpoint.controller.rollout.plan import Deployed
from setpoint.store.base import Store
from setpoint.store.digest import short
from setpoint.store.documents import (
    CheckReport,
    DeploymentReport,
    Manifest,
    ManifestEntry,
    Pointer,
    Report,
)
from setpoint.store.errors import DigestMismatch, InvalidDocument, NotFound
from setpoint.store.timestamps import parse_timestamp as _parse_time


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    desired: str | None
    reported: str | None
    status: str
    action: str | None
    age: float | None
    reason: str | None
    # The last run, masked, for a deployment that failed or is running; else None.
    run: Run | None = None

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAILED")


# How many lines of what a check says would change (or differs) ``status`` shows.
CHECK_LINES = 5
# An agent that has not answered a generation published this long ago is stale:
# offline, or its URLs expired (enrolling it again recovers it).
STALE_AFTER = 600.0


@dataclass
class ServerStatus:
    server: str
    pointer: Pointer | None
    report: Report | None
    deployments: list[DeploymentStatus] = field(default_factory=list)
    agent: str = "unknown"
    # Documents of this server that could not be read ("invalid report: ...").
    invalid: list[str] = field(default_factory=list)
    # The commit at which it left the inventory (the ledger's ``retired``), or None.
    retired: str | None = None

    @property
    def troubled(self) -> bool:
        """Something here needs a person: a failed deployment or preflight, drift,
        an agent error or no heartbeat, a document that cannot be read.
        (``status --exit-code``) A retired server's agent is expected to go
        quiet: only a failed DELETE on it is trouble."""
        checks = [*self._checks("preflight").values(), *self._checks("drift").values()]
        failed = any(d.failed for d in self.deployments) or any(
            c.status in ("FAILED", "drifted") for c in checks
        )
        return failed or (self.agent_troubled and self.retired is None)

    @property
    def agent_troubled(self) -> bool:
        """The agent errs or has no heartbeat, or a document cannot be read."""
        return (
            self.agent == "unreachable"
            or bool(self.report and self.report.error)
            or bool(self.invalid)
        )

    def only(self, deployment: str | None, failed: bool) -> ServerStatus | None:
        """This server with only the deployments named (``stack/name`` or
        ``name``) and, when ``failed``, only failed ones and agent trouble;
        None when nothing is left to show."""
        kept = [
            d
            for d in self.deployments
            if (deployment is None or matches(d.name, deployment)) and (not failed or d.failed)
        ]
        if deployment is None and not failed:
            return self
        if not kept and not (failed and self.agent_troubled):
            return None
        return replace(self, deployments=kept)

    @staticmethod
    def agent_state(
        pointer: Pointer | None,
        report: Report | None,
        now: float,
        stale_after: float,
        unreachable_after: float = UNREACHABLE_AFTER_BEATS,
    ) -> str:
        """current, behind (catching up), stale (not answering), unreachable (no
        heartbeat for ``unreachable_after`` beats), or never-reported."""
        if report is None:
            return "never-reported"
        if unreachable(report, now, unreachable_after):
            return "unreachable"
        if pointer is None or report.generation >= pointer.generation:
            return "current"
        published = _parse_time(pointer.published_at)
        if published is not None and now - published > stale_after:
            return "stale"
        return "behind"

    def _checks(self, kind: str) -> dict[str, CheckReport]:
        """The report's preflight or drift checks, by deployment."""
        return dict(sorted(getattr(self.report, kind).items())) if self.report else {}

    def check_lines(self) -> list[str]:
        """Preflight checks and drift as lines: a failed check with its reason,
        what would change or what differs (first lines), clean drift left out."""
        out: list[str] = []
        for name, got in self._checks("preflight").items():
            head = f"{self.server} {name}: preflight {got.status} ({short(got.config)})"
            out.append(head + (f": {got.reason}" if got.status == "FAILED" else ""))
            out.extend(f"  {line}" for line in got.changes.splitlines()[:CHECK_LINES])
        for name, got in self._checks("drift").items():
            if got.status == "clean":
                continue
            why = f": {got.reason}" if got.reason else ""
            out.append(f"{self.server} {name}: {got.status} ({short(got.config)}){why}")
            out.extend(f"  {line}" for line in got.changes.splitlines()[:CHECK_LINES])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "generation": self.pointer.generation if self.pointer else None,
            "reported_generation": self.report.generation if self.report else None,
            "commit": self.pointer.commit if self.pointer else None,
            "published_at": self.pointer.published_at if self.pointer else None,
            "report_updated_at": self.report.updated_at if self.report else None,
            "agent_error": self.report.error if self.report else None,
            "agent": self.agent,
            "invalid": list(self.invalid),
            "retired": self.retired,
            "preflight": {k: v.to_dict() for k, v in self._checks("preflight").items()},
            "drift": {k: v.to_dict() for k, v in self._checks("drift").items()},
            "deployments": [
                {
                    "name": d.name,
                    "desired": d.desired,
                    "reported": d.reported,
                    "status": d.status,
                    "action": d.action,
                    "age_seconds": None if d.age is None else round(d.age, 3),
                    "reason": d.reason,
                    "exit_code": d.run.exit_code if d.run else None,
                    "stdout_tail": d.run.stdout_tail if d.run else None,
                    "stderr_tail": d.run.stderr_tail if d.run else None,
                    "tails_withheld": d.run.withheld if d.run else None,
                }
                for d in self.deployments
            ],
        }


def deployment_state(
    server: str, entry: ManifestEntry | None, got: DeploymentReport | None, ledger: Ledger
) -> str:
    """What ``status`` shows for one deployment on one server: PENDING, IN_PROGRESS,
    COMPLETE, FAILED, FAILED (quarantined), FAILED (timeout), or a reported status
    of an ``(old config)`` or one ``(deleting)``. ``entry``: what the server was
    given (None: the deployment left its manifest); ``got``: what it reported."""
    if got is None:
        state = "PENDING"
    elif entry is not None and got.config != entry.config:
        state = f"{got.status} (old config)" if got.status != "IN_PROGRESS" else "PENDING"
    elif entry is None:
        state = f"{got.status} (deleting)"
    else:
        state = got.status
    held = ledger.quarantined(entry.qualified, server) if entry else None
    if entry is not None and held is not None and held.config == entry.config:
        if held.reason.startswith("timeout") and state != "FAILED":
            state = "FAILED (timeout)"
        elif state == "FAILED":
            state = "FAILED (quarantined)"
    return state


def _read_documents(store: Store, server: str) -> tuple[Pointer | None, Report | None, list[str]]:
    """A server's pointer and report; a bad one is left out and named, so one
    bad document marks one server and never hides the others."""
    invalid: list[str] = []
    pointer: Pointer | None = None
    report: Report | None = None
    try:
        pointer = store.read_pointer(server)
    except InvalidDocument as exc:
        invalid.append(str(exc))
    if pointer is not None and pointer.server != server:
        invalid.append(f"invalid pointer: names server {pointer.server!r}")
        pointer = None
    try:
        report = store.read_report(server)
    except InvalidDocument as exc:
        invalid.append(str(exc))
    if report is not None and report.server != server:
        invalid.append(f"invalid report: names server {report.server!r}")
        report = None
    return pointer, report, invalid


def _read_manifest(store: Store, digest: str) -> Manifest | str:
    """The manifest ``digest`` names, or why it cannot be read."""
    try:
        return Manifest.from_dict(store.get_json_blob(digest, "manifest"))
    except (InvalidDocument, DigestMismatch, NotFound) as exc:
        return f"invalid manifest {short(digest)}: {exc}"


def read_servers(
    store: Store, servers: list[str]
) -> list[tuple[Pointer | None, Report | None, Manifest, list[str]]]:
    """Each server's pointer, report, manifest and unreadable documents. Pointers
    and reports are read side by side on the pool, then the manifests they name,
    each once: a group of servers given the same manifest costs one read."""
    documents = store.pool.map(lambda server: _read_documents(store, server), servers)
    digests = sorted({p.manifest for p, _, _ in documents if p is not None})
    read = store.pool.map(lambda digest: _read_manifest(store, digest), digests)
    manifests = dict(zip(digests, read, strict=True))
    out: list[tuple[Pointer | None, Report | None, Manifest, list[str]]] = []
    for pointer, report, invalid in documents:
        manifest = manifests[pointer.manifest] if pointer is not None else Manifest(())
        if isinstance(manifest, str):
            invalid.append(manifest)
            manifest = Manifest(())
        out.append((pointer, report, manifest, invalid))
    return out


def fleet_status(
    store: Store,
    now: float | None = None,
    stale_after: float = STALE_AFTER,
    unreachable_after: float = UNREACHABLE_AFTER_BEATS,
    servers: list[str] | None = None,
) -> list[ServerStatus]:
    """Every server's status (or only those of ``servers`` the store has)."""
    now = time.time() if now is None else now
    ledger = read_ledger(store)
    masker = Masker(store)
    out: list[ServerStatus] = []
    listed = store.list_servers()
    wanted = listed if servers is None else [s for s in listed if s in servers]
    read = read_servers(store, wanted)
    for server, (pointer, report, manifest, invalid) in zip(wanted, read, strict=True):
        status = ServerStatus(
            server,
            pointer,
            report,
            agent=ServerStatus.agent_state(pointer, report, now, stale_after, unreachable_after),
            invalid=invalid,
            retired=ledger.retired.get(server),
        )
        reported = report.deployments if report else {}
        names = [e.name for e in manifest.deployments]
        names += sorted(n for n in reported if n not in names)
        for name in names:
            entry = manifest.entry(name)
            got = reported.get(name)
            state = deployment_state(server, entry, got, ledger)
            when = _parse_time(got.finished_at or got.started_at) if got else None
            desired = entry.config if entry else None
            run = None
            if got is not None and (state.startswith("FAILED") or state == "IN_PROGRESS"):
                run = masker.run(server, got, desired)
            status.deployments.append(
                DeploymentStatus(
                    name=name,
                    desired=desired,
                    reported=got.config if got else None,
                    status=state,
                    action=got.action if got else None,
                    age=None if when is None else max(0.0, now - when),
                    reason=run.reason if run else got.reason if got else None,
                    run=run,
                )
            )
        out.append(status)
    return out


def newest_commit(pointers: Iterable[Pointer | None]) -> str | None:
    """The commit of the most recently published of ``pointers`` (None: none)."""
    published = (p for p in pointers if p is not None)
    newest = max(published, key=lambda p: p.published_at, default=None)
    return newest.commit if newest else None


def deployed_state(statuses: list[ServerStatus]) -> Deployed:
    """What is deployed: the commit the newest pointer names (None: nothing
    published yet), server -> why it has not converged on what its own
    pointer names (retired servers left out), and the commit each pointer names."""
    behind: dict[str, str] = {}
    for s in statuses:
        if s.pointer is None or s.retired is not None:
            continue
        if s.invalid:
            behind[s.server] = "documents cannot be read"
        elif s.report is None:
            behind[s.server] = "never reported"
        elif s.report.generation < s.pointer.generation:
            behind[s.server] = (
                f"{s.agent}: answers generation {s.report.generation} of {s.pointer.generation}"
            )
        else:
            pending = [f"{d.name} {d.status}" for d in s.deployments if d.status != "COMPLETE"]
            if pending:
                behind[s.server] = ", ".join(pending)
    pointers = {s.server: s.pointer.commit for s in statuses if s.pointer is not None}
    return Deployed(newest_commit(s.pointer for s in statuses), behind, pointers)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


TABLE_HEADER = (
    "SERVER",
    "DEPLOYMENT",
    "DESIRED",
    "REPORTED",
    "STATUS",
    "ACTION",
    "GEN",
    "COMMIT",
    "AGE",
)


@dataclass(frozen=True)
class StatusRow:
    """One row of the status table: a server's deployment, or one kind of trouble
    with its agent or documents (``deployment`` is then ``(agent)``, ``(store)``
    or ``(inventory)``, and ``note`` says what, in the AGE column)."""

    server: str
    deployment: str
    status: str
    reported_generation: int | None
    generation: int | None
    commit: str | None
    desired: str | None = None
    reported: str | None = None
    action: str | None = None
    age: float | None = None
    note: str | None = None

    @property
    def key(self) -> str:
        """What the row is about: a server's deployment, or one kind of trouble
        (a server may have several at once). ``status --watch`` follows rows by it."""
        if self.deployment.startswith("("):
            return f"{self.server} {self.deployment} {self.status}"
        return f"{self.server} {self.deployment}"

    def cells(self, ages: bool = True) -> tuple[str, ...]:
        """The table's cells. Without ``ages`` a deployment's AGE cell is empty:
        what ``status --watch`` compares to tell what changed, as ages change always."""
        gen = f"{_dash(self.reported_generation)}/{_dash(self.generation)}"
        last = self.note if self.note is not None else (format_age(self.age) if ages else "")
        return (
            self.server,
            self.deployment,
            short(self.desired),
            short(self.reported),
            self.status,
            self.action or "-",
            gen,
            self.commit[:12] if self.commit else "-",
            last,
        )

    def to_dict(self) -> dict[str, Any]:
        """The row for a machine (``status --watch --json``): full digests and
        commit, no age (it changes at every look)."""
        return {
            "server": self.server,
            "deployment": self.deployment,
            "desired": self.desired,
            "reported": self.reported,
            "status": self.status,
            "action": self.action,
            "reported_generation": self.reported_generation,
            "generation": self.generation,
            "commit": self.commit,
            "note": self.note,
        }


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def table_rows(statuses: list[ServerStatus]) -> list[StatusRow]:
    """The rows of ``format_table``, one per deployment and one per agent or
    store problem."""
    rows: list[StatusRow] = []
    for s in statuses:
        row = partial(
            StatusRow,
            s.server,
            reported_generation=s.report.generation if s.report else None,
            generation=s.pointer.generation if s.pointer else None,
            commit=s.pointer.commit if s.pointer else None,
        )
        if s.retired is not None:
            why = f"left the inventory; 'setpoint forget {s.server}' removes it"
            rows.append(row("(inventory)", "RETIRED", note=why))
        elif not s.deployments and not s.troubled:
            rows.append(row("-", "NO DEPLOYMENTS", note="-"))
        for d in s.deployments:
            rows.append(
                row(
                    d.name,
                    d.status,
                    desired=d.desired,
                    reported=d.reported,
                    action=d.action,
                    age=d.age,
                )
            )
        rows += [row(subject, status, note=note) for subject, status, note in _troubles(s)]
    return rows


def _troubles(s: ServerStatus) -> list[tuple[str, str, str]]:
    """(subject, status, note) of each problem with a server's agent or documents."""
    found = [("(store)", "INVALID", problem) for problem in s.invalid]
    if s.report and s.report.error:
        found.append(("(agent)", "ERROR", s.report.error))
    if s.agent == "never-reported" and s.pointer is not None:
        found.append(("(agent)", "NEVER REPORTED", "no report yet"))
    if s.agent == "stale":
        found.append(("(agent)", "STALE", "not answering"))
    if s.agent == "unreachable":
        found.append(("(agent)", "UNREACHABLE", "no heartbeat"))
    return found


def format_table(statuses: list[ServerStatus]) -> str:
    rows = [TABLE_HEADER, *(r.cells() for r in table_rows(statuses))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


# How many of the last lines of each stream ``status`` shows (--json: all the tail).
DETAIL_LINES = 10


def format_details(statuses: list[ServerStatus], lines: int = DETAIL_LINES) -> str:
    """Each failed or running deployment's reason and the last ``lines`` lines of
    its stdout and stderr, as the agent reported them (masked); then the
    preflight checks and the drift found."""
    out: list[str] = [line for s in statuses for line in s.check_lines()]
    for s in statuses:
        for d in s.deployments:
            if d.run is None:
                continue
            exit_code = "" if d.run.exit_code is None else f", exit {d.run.exit_code}"
            out.append(f"{s.server} {d.name}: {d.status}, {d.run.action}{exit_code}")
            if d.run.reason:
                out.append(f"  reason: {d.run.reason}")
            out.extend(stream_lines(d.run, lines))
    return "\n".join(out)


def stream_lines(run: Run, lines: int | None) -> list[str]:
    """A run's stdout and stderr tails (their last ``lines`` lines; None: all),
    indented, or why they are withheld."""
    if run.withheld:
        return [f"  output withheld: {run.withheld}"]
    out: list[str] = []
    for label, text in (("stdout", run.stdout_tail), ("stderr", run.stderr_tail)):
        if text:
            out.append(f"  {label}:")
            out.extend(f"    {line}" for line in tail_lines(text, lines))
    return out


def quarantine_reason(masker: Masker, held: Quarantined) -> str:
    """Why a digest is quarantined, masked: the reason came from the agent's report."""
    masked = masker.text(held.config, held.reason)
    if masked is None:
        return f"reason withheld: derived config {short(held.config)} cannot be read"
    return masked


def masked_reasons(ledger: Ledger, masker: Masker) -> Ledger:
    """A copy of ``ledger`` to show: the failure reasons it keeps (from agents'
    reports, as an agent that does not mask wrote them) masked."""
    shown = Ledger.from_dict(ledger.to_dict())
    for held in shown.quarantine.values():
        for server, q in held.items():
            held[server] = Quarantined(q.config, quarantine_reason(masker, q))
    for rollout in shown.rollouts.values():
        failed = rollout.progress.get("failed") or {}
        for server, reason in failed.items():
            target = rollout.targets.get(server)
            masked = masker.text(target, str(reason)) if target else None
            failed[server] = masked if masked is not None else "reason withheld"
    return shown


def rollouts_summary(ledger: Ledger, masker: Masker) -> list[str]:
    """Rollouts in flight, quarantines and waits, as lines for operators."""
    lines: list[str] = []
    for name, rollout in sorted(ledger.rollouts.items()):
        p = rollout.progress
        head = f"{name}: batch {p.get('batch', 0)} of {p.get('batches', 0)}"
        if rollout.outcome != "rolling":
            head += f", {rollout.outcome.replace('_', ' ')}"
        lines.append(f"{head} (commit {rollout.commit[:12]})")
        for label, key in (
            ("done", "done"),
            ("in progress", "in_progress"),
            ("failed", "failed"),
            ("waiting", "waiting"),
        ):
            servers = p.get(key) or []
            if servers:
                lines.append(f"  {label:<12} {len(servers):>4}  {', '.join(sorted(servers))}")
    for name, held in sorted(ledger.quarantine.items()):
        for server, q in sorted(held.items()):
            lines.append(
                f"quarantined: {name} on {server}: {short(q.config)} "
                f"({quarantine_reason(masker, q)}); "
                f"'setpoint retry {name} --server {server}' lifts it"
            )
    for w in ledger.waiting:
        lines.append(f"waiting: {w.get('deployment')} on {w.get('server')}: {w.get('reason')}")
    return lines


def format_rollouts(store: Store) -> str:
    return "\n".join(rollouts_summary(read_ledger(store), Masker(store)))

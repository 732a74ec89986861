"""The fleet in numbers: what ``/metrics`` exposes, counted once per pass or per scrape.

A ``FleetSnapshot`` is built from each server's pointer, report and manifest
and the ledger, either as one reconcile pass already read them
(``pass_snapshot``: no request at all), by reading the store
(``store_snapshot``, for a process that runs no passes), or from the statuses
a dashboard already read for its pages (``status_snapshot``).
Both count with ``status``'s own words for a deployment's state
(``converge.status.deployment_state``), so ``setpoint status`` and the metrics
never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.converge.status import (
    STALE_AFTER,
    ServerStatus,
    deployment_state,
    read_servers,
)
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.controller.rollout.ledger import Ledger, Rollout, read_ledger
from setpoint.store.base import Store
from setpoint.store.documents import Manifest, Pointer, Report

# The values of the ``state`` label of ``setpoint_servers``.
SERVER_STATES = ("complete", "in_progress", "pending", "failed", "quarantined", "deleting")
# The values of the ``state`` label of ``setpoint_agents`` (``ServerStatus.agent_state``).
AGENT_STATES = ("current", "behind", "stale", "unreachable", "never-reported")

# One server as a pass or a reader saw it: name, pointer, report, the manifest the pointer names.
ServerDocs = tuple[str, Pointer | None, Report | None, Manifest]


def metric_state(status: str) -> str:
    """``status``'s word for a deployment on a server, as a ``state`` label."""
    if status.endswith("(deleting)"):
        return "deleting"
    if status in ("FAILED (quarantined)", "FAILED (timeout)"):
        return "quarantined"
    if status == "FAILED":
        return "failed"
    if status == "COMPLETE":
        return "complete"
    if status == "IN_PROGRESS":
        return "in_progress"
    return "pending"  # PENDING, and a report of an older config


@dataclass
class FleetSnapshot:
    # deployment (``stack/name``) -> state -> how many servers
    servers: dict[str, Counter[str]] = field(default_factory=dict)
    # agent state -> how many servers
    agents: Counter[str] = field(default_factory=Counter)
    # deployment -> digests reported FAILED (not quarantined) on some server
    failed_digests: dict[str, set[str]] = field(default_factory=dict)
    # deployment -> digests held back by the ledger's quarantine
    quarantined_digests: dict[str, set[str]] = field(default_factory=dict)
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    # Servers whose pointer, report or manifest could not be read.
    invalid: int = 0
    # deployment -> drift status (clean, drifted, unknown) of the digest given -> servers
    drift: dict[str, Counter[str]] = field(default_factory=dict)
    # deployment -> preflight status (PASSED, FAILED) of the entry asked -> servers
    preflight: dict[str, Counter[str]] = field(default_factory=dict)


def snapshot(
    servers: Iterable[ServerDocs],
    ledger: Ledger,
    now: float,
    unreachable_after: float = UNREACHABLE_AFTER_BEATS,
    invalid: int = 0,
) -> FleetSnapshot:
    """Count ``servers`` with the ledger's quarantine and rollouts."""

    def counted(docs: ServerDocs) -> CountedServer:
        server, pointer, report, manifest = docs
        agent = ServerStatus.agent_state(pointer, report, now, STALE_AFTER, unreachable_after)
        reported = report.deployments if report else {}
        given = {e.name: e for e in manifest.deployments}
        deployments = []
        for name in [*given, *sorted(n for n in reported if n not in given)]:
            got = reported.get(name)
            state = deployment_state(server, given.get(name), got, ledger)
            deployments.append((name, state, got.config if got else None))
        return agent, deployments, _checks(report, manifest)

    return _tally(map(counted, servers), ledger, invalid)


def status_snapshot(statuses: Iterable[ServerStatus], ledger: Ledger) -> FleetSnapshot:
    """Count what ``fleet_status`` already made of the store (a dashboard's shared
    read): no request, the same numbers as reading the store again."""
    statuses = list(statuses)
    counted = (
        (s.agent, [(d.name, d.status, d.reported) for d in s.deployments], _status_checks(s))
        for s in statuses
    )
    return _tally(counted, ledger, sum(1 for s in statuses if s.invalid))


# One server as counted: its agent's state; per deployment its name, the word
# ``status`` shows for it, and the digest the agent reported (None: none); and
# its checks as (``drift`` or ``preflight``, deployment name, status).
CountedServer = tuple[str, list[tuple[str, str, str | None]], list[tuple[str, str, str]]]


def _tally(servers: Iterable[CountedServer], ledger: Ledger, invalid: int) -> FleetSnapshot:
    snap = FleetSnapshot(rollouts=dict(ledger.rollouts), invalid=invalid)
    for agent, deployments, checks in servers:
        snap.agents[agent] += 1
        for name, status, reported in deployments:
            state = metric_state(status)
            deployment = name.split("@", 1)[0]
            counts = snap.servers.get(deployment)
            if counts is None:
                counts = snap.servers[deployment] = Counter()
            counts[state] += 1
            if state == "failed" and reported is not None:
                snap.failed_digests.setdefault(deployment, set()).add(reported)
        for kind, name, status in checks:
            into = snap.drift if kind == "drift" else snap.preflight
            into.setdefault(name.split("@", 1)[0], Counter())[status] += 1
    for deployment, held in ledger.quarantine.items():
        snap.quarantined_digests[deployment] = {q.config for q in held.values()}
    return snap


def _checks(report: Report | None, manifest: Manifest) -> list[tuple[str, str, str]]:
    """The drift of each digest given and the answer to each preflight entry asked."""
    if report is None:
        return []
    found = []
    for kind, entries in (("drift", manifest.deployments), ("preflight", manifest.preflight)):
        checks = getattr(report, kind)
        for entry in entries:
            got = checks.get(entry.name)
            if got is not None and got.config == entry.config:
                found.append((kind, entry.name, got.status))
    return found


def _status_checks(s: ServerStatus) -> list[tuple[str, str, str]]:
    """``_checks`` from what ``status`` read: drift of the digest each deployment
    is given; the preflight answers the report holds (``status`` keeps no
    manifest, so an answer is not matched with the entry asked)."""
    if s.report is None:
        return []
    desired = {d.name: d.desired for d in s.deployments}
    found = [
        ("drift", name, got.status)
        for name, got in sorted(s.report.drift.items())
        if desired.get(name) == got.config
    ]
    found += [("preflight", name, got.status) for name, got in sorted(s.report.preflight.items())]
    return found


def store_snapshot(
    store: Store, now: float, unreachable_after: float = UNREACHABLE_AFTER_BEATS
) -> FleetSnapshot:
    """Read every server's documents and the ledger (as ``status`` reads them:
    side by side on the pool, each manifest once)."""
    ledger = read_ledger(store)
    names = store.list_servers()
    read = read_servers(store, names)
    rows: list[ServerDocs] = []
    invalid = 0
    for server, (pointer, report, manifest, problems) in zip(names, read, strict=True):
        rows.append((server, pointer, report, manifest))
        invalid += bool(problems)
    return snapshot(rows, ledger, now, unreachable_after, invalid)


def pass_snapshot(
    outcome: PassOutcome, now: float, unreachable_after: float = UNREACHABLE_AFTER_BEATS
) -> FleetSnapshot:
    """Count what one pass already read and wrote: no request to the store."""
    empty = Manifest(deployments=())
    rows: list[ServerDocs] = [
        (
            server,
            pointer,
            outcome.reports.get(server),
            outcome.desired.manifests.get(server, empty),
        )
        for server, pointer in sorted(outcome.published.pointers.items())
    ]
    return snapshot(rows, outcome.ledger, now, unreachable_after, len(outcome.invalid))

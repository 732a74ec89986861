"""Where a server stands in a rollout, and which servers the next batch takes.

The gate (``gate.py``) decides per deployment whether a rollout goes on,
halts or rolls back; this module answers the two questions it asks on the
way: how far is a server with the entry it was given (``entry_result``), and,
when the batch in flight is done, which pending servers form the next one
(``Batches.admit``: ``pause_time``, ``canary``, ``max_batch_size``,
``min_in_service``, unreachable agents).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from setpoint.controller.definitions.model import Deployment, UpdatePolicy
from setpoint.controller.rollout.ledger import Rollout
from setpoint.store.documents import DeploymentReport, ManifestEntry, Report
from setpoint.store.timestamps import parse_timestamp

# An agent that beats (reports ``heartbeat``) and has not written its report for
# this many heartbeats is unreachable (``--unreachable-after`` changes it).
UNREACHABLE_AFTER_BEATS = 3.0


def unreachable(report: Report | None, now: float, beats: float = UNREACHABLE_AFTER_BEATS) -> bool:
    """An agent that beats and has been silent for more than ``beats`` beats."""
    if report is None or report.heartbeat is None:
        return False
    updated = parse_timestamp(report.updated_at)
    return updated is not None and now - updated > beats * report.heartbeat


def entry_result(entry: ManifestEntry, got: DeploymentReport | None) -> str:
    """How far a server is with ``entry``: ``complete``, ``failed`` (final) or ``running``.

    Complete means the digest succeeded *and* the requested state and custom
    action token are applied: a SUSPEND or a BACKUP is part of the rollout.
    """
    if got is None or got.config != entry.config:
        return "running"
    if got.status == "FAILED":
        return "failed" if got.final else "running"
    if got.status != "COMPLETE":
        return "running"
    if got.state != entry.state:
        return "running"
    if entry.run is not None and got.token != entry.run[1]:
        return "running"
    return "complete"


def batch_size(policy: UpdatePolicy, first: bool, pending: int) -> int:
    """How many servers a batch takes under ``policy``: ``canary`` first, if set."""
    if first and policy.canary > 0:
        return policy.canary
    return policy.max_batch_size or pending


def next_batch(
    dep: Deployment,
    creating: list[str],
    updating: list[str],
    first: bool,
    in_service: int,
    serving: Callable[[str], bool],
) -> tuple[list[str], str]:
    """The servers the next batch of ``dep`` takes, and why it takes no more.

    ``creating`` servers never had the deployment (``batch_create``);
    ``updating`` ones change it (``update_policy``). Both are taken in the
    order ``dep.servers`` lists them, whatever order they come in: reconcile
    (``Batches.admit``) and ``setpoint plan`` both ask this, so the batches a
    plan shows are the batches that go out. ``in_service`` servers of ``dep``
    serve now; changing one for which ``serving`` is true takes it out of
    service, which ``min_in_service`` bounds.
    """
    order = {server: i for i, server in enumerate(dep.servers)}
    creates = sorted(creating, key=order.__getitem__)
    updates = sorted(updating, key=order.__getitem__)
    batch = creates[: batch_size(dep.policy(True), first, len(creates))]
    if not updates:
        return batch, ""
    policy = dep.policy(False)
    size = batch_size(policy, first, len(updates))
    taken: list[str] = []
    for server in updates:
        if len(taken) >= size:
            break
        if serving(server):
            if in_service - 1 < policy.min_in_service:
                why = f"min_in_service {policy.min_in_service}: only {in_service} in service"
                return batch + taken, why
            in_service -= 1
        taken.append(server)
    return batch + taken, ""


@dataclass
class Batches:
    """The next batch of one deployment's rollout, from the reports and the clock."""

    reports: dict[str, Report]
    now: float
    unreachable_after: float = UNREACHABLE_AFTER_BEATS

    def _got(self, server: str, name: str) -> DeploymentReport | None:
        report = self.reports.get(server)
        return report.deployments.get(name) if report else None

    def _unreachable(self, server: str) -> bool:
        return unreachable(self.reports.get(server), self.now, self.unreachable_after)

    def _serving(self, server: str, prior: ManifestEntry | None) -> bool:
        """In service: COMPLETE with what it was given, and its agent reachable."""
        if prior is None or self._unreachable(server):
            return False
        return entry_result(prior, self._got(server, prior.name)) == "complete"

    def admit(
        self,
        dep: Deployment,
        targets: dict[str, ManifestEntry],
        before: dict[str, ManifestEntry | None],
        bundles: dict[str, dict[str, str]],
        rollout: Rollout,
        pending: list[str],
        running: list[str],
        entries: dict[str, ManifestEntry | None],
    ) -> str:
        """Give the next batch its targets in ``entries`` if the rules allow;
        returns why the rest waits."""
        if running:
            return f"waits for batch {rollout.batches} to complete"
        if rollout.batch_done_at is not None:
            creating = all(before.get(s) is None for s in rollout.batch)
            pause = dep.policy(creating).pause_time
            if self.now < rollout.batch_done_at + pause:
                return f"pause_time: next batch at +{rollout.batch_done_at + pause - self.now:g}s"
        reachable = [s for s in pending if not self._unreachable(s)]
        if not reachable:
            return "agent unreachable"
        in_service = sum(self._serving(s, before.get(s)) for s in dep.servers if s in before)
        batch, why = next_batch(
            dep,
            creating=[s for s in reachable if before.get(s) is None],
            updating=[s for s in reachable if before.get(s) is not None],
            first=rollout.batches == 0,
            in_service=in_service,
            serving=lambda server: self._serving(server, before.get(server)),
        )
        if not batch:
            return why or "waiting for a batch"
        self._start_batch(targets, before, bundles, rollout, batch, entries)
        waits = f"waits for batch {rollout.batches} to complete"
        return f"{waits} ({why})" if why else waits

    def _start_batch(
        self,
        targets: dict[str, ManifestEntry],
        before: dict[str, ManifestEntry | None],
        bundles: dict[str, dict[str, str]],
        rollout: Rollout,
        batch: list[str],
        entries: dict[str, ManifestEntry | None],
    ) -> None:
        """Give ``batch`` its targets, remembering each server's last good entry."""
        for server in batch:
            prior = before.get(server)
            got = self._got(server, prior.name) if prior else None
            if prior is None:
                rollout.good.setdefault(server, None)
            elif entry_result(prior, got) == "complete":
                # The bundles go along: the old config's directories may not be
                # in the manifests that follow.
                rollout.good[server] = {**prior.to_dict(), "bundles": bundles.get(server, {})}
            else:
                rollout.good.setdefault(server, None)
            rollout.started[server] = self.now
            rollout.targets[server] = targets[server].config
            entries[server] = targets[server]
        rollout.batches += 1
        rollout.batch = sorted(batch)
        rollout.batch_done_at = None

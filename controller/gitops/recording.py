"""The commit's record: what deploying a commit did, kept in its git note.

One code path for ``setpoint watch`` and ``setpoint reconcile --notes``: a
``Recorder`` follows the commit being deployed, turns each reconcile pass into
that commit's ``DeployRecord`` (servers converged, failed, pending; failures;
rollbacks; the digests that converged) and writes it to the commit's note
(``controller.notes``) when it changed. When another commit is deployed, the
record of the one before is closed as ``superseded`` unless it had converged.

A rollback is read from the controller's ledger (a rollout whose outcome is
``rolled_back``, started for this commit): the record names each deployment
rolled back and the servers that went back to their last good digest. It is
kept, not recounted: passes that see the same rollback again change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.converge.status import newest_commit
from setpoint.controller.gitops.environments import record_name
from setpoint.controller.gitops.notes import (
    CONVERGED,
    FAILED,
    IN_PROGRESS,
    SUPERSEDED,
    DeployRecord,
    Notebook,
)
from setpoint.store.base import Store

log = structlog.get_logger("setpoint.recording")


def deployed_commit(store: Store) -> str | None:
    """The commit the store's most recently published pointer names (None: nothing yet)."""
    return newest_commit(store.read_pointer(server) for server in store.list_servers())


def rolled_back(outcome: PassOutcome, commit: str) -> dict[str, list[str]]:
    """Deployments whose rollout for ``commit`` was rolled back: deployment -> servers."""
    out: dict[str, list[str]] = {}
    for name, rollout in sorted(outcome.ledger.rollouts.items()):
        if rollout.outcome == "rolled_back" and rollout.commit == commit:
            out[name] = sorted(rollout.rolled_back)
    return out


def update_record(record: DeployRecord, outcome: PassOutcome, now: float) -> None:
    """Fold one pass into ``record`` (a record already converged or superseded is
    final, but for the drift its servers report until another commit replaces it)."""
    if record.outcome == SUPERSEDED or record.superseded_by is not None:
        return
    record.drifted = {s: p.drifted for s, p in sorted(outcome.servers.items()) if p.drifted}
    if record.outcome == CONVERGED:
        return
    servers: dict[str, str] = {}
    configs: dict[str, set[str]] = {}
    for server, progress in outcome.servers.items():
        if progress.converged:
            servers[server] = "converged"
            manifest = outcome.desired.manifests.get(server)
            for entry in manifest.deployments if manifest else ():
                # Only what this commit rendered: a rolled-back server converges
                # on an older digest, which is no config of this commit.
                rendered = outcome.desired.rendered.get((entry.qualified, server))
                if rendered is None or rendered == entry.config:
                    configs.setdefault(entry.name, set()).add(entry.config)
        else:
            servers[server] = "failed" if progress.failed else "pending"
    record.servers = servers
    record.configs = {name: sorted(d) for name, d in sorted(configs.items())}
    record.failures = outcome.failed[:20]
    for name, back in rolled_back(outcome, record.commit).items():
        record.rolled_back[name] = sorted(set(record.rolled_back.get(name, [])) | set(back))
    record.rollbacks = len(record.rolled_back)
    if outcome.converged:
        record.outcome, record.finished_at = CONVERGED, now
    elif outcome.failed and "pending" not in servers.values():
        if record.outcome != FAILED:
            record.outcome, record.finished_at = FAILED, now
    else:
        record.outcome, record.finished_at = IN_PROGRESS, None


@dataclass
class Recorder:
    """Keeps the record of the commit being deployed, in its note."""

    notebook: Notebook
    env: str | None = None
    clock: Callable[[], float] = time.time
    current: str | None = None
    # Called after each note written (``watch --push-notes`` pushes the notes ref).
    on_save: Callable[[], None] | None = None
    record: DeployRecord | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.env_name = record_name(self.env)
        if self.current is not None:
            self.record = self.record_for(self.current)

    def record_for(self, commit: str) -> DeployRecord:
        return self.notebook.record(commit, self.env) or DeployRecord(
            commit=commit, environment=self.env_name, outcome=IN_PROGRESS, started_at=self.clock()
        )

    def save(self, record: DeployRecord) -> None:
        self.notebook.write(record)
        if self.on_save is not None:
            self.on_save()

    def switch(self, head: str) -> None:
        """``head`` is deployed from now on: close the record of the commit before it."""
        if self.record is not None and self.record.outcome in (IN_PROGRESS, FAILED):
            # A failure stays a failure in history once another commit (a revert)
            # replaces it; only a commit still in progress becomes superseded.
            if self.record.outcome == IN_PROGRESS:
                self.record.outcome = SUPERSEDED
            self.record.superseded_by = head
            self.record.finished_at = self.clock()
            self.save(self.record)
        log.info(
            "deploying", commit=head[:12], previous=(self.current or "")[:12], env=self.env_name
        )
        self.current = head
        self.record = self.record_for(head)
        self.save(self.record)

    def update(self, outcome: PassOutcome) -> DeployRecord:
        """Record a pass of the current commit; the note is written only when it changed."""
        if outcome.commit != self.current or self.record is None:
            self.switch(outcome.commit)
        assert self.record is not None
        before = self.record.to_dict()
        update_record(self.record, outcome, self.clock())
        if self.record.to_dict() != before:
            self.save(self.record)
            log.info("recorded", commit=self.record.commit[:12], note=self.record.summary())
        return self.record

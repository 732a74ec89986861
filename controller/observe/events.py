"""Events worth telling people, derived from the ledger and one pass's outcome.

An event is not something that happened in this process: it is a fact the
store shows after a pass (a rollout of this commit is in flight, it halted,
it rolled back, the commit converged, an agent went silent), named by a key
that stays the same as long as the fact holds::

    rollout_started/<deployment>/<commit>
    batch_failed/<deployment>/<commit>/<batch>
    rollback/<deployment>/<commit>
    converged/<commit>
    agent_unreachable/<server>/<time of its last report>
    preflight_failed/<deployment>/<server>/<digest>
    drifted/<deployment>/<server>/<digest>/<drift count>

The ledger's ``notified`` lists the keys already sent. A key leaves it once its
fact no longer holds (a new failure, or the same agent silent again later, is
a new event), except ``converged/<commit>``, kept while that commit is the one
deployed, so a fleet that wobbles and settles again is not announced twice.

When many agents go silent in the same pass (a network partition, a store
outage), ``grouped`` sends one ``agent_unreachable`` naming them all instead
of one message per server; each server's key is still recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS, unreachable
from setpoint.controller.rollout.ledger import Ledger, Rollout
from setpoint.controller.wording import counted


@dataclass(frozen=True)
class Event:
    key: str
    kind: str
    commit: str
    summary: str
    deployment: str | None = None
    server: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "key": self.key,
            "commit": self.commit,
            "summary": self.summary,
            "deployment": self.deployment,
            "server": self.server,
            "details": self.details,
        }


def pass_events(
    outcome: PassOutcome, now: float, unreachable_after: float = UNREACHABLE_AFTER_BEATS
) -> list[Event]:
    """Every event whose fact holds after the pass ``outcome`` tells of."""
    events: list[Event] = []
    for name, rollout in sorted(outcome.ledger.rollouts.items()):
        events += _rollout_events(name, rollout)
    if outcome.converged:
        events.append(
            Event(
                f"converged/{outcome.commit}",
                "converged",
                outcome.commit,
                f"commit {outcome.commit[:12]} converged on "
                f"{counted(len(outcome.servers), 'server')}",
                details={"servers": len(outcome.servers)},
            )
        )
    events += _check_events(outcome)
    for server, report in sorted(outcome.reports.items()):
        if unreachable(report, now, unreachable_after):
            events.append(
                Event(
                    f"agent_unreachable/{server}/{report.updated_at}",
                    "agent_unreachable",
                    outcome.commit,
                    f"agent on {server} unreachable: no report since {report.updated_at}",
                    server=server,
                    details={"last_report": report.updated_at, "heartbeat": report.heartbeat},
                )
            )
    return events


def _check_events(outcome: PassOutcome) -> list[Event]:
    """A preflight check FAILED on an entry the server is asked to check, and a
    deployment drifted from the digest it was given (each drift is one event)."""
    events: list[Event] = []
    commit = outcome.commit
    for server, report in sorted(outcome.reports.items()):
        manifest = outcome.desired.manifests.get(server)
        if manifest is None:
            continue
        asked = {e.name: e.config for e in manifest.preflight}
        given = {e.name: e.config for e in manifest.deployments}
        for name, got in sorted(report.preflight.items()):
            if got.status == "FAILED" and asked.get(name) == got.config:
                events.append(
                    Event(
                        f"preflight_failed/{name}/{server}/{got.config}",
                        "preflight_failed",
                        commit,
                        f"{name}: preflight failed on {server}: {got.reason or 'failed'}",
                        deployment=name,
                        server=server,
                        details={"config": got.config, "reason": got.reason},
                    )
                )
        for name, got in sorted(report.drift.items()):
            if got.status == "drifted" and given.get(name) == got.config:
                events.append(
                    Event(
                        f"drifted/{name}/{server}/{got.config}/{got.count}",
                        "drifted",
                        commit,
                        f"{name}: {server} drifted from what it applied",
                        deployment=name,
                        server=server,
                        details={"config": got.config, "count": got.count, "changes": got.changes},
                    )
                )
    return events


def _rollout_events(name: str, rollout: Rollout) -> list[Event]:
    commit, short = rollout.commit, rollout.commit[:12]
    progress = rollout.progress
    batches = int(progress.get("batches", rollout.batches))
    events: list[Event] = []
    if rollout.batches >= 1:
        events.append(
            Event(
                f"rollout_started/{name}/{commit}",
                "rollout_started",
                commit,
                f"{name}: rollout of {short} started ({counted(batches, 'batch')})",
                deployment=name,
                details={"batches": batches},
            )
        )
    if rollout.outcome in ("halted", "rolled_back"):
        failed = dict(progress.get("failed") or {})
        events.append(
            Event(
                f"batch_failed/{name}/{commit}/{rollout.batches}",
                "batch_failed",
                commit,
                f"{name}: batch {rollout.batches} of {short} failed on "
                f"{', '.join(sorted(failed)) or 'a server'}; rollout "
                f"{rollout.outcome.replace('_', ' ')}",
                deployment=name,
                details={"batch": rollout.batches, "failed": failed, "outcome": rollout.outcome},
            )
        )
    if rollout.outcome == "rolled_back" and rollout.rolled_back:
        events.append(
            Event(
                f"rollback/{name}/{commit}",
                "rollback",
                commit,
                f"{name}: rolled back {short} on {', '.join(rollout.rolled_back)}",
                deployment=name,
                details={"servers": list(rollout.rolled_back)},
            )
        )
    return events


def unsent(events: list[Event], ledger: Ledger, commit: str) -> list[Event]:
    """The events not sent yet; ``ledger.notified`` becomes what still holds, for
    the caller to write before it sends (at most once: a crash in between loses
    a notification, never repeats one)."""
    sent = set(ledger.notified)
    new = [e for e in events if e.key not in sent]
    kept = {e.key for e in events} | {k for k in sent if k == f"converged/{commit}"}
    ledger.notified = sorted(kept)
    return new


# More new unreachable agents than this in one pass are told in one notification.
UNREACHABLE_BURST = 5


def grouped(new: list[Event], burst: int = UNREACHABLE_BURST) -> list[Event]:
    """``new``, with more than ``burst`` unreachable agents told as one event."""
    silent = [e for e in new if e.kind == "agent_unreachable"]
    if len(silent) <= burst:
        return new
    servers = {str(e.server): e.details.get("last_report") for e in silent}
    # The same group always gets the same key (the receiver's delivery id).
    digest = hashlib.sha256("\n".join(sorted(e.key for e in silent)).encode()).hexdigest()
    shown = ", ".join(sorted(servers)[:burst])
    more = f" and {len(servers) - burst} more" if len(servers) > burst else ""
    group = Event(
        f"agent_unreachable/{len(servers)} servers/{digest[:16]}",
        "agent_unreachable",
        silent[0].commit,
        f"{counted(len(servers), 'agent')} unreachable: {shown}{more}",
        details={"servers": dict(sorted(servers.items()))},
    )
    return [e for e in new if e.kind != "agent_unreachable"] + [group]

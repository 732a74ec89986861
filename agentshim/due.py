"""Deciding what is due: which deployments need a run, and when a failed one is retried.

A config runs when its digest has not yet succeeded here (or its last CREATE
or UPDATE failed); a failed attempt is retried after a backoff that doubles
with each failure, up to ``max_attempts``. Deployments gone from the manifest
are deleted last-deployed first.
"""

from __future__ import annotations

from setpoint.agentshim.state import AgentState, DeploymentState, Failure
from setpoint.store import Manifest, ManifestEntry

MAX_RETRY_DELAY = 300.0


def retry_delay(backoff: float, failures: int) -> float:
    """Delay after the n-th failure: ``backoff * 2**(n-1)``, capped."""
    return float(min(backoff * 2 ** max(failures - 1, 0), MAX_RETRY_DELAY))


def unsettled(dep: DeploymentState) -> bool:
    """The last CREATE or UPDATE here failed, whatever its digest.

    After a rollback the manifest names the digest that succeeded before the
    failed change; the failed run may have left the server half changed, so
    that digest's UPDATE runs again rather than counting as done.
    """
    report = dep.report
    return (
        report is not None and report.status == "FAILED" and report.action in ("CREATE", "UPDATE")
    )


def config_due(dep: DeploymentState | None, entry: ManifestEntry) -> bool:
    """The entry's digest has to run (CREATE or UPDATE) before anything else."""
    return dep is None or dep.succeeded != entry.config or unsettled(dep)


def failure_for(
    dep: DeploymentState,
    config: str,
    action: str,
    token: str | None = None,
    retry: int = 0,
) -> Failure | None:
    """Failed attempts at this (digest, action, token, retry count); any new
    one of these starts over."""
    f = dep.failure
    if f is not None and (f.config, f.action, f.token, f.retry) == (config, action, token, retry):
        return f
    return None


def is_due(failure: Failure | None, now: float) -> bool:
    """No failed attempt yet, or one whose retry time has come (never a final one)."""
    if failure is None:
        return True
    if failure.final:
        return False
    return failure.retry_at is None or failure.retry_at <= now


def next_retry_at(state: AgentState) -> float | None:
    """When the earliest pending retry of a current config falls due, if any."""
    due = [
        d.failure.retry_at
        for d in state.deployments.values()
        if d.failure is not None
        and d.failure.retry_at is not None
        and not d.failure.final
        and d.failure.config == d.entry.config
    ]
    return min(due) if due else None


def position_in_manifest(state: AgentState, name: str) -> int:
    """The deployment's index in the accepted manifest (after the last if absent)."""
    manifest = state.manifest_doc
    names = [e.name for e in manifest.deployments] if manifest else []
    return names.index(name) if name in names else len(names)


def gone(state: AgentState, manifest: Manifest) -> list[tuple[str, DeploymentState]]:
    """The deployments no longer in ``manifest``, last-deployed first."""
    present = {e.name for e in manifest.deployments}
    return sorted(
        ((name, d) for name, d in state.deployments.items() if name not in present),
        key=lambda item: item[1].position,
        reverse=True,
    )

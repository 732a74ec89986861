"""Keeping state: each outcome of a deployment written into the agent's state.

Every change (a run starting, a success, a skip, a failure with its next retry,
a deployment forgotten) updates the deployment's state and report, is logged,
and is committed: recorded on disk, then reported. A run that was in flight
when a previous agent died is recorded as a failed attempt, due again at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.due import failure_for, retry_delay
from setpoint.agentshim.processes import boot_id, kill_leftover
from setpoint.agentshim.reporting import iso
from setpoint.agentshim.state import DeploymentState, Failure, InFlight
from setpoint.store import DeploymentReport, ManifestEntry

REASON_AGENT_STOPPED = "agent stopped during the run"


class Ledger:
    """Records what happened to each deployment, with the retry rules."""

    def __init__(self, ctx: AgentContext, max_attempts: int, retry_backoff: float) -> None:
        self.ctx = ctx
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff

    # -- runs --------------------------------------------------------------------------

    def started(
        self, dep: DeploymentState, entry: ManifestEntry, action: str, tool: str, attempts: int
    ) -> float:
        """The in-flight marker and the IN_PROGRESS report; returns the start time."""
        ctx = self.ctx
        started = ctx.clock()
        ctx.state.in_flight = InFlight(entry.name, entry.config, action, started, boot_id=boot_id())
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="IN_PROGRESS",
            outputs={},
            attempts=attempts,
            started_at=iso(started),
        )
        ctx.result.ran.append(entry.name)
        ctx.log.info(
            "deployment_started",
            deployment=entry.name,
            config=entry.config,
            action=action,
            tool=tool,
            attempt=attempts,
        )
        ctx.commit()
        return started

    def aborted(self, dep: DeploymentState, name: str, attempts: int, reason: str | None) -> None:
        """The ``attempts``-th run, cut short because the agent is stopping: it does
        not count as an attempt."""
        assert dep.report is not None
        self.ctx.state.in_flight = None
        dep.report = replace(dep.report, status="FAILED", reason=reason, attempts=attempts - 1)
        self.ctx.log.warning("deployment_aborted", deployment=name, reason=reason)
        self.ctx.commit()

    def config_succeeded(
        self, dep: DeploymentState, entry: ManifestEntry, action: str, outputs: dict[str, Any]
    ) -> None:
        """The entry's digest ran to success (CREATE or UPDATE)."""
        dep.succeeded, dep.outputs, dep.failure = entry.config, dict(outputs), None
        assert dep.report is not None
        dep.report = replace(dep.report, status="COMPLETE", final=True)
        self.ctx.result.completed.append(entry.name)
        self.ctx.log.info(
            "deployment_complete",
            deployment=entry.name,
            config=entry.config,
            action=action,
            attempts=dep.report.attempts,
        )
        self.ctx.commit()

    def skipped(self, dep: DeploymentState, entry: ManifestEntry, action: str, reason: str) -> None:
        """A CREATE or UPDATE with nothing to run counts as COMPLETE."""
        now = iso(self.ctx.clock())
        outputs = dict(dep.outputs) if action == "UPDATE" else {}
        dep.succeeded, dep.outputs, dep.failure = entry.config, outputs, None
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="COMPLETE",
            outputs=outputs,
            started_at=now,
            finished_at=now,
            reason=reason,
            final=True,
        )
        self.ctx.result.completed.append(entry.name)
        self.ctx.log.info(
            "deployment_skipped",
            deployment=entry.name,
            config=entry.config,
            action=action,
            reason=reason,
        )
        self.ctx.commit()

    def extra_done(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        token: str | None,
        reason: str | None,
        outputs: dict[str, Any],
    ) -> None:
        """SUSPEND, RESUME or a custom action done (``reason``: why nothing ran);
        the ``outputs`` its run reported replace the ones it names."""
        now = iso(self.ctx.clock())
        if token is None:
            dep.state = entry.state
        else:
            dep.token = token
        dep.failure = None
        dep.outputs = {**dep.outputs, **outputs}
        base = dep.report or DeploymentReport(entry.name, entry.config, action, "COMPLETE")
        dep.report = replace(
            base,
            action=action,
            status="COMPLETE",
            outputs=dict(dep.outputs),
            started_at=base.started_at if reason is None else now,
            finished_at=base.finished_at if reason is None else now,
            reason=reason,
            retry_at=None,
            final=True,
        )
        self.ctx.result.completed.append(entry.name)
        self.ctx.log.info("deployment_complete", deployment=entry.name, action=action, token=token)
        self.ctx.commit()

    def forget(self, name: str, reason: str) -> None:
        """A deployment gone from the manifest, deleted (or with nothing to delete)."""
        self.ctx.state.deployments.pop(name, None)
        self.ctx.state.in_flight = None
        self.ctx.result.deleted.append(name)
        self.ctx.log.info("deployment_forgotten", deployment=name, reason=reason)
        self.ctx.commit()

    # -- failures ----------------------------------------------------------------------

    def attempt_failed(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        failure: Failure | None,
        reason: str,
    ) -> None:
        """A failed attempt that never reached a hook (e.g. the config is unavailable)."""
        now = self.ctx.clock()
        dep.report = DeploymentReport(
            name=entry.name,
            config=entry.config,
            action=action,
            status="FAILED",
            started_at=iso(now),
        )
        self.failed(dep, entry, action, (failure.attempts if failure else 0) + 1, now, reason)

    def failed(
        self,
        dep: DeploymentState,
        entry: ManifestEntry,
        action: str,
        attempts: int,
        finished: float,
        reason: str | None,
    ) -> None:
        """The ``attempts``-th failure: final at ``max_attempts``, else retried after a backoff."""
        final = attempts >= self.max_attempts
        retry_at = None if final else finished + retry_delay(self.retry_backoff, attempts)
        token = entry.run[1] if entry.run is not None and entry.run[0] == action else None
        dep.failure = Failure(
            entry.config, action, attempts, retry_at, final, token=token, retry=entry.retry
        )
        if action == "DELETE":
            # Half-deleted is not the state that succeeded: if it comes back, create it.
            dep.succeeded = None
        assert dep.report is not None
        dep.report = replace(
            dep.report,
            status="FAILED",
            attempts=attempts,
            finished_at=dep.report.finished_at or iso(finished),
            reason=reason,
            retry_at=None if retry_at is None else iso(retry_at),
            final=final,
        )
        self.ctx.state.in_flight = None
        self.ctx.result.failed.append(entry.name)
        self.ctx.log.warning(
            "deployment_failed",
            deployment=entry.name,
            config=entry.config,
            action=action,
            attempts=attempts,
            final=final,
            retry_at=dep.report.retry_at,
            reason=reason,
        )
        self.ctx.commit()

    def recover_in_flight(self, flight: InFlight) -> None:
        """A run the previous agent never finished: a failed attempt, due again now."""
        ctx = self.ctx
        if flight.pid is not None and kill_leftover(flight.pid, flight.pid_start, flight.boot_id):
            ctx.log.warning("leftover_hook_killed", deployment=flight.deployment, pid=flight.pid)
        dep = ctx.state.deployments.get(flight.deployment)
        if dep is None:
            ctx.state.in_flight = None
            ctx.save()
            return
        report = dep.report
        if report is not None and (report.config, report.action) == (flight.config, flight.action):
            attempts = max(report.attempts, 1)
        else:
            prior = failure_for(dep, flight.config, flight.action)
            attempts = (prior.attempts if prior else 0) + 1
        final = attempts >= self.max_attempts
        dep.failure = Failure(flight.config, flight.action, attempts, None, final)
        if flight.action == "DELETE":
            dep.succeeded = None
        dep.report = DeploymentReport(
            name=flight.deployment,
            config=flight.config,
            action=flight.action,
            status="FAILED",
            attempts=attempts,
            started_at=iso(flight.started_at),
            reason=REASON_AGENT_STOPPED,
            final=final,
        )
        ctx.state.in_flight = None
        ctx.log.warning(
            "run_interrupted",
            deployment=flight.deployment,
            config=flight.config,
            action=flight.action,
            attempts=attempts,
            final=final,
        )
        ctx.commit()
